"""Fuzz target for the hub's replay and cursor logic (``rawrt.hub.Hub``), under small limits.

The input is a program: five bytes choose the limits (history count and bytes per channel, the global
budget, the queue size, the batch size), then each operation is an opcode byte and its arguments, on three
channels: publish (short or long, ASCII or not, or unencodable), subscribe (live, or with a cursor behind,
at or ahead of the channel; queued or with direct delivery), drain, ``since``, close, a congested direct
subscriber, a burst that overflows queues, and a catch-up of every subscriber. Running out of bytes reads
zeros. Invariants, checked after every operation (the contract in ``rawrt/hub/core.py``):

* every subscriber gets its channel's events in id order, each exactly once, from its starting cursor on,
  with no gap (a closed or overflowed one got a prefix and its cursor says where it stopped); at the end
  every open subscriber has everything up to the channel's last id;
* every event carries the data published with that id on that channel, and an id is never given twice on a
  channel's name (even after the hub forgot the channel);
* ``since`` never leaves a silent gap: without ``reset`` the events start right after the cursor, and a
  batch shorter than its limit ends at the channel's last id;
* memory is bounded by the budget: the hub's bookkeeping matches its channels, the charged footprint stays
  within ``hub_total_history_bytes``, the publish order carries no more stale entries than its compaction
  allows, and every channel in the table holds events or has a subscriber;
* nothing raises but ``InvalidEventError``, for data that is not encodable as UTF-8.

Run ``test_one_input`` from pytest (``tests/test_fuzz_hub.py`` replays ``fuzz/corpus/hub/`` and adds
Hypothesis inputs), or for long runs with atheris (OSS-Fuzz style)::

    python fuzz/fuzz_hub.py /tmp/hub-corpus fuzz/corpus/hub -max_total_time=600

The first directory receives the new inputs libFuzzer finds; keep the checked-in corpus small.
"""

from __future__ import annotations

import sys
from collections import Counter

from rawrt.errors import InvalidEventError
from rawrt.hub import Event, Hub, Subscription, core
from rawrt.limits import Limits

_CHANNELS = ("a", "b", "c")
#: Characters of different widths in a str (1, 1, 2 and 4 bytes) and in UTF-8 (1, 2, 3 and 4 bytes).
_CHARS = ("x", "é", "€", "\U0001f600")
#: The publish order is compacted past this many stale entries (instead of 1,024), so that short programs
#: reach the compaction too.
_COMPACT_MIN = 8


