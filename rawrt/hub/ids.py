"""Event ids that no run of the server and no node ever hands out twice (issue: ids across restarts).

An id is a position in time: ``milliseconds since the Unix epoch * 1024 + a sequence number``. Two sources
use the same form, so their ids compare and a client cannot tell them apart:

* **A Redis stream's entry id** ``<ms>-<seq>`` (Redis picks ``ms`` from its clock and ``seq`` within the
  millisecond, and guarantees each entry's id is above the last) maps to ``ms * 1024 + seq``: the mapping
  keeps the order, and the integer *is* the stream position, so a cursor reads back as ``XRANGE key (<id>``.
  It holds while ``seq < 1024``: 1,024 entries added to one stream within one millisecond, about a million
  a second, which Redis on one stream does not reach; an entry beyond it is refused (rawrt.hub.redis).
* **The memory hub** starts every channel at :func:`start_id` of its start time, then counts 1 by 1. A run
  that starts later starts above every id an earlier run could have reached (it would have to publish
  1,024 events per millisecond of its life to get there), so a cursor from an earlier run is always below
  the new run's history and gets the reset signal: never a silent skip (rawrt.hub.core, "Gap signal").

Why 1024 and not more: the ids must stay exact in JavaScript, whose numbers are doubles (``JSON.parse`` of a
poll answer, the demo page). 2**53 / 1024 milliseconds is the year 2248; a factor of 4096 would run out in
2039.

Pure functions, no clock: the caller reads the time (rawrt.hub.redis reads Redis's, the server its own).
"""

from __future__ import annotations

__all__ = ["SEQ_PER_MS", "start_id", "from_stream_id", "to_stream_id"]

#: Ids per millisecond: the sequence numbers one millisecond can hold.
SEQ_PER_MS = 1024


def start_id(unix_ms: int) -> int:
    """The id a channel started at ``unix_ms`` counts on from (its first event is one above)."""
    if unix_ms < 0:
        raise ValueError(f"a start time must be >= 0 ms, not {unix_ms}")
    return unix_ms * SEQ_PER_MS


def from_stream_id(stream_id: str | bytes) -> int | None:
    """The id of the Redis stream entry ``<ms>-<seq>``; ``None`` if it is not one or ``seq`` is too large."""
    if isinstance(stream_id, bytes):
        stream_id = stream_id.decode("ascii", "replace")
    ms, sep, seq = stream_id.partition("-")
    if not sep or not (ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()):
        return None
    n = int(seq)
    if n >= SEQ_PER_MS:
        return None
    return int(ms) * SEQ_PER_MS + n


def to_stream_id(event_id: int) -> str:
    """The stream position ``<ms>-<seq>`` of an id (or of a cursor: any integer >= 0)."""
    if event_id < 0:
        raise ValueError(f"an id must be >= 0, not {event_id}")
    ms, seq = divmod(event_id, SEQ_PER_MS)
    return f"{ms}-{seq}"
