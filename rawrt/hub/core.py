"""The pub/sub hub that feeds every transport: short polling, long polling, SSE and WebSocket.

A synchronous, deterministic core: no asyncio, no clock, no threads, and no wire format (no HTTP, SSE or
JSON: each transport encodes the events itself, see "Cost"). The asyncio transports wrap it; they are woken
through a plain callback, so the hub never awaits anyone and tests drive it with a list.

Contract
--------
Ids. Each channel's events have increasing integer ids, in publish order. That id is the *cursor* all four
transports share: the SSE ``id:`` field (sent back as ``Last-Event-ID``), the WebSocket message's ``id``,
the long-poll ``cursor`` parameter. A cursor ``c`` means "I have every event up to ``c``", so a client can
switch technique, or reconnect, and resume with nothing lost or repeated.

* Start ids. ``Hub(start=S)`` counts every channel on from ``S``: its events are ``S + 1``, ``S + 2``, ...
  (``start=0``, the default, gives 1, 2, 3). A server passes ``S`` = :func:`rawrt.hub.ids.start_id` of its
  start time (``ms * 1024``: :class:`~rawrt.hub.backends.MemoryBackend`), so a run that starts later starts
  above every id an earlier run handed out. The hub keeps nothing on disk, so a cursor from an earlier run
  is then always *older* than the new history and gets ``reset`` ("Gap signal"). With ids restarting at 1
  it would eventually fall inside the new run's range and silently skip events.
* Non-contiguous ids. A channel that copies a stream kept elsewhere (:meth:`Hub.load`,
  :meth:`Hub.publish_at`: a Redis stream, whose entry id ``ms-seq`` maps to ``ms * 1024 + seq``) has ids
  with holes. So nothing here assumes ``id + 1``: each channel keeps ``base``, the position its retained
  history follows without a gap (the id of the newest event it evicted, or where it started), and
  ``origin``, what cursor 0 stands for. ``_Channel.locate`` finds where a replay after a cursor starts, by
  arithmetic when the retained ids happen to be contiguous (the memory hub's), by bisection otherwise. A
  cursor between two ids means "I have everything up to here", and the replay starts at the next id.
* Cursor 0 means "from the channel's start" (``origin``: the hub's ``start``, or where the copied stream
  began). It replays from the oldest retained event, and it gets ``reset`` once events after the origin
  have been evicted ("Gap signal").

A channel created after the hub forgot others starts after their highest id instead (see "Forgetting
channels").

History. Each channel keeps its newest events for replay, at most ``Limits.hub_history_count`` of them and
``Limits.hub_history_bytes`` bytes of data (UTF-8), evicting the oldest first. The byte bound is strict: an
event larger than it on its own is delivered live but not kept (the channel's older events go with it: the
history always ends at the newest id), and a replay that needs it reports a reset.

The budget. Anyone may publish, on any number of channels, so the sum needs its own bound:
``Limits.hub_total_history_bytes`` caps the memory the whole hub's history holds. Each retained event is
charged its footprint (:attr:`Event.footprint`: its text, its UTF-8 copy and the objects around them, as
``sys.getsizeof`` counts them, a little above what tracemalloc measures), and each channel that retains
events its table entry (its name, its empty history and subscriber table: about 1 KiB). Past the budget the
oldest events *of any channel*, in publish order, are evicted until it holds again: the hub keeps one
publish-order queue of channels for that, so a publish costs O(1) amortised more, whatever the number of
channels. Those evictions are like any other: a cursor from before them gets ``reset``. An event whose
footprint alone is over the budget is delivered live but not kept, as above.

Forgetting channels. A channel with no subscriber and no retained event is forgotten, table entry and all, so
one-event channels whose events the budget evicted cost nothing once they are gone, and the channel table is
bounded by the budget (retained channels) plus the subscriptions (the others). (A channel whose events its
own bounds evicted still has their entries in the publish order: it stays, charged, until they are dropped,
at the head of the queue or by the next compaction.) Its ids must still never be reused for different
events: the hub remembers the highest id any forgotten channel reached (one number, the *floor*), and a
channel created afterwards starts counting after it. A client coming back to a forgotten channel with
cursor ``c`` (at most that channel's last id, so at most the floor) therefore sees its cursor older than the
new channel's history, and gets ``reset``; unless ``c`` is the floor itself, which means it had every event
up to it, and then nothing is missing. The price is a reset where none was needed: a cursor of 0, or one
from a channel forgotten before the floor last rose, is reported as a gap on a new channel. Until a
channel with events is forgotten the floor is ``start`` and ids start at ``start + 1``; :meth:`Hub.last_id`
and :meth:`Hub.since` answer for a channel the hub does not have as for an empty channel at the floor.

Gap signal, never a silent gap. A replay (:meth:`Hub.since`, or :meth:`Hub.subscribe` with a cursor) whose
cursor can no longer be honoured says so with ``reset=True`` and starts from the oldest retained event:

* the cursor is older than the history (``cursor < base``): events were evicted, or the cursor comes from
  an earlier run of the server (start ids put it below this run's history), or from a stream that was
  replaced (a Redis that lost its data starts the stream again at a later origin);
* the cursor is ahead of the channel (``cursor > last id``): it was made up, or comes from a clock that went
  back. Nothing after it exists, so waiting for it would stall the client until the channel caught up and
  then skip everything before; instead it is treated like a gap. (A backend whose copy may lag behind its
  store catches up first, so a cursor another node just handed out is not taken for one: rawrt.hub.backends.)

A transport passes ``reset`` on (an SSE ``event: reset``, a field in the poll answer or WebSocket message) so
the client knows to reload its state.

Ordering. Within a channel every subscriber receives events in id order, each once, with no gap except one
announced by ``reset``. Subscribing with a cursor is atomic: the replay covers ``(cursor, last id at subscribe
time]`` and the live queue everything after, so nothing is lost or repeated between them. Publishing from
inside a ``wake`` callback keeps that order (wakes run after the event is in every queue).

Overflow. ``publish`` never waits and never drops silently. Each subscription has a bounded queue
(``Limits.hub_queue_size``). A subscriber whose queue is full when an event arrives is *overflowed*: its
queue is freed, it is removed from the channel, its ``cursor`` stays the id of the last event it was given,
and it is woken. The transport then tells the client to resume from that cursor (SSE ends the stream and the
browser reconnects with ``Last-Event-ID``; WebSocket closes with 1013 "try again later"; long polling
answers with what it has and the client polls again). On resume the replay comes from the history, or says
``reset`` if the client fell behind that too.

Cost. ``publish`` is O(number of subscribers): one append (or one ``deliver`` call) per subscriber, no
per-subscriber encoding, and O(1) amortised for the history and its budget. Events carry no wire form:
each transport derives its own (SSE bytes, JSON text) once per event for all its clients with an
:class:`~rawrt.hub.memo.EventMemo`. A subscription is a ``__slots__`` object whose queue is allocated on its
first event, so a held long-poll request costs a few hundred bytes (measured in ``tests/hub/test_hub.py``).

Direct delivery. A subscription may also have a ``deliver(event) -> bool`` callback (:meth:`Hub.subscribe`):
while the subscriber is caught up (no replay left, nothing queued), ``publish`` hands it the event instead
of queueing it. ``True``: it took the event (written to the client's socket, say), the cursor moves past it
and nobody is woken; ``False`` (the client is congested, or not ready yet): the event is queued and the
subscriber woken as usual. Once something is queued, every later event is queued behind it until the
transport drained the queue, so the order and the overflow rule are those of the queue path. It exists for
the fan-out's sake: 1,000 SSE clients cost 1,000 calls, not 1,000 queue appends, wakes and drains.

A copy of a stream kept elsewhere. A backend that stores and numbers the events itself (Redis:
:mod:`rawrt.hub.backends.redis`, docs/topics/hub-redis.md) keeps a copy of each channel it serves in a hub
and lets the transports read that as usual. It uses three methods besides the reading ones:
:meth:`Hub.load` makes a channel a copy of the stream's newest events, with its ``base``, ``origin`` and
last id, and overflows the channel's subscribers if it replaces an existing copy (the stream changed under
them: they resume and get ``reset`` if the new copy cannot honour them); :meth:`Hub.publish_at` appends an
event with the store's id and fans it out like :meth:`Hub.publish`, ignoring one that is not newer than the
channel's last id (the backend may read the same entry twice); :meth:`Hub.drop` forgets an unwatched copy
that the backend stopped following. The history's bounds, the budget, overflow and the reset signal apply
to a copy exactly as to published events.

The hub is not thread-safe: call it from the event loop's thread only.

Driving it from asyncio: docs/topics/hub.md shows the loop each transport runs (clear the flag, drain, then
wait only when nothing was drained).
"""

