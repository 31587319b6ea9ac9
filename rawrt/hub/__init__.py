"""The pub/sub hub that feeds every technique: ids, history, bounded queues, overflow and the reset signal.

It knows nothing of HTTP, WebSocket or any wire format: :mod:`.core` holds the whole contract (see its
docstring); the techniques that carry its events live with their protocols (:func:`rawrt.sse.hub_stream`,
:mod:`rawrt.polling`, :func:`rawrt.websocket.chat.chat_session`).
"""

from __future__ import annotations

from .core import Event, Hub, Replay, Subscription, parse_cursor

__all__ = ["Event", "Replay", "Subscription", "Hub", "parse_cursor"]
