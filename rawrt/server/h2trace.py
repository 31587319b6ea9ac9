"""The ``rawrt.trace`` view of HTTP/2 frames: what a learner wants to see of each frame on the wire.

One record per frame, both directions (``<<`` received, ``>>`` sent): the type, the stream, the payload
length and the flags by name (RFC 9113 §4.1), then what the payload says: SETTINGS by name, the window
increment, the error code, a preview of DATA, and the fields of a header block, HPACK-decoded (RFC 7541).
The client's connection preface (§3.4) gets a record of its own.

It reads a copy of the bytes the connection already handled, so it can never change what the connection
does. In particular the header blocks are decoded by two HPACK decoders of its own, one per direction, fed
the same blocks in the same order as the connection's (and the client's) decoders: HPACK is stateful (the
dynamic table, §2.3.2), so a block can only be decoded by a decoder that saw every block before it, and
decoding a block twice in the connection's decoder would insert its fields twice. The tracer is lenient
where the connection is strict: a frame the connection refuses is still shown as it was sent.

Memory stays bounded as the connection's does: DATA and unknown frames keep only their first
:data:`PREVIEW` payload bytes while the rest passes; other payloads (SETTINGS, HEADERS...) are kept whole
up to the connection's own cap on a header block (4 x ``Limits.h2_max_header_list_size`` + 1 KiB), past
which the block is not decoded and the direction's HPACK context is marked out of step (§4.3: so is the
connection's, which then closes).

The cost when tracing is off is nothing: the session makes no tracer (``Server(trace=False)``).
"""

from __future__ import annotations

import logging
import struct

from ..errors import HeaderListTooLarge, HPACKError
from ..limits import DEFAULT_LIMITS, Limits
from ..sansio.h2.frames import (
    ACK,
    END_HEADERS,
    END_STREAM,
    FRAME_HEADER_SIZE,
    PADDED,
    PREFACE,
    PRIORITY,
    BytesLike,
    ErrorCode,
    FrameType,
    SettingCode,
)
from ..sansio.h2.hpack import DEFAULT_HEADER_TABLE_SIZE, Decoder

__all__ = ["H2Tracer", "PREVIEW", "describe_frame", "format_flags"]

trace_log = logging.getLogger("rawrt.trace")

#: How many DATA (or unknown frame, or GOAWAY debug data) bytes a trace line shows.
PREVIEW = 32

# §4.1: Length (24), Type (8), Flags (8), R + Stream Identifier (31).
_HEADER = struct.Struct("!HBBBL")
_U31 = 0x7FFFFFFF

# The flags each type defines (§6.x); any other bit is shown in hex (§4.1: unknown flags are ignored).
_FLAG_NAMES: dict[int, tuple[tuple[int, str], ...]] = {
    FrameType.DATA: ((END_STREAM, "END_STREAM"), (PADDED, "PADDED")),
    FrameType.HEADERS: (
        (END_STREAM, "END_STREAM"),
        (END_HEADERS, "END_HEADERS"),
        (PADDED, "PADDED"),
        (PRIORITY, "PRIORITY"),
    ),
    FrameType.SETTINGS: ((ACK, "ACK"),),
    FrameType.PING: ((ACK, "ACK"),),
    FrameType.PUSH_PROMISE: ((END_HEADERS, "END_HEADERS"), (PADDED, "PADDED")),
    FrameType.CONTINUATION: ((END_HEADERS, "END_HEADERS"),),
}
# Frames whose whole payload the trace needs (up to the block cap); the others are previewed.
_PREVIEWED = frozenset({FrameType.DATA})
_FIELD_BLOCKS = frozenset({FrameType.HEADERS, FrameType.PUSH_PROMISE, FrameType.CONTINUATION})
# Frames described from their whole payload: when the trace could not keep it all, it says so.
_KEPT_WHOLE = _FIELD_BLOCKS | {FrameType.SETTINGS}


def format_flags(frame_type: int, flags: int) -> str:
    """``0x05(END_STREAM|END_HEADERS)``: the flags octet, then the names this frame type gives its bits."""
    if not flags:
        return "0"
    names = []
    rest = flags
    for bit, name in _FLAG_NAMES.get(frame_type, ()):
        if flags & bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(f"0x{rest:02x}")
    return f"0x{flags:02x}({'|'.join(names)})"


def _type_name(frame_type: int) -> str:
    try:
        return FrameType(frame_type).name
    except ValueError:
        return f"UNKNOWN(0x{frame_type:02x})"


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:x}"


def _setting_name(identifier: int) -> str:
    try:
        return SettingCode(identifier).name
    except ValueError:
        return f"0x{identifier:x}"


def _text(field: bytes) -> str:
    return field.decode("ascii", "backslashreplace")  # peer bytes, shown as they are (STYLE §4)


