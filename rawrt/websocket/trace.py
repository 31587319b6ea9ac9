"""The ``rawrt.trace`` view of WebSocket frames: what a learner wants to see of each frame on the wire.

Direction (``<<`` received, ``>>`` sent), FIN, RSV1, opcode, mask key, payload length and the first payload
bytes, unmasked. It reads a copy of the bytes the connection already handled, so it can never change what
the connection does.
"""

from __future__ import annotations

import logging

from ..sansio.ws.connection import Role
from ..sansio.ws.frames import Opcode, apply_mask

__all__ = ["FrameTracer"]

trace_log = logging.getLogger("rawrt.trace")


class FrameTracer:
    """Decodes the bytes on the wire into frames for the ``rawrt.trace`` log (a learner's view)."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self._in = bytearray()
        self._out = bytearray()

    def received(self, data: bytes) -> None:
        self._log(self._in, data, "<<", masked=self.role is Role.SERVER)

    def sent(self, data: bytes) -> None:
        self._log(self._out, data, ">>", masked=self.role is Role.CLIENT)

    @staticmethod
    def _log(buf: bytearray, data: bytes, arrow: str, *, masked: bool) -> None:
        buf += data
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            key = b""
            if b1 & 0x80:
                key = bytes(buf[pos : pos + 4])
                pos += 4
            if len(buf) < pos + min(length, 1 << 24):
                return
            payload = bytes(buf[pos : pos + length])
            if key:
                payload = apply_mask(payload, key)
            try:
                name = Opcode(b0 & 0x0F).name
            except ValueError:
                name = f"0x{b0 & 0x0F:x}"
            trace_log.debug(
                "%s fin=%d rsv1=%d opcode=%s mask=%s len=%d payload=%r%s",
                arrow,
                b0 >> 7,
                (b0 >> 6) & 1,
                name,
                key.hex() or "-",
                length,
                payload[:32],
                "..." if length > 32 else "",
            )
            del buf[: pos + length]