from __future__ import annotations

import logging
import sys
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice

from rawrt.errors import InvalidEventError
from rawrt.limits import DEFAULT_LIMITS, Limits

from .events import Event, Replay, parse_cursor

__all__ = ["Event", "Replay", "Subscription", "Hub", "parse_cursor"]

logger = logging.getLogger("rawrt.hub")

_getsizeof = sys.getsizeof


def _event_id(event: Event) -> int:
    return event.id


class _Channel:
    """A channel's state: id counter, bounded history, subscribers, and its place in the budget."""

    __slots__ = (
        "name",
        "last_id",
        "base",
        "origin",
        "history",
        "history_bytes",
        "subscribers",
        "stale",
        "cost",
    )

    def __init__(self, name: str, last_id: int, origin: int = 0) -> None:
        self.name = name
        self.last_id = last_id
        # The history holds every event after ``base`` that the channel had: the id of the newest event it
        # evicted, or where it started. Kept rather than derived from history[0].id, because ids need not
        # be contiguous (a Redis stream's are not: module docstring, "Ids").
        self.base = last_id
        # What cursor 0 ("nothing yet") stands for: the hub's start, or where the channel's stream began.
        self.origin = origin
        self.history: deque[Event] = deque()
        self.history_bytes = 0
        # A dict, not a set: O(1) removal *and* a deterministic fan-out order (tests, reproducibility).
        self.subscribers: dict[Subscription, None] = {}
        # How many of this channel's entries in the hub's publish order stand for events the channel
        # already evicted by its own bounds: always its oldest entries (both evict oldest first).
        self.stale = 0
        # What the channel is charged against the budget while it has entries in the publish order. Stored,
        # like Event.footprint, so that releasing it gives back exactly what was charged.
        self.cost = _CHANNEL_OVERHEAD + _getsizeof(name)

    def locate(self, cursor: int) -> tuple[bool, int, int]:
        """Where a replay after ``cursor`` starts: ``(reset, index into history, cursor it continues from)``.

        Reset when events after the cursor are gone (it is older than ``base``) or the cursor is ahead of
        the channel; the replay then starts at the oldest retained event, from ``base``.
        """
        history = self.history
        base = self.base if history else self.last_id  # nothing retained: every event up to last_id is gone
        if cursor == 0:
            cursor = self.origin
        if cursor < base or cursor > self.last_id:
            return True, 0, base
        count = len(history)
        if not count or history[-1].id - base == count:
            return False, cursor - base, cursor  # contiguous ids (the memory hub's): index by arithmetic
        return False, bisect_right(history, cursor, key=_event_id), cursor


