# HTTP/2 frames (RFC 9113 §3.4, §4, §6, §7): the wire format, in both directions, and nothing else.
#
# Contract:
#   * Reading: feed bytes to a ``FrameReader`` with ``feed(data)``, then call ``next_frame()`` until it
#     returns ``None`` (more bytes are needed), or iterate over the reader. Each call returns one frame
#     value (``DataFrame``, ``HeadersFrame``, ... or ``UnknownFrame``), or raises:
#       - ``H2ConnectionError(code, msg)`` (RFC 9113 §5.4.1): the frame layer cannot go on. The reader
#         is dead from then on: ``feed`` drops its input and ``next_frame`` raises the same error again.
#       - ``H2StreamError(stream_id, code, msg)`` (§5.4.2): the frame that caused it is consumed, and the
#         next call reads the frame after it. The caller resets that one stream and carries on.
#     The sequence of frames and errors is the same however the input is cut (the tests check this).
#   * Every rule that the 9-octet frame header alone decides is checked as soon as the header is in,
#     before the payload is waited for: the length against ``max_frame_size`` (§4.2), the stream
#     identifier against the frame type (§6.x), fixed and minimum lengths, and the §4.3 rule that a field
#     block's frames come in one unbroken run. A header announcing 16 MiB is refused after 9 bytes.
#   * Stateless means stateless: stream states, flow-control windows, HPACK and the preface exchange
#     (§3.4: the first frame must be SETTINGS) belong to the connection. The one piece of state kept here
#     is "a field block is open on stream N", because §4.3 and §6.10 make it a framing rule.
#   * Writing: each frame value has ``serialize()``, which validates the fields and raises
#     ``LocalProtocolError`` (a bug in the caller) rather than put an invalid frame on the wire.
#     ``encode_frame`` writes any header and payload without checks, for tests and tools.
#     ``split_header_block`` and ``split_data`` cut a field block or a body to the peer's frame size.
#   * Values are validated when they are serialised, not when they are built: the reader builds only
#     valid ones, and a frozen dataclass that checks itself on every construction would double the cost
#     of reading (h11 likewise trusts the events its parser builds).
#
# Deliberate choices where RFC 9113 leaves room:
#   * A frame too large for ``max_frame_size`` is always a connection error, even a DATA frame that
#     could be a stream error: §5.4.1 lets any stream error be treated as a connection error, and it
#     spares a "skip N octets" mode whose only users would be peers ignoring our SETTINGS.
#   * A frame too short for the fields its flags announce (PADDED with no Pad Length octet, PRIORITY
#     without its 5 octets) is FRAME_SIZE_ERROR: §4.2, "too small to contain mandatory frame data".
#   * Padding is "too long" (PROTOCOL_ERROR, §6.1, §6.2, §6.6) when it is longer than what follows the
#     fixed fields; for DATA that is the RFC's "length of the frame payload or greater". Padding
#     octets are not checked to be zero (§6.1: "A receiver is not obligated to verify padding").
#   * Priority signals (§5.3.2 deprecates them) are parsed, exposed and otherwise ignored. RFC 9113
#     dropped RFC 7540 §5.3.1's "a stream cannot depend on itself" rule, so no such error is raised.
#   * Unknown frame types are returned as ``UnknownFrame`` for the connection to discard (§4.1, §5.5),
#     except inside a field block, where §5.5 makes them a connection error. Unknown flags are dropped
#     (§4.1: "MUST be ignored"), as is the reserved bit of every 31-bit stream identifier.

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import ClassVar, TypeAlias

from rawrt.errors import H2ConnectionError, H2StreamError, LocalProtocolError

__all__ = [
    "BytesLike",
    "PREFACE",
    "PrefaceMatch",
    "match_preface",
    "FrameType",
    "ErrorCode",
    "SettingCode",
    "END_STREAM",
    "ACK",
    "END_HEADERS",
    "PADDED",
    "PRIORITY",
    "FRAME_HEADER_SIZE",
    "DEFAULT_MAX_FRAME_SIZE",
    "LARGEST_MAX_FRAME_SIZE",
    "MAX_WINDOW_SIZE",
    "MAX_STREAM_ID",
    "Priority",
    "DataFrame",
    "HeadersFrame",
    "PriorityFrame",
    "RstStreamFrame",
    "SettingsFrame",
    "PushPromiseFrame",
    "PingFrame",
    "GoAwayFrame",
    "WindowUpdateFrame",
    "ContinuationFrame",
    "UnknownFrame",
    "Frame",
    "FrameReader",
    "encode_frame",
    "split_header_block",
    "split_data",
]

#: Anything the stdlib accepts as a read-only byte buffer.
BytesLike: TypeAlias = bytes | bytearray | memoryview

# --- The connection preface (§3.4) ------------------------------------------------------------------------

#: The client connection preface (§3.4): 24 octets a client sends first, before its SETTINGS frame.
#: It is built to look like an HTTP/1.1 request (method ``PRI``) that HTTP/1.1 servers refuse.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class PrefaceMatch(Enum):
    """What a prefix of the bytes a client sent says about the client connection preface."""

    #: The bytes cannot begin with the preface: not HTTP/2 with prior knowledge (HTTP/1.1, or garbage).
    MISMATCH = "mismatch"
    #: Every byte so far matches, but the preface is not complete yet: read more before deciding.
    PARTIAL = "partial"
    #: The bytes begin with the whole preface; the frames start at ``len(PREFACE)``.
    COMPLETE = "complete"


def match_preface(data: BytesLike) -> PrefaceMatch:
    """Tell whether ``data``, the first bytes a client sent, is (or can still become) the preface.

    A server that speaks HTTP/1.1 and HTTP/2 with prior knowledge on one port (RFC 9113 §3.3) reads
    until this is no longer ``PARTIAL``. No HTTP/1.1 request can match: its request line cannot start
    with ``PRI * HTTP/2.0`` (RFC 9113 §3.4 chose the preface so that it would fail as HTTP/1.1), so
    at most 24 bytes are ever held back. The empty input is ``PARTIAL``.

    Args:
        data: the bytes received so far, from the first one.

    Returns:
        ``COMPLETE``, ``PARTIAL`` or ``MISMATCH``.
    """
    if len(data) >= len(PREFACE):
        return PrefaceMatch.COMPLETE if data[: len(PREFACE)] == PREFACE else PrefaceMatch.MISMATCH
    return PrefaceMatch.PARTIAL if PREFACE.startswith(data) else PrefaceMatch.MISMATCH


