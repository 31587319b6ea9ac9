"""A hub channel over a WebSocket: :func:`chat_session`, the hub's WebSocket transport (demo: ``/ws/chat``).

Contract
--------
The client gets every retained event after its cursor ``since`` (none without one), then live events, each
once and in order, as one text message holding the event's JSON, ``{"channel": C, "id": N, "data": D}``:
:func:`rawrt.polling.event_json`, the same objects a poll answer lists, encoded once per event for every
client; its frame too is built once per event, and compressed once for all the permessage-deflate clients
with the same parameters (:class:`rawrt.websocket.fanout.SharedMessage`). The client resumes (a new
connection with ``?since=<last id it has>``) with nothing lost or repeated, and can switch to SSE or polling
with the same cursor (``rawrt.hub`` "Ids").

Each text message from the client is published on the channel, and comes back to it like to every other
subscriber. Never a silent gap (``rawrt.hub`` "Gap signal"): a cursor the history cannot honour first gets
``{"reset": true, "cursor": N}``, then the replay from the oldest retained event.

Closes (RFC 6455 §7.4.1):

* 1003 "unsupported data" for a binary message: the chat takes text only;
* 1013 "try again later" when the client fell behind its queue (``rawrt.hub`` "Overflow"), with the ``since``
  to resume from in the reason; the replay then comes from the history; and 1013 when the hub's store
  (Redis) is unreachable, so a message cannot be published: the client reconnects later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from ..errors import ConnectionClosed, HubUnavailableError
from ..hub import Event, EventMemo, Hub
from ..polling import event_json
from ..sansio.ws.frames import CloseCode
from .connection import WebSocket
from .fanout import SharedMessage, send_shared

__all__ = ["chat_session"]


def _shared(event: Event) -> SharedMessage:
    return SharedMessage(event_json(event))


#: ``event_frames(event) -> SharedMessage``: an event's frames, built once for all the chat's clients.
#: Each publish reaches every subscriber's pump in turn, and a burst makes them take the same batch one after
#: the other: the memo keeps the recent events' frames (bounded in count and bytes), so a burst of 10 events
#: to 1,000 deflate clients is compressed 10 times, not 10,000.
event_frames = EventMemo(_shared).get


async def chat_session(
    ws: WebSocket,
    hub: Hub,
    channel: str,
    since: int | None,
    *,
    publish: Callable[[str, str], Awaitable[object]] | None = None,
) -> None:
    """Serve one chat client on ``ws`` until it closes (see the module docstring).

    Args:
        ws: the accepted WebSocket.
        hub: the hub; ``channel``: the channel's name (validated by the caller).
        since: the client's cursor, parsed with :func:`rawrt.polling.parse_since` (``None``: live only).
        publish: how a client's message is published: a backend's ``publish`` (rawrt.hub.backends), awaited,
            so that a message is acknowledged by the store before the next is read; ``None``:
            ``hub.publish``. With a backend, call ``await backend.prepare(channel, since)`` first.
    """
    ready = asyncio.Event()
    sub = hub.subscribe(channel, cursor=since, wake=ready.set)

    async def pump() -> None:
        if sub.reset:
            await ws.send(json.dumps({"reset": True, "cursor": hub.public_cursor(channel, sub.cursor)}))
        while True:
            ready.clear()  # before draining: a publish in between sets it again (rawrt.hub, "Driving it")
            batch = sub.drain()
            if batch:
                for event in batch:
                    send_shared(ws, event_frames(event))
                    await ws.drain()
            elif sub.overflowed:
                await ws.close(
                    CloseCode.TRY_AGAIN_LATER,
                    f"too slow: resume with since={hub.public_cursor(channel, sub.cursor)}",
                )
                return
            else:
                await ready.wait()

    pumping = asyncio.ensure_future(pump())
    try:
        async for message in ws:
            if isinstance(message, bytes):
                await ws.close(CloseCode.UNSUPPORTED_DATA, "binary messages are not accepted: send text")
                break
            if publish is None:
                hub.publish(channel, message)
            else:
                try:
                    await publish(channel, message)
                except HubUnavailableError as exc:
                    await ws.close(CloseCode.TRY_AGAIN_LATER, str(exc)[:120])
                    break
            if pumping.done():
                break
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await pumping
        sub.close()
