"""HTTP/1.1, sans I/O (RFC 9110, RFC 9112): the server side's connection and the client side's reader.

Rooms:

* :mod:`.connection` -- :class:`HTTPConnection`, the server side: requests in, responses out. It glues:
* :mod:`.events` -- :class:`Request`, :class:`Data`, :class:`EndOfMessage`, :class:`ConnectionEnded`;
* :mod:`.states` -- :class:`Role`, :class:`State` and the one :data:`TRANSITIONS` table;
* :mod:`.readers` -- request-head parsing (RFC 9112 §2-§6);
* :mod:`.writers` and :mod:`.status` -- field checks, heads, reason phrases and status lines;
* :mod:`.body` -- the body codecs (Content-Length, chunked, close-delimited; RFC 9112 §6, §7), shared by
  both sides.
* :mod:`.client` -- the client side: :func:`~.client.encode_request` and :class:`~.client.ResponseReader`.

The names below are the package's public surface; import them from here.
"""

from __future__ import annotations

from .body import encode_chunk
from .connection import HeadKeepingConnection, HTTPConnection
from .events import ConnectionEnded, Data, EndOfMessage, Event, Request
from .states import TRANSITIONS, Role, State
from .status import reason_phrase

__all__ = [
    "HTTPConnection",
    "HeadKeepingConnection",
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
