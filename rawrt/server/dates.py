"""The ``Date`` header's value (RFC 9110 §6.6.1): the server's only use of the wall clock for HTTP."""

from __future__ import annotations

import time
from email.utils import formatdate

__all__ = ["http_date"]

_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The current time as an IMF-fixdate (RFC 9110 §5.6.7), computed at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]