#: What a retained event costs besides its text and the bytes of its UTF-8 copy: the Event object, the bytes
#: object's header, its id and footprint ints, its slot in the channel's history and in the publish order,
#: and up to four stale publish-order slots (the compaction bound, Hub._remember).
_EVENT_OVERHEAD = _getsizeof(Event("", 0, "", b"", 0)) + _getsizeof(b"") + 2 * _getsizeof(1 << 40) + 6 * 8

#: What a retained channel costs besides its name: the _Channel object, its empty history deque (one
#: 64-slot block), its empty subscriber dict, and its entry in the hub's table (a few words, over-allocated).
_CHANNEL_OVERHEAD = _getsizeof(_Channel.__new__(_Channel)) + _getsizeof(deque()) + _getsizeof({}) + 64

#: Stale publish-order entries tolerated before a compaction; past it, up to four per live one.
_COMPACT_MIN = 1024


class Subscription:
    """One subscriber's view of a channel: a replay, then a bounded queue of live events.

    Made by :meth:`Hub.subscribe`. The transport drains it when woken and closes it when the client goes.

    Attributes:
        channel: the channel's name.
        cursor: the id of the last event :meth:`drain` returned or ``deliver`` took (or the starting position:
            the cursor given to ``subscribe``, the last id for a live-only subscription, or the position
            before the oldest retained event after a reset). A client resumes from it.
        reset: the cursor given to ``subscribe`` could not be honoured; the replay starts at the oldest
            retained event (see the module docstring). Set at subscribe time and never changed.
        overflowed: the subscriber fell behind (its queue was full, or the history evicted events it had not
            read yet) and was disconnected; the client must resume from ``cursor``.
        closed: no more events will be delivered (after :meth:`close` or an overflow).
    """

    # The four fields publish reads for every subscriber come first (docs/topics/performance.md).
    __slots__ = (
        "_queue",
        "_deliver",
        "cursor",
        "_replay_to",
        "_hub",
        "channel",
        "reset",
        "overflowed",
        "closed",
        "_wake",
        "_queue_size",
    )

    def __init__(
        self,
        hub: Hub,
        channel: str,
        cursor: int,
        reset: bool,
        replay_to: int,
        wake: Callable[[], None],
        queue_size: int,
        deliver: Callable[[Event], bool] | None = None,
    ) -> None:
        self._hub = hub
        self.channel = channel
        self.cursor = cursor
        self.reset = reset
        self.overflowed = False
        self.closed = False
        self._wake = wake
        self._deliver = deliver
        # Allocated on the first live event: most held long-poll requests never get one before they time
        # out, and an empty deque would be most of a subscription's memory (tests/hub, TestMemory).
        self._queue: deque[Event] | None = None
        self._queue_size = queue_size
        # The replay still to read is the history range (cursor, replay_to]; read lazily from the history
        # rather than copied, so 1000 clients reconnecting together do not each copy 10,000 references.
        self._replay_to = replay_to

    @property
    def ready(self) -> bool:
        """True when :meth:`drain` would return events now (replay or live)."""
        return self.cursor < self._replay_to or bool(self._queue)

    def drain(self, max_events: int | None = None) -> list[Event]:
        """Take up to ``max_events`` events, oldest first, and advance :attr:`cursor` past them.

        Replay first, then live events. Returns ``[]`` when there is nothing, when closed, and when the
        subscriber has just been found to have fallen behind the history while replaying (then
        :attr:`overflowed` is set: resume from :attr:`cursor`).

        Args:
            max_events: the batch size; ``None`` means ``Limits.poll_max_batch``.
        """
        if self.closed:
            return []
        if max_events is None:
            max_events = self._hub.limits.poll_max_batch
        out: list[Event] = []
        if self.cursor < self._replay_to:
            want = min(max_events, self._replay_to - self.cursor)
            replay = self._hub.since(self.channel, self.cursor, want)
            if replay.reset:
                # Events between the cursor and the live queue were evicted while this subscriber was
                # still replaying: it fell behind the history. Same signal as a full queue.
                self._hub._overflow(self)
                return []
            events = replay.events
            replay_to = self._replay_to
            if events and events[-1].id <= replay_to:
                out.extend(events)
                self.cursor = events[-1].id
            elif want:
                # The replay ends here. With ids that are not contiguous (a Redis stream's) ``want`` can
                # reach past replay_to, into events the live queue also holds: those come from the queue.
                out.extend(e for e in events if e.id <= replay_to)
                self.cursor = replay_to
        queue = self._queue
        if queue and len(out) < max_events:
            while queue and len(out) < max_events:
                out.append(queue.popleft())
            self.cursor = out[-1].id
        return out

    def close(self) -> None:
        """Stop receiving and free the queue at once. Idempotent; harmless after an overflow."""
        if not self.closed:
            self._hub._remove(self)

    def _wake_safely(self) -> None:
        # A raising wake callback is a transport bug; it must not stop the fan-out to everyone else, so it
        # is logged, as asyncio does with a failing callback.
        try:
            self._wake()
        except Exception:
            logger.exception("wake callback of a subscription to %r failed", self.channel)

    def __repr__(self) -> str:
        state = "overflowed" if self.overflowed else "closed" if self.closed else "open"
        queued = len(self._queue) if self._queue else 0
        return f"<Subscription {self.channel!r} cursor={self.cursor} queued={queued} {state}>"