class _Input:
    """Reads the program: one byte at a time, zeros once the input is used up."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        value = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return value


class _Taker:
    """A ``deliver`` callback, as a transport writing to a socket: takes events unless congested."""

    def __init__(self, got: list[Event]) -> None:
        self.got = got
        self.accepting = True

    def __call__(self, event: Event) -> bool:
        if self.accepting:
            self.got.append(event)
        return self.accepting


class _Subscriber:
    def __init__(self, sub: Subscription, taker: _Taker | None, got: list[Event]) -> None:
        self.sub = sub
        self.taker = taker
        self.got = got
        self.start = sub.cursor


class _Run:
    def __init__(self, program: _Input) -> None:
        self.program = program
        self.limits = Limits(
            hub_history_count=program.byte() % 9,
            hub_history_bytes=1 + program.byte() * 8,
            hub_total_history_bytes=512 + program.byte() * 64,
            hub_queue_size=1 + program.byte() % 8,
            poll_max_batch=1 + program.byte() % 8,
        )
        self.hub = Hub(self.limits)
        self.subscribers: list[_Subscriber] = []
        self.published: dict[tuple[str, int], str] = {}  # (channel, id) -> data, forever

    # --- operations ---------------------------------------------------------------------------------

    def channel(self) -> str:
        return _CHANNELS[self.program.byte() % len(_CHANNELS)]

    def cursor(self, channel: str) -> int | None:
        """None (live only), a small absolute cursor, or one near the channel's last id (behind or ahead)."""
        code = self.program.byte()
        if code == 255:
            return None
        if code & 0x80:
            return code & 0x7F
        return max(0, self.hub.last_id(channel) + code % 32 - 24)

    def publish(self, channel: str, data: str) -> None:
        last = self.hub.last_id(channel)
        try:
            event = self.hub.publish(channel, data)
        except InvalidEventError:
            assert not data.isascii() and "\ud800" in data, data
            assert self.hub.last_id(channel) == last  # no id used
            return
        # The next id: after the channel's last, or after the floor for a channel the hub does not have.
        assert (event.channel, event.id, event.data) == (channel, last + 1, data)
        assert self.hub.last_id(channel) >= event.id  # (higher once forgotten, when the floor is higher)
        key = (channel, event.id)
        assert key not in self.published, f"id {event.id} given twice on channel {channel!r}"
        self.published[key] = data

    def op_publish(self) -> None:
        channel = self.channel()
        spec = self.program.byte()
        length = (spec & 0x3F) << ((spec >> 6) * 3)  # up to 63, 504, 4,032 or 32,256 characters
        kind = self.program.byte() % (len(_CHARS) + 1)
        data = "x" * length + "\ud800" if kind == len(_CHARS) else _CHARS[kind] * length
        self.publish(channel, data)

    def op_subscribe(self) -> None:
        channel = self.channel()
        cursor = self.cursor(channel)
        flags = self.program.byte()
        got: list[Event] = []
        taker = _Taker(got) if flags & 1 else None
        queue_size = None if flags & 2 else 1 + (flags >> 2) % 4
        sub = self.hub.subscribe(
            channel, cursor=cursor, wake=lambda: None, queue_size=queue_size, deliver=taker
        )
        if cursor is None:
            assert sub.cursor == self.hub.last_id(channel) and not sub.reset
        elif not sub.reset:
            assert sub.cursor == cursor
        self.subscribers.append(_Subscriber(sub, taker, got))

    def pick(self) -> _Subscriber | None:
        index = self.program.byte()
        return self.subscribers[index % len(self.subscribers)] if self.subscribers else None

    def op_drain(self) -> None:
        subscriber = self.pick()
        size = self.program.byte()
        if subscriber is not None:
            subscriber.got.extend(subscriber.sub.drain(None if size == 0 else 1 + size % 8))

    def op_since(self) -> None:
        channel = self.channel()
        cursor = self.cursor(channel)
        cursor = 0 if cursor is None else cursor
        code = self.program.byte()
        limit = None if code == 0 else code % 8
        replay = self.hub.since(channel, cursor, limit)
        last = self.hub.last_id(channel)
        want = self.limits.poll_max_batch if limit is None else limit
        events = list(replay.events)
        assert len(events) <= want
        self.check_events(channel, events)
        if not replay.reset:
            # No silent gap: right after the cursor, and a short batch ends at the channel's last id.
            assert [e.id for e in events] == list(range(cursor + 1, cursor + 1 + len(events)))
            assert cursor <= last
        else:
            # A reset only when the event after the cursor is really not there.
            assert cursor > last or not events or events[0].id > cursor + 1, (cursor, last, events)
        assert replay.cursor == (events[-1].id if events else replay.cursor)
        if len(events) < want:
            assert replay.cursor == last and not replay.more
        assert replay.more == (replay.cursor < last)

    def op_close(self) -> None:
        subscriber = self.pick()
        if subscriber is not None:
            subscriber.sub.close()

    def op_congest(self) -> None:
        subscriber = self.pick()
        if subscriber is not None and subscriber.taker is not None:
            subscriber.taker.accepting = not subscriber.taker.accepting

    def op_burst(self) -> None:
        channel = self.channel()
        for _ in range(1 + self.program.byte() % 16):
            self.publish(channel, "b")

    def op_catch_up(self) -> None:
        for subscriber in self.subscribers:
            while batch := subscriber.sub.drain():
                subscriber.got.extend(batch)

    # --- invariants ---------------------------------------------------------------------------------

    def check_events(self, channel: str, events: list[Event]) -> None:
        for event in events:
            assert event.channel == channel
            assert self.published[(channel, event.id)] == event.data, event

    def check(self) -> None:
        for subscriber in self.subscribers:
            sub, got = subscriber.sub, subscriber.got
            self.check_events(sub.channel, got)
            start = subscriber.start
            # In id order, each once, no gap, from the starting cursor on.
            assert [e.id for e in got] == list(range(start + 1, start + 1 + len(got))), (start, got)
            if sub.closed:
                assert sub.cursor == (got[-1].id if got else start)
        self.check_memory()

    def check_memory(self) -> None:
        hub = self.hub
        charged = 0
        for name, chan in hub._channels.items():
            history = chan.history
            if history:
                assert history[-1].id == chan.last_id and history[0].id == chan.last_id - len(history) + 1
            assert len(history) <= self.limits.hub_history_count
            assert (
                chan.history_bytes == sum(len(e.data_bytes) for e in history) <= self.limits.hub_history_bytes
            )
            charged += sum(e.footprint for e in history)
            if history or chan.stale:
                charged += chan.cost
            else:
                assert chan.subscribers, f"channel {name!r} kept with nothing retained and nobody listening"
        assert hub.history_footprint == charged <= self.limits.hub_total_history_bytes
        entries = Counter(id(chan) for chan in hub._order)
        for chan in hub._channels.values():
            assert entries.pop(id(chan), 0) == len(chan.history) + chan.stale
        assert not entries, "publish-order entries for a forgotten channel"
        live = len(hub._order) - hub._stale
        assert hub._stale <= max(_COMPACT_MIN, 4 * live) + 1

    def finish(self) -> None:
        self.op_catch_up()
        self.check()
        for subscriber in self.subscribers:
            if not subscriber.sub.closed:
                last = self.hub.last_id(subscriber.sub.channel)
                assert subscriber.sub.cursor == last
                assert [e.id for e in subscriber.got][-1:] == ([last] if last > subscriber.start else [])


_OPS = (
    _Run.op_publish,
    _Run.op_subscribe,
    _Run.op_drain,
    _Run.op_since,
    _Run.op_close,
    _Run.op_congest,
    _Run.op_burst,
    _Run.op_catch_up,
)


def test_one_input(data: bytes) -> None:
    """Run ``data`` as a program of hub operations; every invariant holds after each one."""
    saved, core._COMPACT_MIN = core._COMPACT_MIN, _COMPACT_MIN
    try:
        program = _Input(data)
        run = _Run(program)
        while program.more():
            _OPS[program.byte() % len(_OPS)](run)
            run.check()
        run.finish()
    finally:
        core._COMPACT_MIN = saved


def main(argv: list[str]) -> None:  # pragma: no cover - needs atheris, run by hand or by OSS-Fuzz
    import atheris

    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
