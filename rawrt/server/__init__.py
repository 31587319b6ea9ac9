"""The asyncio server: accept TCP connections and drive the sans-IO protocols on them.

Rooms:

* :mod:`.server` -- :class:`Server` (listen, the connection cap, the reaper, graceful shutdown) and
  :func:`serve` (run one until SIGINT/SIGTERM).
* :mod:`.connection` -- :class:`ServerConnection`, the HTTP/1.1 connection driver: read, parse, route,
  answer, with every failure turned into a status in one place. Its parts, as mixins:

  * :mod:`.channel` -- the state and the reads and writes the parts share;
  * :mod:`.deadlines` -- timeouts as deadlines the server's reaper enforces;
  * :mod:`.watcher` -- noticing a client that left while its request is handled;
  * :mod:`.body` -- the request body, read on demand, and the end of an exchange;
  * :mod:`.streaming` -- streaming responses and the synchronous *push*.

* :mod:`.upgrade` -- the WebSocket opening handshake on a connection, and the take-over after the 101.
* :mod:`.proxy` -- the client's address and scheme from a trusted proxy's ``X-Forwarded-*`` / ``Forwarded``.
* :mod:`.dates` -- the ``Date`` header.
"""

from __future__ import annotations

from .connection import ServerConnection
from .dates import http_date
from .server import Server, serve

__all__ = ["Server", "ServerConnection", "http_date", "serve"]
