# WebSocket frames (RFC 6455 §5): the wire grammar, in both directions, and nothing else.
#
# Contract:
#   * Reading: ``FrameReader.maybe_read(buf, offset)`` looks at ``buf[offset:]`` and returns
#     ``(first_byte, payload, next_offset)`` for one complete frame, or ``None`` when more bytes are
#     needed, or raises ``RemoteProtocolError`` (close 1002) / ``LimitExceeded`` (close 1009). It never
#     mutates ``buf``: the caller owns the buffer and drops the consumed prefix once per chunk, so a
#     chunk holding many small frames costs one ``del buf[:n]`` instead of one per frame.
#   * Every check that can be made on the header is made before the payload is waited for: a header
#     announcing 2**62 bytes is refused after reading at most 14 bytes, without buffering anything.
#   * Writing: ``encode_frame`` turns one frame into bytes. It validates nothing (the connection and
#     ``Frame`` do), so tests can build invalid frames and a broadcast can encode a message once and
#     hand the same bytes to every (unmasked, server-side) connection.
#   * Masking (§5.3) is pure Python; ``apply_mask`` picks the faster of two methods by payload size.
#
# The reader returns raw values rather than ``Frame`` objects on purpose: building a frozen dataclass per
# frame would cost more than parsing a small frame's header (docs/topics/performance.md). ``Frame`` is the
# validated, app-facing value; ``parse_frame`` builds one for tests and tools, and ``parse_header`` decodes
# a header without checks for tools that show what was sent (the ``rawrt.trace`` log).

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from rawrt.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError, printable

__all__ = [
    "BytesLike",
    "Opcode",
    "CloseCode",
    "Frame",
    "FrameReader",
    "FrameHeader",
    "parse_header",
    "parse_frame",
    "encode_frame",
    "apply_mask",
    "is_valid_close_code",
    "parse_close",
    "encode_close",
    "DATA_OPCODES",
    "CONTROL_OPCODES",
    "MAX_CONTROL_PAYLOAD",
    "FIN",
    "RSV1",
    "RSV2",
    "RSV3",
]

#: Anything the stdlib accepts as a read-only byte buffer.
BytesLike = bytes | bytearray | memoryview


class Opcode(IntEnum):
    """Frame opcodes (RFC 6455 §5.2 and §11.8). Values 3-7 and 11-15 are reserved."""

    #: Continuation of a fragmented message (§5.4).
    CONT = 0x0
    #: First frame of a UTF-8 text message.
    TEXT = 0x1
    #: First frame of a binary message.
    BINARY = 0x2
    #: Close (§5.5.1): optional 2-byte code then a UTF-8 reason.
    CLOSE = 0x8
    #: Ping (§5.5.2): the peer must answer with a pong carrying the same payload.
    PING = 0x9
    #: Pong (§5.5.3): an answer to a ping, or an unsolicited heartbeat.
    PONG = 0xA


class CloseCode(IntEnum):
    """Close status codes (RFC 6455 §7.4.1 and the IANA registry, §11.7)."""

    #: The purpose of the connection was fulfilled.
    NORMAL_CLOSURE = 1000
    #: The endpoint is going away (server shutdown, page navigation).
    GOING_AWAY = 1001
    #: The peer broke the protocol.
    PROTOCOL_ERROR = 1002
    #: The endpoint cannot accept this kind of data (e.g. binary when it only takes text).
    UNSUPPORTED_DATA = 1003
    #: Never sent: "no status code was present" (§7.4.1). Reported locally for an empty close payload.
    NO_STATUS_RCVD = 1005
    #: Never sent: the connection dropped without a close frame. Reported locally.
    ABNORMAL_CLOSURE = 1006
    #: A text message (or close reason) was not valid UTF-8.
    INVALID_DATA = 1007
    #: Generic policy violation.
    POLICY_VIOLATION = 1008
    #: A frame or message was larger than the endpoint accepts.
    MESSAGE_TOO_BIG = 1009
    #: The client expected the server to negotiate an extension it did not.
    MANDATORY_EXTENSION = 1010
    #: The server met an unexpected condition (a bug): no details are sent.
    INTERNAL_ERROR = 1011
    #: The service is restarting (IANA registry).
    SERVICE_RESTART = 1012
    #: Try again later (IANA registry).
    TRY_AGAIN_LATER = 1013
    #: A gateway got an invalid answer upstream (IANA registry).
    BAD_GATEWAY = 1014
    #: Never sent: the TLS handshake failed. Reported locally.
    TLS_HANDSHAKE = 1015


