"""WebSocket over asyncio: the object handlers and clients use, the server upgrade, and the client.

Strategy
--------
:class:`WebSocket` wraps a sans-IO :class:`~rawrt.sansio.ws.connection.WebSocketConnection`. The opening
handshake is read and written on asyncio streams; after it the WebSocket takes the transport over and is its
:class:`asyncio.Protocol` (no stream objects and no reader task per connection: docs/topics/memory.md).
``data_received`` feeds the connection, writes its automatic answers (pong, close echo) at once, and queues
complete messages for :meth:`WebSocket.recv`; so a handler that only sends still answers pings and notices a
close. The queue is bounded (``Limits.ws_max_queue``): when it is full the WebSocket pauses the transport's
reading, and TCP flow control pushes back on the peer.

Sending is synchronous down to ``transport.write``; when the transport holds more than
``Limits.ws_write_high_water`` bytes it pauses our writing, and :meth:`WebSocket.send` waits until it
resumes (backpressure), one waiter at a time.

While writing is paused we read nothing either. The peer is not reading what we write, and every frame
we read may add to it: RFC 6455 §5.5.2 makes us answer each ping with a pong, so a peer that sends pings and
never reads would otherwise grow our write buffer without bound. Holding the reading side lets TCP flow
control push back on the peer; the write buffer stays within ``ws_write_high_water`` plus the answers to one
read (``MAX_RECV``). Writing paused for ``Limits.send_timeout`` means the peer stopped reading: the
connection is aborted (no close frame could reach it: 1006 locally, RFC 6455 §7.1.5), its buffers freed, and
a waiting :meth:`WebSocket.send` raises ``ConnectionClosed``. One timer per pause, none per frame.

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
import secrets
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionClosed, LocalProtocolError, ProtocolError
from ..limits import DEFAULT_LIMITS, Limits
from ..sansio.headers import Headers
from ..sansio.ws.connection import (
    BinaryMessage,
    CloseReceived,
    Ping,
    Pong,
    Role,
    State,
    TextMessage,
    WebSocketConnection,
)
from ..sansio.ws.frames import CloseCode
from .trace import FrameTracer

if TYPE_CHECKING:
    from ..app import Request, Tap

__all__ = ["WebSocket", "Message"]

error_log = logging.getLogger("rawrt.error")
trace_log = logging.getLogger("rawrt.trace")

#: The message queue of a WebSocket that has received none yet (empty, never appended to).
_NO_MESSAGES: deque[Any] = deque(maxlen=0)

Message = str | bytes


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

    # Set only while writing is paused, so these stay class attributes (out of the instance dict) for the
    # idle connections that never fill their buffer (docs/topics/memory.md).
    #: Aborts the connection if writing stays paused for ``Limits.send_timeout``.
    _stall_timer: asyncio.TimerHandle | None = None
    #: We paused the transport's reading because its writing is paused (the module docstring).
    _reading_held = False
    #: The connection was aborted by ``send_timeout``.
    _send_timed_out = False
    #: The wire tap (rawrt.lab) that sees this connection's bytes, if any: set per instance only when tapped.
    _tap: Tap | None = None

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: WebSocketConnection,
        *,
        limits: Limits = DEFAULT_LIMITS,
        subprotocol: str | None = None,
        headers: Headers | None = None,
        request: Request | None = None,
        trace: bool = False,
        tap: Tap | None = None,
        initial: bytes = b"",
        eof: bool = False,
        writing_paused: bool = False,
    ) -> None:
        """Take the connection over after the opening handshake.

        Args:
            transport: the connection, given up by the protocol that read the handshake
                (:meth:`rawrt.websocket.handover.ByteStream.detach` says what the next three are).
            protocol: the sans-IO WebSocket connection.
            tap: a copy of every byte read and written goes to it (the demo's wire view, rawrt.lab).
            initial: bytes received after the handshake and not handled yet: the first frames.
            eof: whether the peer's EOF (or the connection's loss) came already.
            writing_paused: whether the transport paused writing for the previous protocol.
        """
        self.protocol = protocol
        self.limits = limits
        self.subprotocol = subprotocol
        self.headers = headers if headers is not None else Headers()
        self.request = request
        self._transport = transport
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
        self._tracer = FrameTracer(protocol.role) if trace else None
        if tap is not None:
            self._tap = tap
        self._logged = False
        self._take_over(eof=eof, writing_paused=writing_paused)
        if limits.ws_ping_interval is not None:
            self._keepalive = self._loop.call_later(limits.ws_ping_interval, self._send_keepalive)
        # Bytes that arrived behind the opening handshake are the first frames (a client need not wait for
        # the 101 before sending): they are handled before anything else is read.
        if initial:
            self.data_received(initial)
        if eof:
            self.eof_received()

    def _take_over(self, *, eof: bool, writing_paused: bool) -> None:
        """Make this WebSocket the transport's protocol, in place of the one that read the handshake.

        A protocol instead of streams saves, per connection, the stream objects, a reader task and its
        suspended ``read()`` frames, and a task switch per received batch (docs/topics/memory.md). The
        caller runs this with no ``await`` since the previous protocol gave the transport up, so no byte can
        slip past: what it had received but not handled is in ``initial``.
        """
        transport = self._transport
        # The transport was already closed (by the peer): no connection_lost() will come to us.
        self._lost = transport.is_closing()
        transport.set_protocol(self)
        # send() waits above ws_write_high_water; make that the transport's own pause threshold.
        transport.set_write_buffer_limits(high=self.limits.ws_write_high_water)
        if not eof and not self._lost and not transport.is_reading():
            transport.resume_reading()  # the previous protocol paused it (its buffer was full); we read now
        if writing_paused and not self._lost:
            # A protocol that was paused for writing stays paused in the transport's eyes, which will call
            # resume_writing() on us now.
            self.pause_writing()

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
        if self._tap is not None:
            self._tap.received(data)
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
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if self.protocol.state is not State.CLOSED:
            # A reset, an abort, or a close without the peer's close frame: 1006 (§7.1.5).
            self.protocol.receive_eof()
            self._process(eof=True)
        for waiter in (self._drain_waiter, self._lost_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._finish()
        if self._tap is not None:
            self._tap.done(True)

    def pause_writing(self) -> None:
        self._writing_paused = True
        transport = self._transport
        # Read nothing while the peer reads nothing of ours (the module docstring: a ping flood).
        if not self._reading_held and not transport.is_closing():
            self._reading_held = True
            if not self._reading_paused:
                transport.pause_reading()
        timeout = self.limits.send_timeout
        if timeout is not None and self._stall_timer is None:
            self._stall_timer = self._loop.call_later(timeout, self._stalled)

    def resume_writing(self) -> None:
        self._writing_paused = False
        timer = self._stall_timer
        if timer is not None:
            timer.cancel()
            self._stall_timer = None
        if self._reading_held:
            self._reading_held = False
            if not self._reading_paused and not self._transport.is_closing():
                self._transport.resume_reading()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _stalled(self) -> None:
        """Writing stayed paused for ``send_timeout``: the peer stopped reading. Abort (1006 locally)."""
        self._stall_timer = None
        self._send_timed_out = True
        # No close frame: it would queue behind what the peer is not reading. abort() drops the transport's
        # buffer at once; connection_lost() follows, records 1006 (§7.1.5) and wakes a waiting send().
        self._transport.abort()

    def _process(self, *, eof: bool) -> None:
        """Write the sans-IO connection's answers, queue its messages, and apply backpressure."""
        protocol = self.protocol
        self.flush()
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
                if not self._reading_held:
                    self._transport.pause_reading()

    def _resume(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if not self._reading_held and not self._transport.is_closing():
                self._transport.resume_reading()

    def _wake_recv(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self) -> None:
        """The connection is over: wake everyone, stop timers, close TCP. Runs once."""
        if self._closed.done():
            return
        # Not the stall timer: a transport closed with unread data in its buffer waits for the peer to
        # take it, and the timer still aborts it after send_timeout (connection_lost() cancels it).
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

    async def wait_connection_lost(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, until the transport is closed for good (asyncio's
        ``connection_lost``), which may come later than :meth:`wait_closed`: that returns once the close
        handshake is over and the transport was told to close, not once the socket is."""
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
                self.flush()  # write the coalesced answers before waiting for more
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
        # The WebSocket is its own iterator, rather than an async generator that would live as long as the
        # connection (docs/topics/performance.md).
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    # ---------------------------------------------------------------------------------------- writing

    def flush(self) -> None:
        """Write to the transport now what the sans-IO connection has queued, without waiting.

        :meth:`send`, :meth:`ping` and :meth:`close` do this themselves. Call it after driving
        :attr:`protocol` directly (as :func:`~rawrt.websocket.broadcast` does, or ``protocol.fail()``), so
        that the frames go out; a close the connection asked for (its ``b""``) closes the transport here.
        """
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
                if self._tap is not None:
                    self._tap.sent(data)
        if eof and not self._transport.is_closing():
            # The sans-IO connection says: close our write side. A server closes TCP first (§7.1.1). Not
            # on a transport that is already closing or lost (uvloop's write_eof() raises on one).
            if self.protocol.role is Role.SERVER:
                self._transport.close()
            elif self._transport.can_write_eof():
                with contextlib.suppress(OSError):
                    self._transport.write_eof()

    def write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the peer's TCP stack (the transport's write buffer).

        :meth:`send` waits while it is above ``Limits.ws_write_high_water``; a fan-out that does not wait
        (:func:`~rawrt.websocket.broadcast`) reads it to find the connections too slow to keep up.
        """
        return self._transport.get_write_buffer_size()

    async def drain(self) -> None:
        """Wait while the transport holds more than ``ws_write_high_water`` bytes (backpressure).

        :meth:`send` does this itself; call it after :meth:`send_encoded` or
        :func:`~rawrt.websocket.fanout.send_shared`. The wait is bounded by ``Limits.send_timeout``.

        Raises:
            ConnectionClosed: the connection was lost, or aborted after ``send_timeout`` (code 1006).
        """
        if self._transport.get_write_buffer_size() <= self.limits.ws_write_high_water:
            return
        if self._drain_lock is None:
            self._drain_lock = asyncio.Lock()
        async with self._drain_lock:
            # Woken by resume_writing() (the transport took the data) or by connection_lost(), which also
            # follows the abort of a pause longer than send_timeout (_stalled).
            while self._writing_paused and not self._lost:
                self._drain_waiter = self._loop.create_future()
                try:
                    await self._drain_waiter
                finally:
                    self._drain_waiter = None
            if self._lost:
                if self._send_timed_out:
                    reason = f"send_timeout: nothing read for {self.limits.send_timeout} s"
                    raise ConnectionClosed(CloseCode.ABNORMAL_CLOSURE, reason)
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
                self._flush_handle = self._loop.call_soon(self.flush)
            return
        self.flush()
        await self.drain()

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
                self.flush()
                await self.drain()
            previous = piece
        if text is None:
            raise ValueError("a fragmented message needs at least one piece")
        assert previous is not None
        protocol.send_fragment(previous, text=text, fin=True)
        self.flush()
        await self.drain()

    def send_encoded(self, frame: bytes) -> None:
        """Send a frame encoded once for many connections (see :func:`broadcast`)."""
        self.protocol.send_encoded(frame)
        self.flush()

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
        self.flush()
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
        self.flush()
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
            self.flush()
        self._transport.abort()

    # --------------------------------------------------------------------------------------- closing

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake and wait (at most ``ws_close_timeout``) for it to finish."""
        if self.protocol.state is State.OPEN:
            try:
                self.protocol.send_close(code, reason)
            except ConnectionClosed:
                pass
            self.flush()
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
