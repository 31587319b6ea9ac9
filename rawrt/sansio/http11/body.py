"""Message bodies (RFC 9112 §6, §7): the body codecs, shared by the server and the client.

Reading
-------
A body is delimited in one of three ways (RFC 9112 §6.3), and each has one reader here:

* :class:`ContentLengthReader` -- exactly ``Content-Length`` bytes (§6.2);
* :class:`ChunkedDecoder` -- the chunked transfer coding (§7.1), with its trailer section;
* :class:`CloseDelimitedReader` -- everything until the peer closes (§6.3 rule 8; responses only).

They share one contract: ``maybe_read(buf, eof)`` takes the connection's :class:`ReceiveBuffer` and whether
the peer has closed, and returns the next piece of the body (``bytes``, never empty), :class:`EndOfBody` at
its end, or ``None`` when it needs more bytes; or it raises :class:`~rawrt.errors.RemoteProtocolError`
(:class:`~rawrt.errors.LimitExceeded` for a limit). The server's
:class:`~rawrt.sansio.http11.HTTPConnection` and the client's
:class:`~rawrt.sansio.http11.client.ResponseReader` both read through them, so the grammar, the limits and
the error texts are the same in both directions.

Every answer is the same however the bytes were split (the parsers' tests feed each input whole and one
byte at a time): limits on a line still being received allow for the part of its terminator that may
already be there, and error texts quote only bytes that were checked.

Writing
-------
:func:`encode_chunk` frames one piece of a chunked body. The last chunk and the trailer section are written
by the connection, which owns the trailers' validation.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import LimitExceeded, RemoteProtocolError, printable
from ...limits import MAX_CHUNK_SIZE_DIGITS, Limits
from .. import abnf
from ..buffer import ReceiveBuffer

__all__ = [
    "EndOfBody",
    "ContentLengthReader",
    "ChunkedDecoder",
    "CloseDelimitedReader",
    "BodyReader",
    "encode_chunk",
]


@dataclass(frozen=True, slots=True)
class EndOfBody:
    """The end of a body. ``trailers``: a chunked body's trailer section as received (RFC 9112 §7.1.2),
    without its final CRLF CRLF, for the caller to parse or drop; ``b""`` when there is none."""

    trailers: bytes = b""


# The end of every body that has no trailer section: one immutable value, never rebuilt.
_END = EndOfBody()

# RFC 9112 §7.1 writes every line of the chunked coding with CRLF; §2.2's leniency (a recipient MAY take a
# bare LF as a line end) is not taken, as for the head: a bare LF is how smuggling attacks split lines
# differently from a front end.
_BARE_LF = "lines end with CRLF (RFC 9112 §7.1)"
_BARE_LF_CHUNK = f"chunk-size line ends in a bare LF: {_BARE_LF}"


def _check_eof(eof: bool, where: str) -> None:
    """Waiting for more bytes is fine, unless the peer has closed: then the body can never be complete."""
    if eof:
        raise RemoteProtocolError(f"connection closed {where} of a chunked body")


class ContentLengthReader:
    """Reads a body of a declared length (RFC 9112 §6.2).

    Args:
        length: the Content-Length. A reader of length 0 is at its end at once (a bodiless message).

    The limit on the length is the caller's to check before reading (a server answers 413 before any of
    the body arrives; a client reading an event stream bounds what it buffers elsewhere). A server reuses
    one reader per connection by setting :attr:`remaining` for each request.
    """

    __slots__ = ("remaining",)

    def __init__(self, length: int = 0) -> None:
        #: Body bytes still expected.
        self.remaining = length

    def maybe_read(self, buf: ReceiveBuffer, eof: bool) -> bytes | EndOfBody | None:
        """The next piece of the body, its end, or None; see the module docstring."""
        remaining = self.remaining
        if remaining == 0:
            return _END
        if not buf:
            if eof:
                raise RemoteProtocolError(f"connection closed with {remaining} body bytes still expected")
            return None
        data = buf.consume(min(len(buf), remaining))
        self.remaining = remaining - len(data)
        return data


class CloseDelimitedReader:
    """Reads a body that ends when the peer closes the connection (RFC 9112 §6.3 rule 8).

    Only a response can be delimited that way (a request without Content-Length or chunked has no body,
    §6.3 rule 7), so only the client uses it. It keeps no state: one instance serves any number of bodies.
    """

    __slots__ = ()

    def maybe_read(self, buf: ReceiveBuffer, eof: bool) -> bytes | EndOfBody | None:
        """The next piece of the body, its end, or None; see the module docstring."""
        if buf:
            return buf.consume_all()
        return _END if eof else None


class ChunkedDecoder:
    """Decodes one chunked body (RFC 9112 §7.1).

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

    def maybe_read(self, buf: ReceiveBuffer, eof: bool) -> bytes | EndOfBody | None:
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
                # Each byte is judged as soon as it arrives: a bare LF (or anything but CR) after the data
                # is refused at once, not after waiting for a second byte that may never come.
                ahead = buf.data
                if len(ahead) < 2 and (not ahead or ahead[0] == 0x0D):
                    _check_eof(eof, "after chunk data")
                    return None
                if ahead[0] != 0x0D or ahead[1] != 0x0A:
                    # Only the bytes that were checked: more would make the text depend on the split.
                    checked = ahead[:1] if ahead[0] != 0x0D else ahead[:2]
                    raise RemoteProtocolError(f"chunk data not followed by CRLF: {printable(bytes(checked))}")
                buf.consume(2)
                self._phase = "size"
                continue
            if phase == "size":
                # RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF. The search is for the
                # LF, so that a bare one (a lenient line end, which is a request-smuggling class: a front end
                # that accepts it splits the body differently) is refused as soon as it arrives, instead of
                # waiting for a CRLF until the body timeout.
                lf = buf.find_from_mark(b"\n")
                max_line = MAX_CHUNK_SIZE_DIGITS + self.limits.max_chunk_ext
                if lf < 0:
                    # + 1: the line's CR may already be here without its LF (same answer however split).
                    if len(buf) > max_line + 1:
                        raise RemoteProtocolError(f"chunk-size line longer than {max_line} bytes")
                    _check_eof(eof, "in a chunk-size line")
                    return None
                end = lf - 1  # where the CR must be
                if end > max_line:
                    raise RemoteProtocolError(f"chunk-size line longer than {max_line} bytes")
                if end < 0 or buf.data[end] != 0x0D:
                    raise RemoteProtocolError(_BARE_LF_CHUNK)
                line = buf.consume(lf + 1)[:end]
                match = abnf.CHUNK_LINE_RE.fullmatch(line)
                if match is None:
                    raise RemoteProtocolError(f"invalid chunk-size line {printable(line)} (RFC 9112 §7.1)")
                size = int(match.group(1), 16)
                if size == 0:
                    self._remaining = 0  # from now on: how far the trailer section has been scanned
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
            pending = buf.data
            if pending[:2] == b"\r\n":
                buf.consume(2)
                return _END
            # Line by line, each LF looked at once (``_remaining`` is the scan offset in this phase): a bare
            # LF is refused when it arrives; the section ends at the first CRLF CRLF.
            limit = self.limits.max_header_bytes
            scan = self._remaining
            while (lf := pending.find(b"\n", scan)) >= 0:
                # + 3: the closing CRLF CRLF may start at limit, its LF at limit + 3 (split-independence:
                # a longer section was refused below before this LF arrived).
                if lf > limit + 3:
                    raise LimitExceeded(f"trailer section larger than {limit} bytes", status_hint=431)
                if lf == 0 or pending[lf - 1] != 0x0D:
                    raise RemoteProtocolError(f"bare LF in the trailer section: {_BARE_LF}")
                if lf >= 3 and pending[lf - 3 : lf - 1] == b"\r\n":
                    self._remaining = 0
                    return EndOfBody(buf.consume(lf + 1)[: lf - 3])
                scan = lf + 1
            self._remaining = len(pending)
            if len(pending) > limit + 3:
                raise LimitExceeded(f"trailer section larger than {limit} bytes", status_hint=431)
            _check_eof(eof, "in the trailer section")
            return None


#: Any of the three readers.
BodyReader = ContentLengthReader | ChunkedDecoder | CloseDelimitedReader


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1): size in hex, CRLF, data, CRLF. Empty data encodes nothing
    (a zero-size chunk would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)
