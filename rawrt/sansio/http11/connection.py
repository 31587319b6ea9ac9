"""HTTP/1.1 for the server side, sans I/O (RFC 9110, RFC 9112).

Contract
--------
:class:`HTTPConnection` is fed the bytes a client sends (:meth:`~HTTPConnection.receive_data`,
:meth:`~HTTPConnection.receive_eof`) and hands back, from :meth:`~HTTPConnection.events_received`, the
events they make: :class:`Request`, then zero or more :class:`Data`, then :class:`EndOfMessage`; or
:class:`ConnectionEnded` when the client closed between requests. The application answers through
:meth:`~HTTPConnection.send_response`, :meth:`~HTTPConnection.send_data` and :meth:`~HTTPConnection.send_end`,
and the bytes to write come out of :meth:`~HTTPConnection.data_to_send` (``b""`` there means: close the
connection).

The readers (the ``maybe_read_*`` methods) follow h11's contract: each returns an event, returns ``None`` when
it needs more data, or raises :class:`~rawrt.errors.RemoteProtocolError`, whose ``status_hint`` is the status
to answer with. After an error the connection is in the terminal ``ERROR`` state and reads nothing more: bytes
pipelined behind a bad request are never served as a request (that is how request smuggling is stopped).

Strategy
--------
* A request head is parsed in one go once ``CRLF CRLF`` has arrived (searched incrementally, so the work is
  linear in the bytes received), with the size limits checked while it is still incomplete, so a client
  cannot make the server buffer more than ``max_request_line + max_header_bytes``.
* Parsing is lazy: bytes are only buffered by ``receive_data``; ``events_received`` parses. It stops after
  a :class:`Request` so the server can pick the route's body limit (:meth:`~HTTPConnection.set_max_body_size`)
  before any of the body is read, and it parses no next request until the current response is complete
  (pipelined requests are answered strictly in order, RFC 9112 §9.3.2).
* There is no clock and no I/O here: the ``Date`` header value is passed in by the caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from http import HTTPStatus

from ...errors import LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError, printable
from ...limits import DEFAULT_LIMITS, Limits
from .. import abnf
from ..buffer import ReceiveBuffer
from ..headers import HeaderList, HeaderSequence
from .chunked import ChunkedDecoder, Trailers

__all__ = [
    "HTTPConnection",
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


# ------------------------------------------------------------------------------------------------ events


# The events are plain (not frozen) slotted dataclasses: a frozen dataclass's __init__ sets each field through
# object.__setattr__, which made building a Request cost 1.0 µs instead of 0.2 µs, once per request. Treat
# them as read-only all the same: the parser hands them out and never looks at them again.
@dataclass(slots=True)
class Request:
    """A request head, as received.

    The parser builds these and has already checked every field, so they are trusted as they are (h11's
    ``_parsed`` idea): nothing is validated again on the hot path.

    Attributes:
        method: the method token, case preserved (RFC 9110 §9.1: methods are case-sensitive).
        target: the request-target exactly as received.
        http_version: ``b"1.1"`` or ``b"1.0"`` (a higher 1.x minor version is treated as 1.1, RFC 9112 §2.3).
        headers: ``(name, value)`` pairs in received order, names in received case, OWS stripped.
        content_length: the declared Content-Length, or ``None``.
        chunked: whether the body is chunked (RFC 9112 §6.3 rule 4).
        keep_alive: whether the client allows the connection to be reused after this exchange.
        expect_continue: the client sent ``Expect: 100-continue`` on HTTP/1.1 and waits for ``100`` before
            sending its body (RFC 9110 §10.1.1).
        upgrade: the lower-cased ``Upgrade`` value when ``Connection: upgrade`` was sent too, else ``None``.
    """

    method: bytes
    target: bytes
    http_version: bytes
    headers: HeaderList
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    expect_continue: bool = False
    upgrade: bytes | None = None


@dataclass(slots=True)
class Data:
    """A piece of a request body (dechunked)."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The request body is complete. ``trailers`` holds a chunked body's trailer fields (RFC 9112 §7.1.2)."""

    trailers: HeaderList = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ConnectionEnded:
    """The client closed its side between two requests: the normal end of a keep-alive connection."""