# --- Registries: frame types, error codes, settings ---------------------------------------------------------


class FrameType(IntEnum):
    """Frame types defined by RFC 9113 §6 (IANA "HTTP/2 Frame Type" registry). Others are unknown (§5.5)."""

    #: §6.1: a piece of a message body; flow controlled.
    DATA = 0x0
    #: §6.2: opens a stream and carries (the first fragment of) a field block.
    HEADERS = 0x1
    #: §6.3: deprecated priority signal (§5.3.2); parsed and ignored.
    PRIORITY = 0x2
    #: §6.4: terminates one stream, with an error code.
    RST_STREAM = 0x3
    #: §6.5: the sender's parameters, or the acknowledgement of the peer's.
    SETTINGS = 0x4
    #: §6.6: announces a server push and reserves its stream.
    PUSH_PROMISE = 0x5
    #: §6.7: liveness and round-trip measurement; answered with the same 8 octets and ACK.
    PING = 0x6
    #: §6.8: the sender stops accepting streams (and says which it processed), or reports a fatal error.
    GOAWAY = 0x7
    #: §6.9: grants flow-control credit to a stream or to the connection.
    WINDOW_UPDATE = 0x8
    #: §6.10: the rest of a field block that did not fit in one HEADERS or PUSH_PROMISE frame.
    CONTINUATION = 0x9


class ErrorCode(IntEnum):
    """Error codes for RST_STREAM and GOAWAY (RFC 9113 §7). Unknown codes are kept as plain ints."""

    #: Not an error: a graceful shutdown, or a stream no longer needed.
    NO_ERROR = 0x0
    #: A generic protocol error, when no more specific code applies.
    PROTOCOL_ERROR = 0x1
    #: The endpoint met an unexpected internal error.
    INTERNAL_ERROR = 0x2
    #: The peer broke the flow-control protocol (§5.2, §6.9).
    FLOW_CONTROL_ERROR = 0x3
    #: A SETTINGS frame was not acknowledged in time (§6.5.3).
    SETTINGS_TIMEOUT = 0x4
    #: A frame arrived after the stream was half-closed.
    STREAM_CLOSED = 0x5
    #: A frame had an invalid size (§4.2).
    FRAME_SIZE_ERROR = 0x6
    #: The stream was refused before any application processing: it is safe to retry (§8.7).
    REFUSED_STREAM = 0x7
    #: The stream is no longer needed.
    CANCEL = 0x8
    #: The field section compression (HPACK) context cannot be maintained.
    COMPRESSION_ERROR = 0x9
    #: The TCP connection behind a CONNECT request was reset or abnormally closed (§8.5).
    CONNECT_ERROR = 0xA
    #: The peer behaves in a way that might generate excessive load.
    ENHANCE_YOUR_CALM = 0xB
    #: The transport's security properties are below the minimum (§9.2).
    INADEQUATE_SECURITY = 0xC
    #: The endpoint requires HTTP/1.1 for this request.
    HTTP_1_1_REQUIRED = 0xD


class SettingCode(IntEnum):
    """SETTINGS parameter identifiers (RFC 9113 §6.5.2, RFC 8441 §3). Unknown ones are kept as ints."""

    #: Largest HPACK dynamic table the sender's decoder allows (RFC 7541 §4.2); initially 4,096.
    HEADER_TABLE_SIZE = 0x1
    #: 1 if the sender (a client) accepts server push, else 0; initially 1. Only 0 and 1 are valid.
    ENABLE_PUSH = 0x2
    #: Most streams the sender lets its peer open at once; initially unlimited.
    MAX_CONCURRENT_STREAMS = 0x3
    #: Initial stream flow-control window (§6.9.2); initially 65,535; at most 2**31-1.
    INITIAL_WINDOW_SIZE = 0x4
    #: Largest frame payload the sender accepts; 16,384 (initial) to 16,777,215.
    MAX_FRAME_SIZE = 0x5
    #: Advisory: largest field section the sender accepts (uncompressed, 32 octets per field line
    #: included); initially unlimited.
    MAX_HEADER_LIST_SIZE = 0x6
    #: RFC 8441 §3: 1 if the sender (a server) accepts extended CONNECT (WebSocket over HTTP/2).
    ENABLE_CONNECT_PROTOCOL = 0x8


# Flags (§4.1 and each frame's section). END_STREAM and ACK share a bit: they belong to different types.
#: DATA, HEADERS: the last frame the sender sends on this stream.
END_STREAM = 0x01
#: SETTINGS, PING: an acknowledgement.
ACK = 0x01
#: HEADERS, PUSH_PROMISE, CONTINUATION: this frame ends the field block.
END_HEADERS = 0x04
#: DATA, HEADERS, PUSH_PROMISE: a Pad Length octet starts the payload and padding ends it.
PADDED = 0x08
#: HEADERS: the deprecated priority fields (5 octets) follow the Pad Length (§5.3.2, §6.2).
PRIORITY = 0x20

#: §4.1: every frame starts with a 9-octet header.
FRAME_HEADER_SIZE = 9
#: §4.2, §6.5.2: the initial SETTINGS_MAX_FRAME_SIZE, and the smallest value that may be advertised.
DEFAULT_MAX_FRAME_SIZE = 2**14
#: §4.2, §6.5.2: the largest SETTINGS_MAX_FRAME_SIZE (the Length field is 24 bits).
LARGEST_MAX_FRAME_SIZE = 2**24 - 1
#: §6.9, §6.9.1: the largest flow-control window and window increment.
MAX_WINDOW_SIZE = 2**31 - 1
#: §4.1, §5.1.1: stream identifiers are 31 bits (the 32nd is reserved).
MAX_STREAM_ID = 2**31 - 1

