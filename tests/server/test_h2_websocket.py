"""WebSocket over HTTP/2 (RFC 8441; rawrt/server/h2_websocket.py), driven by the ``h2`` package as the client
on a real socket, with rawrt's own sans-IO WebSocket (client role) framing the messages inside the stream.

* the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3);
* an extended CONNECT (``:method CONNECT``, ``:protocol websocket``, §4) on ``/ws`` is answered
  ``:status 200`` without Sec-WebSocket-Accept (§5), and echoes text and binary, with permessage-deflate
  (RFC 7692) negotiated in ``sec-websocket-extensions`` as over HTTP/1.1;
* the close handshake ends the stream with END_STREAM both ways (§6); a client's RST_STREAM ends the
  WebSocket (1006 on the server's side);
* ``/ws/chat`` publishes to the hub: an SSE client on the same connection receives the message;
* the WebSocket limits hold (1009 past ``ws_max_message_size``), flow control is the WebSocket's
  backpressure both ways, and refusals are plain HTTP/2 answers (404, 405, 400).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h2.exceptions
import pytest
from test_h2_server import TIMEOUT, Client, client, serving

from rawrt import App
from rawrt.limits import Limits
from rawrt.sansio.h2.frames import DataFrame, FrameReader, GoAwayFrame, RstStreamFrame
from rawrt.sansio.ws.connection import (
    BinaryMessage,
    CloseReceived,
    Event,
    Role,
    TextMessage,
    WebSocketConnection,
)
from rawrt.sansio.ws.deflate import (
    CLIENT_DEFAULTS,
    EXTENSION_NAME,
    accept_client_response,
    client_offer,
)
from rawrt.sansio.ws.frames import CloseCode
from rawrt.sansio.ws.handshake import parse_extensions, serialize_extensions
from rawrt.websocket import WebSocket

MASK = b"\x37\xfa\x21\x3d"  # RFC 6455 §5.7's example key: the bytes stay the same run to run


class WS:
    """A WebSocket on one stream of ``client``: rawrt's sans-IO client over h2's DATA frames."""

    def __init__(self, c: Client, stream_id: int, headers: dict[bytes, bytes], offered: bool) -> None:
        self.c, self.stream_id, self.headers = c, stream_id, headers
        extension = None
        value = headers.get(b"sec-websocket-extensions")
        if value is not None:
            assert offered
            [(name, params)] = parse_extensions([value])
            assert name == EXTENSION_NAME
            extension = accept_client_response(params, CLIENT_DEFAULTS)
        self.protocol = WebSocketConnection(Role.CLIENT, mask_key=lambda: MASK, extension=extension)
        self.offset = 0
        self.eof = False
        self.events: list[Event] = []

    @property
    def raw(self) -> bytes:
        """Every byte of the stream's DATA so far: the server's WebSocket frames as sent."""
        return bytes(self.c.data.get(self.stream_id, b""))

    def flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            try:
                if chunk:
                    for start in range(0, len(chunk), 16384):  # the server's SETTINGS_MAX_FRAME_SIZE
                        self.c.conn.send_data(self.stream_id, chunk[start : start + 16384])
                else:
                    self.c.conn.end_stream(self.stream_id)  # RFC 8441 §6: the orderly end
            except h2.exceptions.StreamClosedError:
                pass
        self.c.flush()

    def pump(self) -> bool:
        data = self.raw[self.offset :]
        self.offset += len(data)
        if data:
            self.protocol.receive_data(data)
        if not self.eof and (self.stream_id in self.c.ended or self.stream_id in self.c.reset):
            self.eof = True
            self.protocol.receive_eof()
        self.events += self.protocol.events_received()
        self.flush()  # the automatic answers: pong, the close echo
        return bool(self.events)

    async def event(self) -> Event:
        await self.c.until(self.pump)
        return self.events.pop(0)

    async def message(self) -> str | bytes:
        event = await self.event()
        assert isinstance(event, (TextMessage, BinaryMessage)), event
        return event.data

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.protocol.send_text(message)
        else:
            self.protocol.send_binary(message)
        self.flush()


def connect_headers(path: str, *, deflate: bool = True, version: bytes = b"13") -> list[tuple[bytes, bytes]]:
    headers = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"http"),
        (b":authority", b"test"),
        (b":path", path.encode()),
        (b"sec-websocket-version", version),
    ]
    if deflate:
        offer = serialize_extensions([(EXTENSION_NAME, client_offer(CLIENT_DEFAULTS))])
        headers.append((b"sec-websocket-extensions", offer))
    return headers


async def open_ws(c: Client, path: str, *, deflate: bool = True, data: bytes = b"") -> WS:
    """Send the extended CONNECT (and ``data`` at once, before the answer) and wait for the 200."""
    assert c.conn.remote_settings.enable_connect_protocol == 1
    stream_id = c.conn.get_next_available_stream_id()
    c.conn.send_headers(stream_id, connect_headers(path, deflate=deflate))
    if data:
        c.conn.send_data(stream_id, data)
    c.flush()
    await c.until(lambda: stream_id in c.headers or stream_id in c.reset)
    headers = dict(c.headers[stream_id])
    assert headers[b":status"] == b"200", headers
    return WS(c, stream_id, headers, deflate)


async def refused(c: Client, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, dict[bytes, bytes]]:
    stream_id = c.conn.get_next_available_stream_id()
    c.conn.send_headers(stream_id, headers)
    c.flush()
    status, body = await c.response(stream_id)
    return status, body, dict(c.headers[stream_id])


def small_app() -> App:
    """An echo with small WebSocket limits, and one that waits before it reads (a full queue)."""
    app = App()
    small = Limits(ws_max_message_size=1024, ws_max_frame_size=1024, ws_max_queue=4)

    @app.websocket("/small", limits=small)
    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @app.websocket("/slow", limits=small)
    async def slow(ws: WebSocket) -> None:
        await asyncio.sleep(0.3)  # the client's messages pile up past ws_max_queue meanwhile
        async for message in ws:
            await ws.send(message)

    @app.get("/plain")
    async def plain(request: Any) -> Any:
        raise AssertionError("not for a CONNECT")

    return app


# --- the handshake (RFC 8441 §3-§5) ------------------------------------------------------------------------


class TestHandshake:
    """RFC 8441 §3-§5: the setting, the extended CONNECT, the 200."""

    @pytest.mark.asyncio
    async def test_setting_advertised_and_200_without_accept(self) -> None:
        async with serving() as server, client(server) as c:
            ws = await open_ws(c, "/ws")
            # §5: the 2xx replaces the 101; Sec-WebSocket-Key/-Accept are not used over HTTP/2.
            assert b"sec-websocket-accept" not in ws.headers
            assert ws.headers[b"sec-websocket-extensions"].startswith(b"permessage-deflate")
            assert ws.stream_id not in c.ended  # the stream is the tunnel now: no END_STREAM
            assert len(server.websockets) == 1

    @pytest.mark.asyncio
    async def test_refusals_are_http2_answers(self) -> None:
        async with serving() as server, client(server) as c:
            assert (await refused(c, connect_headers("/nowhere")))[0] == 404
            # The chat's own check (no channel) answers before the tunnel opens, as over HTTP/1.1.
            status, body, _ = await refused(c, connect_headers("/ws/chat?since=soon"))
            assert status == 400 and b"since" in body, body
            # RFC 6455 §4.2.2's version check; HTTP/2 has no 426 (it needs Upgrade, RFC 9113 §8.2.2).
            status, body, headers = await refused(c, connect_headers("/ws", version=b"8"))
            assert status == 400 and headers[b"sec-websocket-version"] == b"13"
            assert b"upgrade" not in headers
            # A GET to the WebSocket-only route: 426 as over HTTP/1.1, minus the Upgrade field.
            stream_id = c.request("GET", "/ws")
            assert (await c.response(stream_id))[0] == 426
            assert not server.websockets

    @pytest.mark.asyncio
    async def test_connect_to_a_plain_route_is_405(self) -> None:
        async with serving(small_app()) as server, client(server) as c:
            status, _, headers = await refused(c, connect_headers("/plain"))
            assert status == 405 and headers[b"allow"] == b"GET, HEAD"
            other = connect_headers("/small")
            other[1] = (b":protocol", b"webtransport")
            assert (await refused(c, other))[0] == 405  # only websocket is a WebSocket handshake

    @pytest.mark.asyncio
    async def test_frames_sent_with_the_connect(self) -> None:
        """DATA right behind the CONNECT, before the 200: the WebSocket's first bytes."""
        async with serving() as server, client(server) as c:
            early = WebSocketConnection(Role.CLIENT, mask_key=lambda: MASK)
            early.send_text("early")
            ws = await open_ws(c, "/ws", deflate=False, data=b"".join(early.data_to_send()))
            assert await ws.message() == "early"


