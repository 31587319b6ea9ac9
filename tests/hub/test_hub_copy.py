"""The hub as a copy of a stream kept elsewhere (Hub.load, publish_at, drop), with ids that are not
contiguous (a Redis stream's), and a hub whose ids start from its start time (rawrt.hub.ids)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawrt.hub import Event, Hub
from rawrt.hub.ids import SEQ_PER_MS, from_stream_id, start_id, to_stream_id
from rawrt.limits import Limits


def ids(events: tuple[Event, ...] | list[Event]) -> list[int]:
    return [e.id for e in events]


def noop() -> None:
    pass


class TestIds:
    def test_stream_ids_map_to_integers_that_keep_their_order(self) -> None:
        assert from_stream_id("1796424018980-0") == 1796424018980 * 1024
        assert from_stream_id(b"1796424018980-7") == 1796424018980 * 1024 + 7
        assert to_stream_id(1796424018980 * 1024 + 7) == "1796424018980-7"
        # JavaScript reads them exactly until the year 2248 (2**53 / 1024 ms).
        assert from_stream_id("8796093022207-1023") == 2**53 - 1

    @pytest.mark.parametrize("bad", ["", "12", "12-", "-3", "a-1", "1-b", "1-1024", "１-1", "1-2-3"])
    def test_what_is_not_a_numberable_entry_id(self, bad: str) -> None:
        assert from_stream_id(bad) is None

    def test_start_id(self) -> None:
        assert start_id(0) == 0
        assert start_id(5) == 5 * SEQ_PER_MS
        with pytest.raises(ValueError):
            start_id(-1)
        with pytest.raises(ValueError):
            to_stream_id(-1)

    @given(st.integers(0, 2**44), st.integers(0, SEQ_PER_MS - 1), st.integers(0, 2**44), st.integers(0, 1023))
    def test_order_is_kept_and_round_trips(self, ms1: int, seq1: int, ms2: int, seq2: int) -> None:
        a, b = from_stream_id(f"{ms1}-{seq1}"), from_stream_id(f"{ms2}-{seq2}")
        assert a is not None and b is not None
        assert (a < b) == ((ms1, seq1) < (ms2, seq2))
        assert to_stream_id(a) == f"{ms1}-{seq1}"


class TestStart:
    """A hub that starts at S: ids S+1, S+2...; cursor 0 means "nothing yet" (= S); a cursor below S comes
    from an earlier run and gets the reset signal."""

    def test_ids_count_on_from_the_start(self) -> None:
        hub = Hub(start=1000)
        assert hub.last_id("a") == 1000
        assert [hub.publish("a", "x").id for _ in range(3)] == [1001, 1002, 1003]
        assert hub.publish("b", "y").id == 1001

    def test_cursor_zero_is_the_start(self) -> None:
        hub = Hub(start=1000)
        hub.publish("a", "x")
        replay = hub.since("a", 0)
        assert (ids(replay.events), replay.reset) == ([1001], False)
        assert hub.since("nothing-here", 0) == hub.since("nothing-here", 1000)
        assert not hub.since("nothing-here", 0).reset
        sub = hub.subscribe("a", cursor=0, wake=noop)
        assert (ids(sub.drain()), sub.reset) == ([1001], False)

    def test_a_cursor_of_an_earlier_run_gets_reset(self) -> None:
        """The issue's case: 5 events, restart, 10 events, ``since=5``: a reset, never 6..10 as if they
        continued the earlier run."""
        first = Hub(start=start_id(1_000))
        old = [first.publish("c", str(i)).id for i in range(5)]
        second = Hub(start=start_id(1_001))  # a run started 1 ms later
        for i in range(10):
            second.publish("c", str(i))
        for cursor in old:
            replay = second.since("c", cursor)
            assert replay.reset and len(replay.events) == 10
            sub = second.subscribe("c", cursor=cursor, wake=noop)
            assert sub.reset and len(sub.drain()) == 10

    def test_negative_start_refused(self) -> None:
        with pytest.raises(ValueError):
            Hub(start=-1)


class TestCopy:
    def test_load_then_read_with_gaps_in_ids(self) -> None:
        hub = Hub()
        hub.load("s", [(10, "a"), (20, "b"), (35, "c")], base=5, origin=5, last_id=35)
        assert hub.has_channel("s") and hub.last_id("s") == 35
        assert ids(hub.since("s", 0).events) == [10, 20, 35]  # 0 is the origin
        assert ids(hub.since("s", 5).events) == [10, 20, 35]
        assert ids(hub.since("s", 10).events) == [20, 35]
        assert ids(hub.since("s", 15).events) == [20, 35]  # between two ids: what follows it
        assert ids(hub.since("s", 35).events) == []
        assert hub.since("s", 4).reset and ids(hub.since("s", 4).events) == [10, 20, 35]
        assert hub.since("s", 36).reset
        replay = hub.since("s", 5, limit=2)
        assert (ids(replay.events), replay.cursor, replay.more) == ([10, 20], 20, True)

    def test_publish_at_appends_newer_ignores_older_and_unknown(self) -> None:
        hub = Hub()
        assert hub.publish_at("s", 5, "x") is None  # not loaded
        hub.load("s", [], base=100, origin=100, last_id=100)
        woken: list[int] = []
        sub = hub.subscribe("s", cursor=None, wake=lambda: woken.append(1))
        event = hub.publish_at("s", 130, "x")
        assert event is not None and event.id == 130 and event.data_bytes == b"x"
        assert hub.publish_at("s", 130, "again") is None and hub.publish_at("s", 120, "older") is None
        assert ids(sub.drain()) == [130] and woken == [1]

    def test_replay_does_not_repeat_live_events_when_ids_jump(self) -> None:
        """``drain`` asks the replay for up to replay_to - cursor events: with gaps that reaches past the
        live queue's first event, which must come once, from the queue."""
        hub = Hub()
        hub.load("s", [(10, "a"), (11, "b")], base=0, origin=0, last_id=11)
        sub = hub.subscribe("s", cursor=0, wake=noop)
        hub.publish_at("s", 500, "live")
        assert ids(sub.drain()) == [10, 11, 500]
        assert sub.drain() == []

    def test_load_again_overflows_subscribers_who_then_get_reset(self) -> None:
        hub = Hub()
        hub.load("s", [(10, "a")], base=0, origin=0, last_id=10)
        woken: list[int] = []
        sub = hub.subscribe("s", cursor=10, wake=lambda: woken.append(1))
        # The stream was replaced (a Redis that lost its data): new origin 1000.
        hub.load("s", [(1001, "new")], base=1000, origin=1000, last_id=1001)
        assert sub.overflowed and sub.closed and woken == [1] and sub.cursor == 10
        again = hub.subscribe("s", cursor=sub.cursor, wake=noop)
        assert again.reset and ids(again.drain()) == [1001]

    def test_load_validates(self) -> None:
        hub = Hub()
        with pytest.raises(ValueError):
            hub.load("s", [(5, "a"), (5, "b")], base=0, origin=0, last_id=5)
        with pytest.raises(ValueError):
            hub.load("s", [(5, "a")], base=5, origin=0, last_id=5)
        with pytest.raises(ValueError):
            hub.load("s", [(5, "a")], base=0, origin=0, last_id=4)

    def test_load_keeps_the_history_bounds_and_an_unwatched_channel(self) -> None:
        hub = Hub(Limits(hub_history_count=2))
        hub.load("s", [(1, "a"), (2, "b"), (3, "c")], base=0, origin=0, last_id=3)
        replay = hub.since("s", 0)
        assert (ids(replay.events), replay.reset) == ([2, 3], True)
        big = Hub(Limits(hub_history_bytes=4))
        big.load("s", [(1, "far too large")], base=0, origin=0, last_id=1)
        # Not kept (larger than the history's byte bound), and the channel stays: the backend follows it.
        assert big.has_channel("s") and big.since("s", 1).events == ()
        assert not big.since("s", 1).reset and big.since("s", 0).reset

    def test_drop_frees_everything_and_keeps_watched_channels(self) -> None:
        hub = Hub()
        hub.load("s", [(1, "a" * 1000), (2, "b")], base=0, origin=0, last_id=2)
        hub.load("t", [(1, "x")], base=0, origin=0, last_id=1)
        sub = hub.subscribe("t", cursor=None, wake=noop)
        charged = hub.history_footprint
        assert hub.drop("s") and not hub.has_channel("s")
        assert hub.history_footprint < charged
        assert not hub.drop("t") and hub.has_channel("t")
        assert not hub.drop("nothing")
        sub.close()
        # A channel of the same name loaded afterwards is a new one; the old one's entries do not touch it.
        hub.load("s", [(7, "c")], base=6, origin=0, last_id=7)
        for i in range(2000):
            hub.publish_at("t", 10 + i, "filler")  # pushes the dropped channel's stale entries out
        assert hub.has_channel("s") and ids(hub.since("s", 6).events) == [7]


@given(st.lists(st.integers(1, 50), min_size=0, max_size=40), st.integers(1, 8), st.data())
def test_since_matches_a_list_filter(gaps: list[int], count: int, data: st.DataObject) -> None:
    """With any increasing ids and any history bound, since(c) is the retained events after c, or a reset
    exactly when events after c were evicted (or c is ahead)."""
    hub = Hub(Limits(hub_history_count=count))
    hub.load("s", [], base=0, origin=0, last_id=0)
    published: list[int] = []
    next_id = 0
    for gap in gaps:
        next_id += gap
        hub.publish_at("s", next_id, str(next_id))
        published.append(next_id)
    retained = published[-count:]
    evicted = published[: len(published) - len(retained)]
    cursor = data.draw(st.integers(0, next_id + 3))
    replay = hub.since("s", cursor, limit=1000)
    lost = any(i > cursor for i in evicted) or cursor > next_id
    assert replay.reset == lost
    if lost:
        assert ids(replay.events) == retained
    else:
        assert ids(replay.events) == [i for i in retained if i > cursor]