_U31 = 0x7FFFFFFF  # masks the reserved bit off a 31-bit field (§4.1: "MUST be ignored when receiving")
_U32 = 0xFFFFFFFF

# Header: Length (24) as 16 + 8 bits, Type (8), Flags (8), R + Stream Identifier (32).
_HEADER = struct.Struct("!HBBBL")
_U32_FIELD = struct.Struct("!L")
_PRIORITY_FIELDS = struct.Struct("!LB")  # E + Stream Dependency (32), Weight (8): §6.2, §6.3
_SETTING = struct.Struct("!HL")  # Identifier (16), Value (32): §6.5.1
_GOAWAY_FIELDS = struct.Struct("!LL")  # R + Last-Stream-ID (32), Error Code (32): §6.8

_ERROR_CODES: dict[int, int] = {code.value: code for code in ErrorCode}
_SETTING_CODES: dict[int, int] = {code.value: code for code in SettingCode}
_TYPE_NAMES: dict[int, str] = {t.value: t.name for t in FrameType}


def _error_code(value: int) -> int:
    """``ErrorCode`` for a known code, else the int: §7 says unknown codes carry no special meaning."""
    return _ERROR_CODES.get(value, value)


def _type_name(frame_type: int) -> str:
    return _TYPE_NAMES.get(frame_type, f"extension (type {frame_type:#04x})")


# --- Frame values -------------------------------------------------------------------------------------------
#
# One frozen dataclass per type; the fields are the payload's, flags become booleans, and the padding
# is its length (``None`` when the PADDED flag is absent: PADDED with zero padding is a different wire
# form, and the round trip keeps it). Frames of the connection (SETTINGS, PING, GOAWAY) have a
# ``stream_id`` of 0 as a class attribute, so ``frame.stream_id`` works on any frame.


@dataclass(frozen=True, slots=True)
class Priority:
    """The deprecated priority fields of HEADERS and PRIORITY frames (§6.2, §6.3; RFC 7540 §5.3).

    Attributes:
        depends_on: the stream this one depends on (0: the root).
        weight: 1 to 256 (the wire carries ``weight - 1``; RFC 7540's default is 16).
        exclusive: the E bit.
    """

    depends_on: int = 0
    weight: int = 16
    exclusive: bool = False

    def _encode(self) -> bytes:
        if not 0 <= self.depends_on <= MAX_STREAM_ID:
            raise LocalProtocolError(f"priority dependency {self.depends_on} is not a 31-bit stream id")
        if not 1 <= self.weight <= 256:
            raise LocalProtocolError(f"priority weight {self.weight} is outside 1..256")
        return _PRIORITY_FIELDS.pack(self.depends_on | (0x80000000 if self.exclusive else 0), self.weight - 1)


@dataclass(frozen=True, slots=True)
class DataFrame:
    """DATA (§6.1): a piece of a message body.

    Attributes:
        stream_id: the stream (never 0).
        data: the application data, without padding.
        end_stream: END_STREAM, the last frame the sender sends on this stream.
        padding: the number of padding octets (0-255) with the PADDED flag, or ``None`` without it.
    """

    stream_id: int
    data: bytes = b""
    end_stream: bool = False
    padding: int | None = None

    frame_type: ClassVar[int] = FrameType.DATA

    @property
    def flow_controlled_length(self) -> int:
        """What the frame costs in flow-control windows: the whole payload, Pad Length and padding
        included (§6.1: "The entire DATA frame payload is included in flow control")."""
        return len(self.data) if self.padding is None else len(self.data) + 1 + self.padding

    def serialize(self) -> bytes:
        """The frame's wire bytes (padding octets are zero, §6.1).

        Raises:
            LocalProtocolError: stream 0 or out of range, padding outside 0..255, payload over 2**24-1.
        """
        _check_stream("DATA", self.stream_id)
        flags = END_STREAM if self.end_stream else 0
        if self.padding is None:
            return encode_frame(FrameType.DATA, flags, self.stream_id, self.data)
        _check_padding(self.padding)
        payload = b"".join((bytes((self.padding,)), self.data, bytes(self.padding)))
        return encode_frame(FrameType.DATA, flags | PADDED, self.stream_id, payload)


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    """HEADERS (§6.2): opens a stream (or carries trailers) with the first fragment of a field block.

    Attributes:
        stream_id: the stream (never 0).
        fragment: the field block fragment (HPACK-encoded, RFC 7541), without padding.
        end_stream: END_STREAM: no DATA follows (the CONTINUATION frames of this block still may).
        end_headers: END_HEADERS: the field block is complete; without it, CONTINUATION frames follow.
        priority: the deprecated priority fields (PRIORITY flag), or ``None``.
        padding: padding octets with the PADDED flag, or ``None`` without it.
    """

    stream_id: int
    fragment: bytes = b""
    end_stream: bool = False
    end_headers: bool = True
    priority: Priority | None = None
    padding: int | None = None

    frame_type: ClassVar[int] = FrameType.HEADERS

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: see :meth:`DataFrame.serialize`; or invalid priority fields.
        """
        _check_stream("HEADERS", self.stream_id)
        flags = (END_STREAM if self.end_stream else 0) | (END_HEADERS if self.end_headers else 0)
        parts = [self.fragment]
        if self.priority is not None:
            flags |= PRIORITY
            parts.insert(0, self.priority._encode())
        if self.padding is not None:
            _check_padding(self.padding)
            flags |= PADDED
            parts.insert(0, bytes((self.padding,)))
            parts.append(bytes(self.padding))
        return encode_frame(FrameType.HEADERS, flags, self.stream_id, b"".join(parts))


@dataclass(frozen=True, slots=True)
class PriorityFrame:
    """PRIORITY (§6.3): a deprecated priority signal (§5.3.2), valid on a stream in any state.

    Attributes:
        stream_id: the stream whose priority this is (never 0).
        priority: the dependency, weight and exclusive bit.
    """

    stream_id: int
    priority: Priority = Priority()

    frame_type: ClassVar[int] = FrameType.PRIORITY

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: stream 0 or out of range, or invalid priority fields.
        """
        _check_stream("PRIORITY", self.stream_id)
        return encode_frame(FrameType.PRIORITY, 0, self.stream_id, self.priority._encode())


