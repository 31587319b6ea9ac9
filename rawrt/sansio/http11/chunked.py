"""The chunked transfer coding (RFC 9112 §7.1), decoded incrementally: one reader for both directions.

Contract: :meth:`ChunkedDecoder.maybe_read` takes the connection's :class:`ReceiveBuffer` and whether the
peer has closed, and returns the next piece of decoded body (``bytes``), a :class:`Trailers` at the end of
the body (the raw trailer section, for the caller to parse or drop), or ``None`` when it needs more bytes;
or it raises :class:`~rawrt.errors.RemoteProtocolError` (:class:`~rawrt.errors.LimitExceeded` for a limit).
The server's request parser and the client's response reader both use it, so the grammar, the limits and
the error texts are the same in both directions.

Every answer is the same however the bytes were split (the parsers' tests feed each input whole and one
byte at a time): limits on a line still being received allow for the part of its terminator that may
already be there, and error texts quote only bytes that were checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import LimitExceeded, RemoteProtocolError, printable
from ...limits import MAX_CHUNK_SIZE_DIGITS, Limits
from .. import abnf
from ..buffer import ReceiveBuffer

__all__ = ["ChunkedDecoder", "Trailers"]


@dataclass(frozen=True, slots=True)
class Trailers:
    """The end of a chunked body: the trailer section's bytes (RFC 9112 §7.1.2), without its final CRLF
    CRLF; ``b""`` when there is none."""

    block: bytes


class ChunkedDecoder:
    """Decodes one chunked body.

    Args:
        limits: ``max_chunk_ext`` bounds a chunk-size line, ``max_header_bytes`` the trailer section.
        max_body_size: the largest decoded body accepted (413 past it), or None for no bound (a client reading
            an endless event stream bounds what it buffers elsewhere). The server may change it after the
            decoder is made (a route's limit), through the attribute.
    """

    __slots__ = ("limits", "max_body_size", "received", "_phase", "_remaining")

    def __init__(self, limits: Limits, max_body_size: int | None = None) -> None:
        self.limits = limits
        self.max_body_size = max_body_size
        #: Decoded body bytes announced so far (chunk sizes read).
        self.received = 0
        self._phase = "size"  # "size" | "data" | "crlf" | "trailers"
        self._remaining = 0  # bytes left in the current chunk

    def maybe_read(self, buf: ReceiveBuffer, eof: bool) -> bytes | Trailers | None:
        """The next piece of the body, its end, or None; see the module docstring."""
        while True:
            phase = self._phase
            if phase == "data":
                if not buf:
                    _check_eof(eof, "in a chunk")
                    return None
                data = buf.consume(min(len(buf), self._remaining))
                self._remaining -= len(data)
                if self._remaining == 0:
                    self._phase = "crlf"
                return data
            if phase == "crlf":
                if len(buf) < 2:
                    _check_eof(eof, "after chunk data")
                    return None
                if buf.data[:2] != b"\r\n":
                    # Only the two bytes that were checked: more would make the text depend on the split.
                    raise RemoteProtocolError(
                        f"chunk data not followed by CRLF: {printable(bytes(buf.data[:2]))}"
                    )
                buf.consume(2)
                self._phase = "size"
                continue
            if phase == "size":
                # RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
                end = buf.find_from_mark(b"\r\n")
                max_line = MAX_CHUNK_SIZE_DIGITS + self.limits.max_chunk_ext
                if end < 0:
                    # + 1: the line's CR may already be here without its LF (same answer however split).
                    if len(buf) > max_line + 1:
                        raise RemoteProtocolError(f"chunk-size line longer than {max_line} bytes")
                    _check_eof(eof, "in a chunk-size line")
                    return None
                if end > max_line:
                    raise RemoteProtocolError(f"chunk-size line longer than {max_line} bytes")
                line = buf.consume(end + 2)[:end]
                match = abnf.CHUNK_LINE_RE.fullmatch(line)
                if match is None:
                    raise RemoteProtocolError(f"invalid chunk-size line {printable(line)} (RFC 9112 §7.1)")
                size = int(match.group(1), 16)
                if size == 0:
                    self._phase = "trailers"
                    continue
                self.received += size
                if self.max_body_size is not None and self.received > self.max_body_size:
                    # Checked on the announced size, before any of the chunk is read.
                    raise LimitExceeded(f"chunked body exceeds the limit of {self.max_body_size} bytes")
                self._remaining = size
                self._phase = "data"
                continue
            # "trailers": RFC 9112 §7.1.2: trailer-section = *( field-line CRLF ), then CRLF.
            if buf.data[:2] == b"\r\n":
                buf.consume(2)
                return Trailers(b"")
            end = buf.find_from_mark(b"\r\n\r\n")
            limit = self.limits.max_header_bytes
            if end < 0:
                # + 3: up to three bytes of the closing CRLF CRLF may be here already (split-independence).
                if len(buf) > limit + 3:
                    raise LimitExceeded(f"trailer section larger than {limit} bytes", status_hint=431)
                _check_eof(eof, "in the trailer section")
                return None
            block = buf.consume(end + 4)[:end]
            if len(block) > limit:
                raise LimitExceeded(f"trailer section larger than {limit} bytes", status_hint=431)
            return Trailers(block)


def _check_eof(eof: bool, where: str) -> None:
    """Waiting for more bytes is fine, unless the peer has closed: then the body can never be complete."""
    if eof:
        raise RemoteProtocolError(f"connection closed {where} of a chunked body")