def _preview(data: bytes, length: int) -> str:
    return repr(data[:PREVIEW]) + ("..." if length > PREVIEW else "")


def _unpad(flags: int, payload: bytes, length: int) -> tuple[bytes, int, str]:
    """What the payload carries without Pad Length and padding (§6.1, §6.2, §6.6): its (first) bytes, its
    length, and a note about the padding. ``payload`` may be the first bytes of a ``length``-octet one."""
    if not flags & PADDED or not payload:
        return payload, length, ""
    pad = payload[0]
    size = max(0, length - 1 - pad)
    return payload[1 : 1 + size], size, f" padding={pad}"


def describe_frame(frame_type: int, flags: int, stream_id: int, length: int, payload: bytes) -> str:
    """One frame, as a trace line shows it (without its header block's fields, which need HPACK state).

    Args:
        frame_type, flags, stream_id, length: the frame header's fields (§4.1).
        payload: the payload, or its first bytes for DATA and unknown frames.

    Returns:
        e.g. ``WINDOW_UPDATE stream=0 len=4 flags=0 increment=983041``.
    """
    line = f"{_type_name(frame_type)} stream={stream_id} len={length} flags={format_flags(frame_type, flags)}"
    if len(payload) < length and frame_type in _KEPT_WHOLE:
        return line + " (payload not kept)"
    detail = ""
    if frame_type == FrameType.DATA:
        data, size, detail = _unpad(flags, payload, length)
        detail += f" data={_preview(data, size)}"
    elif frame_type == FrameType.HEADERS:
        block, _, detail = _unpad(flags, payload, length)
        if flags & PRIORITY and len(block) >= 5:
            dependency, weight = struct.unpack_from("!LB", block)
            detail += (
                f" priority(deprecated, §5.3.2): depends_on={dependency & _U31}"
                f" weight={weight + 1} exclusive={dependency >> 31}"
            )
    elif frame_type == FrameType.PRIORITY and length == 5:
        dependency, weight = struct.unpack_from("!LB", payload)
        detail = f" depends_on={dependency & _U31} weight={weight + 1} exclusive={dependency >> 31}"
    elif frame_type == FrameType.RST_STREAM and length == 4:
        detail = f" error={_code_name(struct.unpack_from('!L', payload)[0])}"
    elif frame_type == FrameType.SETTINGS:
        detail = "".join(
            f" {_setting_name(ident)}={value}"
            for ident, value in struct.iter_unpack("!HL", payload[: len(payload) - len(payload) % 6])
        )
    elif frame_type == FrameType.PUSH_PROMISE:
        block, _, detail = _unpad(flags, payload, length)
        if len(block) >= 4:
            detail += f" promised_stream={struct.unpack_from('!L', block)[0] & _U31}"
    elif frame_type == FrameType.PING and length == 8:
        detail = f" opaque={payload.hex()}"
    elif frame_type == FrameType.GOAWAY and len(payload) >= 8:
        last, code = struct.unpack_from("!LL", payload)
        detail = f" last_stream={last & _U31} error={_code_name(code)}"
        if length > 8:
            detail += f" debug={_preview(payload[8:], length - 8)}"
    elif frame_type == FrameType.WINDOW_UPDATE and length == 4:
        detail = f" increment={struct.unpack_from('!L', payload)[0] & _U31}"
    elif frame_type > FrameType.CONTINUATION:
        detail = f" payload={_preview(payload, length)}"  # an extension frame (§5.5)
    return line + detail


def _fragment(frame_type: int, flags: int, payload: bytes) -> bytes:
    """The field block fragment in a HEADERS, PUSH_PROMISE or CONTINUATION payload (§6.2, §6.6, §6.10)."""
    if frame_type == FrameType.CONTINUATION:
        return payload
    block, _, _ = _unpad(flags, payload, len(payload))
    if frame_type == FrameType.PUSH_PROMISE:
        return block[4:]
    return block[5:] if flags & PRIORITY else block