@dataclass(frozen=True, slots=True)
class RstStreamFrame:
    """RST_STREAM (§6.4): terminates one stream at once.

    Attributes:
        stream_id: the stream (never 0).
        error_code: why (an :class:`ErrorCode`, or an int for a code rawrt does not know).
    """

    stream_id: int
    error_code: int = ErrorCode.NO_ERROR

    frame_type: ClassVar[int] = FrameType.RST_STREAM

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: stream 0 or out of range, or an error code that is not 32 bits.
        """
        _check_stream("RST_STREAM", self.stream_id)
        _check_u32("error code", self.error_code)
        return encode_frame(FrameType.RST_STREAM, 0, self.stream_id, _U32_FIELD.pack(self.error_code))


@dataclass(frozen=True, slots=True)
class SettingsFrame:
    """SETTINGS (§6.5): the sender's parameters, or (``ack``) the acknowledgement of the peer's.

    Attributes:
        settings: ``(identifier, value)`` pairs in wire order, unknown identifiers included; §6.5.3
            says they are applied in order, the last value of a repeated identifier winning. Known
            identifiers are :class:`SettingCode` members. Empty for an acknowledgement.
        ack: the ACK flag.
    """

    settings: tuple[tuple[int, int], ...] = ()
    ack: bool = False

    frame_type: ClassVar[int] = FrameType.SETTINGS
    #: Always 0: SETTINGS belong to the connection (§6.5).
    stream_id: ClassVar[int] = 0

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: an acknowledgement with settings (§6.5), an identifier that is not 16
                bits, a value that is not 32 bits, or a value §6.5.2 forbids for its identifier.
        """
        if self.ack:
            if self.settings:
                raise LocalProtocolError("a SETTINGS acknowledgement carries no settings (RFC 9113 §6.5)")
            return encode_frame(FrameType.SETTINGS, ACK, 0, b"")
        parts = []
        for identifier, value in self.settings:
            if not 0 <= identifier <= 0xFFFF:
                raise LocalProtocolError(f"setting identifier {identifier} is not 16 bits")
            _check_u32("setting value", value)
            problem = _check_setting(identifier, value)
            if problem is not None:
                raise LocalProtocolError(problem[1])
            parts.append(_SETTING.pack(identifier, value))
        return encode_frame(FrameType.SETTINGS, 0, 0, b"".join(parts))


@dataclass(frozen=True, slots=True)
class PushPromiseFrame:
    """PUSH_PROMISE (§6.6): the sender will push a response on ``promised_stream_id``.

    Attributes:
        stream_id: the client-initiated stream the push is associated with (never 0).
        promised_stream_id: the stream reserved for the push: even (server-initiated, §5.1.1), never 0.
        fragment: the field block fragment of the promised request, without padding.
        end_headers: END_HEADERS: the field block is complete.
        padding: padding octets with the PADDED flag, or ``None`` without it.
    """

    stream_id: int
    promised_stream_id: int
    fragment: bytes = b""
    end_headers: bool = True
    padding: int | None = None

    frame_type: ClassVar[int] = FrameType.PUSH_PROMISE

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: see :meth:`DataFrame.serialize`; or a promised stream that is 0, odd or
                out of range.
        """
        _check_stream("PUSH_PROMISE", self.stream_id)
        if not 1 <= self.promised_stream_id <= MAX_STREAM_ID or self.promised_stream_id % 2:
            # §5.1.1: a pushed stream is server-initiated, so even.
            raise LocalProtocolError(
                f"promised stream {self.promised_stream_id} is not an even stream id in 2..2**31-2"
            )
        flags = END_HEADERS if self.end_headers else 0
        parts = [_U32_FIELD.pack(self.promised_stream_id), self.fragment]
        if self.padding is not None:
            _check_padding(self.padding)
            flags |= PADDED
            parts.insert(0, bytes((self.padding,)))
            parts.append(bytes(self.padding))
        return encode_frame(FrameType.PUSH_PROMISE, flags, self.stream_id, b"".join(parts))


@dataclass(frozen=True, slots=True)
class PingFrame:
    """PING (§6.7): answered by a PING with ``ack`` and the same ``opaque_data``.

    Attributes:
        opaque_data: exactly 8 octets, chosen by the sender.
        ack: the ACK flag: this is a response, which must not be answered.
    """

    opaque_data: bytes = bytes(8)
    ack: bool = False

    frame_type: ClassVar[int] = FrameType.PING
    #: Always 0: PING belongs to the connection (§6.7).
    stream_id: ClassVar[int] = 0

    def response(self) -> PingFrame:
        """The PING that answers this one (§6.7: "with an identical frame payload")."""
        return PingFrame(self.opaque_data, ack=True)

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: ``opaque_data`` is not 8 octets.
        """
        if len(self.opaque_data) != 8:
            raise LocalProtocolError(f"PING opaque data of {len(self.opaque_data)} octets, expected 8")
        return encode_frame(FrameType.PING, ACK if self.ack else 0, 0, self.opaque_data)


