"""WebSocket over asyncio (RFC 6455, RFC 7692): the object handlers and clients use, the client, and the
hub's chat transport.

Rooms:

* :mod:`.connection` -- :class:`WebSocket`, the adapter that drives a sans-IO
  :class:`~rawrt.sansio.ws.connection.WebSocketConnection` as the transport's protocol.
* :mod:`.client` -- :func:`connect`, the client's opening handshake.
* :mod:`.fanout` -- :func:`broadcast`, one message encoded once for many connections.
* :mod:`.chat` -- :func:`chat_session`, a hub channel served over a WebSocket (the demo's ``/ws/chat``).
* :mod:`.trace` -- the ``rawrt.trace`` frame log.

The server's side of the opening handshake (the 101 and the take-over) is the server's:
:mod:`rawrt.server.upgrade`.
"""

from __future__ import annotations

from .chat import chat_session
from .client import connect
from .connection import Message, WebSocket
from .fanout import broadcast

__all__ = ["WebSocket", "connect", "broadcast", "chat_session", "Message"]
