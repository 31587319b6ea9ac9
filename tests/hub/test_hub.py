"""Tests for rawrt.hub: ids, history, replay and the reset signal, fan-out, overflow, memory.

Test classes follow the sections of the contract in the ``rawrt/hub/core.py`` module docstring.
"""

from __future__ import annotations

import gc
import logging
import tracemalloc
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawrt.errors import InvalidEventError
from rawrt.hub import Event, EventMemo, Hub, Replay, Subscription, parse_cursor
from rawrt.limits import Limits


class Waker:
    """A wake callback that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def noop() -> None:
    pass


class Taker:
    """A ``deliver`` callback: takes events while ``accepting`` (appending their ids to ``into``)."""

    def __init__(self, into: list[int] | None = None, accepting: bool = True) -> None:
        self.into: list[int] = [] if into is None else into
        self.accepting = accepting
        self.offers = 0

    def __call__(self, event: Event) -> bool:
        self.offers += 1
        if self.accepting:
            self.into.append(event.id)
        return self.accepting


def ids(events: object) -> list[int]:
    assert isinstance(events, list | tuple)
    return [event.id for event in events]


def small(**kwargs: int) -> Hub:
    return Hub(Limits(**kwargs))


class TestIds:
    """Contract, "Ids": 1, 2, 3, ... per channel, in publish order."""

    def test_start_at_one_and_increase(self) -> None:
        hub = Hub()
        assert [hub.publish("a", str(i)).id for i in range(5)] == [1, 2, 3, 4, 5]
        assert hub.last_id("a") == 5

    def test_per_channel(self) -> None:
        hub = Hub()
        hub.publish("a", "x")
        hub.publish("a", "x")
        assert hub.publish("b", "x").id == 1
        assert (hub.last_id("a"), hub.last_id("b"), hub.last_id("never")) == (2, 1, 0)

    def test_event_fields(self) -> None:
        event = Hub().publish("room", "héllo")
        assert (event.channel, event.id, event.data, event.data_bytes) == (
            "room",
            1,
            "héllo",
            "héllo".encode(),
        )

    def test_unencodable_data_refused_without_using_an_id(self) -> None:
        hub = Hub()
        with pytest.raises(InvalidEventError, match="UTF-8"):
            hub.publish("a", "\udc80")
        assert hub.last_id("a") == 0
        assert hub.publish("a", "ok").id == 1


class TestParseCursor:
    """``parse_cursor``: client text to a cursor, or None."""

    @pytest.mark.parametrize(
        ("text", "cursor"), [("0", 0), ("42", 42), ("007", 7), ("9" * 19, int("9" * 19))]
    )
    def test_valid(self, text: str, cursor: int) -> None:
        assert parse_cursor(text) == cursor

    @pytest.mark.parametrize("text", ["", "-1", "+1", " 1", "1 ", "1.0", "0x1", "\u0663", "\u00b2", "9" * 20])
    def test_invalid(self, text: str) -> None:
        assert parse_cursor(text) is None


class TestEvent:
    """Contract, "Cost": an event is immutable and carries no wire form (the transports encode it)."""

    def test_frozen_and_compared_on_its_fields(self) -> None:
        event = Hub().publish("a", "x")
        with pytest.raises(FrozenInstanceError):
            event.data = "y"  # type: ignore[misc]
        twin = Event("a", 1, "x", b"x")
        assert event == twin
        assert repr(event) == "Event(channel='a', id=1, data='x')"

    def test_no_wire_forms(self) -> None:
        # SSE bytes, HTTP chunks, JSON: the transports' (rawrt.sse.event_bytes, rawrt.polling.event_json).
        assert Event.__slots__ == ("channel", "id", "data", "data_bytes", "footprint")


class TestHistory:
    """Contract, "History": the newest events, bounded by count and by UTF-8 bytes, oldest evicted first."""

    def test_count_bound(self) -> None:
        hub = small(hub_history_count=3)
        for i in range(5):
            hub.publish("a", str(i))
        replay = hub.since("a", 2)
        assert ids(replay.events) == [3, 4, 5]
        assert not replay.reset

    def test_byte_bound_counts_utf8(self) -> None:
        hub = small(hub_history_bytes=6)
        hub.publish("a", "é")  # 2 bytes
        hub.publish("a", "éé")  # 4 bytes: 6 in all, still fits
        assert ids(hub.since("a", 0).events) == [1, 2]
        hub.publish("a", "x")  # 7 bytes: the oldest goes
        assert ids(hub.since("a", 1).events) == [2, 3]

    def test_event_larger_than_byte_bound_is_not_kept(self) -> None:
        hub = small(hub_history_bytes=4)
        hub.publish("a", "ok")
        big = hub.publish("a", "too big")
        assert big.id == 2
        replay = hub.since("a", 1)
        assert (replay.events, replay.reset, replay.cursor) == ((), True, 2)
        assert hub.since("a", 2) == Replay((), 2, False, False)
        hub.publish("a", "ok")
        assert ids(hub.since("a", 2).events) == [3]


class TestReplay:
    """Contract, "Gap signal": ``since`` returns what follows a cursor, or says ``reset``."""

    @pytest.fixture
    def hub(self) -> Hub:
        hub = small(hub_history_count=5, poll_max_batch=3)
        for i in range(1, 9):
            hub.publish("a", f"e{i}")
        return hub  # retains 4..8

    def test_after_cursor(self, hub: Hub) -> None:
        assert hub.since("a", 6) == Replay(tuple(hub.since("a", 3, 10).events[3:]), 8, False, False)
        assert ids(hub.since("a", 6).events) == [7, 8]

    def test_cursor_just_before_history_is_no_gap(self, hub: Hub) -> None:
        replay = hub.since("a", 3, 10)
        assert (ids(replay.events), replay.cursor, replay.reset, replay.more) == (
            [4, 5, 6, 7, 8],
            8,
            False,
            False,
        )

    def test_limit_and_more(self, hub: Hub) -> None:
        replay = hub.since("a", 3, 2)
        assert (ids(replay.events), replay.cursor, replay.more) == ([4, 5], 5, True)
        replay = hub.since("a", replay.cursor, 2)
        assert (ids(replay.events), replay.cursor, replay.more) == ([6, 7], 7, True)

    def test_default_limit_is_poll_max_batch(self, hub: Hub) -> None:
        assert ids(hub.since("a", 3).events) == [4, 5, 6]

    def test_limit_zero(self, hub: Hub) -> None:
        assert hub.since("a", 3, 0) == Replay((), 3, False, True)

    def test_up_to_date(self, hub: Hub) -> None:
        assert hub.since("a", 8) == Replay((), 8, False, False)

    @pytest.mark.parametrize("cursor", [0, 1, 2])
    def test_gap_is_reset_from_oldest(self, hub: Hub, cursor: int) -> None:
        replay = hub.since("a", cursor, 10)
        assert (ids(replay.events), replay.cursor, replay.reset) == ([4, 5, 6, 7, 8], 8, True)

    @pytest.mark.parametrize("cursor", [9, 1000])
    def test_cursor_ahead_is_reset_from_oldest(self, hub: Hub, cursor: int) -> None:
        replay = hub.since("a", cursor, 2)
        assert (ids(replay.events), replay.cursor, replay.reset, replay.more) == ([4, 5], 5, True, True)

    def test_unknown_channel(self) -> None:
        hub = Hub()
        assert hub.since("nope", 0) == Replay((), 0, False, False)
        assert hub.since("nope", 5) == Replay((), 0, True, False)
        assert hub.subscriber_count("nope") == 0

    def test_negative_arguments(self, hub: Hub) -> None:
        with pytest.raises(ValueError, match="cursor"):
            hub.since("a", -1)
        with pytest.raises(ValueError, match="limit"):
            hub.since("a", 0, -1)

    @given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 50))
    def test_matches_naive_model(self, published: int, cursor: int, limit: int) -> None:
        # Exercises both deque walks (from the left and from the right) against a plain list.
        hub = small(hub_history_count=20)
        for i in range(published):
            hub.publish("a", str(i))
        retained = list(range(max(1, published - 19), published + 1))
        first = retained[0] if published else 1
        reset = cursor < first - 1 or cursor > published
        start = first - 1 if reset else cursor
        want = [i for i in retained if i > start][:limit]
        replay = hub.since("a", cursor, limit)
        assert ids(replay.events) == want
        assert replay.reset == reset
        assert replay.cursor == (want[-1] if want else start)
        assert replay.more == (replay.cursor < published)


class TestSubscribe:
    """Contract, "Ordering": replay then live, atomically, with no loss and no duplicate."""

    def test_live_only(self) -> None:
        hub = Hub()
        hub.publish("a", "old")
        sub = hub.subscribe("a", cursor=None, wake=noop)
        assert (sub.cursor, sub.ready, sub.drain()) == (1, False, [])
        hub.publish("a", "new")
        assert ids(sub.drain()) == [2]
        assert sub.cursor == 2

    def test_replay_then_live(self) -> None:
        hub = Hub()
        for i in range(3):
            hub.publish("a", str(i))
        sub = hub.subscribe("a", cursor=1, wake=noop)
        # Published between subscribe and the first drain: after the replay, exactly once.
        hub.publish("a", "3")
        hub.publish("a", "4")
        assert sub.ready
        assert ids(sub.drain()) == [2, 3, 4, 5]
        assert not sub.reset

    def test_drain_in_small_batches_across_the_boundary(self) -> None:
        hub = Hub()
        for i in range(5):
            hub.publish("a", str(i))
        sub = hub.subscribe("a", cursor=2, wake=noop)
        for i in range(3):
            hub.publish("a", str(i))
        got: list[int] = []
        while batch := sub.drain(2):
            assert len(batch) <= 2
            got += ids(batch)
            assert sub.cursor == got[-1]
        assert got == [3, 4, 5, 6, 7, 8]

    def test_drain_zero(self) -> None:
        hub = Hub()
        hub.publish("a", "x")
        sub = hub.subscribe("a", cursor=0, wake=noop)
        hub.publish("a", "y")
        assert sub.drain(0) == []
        assert ids(sub.drain(1)) == [1]
        assert sub.drain(0) == []
        assert ids(sub.drain()) == [2]

    def test_default_batch_is_poll_max_batch(self) -> None:
        hub = small(poll_max_batch=2)
        for i in range(3):
            hub.publish("a", str(i))
        sub = hub.subscribe("a", cursor=0, wake=noop)
        assert ids(sub.drain()) == [1, 2]

    def test_cursor_zero_on_new_channel(self) -> None:
        hub = Hub()
        sub = hub.subscribe("a", cursor=0, wake=noop)
        assert (sub.reset, sub.cursor, sub.drain()) == (False, 0, [])
        hub.publish("a", "x")
        assert ids(sub.drain()) == [1]

    @pytest.mark.parametrize(("cursor", "first"), [(0, 3), (1, 3), (99, 3)])
    def test_reset_at_subscribe(self, cursor: int, first: int) -> None:
        hub = small(hub_history_count=3)
        for i in range(5):
            hub.publish("a", str(i))
        sub = hub.subscribe("a", cursor=cursor, wake=noop)
        assert sub.reset
        assert sub.cursor == first - 1
        assert ids(sub.drain()) == [3, 4, 5]

    def test_ahead_on_unknown_channel(self) -> None:
        sub = Hub().subscribe("fresh", cursor=12, wake=noop)
        assert (sub.reset, sub.cursor) == (True, 0)

    def test_wake_on_empty_to_non_empty_only(self) -> None:
        hub = Hub()
        hub.publish("a", "x")
        waker = Waker()
        sub = hub.subscribe("a", cursor=0, wake=waker)
        assert waker.calls == 0  # not for the replay: the transport drains right after subscribing
        hub.publish("a", "1")
        hub.publish("a", "2")
        assert waker.calls == 1
        assert ids(sub.drain()) == [1, 2, 3]
        hub.publish("a", "3")
        assert waker.calls == 2
        assert sub.ready

    def test_partial_drain_does_not_rewake(self) -> None:
        hub = Hub()
        waker = Waker()
        sub = hub.subscribe("a", cursor=None, wake=waker)
        hub.publish("a", "1")
        hub.publish("a", "2")
        assert ids(sub.drain(1)) == [1]
        hub.publish("a", "3")
        assert waker.calls == 1  # still non-empty: the transport keeps draining until []
        assert ids(sub.drain()) == [2, 3]

    def test_bad_arguments(self) -> None:
        hub = Hub()
        with pytest.raises(ValueError, match="cursor"):
            hub.subscribe("a", cursor=-1, wake=noop)
        with pytest.raises(ValueError, match="queue_size"):
            hub.subscribe("a", cursor=None, wake=noop, queue_size=0)
        assert hub.subscriber_count("a") == 0

    def test_fan_out_shares_one_event(self) -> None:
        hub = Hub()
        subs = [hub.subscribe("a", cursor=None, wake=noop) for _ in range(1000)]
        event = hub.publish("a", "x")
        batches = [sub.drain() for sub in subs]
        assert all(batch == [event] and batch[0] is event for batch in batches)
        encoded: list[Event] = []

        def encode(e: Event) -> bytes:
            encoded.append(e)
            return e.data_bytes + b"\n"

        memo = EventMemo(encode)
        assert len({id(memo.get(batch[0])) for batch in batches}) == 1
        assert encoded == [event]

    def test_repr(self) -> None:
        hub = small(hub_queue_size=1)
        sub = hub.subscribe("a", cursor=None, wake=noop)
        hub.publish("a", "x")
        assert repr(sub) == "<Subscription 'a' cursor=0 queued=1 open>"
        hub.publish("a", "x")
        assert repr(sub) == "<Subscription 'a' cursor=0 queued=0 overflowed>"
        sub2 = hub.subscribe("a", cursor=None, wake=noop)
        sub2.close()
        assert repr(sub2) == "<Subscription 'a' cursor=2 queued=0 closed>"


class TestOverflow:
    """Contract, "Overflow": a full queue disconnects the subscriber with its cursor; never a silent skip."""

    def test_full_queue_overflows(self) -> None:
        hub = small(hub_queue_size=2)
        waker = Waker()
        slow = hub.subscribe("a", cursor=None, wake=waker)
        fast = hub.subscribe("a", cursor=None, wake=noop, queue_size=10)
        hub.publish("a", "1")
        assert ids(slow.drain(1)) == [1]
        hub.publish("a", "2")
        hub.publish("a", "3")
        assert not slow.overflowed
        assert ids(fast.drain()) == [1, 2, 3]
        hub.publish("a", "4")  # slow holds 2 and 3: full
        assert slow.overflowed and slow.closed
        assert waker.calls == 3  # events 1 and 2 (each into an empty queue), then the overflow
        assert slow.cursor == 1  # the last event it was given
        assert (slow.drain(), slow.ready) == ([], False)
        assert hub.subscriber_count("a") == 1
        assert ids(fast.drain()) == [4]
        # The client resumes from its cursor and loses nothing.
        resumed = hub.subscribe("a", cursor=slow.cursor, wake=noop)
        assert ids(resumed.drain()) == [2, 3, 4]

    def test_per_subscription_queue_size(self) -> None:
        hub = Hub()
        sub = hub.subscribe("a", cursor=None, wake=noop, queue_size=1)
        hub.publish("a", "1")
        hub.publish("a", "2")
        assert sub.overflowed

    def test_replay_is_not_limited_by_queue_size(self) -> None:
        hub = small(hub_queue_size=2)
        for i in range(10):
            hub.publish("a", str(i))
        sub = hub.subscribe("a", cursor=0, wake=noop)
        hub.publish("a", "live")
        assert ids(sub.drain()) == list(range(1, 12))
        assert not sub.overflowed

    def test_history_evicted_while_replaying(self) -> None:
        hub = small(hub_history_count=4, hub_queue_size=100)
        for i in range(4):
            hub.publish("a", str(i))
        sub = hub.subscribe("a", cursor=0, wake=noop)
        assert ids(sub.drain(1)) == [1]
        for i in range(3):
            hub.publish("a", str(i))  # evicts 2 and 3 before the subscriber read them
        assert sub.drain() == []
        assert sub.overflowed and sub.cursor == 1
        assert hub.subscriber_count("a") == 0
        assert hub.since("a", sub.cursor).reset

    def test_close_after_overflow_is_harmless(self) -> None:
        hub = small(hub_queue_size=1)
        sub = hub.subscribe("a", cursor=None, wake=noop)
        hub.publish("a", "1")
        hub.publish("a", "2")
        sub.close()
        sub.close()
        assert hub.subscriber_count("a") == 0


class TestClose:
    """A client that goes away frees its subscription at once."""

    def test_close_removes_immediately(self) -> None:
        hub = Hub()
        hub.publish("a", "x")
        sub = hub.subscribe("a", cursor=0, wake=noop)
        assert hub.subscriber_count("a") == 1
        sub.close()
        assert sub.closed and not sub.overflowed
        assert hub.subscriber_count("a") == 0
        assert (sub.drain(), sub.ready) == ([], False)
        hub.publish("a", "y")
        assert sub.drain() == []
        sub.close()

    def test_unused_channel_is_forgotten(self) -> None:
        hub = Hub()
        subs = [hub.subscribe(f"made-up-{i}", cursor=None, wake=noop) for i in range(100)]
        for sub in subs:
            sub.close()
        assert hub._channels == {}

    def test_channel_with_events_is_kept(self) -> None:
        hub = Hub()
        hub.subscribe("a", cursor=None, wake=noop).close()
        hub.publish("a", "x")
        hub.subscribe("a", cursor=None, wake=noop).close()
        assert hub.last_id("a") == 1
        assert hub.publish("a", "y").id == 2


class TestReentrancy:
    """Wakes run after the event is in every queue: a wake may publish, close, or even fail."""

    def test_wake_that_publishes_keeps_order(self) -> None:
        hub = Hub()
        published = False

        def echo() -> None:
            nonlocal published
            if not published:
                published = True
                hub.publish("a", "echo")

        first = hub.subscribe("a", cursor=None, wake=echo)
        second = hub.subscribe("a", cursor=None, wake=noop)
        hub.publish("a", "original")
        assert ids(first.drain()) == [1, 2]
        assert ids(second.drain()) == [1, 2]

    def test_wake_that_closes_another(self) -> None:
        hub = Hub()
        victim: list[Subscription] = []
        first = hub.subscribe("a", cursor=None, wake=lambda: victim[0].close())
        victim.append(hub.subscribe("a", cursor=None, wake=noop))
        hub.publish("a", "x")
        assert ids(first.drain()) == [1]
        assert victim[0].closed and victim[0].drain() == []

    def test_failing_wake_is_logged_and_fan_out_goes_on(self, caplog: pytest.LogCaptureFixture) -> None:
        hub = Hub()

        def broken() -> None:
            raise RuntimeError("transport bug")

        hub.subscribe("a", cursor=None, wake=broken)
        waker = Waker()
        other = hub.subscribe("a", cursor=None, wake=waker)
        with caplog.at_level(logging.ERROR, logger="rawrt.hub"):
            event = hub.publish("a", "x")
        assert event.id == 1 and waker.calls == 1 and other.drain() == [event]
        assert "wake callback of a subscription to 'a' failed" in caplog.text


class TestDirectDelivery:
    """Contract, "Direct delivery": a caught-up subscriber's ``deliver`` takes events inside ``publish``."""

    def test_caught_up_subscriber_takes_events_without_queue_or_wake(self) -> None:
        hub = Hub()
        waker, taker = Waker(), Taker()
        sub = hub.subscribe("a", cursor=None, wake=waker, deliver=taker)
        for data in "xyz":
            hub.publish("a", data)
        assert taker.into == [1, 2, 3] and sub.cursor == 3
        assert waker.calls == 0 and not sub.ready and sub.drain() == []

    def test_declined_event_is_queued_and_later_ones_wait_behind_it(self) -> None:
        hub = Hub()
        waker, taker = Waker(), Taker()
        sub = hub.subscribe("a", cursor=None, wake=waker, deliver=taker)
        hub.publish("a", "1")
        taker.accepting = False  # the client is congested
        hub.publish("a", "2")
        assert waker.calls == 1 and sub.cursor == 1
        taker.accepting = True
        hub.publish("a", "3")  # not offered: event 2 is queued ahead of it
        assert taker.into == [1] and taker.offers == 2 and waker.calls == 1
        assert ids(sub.drain()) == [2, 3] and sub.cursor == 3
        hub.publish("a", "4")  # caught up again
        assert taker.into == [1, 4] and sub.cursor == 4 and waker.calls == 1

    def test_not_offered_while_replaying(self) -> None:
        hub = Hub()
        for data in "abc":
            hub.publish("a", data)
        waker, taker = Waker(), Taker()
        sub = hub.subscribe("a", cursor=0, wake=waker, deliver=taker)
        hub.publish("a", "d")  # the replay (1..3) is still unread: queued behind it
        assert taker.offers == 0 and waker.calls == 1
        assert ids(sub.drain(2)) == [1, 2]
        hub.publish("a", "e")
        assert taker.offers == 0
        assert ids(sub.drain()) == [3, 4, 5]
        hub.publish("a", "f")
        assert taker.into == [6] and sub.cursor == 6

    def test_a_subscriber_that_keeps_declining_overflows(self) -> None:
        hub = small(hub_queue_size=2)
        waker, taker = Waker(), Taker(accepting=False)
        sub = hub.subscribe("a", cursor=None, wake=waker, deliver=taker)
        for data in "xyz":
            hub.publish("a", data)
        assert sub.overflowed and sub.cursor == 0 and hub.subscriber_count("a") == 0
        assert taker.into == [] and taker.offers == 1  # offered while caught up only

    def test_deliver_that_publishes_is_not_supported_but_wake_is(self) -> None:
        # A wake that publishes runs after every subscriber got the event, direct or queued: order holds.
        hub = Hub()
        published = False

        def echo() -> None:
            nonlocal published
            if not published:
                published = True
                hub.publish("a", "echo")

        first = hub.subscribe("a", cursor=None, wake=echo)
        taker = Taker()
        hub.subscribe("a", cursor=None, wake=noop, deliver=taker)
        hub.publish("a", "original")
        assert ids(first.drain()) == [1, 2] and taker.into == [1, 2]

    def test_failing_deliver_is_logged_and_the_event_queued(self, caplog: pytest.LogCaptureFixture) -> None:
        hub = Hub()

        def broken(event: Event) -> bool:
            raise RuntimeError("transport bug")

        waker = Waker()
        sub = hub.subscribe("a", cursor=None, wake=waker, deliver=broken)
        taker = Taker()
        hub.subscribe("a", cursor=None, wake=noop, deliver=taker)
        with caplog.at_level(logging.ERROR, logger="rawrt.hub"):
            event = hub.publish("a", "x")
        assert waker.calls == 1 and sub.drain() == [event] and taker.into == [1]
        assert "deliver callback of a subscription to 'a' failed" in caplog.text