class H2Tracer:
    """Decodes the bytes of one HTTP/2 connection into frames for the ``rawrt.trace`` log (a server's view).

    Args:
        limits: the connection's limits, for the header-list limit and the cap on a kept header block.
        client: the client's address, which opens every record (connections interleave in the log).
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, client: tuple[str, int] | None = None) -> None:
        block_cap = 4 * limits.h2_max_header_list_size + 1024  # as H2Connection._check_block
        where = f"{client[0]}:{client[1]} " if client else ""
        self._in = _Direction(f"{where}<<", limits, block_cap, preface=True)
        self._out = _Direction(f"{where}>>", limits, block_cap, preface=False)
        # SETTINGS_HEADER_TABLE_SIZE sent one way bounds the table of the blocks coming the other way.
        self._in.peer = self._out
        self._out.peer = self._in

    def received(self, data: BytesLike) -> None:
        """Trace bytes the client sent (from its preface on)."""
        self._in.feed(data)

    def sent(self, data: BytesLike) -> None:
        """Trace bytes we sent."""
        self._out.feed(data)


class _Direction:
    """The frames of one direction: a header still arriving, or the payload of the frame being passed."""

    def __init__(self, arrow: str, limits: Limits, block_cap: int, *, preface: bool) -> None:
        self.arrow = arrow
        self.peer: _Direction = self
        # The blocks of this direction, decoded in order. The table starts at the protocol's 4096 (RFC 9113
        # §6.5.2); a size update may go up to the largest SETTINGS_HEADER_TABLE_SIZE the other side sent.
        self.decoder = Decoder(DEFAULT_HEADER_TABLE_SIZE, limits.h2_max_header_list_size)
        self._block_cap = block_cap
        self._preface_left = len(PREFACE) if preface else 0
        self._head = bytearray()  # the next frame header's bytes received so far (at most 9)
        self._frame: tuple[int, int, int, int] | None = None  # (length, type, flags, stream) being passed
        self._keep = 0  # how many payload bytes of that frame are kept
        self._payload = bytearray()
        self._left = 0  # its payload bytes still to come
        self._block = bytearray()  # the field block being collected (HEADERS then CONTINUATION)
        self._block_stream = 0
        self._block_lost = False  # part of the open block was not kept
        self._broken = ""  # why this direction's HPACK context is out of step, once it is

    def feed(self, data: BytesLike) -> None:
        pos, end = 0, len(data)
        if self._preface_left:
            take = min(self._preface_left, end)
            self._preface_left -= take
            pos = take
            if not self._preface_left:
                trace_log.debug("%s preface %r", self.arrow, PREFACE)
        while pos < end:
            frame = self._frame
            if frame is None:
                take = min(FRAME_HEADER_SIZE - len(self._head), end - pos)
                self._head += data[pos : pos + take]
                pos += take
                if len(self._head) < FRAME_HEADER_SIZE:
                    return  # wait for the rest of the header
                high, low, frame_type, flags, stream_id = _HEADER.unpack(self._head)
                self._head.clear()
                length = high << 8 | low
                frame = self._frame = (length, frame_type, flags, stream_id & _U31)
                if frame_type in _PREVIEWED or frame_type > FrameType.CONTINUATION:
                    self._keep = min(length, PREVIEW + 1)  # + the Pad Length octet
                elif frame_type == FrameType.GOAWAY:
                    self._keep = min(length, 8 + PREVIEW)
                else:
                    self._keep = min(length, self._block_cap)
                self._payload = bytearray()
                self._left = length
            n = min(self._left, end - pos)
            want = self._keep - len(self._payload)
            if want > 0:
                self._payload += data[pos : pos + min(n, want)]
            pos += n
            self._left -= n
            if self._left:
                return  # data ended inside the payload
            self._frame = None
            self._log(*frame, bytes(self._payload))

    def _log(self, length: int, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        line = describe_frame(frame_type, flags, stream_id, length, payload)
        fields = ""
        if frame_type == FrameType.SETTINGS and not flags & ACK and len(payload) == length:
            for ident, value in struct.iter_unpack("!HL", payload[: length - length % 6]):
                if ident == SettingCode.HEADER_TABLE_SIZE:
                    decoder = self.peer.decoder
                    decoder.max_table_size = max(decoder.max_table_size, value)
        elif frame_type in _FIELD_BLOCKS:
            fields = self._collect(frame_type, flags, stream_id, length, payload)
        trace_log.debug("%s %s%s", self.arrow, line, fields)

    def _collect(self, frame_type: int, flags: int, stream_id: int, length: int, payload: bytes) -> str:
        """Add a fragment to the open field block; its decoded fields (one per line) once it is complete."""
        if frame_type != FrameType.CONTINUATION:
            self._block.clear()
            self._block_stream = stream_id
            self._block_lost = False
        if len(payload) < length or len(self._block) + len(payload) > self._block_cap:
            self._block_lost = True
        else:
            self._block += _fragment(frame_type, flags, payload)
        if not flags & END_HEADERS:
            return "\n    (the field block continues in CONTINUATION frames)"
        block = bytes(self._block)
        self._block.clear()
        if self._block_lost and not self._broken:  # the first cause is the one worth telling
            self._broken = f"a field block on stream {self._block_stream} over {self._block_cap} octets"
        if self._broken:
            return f"\n    (fields not decoded: HPACK context out of step after {self._broken})"
        try:
            fields = self.decoder.decode(block)
        except HeaderListTooLarge as exc:
            return f"\n    (fields not shown: {exc})"
        except HPACKError as exc:
            self._broken = f"an undecodable block ({exc})"
            return f"\n    (fields not decoded: {exc})"
        return "".join(
            f"\n    {_text(f.name)}: {_text(f.value)}" + (" (never indexed)" if f.sensitive else "")
            for f in fields
        )
