"""A hub channel as Server-Sent Events: :func:`hub_stream` (replay after ``Last-Event-ID``, then live).

The contract is in :mod:`rawrt.sse.stream`'s docstring; the events' wire form is
:func:`~rawrt.sse.stream.event_bytes`, encoded once per event for every stream.
"""

from __future__ import annotations

import json

from ..app import Request, StreamingResponse
from ..hub import Hub, parse_cursor
from ..limits import DEFAULT_LIMITS, Limits
from ..sansio.sse import ServerSentEvent
from .stream import EventStream, resume_id

__all__ = ["hub_stream"]


def hub_stream(
    request: Request,
    hub: Hub,
    channel: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    heartbeat: float | None = None,
    timeout: float | None = None,
    send_timeout: float | None = None,
    retry: int | None = None,
) -> StreamingResponse:
    """Stream ``channel`` of ``hub`` as Server-Sent Events: replay after the resume id, then live.

    See :mod:`rawrt.sse.stream` for the contract. The subscription is made here, synchronously, so the replay
    range and the live queue meet exactly (nothing lost or repeated in between), and it is closed the moment
    the stream ends.

    Args:
        request: the request (its ``Last-Event-ID`` header or ``last_event_id`` query parameter).
        hub: the hub; ``channel``: the channel's name.
        limits, heartbeat, timeout, send_timeout, retry: as for :class:`EventStream`.

    Returns:
        The response for the handler to return.
    """
    stream = EventStream(
        request, heartbeat=heartbeat, timeout=timeout, send_timeout=send_timeout, retry=retry, limits=limits
    )
    if request.method == "HEAD":
        return stream.response()
    claimed = resume_id(request)
    cursor = None if claimed is None else parse_cursor(claimed)
    last = hub.last_id(channel)
    # A resume id that is not a cursor still says the client had something: replay all with a reset.
    sub = stream.subscribe(hub, channel, cursor=0 if claimed is not None and cursor is None else cursor)
    position = hub.public_cursor(channel, sub.cursor)
    if claimed is not None and (cursor is None or sub.reset):
        if cursor is None:
            reason = f"Last-Event-ID {claimed[:40]!r} is not an event id of this server"
        elif cursor > last:
            reason = f"event {cursor} is ahead of the channel (last id {last}): the server restarted?"
        else:
            reason = f"events after {cursor} are no longer in the history"
        info = json.dumps({"reason": reason, "last_event_id": claimed[:40], "cursor": position})
        # §9.2.6: the id field sets the browser's Last-Event-ID to where this stream continues from.
        stream.send_bytes_nowait(ServerSentEvent(data=info, event="reset", id=str(position)).encode())
    else:
        # Dispatches nothing (no data field) but sets the client's last event ID: see rawrt.sse.stream.
        stream.send_bytes_nowait(ServerSentEvent(id=str(position)).encode())
    return stream.response()
