"""The HTTP/2 connection driver: :class:`rawrt.sansio.h2.H2Connection` on a socket, serving the same
:class:`~rawrt.app.App` as HTTP/1.1.

Strategy (hypercorn's ``h2.py`` shape):

* The connection's task reads the socket and feeds the sans-IO connection; each request stream gets a task
  of its own, so streams run concurrently: a held long poll does not hold up the next request.
* Every write goes through the one sans-IO connection and out at once (:meth:`H2Session.flush`), so the
  frames of all streams interleave in one ordered byte stream without a writer task.
* Flow control is backpressure for the handler (§5.2): a response waits for window (bounded by
  ``send_timeout``) instead of buffering; a request body is given back to the client's window only as the
  handler reads it (:meth:`_Stream.read_body_chunk`), so a slow reader stalls its stream, not the
  connection, and memory stays bounded by the windows in :class:`~rawrt.limits.Limits`.
* A stream's failures are answered where HTTP/1.1 answers them: a protocol error with its status, a handler's
  bug with a bare 500 and a logged traceback, both only while no response has begun; after that, a
  RST_STREAM (INTERNAL_ERROR).
* Shutdown (:meth:`H2Session.shutdown`): GOAWAY with the last stream id (§6.8), then the open streams end as
  they do over HTTP/1.1: event streams at once, held long polls answered, other requests within
  ``shutdown_timeout``.

* WebSocket over HTTP/2 (RFC 8441): SETTINGS_ENABLE_CONNECT_PROTOCOL is advertised, and an extended CONNECT
  with ``:protocol websocket`` is the route's WebSocket handshake; its stream then carries the WebSocket,
  through :class:`~rawrt.server.h2_websocket.StreamTransport` (DATA both ways, END_STREAM and RST_STREAM for
  the close), under the same WebSocket code as over HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Protocol

from ..app import Request, Resolution, Response, StreamingResponse
from ..errors import LocalProtocolError, ProtocolError
from ..limits import Limits
from ..sansio.h2.connection import (
    ConnectionTerminated,
    DataReceived,
    Event,
    H2Connection,
    RequestReceived,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from ..sansio.h2.frames import ErrorCode
from ..sansio.headers import HeaderList, Headers
from ..websocket.handover import ByteStream
from .body import BodyPace
from .channel import ClientGone, ServerSide, access_log, error_log, write_access_log
from .dates import http_date
from .h2_websocket import StreamTransport, serve_websocket
from .h2trace import H2Tracer
from .proxy import forwarded
from .streaming import release

__all__ = ["H2Session", "Owner"]


class Owner(Protocol):
    """What a session needs of the connection it runs on (a :class:`~rawrt.server.ServerConnection`; a
    protocol here, so that the HTTP/1.1 driver imports this module and not the other way round)."""

    server: ServerSide
    limits: Limits
    transport: asyncio.Transport
    stream: ByteStream
    client: tuple[str, int] | None
    local: tuple[str, int] | None
    proxied: bool
    idle: bool
    task: asyncio.Task[None] | None

    async def read(self, timeout: float | None) -> bytes: ...


#: Fields HTTP/2 forbids (RFC 9113 §8.2.2): an app's response may carry them for HTTP/1.1; they are dropped.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
#: Statuses that have no content (RFC 9110 §15.2, §15.3.5, §15.4.5): no content-length is added.
_NO_CONTENT = frozenset({204, 304})


class _Stream:
    """One request stream: its body as it arrives (the request's ``BodySource``), and its response's
    pending output under flow control."""

    __slots__ = (
        "session",
        "stream_id",
        "headers",
        "body",
        "body_size",
        "max_body_size",
        "ended",
        "trailers",
        "arrived",
        "gone",
        "gone_event",
        "pending",
        "drained",
        "ending",
        "task",
        "streaming",
        "started",
        "answered",
        "tunnel",
        "pace",
    )

    def __init__(
        self, session: H2Session, stream_id: int, headers: list[tuple[bytes, bytes]], ended: bool
    ) -> None:
        self.session = session
        self.stream_id = stream_id
        self.headers = headers
        self.body: deque[bytes] = deque()
        self.body_size = 0
        self.max_body_size: int | None = None
        self.ended = ended
        self.trailers: HeaderList = []
        self.arrived = asyncio.Event()
        # The body's waits (body_timeout, body_min_rate), as over HTTP/1.1; none for a stream that came with
        # END_STREAM (a GET: no body will be read, so nothing is allocated for one).
        self.pace = None if ended else BodyPace()
        self.gone = False  # reset by either side, or the connection is lost
        self.gone_event = asyncio.Event()
        #: Response DATA waiting for flow-control window, sent in order by pump().
        self.pending: deque[bytes] = deque()
        self.drained = asyncio.Event()
        self.drained.set()
        self.ending = False  # END_STREAM goes out once pending is empty
        self.task: asyncio.Task[None] | None = None
        self.streaming = False
        self.started = 0.0
        self.answered = False
        #: The transport of the WebSocket this stream carries (an extended CONNECT, RFC 8441).
        self.tunnel: StreamTransport | None = None

    # --- the request body: rawrt.app.BodySource ------------------------------------------------------

    async def read_body_chunk(self) -> bytes | None:
        session = self.session
        while not self.body:
            if self.ended:
                return None
            if self.gone:
                raise ClientGone
            self.arrived.clear()
            pace, loop = self.pace, asyncio.get_running_loop()
            assert pace is not None  # not ended: it came without END_STREAM
            began = loop.time()
            try:
                await asyncio.wait_for(self.arrived.wait(), pace.next_wait(session.limits))
            except (TimeoutError, asyncio.TimeoutError):
                pace.account(loop.time() - began, 0)
                raise pace.error(session.limits, ProtocolError) from None
            pace.account(loop.time() - began, 0)
        chunk = self.body.popleft()
        assert self.pace is not None  # DATA came: it came without END_STREAM
        self.pace.account(0.0, len(chunk))
        # Consumed: the client may send this much more (§6.9). Given back here, not on arrival, so that a
        # handler that does not read holds at most one window of this stream's body.
        session.conn.acknowledge_received_data(self.stream_id, len(chunk))
        session.flush()
        return chunk

    async def wait_disconnected(self) -> None:
        if self.gone:
            return
        waiters = [
            asyncio.ensure_future(self.gone_event.wait()),
            asyncio.ensure_future(self.session.server.shutdown_event.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def is_disconnected(self) -> bool:
        return self.gone

    def lose(self) -> None:
        """The stream is over from the client's side (reset, or the connection is gone)."""
        self.gone = True
        self.gone_event.set()
        self.arrived.set()
        self.drained.set()
        if self.streaming and self.task is not None:
            self.task.cancel()
        if self.tunnel is not None:
            self.tunnel.lost()

    # --- the response's output under flow control ----------------------------------------------------

    def pump(self) -> None:
        """Send as much pending DATA as the windows allow (and END_STREAM once all of it is out)."""
        conn = self.session.conn
        pending = self.pending
        while pending:
            room = conn.send_window(self.stream_id)
            if room <= 0:
                return
            piece = pending[0]
            if len(piece) <= room:
                pending.popleft()
                conn.send_data(self.stream_id, piece, end_stream=self.ending and not pending)
            else:
                conn.send_data(self.stream_id, piece[:room])
                pending[0] = piece[room:]
        # Everything sent (END_STREAM rode on the last piece if the body is ending).
        self.drained.set()

    def queue(self, piece: bytes) -> None:
        """Queue a piece of the body and send now what the windows allow."""
        self.pending.append(piece)
        self.drained.clear()
        self.pump()
        self.session.flush()

    def push(self, piece: bytes) -> bool:
        """The *push* of a streaming response (``rawrt.app.Push``): queue a piece, send what the windows
        allow; whether there is room for more. Refused once the body ended or the stream is gone."""
        if self.gone or self.ending or not self.streaming:
            return False
        self.queue(piece)
        return not self.pending and self.session.room()

    async def write(self, piece: bytes, timeout: float | None) -> None:
        """Queue a piece and wait until it is sent (window given, transport not over its high water)."""
        if self.gone:
            raise ClientGone
        if piece:
            self.queue(piece)
        await self.wait_sent(timeout)

    async def wait_sent(self, timeout: float | None) -> None:
        session = self.session
        try:
            if not self.drained.is_set():
                await asyncio.wait_for(self.drained.wait(), timeout)
            if self.gone:
                raise ClientGone
            await session.drain(timeout)
        except (TimeoutError, asyncio.TimeoutError):
            # A reader that gave no window (or stopped reading) for send_timeout: its stream is cut off,
            # and the connection's other streams go on.
            session.reset(self.stream_id, ErrorCode.CANCEL)
            raise ClientGone from None

    async def end(self, timeout: float | None) -> None:
        """END_STREAM after the pending DATA."""
        if self.gone:
            raise ClientGone
        if not self.pending:
            self.session.conn.end_stream(self.stream_id)
            self.session.flush()
            return
        self.ending = True
        await self.wait_sent(timeout)


class H2Session:
    """One HTTP/2 connection (module docstring), run by its :class:`ServerConnection`'s task."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.server = owner.server
        self.limits = owner.limits
        self.transport = owner.transport
        # RFC 8441 §3: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, so clients may open WebSockets on streams.
        self.conn = H2Connection(owner.limits, enable_connect_protocol=True)
        self.streams: dict[int, _Stream] = {}
        self.going_away = False
        self._second = 0.0  # when the current second of stream counting began (the loop's clock)
        self._opened = 0  # streams opened in it
        self._idle = asyncio.Event()
        #: The ``rawrt.trace`` frame log (``Server(trace=True)``); None, and no cost, otherwise.
        self.tracer = H2Tracer(owner.limits, owner.client) if owner.server.trace else None

    # --- output ----------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the sans-IO connection produced, now (every stream's writes share this one call)."""
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            if self.tracer is not None:
                self.tracer.sent(data)
            self.transport.write(data)

    def room(self) -> bool:
        """Whether the transport holds no more than its high-water mark of our output."""
        return self.transport.get_write_buffer_size() <= self.limits.write_high_water

    async def drain(self, timeout: float | None) -> None:
        """Wait for the transport to take our output (TCP backpressure for every stream at once)."""
        if not self.room():
            stream = self.owner.stream
            await asyncio.wait_for(stream.drain(), timeout or self.limits.send_timeout)

    def reset(self, stream_id: int, code: int) -> None:
        self.conn.reset_stream(stream_id, code)
        self.flush()
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.lose()

    # --- the connection's life -------------------------------------------------------------------------

    async def run(self, initial: bytes) -> None:
        """Serve the connection until it ends (the caller closes the socket).

        Args:
            initial: the bytes read before HTTP/2 was recognised (the preface, maybe more).
        """
        conn = self.conn
        conn.initiate()
        self.flush()
        try:
            self.receive(initial)
            while not conn.terminated:
                if self.going_away and not self.streams:
                    break
                # Idle (no stream open) for keep_alive_timeout: the client has nothing to say; GOAWAY.
                timeout = None if self.streams else self.limits.keep_alive_timeout
                self.owner.idle = not self.streams
                try:
                    data = await self.owner.read(timeout)
                except TimeoutError:
                    conn.close()
                    self.flush()
                    break
                if not data:
                    break
                self.receive(data)
                # A client that sends (pings, SETTINGS, requests) and does not read what we answer is held
                # back here: reading stops while our output waits, so nothing piles up (TCP backpressure).
                if not self.room():
                    await self.drain(self.limits.send_timeout)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        finally:
            self.owner.idle = True
            for stream in list(self.streams.values()):
                stream.lose()
            tasks = [s.task for s in self.streams.values() if s.task is not None]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)

    def receive(self, data: bytes) -> None:
        if self.tracer is not None:
            self.tracer.received(data)
        for event in self.conn.receive_data(data):
            self.dispatch(event)
        self.flush()

    def dispatch(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                return
            if stream.tunnel is not None:
                stream.tunnel.data_received(event.data, event.end_stream)
                return
            stream.body.append(event.data)
            stream.body_size += len(event.data)
            stream.ended = event.end_stream
            stream.arrived.set()
            if stream.max_body_size is not None and stream.body_size > stream.max_body_size:
                self.too_large(stream)
        elif isinstance(event, RequestReceived):
            self.start(event)
        elif isinstance(event, TrailersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream.tunnel is not None:
                stream.tunnel.data_received(b"", True)  # a tunnel has no trailers: only its end counts
            elif stream is not None:
                stream.trailers = event.headers
                stream.ended = True
                stream.arrived.set()
        elif isinstance(event, WindowUpdated):
            targets = self.streams.values() if event.stream_id == 0 else [self.streams.get(event.stream_id)]
            for stream in list(targets):
                if stream is not None and stream.pending:
                    stream.pump()
                    if stream.tunnel is not None:
                        stream.tunnel.pumped()
        elif isinstance(event, StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.lose()
                if not event.remote:
                    error_log.debug(
                        "HTTP/2 stream %d from %s reset: %s",
                        event.stream_id,
                        self.owner.client,
                        event.message,
                    )
        else:
            assert isinstance(event, ConnectionTerminated)
            if not event.remote:
                error_log.info("HTTP/2 connection from %s closed: %s", self.owner.client, event.message)
            elif event.error_code != ErrorCode.NO_ERROR:
                error_log.debug("HTTP/2 client %s went away: error %d", self.owner.client, event.error_code)
            self.going_away = True

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY (§6.8), end event streams; the rest finish in the shutdown budget."""
        if not self.going_away:
            self.going_away = True
            self.conn.close()
            self.flush()
        self.end_streaming()
        if not self.streams and self.owner.task is not None:
            self.owner.task.cancel()

    def end_streaming(self) -> None:
        for stream in self.streams.values():
            if stream.streaming and stream.task is not None:
                stream.task.cancel()

    # --- one stream ------------------------------------------------------------------------------------

    def start(self, event: RequestReceived) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Streams opened per second (Limits.h2_max_streams_per_second): the concurrency limit bounds what is
        # open at once, not how fast a client opens and finishes streams; one connection must not take the
        # whole event loop. Past it, REFUSED_STREAM: the request was not processed, and may be retried
        # later (RFC 9113 §8.7).
        if now - self._second >= 1.0:
            self._second, self._opened = now, 0
        self._opened += 1
        if self._opened > self.limits.h2_max_streams_per_second:
            self.conn.reset_stream(event.stream_id, ErrorCode.REFUSED_STREAM)
            return
        stream = _Stream(self, event.stream_id, event.headers, event.end_stream)
        self.streams[event.stream_id] = stream
        stream.started = now
        task = stream.task = loop.create_task(self.serve(stream))
        # Tracked by the server like a connection's task: a graceful shutdown waits for it.
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def too_large(self, stream: _Stream) -> None:
        """A body over the route's limit: 413 if no answer began, and the stream is reset (§8.1)."""
        stream.body.clear()
        if stream.task is not None and stream.task is not asyncio.current_task():
            stream.task.cancel()
        if not stream.answered:
            limit = stream.max_body_size
            self.answer(stream, 413, f"request body larger than {limit} bytes\n".encode())
        # The rest of the body is not wanted (§8.1): NO_ERROR once the 413 is out, else the stream is cut.
        if not stream.pending:
            self.reset(stream.stream_id, ErrorCode.NO_ERROR)

    def request(self, stream: _Stream) -> Request:
        """The :class:`Request` a handler sees: ``:authority`` as ``host`` (RFC 9113 §8.3.1), cookies joined
        into one field (§8.2.3), ``http_version`` ``"2"``."""
        pseudo: dict[bytes, bytes] = {}
        fields: HeaderList = []
        cookies: list[bytes] = []
        for name, value in stream.headers:
            if name.startswith(b":"):
                pseudo[name] = value
            elif name == b"cookie":
                cookies.append(value)
            else:
                fields.append((name, value))
        if cookies:
            fields.append((b"cookie", b"; ".join(cookies)))
        authority = pseudo.get(b":authority")
        if authority is not None and not any(name == b"host" for name, _ in fields):
            fields.insert(0, (b"host", authority))
        request = Request(
            pseudo[b":method"].decode("ascii"),
            pseudo.get(b":path", b"/").decode("ascii", "replace"),
            "2",
            Headers(fields),
            client=self.owner.client,
            server=self.owner.local,
            source=stream,
        )
        server = self.server
        if self.owner.proxied:
            request.client, request.scheme = forwarded(
                request.headers, self.owner.client, server.scheme, server.trusts
            )
        elif server.scheme != "http":
            request.scheme = server.scheme
        if server.root_path:
            request.mount(server.root_path)
        return request

    async def serve(self, stream: _Stream) -> None:
        """Route, run and answer one request; never raises (a stream's end is not the connection's)."""
        request: Request | None = None
        status = 0
        sent: int | None = None
        try:
            request = self.request(stream)
            resolved = self.resolve(stream, request)
            if resolved.params is not None:
                request.path_params = resolved.params
            if resolved.websocket is not None:
                assert resolved.route is not None
                status = await serve_websocket(self, stream, request, resolved.route)
                if status != 200 and not stream.ended and not stream.gone:
                    # A refused handshake: the tunnel's DATA is not wanted (§8.1), as a body after a 413.
                    self.reset(stream.stream_id, ErrorCode.NO_ERROR)
                return
            response: Response | StreamingResponse | None = resolved.response
            if resolved.handler is not None:
                limit = resolved.max_body_size
                stream.max_body_size = self.limits.max_body_size if limit is None else limit
                if stream.body_size > stream.max_body_size:
                    self.too_large(stream)
                    status = 413
                    return
                response = await resolved.handler(request)
                if not isinstance(response, (Response, StreamingResponse)):
                    error_log.error("handler for %s returned %r, not a Response", request.target, response)
                    raise ProtocolError("internal server error", status_hint=500)
            assert response is not None
            status = response.status
            if isinstance(response, Response):
                sent = await self.send_response(stream, request, response)
            else:
                sent = await self.send_streaming(stream, request, response)
            if not stream.ended and not stream.gone:
                # §8.1: the answer is complete; the rest of the request is not wanted.
                self.reset(stream.stream_id, ErrorCode.NO_ERROR)
        except (ClientGone, asyncio.CancelledError):
            if not stream.answered and not stream.gone:
                self.reset(stream.stream_id, ErrorCode.CANCEL)
        except Exception as exc:
            status = self.answer_failure(stream, request, exc)
        finally:
            self.streams.pop(stream.stream_id, None)
            if status and access_log.isEnabledFor(20):
                duration = asyncio.get_running_loop().time() - stream.started
                write_access_log(
                    self.server.access_log_format, self.owner.client, request, status, sent, duration
                )
            if self.going_away and not self.streams and self.owner.task is not None and self.server.closing:
                self.owner.task.cancel()

    def resolve(self, stream: _Stream, request: Request) -> Resolution:
        """Route a request. An extended CONNECT with ``:protocol websocket`` (RFC 8441 §4) is what a GET with
        ``Upgrade: websocket`` is over HTTP/1.1: the route's WebSocket handshake; on a route without a
        WebSocket it is a CONNECT like any other (405, or 404)."""
        app = self.server.app
        if request.method == "CONNECT" and (b":protocol", b"websocket") in stream.headers:
            resolved = app.resolve("GET", request.path, True)
            if resolved.websocket is not None:
                return resolved
        return app.resolve(request.method, request.path, False)

    def answer_failure(self, stream: _Stream, request: Request | None, exc: Exception) -> int:
        """The one place a stream's failure becomes a status (as ``ServerConnection._answer_failure``)."""
        if isinstance(exc, ProtocolError):
            error = exc
            if isinstance(exc, LocalProtocolError) and request is not None:
                error_log.error("handler for %s %s failed", request.method, request.target, exc_info=exc)
        else:
            target = request.target if request is not None else "?"
            error_log.error("handler for stream %d (%s) failed", stream.stream_id, target, exc_info=exc)
            error = ProtocolError("internal server error", status_hint=500)
        if stream.answered or stream.gone:
            self.reset(stream.stream_id, ErrorCode.INTERNAL_ERROR)
            return 0
        self.answer(stream, error.status_hint, f"{error}\n".encode())
        return error.status_hint

    def answer(self, stream: _Stream, status: int, body: bytes) -> None:
        """A plain-text answer of rawrt's own (an error), sent as the windows allow, without waiting."""
        stream.answered = True
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        self.conn.send_headers(stream.stream_id, self.head(status, headers, len(body)))
        stream.ending = True
        stream.queue(body)

    def head(
        self, status: int, headers: HeaderList | tuple[tuple[bytes, bytes], ...], length: int | None
    ) -> list[tuple[bytes, bytes]]:
        out = [(b":status", str(status).encode())]
        for name, value in headers:
            lowered = name.lower()
            if lowered not in _HOP_BY_HOP and lowered != b"content-length":
                out.append((lowered, value))
        if length is not None and status not in _NO_CONTENT:
            out.append((b"content-length", str(length).encode()))
        out.append((b"date", http_date()))
        out.append((b"server", b"rawrt"))
        return out

    async def send_response(self, stream: _Stream, request: Request, response: Response) -> int:
        body = b"" if request.method == "HEAD" or response.status in _NO_CONTENT else response.body
        stream.answered = True
        headers = self.head(response.status, response.headers, len(response.body))
        if not body:
            self.conn.send_headers(stream.stream_id, headers, end_stream=True)
            self.flush()
            return 0
        self.conn.send_headers(stream.stream_id, headers)
        stream.ending = True
        await stream.write(body, self.limits.send_timeout)
        return len(body)

    async def send_streaming(self, stream: _Stream, request: Request, response: StreamingResponse) -> int:
        stream.answered = True
        self.conn.send_headers(stream.stream_id, self.head(response.status, response.headers, None))
        self.flush()
        sent = 0
        body = response.body
        stream.streaming = True
        if self.going_away and stream.task is not None:
            stream.task.cancel()  # shutting down: an event stream ends at once (as over HTTP/1.1)
        if response.on_push is not None:
            response.on_push(stream.push)
        try:
            async for piece in body:
                data = piece.encode("utf-8") if isinstance(piece, str) else piece
                await stream.write(data, response.send_timeout)
                sent += len(data)
            stream.streaming = False
            await stream.end(self.limits.send_timeout)
        except asyncio.CancelledError:
            if stream.gone:
                raise ClientGone from None
            # Shutdown: an endless stream (SSE) ends here, properly (END_STREAM); the client reconnects.
            with contextlib.suppress(Exception):
                stream.pending.clear()
                self.conn.end_stream(stream.stream_id)
                self.flush()
            raise ClientGone from None
        finally:
            stream.streaming = False
            await release(response)
        return sent
