"""Tests for rawrt.hub.memo: a transport's wire form of an event, computed once and shared by all clients."""

from __future__ import annotations

import gc
import tracemalloc

from rawrt.hub import Event, EventMemo, Hub
from rawrt.limits import Limits


class Encoder:
    """A ``derive`` that records the events it was called for."""

    def __init__(self) -> None:
        self.calls: list[Event] = []

    def __call__(self, event: Event) -> bytes:
        self.calls.append(event)
        return b"<" + event.data_bytes + b">"


class TestOncePerEvent:
    def test_fan_out_gets_the_same_object(self) -> None:
        # One publish, every subscriber asks in turn: the form is computed once, and it is the same object
        # each time (the server's push frames an identical object only once).
        encoder = Encoder()
        memo = EventMemo(encoder)
        event = Hub().publish("a", "x")
        forms = [memo.get(event) for _ in range(1000)]
        assert forms[0] == b"<x>"
        assert all(form is forms[0] for form in forms)
        assert encoder.calls == [event]

    def test_replays_of_overlapping_ranges_share_the_forms(self) -> None:
        encoder = Encoder()
        memo = EventMemo(encoder)
        hub = Hub()
        for i in range(10):
            hub.publish("a", str(i))
        first = [memo.get(e) for e in hub.since("a", 0).events]
        again = [memo.get(e) for e in hub.since("a", 5).events]
        assert all(a is b for a, b in zip(first[5:], again, strict=True))
        assert len(encoder.calls) == 10
        assert len(memo) == 10

    def test_identity_not_equality(self) -> None:
        # Two hubs both have event 1 of channel "a" with the same data: equal, yet distinct events.
        encoder = Encoder()
        memo = EventMemo(encoder)
        one, two = Hub().publish("a", "x"), Hub().publish("a", "x")
        assert one == two
        memo.get(one)
        memo.get(two)
        memo.get(one)
        assert encoder.calls == [one, two]


class TestBounds:
    def test_count_bound_starts_afresh(self) -> None:
        encoder = Encoder()
        memo = EventMemo(encoder, max_events=3)
        hub = Hub()
        events = [hub.publish("a", str(i)) for i in range(4)]
        for event in events:
            memo.get(event)
        assert len(memo) == 1  # the fourth found the memo full: only it is kept
        memo.get(events[3])
        memo.get(events[0])
        assert encoder.calls == [*events, events[0]]

    def test_size_bound_counts_forms_and_their_events(self) -> None:
        encoder = Encoder()
        hub = Hub()
        a, b = hub.publish("a", "0123"), hub.publish("a", "4567")
        one = len(b"<0123>") + a.footprint  # the form, and the event it keeps alive
        memo = EventMemo(encoder, max_size=one + one // 2)  # one fits, two do not
        memo.get(a)
        memo.get(b)
        assert len(memo) == 1
        memo.get(a)
        assert encoder.calls == [a, b, a]

    def test_an_event_footprint_alone_can_exceed_the_bound(self) -> None:
        encoder = Encoder()
        event = Hub().publish("a", "x" * 100)
        memo = EventMemo(encoder, max_size=len(b"<>") + 100 + event.footprint - 1)
        memo.get(event)
        assert len(memo) == 0

    def test_form_larger_than_the_bound_is_only_the_last(self) -> None:
        encoder = Encoder()
        memo = EventMemo(encoder, max_size=4)
        event = Hub().publish("a", "too large")
        form = memo.get(event)
        assert len(memo) == 0
        assert memo.get(event) is form  # still shared by a fan-out
        assert encoder.calls == [event]


class TestEvictedEvents:
    """A memo cannot keep what the hub evicted alive past its own bound (module docstring)."""

    def test_memory_bounded_by_max_size_after_the_hub_evicted_everything(self) -> None:
        max_size = 256 * 1024
        memo = EventMemo(lambda event: b"data: " + event.data_bytes, max_size=max_size)
        hub = Hub(Limits(hub_total_history_bytes=64 * 1024))
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(200):
                memo.get(hub.publish(f"c{i % 7}", "x" * 20_000))  # 4 MB published, the hub keeps 64 KiB
            # The peak: the memo starts afresh when full, so what it holds at the end depends on the count.
            held = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert hub.history_footprint <= 64 * 1024
        # The hub's budget, the memo's bound, and the last event with its form (about 60 KB).
        assert held < 64 * 1024 + max_size + 64 * 1024, held
