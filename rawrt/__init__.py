"""rawrt: the four real-time techniques of the web (HTTP/1.1, WebSocket, Server-Sent Events, long polling)
from raw asyncio streams, with nothing beyond the standard library."""

from __future__ import annotations

__version__ = "0.1.0"
