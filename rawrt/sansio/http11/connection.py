"""HTTP/1.1 for the server side, sans I/O (RFC 9110, RFC 9112): the connection that glues the rooms together.

Contract
--------
:class:`HTTPConnection` is fed the bytes a client sends (:meth:`~HTTPConnection.receive_data`,
:meth:`~HTTPConnection.receive_eof`) and hands back, from :meth:`~HTTPConnection.events_received`, the
events they make: :class:`~.events.Request`, then zero or more :class:`~.events.Data`, then
:class:`~.events.EndOfMessage`; or :class:`~.events.ConnectionEnded` when the client closed between
requests. The application answers through :meth:`~HTTPConnection.send_response`,
:meth:`~HTTPConnection.send_data` and :meth:`~HTTPConnection.send_end`, and the bytes to write come out of
:meth:`~HTTPConnection.data_to_send` (``b""`` there means: close the connection).

The readers (the ``maybe_read_*`` methods) follow h11's contract: each returns an event, returns ``None`` when
it needs more data, or raises :class:`~rawrt.errors.RemoteProtocolError`, whose ``status_hint`` is the status
to answer with. After an error the connection is in the terminal ``ERROR`` state and reads nothing more: bytes
pipelined behind a bad request are never served as a request (that is how request smuggling is stopped).

Rooms
-----
* :mod:`.events` -- the events; :mod:`.states` -- the states and the one ``TRANSITIONS`` table.
* :mod:`.readers` -- request-head parsing (the fast path and the step-by-step, explaining path).
* :mod:`.body` -- the body codecs (Content-Length, chunked, close-delimited), shared with the client.
* :mod:`.writers` and :mod:`.status` -- field checks, heads and status lines.
* This module -- buffering, the state machine, and the final response head, whose framing and persistence
  are decided in the same pass that renders it.

Strategy
--------
* A request head is parsed in one go once ``CRLF CRLF`` has arrived (searched incrementally, so the work is
  linear in the bytes received), with the size limits checked while it is still incomplete, so a client
  cannot make the server buffer more than ``max_request_line + max_header_bytes``.
* Parsing is lazy: bytes are only buffered by ``receive_data``; ``events_received`` parses. It stops after
  a :class:`~.events.Request` so the server can pick the route's body limit
  (:meth:`~HTTPConnection.set_max_body_size`) before any of the body is read, and it parses no next request
  until the current response is complete (pipelined requests are answered strictly in order, RFC 9112
  §9.3.2).
* There is no clock and no I/O here: the ``Date`` header value is passed in by the caller.
"""

from __future__ import annotations

from ...errors import LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError, printable
from ...limits import DEFAULT_LIMITS, Limits
from .. import abnf
from ..buffer import ReceiveBuffer
from ..headers import HeaderList, HeaderSequence
from .body import ChunkedDecoder, ContentLengthReader, EndOfBody, encode_chunk
from .events import ConnectionEnded, Data, EndOfMessage, Event, Request
from .readers import check_head_prefix, parse_head, parse_trailers
from .states import TRANSITIONS, Role, State
from .status import STATUS_LINES, reason_phrase
from .writers import check_fields, render_head

__all__ = [
    "HTTPConnection",
    "HeadKeepingConnection",
    "Request",
    "Data",
    "EndOfMessage",
    "ConnectionEnded",
    "Event",
    "State",
    "Role",
    "TRANSITIONS",
    "reason_phrase",
    "encode_chunk",
]

# The transitions taken on every request, looked up in the table once, at import (not re-derived).
_CLIENT_AFTER_REQUEST = TRANSITIONS[(Role.CLIENT, State.IDLE, "request")]
_SERVER_AFTER_REQUEST = TRANSITIONS[(Role.SERVER, State.IDLE, "request")]
_CLIENT_AFTER_END = TRANSITIONS[(Role.CLIENT, State.SEND_BODY, "end")]
_SERVER_AFTER_RESPONSE = TRANSITIONS[(Role.SERVER, State.SEND_RESPONSE, "response")]
_SERVER_AFTER_END = TRANSITIONS[(Role.SERVER, State.SEND_BODY, "end")]
_AFTER_CYCLE = TRANSITIONS[(Role.SERVER, State.DONE, "cycle")]
assert _AFTER_CYCLE is TRANSITIONS[(Role.CLIENT, State.DONE, "cycle")]

