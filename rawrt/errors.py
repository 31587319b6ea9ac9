"""rawrt's exception tree.

Every error rawrt raises on purpose is one of these. The mapping to an HTTP status or a WebSocket close code
is written here, on the classes (``status_hint``, ``close_code``), and read where the answer is sent:
``HTTPConnection.reject()`` (every HTTP error answer, called from ``ServerConnection._reject``),
``handshake.reject()`` (a refused WebSocket handshake) and ``WebSocketConnection.receive_data()`` (frames)::

    RawrtError
    ├── ProtocolError                 status_hint / close_code carry the answer to send
    │   ├── RemoteProtocolError       the peer broke the protocol (400 / 1002 unless refined)
    │   │   ├── LimitExceeded         a configured limit was crossed (413 / 414 / 431 / 1009)
    │   │   │   └── HeaderListTooLarge    an HTTP/2 header block decodes past the header-list limit (431)
    │   │   ├── HandshakeError        a bad WebSocket opening handshake (400 / 403 / 405 / 426)
    │   │   ├── HPACKError            an HPACK header block cannot be decoded (HTTP/2 COMPRESSION_ERROR)
    │   │   └── H2Error               an HTTP/2 peer broke RFC 9113; ``code``: the §7 error code to send
    │   │       ├── H2ConnectionError     §5.4.1: GOAWAY(code), then close the connection
    │   │       └── H2StreamError         §5.4.2: RST_STREAM(stream_id, code); the connection goes on
    │   └── LocalProtocolError        *we* were asked to do something the protocol forbids (a bug in the app)
    ├── InvalidEventError             an app-built SSE event that cannot be encoded (newline in an id, ...)
    └── ConnectionClosed              the app used a connection that is closed (carries the close code)

Unexpected exceptions (bugs) are never described to the peer: they become 500 or 1011 and a log entry.
"""

from __future__ import annotations

__all__ = [
    "RawrtError",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "LimitExceeded",
    "HandshakeError",
    "HPACKError",
    "HeaderListTooLarge",
    "H2Error",
    "H2ConnectionError",
    "H2StreamError",
    "InvalidEventError",
    "HubUnavailableError",
    "ConnectionClosed",
    "printable",
]


def printable(data: bytes, limit: int = 60) -> str:
    """Render peer bytes for an error message: ASCII kept, the rest escaped, long input cut.

    Error text must say what was received, but must never echo control characters or an unbounded blob into
    a log or a status line.
    """
    text = "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x27 else f"\\x{b:02x}" for b in data[:limit])
    return "'" + text + "'" + ("..." if len(data) > limit else "")


class RawrtError(Exception):
    """Base class of every exception rawrt raises deliberately."""


class ProtocolError(RawrtError):
    """A protocol rule was broken.

    Attributes:
        status_hint: the HTTP status that answers this error on an HTTP connection.
        close_code: the WebSocket close code that answers it on a WebSocket connection.
    """

    status_hint: int = 400
    close_code: int = 1002

    def __init__(self, msg: str, *, status_hint: int | None = None, close_code: int | None = None):
        super().__init__(msg)
        if status_hint is not None:
            self.status_hint = status_hint
        if close_code is not None:
            self.close_code = close_code


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids. The connection cannot go on."""


class LocalProtocolError(ProtocolError):
    """The application asked rawrt to send something the protocol forbids (a bug on our side)."""

    status_hint = 500
    close_code = 1011


class LimitExceeded(RemoteProtocolError):
    """A size limit from :class:`rawrt.limits.Limits` was crossed (413, 414, 431 or close 1009)."""

    status_hint = 413
    close_code = 1009


class HandshakeError(RemoteProtocolError):
    """A WebSocket opening handshake was refused (400, 403, 405 or 426; never a 101).

    Attributes:
        headers: extra ``(name, value)`` fields the refusal must carry, e.g. ``Sec-WebSocket-Version: 13``
            on a 426 (RFC 6455 §4.4) or ``Allow: GET`` on a 405; empty for most refusals.
    """

    status_hint = 400
    headers: tuple[tuple[bytes, bytes], ...] = ()


class HPACKError(RemoteProtocolError):
    """An HPACK header block (RFC 7541) cannot be decoded: a bad index, a truncated or oversized integer or
    string, bad Huffman padding, a misplaced or too large dynamic table size update.

    The decoder's dynamic table is then out of step with the peer's encoder, so HTTP/2 treats this as a
    connection error of type COMPRESSION_ERROR (RFC 9113 §4.3): the connection layer answers GOAWAY.
    """


class HeaderListTooLarge(LimitExceeded):
    """A header block decoded to more than ``Limits.h2_max_header_list_size`` (RFC 9113 §6.5.2: the sum of
    each field's name and value lengths plus 32).

    Unlike :class:`HPACKError` this leaves the connection usable: the decoder read the rest of the block
    (without keeping its fields) so its dynamic table stays in step with the peer's (RFC 9113 §10.5.1 "the
    field block MUST be processed"). The connection layer answers the stream with 431 or REFUSED_STREAM.
    """

    status_hint = 431


class H2Error(RemoteProtocolError):
    """The HTTP/2 peer broke a rule of RFC 9113. Catch this to handle both kinds of §5.4 error.

    HTTP/2 answers errors with frames, not statuses: ``code`` is the RFC 9113 §7 error code to send
    (``rawrt.sansio.h2.frames.ErrorCode``; a plain int here, since this module imports nothing from the
    protocols). Never raised itself: one of the two subclasses says whether the connection survives.

    Attributes:
        code: the error code for the GOAWAY or RST_STREAM frame that answers this error.
    """

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code


class H2ConnectionError(H2Error):
    """A connection error (RFC 9113 §5.4.1): the frame layer cannot go on.

    The answer is a GOAWAY carrying ``code`` (and the last stream id processed), then closing TCP.
    """


class H2StreamError(H2Error):
    """A stream error (RFC 9113 §5.4.2): only one stream is affected.

    The answer is a RST_STREAM for ``stream_id`` carrying ``code``; every other stream, and the
    connection, go on. The frame that caused it has been consumed, so reading can continue.

    Attributes:
        stream_id: the stream to reset.
    """

    def __init__(self, stream_id: int, code: int, msg: str) -> None:
        super().__init__(code, msg)
        self.stream_id = stream_id


class InvalidEventError(RawrtError, ValueError):
    """An event built by the application cannot be put on the wire as asked (e.g. a newline in an SSE id)."""


class HubUnavailableError(RawrtError):
    """The hub's shared store (Redis) cannot be reached: the event was not stored, nothing was read.

    A transport answers ``503`` (HTTP) or closes with 1013 "try again later" (WebSocket), with the message.
    """


class ConnectionClosed(RawrtError):
    """The connection is closed; raised to the app when it sends on, or reads from, a closed connection.

    Attributes:
        code: the close code (WebSocket) received or sent; 1006 when the TCP connection dropped without one.
        reason: the close reason, if any.
    """

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
