"""Reading an HTTP/1.1 *response*, sans I/O: the small, strict half of a client that rawrt's SSE and
WebSocket clients need.

Contract
--------
:class:`ResponseReader` is fed the bytes a server sends (:meth:`~ResponseReader.receive_data`,
:meth:`~ResponseReader.receive_eof`) in chunks cut anywhere, and :meth:`~ResponseReader.events_received`
hands back, in order: one :class:`Response` (the final response head; 1xx interim responses are skipped),
then zero or more :class:`~rawrt.sansio.http11.Data` (the body, dechunked), then one
:class:`~rawrt.sansio.http11.EndOfMessage`. Anything that breaks RFC 9112 raises
:class:`~rawrt.errors.RemoteProtocolError` (or :class:`~rawrt.errors.LimitExceeded`), after which the
reader is in its terminal error state and every later call raises again: a client never guesses at a
malformed response. One reader reads one response; a client that reuses a connection makes a new one.

A request that asked to switch protocols (``upgrade=True``: it sent ``Upgrade``, RFC 9110 §7.8) may be
answered with ``101 Switching Protocols``: then the events are that :class:`Response` and an
:class:`~rawrt.sansio.http11.EndOfMessage` (a 101 has no body, RFC 9112 §6.3 rule 1), the reader parses
nothing more, and :attr:`~ResponseReader.trailing_data` holds the bytes that followed the head: the new
protocol's first bytes (a WebSocket server's first frames may arrive in the same read as its 101).

The readers (``_maybe_read_*``) follow h11's contract: each returns an event, returns ``None`` when it needs
more data, or raises.

Strategy
--------
Strict where leniency would let a malformed or hostile server confuse the client (RFC 9112 §11.2, response
splitting): CRLF line endings only, no obs-fold, no whitespace before a field's colon, a 3-digit status,
``Transfer-Encoding`` only as exactly ``chunked``, and never together with ``Content-Length``. The head is
bounded by ``Limits.max_header_bytes``/``max_header_count`` *before* it is complete, chunk-size lines by
``MAX_CHUNK_SIZE_DIGITS`` + ``max_chunk_ext``. The body itself is not bounded here (an event stream is
endless by design); the consumer bounds what it buffers (``SSEParser``'s ``max_event_size``).

Framing follows RFC 9112 §6.3 for a response to GET: 1xx, 204 and 304 have no body; a response to HEAD has
none either (pass ``method=b"HEAD"``); ``Transfer-Encoding: chunked`` means chunked; otherwise
``Content-Length``; otherwise the body runs until the server closes the connection (close-delimited, what an
HTTP/1.0 server or a ``Connection: close`` stream sends). The body is read by the codecs of
:mod:`rawrt.sansio.http11.body`, the ones the server reads request bodies with.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ...errors import LimitExceeded, LocalProtocolError, RemoteProtocolError, printable
from ...limits import DEFAULT_LIMITS, Limits
from .. import abnf
from ..buffer import ReceiveBuffer
from ..headers import HeaderList
from .body import BodyReader, ChunkedDecoder, CloseDelimitedReader, ContentLengthReader
from .events import Data, EndOfMessage

__all__ = ["Response", "ResponseReader", "ResponseEvent", "Framing", "encode_request"]

# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
#   status-code = 3DIGIT ; reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
# The SP before an empty reason-phrase is required by the grammar; RFC 9112 §4 also says a client SHOULD
# accept a status line without it ("HTTP/1.1 200"), which some servers send, so it is optional here.
_STATUS_LINE_RE = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")


@dataclass(frozen=True, slots=True)
class Response:
    """A final response head.

    Attributes:
        status: the status code, 200-599.
        reason: the reason phrase as received (may be empty; RFC 9112 §4: clients should ignore it).
        http_version: ``b"1.1"`` or ``b"1.0"``.
        headers: the header fields as received, names in their received case.
    """

    status: int
    reason: bytes
    http_version: bytes
    headers: HeaderList

    def header(self, name: bytes) -> bytes | None:
        """The values of field ``name`` (case-insensitive) joined with ``b", "`` (RFC 9110 §5.3), or None."""
        lname = name.lower()
        values = [value for field_name, value in self.headers if field_name.lower() == lname]
        return b", ".join(values) if values else None


#: What :meth:`ResponseReader.events_received` returns.
ResponseEvent = Response | Data | EndOfMessage


class Framing(enum.Enum):
    """How the body's end is found (RFC 9112 §6.3)."""

    #: No body at all (1xx/204/304, a 101 that was asked for, or a response to HEAD).
    NONE = "none"
    #: ``Content-Length`` bytes.
    LENGTH = "length"
    #: ``Transfer-Encoding: chunked``.
    CHUNKED = "chunked"
    #: Until the server closes the connection.
    CLOSE = "close"