# RFC 9110 §6.4.1: 204 and 304 never have a body; neither has a response to HEAD (§9.3.2).
_NO_BODY_STATUSES = frozenset({204, 304})
# Response fields whose meaning the writer owns or must notice (framing, persistence, Date, Server): an app
# that sets them gets them honoured or refused, never duplicated.
_WRITER_OWNED = frozenset({b"content-length", b"transfer-encoding", b"connection", b"date", b"server"})


class HTTPConnection:
    """The server side of one HTTP/1.1 connection.

    Args:
        limits: size limits (times are the I/O layer's business).
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buffer = ReceiveBuffer()
        self._eof = False
        self._out: list[bytes] = []
        self.client_state = State.IDLE
        self.server_state = State.IDLE
        #: The request being answered, once its head has arrived.
        self.request: Request | None = None
        #: Body limit for the current request; the server may change it per route after the Request event.
        self.max_body_size = limits.max_body_size
        # Body reading state.
        # The body readers (RFC 9112 §6.3): one Content-Length reader per connection, rearmed for each
        # request, and a chunked decoder made for each chunked body.
        self._length = ContentLengthReader()
        self._chunked: ChunkedDecoder | None = None
        # An error met after some events of the same events_received() call: raised by the next call.
        self._pending_error: ProtocolError | None = None
        # Response writing state.
        self._response_keep_alive = True
        self._send_chunked = False
        self._send_remaining: int | None = None  # Content-Length bytes still owed, if declared
        self._suppress_body = False  # HEAD, 204, 304
        self._sent_continue = False

    # ------------------------------------------------------------------------------------ bookkeeping

    def _advance(self, role: Role, what: str) -> None:
        state = self.client_state if role is Role.CLIENT else self.server_state
        try:
            new = TRANSITIONS[(role, state, what)]
        except KeyError:
            if role is Role.SERVER:
                raise LocalProtocolError(f"cannot {what} in server state {state.name}") from None
            raise RemoteProtocolError(f"unexpected {what} in client state {state.name}") from None
        if role is Role.CLIENT:
            self.client_state = new
        else:
            self.server_state = new

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after the current exchange."""
        return (
            self._response_keep_alive
            and self.client_state is not State.ERROR  # the client's bytes can no longer be trusted
            and (self.request is None or self.request.keep_alive)
        )

    @property
    def sends_chunked(self) -> bool:
        """Whether the response being sent frames its body in chunks (RFC 9112 §7.1).

        Fixed by :meth:`send_response` until the response ends. While it holds and the server is in
        ``SEND_BODY``, ``send_data(data)`` appends exactly ``encode_chunk(data)`` to the output and keeps no
        other state (only a Content-Length body is counted), so a caller that already holds that chunk (one
        event framed once for a thousand clients) may write it itself, once the output is flushed.
        """
        return self._send_chunked and self.server_state is State.SEND_BODY

    @property
    def buffered_bytes(self) -> int:
        """How many received bytes are not parsed yet (a partial head, a pipelined request...)."""
        return len(self._buffer.data)  # .data: see docs/topics/performance.md

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the last parsed message: after a 101, the new protocol's first bytes."""
        return bytes(self._buffer.data)

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the client. Parsing happens in :meth:`events_received`."""
        if self._eof:
            raise RuntimeError("receive_data() after receive_eof()")
        if self.client_state is State.ERROR:
            return  # nothing after a protocol error is ever parsed: don't buffer it either (a discarder)
        self._buffer.append(data)

    def receive_eof(self) -> None:
        """The client half-closed its side (an empty read)."""
        self._eof = True

    def data_to_send(self) -> list[bytes]:
        """Bytes to write, oldest first. A final ``b""`` means: close the connection after writing."""
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------------------------------ reading

    def events_received(self) -> list[Event]:
        """Parse what has been buffered.

        Returns:
            The events available now, in order. The list stops right after a :class:`Request` that has a
            body (so the caller can set the body limit first; a request without one comes with its
            :class:`EndOfMessage`), and after :class:`EndOfMessage` (the next request waits for the response).

        Raises:
            RemoteProtocolError: the client broke the protocol; ``status_hint`` says how to answer. The
                connection is now in the ``ERROR`` state. Events parsed before the error (the start of a
                body) are returned first, and the error is raised by the next call, so how the bytes were
                split never decides what the app sees.
        """
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error
        events: list[Event] = []
        try:
            while True:
                event = self._next_event()
                if event is None:
                    break
                events.append(event)
                if type(event) is EndOfMessage:
                    # If the response is already complete (the handler answered without reading the whole
                    # body and we discarded the rest), the next exchange starts now.
                    self._maybe_cycle()
                    break
                if type(event) is Request and event.content_length == 0:
                    # No body to limit: its EndOfMessage follows at once, saving the server a round trip.
                    # (What maybe_read_body would do, minus its checks, which a bodiless request passes.)
                    self.client_state = _CLIENT_AFTER_END
                    events.append(EndOfMessage())
                    break
                if type(event) is not Data:
                    break
        except ProtocolError as exc:
            self.client_state = State.ERROR
            if not events:
                raise
            # Kept without its traceback: the frames would hold this connection (and its buffer) in a
            # reference cycle until a garbage collection, should the caller never ask again (issue 10 #2).
            self._pending_error = exc.with_traceback(None)
        return events

    def _next_event(self) -> Event | None:
        state = self.client_state
        if state is State.IDLE:
            # The client half only returns to IDLE together with ours (_maybe_cycle), once the previous
            # response is complete: that is what keeps pipelined requests answered in order (RFC 9112
            # §9.3.2). A pipelined request waits in the buffer while the client half is DONE.
            return self.maybe_read_request()
        if state is State.SEND_BODY:
            return self.maybe_read_body()
        return None

    def maybe_read_request(self) -> Request | ConnectionEnded | None:
        """Read a request head (RFC 9112 §2.1: request-line, field lines, empty line)."""
        buf = self._buffer
        # RFC 9112 §2.2: "a server ... SHOULD ignore at least one empty line (CRLF) received prior to the
        # request-line". Some clients send a CRLF after a POST body; accept any number of them.
        while buf.data.startswith(b"\r\n"):
            buf.consume(2)
        end = buf.find_from_mark(b"\r\n\r\n")
        if end < 0:
            check_head_prefix(buf.data, len(buf), self.limits)
            if self._eof:
                if not buf:
                    self._advance(Role.CLIENT, "eof")
                    return ConnectionEnded()
                raise RemoteProtocolError(
                    f"connection closed in the middle of a request head: {printable(bytes(buf.data))}"
                )
            return None
        # The checks a byte-at-a-time client would have met before its last byte arrived come first, so the
        # answer is the same however the head was split.
        data = buf.data
        line_end = data.find(b"\r\n", 0, end + 2)
        limits = self.limits
        if not (
            # The common case, checked cheaply: a request line within its limit with no stray CR or LF in
            # it, and a head within its size limit. Anything else goes through the full prefix checks.
            0 <= line_end <= limits.max_request_line
            and end + 4 < limits.max_request_line + limits.max_header_bytes + 4
            and data.find(b"\n", 0, line_end) < 0
            and data.find(b"\r", 0, line_end) < 0
        ):
            check_head_prefix(data, end + 3, limits)
        request = parse_head(buf.consume(end + 4), end, limits)
        self.request = request
        self.max_body_size = self.limits.max_body_size
        self._sent_continue = False
        if request.chunked:
            self._chunked = ChunkedDecoder(self.limits, self.max_body_size)
        else:
            self._length.remaining = request.content_length or 0
        self.client_state = _CLIENT_AFTER_REQUEST  # TRANSITIONS, looked up once at import
        self.server_state = _SERVER_AFTER_REQUEST
        return request

    def set_max_body_size(self, limit: int) -> None:
        """Set the body limit for the current request (a route's override).

        Raises:
            LimitExceeded: the declared Content-Length already exceeds it (413, before any body is read).
        """
        self.max_body_size = limit
        request = self.request
        if request is not None and request.content_length is not None and request.content_length > limit:
            self.client_state = State.ERROR
            raise LimitExceeded(f"Content-Length {request.content_length} exceeds the limit of {limit} bytes")

    def maybe_read_body(self) -> Data | EndOfMessage | None:
        """Read the next piece of the body: Content-Length (RFC 9112 §6.2) or chunked (§7.1)."""
        request = self.request
        assert request is not None
        if request.chunked:
            chunked = self._chunked
            assert chunked is not None
            chunked.max_body_size = self.max_body_size  # the route's limit, if set_max_body_size changed it
            body: ContentLengthReader | ChunkedDecoder = chunked
        else:
            if request.content_length is not None and request.content_length > self.max_body_size:
                # The default limit (or the route's, if set_max_body_size raised it after the Request event)
                # is enforced before any of the body is read, whether or not the server called
                # set_max_body_size.
                raise LimitExceeded(
                    f"Content-Length {request.content_length} exceeds the limit of {self.max_body_size} bytes"
                )
            body = self._length
        result = body.maybe_read(self._buffer, self._eof)
        if result is None:
            return None
        if type(result) is bytes:
            return Data(result)
        assert isinstance(result, EndOfBody)
        trailers = parse_trailers(result.trailers, self.limits) if result.trailers else []
        self._advance(Role.CLIENT, "end")
        return EndOfMessage(trailers)

    # ------------------------------------------------------------------------------------------ writing

    def send_informational(self, status: int, headers: HeaderList | None = None) -> None:
        """Send a 1xx interim response (typically ``100 Continue``).

        Raises:
            LocalProtocolError: the client speaks HTTP/1.0 (RFC 9110 §15.2: "A server MUST NOT send a 1xx
                response to an HTTP/1.0 client"), or the final response has started.
        """
        request = self.request
        if request is None:
            raise LocalProtocolError("no request to respond to")
        if request.http_version == b"1.0":
            raise LocalProtocolError("a 1xx response must not be sent to an HTTP/1.0 client (RFC 9110 §15.2)")
        if not 100 <= status < 200 or status == 101:
            raise LocalProtocolError(f"{status} is not an interim status (use send_response for 101)")
        check_fields(headers or [])
        self._advance(Role.SERVER, "informational")
        if status == 100:
            self._sent_continue = True
        self._out.append(render_head(status, headers or [], b""))

    @property
    def expects_continue(self) -> bool:
        """Whether the client waits for ``100 Continue`` that has not been sent yet."""
        request = self.request
        return (
            request is not None
            and request.expect_continue
            and not self._sent_continue
            and self.client_state is State.SEND_BODY
        )

    def send_response(
        self,
        status: int,
        headers: HeaderSequence,
        *,
        date: bytes = b"",
        server: bytes = b"rawrt",
        validated: bool = False,
    ) -> None:
        """Send the final response head.

        The writer decides the framing: a ``content-length`` header set by the caller is honoured and
        enforced; without one the body is chunked on HTTP/1.1 and close-delimited on HTTP/1.0 (RFC 9112 §6.3).
        No body is sent for HEAD, 204 and 304 (RFC 9110 §6.4.1); 101 switches protocols.

        Args:
            status: 101 or 200-599.
            headers: ``(name, value)`` pairs; ``connection: close`` forces the connection to close.
            date: the ``Date`` value (RFC 9110 §6.6.1; an origin server with a clock MUST send it). The I/O
                layer owns the clock, so it passes the value in.
            server: the ``Server`` value, or ``b""`` to omit it.
            validated: the caller already checked every field the way :func:`~.writers.check_fields` does (the
                app layer's ``Response`` validates its headers when it is built), so the writer's own check
                is skipped (STYLE §3: validate what the app builds, once).
        """
        self._out.append(self._response_head(status, headers, date, server, validated, None))

    def _response_head(
        self,
        status: int,
        headers: HeaderSequence,
        date: bytes,
        server: bytes,
        validated: bool,
        body_length: int | None,
    ) -> bytes:
        """Check a response head, move the server half on, and render the head (see :meth:`send_response`).

        ``body_length`` is the length of a body the caller sends whole (:meth:`send_response_bytes`): it sets
        the Content-Length, whatever one the app passed.
        """
        request = self.request
        if request is None:
            raise LocalProtocolError("no request to respond to")
        # Everything the app passed is checked before any state changes: a LocalProtocolError leaves the
        # connection as it was, so the server can still answer 500 with reject().
        if not validated:
            check_fields(headers)
        if self.server_state is not State.SEND_RESPONSE:
            raise LocalProtocolError(f"cannot send a response in server state {self.server_state.name}")
        if status == 101:
            if request.http_version == b"1.0":
                raise LocalProtocolError("101 must not be sent to an HTTP/1.0 client (RFC 9110 §15.2)")
            self._advance(Role.SERVER, "switch")
            if self.client_state is State.DONE:
                self._advance(Role.CLIENT, "switch")
            return render_head(101, headers, date)
        if not 200 <= status < 600:
            raise LocalProtocolError(f"invalid final status {status}")
        # An exchange whose request failed (e.g. set_max_body_size raised) cannot be followed by another one.
        keep_alive = request.keep_alive and self.client_state is not State.ERROR
        content_length: int | None = None
        # The head's field lines, rendered as they are decided (no list of pairs to format afterwards).
        lines: list[bytes] = [STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        has_date = has_server = False
        connection_options: list[bytes] = []
        for name, value in headers:
            lname = name.lower()
            if lname not in _WRITER_OWNED:
                lines.append(b"%b: %b\r\n" % (name, value))
                continue
            if lname == b"content-length":
                if abnf.CONTENT_LENGTH_RE.fullmatch(value) is None:
                    raise LocalProtocolError(f"invalid Content-Length {printable(value)} in response")
                content_length = int(value)
                continue  # re-added below unless the status forbids it
            elif lname == b"transfer-encoding":
                continue  # the writer owns the framing
            elif lname == b"connection":
                # The persistence decision is the writer's; any other connection option the app names
                # (``upgrade`` on a 426, RFC 9110 §7.8) is kept and sent along with it.
                for token in value.split(b","):
                    token = token.strip(b" \t").lower()
                    if token == b"close":
                        keep_alive = False
                    elif token and token != b"keep-alive":
                        connection_options.append(token)
                continue  # rewritten below from the decision
            elif lname == b"date":
                has_date = True
            else:  # server (the last of _WRITER_OWNED)
                has_server = True
            lines.append(b"%b: %b\r\n" % (name, value))
        if body_length is not None:
            content_length = body_length
        self.server_state = _SERVER_AFTER_RESPONSE
        no_body = status in _NO_BODY_STATUSES or request.method == b"HEAD"
        self._suppress_body = no_body
        self._send_chunked = False
        self._send_remaining = None
        if status in _NO_BODY_STATUSES:
            content_length = None  # RFC 9110 §8.6: never Content-Length in 204; 304 may, we need not
        elif content_length is not None:
            lines.append(b"content-length: %d\r\n" % content_length)
            self._send_remaining = 0 if request.method == b"HEAD" else content_length
        elif request.method == b"HEAD":
            pass  # the length of a body we never send is unknown: omit it (RFC 9110 §9.3.2 allows that)
        elif request.http_version == b"1.1":
            lines.append(b"transfer-encoding: chunked\r\n")
            self._send_chunked = True
        else:
            keep_alive = False  # RFC 9112 §6.3 rule 8: close-delimited is the only framing left for 1.0
        if self.expects_continue:
            # RFC 9110 §10.1.1: the client may still send the body we never asked for; reading it to find
            # the next request is guesswork, so the connection closes after this response.
            keep_alive = False
        if not keep_alive:
            connection_options.insert(0, b"close")
        elif request.http_version == b"1.0":
            connection_options.insert(0, b"keep-alive")
        if connection_options:
            lines.append(b"connection: %b\r\n" % b", ".join(connection_options))
        self._response_keep_alive = keep_alive
        if not has_date and date:
            lines.append(b"date: %b\r\n" % date)
        if not has_server and server:
            lines.append(b"server: %b\r\n" % server)
        lines.append(b"\r\n")
        return b"".join(lines)

    def send_data(self, data: bytes) -> None:
        """Send a piece of the response body, framed as the head announced."""
        if self.server_state is not State.SEND_BODY:
            raise LocalProtocolError(f"cannot send body data in server state {self.server_state.name}")
        if not data or self._suppress_body:
            return
        if self._send_remaining is not None:
            if len(data) > self._send_remaining:
                raise LocalProtocolError("response body longer than its Content-Length")
            self._send_remaining -= len(data)
            self._out.append(data)
        elif self._send_chunked:
            self._out.append(encode_chunk(data))
        else:
            self._out.append(data)

    def send_end(self, trailers: HeaderList | None = None) -> None:
        """Finish the response. After it, the connection is ready for the next request or closes."""
        if self.server_state is not State.SEND_BODY:
            raise LocalProtocolError(f"cannot end a response in server state {self.server_state.name}")
        if trailers:
            check_fields(trailers)
        if self._send_remaining:
            raise LocalProtocolError(
                f"response body {self._send_remaining} bytes short of its Content-Length"
            )
        if self._send_chunked:
            # RFC 9112 §7.1: last-chunk = 1*"0" [ chunk-ext ] CRLF, then the trailer section and CRLF.
            tail = b"".join(b"%b: %b\r\n" % pair for pair in trailers or [])
            self._out.append(b"0\r\n" + tail + b"\r\n")
        self._response_done()

    def _response_done(self) -> None:
        self.server_state = _SERVER_AFTER_END
        if not self.keep_alive:
            self._advance(Role.SERVER, "close")
            self._out.append(b"")
        self._maybe_cycle()

    def send_response_bytes(
        self,
        status: int,
        headers: HeaderSequence,
        body: bytes,
        *,
        date: bytes = b"",
        server: bytes = b"rawrt",
        validated: bool = False,
    ) -> None:
        """A whole response in one call: the head with a Content-Length, the body and the end.

        The same as :meth:`send_response` with ``content-length`` set, :meth:`send_data` and :meth:`send_end`,
        but the head and body come out of :meth:`data_to_send` as one piece (one write, one packet).
        """
        if status == 101:
            raise LocalProtocolError("a 101 has no body: use send_response()")
        head = self._response_head(status, headers, date, server, validated, len(body))
        self._send_remaining = 0  # the whole body is sent now, or none of it (HEAD, 204, 304)
        self._out.append(head if self._suppress_body or not body else head + body)
        self._response_done()

    def _maybe_cycle(self) -> None:
        """Start the next exchange once both halves are done (RFC 9112 §9.3 persistence)."""
        if self.server_state is State.DONE and self.client_state is State.DONE:
            if self._eof and not self._buffer:
                # The client half-closed after its request: there is no next request to wait for.
                self._advance(Role.CLIENT, "close")
                self._advance(Role.SERVER, "close")
                self._out.append(b"")
                return
            self.client_state = self.server_state = _AFTER_CYCLE
            self.request = None

    def reject(self, error: ProtocolError, *, date: bytes = b"") -> None:
        """Answer a protocol error with its status and close (``Connection: close``, then ``b""``).

        The body is the error's one-line message: it describes only what the client sent.
        """
        self.client_state = State.ERROR
        if self.server_state in (State.IDLE, State.SEND_RESPONSE):
            status = error.status_hint
            # A 500 is our bug: say nothing about it. Every other status describes the client's input.
            body = b"" if status == 500 else (str(error) + "\n").encode("utf-8", "backslashreplace")
            headers: HeaderList = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ]
            if date:
                headers.append((b"date", date))
            headers.append((b"server", b"rawrt"))
            self._out.append(render_head(status, headers, b"") + body)
        self.server_state = State.ERROR
        self._out.append(b"")


class _HeadRecordingBuffer(ReceiveBuffer):
    """A :class:`ReceiveBuffer` that remembers what one ``consume()`` took while :attr:`recording` is set."""

    __slots__ = ("recording", "taken")

    def __init__(self) -> None:
        super().__init__()
        self.recording = False
        self.taken = b""

    def consume(self, n: int) -> bytes:
        out = super().consume(n)
        if self.recording:
            self.taken = out
        return out


class HeadKeepingConnection(HTTPConnection):
    """An :class:`HTTPConnection` that also keeps each request head's exact bytes, for a wire view.

    The demo's lab page (rawrt.lab) shows the bytes a request really was, not a re-rendering of the parsed
    fields: the case, spacing and order a client sent are the lesson. The head is already one ``bytes``
    object when it is parsed (``maybe_read_request`` consumes it whole), so keeping it costs a reference,
    and only servers that ask for it (an :attr:`rawrt.app.App.tap`) use this class: a plain
    :class:`HTTPConnection` does not even test a flag.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._buffer: _HeadRecordingBuffer = _HeadRecordingBuffer()
        #: The last request head read, from its request-line to its empty line, exactly as received. Read
        #: (and cleared, so a held request does not keep it) right after the :class:`Request` event:
        #: ``events_received`` returns at most one request per call, so no later head can replace it first.
        #: A plain attribute, not a method: the server reads it on every request (docs/topics/performance.md).
        self.head = b""

    def maybe_read_request(self) -> Request | ConnectionEnded | None:
        buffer = self._buffer
        # Only the head's consume() is recorded: the blank lines skipped before it (RFC 9112 §2.2) are
        # consumed before it and overwritten, and a body's pieces are consumed elsewhere, not recorded.
        buffer.recording = True
        try:
            event = super().maybe_read_request()
        finally:
            buffer.recording = False
        if type(event) is Request:
            self.head = buffer.taken
        buffer.taken = b""
        return event