Event = Request | Data | EndOfMessage | ConnectionEnded


# ------------------------------------------------------------------------------------------ state machine


class Role(enum.Enum):
    """Which half of the exchange a state belongs to."""

    # Enum members are singletons, so identity hashing is correct, and it is several times faster than
    # Enum.__hash__ (a Python-level call): the transition table is looked up a few times per request.
    __hash__ = object.__hash__

    CLIENT = "client"  #: what the peer sends (request head and body)
    SERVER = "server"  #: what we send (interim responses, the response head and body)


class State(enum.Enum):
    """The state of one half of the connection."""

    __hash__ = object.__hash__  # see Role

    IDLE = "idle"  #: waiting for a request (client) / for a request to answer (server)
    SEND_RESPONSE = "send_response"  #: server only: a request arrived; 1xx or the final head may go out
    SEND_BODY = "send_body"  #: the message body is in progress
    DONE = "done"  #: this half finished the current exchange
    MUST_CLOSE = "must_close"  #: done, and the connection will not be reused
    SWITCHED = "switched"  #: 101 sent: the bytes now belong to another protocol (WebSocket)
    CLOSED = "closed"  #: terminal: the connection is over
    ERROR = "error"  #: terminal: a protocol error ended the connection


_ = State
#: Every legal transition, in one table (h11's "Rule 1"). Keys: (role, state, what happened) -> new state.
#: Anything not in this table is a protocol violation by whoever caused it. The diagrams in
#: ``docs/topics/state-diagrams.md`` are generated from it (``docs/tools/make_state_diagrams.py``). ERROR is
#: entered directly, from any state, on any error.
TRANSITIONS: dict[tuple[Role, State, str], State] = {
    # The client's half.
    (Role.CLIENT, _.IDLE, "request"): _.SEND_BODY,
    (Role.CLIENT, _.IDLE, "eof"): _.CLOSED,
    (Role.CLIENT, _.SEND_BODY, "data"): _.SEND_BODY,
    (Role.CLIENT, _.SEND_BODY, "end"): _.DONE,
    (Role.CLIENT, _.DONE, "eof"): _.DONE,  # a half-close after a full request still gets its answer
    (Role.CLIENT, _.DONE, "cycle"): _.IDLE,
    (Role.CLIENT, _.DONE, "close"): _.CLOSED,
    (Role.CLIENT, _.DONE, "switch"): _.SWITCHED,
    # Our half.
    (Role.SERVER, _.IDLE, "request"): _.SEND_RESPONSE,
    (Role.SERVER, _.SEND_RESPONSE, "informational"): _.SEND_RESPONSE,
    (Role.SERVER, _.SEND_RESPONSE, "response"): _.SEND_BODY,
    (Role.SERVER, _.SEND_RESPONSE, "switch"): _.SWITCHED,
    (Role.SERVER, _.SEND_BODY, "data"): _.SEND_BODY,
    (Role.SERVER, _.SEND_BODY, "end"): _.DONE,
    (Role.SERVER, _.DONE, "cycle"): _.IDLE,
    (Role.SERVER, _.DONE, "close"): _.MUST_CLOSE,
}
del _


# RFC 9110 renamed a few phrases that older tables (and Python before 3.13) still spell the RFC 7231 way.
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
_REASONS.update({413: b"Content Too Large", 414: b"URI Too Long", 416: b"Range Not Satisfiable",
                 422: b"Unprocessable Content"})  # fmt: skip
# Status lines for every registered code, built once: the writer's hot path only looks them up.
_STATUS_LINES = {code: b"HTTP/1.1 %d %b\r\n" % (code, phrase) for code, phrase in _REASONS.items()}


