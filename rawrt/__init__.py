"""rawrt: the four real-time techniques of the web (HTTP/1.1, WebSocket, Server-Sent Events and long
polling) from raw asyncio streams, with nothing beyond the standard library.

The public names below are imported lazily (PEP 562), so that ``import rawrt.sansio`` pulls in no asyncio:
the sans-IO core must stay usable, and testable, without an event loop.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "App": "app",
    "Request": "app",
    "Response": "app",
    "StreamingResponse": "app",
    "Server": "server",
    "serve": "server",
    "Limits": "limits",
    "DEFAULT_LIMITS": "limits",
    "RawrtError": "errors",
    "ProtocolError": "errors",
    "RemoteProtocolError": "errors",
    "LocalProtocolError": "errors",
    "LimitExceeded": "errors",
    "HandshakeError": "errors",
    "ConnectionClosed": "errors",
}

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

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rawrt' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