@dataclass(frozen=True, slots=True)
class GoAwayFrame:
    """GOAWAY (§6.8): no new streams after ``last_stream_id``; with an error code, a fatal error.

    Attributes:
        last_stream_id: the highest peer-initiated stream the sender processed or might process.
        error_code: why (an :class:`ErrorCode`, or an int for a code rawrt does not know).
        debug_data: opaque diagnostic data (§6.8: may be sensitive; log it with care).
    """

    last_stream_id: int
    error_code: int = ErrorCode.NO_ERROR
    debug_data: bytes = b""

    frame_type: ClassVar[int] = FrameType.GOAWAY
    #: Always 0: GOAWAY belongs to the connection (§6.8).
    stream_id: ClassVar[int] = 0

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: a last stream id that is not 31 bits, or an error code not 32 bits.
        """
        if not 0 <= self.last_stream_id <= MAX_STREAM_ID:
            raise LocalProtocolError(f"last stream id {self.last_stream_id} is not in 0..2**31-1")
        _check_u32("error code", self.error_code)
        payload = _GOAWAY_FIELDS.pack(self.last_stream_id, self.error_code) + self.debug_data
        return encode_frame(FrameType.GOAWAY, 0, 0, payload)


@dataclass(frozen=True, slots=True)
class WindowUpdateFrame:
    """WINDOW_UPDATE (§6.9): flow-control credit for a stream, or for the connection on stream 0.

    Attributes:
        stream_id: the stream, or 0 for the connection's window.
        increment: octets added to the window, 1 to 2**31-1.
    """

    stream_id: int
    increment: int

    frame_type: ClassVar[int] = FrameType.WINDOW_UPDATE

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: a stream id out of range, or an increment outside 1..2**31-1.
        """
        _check_stream("WINDOW_UPDATE", self.stream_id, zero_allowed=True)
        if not 1 <= self.increment <= MAX_WINDOW_SIZE:
            raise LocalProtocolError(f"window increment {self.increment} is not in 1..2**31-1")
        return encode_frame(FrameType.WINDOW_UPDATE, 0, self.stream_id, _U32_FIELD.pack(self.increment))


@dataclass(frozen=True, slots=True)
class ContinuationFrame:
    """CONTINUATION (§6.10): the next fragment of the field block a HEADERS or PUSH_PROMISE began.

    Attributes:
        stream_id: the stream of the frame that began the block (never 0).
        fragment: the field block fragment.
        end_headers: END_HEADERS: the field block is complete.
    """

    stream_id: int
    fragment: bytes = b""
    end_headers: bool = True

    frame_type: ClassVar[int] = FrameType.CONTINUATION

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: stream 0 or out of range, or a payload over 2**24-1.
        """
        _check_stream("CONTINUATION", self.stream_id)
        flags = END_HEADERS if self.end_headers else 0
        return encode_frame(FrameType.CONTINUATION, flags, self.stream_id, self.fragment)


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A frame of a type RFC 9113 does not define (an extension, §5.5): to be discarded (§4.1).

    Attributes:
        frame_type: the Type octet, not one of :class:`FrameType`.
        flags: the Flags octet, as received (their meaning is the extension's).
        stream_id: the stream identifier, reserved bit cleared.
        payload: the whole payload.
    """

    frame_type: int
    flags: int
    stream_id: int
    payload: bytes = b""

    def serialize(self) -> bytes:
        """The frame's wire bytes.

        Raises:
            LocalProtocolError: a type RFC 9113 defines (build that frame's class instead), a type or
                flags that are not 8 bits, a stream id out of range, or a payload over 2**24-1.
        """
        if self.frame_type in _TYPE_NAMES or not 0 <= self.frame_type <= 0xFF:
            raise LocalProtocolError(f"frame type {self.frame_type} is not an extension frame type")
        if not 0 <= self.flags <= 0xFF:
            raise LocalProtocolError(f"flags {self.flags} are not 8 bits")
        _check_stream("extension", self.stream_id, zero_allowed=True)
        return encode_frame(self.frame_type, self.flags, self.stream_id, self.payload)


#: Any frame :class:`FrameReader` returns.
Frame: TypeAlias = (
    DataFrame
    | HeadersFrame
    | PriorityFrame
    | RstStreamFrame
    | SettingsFrame
    | PushPromiseFrame
    | PingFrame
    | GoAwayFrame
    | WindowUpdateFrame
    | ContinuationFrame
    | UnknownFrame
)


# --- Writing ------------------------------------------------------------------------------------------------


def encode_frame(frame_type: int, flags: int, stream_id: int, payload: BytesLike) -> bytes:
    """Build one frame from its header fields and payload (§4.1), checking nothing but the length.

    The frame values' ``serialize()`` methods validate and then call this. Tests and tools call it
    directly to build frames a peer should not send: ``stream_id`` is written as given (up to 32 bits,
    so the reserved bit can be set), and so are ``frame_type`` and ``flags``.

    Args:
        frame_type: the Type octet.
        flags: the Flags octet.
        stream_id: written as a 32-bit field: R (1 bit) then the Stream Identifier (31 bits).
        payload: the frame payload.

    Returns:
        The 9-octet header followed by the payload.

    Raises:
        LocalProtocolError: the payload is longer than the 24-bit Length field can say (2**24-1).
    """
    length = len(payload)
    if length > LARGEST_MAX_FRAME_SIZE:
        raise LocalProtocolError(f"frame payload of {length} octets, the Length field holds at most 2**24-1")
    return _HEADER.pack(length >> 8, length & 0xFF, frame_type, flags, stream_id) + payload


def _check_stream(name: str, stream_id: int, *, zero_allowed: bool = False) -> None:
    if not (0 if zero_allowed else 1) <= stream_id <= MAX_STREAM_ID:
        expected = "0..2**31-1" if zero_allowed else "1..2**31-1"
        raise LocalProtocolError(f"{name} frame on stream {stream_id}, expected a stream id in {expected}")


def _check_padding(padding: int) -> None:
    if not 0 <= padding <= 255:
        raise LocalProtocolError(f"padding of {padding} octets, the Pad Length field holds 0..255")


def _check_u32(what: str, value: int) -> None:
    if not 0 <= value <= _U32:
        raise LocalProtocolError(f"{what} {value} is not 32 bits")


def _check_frame_size(max_frame_size: int) -> None:
    if not DEFAULT_MAX_FRAME_SIZE <= max_frame_size <= LARGEST_MAX_FRAME_SIZE:
        raise LocalProtocolError(f"max_frame_size {max_frame_size} is outside 2**14..2**24-1 (RFC 9113 §4.2)")


