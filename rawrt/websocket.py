"""WebSocket over asyncio: the object handlers and clients use, the server upgrade, and the client.

Strategy
--------
:class:`WebSocket` wraps a sans-IO :class:`~rawrt.sansio.websocket.WebSocketConnection`. The opening
handshake is read and written on asyncio streams; after it the WebSocket takes the transport over and is its
:class:`asyncio.Protocol` (no stream objects and no reader task per connection: docs/topics/memory.md).
``data_received`` feeds the connection, writes its automatic answers (pong, close echo) at once, and queues
complete messages for :meth:`WebSocket.recv`; so a handler that only sends still answers pings and notices a
close. The queue is bounded (``Limits.ws_max_queue``): when it is full the WebSocket pauses the transport's
reading, and TCP flow control pushes back on the peer.

Sending is synchronous down to ``transport.write``; when the transport holds more than
``Limits.ws_write_high_water`` bytes it pauses our writing, and :meth:`WebSocket.send` waits until it
resumes (backpressure), one waiter at a time.

Keepalive pings are timer callbacks, not tasks: a ping every ``ws_ping_interval``, and a peer that does not
answer within ``ws_ping_timeout`` is closed with 1011 (the idle connection then costs no task). The close
handshake is bounded by ``ws_close_timeout`` (RFC 6455 §7.1.1: the server closes TCP first; a client waits
for that, then closes anyway).

Tracing: with ``trace=True`` every frame in both directions is logged on ``rawrt.trace`` the way a learner
wants to see it: direction, FIN, RSV1, opcode, mask key, payload length and the first payload bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import ssl as _ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from .errors import ConnectionClosed, HandshakeError, LocalProtocolError, ProtocolError
from .limits import DEFAULT_LIMITS, MAX_RECV, Limits
from .sansio import abnf
from .sansio import handshake as hs
from .sansio.deflate import CLIENT_DEFAULTS, SERVER_DEFAULTS, DeflateOptions
from .sansio.frames import CloseCode, Opcode, apply_mask, encode_frame
from .sansio.headers import Headers
from .sansio.websocket import (
    BinaryMessage,
    CloseReceived,
    Ping,
    Pong,
    Role,
    State,
    TextMessage,
    WebSocketConnection,
)

if TYPE_CHECKING:
    from .app import Request, Route
    from .server import ServerConnection

__all__ = ["WebSocket", "connect", "broadcast", "upgrade", "handshake", "Session", "Message"]

error_log = logging.getLogger("rawrt.error")
trace_log = logging.getLogger("rawrt.trace")

#: The message queue of a WebSocket that has received none yet (empty, never appended to).
_NO_MESSAGES: deque[Any] = deque(maxlen=0)

Message = str | bytes


class _Detached(asyncio.WriteTransport):
    """What a StreamWriter points at once its transport was taken over (see ``WebSocket._take_over``)."""

    def is_closing(self) -> bool:
        return True

    def close(self) -> None:
        pass


_DETACHED = _Detached()


class WebSocket(asyncio.Protocol):
    """An open WebSocket, on the server (given to ``@app.websocket`` handlers) or the client side.

    Iterate over it for messages (``str`` for text, ``bytes`` for binary); iteration ends when the
    connection closes. :attr:`close_code` and :attr:`close_reason` then say how.

    After the opening handshake the WebSocket takes the transport over from the asyncio streams and is its
    :class:`asyncio.Protocol`: ``data_received`` and the other protocol callbacks are internal, not API.

    Attributes:
        request: the opening handshake's request (server side), with its headers and query.
        subprotocol: the negotiated subprotocol, or None.
        headers: the handshake's headers (the request's on the server, the response's on the client).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: WebSocketConnection,
        *,
        limits: Limits = DEFAULT_LIMITS,
        subprotocol: str | None = None,
        headers: Headers | None = None,
        request: Request | None = None,
        trace: bool = False,
        initial: bytes = b"",
    ) -> None:
        self.protocol = protocol
        self.limits = limits
        self.subprotocol = subprotocol
        self.headers = headers if headers is not None else Headers()
        self.request = request
        # A stream's transport reads too (typeshed only promises a WriteTransport).
        self._transport = cast(asyncio.Transport, writer.transport)
        self._loop = asyncio.get_running_loop()
        # Allocated on the first message: a deque costs ~760 bytes at once, and many connections (broadcast
        # listeners) never receive one (docs/topics/memory.md).
        self._messages: deque[Message] = _NO_MESSAGES
        self._recv_waiter: asyncio.Future[None] | None = None
        #: We paused the transport's reading because the message queue is full (backpressure).
        self._reading_paused = False
        #: The transport asked us to stop writing (its buffer is above ws_write_high_water).
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._drain_lock: asyncio.Lock | None = None
        #: connection_lost() has run (or the transport was already gone when we took it over).
        self._lost = False
        self._lost_waiter: asyncio.Future[None] | None = None
        # Write coalescing (see send()): bytes of frames left in the sans-IO output, and the flush that
        # bounds how long they wait.
        self._deferred = 0
        self._flush_handle: asyncio.Handle | None = None
        self._pings: dict[bytes, asyncio.Future[float]] = {}
        self._closed = self._loop.create_future()
        self._keepalive: asyncio.TimerHandle | None = None
        self._ping_deadline: asyncio.TimerHandle | None = None
        #: A client's wait for the server to close TCP after the close handshake (RFC 6455 §7.1.1).
        self._close_timer: asyncio.TimerHandle | None = None
        self._tracer = _Tracer(protocol.role) if trace else None
        self._logged = False
        initial, eof = self._take_over(reader, writer, initial)
        if limits.ws_ping_interval is not None:
            self._keepalive = self._loop.call_later(limits.ws_ping_interval, self._send_keepalive)
        # Bytes that arrived behind the opening handshake are the first frames (a client need not wait for
        # the 101 before sending): they are handled before anything else is read.
        if initial:
            self.data_received(initial)
        if eof:
            self.eof_received()

    def _take_over(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initial: bytes
    ) -> tuple[bytes, bool]:
        """Make this WebSocket the transport's protocol, in place of the streams that read the handshake.

        A protocol instead of streams saves, per connection, the ``StreamReader``, its protocol and writer
        (with a 64-slot deque for drain waiters), a reader task and its suspended ``read()`` frames, and a
        task switch per received batch (docs/topics/memory.md). Runs with no ``await`` in between, so no
        byte can slip past: what the stream buffered but nobody read yet joins ``initial``.

        Returns:
            The bytes to handle first, and whether the peer's EOF (or the connection's loss) came with them.
        """
        transport = self._transport
        old = transport.get_protocol()
        # asyncio has no public non-blocking read: take the StreamReader's buffer directly (a bytearray, in
        # every asyncio since 3.4). Usually empty: the handshake's read took all there was.
        buffered: bytearray | None = getattr(reader, "_buffer", None)
        if buffered:
            initial += bytes(buffered)
            buffered.clear()
        eof = reader.at_eof() or reader.exception() is not None
        # The transport was already closed (by the peer): no connection_lost() will come to us.
        self._lost = transport.is_closing()
        transport.set_protocol(self)
        # A stream protocol that was paused for writing stays paused in the transport's eyes, which will
        # call resume_writing() on us now.
        self._writing_paused = bool(getattr(old, "_paused", False))
        if isinstance(old, asyncio.StreamReaderProtocol):
            # For the stream protocol the connection is gone. Telling it so also drops its references to
            # the reader and writer, so they are freed now rather than by the cycle collector.
            old.connection_lost(None)
        # A StreamWriter collected while its transport is open closes it (asyncio's guard against leaked
        # streams). The transport is ours now: the writer gets a closed stand-in, so dropping it is safe.
        writer._transport = _DETACHED  # type: ignore[attr-defined]
        # send() waits above ws_write_high_water; make that the transport's own pause threshold.
        transport.set_write_buffer_limits(high=self.limits.ws_write_high_water)
        if not eof and not self._lost and not transport.is_reading():
            transport.resume_reading()  # the StreamReader paused it (its buffer was full); we read now
        return initial, eof

    # ---------------------------------------------------------------------------------------- state

    @property
    def close_code(self) -> int | None:
        """The close code once closed (the peer's, or 1006 when TCP dropped without a close frame)."""
        return self.protocol.close_code if self.protocol.state is State.CLOSED else None

    @property
    def close_reason(self) -> str:
        """The peer's close reason, if any."""
        return self.protocol.close_reason

    @property
    def open(self) -> bool:
        """Whether messages can still be sent."""
        return self.protocol.state is State.OPEN

    async def wait_closed(self) -> None:
        """Return once the connection is fully closed."""
        await asyncio.shield(self._closed)

    # ------------------------------------------------------------------- reading (asyncio.Protocol)

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        if protocol.state is State.CLOSED:
            return  # §5.5.1: nothing after a close frame is a frame (a client waiting for the server's EOF)
        if self._tracer is not None:
            self._tracer.received(data)
        protocol.receive_data(data)
        self._process(eof=False)

    def eof_received(self) -> bool | None:
        if self.protocol.state is not State.CLOSED:
            self.protocol.receive_eof()
            self._process(eof=True)
        self._finish()
        return None  # the transport closes itself: nothing more can come, and the close is answered

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self.protocol.state is not State.CLOSED:
            # A reset, an abort, or a close without the peer's close frame: 1006 (§7.1.5).
            self.protocol.receive_eof()
            self._process(eof=True)
        for waiter in (self._drain_waiter, self._lost_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._finish()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _process(self, *, eof: bool) -> None:
        """Write the sans-IO connection's answers, queue its messages, and apply backpressure."""
        protocol = self.protocol
        self._flush()
        for event in protocol.events_received():
            kind = type(event)
            if kind is TextMessage or kind is BinaryMessage:
                if self._messages is _NO_MESSAGES:
                    self._messages = deque()
                self._messages.append(event.data)  # type: ignore[union-attr]
                waiter = self._recv_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif kind is Pong:
                self._pong(event.payload)  # type: ignore[union-attr]
            elif kind is Ping or kind is CloseReceived:
                pass  # answered by the sans-IO connection already (pong, close echo)
        failure = protocol.failure
        if failure is not None and not isinstance(failure, ProtocolError) and not self._logged:
            self._logged = True  # a bug in rawrt, answered with 1011: log it once
            error_log.error("WebSocket failed with an internal error", exc_info=failure)
        state: State = protocol.state  # (re-read: receive_data may have closed it)
        if state is State.CLOSED:
            if eof or protocol.role is Role.SERVER:
                self._finish()
            elif self._close_timer is None:
                # RFC 6455 §7.1.1: the server closes TCP first. recv() learns of the close now; TCP waits
                # for the server's EOF, at most ws_close_timeout, and is closed anyway after that.
                self._wake_recv()
                self._close_timer = self._loop.call_later(self.limits.ws_close_timeout, self._finish)
        elif state is State.OPEN and len(self._messages) >= self.limits.ws_max_queue:
            # Backpressure (STYLE §1): stop reading until the app takes messages. Not once we are closing:
            # the peer's close frame must still be read, whoever takes the messages.
            if not self._reading_paused and not self._transport.is_closing():
                self._reading_paused = True
                self._transport.pause_reading()

    def _resume(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if not self._transport.is_closing():
                self._transport.resume_reading()

    def _wake_recv(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self) -> None:
        """The connection is over: wake everyone, stop timers, close TCP. Runs once."""
        if self._closed.done():
            return
        for handle in (self._keepalive, self._ping_deadline, self._close_timer):
            if handle is not None:
                handle.cancel()
        self._wake_recv()
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(self.protocol.close_code, self.protocol.close_reason))
                fut.exception()  # mark retrieved: a ping nobody awaits must not log "never retrieved"
        self._pings.clear()
        if not self._transport.is_closing():
            self._transport.close()
        self._closed.set_result(None)

    async def _wait_lost(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, for the transport to be closed for good."""
        if self._lost:
            return
        if self._lost_waiter is None:
            self._lost_waiter = self._loop.create_future()
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._lost_waiter), timeout)

    async def recv(self) -> Message:
        """The next message.

        Raises:
            ConnectionClosed: the connection closed (``code``/``reason`` say how).
        """
        if self._recv_waiter is not None:
            # Two readers would race for the same messages: one consumer per connection (as websockets).
            raise RuntimeError("recv() is already being awaited by another task")
        while not self._messages:
            # CLOSED with nothing queued: no message can follow (the parser discards everything now), even
            # while a client still waits for the server to close TCP.
            if self._closed.done() or self.protocol.state is State.CLOSED:
                raise ConnectionClosed(self.protocol.close_code, self.protocol.close_reason)
            if self._deferred:
                self._flush()  # write the coalesced answers before waiting for more
            self._recv_waiter = self._loop.create_future()
            try:
                await self._recv_waiter
            finally:
                self._recv_waiter = None
        message = self._messages.popleft()
        if self._reading_paused:
            self._resume()  # read the next batch; _process() pauses again if the queue is still full
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        # The WebSocket is its own iterator: no async generator object and frame per connection, and one
        # generator step less per message.
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    # ---------------------------------------------------------------------------------------- writing

    def _flush(self) -> None:
        self._deferred = 0
        self._flush_handle = None
        out = self.protocol.data_to_send()
        if not out:
            return
        eof = out[-1] == b""
        if eof:
            out.pop()
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            if self._tracer is not None:
                self._tracer.sent(data)
            if not self._transport.is_closing():
                self._transport.write(data)
        if eof and not self._transport.is_closing():
            # The sans-IO connection says: close our write side. A server closes TCP first (§7.1.1). Not
            # on a transport that is already closing or lost (uvloop's write_eof() raises on one).
            if self.protocol.role is Role.SERVER:
                self._transport.close()
            elif self._transport.can_write_eof():
                with contextlib.suppress(OSError):
                    self._transport.write_eof()

    async def _drain(self) -> None:
        if self._transport.get_write_buffer_size() <= self.limits.ws_write_high_water:
            return
        if self._drain_lock is None:
            self._drain_lock = asyncio.Lock()
        async with self._drain_lock:
            # Woken by resume_writing() (the transport took the data) or by connection_lost().
            while self._writing_paused and not self._lost:
                self._drain_waiter = self._loop.create_future()
                try:
                    await self._drain_waiter
                finally:
                    self._drain_waiter = None
            if self._lost:
                raise ConnectionClosed(self.protocol.close_code, self.protocol.close_reason)

    async def send(self, message: Message | Iterable[Message] | AsyncIterable[Message]) -> None:
        """Send a message: ``str`` as text, ``bytes`` as binary; an (async) iterable of pieces as one
        fragmented message (RFC 6455 §5.4), all pieces of the same type.

        Waits while the transport holds more than ``ws_write_high_water`` bytes (backpressure).

        Raises:
            ConnectionClosed: the connection is closing or closed.
        """
        protocol = self.protocol
        if isinstance(message, str):
            protocol.send_text(message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            protocol.send_binary(message)
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(message.__aiter__())
            return
        elif isinstance(message, Iterable):
            await self._send_fragments(_aiter(message))
            return
        else:
            raise TypeError(
                f"cannot send {type(message).__name__}: expected str, bytes or an iterable of them"
            )
        if self._messages and self._deferred < self.limits.ws_write_high_water:
            # Write coalescing: the app is answering a backlog of received messages (a pipelining peer),
            # so this frame stays in the sans-IO output and the batch goes out in one transport.write (one
            # system call instead of one per message). recv() flushes before it waits, every other write
            # flushes the batch first (order is kept: all output goes through data_to_send()), and a
            # call_soon bounds the delay to one loop iteration if the app stops reading. At most
            # ws_write_high_water bytes wait this way; past that, send() flushes and drains as usual.
            self._deferred += len(message)
            if self._flush_handle is None:
                self._flush_handle = self._loop.call_soon(self._flush)
            return
        self._flush()
        await self._drain()

    async def _send_fragments(self, pieces: AsyncIterator[Message]) -> None:
        protocol = self.protocol
        text: bool | None = None
        previous: Message | None = None
        async for piece in pieces:
            is_text = isinstance(piece, str)
            if text is None:
                text = is_text
            elif text != is_text:
                raise TypeError("all fragments of a message must be of the same type")
            if previous is not None:
                protocol.send_fragment(previous, text=text, fin=False)
                self._flush()
                await self._drain()
            previous = piece
        if text is None:
            raise ValueError("a fragmented message needs at least one piece")
        assert previous is not None
        protocol.send_fragment(previous, text=text, fin=True)
        self._flush()
        await self._drain()

    def send_encoded(self, frame: bytes) -> None:
        """Send a frame encoded once for many connections (see :func:`broadcast`)."""
        self.protocol.send_encoded(frame)
        self._flush()

    # ------------------------------------------------------------------------------------ ping / pong

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping and wait for its pong (RFC 6455 §5.5.2).

        Returns:
            The round-trip time in seconds.
        """
        payload = secrets.token_bytes(4) if data is None else data
        if payload in self._pings:
            raise LocalProtocolError("a ping with this payload is already waiting for its pong")
        self.protocol.send_ping(payload)  # raises ConnectionClosed before anything is registered
        fut: asyncio.Future[float] = self._loop.create_future()
        self._pings[payload] = fut
        self._flush()
        sent = self._loop.time()
        await fut
        return self._loop.time() - sent

    def _pong(self, payload: bytes) -> None:
        # §5.5.3: a pong echoes its ping's payload; an unsolicited pong (no such ping) is simply ignored.
        fut = self._pings.pop(payload, None)
        if fut is not None and not fut.done():
            fut.set_result(self._loop.time())
        if self._ping_deadline is not None:
            self._ping_deadline.cancel()
            self._ping_deadline = None
            interval = self.limits.ws_ping_interval
            if interval is not None:
                self._keepalive = self._loop.call_later(interval, self._send_keepalive)

    def _send_keepalive(self) -> None:
        if self.protocol.state is not State.OPEN:
            return
        payload = b"rawrt-keepalive-" + secrets.token_hex(4).encode()
        try:
            self.protocol.send_ping(payload)
        except ConnectionClosed:
            return
        self._flush()
        timeout = self.limits.ws_ping_timeout
        if timeout is not None:
            self._ping_deadline = self._loop.call_later(timeout, self._keepalive_timeout)
        elif self.limits.ws_ping_interval is not None:
            # No deadline means no pong will reschedule us (see _pong): keep pinging on our own.
            self._keepalive = self._loop.call_later(self.limits.ws_ping_interval, self._send_keepalive)

    def _keepalive_timeout(self) -> None:
        # No pong within ws_ping_timeout: the peer is gone or stuck. 1011 as the ecosystem does.
        self._ping_deadline = None
        if self.protocol.state is State.OPEN:
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
        self._transport.abort()

    # --------------------------------------------------------------------------------------- closing

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake and wait (at most ``ws_close_timeout``) for it to finish."""
        if self.protocol.state is State.OPEN:
            try:
                self.protocol.send_close(code, reason)
            except ConnectionClosed:
                pass
            self._flush()
        if self._reading_paused:
            # Read again so the peer's close frame can be seen; queued messages are dropped.
            self._messages.clear()
            self._resume()
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), self.limits.ws_close_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            self.abort()
        await self.wait_closed()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close handshake."""
        self._transport.abort()
        # connection_lost() follows and finishes; this covers a transport that had already lost it.
        self._finish()


async def _aiter(items: Iterable[Message]) -> AsyncIterator[Message]:
    for item in items:
        yield item


# -------------------------------------------------------------------------------------------- tracing


class _Tracer:
    """Decodes the bytes on the wire into frames for the ``rawrt.trace`` log (a learner's view)."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self._in = bytearray()
        self._out = bytearray()

    def received(self, data: bytes) -> None:
        self._log(self._in, data, "<<", masked=self.role is Role.SERVER)

    def sent(self, data: bytes) -> None:
        self._log(self._out, data, ">>", masked=self.role is Role.CLIENT)

    @staticmethod
    def _log(buf: bytearray, data: bytes, arrow: str, *, masked: bool) -> None:
        buf += data
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            key = b""
            if b1 & 0x80:
                key = bytes(buf[pos : pos + 4])
                pos += 4
            if len(buf) < pos + min(length, 1 << 24):
                return
            payload = bytes(buf[pos : pos + length])
            if key:
                payload = apply_mask(payload, key)
            try:
                name = Opcode(b0 & 0x0F).name
            except ValueError:
                name = f"0x{b0 & 0x0F:x}"
            trace_log.debug(
                "%s fin=%d rsv1=%d opcode=%s mask=%s len=%d payload=%r%s",
                arrow,
                b0 >> 7,
                (b0 >> 6) & 1,
                name,
                key.hex() or "-",
                length,
                payload[:32],
                "..." if length > 32 else "",
            )
            del buf[: pos + length]


# ----------------------------------------------------------------------------------------- the server


async def _after_refusal(conn: ServerConnection) -> bool:
    """A refused handshake was answered over HTTP: finish the exchange as ``_exchange`` does, so the
    connection can carry the next request. Returns whether it may.

    The request's ``EndOfMessage`` (already parsed) and any body it had must be consumed first, or the
    next read would hand ``_serve`` an ``EndOfMessage`` where it expects a ``Request``.
    """
    from .sansio import http11

    if conn.events and type(conn.events[0]) is http11.EndOfMessage:
        conn.events.popleft()
    if conn.conn.client_state is http11.State.SEND_BODY:
        return await conn._discard_unread_body()
    return conn.conn.server_state is not http11.State.MUST_CLOSE


async def upgrade(conn: ServerConnection, route: Route, event: Any, request: Request) -> bool:
    """Answer a WebSocket opening handshake on a server connection and run the route's handler.

    Returns whether the connection stays HTTP: False after a 101 and the session (the connection never goes
    back to HTTP), the keep-alive decision after a refused handshake (400/403/405/426).
    """
    session = await handshake(conn, route, event, request)
    if isinstance(session, bool):
        return session
    await session.run()
    return False


class Session:
    """An accepted WebSocket and the handler that will serve it (see :func:`handshake`)."""

    __slots__ = ("conn", "ws", "handler", "limits")

    def __init__(self, conn: ServerConnection, ws: WebSocket, handler: Any, limits: Limits) -> None:
        self.conn = conn
        self.ws = ws
        self.handler = handler
        self.limits = limits

    async def run(self) -> None:
        """Run the handler; then finish the close handshake (1000 if the handler did not close; 1011 if it
        raised) and wait, bounded, for TCP to close."""
        conn, ws, limits = self.conn, self.ws, self.limits
        try:
            await self.handler(ws)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            ws.abort()
            raise
        except Exception:
            request = ws.request
            error_log.exception("WebSocket handler for %s failed", request.target if request else "?")
            if ws.open:
                ws.protocol.fail(CloseCode.INTERNAL_ERROR, "")
                ws._flush()
        finally:
            conn.server.websockets.discard(ws)
            try:
                if ws.protocol.state is not State.CLOSED:
                    await ws.close(CloseCode.NORMAL_CLOSURE)
                else:
                    await asyncio.wait_for(ws.wait_closed(), limits.ws_close_timeout)
            except (TimeoutError, asyncio.TimeoutError):
                ws.abort()
            await ws._wait_lost(1.0)


async def handshake(conn: ServerConnection, route: Route, event: Any, request: Request) -> Session | bool:
    """The opening handshake (RFC 6455 §4.2) on a server connection.

    Returns:
        The :class:`Session` to run after a 101, or, after a refusal (the route's check, or 400/403/405/426
        from :func:`rawrt.sansio.handshake.accept`), whether the HTTP connection may carry another request.
        The server runs the session from the top of the connection's task, so the HTTP exchange's coroutine
        frames are gone for the life of the WebSocket (memory per idle connection, docs/topics/memory.md).
    """
    from .server import http_date

    options = route.ws_options
    check = options.get("check")
    if check is not None:
        # The route's own validation (e.g. query parameters) answers with plain HTTP before any 101.
        refusal = check(request)
        if refusal is not None:
            conn.conn.send_response_bytes(refusal.status, refusal.headers, refusal.body, date=http_date())
            keep = conn._flush()
            conn._log_access(request, refusal.status)
            return keep and await _after_refusal(conn)
    limits: Limits = options.get("limits") or conn.limits
    compression = options.get("compression", "permessage-deflate")
    deflate: DeflateOptions | None
    if compression is None or compression is False:
        deflate = None
    elif isinstance(compression, DeflateOptions):
        deflate = compression
    else:
        deflate = SERVER_DEFAULTS
    try:
        accepted = hs.accept(
            event.method,
            event.http_version,
            event.headers,
            subprotocols=options.get("subprotocols", ()),
            origins=options.get("origins"),
            deflate=deflate,
        )
    except HandshakeError as exc:
        status, _reason, headers, body = hs.reject(exc)
        # Its Content-Length is the body's own: send_response_bytes checks it and writes it once.
        conn.conn.send_response_bytes(status, headers, body, date=http_date())
        keep = conn._flush()
        conn._log_access(request, status)
        return keep and await _after_refusal(conn)
    http = conn.conn
    http.send_response(101, list(accepted.headers), date=http_date())
    conn._flush()
    conn._log_access(request, 101)
    protocol = WebSocketConnection(Role.SERVER, limits=limits, extension=accepted.extension)
    ws = WebSocket(
        conn.reader,
        conn.writer,
        protocol,
        limits=limits,
        subprotocol=accepted.subprotocol,
        headers=request.headers,
        request=request,
        trace=conn.server.trace,
        initial=http.trailing_data,
    )
    conn.websocket = ws
    conn.upgraded()
    # Held for the app (ws.request.headers) but rarely read again: one bytes object instead of a list of
    # pairs until then.
    request.headers.pack()
    conn.server.websockets.add(ws)
    handler = route.websocket
    assert handler is not None
    return Session(conn, ws, handler, limits)


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
        if ws._transport.get_write_buffer_size() > 4 * ws.limits.ws_write_high_water:
            ws.protocol.send_close(CloseCode.TRY_AGAIN_LATER, "too slow for the broadcast")
            ws._flush()
            continue
        if ws.protocol.role is Role.SERVER:
            ws.send_encoded(frame)
        else:
            ws.protocol.send_text(message) if isinstance(message, str) else ws.protocol.send_binary(message)
            ws._flush()
        sent += 1
    return sent


# ----------------------------------------------------------------------------------------- the client


async def connect(
    uri: str,
    *,
    subprotocols: Iterable[str] = (),
    compression: str | DeflateOptions | None = "permessage-deflate",
    headers: Iterable[tuple[str, str]] = (),
    origin: str | None = None,
    ssl: _ssl.SSLContext | None = None,
    limits: Limits = DEFAULT_LIMITS,
    open_timeout: float | None = 10.0,
    trace: bool = False,
) -> WebSocket:
    """Open a WebSocket client connection (RFC 6455 §4.1).

    Args:
        uri: ``ws://host[:port]/path?query`` or ``wss://...``.
        subprotocols: subprotocols to offer, most preferred first.
        compression: ``"permessage-deflate"`` (offer it), a :class:`DeflateOptions`, or None.
        headers: extra request header fields.
        origin: an ``Origin`` to send.
        ssl: the TLS context for ``wss://`` (default: the system's trust store).
        limits: message size, keepalive and close timeouts.
        open_timeout: bound on TCP connect + TLS + handshake.
        trace: log every frame on ``rawrt.trace``.

    Raises:
        HandshakeError: the server refused or answered wrongly (status, missing header, bad accept...).
        OSError / TimeoutError: the connection could not be made in time.
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URI: {uri!r}")
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if secure and ssl is None:
        ssl = _ssl.create_default_context()
    if isinstance(compression, DeflateOptions):
        deflate: DeflateOptions | None = compression
    elif compression:
        deflate = CLIENT_DEFAULTS
    else:
        deflate = None
    host_header = host if (port == (443 if secure else 80)) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" + ("" if port == (443 if secure else 80) else f":{port}")

    async def opening() -> WebSocket:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl, limit=MAX_RECV)
        try:
            request = hs.build_request(
                host_header,
                nonce=lambda: secrets.token_bytes(16),
                subprotocols=list(subprotocols),
                origin=origin,
                deflate=deflate,
            )
            fields = [*request.headers, *[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]]
            head = b"GET %b HTTP/1.1\r\n" % target.encode("ascii") + b"".join(
                b"%b: %b\r\n" % pair for pair in fields
            )
            writer.write(head + b"\r\n")
            status, response_headers, leftover = await _read_response_head(reader, limits)
            result = hs.check_response(request, status, response_headers)
        except BaseException:
            writer.close()
            raise
        protocol = WebSocketConnection(
            Role.CLIENT, limits=limits, mask_key=lambda: secrets.token_bytes(4), extension=result.extension
        )
        return WebSocket(
            reader,
            writer,
            protocol,
            limits=limits,
            subprotocol=result.subprotocol,
            headers=Headers(response_headers),
            trace=trace,
            initial=leftover,
        )

    if open_timeout is None:
        return await opening()
    return await asyncio.wait_for(opening(), open_timeout)


async def _read_response_head(
    reader: asyncio.StreamReader, limits: Limits
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Read the handshake's response head (RFC 9112 §4, §5), strictly and within the header limits.

    Returns:
        The status, the fields, and the bytes that followed the head (the server's first frames).
    """
    buf = bytearray()
    limit = limits.max_request_line + limits.max_header_bytes
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) > limit:
            raise HandshakeError(f"response head larger than {limit} bytes")
        data = await reader.read(MAX_RECV)
        if not data:
            raise HandshakeError("connection closed during the opening handshake")
        buf += data
    head = bytes(buf[:end])
    status_line, _, fields = head.partition(b"\r\n")
    match = _STATUS_LINE_RE.fullmatch(status_line)
    if match is None:
        raise HandshakeError(f"invalid status line {status_line[:80]!r}")
    section = fields + b"\r\n" if fields else b""
    if abnf.FIELD_SECTION_RE.fullmatch(section) is None:
        raise HandshakeError("invalid header section in the handshake response")
    pairs = [(name, value.rstrip(b" \t")) for name, value in abnf.FIELD_PAIRS_RE.findall(section)]
    status = int(match.group(1))
    if status != 101:
        raise HandshakeError(f"server answered {status} {match.group(2).decode('latin-1')!r}, expected 101")
    return status, pairs, bytes(buf[end + 4 :])


# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
_STATUS_LINE_RE = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3}) ([\t \x21-\x7e\x80-\xff]*)")
