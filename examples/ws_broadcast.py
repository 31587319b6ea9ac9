"""A broadcast room: every message one client sends goes to every connected client.

Run it from the repository root::

    python -m rawrt serve examples.ws_broadcast:app --port 8000

and connect a few clients (``python -m websockets ws://127.0.0.1:8000/room?name=ada``). :func:`broadcast`
encodes each frame once for all the server-side connections and never waits on any of them: a client that
stops reading until more than four times ``ws_write_high_water`` bytes are waiting for it is closed with
1013 (try again later) instead of slowing the room down.
"""

from __future__ import annotations

from rawrt import App
from rawrt.limits import KiB, Limits
from rawrt.websocket import WebSocket, broadcast

app = App()

#: Everyone in the room. A set of open WebSockets is all broadcast() needs.
room: set[WebSocket] = set()

#: Small messages only, a ping every 20 s, and at most 16 KiB waiting per client before send() waits.
ROOM_LIMITS = Limits(ws_max_message_size=4 * KiB, ws_write_high_water=16 * KiB)


@app.websocket("/room", limits=ROOM_LIMITS)
async def chat(ws: WebSocket) -> None:
    assert ws.request is not None
    name = ws.request.query_param("name") or "anonymous"
    room.add(ws)
    try:
        await broadcast(room, f"* {name} joined ({len(room)} here)")
        async for message in ws:
            if isinstance(message, bytes):
                await ws.close(1003, "text only")  # RFC 6455 §7.4.1: unsupported data
                break
            await broadcast(room, f"{name}: {message}")
    finally:
        room.discard(ws)
        await broadcast(room, f"* {name} left")
