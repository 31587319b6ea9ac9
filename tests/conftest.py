"""Shared fixtures: a real rawrt server on 127.0.0.1:0 for integration tests, and a real Redis
(``redis_server``, ``persistent_redis``: tests/redis_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from redis_server import persistent_redis, redis_server  # noqa: F401 (fixtures, shared from here)

from rawrt.app import App
from rawrt.demo import create_app
from rawrt.limits import DEFAULT_LIMITS, Limits
from rawrt.server import Server


async def start_server(app: App, limits: Limits = DEFAULT_LIMITS) -> Server:
    """Start ``app`` on a free loopback port."""
    server = Server(app, limits)
    await server.start("127.0.0.1", 0)
    return server


@pytest_asyncio.fixture
async def demo_server() -> AsyncIterator[Server]:
    """The demo app on 127.0.0.1:<free port>, shut down after the test."""
    server = await start_server(create_app())
    try:
        yield server
    finally:
        await server.shutdown(timeout=2.0)
