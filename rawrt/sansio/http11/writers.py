"""Writing response heads (RFC 9112 §4, §5): field checks and the heads that carry no framing decision.

Contract: :func:`check_fields` refuses what the app built and the wire cannot carry, raising
:class:`~rawrt.errors.LocalProtocolError` before anything is written (STYLE §3: validate what the app
builds, once; trust what the parser built). :func:`render_head` renders an interim (1xx), a ``101`` or an
error head exactly as given, and :func:`render_last_chunk` the end of a chunked body.

The final response head is rendered by :class:`~rawrt.sansio.http11.HTTPConnection` itself, in the same
pass that decides its framing and persistence (RFC 9112 §6.3, §9.3) from the request and the fields the
app set: those decisions are the connection's state.
"""

from __future__ import annotations

from ...errors import LocalProtocolError, printable
from .. import abnf
from ..headers import HeaderSequence
from .status import STATUS_LINES

__all__ = ["check_fields", "render_head"]


def check_fields(headers: HeaderSequence) -> None:
    """Refuse app-supplied fields that would not survive the wire: a name that is not a token, or a value
    with CR, LF, NUL or another control byte (that is response splitting, RFC 9110 §5.5).

    Raises:
        LocalProtocolError: naming the first bad field.
    """
    # The fields as they would be written must form a valid field section, one line per field (a CR or LF
    # inside a value would add a line, so the count catches what the per-line pattern alone cannot).
    # FIELD_SECTION_RE admits no CR inside a value, so the LF count is the only extra check needed.
    section = b"".join([b"%b:%b\r\n" % pair for pair in headers])
    if section.count(b"\n") == len(headers) and abnf.FIELD_SECTION_RE.fullmatch(section) is not None:
        return
    # Only to say which field is wrong (one of them is).
    name, value = next(
        (n, v)
        for n, v in headers
        if abnf.TOKEN_RE.fullmatch(n) is None or abnf.FIELD_VALUE_RE.fullmatch(v) is None
    )
    if abnf.TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid field name {printable(name)}")
    raise LocalProtocolError(f"invalid value for field {printable(name)}: {printable(value)}")


def render_head(status: int, headers: HeaderSequence, date: bytes) -> bytes:
    """A head with exactly the given fields (and ``date`` after them, unless empty): status line, field
    lines, empty line (RFC 9112 §2.1). The fields are not checked here."""
    status_line = STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status
    fields = b"".join([b"%b: %b\r\n" % pair for pair in headers])
    if date:
        fields += b"date: %b\r\n" % date
    return status_line + fields + b"\r\n"
