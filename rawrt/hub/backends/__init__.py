"""Where a hub's events are kept and numbered: in this process (``memory``) or in Redis Streams (``redis``).

The hub core (:class:`rawrt.hub.Hub`) is synchronous and keeps the contract (ids, history, bounded queues,
overflow, the reset signal); every transport reads it. A *backend* wraps it with the three steps that may
have to wait on another machine, so a transport's data path is one straight line whatever the backend:

1. ``await backend.prepare(channel, cursor)`` before a transport reads ``backend.hub`` (subscribes, polls):
   the Redis backend makes its hub a faithful copy of the channel's stream (docs/topics/hub-redis.md);
   the memory backend has nothing to do.
2. ``await backend.publish(channel, data)`` returns the event once it is stored (for Redis: once ``XADD``
   answered), or raises :class:`~rawrt.errors.HubUnavailableError`.
3. ``backend.start()`` / ``backend.close()``: add them to ``App.on_startup`` / ``App.on_shutdown``.

:func:`open_backend` picks one from a URL: ``memory``, or ``redis://``, ``rediss://``, ``unix://`` (the
``redis`` extra: ``pip install '.[redis]'`` in rawrt's checkout). Without a URL it reads the ``RAWRT_HUB``
environment variable (which ``rawrt serve --hub URL`` sets, so that every worker and the user's app see
it), else ``memory``.
"""

from __future__ import annotations

import os
from typing import Protocol

from rawrt.limits import DEFAULT_LIMITS, Limits

from ..core import Event, Hub
from .memory import MemoryBackend

__all__ = ["Backend", "MemoryBackend", "open_backend", "hub_url_problem", "without_password", "ENV_VAR"]

#: The environment variable naming the hub when no URL is given.
ENV_VAR = "RAWRT_HUB"

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Backend(Protocol):
    """What every hub backend offers (module docstring)."""

    @property
    def hub(self) -> Hub:
        """The hub core the transports read."""
        ...

    @property
    def url(self) -> str:
        """Which hub this is, for logs: ``memory``, or the Redis URL without its password."""
        ...

    async def prepare(self, channel: str, cursor: int | None) -> None:
        """Make :attr:`hub` ready to be read for ``channel`` from ``cursor`` (``None``: live only)."""
        ...

    async def publish(self, channel: str, data: str) -> Event:
        """Store and publish an event; its id once stored."""
        ...

    async def start(self) -> None:
        """Connect (an App startup hook)."""
        ...

    async def close(self) -> None:
        """Disconnect (an App shutdown hook)."""
        ...


def hub_url_problem(url: str) -> str | None:
    """Why ``url`` names no hub backend (a message for a one-line CLI error), or ``None`` if it does."""
    if url == "memory" or url.startswith(_REDIS_SCHEMES):
        return None
    return f"--hub must be 'memory' or a redis://, rediss:// or unix:// URL, not {url[:80]!r}"


def without_password(url: str) -> str:
    """A hub URL as logs, banners and errors show it: ``redis://:secret@host/0`` -> ``redis://host/0``."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url


def open_backend(url: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Backend:
    """The backend ``url`` names (module docstring); not started yet.

    Raises:
        ValueError: the URL names no backend.
        ImportError: a Redis URL without the ``redis`` extra installed (the message says so).
    """
    if url is None:
        url = os.environ.get(ENV_VAR) or "memory"
    problem = hub_url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    if url == "memory":
        return MemoryBackend(limits=limits)
    try:
        from .redis import RedisBackend
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("redis"):
            raise
        raise ImportError(
            f"--hub {without_password(url)!r} needs redis-py: pip install '.[redis]' in rawrt's checkout"
        ) from None
    return RedisBackend(url, limits=limits)