def split_header_block(
    stream_id: int,
    block: bytes,
    *,
    max_frame_size: int,
    end_stream: bool = False,
    padding: int | None = None,
) -> list[HeadersFrame | ContinuationFrame]:
    """Cut an encoded field block into a HEADERS frame and as many CONTINUATION frames as needed (§4.3).

    Serialise the frames and send them back to back: §4.3 forbids any other frame in between.

    Args:
        stream_id: the stream (never 0).
        block: the whole HPACK-encoded field block.
        max_frame_size: the peer's SETTINGS_MAX_FRAME_SIZE (2**14 until it says otherwise, §6.5.2).
        end_stream: set END_STREAM on the HEADERS frame (it belongs there even when CONTINUATION
            frames follow, §6.2).
        padding: padding octets for the HEADERS frame (PADDED flag), or ``None``; they take room from
            its fragment. CONTINUATION frames cannot be padded.

    Returns:
        The frames in sending order; END_HEADERS is set on the last one only. An empty block gives one
        empty HEADERS frame.

    Raises:
        LocalProtocolError: ``max_frame_size`` outside 2**14..2**24-1, or invalid padding.
    """
    _check_frame_size(max_frame_size)
    first = max_frame_size
    if padding is not None:
        _check_padding(padding)
        first -= 1 + padding
    frames: list[HeadersFrame | ContinuationFrame] = [
        HeadersFrame(stream_id, block[:first], end_stream, len(block) <= first, None, padding)
    ]
    for start in range(first, len(block), max_frame_size):
        end = start + max_frame_size
        frames.append(ContinuationFrame(stream_id, block[start:end], end >= len(block)))
    return frames


def split_data(
    stream_id: int, data: bytes, *, max_frame_size: int, end_stream: bool = False
) -> list[DataFrame]:
    """Cut a piece of body into DATA frames no larger than the peer accepts (§4.2).

    Flow control is the caller's business: pass only as much as the stream and connection windows
    allow (§6.9.1), which may be less than one frame.

    Args:
        stream_id: the stream (never 0).
        data: the bytes to send.
        max_frame_size: the peer's SETTINGS_MAX_FRAME_SIZE.
        end_stream: set END_STREAM on the last frame.

    Returns:
        The frames in sending order; empty ``data`` gives one empty frame (which may carry END_STREAM).

    Raises:
        LocalProtocolError: ``max_frame_size`` outside 2**14..2**24-1.
    """
    _check_frame_size(max_frame_size)
    if not data:
        return [DataFrame(stream_id, b"", end_stream)]
    return [
        DataFrame(
            stream_id,
            data[start : start + max_frame_size],
            end_stream and start + max_frame_size >= len(data),
        )
        for start in range(0, len(data), max_frame_size)
    ]


# --- Reading: per-type payload parsers ----------------------------------------------------------------------
#
# Each takes (flags, stream_id, payload) for a frame whose header FrameReader._check_header accepted:
# the stream identifier suits the type and the payload is long enough for its fixed fields. They check
# what only the payload can tell, and build the value.


def _connection_error(code: ErrorCode, msg: str) -> H2ConnectionError:
    return H2ConnectionError(code, msg)


def _unpad(name: str, stream_id: int, payload: bytes, start: int) -> tuple[int, int]:
    """Read the Pad Length octet; return it and where the padding begins (§6.1, §6.2, §6.6).

    ``start`` is where the fields after Pad Length end: padding may take everything after them, no more.
    """
    padding = payload[0]
    room = len(payload) - start
    if padding > room:
        raise _connection_error(
            ErrorCode.PROTOCOL_ERROR,
            f"{name} frame on stream {stream_id} has a Pad Length of {padding}, "
            f"but only {room} octets follow its fixed fields",
        )
    return padding, len(payload) - padding


def _parse_data(flags: int, stream_id: int, payload: bytes) -> Frame:
    end_stream = bool(flags & END_STREAM)
    if not flags & PADDED:
        return DataFrame(stream_id, payload, end_stream)
    padding, end = _unpad("DATA", stream_id, payload, 1)
    return DataFrame(stream_id, payload[1:end], end_stream, padding)


def _parse_headers(flags: int, stream_id: int, payload: bytes) -> Frame:
    start = 1 if flags & PADDED else 0
    priority = None
    if flags & PRIORITY:
        # §5.3.2: deprecated, but parsed so that the fragment starts in the right place.
        dependency, weight = _PRIORITY_FIELDS.unpack_from(payload, start)
        priority = Priority(dependency & _U31, weight + 1, bool(dependency >> 31))
        start += 5
    padding = None
    end = len(payload)
    if flags & PADDED:
        padding, end = _unpad("HEADERS", stream_id, payload, start)
    return HeadersFrame(
        stream_id, payload[start:end], bool(flags & END_STREAM), bool(flags & END_HEADERS), priority, padding
    )


def _parse_priority(flags: int, stream_id: int, payload: bytes) -> Frame:
    # The one FRAME_SIZE_ERROR that is a stream error (§6.3), so it is raised after the payload is
    # consumed: the next frame can then be read.
    if len(payload) != 5:
        raise H2StreamError(
            stream_id,
            ErrorCode.FRAME_SIZE_ERROR,
            f"PRIORITY frame on stream {stream_id} of {len(payload)} octets, expected 5",
        )
    dependency, weight = _PRIORITY_FIELDS.unpack(payload)
    return PriorityFrame(stream_id, Priority(dependency & _U31, weight + 1, bool(dependency >> 31)))


def _parse_rst_stream(flags: int, stream_id: int, payload: bytes) -> Frame:
    return RstStreamFrame(stream_id, _error_code(_U32_FIELD.unpack(payload)[0]))


