"""rawrt: the four real-time techniques of the web (HTTP/1.1, WebSocket, Server-Sent Events and long
polling) from raw asyncio streams, with nothing beyond the standard library."""

from __future__ import annotations

from .app import App, Request, Response, StreamingResponse
from .errors import (
    ConnectionClosed,
    HandshakeError,
    LimitExceeded,
    LocalProtocolError,
    ProtocolError,
    RawrtError,
    RemoteProtocolError,
)
from .limits import DEFAULT_LIMITS, Limits
from .server import Server, serve

__version__ = "0.1.0"

__all__ = [
    "App",
    "Request",
    "Response",
    "StreamingResponse",
    "Server",
    "serve",
    "Limits",
    "DEFAULT_LIMITS",
    "RawrtError",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "LimitExceeded",
    "HandshakeError",
    "ConnectionClosed",
]
