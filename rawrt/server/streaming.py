"""Streaming responses (:class:`rawrt.app.StreamingResponse`): a body sent while it is produced, chunked on
HTTP/1.1 (RFC 9112 §7.1) and close-delimited on HTTP/1.0, each piece flushed at once (Server-Sent Events rely
on it), ended early when the client leaves or the server shuts down.

A producer can also write synchronously, from outside the response's task, through the *push* its
``on_push`` callback receives (:class:`StreamPush`): a fan-out (rawrt.sse) writes an event to a thousand
streams without waking a thousand tasks.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..app import Request, StreamingResponse
from ..sansio import http11
from .channel import Channel, ClientGone, error_log
from .dates import http_date
from .deadlines import withdraw_cancellation
from .watcher import DisconnectWatch

__all__ = ["StreamPush", "Streaming", "release"]

#: The last piece a push framed, and its chunk: a fan-out pushes one bytes object to every stream in turn,
#: so it is framed (and its chunk allocated) once, not once per stream.
_last_piece: bytes | None = None
_last_chunk = b""


class StreamPush:
    """The synchronous writer of one streaming response, the *push* ``StreamingResponse.on_push`` receives
    (the contract is :class:`rawrt.app.Push`).

    An object of its own rather than a bound method of the connection: a fan-out calls it once per stream
    per event, and it touches only its own few fields (docs/topics/performance.md).
    """

    __slots__ = ("live", "chunked", "transport", "high_water", "connection", "sent", "tap")

    def __init__(self, connection: Channel) -> None:
        #: False once the body is over (the last chunk may be out): pushes are refused from then on.
        self.live = True
        self.chunked = connection.conn.sends_chunked
        self.transport = connection.transport
        self.high_water = connection.limits.write_high_water
        self.connection = connection
        #: Body bytes pushed (for the access log).
        self.sent = 0
        #: The exchange's wire tap (rawrt.lab), if it has one.
        self.tap = connection.tap

    def __call__(self, piece: bytes, /) -> bool:
        """Write a piece of the body now. Returns whether the transport still has room (at most
        ``write_high_water`` bytes waiting)."""
        transport = self.transport
        if not self.live or transport.is_closing():
            return False
        if self.chunked:
            # Framed here exactly as send_data() would (http11.HTTPConnection.sends_chunked), and flush()
            # leaves nothing of the connection's output behind, so the order on the wire is the same.
            global _last_piece, _last_chunk
            if piece is _last_piece:
                chunk = _last_chunk
            else:
                chunk = http11.encode_chunk(piece)
                if type(piece) is bytes:  # immutable: the same object is the same bytes next time
                    _last_piece, _last_chunk = piece, chunk
            transport.write(chunk)
            if self.tap is not None:
                self.tap.sent(chunk)
        else:
            connection = self.connection
            connection.conn.send_data(piece)
            connection.flush()
        self.sent += len(piece)
        return transport.get_write_buffer_size() <= self.high_water


class Streaming(DisconnectWatch):
    """Sending streaming responses (a mixin of :class:`~rawrt.server.ServerConnection`)."""

    #: A streaming response (SSE) is being sent: shutdown ends it instead of waiting for it.
    streaming: bool

    def abort_stream(self) -> None:
        """Shutdown: end a streaming response now (it is cancelled, then terminated cleanly)."""
        if self.streaming and self.task is not None:
            self.task.cancel()

    async def send_streaming(self, response: StreamingResponse, request: Request | None = None) -> bool:
        """Send a streaming response: each piece flushed at once; stop when the client leaves.

        However it ends (finished, client gone, send timeout, shutdown), it gets its access log line.

        Returns:
            Whether the connection may carry another request.

        Raises:
            ClientGone: the client left, or a shutdown ended the stream (its last chunk sent).
        """
        self.conn.send_response(response.status, self.final_headers(response.headers), date=http_date())
        self.flush()
        body = response.body
        self.streaming = True
        self.sent = 0
        if self.server.closing:
            self.abort_stream()
        pusher = None
        if response.on_push is not None:
            pusher = StreamPush(self)
            response.on_push(pusher)
        try:
            self._cancel_on_disconnect = True
            if self.conn.client_state is not http11.State.SEND_BODY:
                self.start_watching()
            await self.drain(response.send_timeout)
            async for piece in body:
                data = piece.encode("utf-8") if isinstance(piece, str) else piece
                self.conn.send_data(data)
                self.flush()
                self.sent += len(data)
                # Each piece waits for the transport to take it, bounded by send_timeout: a reader that
                # stopped reading is cut off instead of growing our buffer without end.
                await self.drain(response.send_timeout, high_water=0)
            self._cancel_on_disconnect = False
            # The body ended normally and the connection may carry another request: the watcher must stop
            # reading before the read loop reads again.
            await self.stop_watching()
            if pusher is not None:
                pusher.live = False  # the body is over: nothing may follow the last chunk
            self.conn.send_end()
            keep = self.flush()
            await self.drain()
            return keep
        except asyncio.CancelledError:
            if self._disconnected or self.server.closing:
                withdraw_cancellation()  # the watcher's or the shutdown's: this task goes on to clean up
                if not self._disconnected:
                    # Shutdown: an endless stream (SSE) will not finish by itself, so it ends here, properly
                    # terminated (the last chunk), and the client reconnects elsewhere or later.
                    with contextlib.suppress(Exception):
                        self.conn.send_end()
                        self.flush()
                raise ClientGone from None
            raise
        finally:
            self.log_access(request, response.status, self.sent + (pusher.sent if pusher is not None else 0))
            self._cancel_on_disconnect = False
            self.streaming = False
            if pusher is not None:
                pusher.live = False
            await release(response)


async def release(response: StreamingResponse) -> None:
    """A streaming response is over, however it ended: tell its producer (``on_push(None)``), close its
    body (an async generator's ``finally`` runs now, not at garbage collection) and call ``on_close``. The
    one ending of every streaming response, over HTTP/1.1 and HTTP/2 (rawrt.server.h2)."""
    if response.on_push is not None:
        response.on_push(None)
    aclose = getattr(response.body, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
    if response.on_close is not None:
        try:
            response.on_close()
        except Exception:
            error_log.exception("on_close callback failed")