# --- messages and close -------------------------------------------------------------------------------------


class TestMessages:
    """RFC 6455 §5.6 messages inside DATA frames, compressed (RFC 7692) or not."""

    @pytest.mark.asyncio
    async def test_echo_text_and_binary_with_deflate(self) -> None:
        async with serving() as server, client(server) as c:
            ws = await open_ws(c, "/ws")
            ws.send("Hello, HTTP/2!")
            assert await ws.message() == "Hello, HTTP/2!"
            # RFC 7692 §6: RSV1 set on the server's frame: compressed. 0xC1 = FIN, RSV1, opcode 1 (text).
            assert ws.raw[0] == 0xC1
            payload = bytes(range(256)) * 40
            ws.send(payload)
            assert await ws.message() == payload
            ws.send("x" * 100_000)  # compresses to almost nothing; decompressed within the limits
            assert await ws.message() == "x" * 100_000

    @pytest.mark.asyncio
    async def test_echo_without_deflate(self) -> None:
        async with serving() as server, client(server) as c:
            ws = await open_ws(c, "/ws", deflate=False)
            assert b"sec-websocket-extensions" not in ws.headers
            ws.send(b"\x00\x01\x02")
            assert await ws.message() == b"\x00\x01\x02"
            # 0x82 = FIN, binary; 0x03 = unmasked, 3 bytes (a server never masks, §5.1).
            assert ws.raw == b"\x82\x03\x00\x01\x02"

    @pytest.mark.asyncio
    async def test_many_streams_at_once(self) -> None:
        async with serving() as server, client(server) as c:
            sockets = [await open_ws(c, "/ws") for _ in range(5)]
            for i, ws in enumerate(sockets):
                ws.send(f"stream {i}")
            assert [await ws.message() for ws in sockets] == [f"stream {i}" for i in range(5)]
            hello = c.request("GET", "/hello")  # plain requests on the same connection go on
            assert await c.response(hello) == (200, b"Hello, world!")

    @pytest.mark.asyncio
    async def test_close_handshake_ends_the_stream_both_ways(self) -> None:
        async with serving() as server, client(server) as c:
            ws = await open_ws(c, "/ws")
            ws.protocol.send_close(CloseCode.NORMAL_CLOSURE, "bye")
            ws.flush()
            event = await ws.event()
            assert isinstance(event, CloseReceived) and event.code == CloseCode.NORMAL_CLOSURE
            # §6: the server ends its side with END_STREAM (our END_STREAM went with the close, above).
            await c.until(lambda: ws.stream_id in c.ended)
            assert ws.stream_id not in c.reset
            await c.until(lambda: not server.websockets)

    @pytest.mark.asyncio
    async def test_server_closes_first(self) -> None:
        """The chat closes 1003 on a binary message: its close frame, then END_STREAM."""
        async with serving() as server, client(server) as c:
            ws = await open_ws(c, "/ws/chat?channel=h2close")
            ws.send(b"binary")
            event = await ws.event()
            assert isinstance(event, CloseReceived) and event.code == CloseCode.UNSUPPORTED_DATA
            await c.until(lambda: ws.stream_id in c.ended and not server.websockets)
            assert ws.stream_id not in c.reset

    @pytest.mark.asyncio
    async def test_client_reset_ends_the_websocket(self) -> None:
        async with serving() as server, client(server) as c:
            ws = await open_ws(c, "/ws")
            [server_ws] = server.websockets
            c.conn.reset_stream(ws.stream_id, 8)  # RST_STREAM CANCEL: RFC 8441 §6's abnormal closure
            c.flush()
            await asyncio.wait_for(server_ws.wait_closed(), TIMEOUT)
            assert server_ws.close_code == CloseCode.ABNORMAL_CLOSURE
            await c.until(lambda: not server.websockets)
            hello = c.request("GET", "/hello")  # the connection goes on
            assert await c.response(hello) == (200, b"Hello, world!")

    @pytest.mark.asyncio
    async def test_shutdown_closes_1001(self) -> None:
        async with serving() as server, client(server) as c:
            ws = await open_ws(c, "/ws", deflate=False)
            closing = asyncio.ensure_future(server.shutdown(timeout=5.0))

            def frames() -> list[object]:
                # The h2 package reads nothing after a GOAWAY: rawrt's frame reader reads the rest.
                reader = FrameReader()
                reader.feed(bytes(c.raw))
                return list(reader)

            # GOAWAY, then the close frame: 0x88 = FIN, close; 0x16 = 22 bytes; 0x03e9 = 1001 going away.
            close = DataFrame(ws.stream_id, b"\x88\x16\x03\xe9server shutting down", False)
            await c.until(lambda: close in frames())
            assert any(isinstance(f, GoAwayFrame) for f in frames())
            # The client's answer (a masked close echo, then its END_STREAM), written by hand.
            echo = WebSocketConnection(Role.CLIENT, mask_key=lambda: MASK)
            echo.receive_data(close.data)
            echo.events_received()
            c.writer.write(DataFrame(ws.stream_id, b"".join(echo.data_to_send()), True).serialize())
            await asyncio.wait_for(closing, TIMEOUT)
            # The client's reader stopped at the h2 package's error: the rest, up to the server's close.
            c.raw += await asyncio.wait_for(c.reader.read(), TIMEOUT)
            assert DataFrame(ws.stream_id, b"", True) in frames()  # the server's END_STREAM
            assert not any(isinstance(f, RstStreamFrame) for f in frames())


