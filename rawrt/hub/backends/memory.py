"""The memory backend: the hub core in this process, nothing to wait for (rawrt.hub.backends)."""

from __future__ import annotations

import time

from rawrt.limits import DEFAULT_LIMITS, Limits

from ..core import Event, Hub
from ..ids import start_id

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """One process's hub, its ids started from the start time (rawrt.hub.ids): never an earlier run's ids.

    Args:
        hub: the hub to wrap; by default a new one whose ids start at :func:`~rawrt.hub.ids.start_id` of now.
        limits: the new hub's limits (when ``hub`` is not given).
    """

    url = "memory"

    def __init__(self, hub: Hub | None = None, *, limits: Limits = DEFAULT_LIMITS) -> None:
        if hub is None:
            hub = Hub(limits, start=start_id(time.time_ns() // 1_000_000))
        self.hub = hub

    async def prepare(self, channel: str, cursor: int | None) -> None:
        """Nothing to do: the hub is the store."""

    async def publish(self, channel: str, data: str) -> Event:
        """:meth:`Hub.publish` (raises :class:`~rawrt.errors.InvalidEventError` as it does)."""
        return self.hub.publish(channel, data)

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect."""
