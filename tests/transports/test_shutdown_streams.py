"""Graceful shutdown and endless responses: an SSE stream never finishes by itself, so shutdown ends it at
once, properly terminated (the last chunk), instead of waiting out ``shutdown_timeout`` and cutting it."""

from __future__ import annotations

import asyncio
import time

import pytest
from transport_helpers import TIMEOUT, open_events

from rawrt.demo import create_app
from rawrt.limits import Limits
from rawrt.server import Server


@pytest.mark.asyncio
async def test_shutdown_ends_event_streams_cleanly_and_quickly() -> None:
    limits = Limits(shutdown_timeout=5.0)
    server = Server(create_app(limits), limits)
    await server.start("127.0.0.1", 0)
    stream = await open_events(server, "/events?channel=s")
    try:
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await asyncio.wait_for(server.shutdown(), TIMEOUT)
        elapsed = time.monotonic() - start
        rest = await stream.conn.read_until_eof()
        # The chunked body ends with its last chunk (RFC 9112 §7.1), then the server closes.
        assert rest.endswith(b"0\r\n\r\n"), rest
        assert elapsed < 1.0, elapsed
    finally:
        await stream.conn.close()
