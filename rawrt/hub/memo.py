"""A transport's wire form of hub events, computed once per event and shared by every client.

The hub's :class:`~rawrt.hub.Event` carries no encoding of its own: it knows nothing of SSE, JSON or HTTP
(see :mod:`rawrt.hub.core`). The transport that owns a format derives it from the event, and an
:class:`EventMemo` makes sure that happens once per event however many clients receive it:

* a publish hands the same event to every subscriber one after the other, so a one-entry memo on the event's
  identity answers all of them but the first with the very same object (a chunked SSE stream then frames
  that one object once for every connection: ``rawrt.server``'s push has the same identity memo);
* a replay or a poll answer hands out events from the history, clients at different cursors asking for
  overlapping ranges, so the memo also keeps the forms of the most recent events it computed, bounded in
  count and in size.

A kept form keeps its event alive too, even after the hub evicted it (by a channel's bounds or by the
budget, ``Limits.hub_total_history_bytes``): so the size bound counts both, ``len(form)`` plus the event's
:attr:`~rawrt.hub.Event.footprint`. Whatever the hub evicts, a memo holds at most ``max_size`` bytes of
events and forms, plus the one event it answered last.

Only the identity of the event matters, never its fields: two hubs both have an event 1 of channel "a".
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Generic, TypeVar

from .core import Event

__all__ = ["EventMemo"]

F = TypeVar("F", bound=Sized)

#: How many events' forms an :class:`EventMemo` keeps by default: a full poll batch
#: (``Limits.poll_max_batch``, 1,000) several times over, so clients replaying the same recent range share it.
MEMO_EVENTS = 4096

#: How many bytes an :class:`EventMemo` keeps by default, counting each form (``len``) and the event it keeps
#: alive (its ``footprint``): the bound that matters when events are large, and what the memo may hold of
#: events the hub already evicted.
MEMO_SIZE = 4 * 1024 * 1024


class EventMemo(Generic[F]):
    """One derived form per event (``derive(event)``, e.g. its SSE bytes), computed once and shared.

    :meth:`get` returns the same object for the same event for as long as the memo keeps it: always for the
    event asked for last, and for the recent ones until ``max_events`` forms or ``max_size`` bytes (forms'
    length plus the events' footprints) are kept, when the memo starts afresh (cheaper than tracking an
    order, and a miss only costs one ``derive``). Not thread-safe, like the hub: use it from the event
    loop's thread.

    Args:
        derive: computes the form of an event; must depend on the event alone.
        max_events: the most forms kept besides the last one.
        max_size: the most bytes kept besides the last one: ``len()`` of the forms plus the footprints of
            their events (:attr:`Event.footprint`).
    """

    __slots__ = ("_last_event", "_last", "_derive", "_kept", "_kept_size", "max_events", "max_size")

    _last: F

    def __init__(
        self, derive: Callable[[Event], F], *, max_events: int = MEMO_EVENTS, max_size: int = MEMO_SIZE
    ) -> None:
        self._derive = derive
        self.max_events = max_events
        self.max_size = max_size
        self._last_event: Event | None = None
        # Keyed by id(event): the entry holds the event itself, so while it is kept no other object can
        # have that id, and lookups never call Event.__hash__ (which hashes the data).
        self._kept: dict[int, tuple[Event, F]] = {}
        self._kept_size = 0

    def get(self, event: Event) -> F:
        """The form of ``event``, computed at most once while it is kept (see the class docstring)."""
        if event is self._last_event:
            return self._last
        entry = self._kept.get(id(event))
        if entry is None:
            form = self._derive(event)
            self._keep(event, form)
        else:
            form = entry[1]
        self._last_event = event
        self._last = form
        return form

    def __len__(self) -> int:
        """How many forms are kept (the last one asked for aside, if it was not kept)."""
        return len(self._kept)

    def _keep(self, event: Event, form: F) -> None:
        size = len(form) + event.footprint
        if len(self._kept) >= self.max_events or self._kept_size + size > self.max_size:
            self._kept.clear()
            self._kept_size = 0
            if size > self.max_size:
                return  # larger than the bound on its own: only the one-entry memo holds it
        self._kept[id(event)] = (event, form)
        self._kept_size += size
