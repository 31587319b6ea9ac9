"""The HTTP/1.1 connection driver: one task per TCP connection, driving
:class:`rawrt.sansio.http11.HTTPConnection`.

Strategy (hypercorn's ``tcp_server.py`` shape):

* HTTP/2 is told apart first (:meth:`ServerConnection._http2_preface`) and served by :mod:`.h2`.
* The connection's task reads its :class:`~rawrt.websocket.handover.ByteStream` (up to ``MAX_RECV`` bytes
  at a time) under a timeout, feeds the bytes to the sans-IO connection, and handles its events one
  exchange at a time. Pipelined requests are therefore answered in order by construction (RFC 9112
  §9.3.2), and each connection has exactly one writer: this task.
* The app routes (:meth:`rawrt.app.App.resolve`); the handler runs in this task.
* Every failure of an exchange is answered in one place, the except chain in :meth:`ServerConnection._serve`
  (mapped by :meth:`ServerConnection._answer_failure`): a protocol error gets its status and
  ``Connection: close``; a handler's bug a bare 500 and a logged traceback. A client that went away is not
  an error at all (:meth:`ServerConnection.run`).
* Time lives here, not in the sans-IO layer: the ``Date`` header, the header/body/keep-alive timeouts
  (:mod:`.deadlines`), the graceful-shutdown deadline.

The connection's other parts are mixins with rooms of their own: :mod:`.channel` (the I/O they share),
:mod:`.watcher` (noticing a client that left), :mod:`.body` (the request body, the end of an exchange),
:mod:`.streaming` (streaming responses); :mod:`.upgrade` is the WebSocket handshake.

Logging goes to ``rawrt.error`` (problems) and ``rawrt.access`` (one line per response, INFO).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from ..app import Request, Response, StreamingResponse
from ..errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ..sansio import http11
from ..sansio.h2.frames import PrefaceMatch, match_preface
from ..sansio.headers import Headers
from ..websocket import WebSocket
from ..websocket.handover import ByteStream, Handover
from .body import BodyPace, RequestBody
from .channel import ClientGone, ServerSide, access_log, error_log
from .dates import http_date
from .h2 import H2Session
from .proxy import forwarded
from .streaming import Streaming
from .trace import tapper as trace_tapper
from .upgrade import Session, handshake

__all__ = ["ServerConnection", "close_in_stages"]

#: Longest lingering close (see :meth:`ServerConnection._linger`): enough for a client to read an error
#: response and notice it, short enough that a client that keeps sending cannot hold the connection.
#: Apache lingers up to 2 s per read (``MAX_SECS_TO_LINGER`` caps the total at 30 s).
LINGER_TIMEOUT = 2.0

#: An upgraded connection's parser, shared by all of them (see :meth:`ServerConnection.upgraded`). It stays
#: IDLE and empty: nothing feeds it, so a handshake request's ``body()`` is simply empty.
_UPGRADED = http11.HTTPConnection()
#: An upgraded connection's event deque, shared too (docs/topics/memory.md); never appended to.
_NO_EVENTS: deque[http11.Event] = deque(maxlen=0)

#: The server states in which no response has begun, so an error can still be answered with one.
_ANSWERABLE = (http11.State.IDLE, http11.State.SEND_RESPONSE)


class ServerConnection(Streaming, RequestBody):
    """One accepted TCP connection speaking HTTP/1.1 (until it maybe switches to WebSocket)."""

    def __init__(self, server: ServerSide, stream: ByteStream) -> None:
        self.server = server
        self.limits = server.limits
        self.stream = stream
        assert stream.transport is not None
        self.transport = stream.transport
        # With a wire tap (the demo's lab, or --trace), the parser keeps each request head's exact bytes.
        self.conn = (
            http11.HTTPConnection(server.limits)
            if server.app.tap is None and not server.trace
            else http11.HeadKeepingConnection(server.limits)
        )
        self.events = deque()
        peer = self.transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if peer else None
        local = self.transport.get_extra_info("sockname")
        self.local = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None
        #: Waiting for a request with nothing buffered: safe to close at shutdown.
        self.idle = True
        self.requests_served = 0
        self.task = None
        self.websocket = None
        #: The HTTP/2 session, when the client speaks HTTP/2 (rawrt.server.h2).
        self.h2: H2Session | None = None
        #: The WebSocket session a 101 started, for run() to serve once _serve() has returned.
        self.session: Session | None = None
        self._disconnected = False
        self._watcher = None
        self._cancel_on_disconnect = False
        self.streaming = False
        self.deadline = 0.0
        self.timed_out = False
        self.trailers = []
        self.started = 0.0
        self.sent = 0
        self.send_timed_out = False
        #: Time each exchange for the access log: decided once per connection, so that a server with the
        #: log off pays no clock read per request.
        self.timing = access_log.isEnabledFor(logging.INFO)
        #: The peer is a trusted proxy whose X-Forwarded-For / Forwarded fields are believed.
        self.proxied = server.trusts(self.client)

    # ------------------------------------------------------------------------------ the connection's life

    async def run(self) -> None:
        """Serve requests until the connection ends; never raises."""
        task = self.task = asyncio.current_task()
        if task is not None:
            # Tracked for the graceful shutdown; discarded at the end of the finally clause below (not by a
            # done callback: docs/topics/memory.md).
            self.server.tasks.add(task)
        linger = False
        try:
            preface = await self._http2_preface() if self.server.http2 else None
            if preface is not None:
                self.h2 = H2Session(self)
                await self.h2.run(preface)
                return
            await self._serve()
            session, self.session = self.session, None
            if session is not None:
                # A 101 was sent: the WebSocket runs from here, with the HTTP exchange's frames released.
                await session.run()
            else:
                linger = True
        except (ClientGone, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # RFC 9112 §9.6: a client may close at any time; that is not a server error
        except asyncio.CancelledError:
            if not self.server.closing:
                raise
        except Exception:  # pragma: no cover - a bug in rawrt itself
            error_log.exception("unexpected error on connection from %s", self.client)
        finally:
            try:
                await self.stop_watching()
                if self.websocket is None:
                    if self.send_timed_out or self.transport.is_closing():
                        self.transport.abort()  # nothing more can be delivered: free the socket now
                    else:
                        if linger:
                            await self._linger()
                        self.stream.close()
                    try:
                        await self._wait_closed()
                    except asyncio.CancelledError:
                        self.transport.abort()
                        raise
            finally:
                if self.tap is not None and self.websocket is None:
                    self.tap.done(True)  # (a WebSocket tells its tap itself, when its connection is lost)
                # Counted until here, when the socket is closed (or aborted): every open socket counts
                # against max_connections.
                self.server.connections.discard(self)
                if task is not None:
                    self.server.tasks.discard(task)

    async def _http2_preface(self) -> bytes | None:
        """HTTP/2 or HTTP/1.1? The bytes read so far if HTTP/2, else ``None`` (then they are the parser's).

        Under TLS, ALPN decided it in the handshake (RFC 9113 §3.2). In cleartext, a client with prior
        knowledge opens with the connection preface (§3.3, §3.4), which no HTTP/1.1 request line can begin
        with: at most 24 bytes are read before it is known, and an HTTP/1.1 client's first byte is enough.
        """
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            return b"" if ssl_object.selected_alpn_protocol() == "h2" else None
        data = b""
        while True:
            chunk = await self.read(self.limits.header_timeout)
            if not chunk:
                if data:
                    self.conn.receive_data(data)
                self.conn.receive_eof()
                return None
            data += chunk
            match = match_preface(data)
            if match is PrefaceMatch.COMPLETE:
                return data
            if match is PrefaceMatch.MISMATCH:
                self.conn.receive_data(data)
                return None

    async def _wait_closed(self) -> None:
        """Wait until the socket is closed: the last response may still be going out (a graceful close
        sends the buffer first), as long as the client keeps reading it. A client that stops reading for
        ``send_timeout`` would keep the socket (and its buffer) forever: it is aborted, so no socket outlives
        its place in the connection count (max_connections)."""
        transport = self.transport
        send_timeout = self.limits.send_timeout
        last = transport.get_write_buffer_size()
        stalled = 0.0
        while True:
            try:
                await asyncio.wait_for(self.stream.wait_closed(), 1.0)
                return
            except (TimeoutError, asyncio.TimeoutError):
                pass
            size = transport.get_write_buffer_size()
            if size < last:
                last, stalled = size, 0.0  # still taking our bytes: a slow reader, not a stalled one
                continue
            stalled += 1.0
            if send_timeout is not None and stalled >= send_timeout:
                transport.abort()
                with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                    await asyncio.wait_for(self.stream.wait_closed(), 1.0)
                return

    async def _linger(self) -> None:
        """Close in stages when the client may still be sending (an error answered mid-request).

        RFC 9112 §9.6: closing at once while request bytes are still arriving makes our TCP stack answer
        them with a reset, which "might erase the client's unacknowledged input buffers": a client uploading
        a body past the limit would see ECONNRESET instead of our 413. So: half-close (our response is
        complete), then read and drop what the client still sends until it closes too, for at most
        :data:`LINGER_TIMEOUT` seconds (Apache's lingering close; nginx's ``lingering_close``). The same
        at shutdown for a client that pipelined more than its last answered request.
        """
        if self.conn.client_state not in (http11.State.ERROR, http11.State.SEND_BODY) and not (
            self.server.closing and (self.conn.buffered_bytes or self.stream.buffered)
        ):
            return  # the request was read whole: nothing more is coming that could provoke a reset
        await close_in_stages(self.stream)

    # ------------------------------------------------------------------------------------ the exchanges

    async def _serve(self) -> None:
        """Read, route, run and answer requests until the connection must close or a WebSocket takes over."""
        limits = self.limits
        loop = asyncio.get_running_loop()
        server = self.server
        app = server.app
        transport = self.transport
        root_path = server.root_path
        scheme = server.scheme
        # The wire tap: decided once per connection, so that a server without one pays one None check per
        # request for it (and one per write, in flush()).
        tapper = (
            trace_tapper(app.tap, server.trace) if type(self.conn) is http11.HeadKeepingConnection else None
        )
        while True:
            # Waiting for a request head: the keep-alive timeout while nothing has arrived, then the header
            # timeout from the first byte (slowloris: a head must arrive within a bound, not trickle on).
            self.idle = self.conn.buffered_bytes == 0
            if self.idle:
                if server.closing:
                    return
            elif transport.is_closing():
                # Pipelined requests buffered for a client that reset, or that a send timeout aborted: they
                # are for nobody (a read would notice the loss; parsing what is buffered would not).
                return
            request: Request | None = None
            try:
                deadline: float | None = None
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
                    # self.read(timeout), inlined: this is the per-request hot path
                    # (docs/topics/performance.md).
                    self.deadline = 0.0 if timeout is None else loop.time() + timeout
                    try:
                        data = await self.stream.read()
                    except asyncio.CancelledError:
                        if self.cancelled_by_deadline():
                            raise TimeoutError from None
                        raise
                    finally:
                        self.deadline = 0.0
                    if data:
                        self.conn.receive_data(data)
                    else:
                        self.conn.receive_eof()
                event = self.events.popleft()
                if type(event) is http11.ConnectionEnded:
                    return
                assert type(event) is http11.Request
                self.idle = False
                if self.timing:
                    self.started = loop.time()
                request = Request(
                    event.method.decode("ascii"),
                    event.target.decode("ascii"),
                    event.http_version.decode("ascii"),
                    Headers(event.headers),
                    client=self.client,
                    server=self.local,
                    source=self,
                )
                # Deployment options, off by default: nothing per request unless set.
                if self.proxied:
                    request.client, request.scheme = forwarded(
                        request.headers, self.client, scheme, server.trusts
                    )
                elif scheme != "http":
                    request.scheme = scheme
                if root_path:
                    request.mount(root_path)
                if tapper is not None:
                    # The previous exchange's tap is done with this connection; this one gets its own, or
                    # none. Inline: an untagged request in a lab-enabled server pays one call (the tapper).
                    if self.tap is not None:
                        self.tap.done(False)
                    conn = self.conn
                    assert type(conn) is http11.HeadKeepingConnection
                    self.tap = tapper(request, conn.head)
                    conn.head = b""
                if event.content_length != 0:  # a body on its way: a fresh account of its reads' waits
                    self.pace = BodyPace()
                resolved = app.resolve(request.method, request.path, event.upgrade is not None)
                if resolved.params is not None:
                    request.path_params = resolved.params
                handler = resolved.handler
                # A 404/405/426 answer, or None (a WebSocket handshake, or a handler to run).
                response: Response | StreamingResponse | None = resolved.response
                if handler is not None:
                    if event.content_length != 0:  # a body to limit (a chunked one has no declared length)
                        limit = resolved.max_body_size
                        self.conn.set_max_body_size(limits.max_body_size if limit is None else limit)
                    response = await handler(request)
                    if not isinstance(response, (Response, StreamingResponse)):
                        error_log.error(
                            "handler for %s returned %r, not a Response", request.target, response
                        )
                        raise _internal_error()
            except (ClientGone, ConnectionError):
                raise
            except asyncio.CancelledError:
                if self._disconnected:
                    raise ClientGone from None
                raise
            except Exception as exc:
                self._answer_failure(exc, request)
                return
            if response is None:
                # A WebSocket opening handshake (RFC 6455 §4.2): refused over HTTP, or a 101 and a session
                # that run() serves once this exchange's frames are gone.
                assert resolved.route is not None
                outcome = await handshake(self, resolved.route, event, request)
                if not isinstance(outcome, bool):
                    self.session = outcome
                    return
                keep = outcome
            else:
                if self._watcher is not None:
                    await self.stop_watching()
                if isinstance(response, Response):
                    # Response validated its fields when the handler built it (app.encode_headers).
                    self.conn.send_response_bytes(
                        response.status,
                        self.final_headers(response.headers),
                        response.body,
                        date=http_date(),
                        validated=True,
                    )
                    keep = self.flush()
                    self.log_access(request, response.status, len(response.body))
                    # RFC 9112 §9.3.2 pipelining, bounded by the write buffer: a client that sends requests
                    # and does not read their answers is not answered further ahead than write_high_water,
                    # and is aborted after send_timeout (drain()).
                    if transport.get_write_buffer_size() > limits.write_high_water:
                        await self.drain()
                else:
                    keep = await self.send_streaming(response, request)
                keep = keep and await self.finish_exchange()
            if not keep:
                return
            self.requests_served += 1
            if self.server.closing:
                return

    def _answer_failure(self, exc: Exception, request: Request | None) -> None:
        """Answer the exchange that failed with ``exc``: the one place where errors become statuses.

        * A protocol error has its own status (400, 408, 413, 431...): the client's input was wrong. A
          :class:`~rawrt.errors.LocalProtocolError` is the handler's instead (it asked for something
          unsendable, a CR/LF in a header value...): a bug like any other, logged with its traceback.
        * No request head in time (``request`` is None): 408 if part of one arrived (RFC 9110 §15.5.9);
          an idle keep-alive connection is simply closed.
        * Anything else a handler raised is a bug: logged with its traceback, answered with a bare 500.
        * Anything else before a request was read is a bug in rawrt: re-raised, for :meth:`run` to log.

        The answer (with ``Connection: close``) goes out only if no response has begun.
        """
        if isinstance(exc, ProtocolError):
            error = exc
            if isinstance(exc, LocalProtocolError) and request is not None:
                error_log.error("handler for %s %s failed", request.method, request.target, exc_info=exc)
        elif request is None:
            if not isinstance(exc, TimeoutError):
                raise exc
            if not self.conn.buffered_bytes:
                return
            error = RemoteProtocolError("request head not received in time", status_hint=408)
        else:
            error_log.error("handler for %s %s failed", request.method, request.target, exc_info=exc)
            error = _internal_error()
        if self.conn.server_state in _ANSWERABLE:
            error_log.debug("rejecting request from %s: %s %s", self.client, error.status_hint, error)
            self.conn.reject(error, date=http_date())
            self.flush()
            self.log_access(request, error.status_hint, None)

    # ----------------------------------------------------------------------------------------- WebSocket

    def detach(self) -> Handover:
        """Give the transport up for a WebSocket after a 101 (:meth:`ByteStream.detach`)."""
        return self.stream.detach()

    def upgraded(self, ws: WebSocket) -> None:
        """``ws`` took the transport over: let the HTTP machinery go.

        Nothing on this connection reads, parses or writes HTTP again (:meth:`run` leaves the close to the
        WebSocket), and an idle WebSocket should not pay for the stream, the parser with its buffers and
        request event, or the event deque (docs/topics/memory.md).
        """
        self.websocket = ws
        self.stream = None  # type: ignore[assignment]
        self.conn = _UPGRADED
        self.events = _NO_EVENTS

    # ------------------------------------------------------------------------------------------ shutdown

    def abort_idle(self) -> None:
        """Shutdown: close this connection now if it is waiting for a request.

        Not if a request has arrived but is not read yet: closing then would lose it (and the unread bytes
        would make our close a reset, RFC 9112 §9.6); it is answered, with ``Connection: close``.
        """
        if self.h2 is not None:
            self.h2.shutdown()  # GOAWAY; the streams in flight finish within the shutdown budget
            return
        if self.idle and self.task is not None and self.websocket is None and not self.stream.buffered:
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