# The transitions the hot path takes on every request, looked up in the table once (not re-derived).
_CLIENT_AFTER_REQUEST = TRANSITIONS[(Role.CLIENT, State.IDLE, "request")]
_SERVER_AFTER_REQUEST = TRANSITIONS[(Role.SERVER, State.IDLE, "request")]
_CLIENT_AFTER_END = TRANSITIONS[(Role.CLIENT, State.SEND_BODY, "end")]
# len() of content-length, transfer-encoding, host, connection, expect, upgrade.
_SPECIAL_NAME_LENGTHS = frozenset({14, 17, 4, 10, 6, 7})


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for ``status`` (RFC 9110 §15), or ``b""`` for an unregistered code."""
    return _REASONS.get(status, b"")


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1): size in hex, CRLF, data, CRLF. Empty data encodes nothing
    (a zero-size chunk would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


# Headers the writer owns: an app that sets them gets them honoured or refused, never duplicated.
_NO_BODY_STATUSES = frozenset({204, 304})
_TE_KNOWN_CODINGS = frozenset({b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress"})


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
        self._body_remaining = 0  # Content-Length bytes still to come
        self._chunked: ChunkedDecoder | None = None  # the current chunked body's decoder
        # An error met after some events of the same events_received() call: raised by the next call.
        self._pending_error: ProtocolError | None = None
        # Response writing state.
        self._response_keep_alive = True
        self._send_chunked = False
        self._send_remaining: int | None = None  # Content-Length bytes still owed, if declared
        self._suppress_body = False  # HEAD, 204, 304
        self._sent_continue = False
        # The last Host value found valid on this connection (see _parse_head).
        self._valid_host: bytes | None = None

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
        return len(self._buffer.data)  # not len(self._buffer): one Python call less, three times a request

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
            self._pending_error = exc
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
            self._check_head_prefix(len(buf))
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
            self._check_head_prefix(end + 3)
        request = self._parse_head(buf.consume(end + 4), end)
        self.request = request
        self.max_body_size = self.limits.max_body_size
        self._sent_continue = False
        if request.chunked:
            self._chunked = ChunkedDecoder(self.limits, self.max_body_size)
        else:
            self._body_remaining = request.content_length or 0
        self.client_state = _CLIENT_AFTER_REQUEST  # TRANSITIONS, looked up once at import
        self.server_state = _SERVER_AFTER_REQUEST
        return request

    def _check_head_prefix(self, n: int) -> None:
        """Refuse a head that is already too big, or broken, judging by its first ``n`` buffered bytes.

        Called on every incomplete head (so a client cannot make the server buffer more than the limits, and a
        bare CR or LF is answered at once instead of at the header timeout), and on the complete head minus
        its last byte before it is parsed.

        Each check fires from a given prefix length on, and once fired stays fired. When several have fired,
        the one that fired at the *shortest* prefix is reported: that is what a client sending one byte at a
        time would get, so the status never depends on how the bytes were split.
        """
        data = self._buffer.data
        limits = self.limits
        never = n + 1
        # 414: no CRLF among the first max_request_line + 2 bytes means the request line is too long.
        at_414 = limits.max_request_line + 2
        if at_414 > n or data.find(b"\r\n", 0, at_414) >= 0:
            at_414 = never
        # 431: the complete head may be max_request_line + max_header_bytes + 4 bytes (CRLF CRLF included);
        # an incomplete one may already hold 3 bytes of that terminator.
        at_431 = limits.max_request_line + limits.max_header_bytes + 4
        if at_431 > n:
            at_431 = never
        # RFC 9112 §2.2 allows a recipient to accept a bare LF as a line terminator; rawrt does not (a bare LF
        # is how several smuggling attacks split lines differently from a front end). The first LF of the
        # head ends the request line: if it is bare, the head is broken.
        lf = data.find(b"\n", 0, n)
        at_lf = lf + 1 if lf >= 0 and (lf == 0 or data[lf - 1] != 0x0D) else never
        # A CR that the next byte shows is not part of a CRLF: a bare CR in the request line.
        cr = data.find(b"\r", 0, n)
        at_cr = cr + 2 if 0 <= cr < n - 1 and data[cr + 1] != 0x0A else never
        first = min(at_414, at_431, at_lf, at_cr)
        if first == never:
            return
        if first == at_414:
            raise LimitExceeded(f"request line longer than {limits.max_request_line} bytes", status_hint=414)
        if first == at_431:
            raise LimitExceeded(
                f"header section larger than {limits.max_header_bytes} bytes", status_hint=431
            )
        if first == at_lf:
            raise RemoteProtocolError("bare LF in request head: lines must end with CRLF (RFC 9112 §2.2)")
        raise RemoteProtocolError("bare CR in request line (RFC 9112 §2.2)")

    def _parse_head(self, whole: bytes, end: int) -> Request:
        """Parse a complete head: ``whole`` is it with its final CRLF CRLF, which starts at ``end``."""
        limits = self.limits
        # The common case first: an origin-form HTTP/1.1 request line and a valid field section, validated in
        # one regex pass over the head as received (its last field line's CRLF included), with no copy.
        fast = abnf.FAST_HEAD_RE.fullmatch(whole, 0, end + 2)
        if fast is not None and fast.group(1) != b"CONNECT":
            line_len = fast.end(2) + 9  # the target, then b" HTTP/1.1"
            if (
                whole.count(b"\r\n", 0, end) <= limits.max_header_count
                and end - line_len <= limits.max_header_bytes
            ):
                headers: HeaderList = abnf.FIELD_PAIRS_RE.findall(whole, line_len + 2, end + 2)
                if whole.find(b" \r", line_len, end + 2) >= 0 or whole.find(b"\t\r", line_len, end + 2) >= 0:
                    headers = [(name, value.rstrip(b" \t")) for name, value in headers]  # RFC 9112 §5: OWS
                return self._finish_head(fast.group(1), fast.group(2), b"1.1", headers)
        # Anything else, including the limits, is checked step by step: slower, and says what is wrong.
        head = whole[:end]
        line_end = head.find(b"\r\n")
        line = head if line_end < 0 else head[:line_end]
        # A request line longer than max_request_line has already been refused (414) by _check_head_prefix.
        fast = abnf.FAST_REQUEST_LINE_RE.fullmatch(line)
        if fast is not None and fast.group(1) != b"CONNECT":
            method, target = fast.groups()
            http_version = b"1.1"
        else:
            match = abnf.REQUEST_LINE_RE.fullmatch(line)
            if match is None:
                raise RemoteProtocolError(self._explain_request_line(line))
            method, target, version = match.groups()
            http_version = b"1.1" if version == b"HTTP/1.1" else self._parse_version(version)
            if target[:1] != b"/" or abnf.ORIGIN_FORM_RE.fullmatch(target) is None:
                self._check_target(method, target)
            elif method == b"CONNECT":
                raise RemoteProtocolError(
                    "CONNECT needs an authority-form target host:port (RFC 9110 §9.3.6)"
                )

        if head.count(b"\r\n") > limits.max_header_count:
            raise LimitExceeded(f"more than {limits.max_header_count} header fields", status_hint=431)
        if len(head) - len(line) > limits.max_header_bytes:
            raise LimitExceeded(
                f"header section larger than {limits.max_header_bytes} bytes", status_hint=431
            )
        # The whole field section is validated in one pass, then split into pairs in another; only a section
        # that fails is walked line by line, to say which line is wrong.
        section = head[line_end + 2 :] + b"\r\n" if line_end >= 0 else b""
        if abnf.FIELD_SECTION_RE.fullmatch(section) is None:
            for raw in head.split(b"\r\n")[1:]:
                m = abnf.FIELD_LINE_RE.fullmatch(raw)
                if m is None or abnf.FIELD_VALUE_RE.fullmatch(m.group(2)) is None:
                    raise RemoteProtocolError(self._explain_field_line(raw))
            raise AssertionError("FIELD_SECTION_RE and FIELD_LINE_RE disagree")  # pragma: no cover
        # RFC 9112 §5: the trailing OWS is not part of the value.
        headers = [(name, value.rstrip(b" \t")) for name, value in abnf.FIELD_PAIRS_RE.findall(section)]
        return self._finish_head(method, target, http_version, headers)

    def _finish_head(self, method: bytes, target: bytes, http_version: bytes, headers: HeaderList) -> Request:
        """The checks on a parsed head's fields that decide framing and persistence, and its Request."""
        content_lengths: list[bytes] = []
        transfer_encodings: list[bytes] = []
        hosts: list[bytes] = []
        connection: list[bytes] = []
        expect: list[bytes] = []
        upgrade: list[bytes] = []
        for name, value in headers:
            # Only the fields that decide framing and connection handling are looked at here; their name
            # lengths let every other field through with one set lookup.
            if len(name) not in _SPECIAL_NAME_LENGTHS:
                continue
            lname = name.lower()
            if lname == b"content-length":
                content_lengths.append(value)
            elif lname == b"transfer-encoding":
                transfer_encodings.append(value)
            elif lname == b"host":
                hosts.append(value)
            elif lname == b"connection":
                connection.append(value.lower())
            elif lname == b"expect":
                expect.append(value.lower())
            elif lname == b"upgrade":
                upgrade.append(value.lower())

        if len(hosts) != 1 or hosts[0] != self._valid_host:
            # A keep-alive client sends the same Host on every request: checked once per connection.
            self._check_host(http_version, hosts)
            if hosts:
                self._valid_host = hosts[0]
        if content_lengths or transfer_encodings:
            content_length, chunked = self._framing(http_version, content_lengths, transfer_encodings)
        else:
            content_length, chunked = 0, False  # RFC 9112 §6.3 rule 7: no body
        tokens = {t.strip(b" \t") for value in connection for t in value.split(b",")} if connection else ()
        if http_version == b"1.1":
            keep_alive = b"close" not in tokens
        else:
            # RFC 9112 §9.3: an HTTP/1.0 connection persists only when the client asks with keep-alive.
            keep_alive = b"keep-alive" in tokens and b"close" not in tokens
        expect_continue = False
        if expect and http_version == b"1.1":
            # RFC 9110 §10.1.1: 100-continue is the only expectation defined; any other gets 417. A server
            # "MUST ignore" a 100-continue expectation in an HTTP/1.0 request, hence the version check.
            for value in expect:
                for item in value.split(b","):
                    item = item.strip(b" \t")
                    if item == b"100-continue":
                        expect_continue = True
                    elif item:
                        raise RemoteProtocolError(
                            f"unsupported expectation {printable(item)}", status_hint=417
                        )
        upgrade_to = b", ".join(upgrade) if upgrade and b"upgrade" in tokens else None
        # Positional arguments: this runs once per request, and keywords cost a little more.
        return Request(
            method,
            target,
            http_version,
            headers,
            content_length,
            chunked,
            keep_alive,
            expect_continue,
            upgrade_to,
        )

    @staticmethod
    def _explain_request_line(line: bytes) -> str:
        parts = line.split(b" ")
        if len(parts) == 2 and parts[1].startswith(b"/"):
            # RFC 9112 §2.3 / Appendix C.1: HTTP/0.9 requests have no version; rawrt answers them with a
            # normal 400 rather than a 0.9-style bare body.
            return f"HTTP/0.9 request line without a version: {printable(line)}"
        if line[:1] in (b" ", b"\t"):
            return f"request line starts with whitespace: {printable(line)}"
        return f"malformed request line {printable(line)}: expected 'METHOD SP target SP HTTP/1.1'"

    @staticmethod
    def _parse_version(version: bytes) -> bytes:
        match = abnf.HTTP_VERSION_RE.fullmatch(version)
        if match is None:
            raise RemoteProtocolError(f"malformed HTTP-version {printable(version)}: expected 'HTTP/1.1'")
        major, minor = match.groups()
        if major != b"1":
            # RFC 9110 §15.6.6: 505 for a major version the server does not support (0.9, 2.0, 3.0 ...).
            raise RemoteProtocolError(f"HTTP version {printable(version)} is not supported", status_hint=505)
        # RFC 9112 §2.3: a recipient treats a higher minor version as the highest it supports.
        return b"1.0" if minor == b"0" else b"1.1"

    @staticmethod
    def _check_target(method: bytes, target: bytes) -> None:
        # RFC 9112 §3.2: the four forms, each tied to what it may be used with.
        if method == b"CONNECT":
            # §3.2.3 and RFC 9110 §9.3.6: CONNECT's target is only ever "host:port".
            ok = abnf.AUTHORITY_FORM_RE.fullmatch(target) is not None
            form = "authority-form (CONNECT)"
        elif target[:1] == b"/":
            ok = abnf.ORIGIN_FORM_RE.fullmatch(target) is not None
            form = "origin-form"
        elif target == b"*":
            ok = method == b"OPTIONS"  # §3.2.4: asterisk-form is only for a server-wide OPTIONS
            form = "asterisk-form (OPTIONS only)"
        else:
            ok = abnf.ABSOLUTE_FORM_RE.fullmatch(target) is not None
            form = "absolute-form"
        if not ok:
            raise RemoteProtocolError(f"invalid request-target {printable(target)} ({form}, RFC 9112 §3.2)")

    @staticmethod
    def _explain_field_line(raw: bytes) -> str:
        if raw[:1] in (b" ", b"\t"):
            return "obsolete line folding in header section (RFC 9112 §5.2)"
        name, colon, value = raw.partition(b":")
        if not colon:
            return f"header line without a colon: {printable(raw)}"
        if name[-1:] in (b" ", b"\t"):
            return f"whitespace between header name and colon: {printable(raw)} (RFC 9112 §5.1)"
        if abnf.TOKEN_RE.fullmatch(name) is None:
            return f"invalid header name {printable(name)}"
        bad = next(c for c in value if not (c == 9 or 0x20 <= c <= 0x7E or c >= 0x80))
        return f"invalid byte 0x{bad:02x} in value of header {printable(name)} (RFC 9110 §5.5)"

    @staticmethod
    def _check_host(http_version: bytes, hosts: list[bytes]) -> None:
        # RFC 9112 §3.2: "A server MUST respond with a 400 ... to any HTTP/1.1 request message that lacks a
        # Host header field and to any request message that contains more than one Host header field line or
        # a Host header field with an invalid field value."
        if len(hosts) > 1:
            raise RemoteProtocolError("more than one Host header")
        if not hosts:
            if http_version == b"1.1":
                raise RemoteProtocolError("HTTP/1.1 request without a Host header")
            return
        if abnf.HOST_RE.fullmatch(hosts[0]) is None:
            raise RemoteProtocolError(f"invalid Host header {printable(hosts[0])}")

    @staticmethod
    def _framing(
        http_version: bytes, content_lengths: list[bytes], transfer_encodings: list[bytes]
    ) -> tuple[int | None, bool]:
        """Decide how the body is delimited, exactly as RFC 9112 §6.3 says for requests."""
        if transfer_encodings:
            if content_lengths:
                # §6.3 rule 3: both present is a smuggling attempt until proven otherwise; §6.1: "a server
                # MAY reject a request that contains both ... and ought to handle it as an error". We do,
                # and close the connection.
                raise RemoteProtocolError("both Transfer-Encoding and Content-Length (RFC 9112 §6.1)")
            if http_version == b"1.0":
                # §6.1: a server "MUST ... treat the message as if the framing is faulty" when it gets
                # Transfer-Encoding on HTTP/1.0, because a 1.0 hop may not have understood it.
                raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)")
            codings = [c.strip(b" \t").lower() for value in transfer_encodings for c in value.split(b",")]
            codings = [c for c in codings if c]  # RFC 9110 §5.6.1: empty list elements are ignored
            if not codings:
                raise RemoteProtocolError("empty Transfer-Encoding")
            for coding in codings:
                if abnf.TOKEN_RE.fullmatch(coding.split(b";")[0].strip(b" \t")) is None:
                    raise RemoteProtocolError(f"invalid transfer coding {printable(coding)}")
            if codings[-1] != b"chunked":
                # §6.3 rule 4: a request whose final coding is not chunked cannot be delimited: 400, close.
                raise RemoteProtocolError(
                    f"Transfer-Encoding {printable(b', '.join(codings))} does not end in chunked"
                    " (RFC 9112 §6.3)"
                )
            if codings.count(b"chunked") > 1:
                raise RemoteProtocolError("chunked applied more than once (RFC 9112 §7)")
            if len(codings) > 1:
                # §6.1: "A server that receives a request message with a transfer coding it does not
                # understand SHOULD respond with 501". rawrt decodes chunked only.
                known = codings[0] in _TE_KNOWN_CODINGS
                raise RemoteProtocolError(
                    f"transfer coding {printable(codings[0])} is {'not implemented' if known else 'unknown'}",
                    status_hint=501,
                )
            return None, True
        # Only called with a Content-Length or a Transfer-Encoding (without either, §6.3 rule 7: no body;
        # _parse_head decides that itself). RFC 9110 §8.6 / RFC 9112 §6.3 rule 5: a list of identical valid
        # values may be taken as one value; differing or invalid values are unrecoverable.
        values = {v.strip(b" \t") for value in content_lengths for v in value.split(b",")}
        if len(values) != 1:
            raise RemoteProtocolError(
                f"conflicting Content-Length values {printable(b', '.join(sorted(values)))}"
            )
        (value,) = values
        if abnf.CONTENT_LENGTH_RE.fullmatch(value) is None:
            raise RemoteProtocolError(f"invalid Content-Length {printable(value)}")
        return int(value), False

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
        if not request.chunked:
            if request.content_length is not None and request.content_length > self.max_body_size:
                # The default limit (or the route's, if set_max_body_size raised it after the Request event)
                # is enforced before any of the body is read, whether or not the server called
                # set_max_body_size.
                raise LimitExceeded(
                    f"Content-Length {request.content_length} exceeds the limit of {self.max_body_size} bytes"
                )
            if self._body_remaining == 0:
                self._advance(Role.CLIENT, "end")
                return EndOfMessage()
            buf = self._buffer
            if not buf:
                if self._eof:
                    raise RemoteProtocolError(
                        f"connection closed with {self._body_remaining} body bytes still expected"
                    )
                return None
            data = buf.consume(min(len(buf), self._body_remaining))
            self._body_remaining -= len(data)
            return Data(data)
        return self._maybe_read_chunked()

    def _maybe_read_chunked(self) -> Data | EndOfMessage | None:
        chunked = self._chunked
        assert chunked is not None
        chunked.max_body_size = self.max_body_size  # the route's limit, if set_max_body_size changed it
        result = chunked.maybe_read(self._buffer, self._eof)
        if result is None:
            return None
        if type(result) is bytes:
            return Data(result)
        assert isinstance(result, Trailers)
        trailers = self._parse_trailers(result.block) if result.block else []
        self._advance(Role.CLIENT, "end")
        return EndOfMessage(trailers)

    def _parse_trailers(self, block: bytes) -> HeaderList:
        lines = block.split(b"\r\n")
        if len(lines) > self.limits.max_header_count:
            raise LimitExceeded(f"more than {self.limits.max_header_count} trailer fields", status_hint=431)
        trailers: HeaderList = []
        for raw in lines:
            m = abnf.FIELD_LINE_RE.fullmatch(raw)
            if m is None or abnf.FIELD_VALUE_RE.fullmatch(m.group(2)) is None:
                raise RemoteProtocolError("in trailers: " + self._explain_field_line(raw))
            trailers.append((m.group(1), m.group(2).rstrip(b" \t")))
        return trailers

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
        _check_fields(headers or [])
        self._advance(Role.SERVER, "informational")
        if status == 100:
            self._sent_continue = True
        self._out.append(self._head(status, headers or [], b""))

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
            validated: the caller already checked every field the way :func:`_check_fields` does (the
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
            _check_fields(headers)
        if self.server_state is not State.SEND_RESPONSE:
            raise LocalProtocolError(f"cannot send a response in server state {self.server_state.name}")
        if status == 101:
            if request.http_version == b"1.0":
                raise LocalProtocolError("101 must not be sent to an HTTP/1.0 client (RFC 9110 §15.2)")
            self._advance(Role.SERVER, "switch")
            if self.client_state is State.DONE:
                self._advance(Role.CLIENT, "switch")
            return self._head(101, headers, date)
        if not 200 <= status < 600:
            raise LocalProtocolError(f"invalid final status {status}")
        # An exchange whose request failed (e.g. set_max_body_size raised) cannot be followed by another one.
        keep_alive = request.keep_alive and self.client_state is not State.ERROR
        content_length: int | None = None
        # The head's field lines, rendered as they are decided (no list of pairs to format afterwards).
        lines: list[bytes] = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
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

    @staticmethod
    def _head(status: int, headers: HeaderSequence, date: bytes) -> bytes:
        status_line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status
        fields = b"".join([b"%b: %b\r\n" % pair for pair in headers])
        if date:
            fields += b"date: %b\r\n" % date
        return status_line + fields + b"\r\n"

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
            _check_fields(trailers)
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
            self._out.append(self._head(status, headers, b"") + body)
        self.server_state = State.ERROR
        self._out.append(b"")


_SERVER_AFTER_RESPONSE = TRANSITIONS[(Role.SERVER, State.SEND_RESPONSE, "response")]
_SERVER_AFTER_END = TRANSITIONS[(Role.SERVER, State.SEND_BODY, "end")]
_AFTER_CYCLE = TRANSITIONS[(Role.SERVER, State.DONE, "cycle")]
assert _AFTER_CYCLE is TRANSITIONS[(Role.CLIENT, State.DONE, "cycle")]
# Response fields whose meaning the writer owns or must notice (framing, persistence, Date, Server).
_WRITER_OWNED = frozenset({b"content-length", b"transfer-encoding", b"connection", b"date", b"server"})


def _check_fields(headers: HeaderSequence) -> None:
    """Refuse app-supplied fields that would not survive the wire: a name that is not a token, or a value
    with CR, LF, NUL or another control byte (that is response splitting, RFC 9110 §5.5)."""
    # Fast path: the fields as they would be written form a valid field section, one line per field (a CR
    # or LF inside a value would add a line, so the count catches what the per-line pattern alone cannot).
    # FIELD_SECTION_RE admits no CR inside a value, so the LF count is the only extra check needed.
    section = b"".join([b"%b:%b\r\n" % pair for pair in headers])
    if section.count(b"\n") == len(headers) and abnf.FIELD_SECTION_RE.fullmatch(section) is not None:
        return
    # Slow path, only to say which field is wrong (one of them is).
    name, value = next(
        (n, v)
        for n, v in headers
        if abnf.TOKEN_RE.fullmatch(n) is None or abnf.FIELD_VALUE_RE.fullmatch(v) is None
    )
    if abnf.TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid field name {printable(name)}")
    raise LocalProtocolError(f"invalid value for field {printable(name)}: {printable(value)}")