class Hub:
    """Channels of events with ids, bounded history and bounded per-subscriber queues.

    Args:
        limits: ``hub_history_count``, ``hub_history_bytes``, ``hub_total_history_bytes``,
            ``hub_queue_size`` and ``poll_max_batch`` are used.
        start: the id every channel counts on from (its first event is ``start + 1``), and what cursor 0
            stands for. 0 numbers events 1, 2, 3...; a server passes one derived from its start time
            (:func:`rawrt.hub.ids.start_id`), so that no run reuses an earlier run's ids (module docstring).
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, *, start: int = 0) -> None:
        if start < 0:
            raise ValueError(f"start must be >= 0, not {start}")
        self.limits = limits
        self.start = start
        self._channels: dict[str, _Channel] = {}
        # The budget (module docstring): one entry per retained event, in publish order, naming its channel.
        # The channel's own evictions leave stale entries behind (counted in _Channel.stale and _stale),
        # skipped when they reach the head and compacted away when they pile up.
        self._order: deque[_Channel] = deque()
        self._stale = 0
        self._footprint = 0  # retained events' footprints plus the costs of the channels holding entries
        self._floor = start  # the highest id a forgotten channel reached: new channels count on from it

    @property
    def history_footprint(self) -> int:
        """The bytes the history is charged against ``Limits.hub_total_history_bytes`` (module docstring)."""
        return self._footprint

    # --- publishing ----------------------------------------------------------------------------------

    def publish(self, channel: str, data: str) -> Event:
        """Publish ``data`` on ``channel`` (created if needed); never waits on a subscriber.

        The event gets the channel's next id, goes into the history, and to every subscriber: straight to
        its ``deliver`` callback if it has one, is caught up and takes it, else into its queue; a subscriber
        whose queue is full is overflowed instead (module docstring). Then the subscribers whose queue was
        empty, and the overflowed ones, are woken.

        Returns:
            The new event.

        Raises:
            InvalidEventError: ``data`` cannot be encoded in UTF-8 (a lone surrogate).
        """
        try:
            data_bytes = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEventError(f"event data is not encodable as UTF-8: {exc}") from None
        chan = self._channels.get(channel)
        if chan is None:
            chan = self._channels[channel] = _Channel(channel, self._floor, self.start)
        return self._fan_out(chan, chan.last_id + 1, data, data_bytes)

    def publish_at(self, channel: str, event_id: int, data: str) -> Event | None:
        """Publish ``data`` on ``channel`` with an id chosen elsewhere (a Redis stream's: hub.backends.redis).

        As :meth:`publish`, but only onto a channel :meth:`load` gave the hub, and only if ``event_id`` is
        above the channel's last id: a backend that reads the same stream twice (its live loop and a
        catch-up) hands the same event twice, and the second is ignored.

        Returns:
            The event, or ``None`` when it was ignored (no such channel, or not newer than its last id).

        Raises:
            InvalidEventError: ``data`` cannot be encoded in UTF-8.
        """
        chan = self._channels.get(channel)
        if chan is None or event_id <= chan.last_id:
            return None
        try:
            data_bytes = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEventError(f"event data is not encodable as UTF-8: {exc}") from None
        return self._fan_out(chan, event_id, data, data_bytes)

    def _fan_out(self, chan: _Channel, event_id: int, data: str, data_bytes: bytes) -> Event:
        channel = chan.name
        chan.last_id = event_id
        # chan.name, not channel: every event then shares the table's copy of the name.
        # A bytes object's size is its length plus a constant (in _EVENT_OVERHEAD): no call needed.
        footprint = _EVENT_OVERHEAD + _getsizeof(data) + len(data_bytes)
        event = Event(channel, event_id, data, data_bytes, footprint)
        self._remember(chan, event)

        # Phase 1: every subscriber gets the event (delivered or queued) before any wake runs, so a wake
        # that publishes again cannot put a later event ahead of this one for another subscriber. deliver
        # callbacks run here, not in phase 2: they must not publish (Hub.subscribe), only write.
        to_wake: list[Subscription] = []
        overflowed: list[Subscription] = []
        event_id = event.id
        for sub in chan.subscribers:
            queue = sub._queue
            if not queue:
                # Direct delivery only when nothing is ahead of this event for the subscriber: no queued
                # event and no replay left (cursor < _replay_to while it replays), or the order would break.
                deliver = sub._deliver
                if deliver is not None and sub.cursor >= sub._replay_to:
                    try:
                        taken = deliver(event)
                    except Exception:
                        # A transport bug; the event is queued instead, so this subscriber loses nothing.
                        logger.exception("deliver callback of a subscription to %r failed", channel)
                        taken = False
                    if taken:
                        sub.cursor = event_id
                        continue
                if queue is None:
                    queue = sub._queue = deque()
            elif len(queue) >= sub._queue_size:
                overflowed.append(sub)
                continue
            queue.append(event)
            # Wake on empty -> non-empty only: a non-empty queue means a wake is already pending or the
            # transport is draining (it drains until empty before it waits again).
            if len(queue) == 1:
                to_wake.append(sub)
        for sub in overflowed:
            self._overflow(sub)
            to_wake.append(sub)
        # Phase 2: wakes. Each runs whatever the transport gave; a failing one is logged, not propagated.
        for sub in to_wake:
            sub._wake_safely()
        return event

    def _remember(self, chan: _Channel, event: Event) -> None:
        # On the fan-out's path (once per publish, not per subscriber): the common case is inlined.
        limits = self.limits
        history = chan.history
        size = len(event.data_bytes)
        footprint = event.footprint
        if (
            size > limits.hub_history_bytes
            or limits.hub_history_count < 1
            or footprint + chan.cost > limits.hub_total_history_bytes
        ):
            self._not_kept(chan)
            return
        order = self._order
        total = self._footprint + footprint
        if not history and not chan.stale:
            total += chan.cost  # the channel's first entry in the publish order
        history.append(event)
        order.append(chan)
        chan.history_bytes += size
        # The channel's own bounds: its oldest first, until both hold.
        count, max_bytes = limits.hub_history_count, limits.hub_history_bytes
        while len(history) > count or chan.history_bytes > max_bytes:
            old = history.popleft()
            chan.base = old.id
            chan.history_bytes -= len(old.data_bytes)
            total -= old.footprint
            if order[0] is chan and not chan.stale:
                order.popleft()  # its entry is the head (one busy channel): gone at once, never stale
            else:
                chan.stale += 1
                self._stale += 1
        self._footprint = total
        # The budget: the oldest of any channel first. The event just kept, and its channel, fit on their
        # own (checked above), so this stops before reaching them.
        budget = limits.hub_total_history_bytes
        while self._footprint > budget:
            self._evict_oldest()
        # Stale entries at the head go at once; the others when they pile up.
        while order[0].stale:
            self._evict_oldest()
        if self._stale > _COMPACT_MIN and self._stale > 4 * (len(order) - self._stale):
            self._compact()

    def _not_kept(self, chan: _Channel) -> None:
        """The new event is not kept. The history holds every event after ``base`` with none missing, so it
        must end at the newest id: the channel's older events go too, and ``base`` moves past the new event
        (a replay that needs it reports a gap). Evicting other channels' events for it would be no use."""
        self._empty(chan)  # the new event is gone as well: the empty history holds everything after it
        order = self._order
        if self._stale > _COMPACT_MIN and self._stale > 4 * (len(order) - self._stale):
            self._compact()
        if not chan.stale and not chan.subscribers and self._channels.get(chan.name) is chan:
            # Nothing kept (not even stale entries: released and forgotten above, if it had any), and
            # nobody listening: forgotten like any other ("Forgetting channels").
            self._forget(chan)

    def _empty(self, chan: _Channel) -> None:
        """Evict all of the channel's history by its own bounds; every event up to ``last_id`` is gone then
        (``base``), and the stale entries at the head of the publish order are released."""
        while chan.history:
            self._drop_oldest(chan)
        chan.base = chan.last_id
        order = self._order
        while order and order[0].stale:
            self._evict_oldest()

    def _drop_oldest(self, chan: _Channel) -> None:
        """Evict the channel's oldest event by its own bounds; its publish-order entry becomes stale."""
        old = chan.history.popleft()
        chan.base = old.id
        chan.history_bytes -= len(old.data_bytes)
        self._footprint -= old.footprint
        chan.stale += 1
        self._stale += 1

    def _evict_oldest(self) -> None:
        """Take the head of the publish order: evict that event, or drop the entry if it is stale."""
        chan = self._order.popleft()
        if chan.stale:
            chan.stale -= 1
            self._stale -= 1
        else:
            old = chan.history.popleft()
            chan.base = old.id
            chan.history_bytes -= len(old.data_bytes)
            self._footprint -= old.footprint
        if not chan.history and not chan.stale:
            self._release(chan)

    def _compact(self) -> None:
        """Rebuild the publish order without its stale entries (O(n), once per 4n stale: O(1) amortised)."""
        order: deque[_Channel] = deque()
        released: list[_Channel] = []
        for chan in self._order:
            if chan.stale:
                # A channel's stale entries are its oldest: the first ones met here.
                chan.stale -= 1
                if not chan.stale and not chan.history:
                    released.append(chan)
            else:
                order.append(chan)
        self._order = order
        self._stale = 0
        for chan in released:
            self._release(chan)

    def _release(self, chan: _Channel) -> None:
        """The channel has no entry left in the publish order: uncharge it, and forget it if unwatched."""
        self._footprint -= chan.cost
        if not chan.subscribers:
            self._forget(chan)

    def _forget(self, chan: _Channel) -> None:
        # The identity check: a channel dropped by drop() leaves the table at once but may still hold stale
        # publish-order entries, released later, by when a new channel of that name may be in the table.
        if self._channels.get(chan.name) is chan:
            del self._channels[chan.name]
        # Its ids must never be reused for other events (module docstring, "Forgetting channels").
        if chan.last_id > self._floor:
            self._floor = chan.last_id

    # --- a copy of a stream kept elsewhere (rawrt.hub.backends.redis; module docstring) -----------------

    def public_cursor(self, channel: str, cursor: int) -> int:
        """The cursor to hand a client: 0 where ``cursor`` is the channel's origin (it has nothing yet).

        Cursor 0 means "from the channel's origin" on every node and in every run, while the origin's own
        number is local: a Redis copy that found no stream yet stands at the Redis clock's "now", which the
        stream, created later, begins after. Handing out that number would make the client's next request,
        on another node, look older than the stream (a reset); handing out 0 says exactly "nothing yet".
        """
        chan = self._channels.get(channel)
        origin = chan.origin if chan is not None else self.start  # a channel not made yet would start there
        return 0 if cursor == origin else cursor

    def has_channel(self, channel: str) -> bool:
        """Whether the hub has the channel (it has events, subscribers, or was given by :meth:`load`)."""
        return channel in self._channels

    def load(
        self, channel: str, events: Iterable[tuple[int, str]], *, base: int, origin: int, last_id: int
    ) -> None:
        """Make ``channel`` a copy of a stream kept elsewhere, from its newest ``events`` as ``(id, data)``.

        A backend that keeps the events (a Redis stream) calls this when it starts following a channel, then
        :meth:`publish_at` for each new event, and the transports read the hub as usual. ``base`` is the
        position the events follow without a gap (so a cursor below it gets ``reset``), ``origin`` what
        cursor 0 stands for, ``last_id`` the stream's newest id (at least the last event's). The history's
        own bounds apply as for published events.

        If the hub already has the channel, its history is replaced and its subscribers are overflowed: the
        stream was found to have changed under them (a Redis that lost its data), so they must resume, and
        their cursor then gets ``reset`` if the new history cannot honour it.

        Raises:
            ValueError: the ids do not increase, or are not all above ``base`` and at most ``last_id``.
        """
        pairs = list(events)
        previous = base
        for event_id, _ in pairs:
            if event_id <= previous:
                raise ValueError(f"event ids must increase from base {base}: {event_id} after {previous}")
            previous = event_id
        if last_id < previous:
            raise ValueError(f"last_id {last_id} is below the newest event's id {previous}")
        chan = self._channels.get(channel)
        if chan is None:
            chan = self._channels[channel] = _Channel(channel, base, origin)
        else:
            while chan.history:
                self._drop_oldest(chan)
            chan.last_id = chan.base = base
            chan.origin = origin
        for event_id, data in pairs:
            data_bytes = data.encode("utf-8", "surrogatepass")
            footprint = _EVENT_OVERHEAD + _getsizeof(data) + len(data_bytes)
            chan.last_id = event_id
            self._remember(chan, Event(chan.name, event_id, data, data_bytes, footprint))
        if not chan.history:
            # Nothing retained: every event up to last_id is gone; the channel continues from there.
            chan.base = last_id
        chan.last_id = last_id
        # An event too large for the history makes _remember forget an unwatched channel: the backend
        # follows it all the same, so it stays.
        self._channels.setdefault(channel, chan)
        for sub in list(chan.subscribers):
            self._overflow(sub)
            sub._wake_safely()

    def drop(self, channel: str) -> bool:
        """Forget a channel nobody subscribes to, history and all (a backend that stopped following it).

        Returns:
            Whether it was dropped: ``False`` when it has subscribers (or the hub does not have it).
        """
        chan = self._channels.get(channel)
        if chan is None or chan.subscribers:
            return False
        self._empty(chan)
        self._forget(chan)  # gone from the table now; its remaining stale entries release it later
        return True

    # --- reading -------------------------------------------------------------------------------------

    def last_id(self, channel: str) -> int:
        """The id of the channel's newest event; for a channel the hub does not have, where one would start.

        That is 0 until the hub forgot a channel with events, then the floor (module docstring).
        """
        chan = self._channels.get(channel)
        return chan.last_id if chan is not None else self._floor

    def subscriber_count(self, channel: str) -> int:
        """How many open subscriptions the channel has."""
        chan = self._channels.get(channel)
        return len(chan.subscribers) if chan is not None else 0

    def since(self, channel: str, cursor: int, limit: int | None = None) -> Replay:
        """Return the retained events after ``cursor`` (short polling, and the replay of a subscription).

        Does not create the channel: polling a name nobody publishes on costs nothing.

        Args:
            channel: the channel's name.
            cursor: the last id the client has; 0 for everything retained.
            limit: the most events to return; ``None`` means ``Limits.poll_max_batch``.

        Returns:
            The events, the next cursor, and the ``reset`` and ``more`` flags (see :class:`Replay`).

        Raises:
            ValueError: ``cursor`` or ``limit`` is negative (parse client input with :func:`parse_cursor`).
        """
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, not {cursor}")
        if limit is None:
            limit = self.limits.poll_max_batch
        elif limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        chan = self._channels.get(channel)
        if chan is None:
            # Nothing retained here, and nobody listening: the channel would start at the floor, the only
            # position in it (the start until a channel with events was forgotten: module docstring).
            floor = self._floor
            return Replay((), floor, (cursor or self.start) != floor, False)
        reset, start, cursor = chan.locate(cursor)
        history = chan.history
        stop = min(start + limit, len(history))
        count = stop - start
        if count <= 0:
            events: tuple[Event, ...] = ()
        elif start <= len(history) - stop:
            # Walk from whichever end is nearer: a deque is a linked list of blocks, and most clients ask
            # for the last few events.
            events = tuple(islice(history, start, stop))
        else:
            events = tuple(islice(reversed(history), len(history) - stop, len(history) - start))[::-1]
        next_cursor = events[-1].id if events else cursor
        return Replay(events, next_cursor, reset, stop < len(history))

    # --- subscribing ---------------------------------------------------------------------------------

    def subscribe(
        self,
        channel: str,
        *,
        cursor: int | None,
        wake: Callable[[], None],
        queue_size: int | None = None,
        deliver: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        """Subscribe to ``channel`` (created if needed).

        With ``cursor=None`` only events published from now on are delivered. With a cursor, the retained
        events after it come first (flagged with :attr:`Subscription.reset` if the cursor could not be
        honoured), then live ones, with nothing lost or repeated in between: the replay range is fixed
        here, in the same synchronous step that registers the subscription.

        ``wake()`` is called (synchronously, from ``publish``) when the queue goes from empty to non-empty
        and when the subscription overflows. It must be cheap and must not block: ``asyncio.Event.set``,
        or setting a future. It is *not* called for the replay: drain right after subscribing.

        ``deliver(event)``, if given, is offered each live event while the subscriber is caught up (no
        replay left, nothing queued), from inside ``publish``; it returns whether it took the event (then
        the cursor moves past it and no wake follows) or not (then the event is queued as without it). It
        must not block and must not call back into the hub (publish, close): it runs while ``publish``
        walks the subscribers.

        Args:
            channel: the channel's name.
            cursor: the last id the client has, or ``None`` for live events only.
            wake: the callback.
            queue_size: bound of the live queue; ``None`` means ``Limits.hub_queue_size``.
            deliver: the direct-delivery callback (module docstring, "Direct delivery"), or ``None``.

        Raises:
            ValueError: ``cursor`` is negative or ``queue_size`` is below 1.
        """
        if queue_size is None:
            queue_size = self.limits.hub_queue_size
        elif queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, not {queue_size}")
        if cursor is not None and cursor < 0:
            raise ValueError(f"cursor must be >= 0, not {cursor}")
        chan = self._channels.get(channel)
        if chan is None:
            chan = self._channels[channel] = _Channel(channel, self._floor, self.start)
        last = chan.last_id
        reset = False
        if cursor is None:
            cursor = last
        else:
            reset, _, cursor = chan.locate(cursor)
        sub = Subscription(self, channel, cursor, reset, last, wake, queue_size, deliver)
        chan.subscribers[sub] = None
        return sub

    def _overflow(self, sub: Subscription) -> None:
        sub.overflowed = True
        self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        sub.closed = True
        sub._queue = None
        sub._replay_to = sub.cursor  # nothing left to replay either
        # A channel is only forgotten once it has no subscriber, so this one is still there.
        chan = self._channels[sub.channel]
        del chan.subscribers[sub]
        if not chan.subscribers:
            # A dict never shrinks: a crowd that left must not keep its table alive with the channel.
            chan.subscribers = {}
            # Nothing retained and nobody listening: forgotten, so clients subscribing to made-up names, or
            # to channels whose events were all evicted, leave nothing behind ("Forgetting channels").
            if not chan.history and not chan.stale:
                self._forget(chan)