# --- the hub over the tunnel --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_chat_message_reaches_an_sse_client() -> None:
    async with serving() as server, client(server) as c:
        events = c.request("GET", "/events?channel=h2room")
        await c.until(lambda: events in c.headers)
        ws = await open_ws(c, "/ws/chat?channel=h2room")
        ws.send("over a stream")
        # The publisher gets its own message back, like every subscriber...
        assert json.loads(await ws.message()) == {"channel": "h2room", "id": 1, "data": "over a stream"}
        # ...and the EventSource on another stream of the same connection gets it as an SSE event.
        await c.until(lambda: b"data: over a stream\n" in c.data.get(events, b""))
        assert b"id: 1\n" in c.data[events]


# --- limits and flow control --------------------------------------------------------------------------------


class TestLimits:
    """The WebSocket's limits (rawrt.limits) and HTTP/2 flow control (RFC 9113 §5.2) under it."""

    @pytest.mark.asyncio
    async def test_too_large_message_is_1009(self) -> None:
        async with serving(small_app()) as server, client(server) as c:
            ws = await open_ws(c, "/small", deflate=False)
            ws.send("x" * 1000)
            assert await ws.message() == "x" * 1000
            ws.send("x" * 2000)
            event = await ws.event()
            assert isinstance(event, CloseReceived) and event.code == CloseCode.MESSAGE_TOO_BIG
            await c.until(lambda: ws.stream_id in c.ended and not server.websockets)

    @pytest.mark.asyncio
    async def test_decompressed_size_is_limited_too(self) -> None:
        async with serving(small_app()) as server, client(server) as c:
            ws = await open_ws(c, "/small")
            assert ws.protocol.extension is not None
            ws.send("y" * 5000)  # a few dozen bytes on the wire, 5000 once inflated: past 1024
            event = await ws.event()
            assert isinstance(event, CloseReceived) and event.code == CloseCode.MESSAGE_TOO_BIG

    @pytest.mark.asyncio
    async def test_small_window_backpressure(self) -> None:
        """A 180 KB echo through a 16 KiB stream window, given back only as the client reads."""
        async with serving() as server, client(server, window=16384) as c:
            ws = await open_ws(c, "/ws", deflate=False)
            c.auto_ack = False
            payload = bytes(range(256)) * 700
            ws.send(payload)
            await c.until(lambda: len(ws.raw) >= 16384)
            await asyncio.sleep(0.1)
            assert len(ws.raw) == 16384  # the window is spent: the rest waits on the server
            c.auto_ack = True
            c.conn.acknowledge_received_data(16384, ws.stream_id)
            c.flush()
            assert await ws.message() == payload

    @pytest.mark.asyncio
    async def test_full_queue_holds_the_window(self) -> None:
        """Messages the handler has not read wait, and so does their window; none is lost."""
        async with serving(small_app()) as server, client(server) as c:
            ws = await open_ws(c, "/slow", deflate=False)
            for i in range(40):
                ws.send(f"m{i}")
            assert [await ws.message() for _ in range(40)] == [f"m{i}" for i in range(40)]

    @pytest.mark.asyncio
    async def test_a_stream_that_reads_nothing_is_cut_after_send_timeout(self) -> None:
        limits = Limits(send_timeout=0.5, ws_write_high_water=1024)
        async with serving(limits=limits) as server, client(server, window=1024) as c:
            ws = await open_ws(c, "/ws", deflate=False)
            c.auto_ack = False
            [server_ws] = server.websockets
            ws.send(b"z" * 50_000)  # echoed into a 1 KiB window that never grows
            await c.until(lambda: ws.stream_id in c.reset, timeout=5.0)
            assert c.reset[ws.stream_id] == 8  # CANCEL: the abort of a stalled WebSocket (RFC 8441 §6)
            await asyncio.wait_for(server_ws.wait_closed(), TIMEOUT)
            assert server_ws.close_code == CloseCode.ABNORMAL_CLOSURE
            hello = c.request("GET", "/hello")
            c.auto_ack = True
            assert await c.response(hello) == (200, b"Hello, world!")
