"""Server-Sent Events over asyncio (WHATWG HTML §9.2): the server's stream and a reconnecting client.

Rooms:

* :mod:`.stream` -- :class:`EventStream`, what a handler returns to stream events, and :func:`event_bytes`,
  a hub event's SSE form, encoded once for every stream.
* :mod:`.hub` -- :func:`hub_stream`, a hub channel as an event stream, with ``Last-Event-ID`` replay.
* :mod:`.client` -- :func:`connect` and :class:`EventSource`, a client that behaves like a browser's.

The wire format is :mod:`rawrt.sansio.sse`'s.
"""

from __future__ import annotations

from .client import EventSource, EventSourceError, connect
from .hub import hub_stream
from .stream import HEARTBEAT, SSE_HEADERS, EventStream, event_bytes, resume_id

__all__ = [
    "EventStream",
    "hub_stream",
    "event_bytes",
    "resume_id",
    "SSE_HEADERS",
    "HEARTBEAT",
    "EventSource",
    "EventSourceError",
    "connect",
]
