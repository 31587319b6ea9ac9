"""The lab's wire tap (rawrt.lab.tap), driven from the wire: a real server, real sockets, the demo app.

What it must hold: only requests tagged with the id of a page whose wire view is open are tapped (an
untagged request, or any request on a server without a tap, costs no record and no head copy); a page sees
its own records only; a page's ring buffer stays within ``lab_max_entries`` and ``lab_max_bytes``; and it is
freed when the page's wire stream ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from rawrt.app import App, Request, Response
from rawrt.demo import create_app
from rawrt.lab import Page
from rawrt.limits import Limits
from rawrt.sansio import http11
from rawrt.server import Server
from rawrt.websocket import WebSocket, connect

TIMEOUT = 5.0
PAGE_A = "pageaaaa0001"
PAGE_B = "pagebbbb0002"


async def start(app: App, limits: Limits | None = None) -> Server:
    server = Server(app, limits) if limits is not None else Server(app)
    await server.start("127.0.0.1", 0)
    return server


async def request(server: Server, target: str, body: bytes | None = None) -> bytes:
    """One request on a fresh connection (``Connection: close``); the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    method = "GET" if body is None else "POST"
    head = f"{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + (body or b""))
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return answer


async def records(wire: WebSocket, until: int, *, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Read the wire stream's records until ``until`` have come (then anything arriving within 0.2 s)."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        wait = 0.2 if len(got) >= until else deadline - loop.time()
        try:
            message = json.loads(await asyncio.wait_for(wire.recv(), max(wait, 0.01)))
        except (TimeoutError, asyncio.TimeoutError):
            if len(got) >= until:
                return got
            raise AssertionError(f"{len(got)} records, expected {until}: {got}") from None
        assert message["type"] == "records"
        got += message["records"]


async def open_wire(server: Server, page: str) -> WebSocket:
    wire = await connect(f"ws://127.0.0.1:{server.port}/lab/wire?lab={page}")
    hello = json.loads(await asyncio.wait_for(wire.recv(), TIMEOUT))
    assert hello["type"] == "hello" and hello["lab"] == page
    return wire


@pytest_asyncio.fixture
async def demo() -> AsyncIterator[Server]:
    server = await start(create_app())
    try:
        yield server
    finally:
        await server.shutdown(timeout=2.0)


@pytest.mark.asyncio
async def test_a_tagged_exchange_is_recorded_exactly(demo: Server) -> None:
    wire = await open_wire(demo, PAGE_A)
    answer = await request(demo, f"/poll?channel=t&lab={PAGE_A}")
    got = await records(wire, 4)  # the request head, the response head, the body, the close
    head = f"GET /poll?channel=t&lab={PAGE_A} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    assert [(r["lane"], r["dir"], r["kind"]) for r in got] == [
        ("poll", "in", "request"),
        ("poll", "out", "response"),
        ("poll", "out", "body"),
        ("poll", "in", "closed"),
    ]
    assert got[0]["size"] == len(head)
    assert got[1]["size"] + got[2]["size"] == len(answer)  # every byte written, heads and body
    assert got[-1]["stats"] == {"requests": 1, "in": len(head), "out": len(answer), "open": 0}
    assert got[1]["stats"]["open"] == 1
    await wire.close()


@pytest.mark.asyncio
async def test_websocket_frames_of_a_tagged_connection(demo: Server) -> None:
    wire = await open_wire(demo, PAGE_A)
    chat = await connect(f"ws://127.0.0.1:{demo.port}/ws/chat?channel=t&lab={PAGE_A}")
    await chat.send("hello")
    assert json.loads(await asyncio.wait_for(chat.recv(), TIMEOUT))["data"] == "hello"
    got = await records(wire, 4)  # the handshake's request and 101, the client's frame, the server's
    assert [(r["dir"], r["kind"]) for r in got[:4]] == [
        ("in", "request"),
        ("out", "response"),
        ("in", "frame"),
        ("out", "frame"),
    ]
    frame = got[2]
    notes = [row[1] for row in frame["rows"]]
    assert notes[0].startswith("FIN=1 RSV1=1 RSV2=0 RSV3=0 opcode=1 (text)")  # rawrt's client compresses too
    assert notes[1].startswith("MASK=1")
    assert notes[2].startswith("masking key")
    assert frame["rows"][-1][:2] == ["hello", "inflated: 5 bytes"]
    assert any("✓" in row[1] for row in got[1]["rows"])  # Sec-WebSocket-Accept worked out
    await chat.close()
    await wire.close()


@pytest.mark.asyncio
async def test_untagged_requests_are_not_tapped(demo: Server) -> None:
    wire = await open_wire(demo, PAGE_A)
    await request(demo, "/poll?channel=t")
    await request(demo, "/publish?channel=t", b"x")
    await request(demo, "/hello?lab=" + PAGE_A)  # tagged, but not a lane
    await request(demo, "/poll?channel=t&lab=unknownpage1")  # a page that never opened its wire view
    await request(demo, f"/poll?channel=t&lab={PAGE_A}")
    got = await records(wire, 4)
    assert {r["lane"] for r in got} == {"poll"}
    assert [r["kind"] for r in got] == ["request", "response", "body", "closed"]
    assert PAGE_A in got[0]["title"]
    await wire.close()


