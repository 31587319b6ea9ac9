"""One message to many WebSockets, encoded (and compressed) once (the chat's and the demo's fan-out).

Cost
----
A fan-out to N connections must not do N times the per-message work: :class:`SharedMessage` holds one
message's frames, built on first use and handed, the same bytes, to every connection that can take them:

* one uncompressed frame for every server connection without permessage-deflate;
* one compressed frame per deflate parameter set (:data:`~rawrt.sansio.ws.deflate.ShareKey`: window bits,
  level, memLevel; with rawrt's defaults every deflate connection has the same one), compressed from a fresh
  compressor (:func:`~rawrt.sansio.ws.deflate.compress_message`). That frame is valid for each of them, with
  or without context takeover (RFC 7692 §7.1.1.1); a context-takeover connection's own compressor then
  forgets its context, since its history no longer matches the peer's.

The price, for context-takeover peers, is the ratio that context takeover buys across messages (small JSON
events repeat their keys): each shared message is compressed on its own. The alternatives are worse for a
fan-out: compressing per connection costs O(N) deflate runs per event (1,000 subscribers x 10 events of
64 KiB took 14 s and stalled the loop), and sending uncompressed drops the compression the peer asked for.
Compressed once, a deflate fan-out costs about what an uncompressed one does (docs/websocket.md has the
figures).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..sansio.ws.connection import Role, WebSocketConnection
from ..sansio.ws.deflate import ShareKey, compress_message
from ..sansio.ws.frames import RSV1, CloseCode, Opcode, encode_frame
from .connection import Message, WebSocket

__all__ = ["broadcast", "SharedMessage", "send_shared"]


class SharedMessage:
    """One message's frames for many server connections, each built once (see the module docstring).

    Args:
        message: ``str`` (a text message) or ``bytes`` (binary).
    """

    __slots__ = ("opcode", "payload", "_plain", "_compressed")

    def __init__(self, message: Message) -> None:
        if isinstance(message, str):
            self.opcode = Opcode.TEXT
            self.payload = message.encode("utf-8")
        else:
            self.opcode = Opcode.BINARY
            self.payload = bytes(message)
        self._plain: bytes | None = None
        self._compressed: dict[ShareKey, bytes] = {}

    def __len__(self) -> int:
        """The payload's size (what :class:`~rawrt.hub.EventMemo` bounds)."""
        return len(self.payload)

    def frame_for(self, protocol: WebSocketConnection) -> bytes:
        """The frame for ``protocol`` (server role): compressed if it negotiated permessage-deflate."""
        extension = protocol.extension
        if extension is None:
            if self._plain is None:
                self._plain = encode_frame(self.opcode, self.payload)
            return self._plain
        key = extension.share_key
        frame = self._compressed.get(key)
        if frame is None:
            # RFC 7692 §6: RSV1 marks the (first and only) frame of a compressed message.
            frame = encode_frame(self.opcode, compress_message(self.payload, key), rsv=RSV1)
            self._compressed[key] = frame
        return frame


def send_shared(ws: WebSocket, message: SharedMessage) -> None:
    """Write ``message``'s frame for ``ws`` without waiting (follow with :meth:`WebSocket.drain` to wait).

    Raises:
        ConnectionClosed: the connection is closing or closed.
        LocalProtocolError: ``ws`` is a client, or is sending a fragmented message.
    """
    protocol = ws.protocol
    protocol.send_encoded(message.frame_for(protocol))
    extension = protocol.extension
    if extension is not None and not extension.local_no_context_takeover:
        extension.forget_context()  # the peer's window now holds a message our compressor never saw
    ws.flush()


async def broadcast(websockets: Iterable[WebSocket], message: Message) -> int:
    """Send one message to many WebSockets without waiting on any of them.

    The message is encoded once for every uncompressed server-side connection and compressed once for all
    those with the same deflate parameters (:class:`SharedMessage`). A connection whose transport already
    holds more than four times ``ws_write_high_water`` is too slow to keep up: it is closed with 1013 (try
    again later) rather than buffered without bound.

    Returns:
        How many connections the message was written to.
    """
    shared = SharedMessage(message)
    sent = 0
    for ws in websockets:
        if not ws.open:
            continue
        if ws.write_buffer_size() > 4 * ws.limits.ws_write_high_water:
            ws.protocol.send_close(CloseCode.TRY_AGAIN_LATER, "too slow for the broadcast")
            ws.flush()
            continue
        if ws.protocol.role is Role.SERVER:
            send_shared(ws, shared)
        else:
            # RFC 6455 §5.3: a client masks every frame with a fresh key, so it cannot share the frame.
            if isinstance(message, str):
                ws.protocol.send_text(message)
            else:
                ws.protocol.send_binary(message)
            ws.flush()
        sent += 1
    return sent
