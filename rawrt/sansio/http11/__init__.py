"""HTTP/1.1, sans I/O (RFC 9110, RFC 9112): the server side's connection and the client side's reader.

Rooms:

* :mod:`.connection` -- :class:`HTTPConnection`, the server side: requests in, responses out.
* :mod:`.chunked` -- the chunked transfer coding (RFC 9112 §7.1), shared by both sides.
* :mod:`.client` -- the client side: :func:`~.client.encode_request` and :class:`~.client.ResponseReader`.

The names below are the package's public surface; import them from here.
"""

from __future__ import annotations

from .connection import (
    TRANSITIONS,
    ConnectionEnded,
    Data,
    EndOfMessage,
    Event,
    HTTPConnection,
    Request,
    Role,
    State,
    encode_chunk,
    reason_phrase,
)

__all__ = [
    "HTTPConnection",
    "Request",
    "Data",
    "EndOfMessage",
    "ConnectionEnded",
    "Event",
    "State",
    "Role",
    "TRANSITIONS",
    "reason_phrase",
    "encode_chunk",
]