@pytest.mark.asyncio
async def test_a_server_without_a_tap_keeps_no_heads() -> None:
    """An app without ``tap`` gets the plain parser (no head kept) and no tap on any connection."""
    app = App()
    seen: list[tuple[type, object]] = []

    @app.get("/x")
    async def x(request: Request) -> Response:
        connection: Any = request._source
        seen.append((type(connection.conn), connection.tap))
        return Response.text("ok")

    server = await start(app)
    try:
        await request(server, "/x?lab=" + PAGE_A)
    finally:
        await server.shutdown(timeout=2.0)
    assert seen == [(http11.HTTPConnection, None)]


@pytest.mark.asyncio
async def test_pages_are_isolated(demo: Server) -> None:
    """Page A never sees page B's bytes, though both listen on the same channel and get the same events."""
    wire_a = await open_wire(demo, PAGE_A)
    wire_b = await open_wire(demo, PAGE_B)
    chat_a = await connect(f"ws://127.0.0.1:{demo.port}/ws/chat?channel=shared&lab={PAGE_A}")
    chat_b = await connect(f"ws://127.0.0.1:{demo.port}/ws/chat?channel=shared&lab={PAGE_B}")
    await chat_b.send("from b")
    for chat in (chat_a, chat_b):
        assert json.loads(await asyncio.wait_for(chat.recv(), TIMEOUT))["data"] == "from b"
    await request(demo, f"/poll?channel=shared&since=0&lab={PAGE_B}")
    got_a = await records(wire_a, 3)  # A: its handshake, its 101, the event's frame
    got_b = await records(wire_b, 8)
    text_a = json.dumps(got_a)
    assert PAGE_B not in text_a and "from b" in text_a  # the event reached A, B's own bytes did not
    assert [(r["lane"], r["dir"], r["kind"]) for r in got_a] == [
        ("ws", "in", "request"),
        ("ws", "out", "response"),
        ("ws", "out", "frame"),
    ]
    assert PAGE_A not in json.dumps(got_b)
    assert {r["lane"] for r in got_b} == {"ws", "poll"}
    for c in (chat_a, chat_b, wire_a, wire_b):
        await c.close()


@pytest.mark.asyncio
async def test_ring_buffer_is_bounded_and_freed_when_the_page_goes() -> None:
    limits = Limits(lab_max_entries=5, lab_max_bytes=4096, lab_max_pages=1)
    app = create_app(limits)
    server = await start(app, limits)
    try:
        # A page whose stream does not read (registered directly): its buffer fills from the wire.
        page = app.lab.open(PAGE_A)
        assert isinstance(page, Page)
        for _ in range(10):
            await request(server, f"/poll?channel=t&lab={PAGE_A}")
        assert len(page.entries) == 5
        assert page.bytes == sum(len(e.encode()) for e in page.entries) <= 4096
        assert page.dropped == 10 * 4 - 5
        assert page.lane("poll").requests == 10
        # lab_max_pages: a second page is refused, over WebSocket (1013) and over SSE (503).
        full = await connect(f"ws://127.0.0.1:{server.port}/lab/wire?lab={PAGE_B}")
        async for _ in full:
            pass
        assert full.close_code == 1013
        assert b" 503 " in (await request(server, f"/lab/wire?lab={PAGE_B}"))[:20]
        assert b" 400 " in (await request(server, "/lab/wire?lab=short"))[:20]
        app.lab.close(page)
        assert page.closed and not page.entries and page.bytes == 0 and app.lab.pages == {}
        await request(server, f"/poll?channel=t&lab={PAGE_A}")
        assert not page.entries  # a closed page records nothing more

        # From the wire: the stream ends, the page is dropped.
        wire = await open_wire(server, PAGE_B)
        stream_page = app.lab.pages[PAGE_B]
        await request(server, f"/poll?channel=t&lab={PAGE_B}")
        await records(wire, 4)
        await wire.close()
        for _ in range(100):
            if not app.lab.pages:
                break
            await asyncio.sleep(0.01)
        assert app.lab.pages == {} and stream_page.closed and not stream_page.entries
    finally:
        await server.shutdown(timeout=2.0)


@pytest.mark.asyncio
async def test_wire_view_over_server_sent_events(demo: Server) -> None:
    """``GET /lab/wire`` without Upgrade streams the same records as SSE; the page goes when it closes."""
    app_lab = demo.app.lab  # type: ignore[attr-defined]
    reader, writer = await asyncio.open_connection("127.0.0.1", demo.port)
    writer.write(f"GET /lab/wire?lab={PAGE_A} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert b"text/event-stream" in head
    text = b""
    while b"event: hello" not in text:
        text += await asyncio.wait_for(reader.read(65536), TIMEOUT)
    await request(demo, f"/poll?channel=t&lab={PAGE_A}")
    while text.count(b'"kind":') < 4:
        text += await asyncio.wait_for(reader.read(65536), TIMEOUT)
    assert b'"lane":"poll"' in text and b"data: {" in text
    writer.close()
    for _ in range(100):
        if not app_lab.pages:
            break
        await asyncio.sleep(0.01)
    assert app_lab.pages == {}