#: Opcodes that start or continue a message.
DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
#: Opcodes of control frames (§5.5): short, never fragmented, may be interleaved with fragments.
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})
#: §5.5: "All control frames MUST have a payload length of 125 bytes or less".
MAX_CONTROL_PAYLOAD = 125

# Bits of the first header byte (§5.2).
FIN = 0x80
RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10

# Opcode -> "is a control frame", indexed by the low nibble; None for reserved opcodes (§5.2: "3-7 are
# reserved for further non-control frames", "B-F are reserved for further control frames"). A tuple, not
# the Enum constructor, on the per-frame path (docs/topics/performance.md).
_KIND: tuple[bool | None, ...] = tuple(
    (op >= 8) if op in {o.value for o in Opcode} else None for op in range(16)
)

_UNPACK_H = struct.Struct("!H").unpack_from
_UNPACK_Q = struct.Struct("!Q").unpack_from
_PACK_BB = struct.Struct("!BB").pack
_PACK_BBH = struct.Struct("!BBH").pack
_PACK_BBQ = struct.Struct("!BBQ").pack


# --- Masking (§5.3) ---------------------------------------------------------------------------------------
#
# Two pure-Python methods, chosen by size (rawrt's runtime depends on no compiled extension). "Big int"
# XORs the payload, read as one little-endian integer, with the key repeated to the same length: one C-level
# pass each for from_bytes, xor, to_bytes. "Translate" copies the payload into a bytearray and XORs each of
# its four byte-lanes (buf[i::4]) in place through a 256-byte lookup table: a fixed cost of four strided
# slices and four slice assignments, but linear where big-int arithmetic slows down. Big int wins on the
# small frames chat-like traffic is made of, translate above the threshold; the timings that put the
# threshold at 512 bytes are in docs/topics/performance.md ("Unmasking").
_TRANSLATE_THRESHOLD = 512

# XOR tables for translate(): _XOR_TABLES[k][b] == b ^ k. 256 tables x 256 bytes = 64 KiB, built lazily
# per key byte so an idle server pays nothing.
_XOR_TABLES: list[bytes | None] = [None] * 256


def _xor_table(k: int) -> bytes:
    table = _XOR_TABLES[k]
    if table is None:
        table = _XOR_TABLES[k] = bytes(b ^ k for b in range(256))
    return table


