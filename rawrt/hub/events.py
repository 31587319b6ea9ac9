"""What the hub hands out: :class:`Event`, the answer to a replay (:class:`Replay`), and the cursor a client
sends back (:func:`parse_cursor`). The contract they follow is :mod:`rawrt.hub.core`'s docstring."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Event", "Replay", "parse_cursor"]

# A cursor is a decimal event id. 19 digits fit any id a channel can reach (2**63) and keep int() cheap.
_MAX_CURSOR_DIGITS = 19


def parse_cursor(text: str) -> int | None:
    """Parse a cursor sent by a client (``Last-Event-ID``, a ``cursor`` query parameter).

    Returns:
        The cursor, or ``None`` when ``text`` is not 1 to 19 ASCII digits. A transport treats ``None`` as
        "no usable cursor": live only, or a replay from 0 with ``reset`` if the client claimed to have one.
    """
    if 0 < len(text) <= _MAX_CURSOR_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


@dataclass(frozen=True, slots=True)
class Event:
    """One published event. Immutable, and shared by every subscriber and every transport.

    It carries no wire form: a transport derives its own once for all its clients (module docstring, "Cost").

    Attributes:
        channel: the channel it was published on.
        id: its position in the channel, from 1 (see the module docstring).
        data: the payload text.
        data_bytes: ``data`` encoded in UTF-8 (computed at publish: it is what the history's byte bound
            counts).
        footprint: the bytes of memory the event holds, as the hub's budget
            (``Limits.hub_total_history_bytes``) and :class:`~rawrt.hub.memo.EventMemo` count them. Computed
            at publish and stored, so that what eviction gives back is exactly what was charged.
    """

    channel: str
    id: int
    data: str
    data_bytes: bytes = field(repr=False, compare=False)
    footprint: int = field(default=0, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Replay:
    """The answer to :meth:`Hub.since`.

    Attributes:
        events: the events after the cursor, in id order, at most ``limit`` of them.
        cursor: where to continue from: the id of the last event in ``events``, or, when there are none,
            the cursor asked for (or, after a reset, the position just before the oldest retained event).
        reset: the cursor could not be honoured (older than the history, or ahead of the channel): the
            events start at the oldest retained one and the client must not assume continuity.
        more: more events are available right now after ``cursor`` (the batch was cut at ``limit``).
    """

    events: tuple[Event, ...]
    cursor: int
    reset: bool
    more: bool