class _State(enum.Enum):
    HEAD = "head"  # waiting for the (next) status line and header section
    BODY = "body"
    DONE = "done"  # EndOfMessage has been produced
    ERROR = "error"  # terminal: a RemoteProtocolError was raised


def encode_request(
    method: str, target: str, host: str, headers: list[tuple[str, str]] | None = None
) -> bytes:
    """Build a bodiless HTTP/1.1 request's bytes (RFC 9112 §3, with the ``Host`` field of RFC 9110 §7.2).

    Raises:
        ValueError: a target, host or header that would not stay on one line or is not visible ASCII
            (header injection through a URL or an app-supplied value).
    """
    if not re.fullmatch(r"[\x21-\x7e]+", target) or not re.fullmatch(r"[\x21-\x7e]+", host):
        raise ValueError(f"invalid request target or host: {target!r} {host!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers or ():
        if abnf.TOKEN_RE.fullmatch(name.encode("latin-1", "replace")) is None or re.search(
            r"[\x00-\x08\x0a-\x1f\x7f]", value
        ):
            raise ValueError(f"invalid header field {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ResponseReader:
    """Incremental, strict reader of one HTTP/1.1 response (see the module docstring).

    Args:
        limits: ``max_header_bytes``, ``max_header_count`` and ``max_chunk_ext`` are used.
        method: the request's method; ``b"HEAD"`` means the response has no body.
        upgrade: the request asked to switch protocols (RFC 9110 §7.8), so a ``101`` is its final answer
            (see the module docstring); without it a ``101`` is a protocol error.
    """

    def __init__(
        self, limits: Limits = DEFAULT_LIMITS, *, method: bytes = b"GET", upgrade: bool = False
    ) -> None:
        self.limits = limits
        self._method = method
        self._upgrade = upgrade
        self._buffer = ReceiveBuffer()
        self._state = _State.HEAD
        self._eof = False
        self._error: RemoteProtocolError | None = None
        #: The final response head (the one :meth:`events_received` returns), as soon as it has been parsed,
        #: even if its framing or body then breaks the protocol: a caller that only needs the head (the
        #: WebSocket client reporting a refusal's status) has it either way.
        self.response: Response | None = None
        #: The framing of the body, known once the head has been read.
        self.framing: Framing | None = None
        # The body's reader (rawrt.sansio.http11.body), chosen with the framing.
        self._body: BodyReader = ContentLengthReader(0)

    # ------------------------------------------------------------------------------------- the surface

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server; parsing happens in :meth:`events_received`."""
        if self._eof:
            raise LocalProtocolError("ResponseReader: receive_data() after receive_eof()")
        self._buffer.append(data)

    def receive_eof(self) -> None:
        """The server closed the connection (idempotent)."""
        self._eof = True

    @property
    def trailing_data(self) -> bytes:
        """The bytes received after the end of the response; ``b""`` until its EndOfMessage has been returned.

        After a ``101`` (``upgrade=True``), these are the new protocol's first bytes, to hand to its parser.
        """
        return bytes(self._buffer.data) if self._state is _State.DONE else b""

    def events_received(self) -> list[ResponseEvent]:
        """Parse what has been buffered; return the events, oldest first.

        Raises:
            RemoteProtocolError: the response breaks RFC 9112, or the connection closed before it was
                complete. Raised again by every later call.
        """
        if self._error is not None:
            raise self._error
        out: list[ResponseEvent] = []
        try:
            while (event := self._next_event()) is not None:
                out.append(event)
        except RemoteProtocolError as exc:
            self._state = _State.ERROR
            self._error = exc
            raise
        return out

    # ----------------------------------------------------------------------------------------- readers

    def _next_event(self) -> ResponseEvent | None:
        if self._state is _State.HEAD:
            return self._maybe_read_head()
        if self._state is _State.BODY:
            return self._maybe_read_body()
        return None

    def _maybe_read_head(self) -> Response | None:
        buf = self._buffer
        limit = self.limits.max_header_bytes
        while True:
            end = buf.find_from_mark(b"\r\n\r\n")
            if end < 0:
                # Checked before the head is complete: a server cannot make us buffer without bound.
                if len(buf) > limit + 3:
                    raise LimitExceeded(f"response head larger than {limit} bytes", status_hint=431)
                if self._eof:
                    what = "before a response" if not buf else "in the response head"
                    raise RemoteProtocolError(f"connection closed {what}: {printable(bytes(buf.data))}")
                return None
            if end > limit:
                raise LimitExceeded(f"response head larger than {limit} bytes", status_hint=431)
            head = buf.consume(end + 4)[:end]
            response = self._parse_head(head)
            if response.status == 101:
                # RFC 9110 §15.2.2: the server switches to the protocol the request's Upgrade asked for; the
                # HTTP message ends with this head. A request that asked for nothing cannot be switched.
                if not self._upgrade:
                    raise RemoteProtocolError("unexpected 101 Switching Protocols")
                self.response = response
                self.framing = Framing.NONE
                self._state = _State.BODY
                return response
            if response.status < 200:
                # RFC 9110 §15.2: a client must accept interim responses and move on to the final one.
                continue
            self.response = response
            self.framing = self._framing(response)
            self._state = _State.BODY
            return response

    def _parse_head(self, head: bytes) -> Response:
        status_line, *lines = head.split(b"\r\n")
        match = _STATUS_LINE_RE.fullmatch(status_line)
        if match is None:
            raise RemoteProtocolError(f"invalid status line {printable(status_line)} (RFC 9112 §4)")
        major, minor, status, reason = match.groups()
        if major != b"1":
            raise RemoteProtocolError(f"unsupported HTTP version {major.decode()}.{minor.decode()}")
        if int(status) < 100:
            raise RemoteProtocolError(f"invalid status code {status.decode()}")
        if len(lines) > self.limits.max_header_count:
            raise LimitExceeded(f"more than {self.limits.max_header_count} header fields", status_hint=431)
        headers: HeaderList = []
        for raw in lines:
            # RFC 9112 §5.2: obs-fold (a line starting with SP/HTAB) is refused, as is anything that is not
            # `token ":" OWS field-value OWS` (RFC 9112 §5), a bare CR or LF inside a value included.
            m = abnf.FIELD_LINE_RE.fullmatch(raw)
            if m is None or abnf.FIELD_VALUE_RE.fullmatch(m.group(2)) is None:
                raise RemoteProtocolError(f"invalid header field line {printable(raw)} (RFC 9112 §5)")
            headers.append((m.group(1), m.group(2).rstrip(b" \t")))
        return Response(int(status), reason or b"", b"%b.%b" % (major, minor), headers)

    def _framing(self, response: Response) -> Framing:
        """Decide the framing (RFC 9112 §6.3, rules 1-7 in order, for a response) and pick its reader."""
        if self._method == b"HEAD" or response.status in (204, 304):
            return Framing.NONE
        te = response.header(b"transfer-encoding")
        cl_values = [v for n, v in response.headers if n.lower() == b"content-length"]
        if te is not None:
            if cl_values:
                # §6.3 rule 3: "ought to be handled as an error" (a response splitting signal).
                raise RemoteProtocolError("response has both Transfer-Encoding and Content-Length")
            if te.strip(b" \t").lower() != b"chunked":
                # The only coding a client without decompressors can read.
                raise RemoteProtocolError(f"unsupported Transfer-Encoding {printable(te)}")
            # The body is not bounded here (an event stream is endless by design); the trailer section is.
            self._body = ChunkedDecoder(self.limits)
            return Framing.CHUNKED
        if cl_values:
            # §6.3 rule 5: several values (or a list) that differ are an unrecoverable error.
            parts = {p.strip(b" \t") for v in cl_values for p in v.split(b",")}
            if len(parts) != 1 or abnf.CONTENT_LENGTH_RE.fullmatch(next(iter(parts))) is None:
                raise RemoteProtocolError(f"invalid Content-Length {printable(b','.join(cl_values))}")
            self._body = ContentLengthReader(int(next(iter(parts))))
            return Framing.LENGTH
        self._body = CloseDelimitedReader()
        return Framing.CLOSE

    def _maybe_read_body(self) -> Data | EndOfMessage | None:
        result = self._body.maybe_read(self._buffer, self._eof)
        if result is None:
            return None
        if type(result) is bytes:
            return Data(result)
        # A client may discard trailers it does not understand (RFC 9112 §7.1.2): this one reads none.
        self._state = _State.DONE
        return EndOfMessage()