def apply_mask(data: BytesLike, key: BytesLike) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` repeated (RFC 6455 §5.3).

    Masking and unmasking are the same operation, so ``apply_mask(apply_mask(d, k), k) == d``.

    Args:
        data: the payload to mask or unmask (left unchanged).
        key: exactly 4 bytes.

    Returns:
        The transformed payload, always a new ``bytes`` object.
    """
    n = len(data)
    if n < _TRANSLATE_THRESHOLD:
        if not n:
            return b""
        # key * (n // 4 + 1) is at most 3 bytes too long: cut it to n.
        mask = (bytes(key) * ((n >> 2) + 1))[:n]
        return (int.from_bytes(data, "little") ^ int.from_bytes(mask, "little")).to_bytes(n, "little")
    buf = bytearray(data)  # our own copy, XORed in place
    k0, k1, k2, k3 = key
    buf[0::4] = buf[0::4].translate(_xor_table(k0))
    buf[1::4] = buf[1::4].translate(_xor_table(k1))
    buf[2::4] = buf[2::4].translate(_xor_table(k2))
    buf[3::4] = buf[3::4].translate(_xor_table(k3))
    return bytes(buf)


# --- Reading -----------------------------------------------------------------------------------------------


class FrameReader:
    """Incremental, allocation-free header parser with every §5.2 check made before the payload.

    The connection owns the buffer and the message state; the reader owns the per-frame rules. Its
    fields are plain attributes so the connection can tighten ``budget`` as a message grows.

    Attributes:
        mask_expected: True on a server (§5.1: "a client MUST mask all frames that it sends"; "the
            server MUST close the connection upon receiving a frame that is not masked"), False on a
            client (§5.1: "A client MUST close a connection if it detects a masked frame").
        max_frame_size: the largest declared payload length accepted for any data frame (1009).
        budget: the largest declared payload length accepted for the next *uncompressed* data frame:
            what is left of the message size limit. Compressed frames are bounded while inflating.
        rsv_allowed: the RSV bits a negotiated extension may set (``RSV1`` for permessage-deflate).
            Whether a given frame may carry them is the extension's rule, checked by the connection.
    """

    __slots__ = ("mask_expected", "max_frame_size", "budget", "rsv_allowed")

    def __init__(
        self,
        *,
        mask_expected: bool,
        max_frame_size: int,
        budget: int | None = None,
        rsv_allowed: int = 0,
    ) -> None:
        self.mask_expected = mask_expected
        self.max_frame_size = max_frame_size
        self.budget = max_frame_size if budget is None else budget
        self.rsv_allowed = rsv_allowed

    def maybe_read(self, buf: BytesLike, offset: int) -> tuple[int, bytes, int] | None:
        """Read one frame starting at ``buf[offset]``.

        Args:
            buf: the receive buffer (bytes or bytearray).
            offset: where the next frame starts.

        Returns:
            ``(first_byte, unmasked_payload, offset_after_frame)``, or ``None`` if the frame is not
            complete yet. ``first_byte`` carries FIN, RSV1-3 and the opcode (§5.2).

        Raises:
            RemoteProtocolError: a §5.2 / §5.5 rule is broken (close 1002).
            LimitExceeded: the declared length is over ``max_frame_size`` or ``budget`` (close 1009).
        """
        avail = len(buf) - offset
        if avail < 2:
            return None
        b0 = buf[offset]
        b1 = buf[offset + 1]
        # Everything the first two bytes reveal is checked before waiting for more, so a bad frame
        # fails fast even when its extended length or its payload never arrives.
        opcode = b0 & 0x0F
        control = _KIND[opcode]
        if control is None:
            raise RemoteProtocolError(f"reserved opcode {opcode:#x}")
        if b0 & 0x70 & ~self.rsv_allowed:
            # §5.2: "MUST be 0 unless an extension is negotiated that defines meanings".
            raise RemoteProtocolError(f"RSV bits {(b0 >> 4) & 7:03b} set, no extension defines them")
        if b1 & 0x80:
            if not self.mask_expected:
                raise RemoteProtocolError("masked frame from a server")
        elif self.mask_expected:
            raise RemoteProtocolError("unmasked frame from a client")
        if control and not b0 & FIN:
            raise RemoteProtocolError("fragmented control frame")  # §5.5
        length = b1 & 0x7F
        pos = offset + 2
        if length == 126:
            if avail < 4:
                return None
            (length,) = _UNPACK_H(buf, pos)
            pos = offset + 4
            # §5.2: "the minimal number of bytes MUST be used to encode the length". A sender that
            # pads the length is broken or probing for parser differentials: refuse it, as wsproto
            # does (websockets accepts it; Autobahn has no case either way).
            if length < 126:
                raise RemoteProtocolError(f"length {length} sent in 16 bits, expected 7 bits")
        elif length == 127:
            if avail < 10:
                return None
            (length,) = _UNPACK_Q(buf, pos)
            pos = offset + 10
            # §5.2: "the most significant bit MUST be 0".
            if length >> 63:
                raise RemoteProtocolError("64-bit frame length has its most significant bit set")
            if length < 0x10000:
                raise RemoteProtocolError(f"length {length} sent in 64 bits, expected 16 or 7")
        if control:
            if length > MAX_CONTROL_PAYLOAD:
                raise RemoteProtocolError(f"control frame of {length} bytes, expected at most 125")
        elif length > self.max_frame_size:
            raise LimitExceeded(f"frame of {length} bytes, limit is {self.max_frame_size}")
        # Compressed (RSV1) frames may legitimately be a few bytes longer than the message they carry;
        # the inflater enforces the message limit on them instead (RFC 7692 §8.1 discusses the bomb).
        elif length > self.budget and not b0 & RSV1:
            raise LimitExceeded(f"frame of {length} bytes, message limit leaves {self.budget}")
        if b1 & 0x80:
            end = pos + 4 + length
            if end - offset > avail:
                return None
            return b0, apply_mask(buf[pos + 4 : end], buf[pos : pos + 4]), end
        end = pos + length
        if end - offset > avail:
            return None
        return b0, bytes(buf[pos:end]), end


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A frame header as it is on the wire (RFC 6455 §5.2), decoded by :func:`parse_header` without checks.

    Attributes:
        first_byte: FIN, RSV1-3 and the opcode, as sent.
        mask_key: the 4-byte masking key (§5.3), or ``b""`` for an unmasked frame.
        length: the declared payload length.
        size: the header's size in bytes, 2 to 14: the payload starts right after it.
    """

    first_byte: int
    mask_key: bytes
    length: int
    size: int

    @property
    def fin(self) -> bool:
        """Whether this is the last frame of its message."""
        return bool(self.first_byte & FIN)

    @property
    def rsv1(self) -> bool:
        """Whether RSV1 is set (permessage-deflate's "compressed" bit, RFC 7692 §6)."""
        return bool(self.first_byte & RSV1)

    @property
    def opcode(self) -> int:
        """The 4-bit opcode, reserved values included (use ``Opcode(header.opcode)`` to name a known one)."""
        return self.first_byte & 0x0F


def parse_header(data: BytesLike, offset: int = 0) -> FrameHeader | None:
    """Decode the frame header at ``data[offset:]`` whatever it says: for tools that show what was sent,
    valid or not (the ``rawrt.trace`` log).

    The layout is the one :meth:`FrameReader.maybe_read` reads (the tests hold the two in agreement), but
    no §5.2 rule is checked and the payload is not waited for: a connection reads frames with
    :class:`FrameReader`, which refuses a bad header before reading its payload.

    Args:
        data: bytes holding a frame header at ``offset``.
        offset: where the header starts.

    Returns:
        The header, or ``None`` if ``data`` does not hold all of it yet (at most 14 bytes are needed).
    """
    avail = len(data) - offset
    if avail < 2:
        return None
    b1 = data[offset + 1]
    length = b1 & 0x7F
    size = 2
    if length == 126:
        if avail < 4:
            return None
        (length,) = _UNPACK_H(data, offset + 2)
        size = 4
    elif length == 127:
        if avail < 10:
            return None
        (length,) = _UNPACK_Q(data, offset + 2)
        size = 10
    mask_key = b""
    if b1 & 0x80:
        if avail < size + 4:
            return None
        mask_key = bytes(data[offset + size : offset + size + 4])
        size += 4
    return FrameHeader(data[offset], mask_key, length, size)


# --- The validated value type -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame (RFC 6455 §5.2), unmasked.

    Validated when built by hand (a known opcode; control frames short and unfragmented, §5.5); the
    connection's hot path never builds one.

    Attributes:
        fin: last frame of its message.
        opcode: what the payload is.
        payload: application (or extension) data, unmasked.
        rsv1: set by permessage-deflate on the first frame of a compressed message (RFC 7692 §6).
        rsv2: reserved; no extension rawrt knows uses it.
        rsv3: reserved; no extension rawrt knows uses it.
    """

    fin: bool
    opcode: Opcode
    payload: bytes
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.opcode, Opcode):
            try:
                object.__setattr__(self, "opcode", Opcode(self.opcode))
            except ValueError:
                raise LocalProtocolError(f"reserved opcode {self.opcode!r}") from None
        if self.opcode in CONTROL_OPCODES:
            if len(self.payload) > MAX_CONTROL_PAYLOAD:
                raise LocalProtocolError(f"control frame payload of {len(self.payload)} bytes > 125")
            if not self.fin:
                raise LocalProtocolError("control frames cannot be fragmented")

    def serialize(self, mask_key: bytes | None = None) -> bytes:
        """Encode this frame for the wire.

        Args:
            mask_key: 4 bytes to mask with (client role, §5.3), or None to send unmasked (server).

        Returns:
            The frame's wire bytes.
        """
        return encode_frame(
            self.opcode,
            self.payload,
            fin=self.fin,
            rsv=(RSV1 if self.rsv1 else 0) | (RSV2 if self.rsv2 else 0) | (RSV3 if self.rsv3 else 0),
            mask_key=mask_key,
        )


def parse_frame(
    data: BytesLike,
    *,
    mask_expected: bool,
    max_frame_size: int = 2**63 - 1,
    rsv_allowed: int = RSV1 | RSV2 | RSV3,
) -> tuple[Frame, int] | None:
    """Parse the first frame in ``data`` into a :class:`Frame` (for tests and tools; not the hot path).

    Args:
        data: bytes starting with a frame header.
        mask_expected: True to parse client-to-server frames (masked), False for server-to-client.
        max_frame_size: largest payload accepted.
        rsv_allowed: RSV bits accepted; all by default since no extension is in play here.

    Returns:
        ``(frame, bytes_consumed)``, or ``None`` if ``data`` holds no complete frame.

    Raises:
        RemoteProtocolError: see :meth:`FrameReader.maybe_read`.
        LimitExceeded: see :meth:`FrameReader.maybe_read`.
    """
    reader = FrameReader(mask_expected=mask_expected, max_frame_size=max_frame_size, rsv_allowed=rsv_allowed)
    result = reader.maybe_read(data, 0)
    if result is None:
        return None
    b0, payload, end = result
    frame = Frame(
        bool(b0 & FIN), Opcode(b0 & 0x0F), payload, bool(b0 & RSV1), bool(b0 & RSV2), bool(b0 & RSV3)
    )
    return frame, end


# --- Writing -----------------------------------------------------------------------------------------------


def encode_frame(
    opcode: int,
    payload: BytesLike,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask_key: BytesLike | None = None,
) -> bytes:
    """Encode one frame with the minimal length encoding (RFC 6455 §5.2).

    Nothing is validated: callers (``Frame``, ``WebSocketConnection``) do that. Because a server's
    frames are unmasked, the result can be computed once and written to any number of server-side
    connections (a broadcast): see ``WebSocketConnection.send_encoded``.

    Args:
        opcode: the 4-bit opcode.
        payload: the unmasked payload.
        fin: set the FIN bit.
        rsv: RSV bits to set, an OR of ``RSV1``, ``RSV2``, ``RSV3``.
        mask_key: 4 bytes to mask with (client role, §5.3), or None for an unmasked frame.

    Returns:
        The frame's wire bytes.
    """
    b0 = (FIN if fin else 0) | rsv | opcode
    n = len(payload)
    if mask_key is None:
        if n < 126:
            header = _PACK_BB(b0, n)
        elif n < 0x10000:
            header = _PACK_BBH(b0, 126, n)
        else:
            header = _PACK_BBQ(b0, 127, n)
        return header + payload
    if n < 126:
        header = _PACK_BB(b0, 0x80 | n)
    elif n < 0x10000:
        header = _PACK_BBH(b0, 0xFE, n)
    else:
        header = _PACK_BBQ(b0, 0xFF, n)
    return b"".join((header, mask_key, apply_mask(payload, mask_key)))


# --- Close frame payloads (§5.5.1, §7.4) -------------------------------------------------------------------


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a close frame on the wire (RFC 6455 §7.4).

    1000-1003 and 1007-1011 are defined by §7.4.1; 1012-1014 are registered with IANA (§11.7) and
    Autobahn 7.7 expects them accepted; 3000-4999 belong to libraries and applications (§7.4.2).
    1004 is reserved, 1005/1006/1015 "MUST NOT be set as a status code in a Close control frame",
    and everything else below 3000 is reserved for future RFCs, so it is a protocol error today.
    """
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def parse_close(payload: bytes) -> tuple[int, str]:
    """Decode a close frame's payload (RFC 6455 §5.5.1).

    Args:
        payload: the unmasked payload.

    Returns:
        ``(code, reason)``; ``(1005, "")`` for an empty payload, which is legal and means "no status".

    Raises:
        RemoteProtocolError: a 1-byte payload or a code that must not be sent (close 1002), or a
            reason that is not UTF-8 (close 1007).
    """
    if not payload:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise RemoteProtocolError("close frame with a 1-byte payload, expected 0 or at least 2")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise RemoteProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise RemoteProtocolError(
            f"close reason is not UTF-8: {printable(payload[2:])}", close_code=1007
        ) from None
    return code, reason


def encode_close(code: int, reason: str = "") -> bytes:
    """Encode a close frame's payload (RFC 6455 §5.5.1).

    Args:
        code: a code for which :func:`is_valid_close_code` holds, or 1005 for "no status", which is
            encoded as an empty payload (the only way §7.4.1 allows to convey it).
        reason: UTF-8 text; with the code it must fit in 125 bytes.

    Returns:
        The payload.

    Raises:
        LocalProtocolError: the code cannot be sent, or the reason is too long, or a reason was given
            without a code.
    """
    if code == CloseCode.NO_STATUS_RCVD:
        if reason:
            raise LocalProtocolError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise LocalProtocolError(f"close code {code} cannot be sent")
    data = code.to_bytes(2, "big") + reason.encode()
    if len(data) > MAX_CONTROL_PAYLOAD:
        raise LocalProtocolError(f"close reason of {len(data) - 2} bytes, at most 123 fit")
    return data
