"""The pub/sub hub that feeds every technique: ids, history, bounded queues, overflow and the reset signal.

It knows nothing of HTTP, WebSocket or any wire format: :mod:`.core` holds the whole contract (see its
docstring), and :mod:`.memo` the :class:`EventMemo` with which a transport computes its wire form of an event
once for all its clients. The techniques that carry its events live with their protocols
(:func:`rawrt.sse.hub_stream`, :mod:`rawrt.polling`, :func:`rawrt.websocket.chat.chat_session`).
"""

from __future__ import annotations

from .core import Event, Hub, Replay, Subscription, parse_cursor
from .memo import EventMemo

__all__ = ["Event", "Replay", "Subscription", "Hub", "parse_cursor", "EventMemo"]