def _check_setting(identifier: int, value: int) -> tuple[ErrorCode, str] | None:
    """The §6.5.2 (and RFC 8441 §3) rule ``value`` breaks for ``identifier``, as (code, message), or None."""
    if identifier in (SettingCode.ENABLE_PUSH, SettingCode.ENABLE_CONNECT_PROTOCOL) and value > 1:
        name = SettingCode(identifier).name
        return ErrorCode.PROTOCOL_ERROR, f"SETTINGS_{name} of {value}, expected 0 or 1"
    if identifier == SettingCode.INITIAL_WINDOW_SIZE and value > MAX_WINDOW_SIZE:
        # §6.5.2: the one setting whose bad value is a FLOW_CONTROL_ERROR.
        return ErrorCode.FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE of {value}, at most 2**31-1"
    if identifier == SettingCode.MAX_FRAME_SIZE and not (
        DEFAULT_MAX_FRAME_SIZE <= value <= LARGEST_MAX_FRAME_SIZE
    ):
        return ErrorCode.PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE of {value}, expected 16384..16777215"
    return None


def _parse_settings(flags: int, stream_id: int, payload: bytes) -> Frame:
    if flags & ACK:
        return SettingsFrame((), True)  # the header check made sure the payload is empty
    settings = []
    for identifier, value in _SETTING.iter_unpack(payload):
        problem = _check_setting(identifier, value)
        if problem is not None:
            raise _connection_error(*problem)
        # §6.5.2: unknown identifiers "MUST" be ignored: kept here for the connection to skip.
        settings.append((_SETTING_CODES.get(identifier, identifier), value))
    return SettingsFrame(tuple(settings))


def _parse_push_promise(flags: int, stream_id: int, payload: bytes) -> Frame:
    start = 1 if flags & PADDED else 0
    promised = _U32_FIELD.unpack_from(payload, start)[0] & _U31
    if not promised or promised % 2:
        # §5.1.1: only servers push, and "streams initiated by a server MUST use even-numbered stream
        # identifiers"; stream 0 is the connection. §6.6: promising an "illegal stream identifier" is a
        # connection error. (Whether the id is also new is the connection's to check.)
        raise _connection_error(
            ErrorCode.PROTOCOL_ERROR,
            f"PUSH_PROMISE frame on stream {stream_id} promises stream {promised}, "
            "expected an even (server-initiated) stream",
        )
    start += 4
    padding = None
    end = len(payload)
    if flags & PADDED:
        padding, end = _unpad("PUSH_PROMISE", stream_id, payload, start)
    return PushPromiseFrame(stream_id, promised, payload[start:end], bool(flags & END_HEADERS), padding)


def _parse_ping(flags: int, stream_id: int, payload: bytes) -> Frame:
    return PingFrame(payload, bool(flags & ACK))


def _parse_goaway(flags: int, stream_id: int, payload: bytes) -> Frame:
    last_stream_id, error_code = _GOAWAY_FIELDS.unpack_from(payload)
    return GoAwayFrame(last_stream_id & _U31, _error_code(error_code), payload[8:])


