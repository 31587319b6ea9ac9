"""Graceful shutdown and endless responses: an SSE stream never finishes by itself, so shutdown ends it at
once, properly terminated (the last chunk), instead of waiting out ``shutdown_timeout`` and cutting it."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest
from transport_helpers import TIMEOUT, hard_reset, open_events, wait_until

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


@pytest.mark.asyncio
async def test_event_streams_ended_by_client_or_shutdown_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The access log records every exchange: an SSE stream gets its line when the client leaves (it used to
    get none) and when the shutdown ends it, with the bytes sent."""
    caplog.set_level(logging.INFO, logger="rawrt.access")
    server = Server(create_app(), Limits())
    await server.start("127.0.0.1", 0)
    try:
        leaving = await open_events(server, "/events?channel=a")
        staying = await open_events(server, "/events?channel=b")
        await asyncio.sleep(0.05)
        hard_reset(leaving.conn)
        await wait_until(lambda: len(server.connections) == 1)
        await asyncio.wait_for(server.shutdown(), TIMEOUT)
        await staying.conn.read_until_eof()
        await staying.conn.close()
    finally:
        await asyncio.wait_for(server.shutdown(), TIMEOUT)
    lines = [r.getMessage() for r in caplog.records if r.name == "rawrt.access"]
    assert len(lines) == 2, lines
    for line, channel in zip(lines, "ab", strict=True):
        assert re.search(rf'"GET /events\?channel={channel} HTTP/1.1" 200 [1-9]\d* ', line), line
