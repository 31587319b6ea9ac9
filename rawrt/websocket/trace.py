"""The ``rawrt.trace`` view of WebSocket frames: what a learner wants to see of each frame on the wire.

Direction (``<<`` received, ``>>`` sent), FIN, RSV1, opcode, mask key, payload length and the first payload
bytes, unmasked. It reads a copy of the bytes the connection already handled, so it can never change what
the connection does. Headers are decoded by the sans-IO frame module
(:func:`rawrt.sansio.ws.frames.parse_header`), leniently: a frame the connection refuses is still shown as
it was sent. A frame is logged once its last byte has passed; only its first :data:`PREVIEW` payload bytes
are kept meanwhile, so tracing a large frame buffers nothing.
"""

from __future__ import annotations

import logging

from ..sansio.ws.connection import Role
from ..sansio.ws.frames import BytesLike, FrameHeader, Opcode, apply_mask, parse_header

__all__ = ["FrameTracer", "PREVIEW"]

trace_log = logging.getLogger("rawrt.trace")

#: How many payload bytes a trace line shows.
PREVIEW = 32
# RFC 6455 §5.2: a header is at most 14 bytes (2, an 8-byte length, a 4-byte mask key).
_MAX_HEADER = 14


class FrameTracer:
    """Decodes the bytes on the wire into frames for the ``rawrt.trace`` log (a learner's view).

    Args:
        role: which end of the connection the bytes are traced at.
    """

    def __init__(self, role: Role) -> None:
        self.role = role
        self._in = _Direction("<<")
        self._out = _Direction(">>")

    def received(self, data: BytesLike) -> None:
        """Trace bytes the peer sent."""
        self._in.feed(data)

    def sent(self, data: BytesLike) -> None:
        """Trace bytes we sent."""
        self._out.feed(data)


class _Direction:
    """The frames of one direction: a header still arriving, or the payload of the frame being passed."""

    __slots__ = ("arrow", "_head", "_header", "_preview", "_left")

    def __init__(self, arrow: str) -> None:
        self.arrow = arrow
        self._head = bytearray()  # the next header's bytes received so far (at most 14)
        self._header: FrameHeader | None = None  # the frame whose payload is passing
        self._preview = b""  # its first PREVIEW payload bytes, as sent (masked or not)
        self._left = 0  # its payload bytes still to come

    def feed(self, data: BytesLike) -> None:
        pos, end = 0, len(data)
        while True:
            header = self._header
            if header is None:
                head = self._head
                take = min(_MAX_HEADER - len(head), end - pos)
                head += data[pos : pos + take]
                pos += take
                header = parse_header(head)
                if header is None:
                    return  # all of data is in head: wait for the rest of the header
                pos -= len(head) - header.size  # the bytes after the header are payload
                head.clear()
                self._header, self._preview, self._left = header, b"", header.length
            n = min(self._left, end - pos)
            if len(self._preview) < PREVIEW:
                self._preview += bytes(data[pos : pos + min(n, PREVIEW - len(self._preview))])
            pos += n
            self._left -= n
            if self._left:
                return  # data ended inside the payload
            self._header = None
            self._log(header, self._preview)
            if pos == end:
                return

    def _log(self, header: FrameHeader, preview: bytes) -> None:
        if header.mask_key:
            preview = apply_mask(preview, header.mask_key)  # §5.3: the key lines up at the payload's start
        try:
            name = Opcode(header.opcode).name
        except ValueError:
            name = f"0x{header.opcode:x}"
        trace_log.debug(
            "%s fin=%d rsv1=%d opcode=%s mask=%s len=%d payload=%r%s",
            self.arrow,
            header.fin,
            header.rsv1,
            name,
            header.mask_key.hex() or "-",
            header.length,
            preview,
            "..." if header.length > PREVIEW else "",
        )
