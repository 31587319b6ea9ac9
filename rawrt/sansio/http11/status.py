"""Status codes' reason phrases (RFC 9110 §15) and the status lines built from them (RFC 9112 §4)."""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["reason_phrase", "STATUS_LINES"]

# RFC 9110 renamed a few phrases that older tables (and Python before 3.13) still spell the RFC 7231 way.
_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
_REASONS.update({413: b"Content Too Large", 414: b"URI Too Long", 416: b"Range Not Satisfiable",
                 422: b"Unprocessable Content"})  # fmt: skip

#: ``b"HTTP/1.1 200 OK\r\n"`` for every registered code, built once so that writing a head only looks its
#: status line up. An unregistered code is not here: the writer renders it with an empty reason phrase.
STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %b\r\n" % (code, phrase) for code, phrase in _REASONS.items()
}


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for ``status`` (RFC 9110 §15), or ``b""`` for an unregistered code."""
    return _REASONS.get(status, b"")
