"""``--trace`` for every technique (``Server(trace=True)``, rawrt/server/trace.py): HTTP heads field by field,
chunk framing and SSE fields on ``rawrt.trace``, as the protocol lab annotates them. Real server, real bytes.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from rawrt.demo import create_app
from rawrt.hub import Hub
from rawrt.hub.backends import MemoryBackend
from rawrt.limits import Limits
from rawrt.server import Server

TIMEOUT = 10.0


async def exchange(port: int, request: bytes, until: bytes | None = None) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    writer.write(request)
    data = await asyncio.wait_for(reader.readuntil(until) if until else reader.read(), TIMEOUT)
    writer.close()
    await writer.wait_closed()
    return data


@pytest.mark.asyncio
@pytest.mark.parametrize("trace", [True, False])
async def test_every_technique_is_traced(trace: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rawrt.trace")
    limits = Limits()
    server = Server(create_app(limits, MemoryBackend(Hub(limits))), limits, trace=trace)
    await server.start("127.0.0.1", 0)
    try:
        port = server.port
        # SSE: a stream held open while an event is published, read up to that event.
        stream = asyncio.ensure_future(
            exchange(port, b"GET /events?channel=t HTTP/1.1\r\nHost: x\r\n\r\n", b"data: hi\n")
        )
        await asyncio.sleep(0.2)
        post = (
            b"POST /publish?channel=t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        )
        assert (await exchange(port, post)).startswith(b"HTTP/1.1 200 OK")
        assert b"data: hi\n" in await stream
        poll = b"GET /poll?channel=t&since=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert b'"data":"hi"' in await exchange(port, poll)
    finally:
        await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)
    traced = [r.getMessage() for r in caplog.records if r.name == "rawrt.trace"]
    if not trace:
        assert traced == []
        return
    text = "\n".join(traced)
    # Heads, field by field, each with what it means.
    assert " <- GET /events?channel=t HTTP/1.1 (" in text
    assert "Host: the authority the request is for (RFC 9110 §7.2)" in text
    assert " -> HTTP/1.1 200 OK (" in text
    # Chunk framing and the SSE fields inside it.
    assert "chunk-size" in text and "(RFC 9112 §7.1)" in text
    assert "data field" in text and "id field" in text
    # The short poll's body, with its length from Content-Length.
    assert "as Content-Length said" in text
    assert " <- POST /publish?channel=t HTTP/1.1 (" in text