class TestProperties:
    """Hypothesis: any interleaving of publish/subscribe/drain/close keeps every subscriber's stream exact."""

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just("publish"), st.integers(0, 2)),
                st.tuples(st.just("subscribe"), st.none() | st.integers(0, 30)),
                st.tuples(st.just("direct"), st.none() | st.integers(0, 30)),
                st.tuples(st.just("toggle"), st.integers(0, 10)),
                st.tuples(st.just("drain"), st.integers(0, 5)),
                st.tuples(st.just("close"), st.integers(0, 10)),
            ),
            max_size=80,
        )
    )
    def test_streams_are_exact(self, ops: list[tuple[str, int | None]]) -> None:
        hub = small(hub_history_count=6, hub_queue_size=3, poll_max_batch=4)
        subs: list[tuple[Subscription, list[int], int]] = []  # subscription, ids received, start cursor
        # "direct" subscribers also take events through deliver (into the same list), while accepting.
        takers: list[Taker] = []
        for op, arg in ops:
            if op == "publish":
                assert arg is not None
                for _ in range(arg + 1):
                    hub.publish("c", "x")
            elif op in ("subscribe", "direct"):
                got: list[int] = []
                taker = None
                if op == "direct":
                    taker = Taker(got)
                    takers.append(taker)
                sub = hub.subscribe("c", cursor=arg, wake=noop, deliver=taker)
                if arg is not None and not sub.reset:
                    assert sub.cursor == arg
                subs.append((sub, got, sub.cursor))
            elif op == "toggle" and takers:
                assert arg is not None
                taker = takers[arg % len(takers)]
                taker.accepting = not taker.accepting
            elif op == "drain" and subs:
                assert arg is not None
                sub, got, _ = subs[arg % len(subs)]
                got.extend(ids(sub.drain()))
            elif op == "close" and subs:
                assert arg is not None
                subs[arg % len(subs)][0].close()
        last = hub.last_id("c")
        for sub, got, start in subs:
            while batch := sub.drain():
                got.extend(ids(batch))
            if not sub.closed:
                # An open subscriber ends up with everything, in order, each exactly once.
                assert got == list(range(start + 1, last + 1))
            else:
                # A closed or overflowed one got an exact prefix, and its cursor says where it stopped.
                assert got == list(range(start + 1, start + 1 + len(got)))
                assert sub.cursor == (got[-1] if got else start)
                assert sub.drain() == []


class TestMemory:
    """Contract, "Cost": 10,000 held long-poll requests must be cheap."""

    def measure(self, hub: Hub, count: int, *, own_wake: bool) -> float:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            subs = [
                hub.subscribe("waiters", cursor=hub.last_id("waiters"), wake=Waker() if own_wake else noop)
                for _ in range(count)
            ]
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert len(subs) == count
        return (after - before) / count

    def test_ten_thousand_waiters(self, capsys: pytest.CaptureFixture[str]) -> None:
        hub = Hub()
        hub.publish("waiters", "x")
        bare = self.measure(hub, 10_000, own_wake=False)
        with_wake = self.measure(Hub(), 10_000, own_wake=True)
        with capsys.disabled():
            print(f"\nhub: {bare:.0f} B per held subscription ({with_wake:.0f} B with its own wake object)")
        assert bare < 2048
        assert with_wake < 2048

    def test_queue_freed_on_close(self) -> None:
        hub = Hub()
        sub = hub.subscribe("a", cursor=None, wake=noop)
        hub.publish("a", "x")
        assert sub._queue is not None
        sub.close()
        assert sub._queue is None