def _parse_window_update(flags: int, stream_id: int, payload: bytes) -> Frame:
    increment = _U32_FIELD.unpack(payload)[0] & _U31
    if not increment:
        # §6.9: a zero increment is a stream error on a stream, a connection error on the connection.
        if stream_id:
            raise H2StreamError(
                stream_id,
                ErrorCode.PROTOCOL_ERROR,
                f"WINDOW_UPDATE frame on stream {stream_id} with increment 0",
            )
        raise _connection_error(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE frame on stream 0 with increment 0")
    return WindowUpdateFrame(stream_id, increment)


def _parse_continuation(flags: int, stream_id: int, payload: bytes) -> Frame:
    return ContinuationFrame(stream_id, payload, bool(flags & END_HEADERS))


_PARSERS: dict[int, Callable[[int, int, bytes], Frame]] = {
    FrameType.DATA: _parse_data,
    FrameType.HEADERS: _parse_headers,
    FrameType.PRIORITY: _parse_priority,
    FrameType.RST_STREAM: _parse_rst_stream,
    FrameType.SETTINGS: _parse_settings,
    FrameType.PUSH_PROMISE: _parse_push_promise,
    FrameType.PING: _parse_ping,
    FrameType.GOAWAY: _parse_goaway,
    FrameType.WINDOW_UPDATE: _parse_window_update,
    FrameType.CONTINUATION: _parse_continuation,
}

# Frame types that "MUST be associated with a stream" (§6.1, §6.2, §6.3, §6.4, §6.6, §6.10) and those
# that belong to the connection (§6.5, §6.7, §6.8): either on the wrong side is a PROTOCOL_ERROR.
# WINDOW_UPDATE goes either way (§6.9); so do unknown types, which are discarded anyway.
_ON_A_STREAM = frozenset(
    {
        FrameType.DATA,
        FrameType.HEADERS,
        FrameType.PRIORITY,
        FrameType.RST_STREAM,
        FrameType.PUSH_PROMISE,
        FrameType.CONTINUATION,
    }
)
_ON_THE_CONNECTION = frozenset({FrameType.SETTINGS, FrameType.PING, FrameType.GOAWAY})

# Payload lengths fixed by the frame's section, where a wrong one is a connection error of type
# FRAME_SIZE_ERROR (§6.4, §6.7, §6.9). PRIORITY's fixed length is a stream error (§6.3): _parse_priority.
_FIXED_LENGTH: dict[int, int] = {FrameType.RST_STREAM: 4, FrameType.PING: 8, FrameType.WINDOW_UPDATE: 4}
# The frames that may be padded, and the length of the fields that always follow the Pad Length.
_FIXED_FIELDS: dict[int, int] = {FrameType.DATA: 0, FrameType.HEADERS: 0, FrameType.PUSH_PROMISE: 4}


# --- Reading: the incremental reader ------------------------------------------------------------------------


class FrameReader:
    """Incremental frame parser: bytes in, frame values out, every header rule checked before the payload.

    Attributes:
        max_frame_size: the largest payload accepted: the SETTINGS_MAX_FRAME_SIZE this endpoint
            advertises (``Limits.h2_max_frame_size``). A connection may raise it once the peer has
            acknowledged a larger value; the reader does not check its range.
    """

    __slots__ = ("max_frame_size", "_buffer", "_header", "_open_block", "_failure")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        # (length, type, flags, stream id) of the frame whose payload is awaited, once its header has
        # passed _check_header and been consumed; None while the next header is awaited.
        self._header: tuple[int, int, int, int] | None = None
        # The stream whose field block is open (§4.3): a HEADERS or PUSH_PROMISE without END_HEADERS
        # was read, and only CONTINUATION frames on that stream may come until one has END_HEADERS.
        # 0 when none is open (stream 0 never carries a field block).
        self._open_block = 0
        self._failure: H2ConnectionError | None = None

    def feed(self, data: BytesLike) -> None:
        """Add bytes received from the peer (ignored after a connection error: nothing will read them)."""
        if self._failure is None:
            self._buffer += data

    def next_frame(self) -> Frame | None:
        """Read the next frame.

        Returns:
            The next frame, or ``None`` if the bytes fed so far do not complete one.

        Raises:
            H2ConnectionError: a connection error (§5.4.1); raised again by every later call.
            H2StreamError: a stream error (§5.4.2); the offending frame is consumed, and the next call
                reads on.
        """
        if self._failure is not None:
            raise self._failure
        try:
            return self._read()
        except H2ConnectionError as exc:
            self._failure = exc
            self._buffer = bytearray()  # free it: the connection is over
            raise

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        frame = self.next_frame()
        if frame is None:
            raise StopIteration
        return frame

    def _read(self) -> Frame | None:
        buffer = self._buffer
        header = self._header
        if header is None:
            if len(buffer) < FRAME_HEADER_SIZE:
                return None
            high, low, frame_type, flags, stream_id = _HEADER.unpack_from(buffer)
            # §4.1: the reserved bit "MUST be ignored when receiving".
            header = (high << 8 | low, frame_type, flags, stream_id & _U31)
            self._check_header(*header)
            del buffer[:FRAME_HEADER_SIZE]
            self._header = header
        length, frame_type, flags, stream_id = header
        if len(buffer) < length:
            return None
        payload = bytes(buffer[:length])
        del buffer[:length]
        self._header = None
        parse = _PARSERS.get(frame_type)
        if parse is None:
            return UnknownFrame(frame_type, flags, stream_id, payload)
        return parse(flags, stream_id, payload)

    def _check_header(self, length: int, frame_type: int, flags: int, stream_id: int) -> None:
        """Every rule the 9-octet header decides; raises H2ConnectionError, or records a field block."""
        name = _type_name(frame_type)
        if length > self.max_frame_size:
            # §4.2: "MUST send an error code of FRAME_SIZE_ERROR if a frame exceeds the size defined in
            # SETTINGS_MAX_FRAME_SIZE"; a connection error for every type (see the module comment).
            raise _connection_error(
                ErrorCode.FRAME_SIZE_ERROR,
                f"{name} frame on stream {stream_id} of {length} octets, the limit is {self.max_frame_size}",
            )
        # §4.3: "Each field block is processed as a discrete unit. Field blocks MUST be transmitted as a
        # contiguous sequence of frames, with no interleaved frames of any other type or from any other
        # stream." §6.10 and §5.5 (extension frames) make either breach a connection error.
        if self._open_block:
            if frame_type != FrameType.CONTINUATION or stream_id != self._open_block:
                raise _connection_error(
                    ErrorCode.PROTOCOL_ERROR,
                    f"{name} frame on stream {stream_id} inside the field block of stream "
                    f"{self._open_block}, expected CONTINUATION on stream {self._open_block}",
                )
        elif frame_type == FrameType.CONTINUATION:
            raise _connection_error(
                ErrorCode.PROTOCOL_ERROR,
                f"CONTINUATION frame on stream {stream_id} with no field block open",
            )
        if frame_type in _ON_A_STREAM:
            if not stream_id:
                raise _connection_error(
                    ErrorCode.PROTOCOL_ERROR, f"{name} frame on stream 0, expected a stream"
                )
        elif frame_type in _ON_THE_CONNECTION:
            if stream_id:
                raise _connection_error(
                    ErrorCode.PROTOCOL_ERROR, f"{name} frame on stream {stream_id}, expected stream 0"
                )
        # Lengths: §4.2, "too small to contain mandatory frame data", and each type's fixed sizes.
        expected = _FIXED_LENGTH.get(frame_type)
        if expected is not None:
            if length != expected:
                raise _connection_error(
                    ErrorCode.FRAME_SIZE_ERROR, f"{name} frame of {length} octets, expected {expected}"
                )
        elif frame_type == FrameType.SETTINGS:
            if flags & ACK and length:
                raise _connection_error(
                    ErrorCode.FRAME_SIZE_ERROR, f"SETTINGS acknowledgement of {length} octets, expected 0"
                )
            if length % 6:
                raise _connection_error(
                    ErrorCode.FRAME_SIZE_ERROR, f"SETTINGS frame of {length} octets, expected a multiple of 6"
                )
        elif frame_type == FrameType.GOAWAY:
            if length < 8:
                raise _connection_error(
                    ErrorCode.FRAME_SIZE_ERROR, f"GOAWAY frame of {length} octets, expected at least 8"
                )
        elif frame_type in _FIXED_FIELDS:
            # Pad Length (1 octet, with PADDED), then the type's fixed fields: Promised Stream ID (4) in
            # PUSH_PROMISE, the priority fields (5) in HEADERS with PRIORITY.
            minimum = (1 if flags & PADDED else 0) + _FIXED_FIELDS[frame_type]
            if frame_type == FrameType.HEADERS and flags & PRIORITY:
                minimum += 5
            if length < minimum:
                raise _connection_error(
                    ErrorCode.FRAME_SIZE_ERROR,
                    f"{name} frame on stream {stream_id} of {length} octets, its flags call for {minimum}",
                )
        # The header is valid: track the field block it opens or closes. Whatever the payload holds,
        # any error in it is a connection error, so the reader never goes on with a stale value.
        if frame_type in (FrameType.HEADERS, FrameType.PUSH_PROMISE, FrameType.CONTINUATION):
            self._open_block = 0 if flags & END_HEADERS else stream_id
