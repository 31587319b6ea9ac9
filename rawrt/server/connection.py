"""The asyncio server: one task per TCP connection, driving :class:`rawrt.sansio.http11.HTTPConnection`.

Strategy (hypercorn's ``tcp_server.py`` shape, on a :class:`~rawrt.websocket.handover.ByteStream`):

* The connection task reads ``stream.read()`` (up to ``MAX_RECV`` bytes) under a timeout, feeds the bytes
  to the sans-IO connection, and handles its events one exchange at a time. Pipelined requests are
  therefore answered in order by construction (RFC 9112 §9.3.2), and each connection has exactly one
  writer: this task.
* Every failure is turned into an answer in one place, :meth:`ServerConnection._serve`: a protocol error
  gets its status and ``Connection: close``; a handler's bug gets a bare 500 and a logged traceback; a
  client that went away is not an error at all.
* Time lives here, not in the sans-IO layer: the ``Date`` header, the header/body/keep-alive timeouts,
  the graceful-shutdown deadline.

Logging goes to ``rawrt.error`` (problems) and ``rawrt.access`` (one line per response, INFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from ..app import Request, Response, StreamingResponse
from ..errors import LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError
from ..sansio import http11
from ..sansio.headers import HeaderList, Headers, HeaderSequence
from ..websocket import WebSocket
from ..websocket.handover import ByteStream
from .dates import http_date
from .upgrade import Session, handshake

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ServerConnection", "close_in_stages"]

error_log = logging.getLogger("rawrt.error")
access_log = logging.getLogger("rawrt.access")

T = TypeVar("T")

#: Longest lingering close (see :meth:`ServerConnection._linger`): enough for a client to read an error
#: response and notice it, short enough that a client that keeps sending cannot hold the connection.
#: Apache lingers up to 2 s per read (``MAX_SECS_TO_LINGER`` caps the total at 30 s).
LINGER_TIMEOUT = 2.0


#: An upgraded connection's parser, shared by all of them (see :meth:`ServerConnection.upgraded`). It stays
#: IDLE and empty: nothing feeds it, so a handshake request's ``body()`` is simply empty.
_UPGRADED = http11.HTTPConnection()
#: An upgraded connection's event deque, shared too (a deque costs ~760 bytes at once); never appended to.
_NO_EVENTS: deque[http11.Event] = deque(maxlen=0)


class _ClientGone(Exception):
    """The client closed or reset the connection: stop quietly."""


#: The last piece a push framed as a chunk, and its chunk: a fan-out pushes one bytes object to every
#: subscriber in turn, so an identity check saves framing (and allocating) it once per subscriber.
_last_piece: bytes | None = None
_last_chunk = b""


class _StreamPush:
    """The synchronous writer of one streaming response, the *push* ``StreamingResponse.on_push`` receives.

    A small callable object of its own, with ``__slots__``, rather than a bound method of the connection: a
    fan-out calls it once per client per event, and between two calls the kernel's send path has pushed it
    out of the CPU caches, so it costs the cache lines it touches: here one (no bound-method object, a few
    adjacent fields), not the connection's many fields.
    """

    __slots__ = ("live", "chunked", "transport", "high_water", "connection")

    def __init__(self, connection: ServerConnection) -> None:
        #: False once the body is over (the last chunk may be out): pushes are refused from then on.
        self.live = True
        self.chunked = connection.conn.sends_chunked
        self.transport = connection.transport
        self.high_water = connection.limits.write_high_water
        self.connection = connection

    def __call__(self, piece: bytes, /) -> bool:
        """Write a piece of the body now. Returns whether the transport still has room (at most
        ``write_high_water`` bytes waiting)."""
        transport = self.transport
        if not self.live or transport.is_closing():
            return False
        if self.chunked:
            # Framed here, as send_data() would (http11.HTTPConnection.sends_chunked), once for all the
            # connections a fan-out pushes the same bytes object to; flush() leaves nothing of the
            # connection's output behind, so the order on the wire is the same.
            global _last_piece, _last_chunk
            if piece is _last_piece:
                transport.write(_last_chunk)
            else:
                chunk = http11.encode_chunk(piece)
                if type(piece) is bytes:  # immutable: the same object is the same bytes next time
                    _last_piece, _last_chunk = piece, chunk
                transport.write(chunk)
        else:
            connection = self.connection
            connection.conn.send_data(piece)
            connection._flush()
        return transport.get_write_buffer_size() <= self.high_water


class ServerConnection:
    """One accepted TCP connection speaking HTTP/1.1 (until it maybe switches to WebSocket)."""

    def __init__(self, server: Server, stream: ByteStream) -> None:
        self.server = server
        self.limits = server.limits
        #: The connection's bytes, until a WebSocket takes the transport over (see :meth:`upgraded`).
        self.stream = stream
        assert stream.transport is not None
        self.transport = stream.transport
        self.conn = http11.HTTPConnection(server.limits)
        self.events: deque[http11.Event] = deque()
        peer = self.transport.get_extra_info("peername")
        self.client: tuple[str, int] | None = (str(peer[0]), int(peer[1])) if peer else None
        #: Waiting for a request with nothing buffered: safe to close at shutdown.
        self.idle = True
        self.requests_served = 0
        self.task: asyncio.Task[None] | None = None
        self.websocket: WebSocket | None = None
        #: The WebSocket session a 101 started, for run() to serve once _serve() has returned.
        self.session: Session | None = None
        self._disconnected = False
        self._watcher: asyncio.Task[None] | None = None
        self._cancel_on_disconnect = False
        self._closing = False
        #: A streaming response (SSE) is being sent: shutdown ends it instead of waiting for it.
        self.streaming = False
        #: Loop time at which the current bounded wait times out (0: no wait in progress). Read by the reaper.
        self.deadline = 0.0
        self._timed_out = False
        #: The trailer fields of the last chunked body read (RFC 9112 §7.1.2).
        self.trailers: HeaderList = []

    # ------------------------------------------------------------------------------------------- I/O

    async def _read(self, timeout: float | None) -> bytes:
        if timeout is None:
            return await self.stream.read()
        return await self._bounded(self.stream.read(), timeout)

    async def _bounded(self, awaitable: Awaitable[T], timeout: float) -> T:
        """Await with a deadline enforced by the server's reaper (see :meth:`Server._reap`).

        ``asyncio.timeout()`` schedules and cancels a timer on every read, which costs a noticeable share of
        a small request's time; a deadline stored on the connection and checked by one periodic task costs a
        float store. The price is precision: a timeout fires up to one reaper tick late.
        """
        self.deadline = self.server.loop_time() + timeout
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._timed_out:
                self._timed_out = False
                task = asyncio.current_task()
                if task is not None and hasattr(task, "uncancel"):
                    task.uncancel()
                raise TimeoutError from None
            raise
        finally:
            self.deadline = 0.0

    def time_out(self) -> None:
        """Called by the reaper when :attr:`deadline` has passed: interrupt the bounded wait."""
        self.deadline = 0.0
        if self.task is not None and not self.task.done():
            self._timed_out = True
            self.task.cancel()

    def _feed(self, data: bytes) -> None:
        if data:
            self.conn.receive_data(data)
        else:
            self.conn.receive_eof()

    def _flush(self) -> bool:
        """Write what the sans-IO connection produced. Returns False when it asked to close."""
        out = self.conn.data_to_send()
        keep = True
        if out and out[-1] == b"":
            out.pop()
            keep = False
        if out:
            # transport.write, not StreamWriter.write: the latter only forwards (one Python frame less).
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        return keep

    async def _drain(self, timeout: float | None = None, high_water: int | None = None) -> None:
        """Wait for the transport to take our output when it holds more than ``high_water`` bytes."""
        transport = self.transport
        limit = self.limits.write_high_water if high_water is None else high_water
        if transport.get_write_buffer_size() > limit or transport.is_closing():
            if timeout is None:
                await self.stream.drain()
            else:
                await self._bounded(self.stream.drain(), timeout)

    async def _next_event(self, timeout: float | None) -> http11.Event:
        """The next event of the current exchange, reading as needed (each read bounded by ``timeout``)."""
        while not self.events:
            self.events.extend(self.conn.events_received())
            if self.events:
                break
            if self._watcher is not None:
                await self._stop_watching()
                continue
            self._feed(await self._read(timeout))
        return self.events.popleft()

    # ---------------------------------------------------------------------------- disconnect watching

    async def wait_disconnected(self) -> None:
        """Return when the client has gone away, or the server is shutting down (see :class:`Request`)."""
        if self._disconnected:
            return
        if self.websocket is not None:
            # Upgraded: the WebSocket reads the socket now, and its end is the client's going away.
            await self.websocket.wait_closed()
            return
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        shutdown = self.server.shutdown_event
        waiter = asyncio.ensure_future(shutdown.wait())
        try:
            await asyncio.wait({self._watcher, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    def is_disconnected(self) -> bool:
        return self._disconnected

    async def _watch(self) -> None:
        """Read while the handler holds the request, so a client that leaves is noticed at once.

        Bytes that arrive meanwhile (a pipelined request) are kept for the parser, up to one request head's
        worth; past that the watcher stops reading, which is TCP backpressure on the client.
        """
        budget = self.limits.max_request_line + self.limits.max_header_bytes
        try:
            while self.conn.buffered_bytes <= budget:
                data = await self.stream.read()
                self._feed(data)
                if not data:
                    break
            else:
                await asyncio.Event().wait()  # keep "not disconnected" until cancelled
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            return
        self._disconnected = True
        if self._cancel_on_disconnect and self.task is not None:
            self.task.cancel()

    async def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    # ------------------------------------------------------------------------------------ the exchange

    def upgraded(self) -> None:
        """A WebSocket took the transport over (see ``WebSocket._take_over``): let the HTTP machinery go.

        Nothing on this connection reads, parses or writes HTTP again (:meth:`run` leaves the close to the
        WebSocket), and an idle WebSocket should not pay for the streams, the parser with its buffers and
        request event, or the event deque (docs/topics/memory.md).
        """
        self.stream = None  # type: ignore[assignment]
        self.conn = _UPGRADED
        self.events = _NO_EVENTS

    async def run(self) -> None:
        """Serve requests until the connection ends; never raises."""
        task = self.task = asyncio.current_task()
        if task is not None:
            # Tracked for the graceful shutdown; discarded at the end of the finally clause below, which
            # costs less per connection than a done callback.
            self.server._tasks.add(task)
        linger = False
        try:
            await self._serve()
            session, self.session = self.session, None
            if session is not None:
                # A 101 was sent: the WebSocket runs from here, with the HTTP exchange's frames released.
                await session.run()
            else:
                linger = True
        except (_ClientGone, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # RFC 9112 §9.6: a client may close at any time; that is not a server error
        except asyncio.CancelledError:
            if not self.server.closing:
                raise
        except Exception:  # pragma: no cover - a bug in rawrt itself
            error_log.exception("unexpected error on connection from %s", self.client)
        finally:
            try:
                await self._stop_watching()
                self.server.connections.discard(self)
                if self.websocket is None:
                    if linger:
                        await self._linger()
                    self.stream.close()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.stream.wait_closed(), 1.0)
            finally:
                if task is not None:
                    self.server._tasks.discard(task)

    async def _linger(self) -> None:
        """Close in stages when the client may still be sending (an error answered mid-request).

        RFC 9112 §9.6: closing at once while request bytes are still arriving makes our TCP stack answer
        them with a reset, which "might erase the client's unacknowledged input buffers": a client uploading
        a body past the limit would see ECONNRESET instead of our 413. So: half-close (our response is
        complete), then read and drop what the client still sends until it closes too, for at most
        :data:`LINGER_TIMEOUT` seconds (Apache's lingering close; nginx's ``lingering_close``).
        """
        if self.conn.client_state not in (http11.State.ERROR, http11.State.SEND_BODY):
            return  # the request was read whole: nothing more is coming that could provoke a reset
        await close_in_stages(self.stream)

    async def _serve(self) -> None:
        limits = self.limits
        loop = asyncio.get_running_loop()
        while True:
            # Waiting for a request head: the keep-alive timeout while nothing has arrived, then the header
            # timeout from the first byte (slowloris: a head must arrive within a bound, not trickle on).
            self.idle = self.conn.buffered_bytes == 0
            if self.server.closing and self.idle:
                return
            deadline: float | None = None
            try:
                # Parse only when there is something new: after a response, usually nothing is buffered.
                fresh = self.conn.buffered_bytes > 0 or self.conn.client_state is not http11.State.IDLE
                while not self.events:
                    if fresh:
                        self.events.extend(self.conn.events_received())
                        if self.events:
                            break
                    fresh = True
                    if self.conn.buffered_bytes and deadline is None and limits.header_timeout is not None:
                        deadline = loop.time() + limits.header_timeout
                        self.idle = False
                    if deadline is not None:
                        timeout: float | None = max(0.0, deadline - loop.time())
                    elif self.requests_served:
                        timeout = limits.keep_alive_timeout
                    else:
                        timeout = limits.header_timeout
                    # The read is inlined here (rather than self._read()) because this is the per-request
                    # hot path: two fewer coroutine frames to resume on every request.
                    self.deadline = 0.0 if timeout is None else loop.time() + timeout
                    try:
                        data = await self.stream.read()
                    except asyncio.CancelledError:
                        if not self._timed_out:
                            raise
                        self._timed_out = False
                        task = asyncio.current_task()
                        if task is not None and hasattr(task, "uncancel"):
                            task.uncancel()
                        raise TimeoutError from None
                    finally:
                        self.deadline = 0.0
                    if data:
                        self.conn.receive_data(data)
                    else:
                        self.conn.receive_eof()
            except TimeoutError:
                if self.conn.buffered_bytes:
                    # RFC 9110 §15.5.9: 408, the client did not produce a request in time.
                    self._reject(RemoteProtocolError("request head not received in time", status_hint=408))
                return
            except ProtocolError as exc:
                self._reject(exc)
                return
            event = self.events.popleft()
            if type(event) is http11.ConnectionEnded:
                return
            assert type(event) is http11.Request
            self.idle = False
            if not await self._exchange(event):
                return
            self.requests_served += 1
            if self.server.closing:
                return

    def _reject(self, exc: ProtocolError) -> None:
        """Answer a protocol error with its status and close: one place for every such answer."""
        error_log.debug("rejecting request from %s: %s %s", self.client, exc.status_hint, exc)
        self.conn.reject(exc, date=http_date())
        self._flush()
        self._log_access(None, exc.status_hint)

    async def _exchange(self, event: http11.Request) -> bool:
        """Route, run and answer one request. Returns whether the connection may carry another."""
        app = self.server.app
        request = Request(
            event.method.decode("ascii"),
            event.target.decode("ascii"),
            event.http_version.decode("ascii"),
            Headers(event.headers),
            client=self.client,
            source=self,
        )
        found = app.match(request.path)
        handler = None
        response: Response | StreamingResponse | None = None
        if found is None:
            response = Response.text("Not Found\n", 404)
        else:
            route, request.path_params = found
            method = request.method
            if route.websocket is not None and method == "GET" and event.upgrade is not None:
                outcome = await handshake(self, route, event, request)
                if isinstance(outcome, bool):
                    return outcome  # refused: the connection stays HTTP (or closes)
                self.session = outcome  # run by run(), once this exchange's frames are gone
                return False
            handler = route.handlers.get(method)
            if handler is None and method == "HEAD":
                handler = route.handlers.get("GET")
            if handler is None:
                handler = route.any_method
            if handler is None:
                if route.websocket is not None and method == "GET":
                    # RFC 6455 §4.2.2 / RFC 9110 §15.5.22: this resource speaks WebSocket only.
                    response = Response.text(
                        "Upgrade Required: this endpoint speaks WebSocket\n",
                        426,
                        [("upgrade", "websocket"), ("connection", "upgrade")],
                    )
                else:
                    allow = ", ".join(route.allowed())
                    response = Response.text("Method Not Allowed\n", 405, [("allow", allow)])
            elif event.content_length != 0:  # a body to limit (a chunked one has no declared length)
                limit = route.max_body_size.get(
                    method, route.max_body_size.get("*", self.limits.max_body_size)
                )
                try:
                    self.conn.set_max_body_size(limit)
                except LimitExceeded as exc:
                    self._reject(exc)
                    return False
        if handler is not None:
            try:
                response = await handler(request)
            except ProtocolError as exc:
                # Raised while reading the body (bad chunk, 413, EOF): answer it if we still can.
                if isinstance(exc, LocalProtocolError):
                    # Not the client's fault: the app asked for something unsendable (a CR/LF in a header
                    # value...). A bug like any other: logged with its traceback, answered with a bare 500.
                    error_log.exception("handler for %s %s failed", request.method, request.target)
                if self.conn.server_state is http11.State.SEND_RESPONSE:
                    self._reject(exc)
                return False
            except (_ClientGone, ConnectionError):
                raise
            except asyncio.CancelledError:
                if self._disconnected:
                    raise _ClientGone from None
                raise
            except Exception:
                error_log.exception("handler for %s %s failed", request.method, request.target)
                if self.conn.server_state is http11.State.SEND_RESPONSE:
                    self._reject(_internal_error())
                return False
            if not isinstance(response, (Response, StreamingResponse)):
                error_log.error("handler for %s returned %r, not a Response", request.target, response)
                self._reject(_internal_error())
                return False
        if self._watcher is not None:
            await self._stop_watching()
        assert response is not None
        if isinstance(response, Response):
            headers = self._final_headers(response.headers)
            # Response validated its fields when the handler built it (app.encode_headers).
            self.conn.send_response_bytes(
                response.status, headers, response.body, date=http_date(), validated=True
            )
            keep = self._flush()
            if self.transport.get_write_buffer_size() > self.limits.write_high_water:
                await self._drain()
        else:
            keep = await self._stream(response)
        self._log_access(request, response.status)
        if not keep:
            return False
        if self.events and type(self.events[0]) is http11.EndOfMessage:
            self.events.popleft()  # the end of a body the handler did not read
        if self.conn.client_state is http11.State.SEND_BODY:
            return await self._discard_unread_body()
        return self.conn.server_state is not http11.State.MUST_CLOSE

    def _final_headers(self, headers: HeaderSequence) -> HeaderSequence:
        """The response's headers, plus ``Connection: close`` when a shutdown began while it was prepared.

        RFC 9112 §9.6: a server about to close SHOULD say so in its last response, so that a client does not
        pipeline (or reuse the connection for) a request that will never be answered.
        """
        if self.server.closing:
            return [*headers, (b"connection", b"close")]
        return headers

    async def _stream(self, response: StreamingResponse) -> bool:
        """Send a streaming body, each piece flushed at once; stop when the client leaves."""
        self.conn.send_response(response.status, self._final_headers(response.headers), date=http_date())
        self._flush()
        body = response.body
        self.streaming = True
        if self.server.closing:
            self.abort_stream()
        pusher = None
        if response.on_push is not None:
            pusher = _StreamPush(self)
            response.on_push(pusher)
        try:
            self._cancel_on_disconnect = True
            if self._watcher is None and self.conn.client_state is not http11.State.SEND_BODY:
                self._watcher = asyncio.get_running_loop().create_task(self._watch())
            await self._drain(response.send_timeout)
            async for piece in body:
                self.conn.send_data(piece.encode("utf-8") if isinstance(piece, str) else piece)
                self._flush()
                # Each piece waits for the transport to take it, bounded by send_timeout: a reader that
                # stopped reading is cut off instead of growing our buffer without end.
                await self._drain(response.send_timeout, high_water=0)
            self._cancel_on_disconnect = False
            # The body ended normally and the connection may carry another request: the watcher must stop
            # reading first, or _serve()'s next read collides with it ("read() called while another
            # coroutine is already waiting"). Bytes it already read stay buffered in the parser.
            await self._stop_watching()
            if pusher is not None:
                pusher.live = False  # the body is over: nothing may follow the last chunk
            self.conn.send_end()
            keep = self._flush()
            await self._drain()
            return keep
        except asyncio.CancelledError:
            if self._disconnected or self.server.closing:
                task = asyncio.current_task()
                if task is not None and hasattr(task, "uncancel"):
                    task.uncancel()
                if not self._disconnected:
                    # Shutdown: an endless stream (SSE) will not finish by itself, so it ends here, properly
                    # terminated (the last chunk), and the client reconnects elsewhere or later.
                    with contextlib.suppress(Exception):
                        self.conn.send_end()
                        self._flush()
                raise _ClientGone from None
            raise
        finally:
            self._cancel_on_disconnect = False
            self.streaming = False
            if pusher is not None:
                pusher.live = False
            if response.on_push is not None:
                response.on_push(None)
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if response.on_close is not None:
                try:
                    response.on_close()
                except Exception:
                    error_log.exception("on_close callback failed")

    async def _discard_unread_body(self) -> bool:
        """Read and drop what the handler left of the body, so the next request can be parsed."""
        conn = self.conn
        if conn.client_state is not http11.State.SEND_BODY:
            return conn.server_state is not http11.State.MUST_CLOSE
        try:
            while True:
                event = await self._next_event(self.limits.body_timeout)
                if type(event) is http11.EndOfMessage:
                    return self._flush() and conn.server_state is http11.State.IDLE
        except (ProtocolError, TimeoutError):
            return False

    # -------------------------------------------------------------- the body source for Request.stream()

    async def read_body_chunk(self) -> bytes | None:
        """The next piece of the request body, or ``None`` at its end. Sends ``100 Continue`` if awaited."""
        conn = self.conn
        if conn.client_state is http11.State.ERROR and not self.events:
            # The parser hands out the Data parsed before a bad chunk first and raises on the next call:
            # surface that error here. A body cut short by a protocol error must never look complete.
            conn.events_received()
            raise RemoteProtocolError("the request body is unreadable after a protocol error")
        if conn.client_state is not http11.State.SEND_BODY and not self.events:
            return None
        if conn.expects_continue:
            conn.send_informational(100)
            self._flush()
        try:
            event = await self._next_event(self.limits.body_timeout)
        except TimeoutError:
            raise RemoteProtocolError("request body stalled", status_hint=408) from None
        if type(event) is http11.Data:
            return event.data
        assert type(event) is http11.EndOfMessage
        self.trailers = event.trailers
        return None

    # -------------------------------------------------------------------------------------- WebSocket

    # -------------------------------------------------------------------------------------- logging

    def _log_access(self, request: Request | None, status: int) -> None:
        if access_log.isEnabledFor(logging.INFO):
            peer = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            line = f"{request.method} {request.target} HTTP/{request.http_version}" if request else "-"
            access_log.info('%s - "%s" %d', peer, line, status)

    def abort_stream(self) -> None:
        """Shutdown: end a streaming response now (it is cancelled, then terminated cleanly)."""
        if self.streaming and self.task is not None:
            self.task.cancel()

    def abort_idle(self) -> None:
        """Shutdown: close this connection now if it is waiting for a request."""
        if self.idle and self.task is not None and self.websocket is None:
            self.task.cancel()


async def close_in_stages(stream: ByteStream) -> None:
    """Half-close, then read and drop input until the client closes too, for at most LINGER_TIMEOUT."""
    transport = stream.transport
    if transport is None or transport.is_closing() or stream.at_eof():
        return

    async def discard() -> None:
        if transport.can_write_eof():
            transport.write_eof()
        while await stream.read():
            pass

    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        await asyncio.wait_for(discard(), LINGER_TIMEOUT)


def _internal_error() -> ProtocolError:
    return ProtocolError("internal server error", status_hint=500)
