"""One message to many WebSockets, encoded once (the chat's and the demo's fan-out)."""

from __future__ import annotations

from collections.abc import Iterable

from ..sansio.ws.connection import Role
from ..sansio.ws.frames import CloseCode, Opcode, encode_frame
from .connection import Message, WebSocket

__all__ = ["broadcast"]


async def broadcast(websockets: Iterable[WebSocket], message: Message) -> int:
    """Send one message to many WebSockets without waiting on any of them.

    The frame is encoded once for every uncompressed server-side connection (RFC 7692 §6 lets a
    compressed connection receive it uncompressed too, so compressed ones share it as well). A connection
    whose transport already holds more than four times ``ws_write_high_water`` is too slow to keep up: it is
    closed with 1013 (try again later) rather than buffered without bound.

    Returns:
        How many connections the message was written to.
    """
    if isinstance(message, str):
        frame = encode_frame(Opcode.TEXT, message.encode("utf-8"))
    else:
        frame = encode_frame(Opcode.BINARY, message)
    sent = 0
    for ws in websockets:
        if not ws.open:
            continue
        if ws.write_buffer_size() > 4 * ws.limits.ws_write_high_water:
            ws.protocol.send_close(CloseCode.TRY_AGAIN_LATER, "too slow for the broadcast")
            ws.flush()
            continue
        if ws.protocol.role is Role.SERVER:
            ws.send_encoded(frame)
        else:
            # RFC 6455 §5.3: a client masks every frame with a fresh key, so it cannot share the frame.
            if isinstance(message, str):
                ws.protocol.send_text(message)
            else:
                ws.protocol.send_binary(message)
            ws.flush()
        sent += 1
    return sent
