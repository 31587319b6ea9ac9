"""Issue 10's sans-IO abuse fixes, seen from the wire: a real server on a loopback socket.

The parsers' own tests (``tests/sansio``) feed each input whole and one byte at a time; these check that the
server turns the parser's early answer into an early response: no wait for ``header_timeout`` or
``body_timeout`` (left at their defaults, 10 s and 30 s, so a wait would show as a test timeout). Every wait
is bounded by ``httpwire.TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import time
import tracemalloc
import zlib

import pytest
from httpwire import TIMEOUT, client, running
from test_websocket_wire import handshake, masked, read_frame

from rawrt.app import App, Request, Response
from rawrt.limits import DEFAULT_LIMITS, Limits, MiB
from rawrt.websocket import WebSocket

#: Far below header_timeout and body_timeout: the answer came from the parser, not from a timer.
PROMPT = 1.0


def echo_app() -> App:
    app = App()

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        return Response.text(str(len(await request.body())))

    return app


def client_hello() -> bytes:
    """The first flight of a real TLS client (the ssl module's), as it would reach a plaintext port."""
    context = ssl.create_default_context()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"  # TLS record type 22: handshake (RFC 8446 §5.1)
    return hello


class TestBareLFInChunkedBody:
    """Issue 10 #9, RFC 9112 §7.1: chunk lines end in CRLF; a bare LF is answered 400 at once."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize("body", [b"5\n", b"5\r\nhello\n", b"0\r\nX: y\n"])
    async def test_400_at_once(self, body: bytes) -> None:
        assert DEFAULT_LIMITS.body_timeout is not None and DEFAULT_LIMITS.body_timeout > 10 * PROMPT
        head = b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        async with running(echo_app()) as server, client(server) as c:
            start = time.monotonic()
            await c.send(head + body)
            response = await c.read_response()
            assert response.status == 400
            assert b"LF" in response.body or b"CRLF" in response.body
            await c.assert_closed()
            assert time.monotonic() - start < PROMPT


class TestTLSOnThePlaintextPort:
    """Issue 10 #10, RFC 9112 §3: bytes that cannot start ``method SP`` get 400 and a close at once."""

    @pytest.mark.asyncio
    async def test_client_hello_gets_400_at_once(self) -> None:
        assert DEFAULT_LIMITS.header_timeout is not None and DEFAULT_LIMITS.header_timeout > 5 * PROMPT
        async with running(echo_app()) as server, client(server) as c:
            start = time.monotonic()
            await c.send(client_hello())
            response = await c.read_response()
            assert response.status == 400
            assert b"looks like a TLS handshake on a plaintext port" in response.body
            await c.assert_closed()
            assert time.monotonic() - start < PROMPT

    @pytest.mark.asyncio
    async def test_tls_client_fails_at_once(self) -> None:
        # What the user of an https:// URL sees: the handshake fails promptly (the server's plain-text 400 is
        # no TLS record), instead of hanging for the header timeout. Not a regression test on its own: a
        # ClientHello's random bytes may hold a bare LF, which was answered at once before too.
        async with running(echo_app()) as server:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            start = time.monotonic()
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.wait_for(
                    asyncio.open_connection(server.host, server.port, ssl=context), TIMEOUT
                )
            assert time.monotonic() - start < PROMPT


class TestFailedWebSocketMemory:
    """Issue 10 #2: a connection failed by a deflate bomb frees the inflated data when it goes, with no GC."""

    LIMIT = 8 * MiB

    @pytest.mark.asyncio
    async def test_bomb_memory_comes_back_without_gc(self) -> None:
        app = App()

        @app.websocket("/echo", limits=Limits(ws_max_message_size=self.LIMIT, ws_max_frame_size=self.LIMIT))
        async def echo(ws: WebSocket) -> None:
            async for message in ws:
                await ws.send(message)

        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = b"".join(compressor.compress(bytes(MiB)) for _ in range(32))
        bomb = (bomb + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]  # 32 MiB of zeros in ~32 KB
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            async with running(app) as server:
                async with client(server) as c:
                    await c.send(handshake("/echo", "Sec-WebSocket-Extensions: permessage-deflate"))
                    assert (await c.read_head()).status == 101
                    before = tracemalloc.get_traced_memory()[0]
                    await c.send(masked(0x2, bomb, rsv=0x40))
                    close = await read_frame(c)
                    assert (close.opcode, close.payload[:2]) == (0x8, (1009).to_bytes(2, "big"))
                    assert await c.read_until_eof() == b""
                for _ in range(100):  # the server lets go of the connection (bounded: 1 s)
                    if not server.connections:
                        break
                    await asyncio.sleep(0.01)
                held = tracemalloc.get_traced_memory()[0] - before
                # Before the fix the failure's traceback kept LIMIT + 1 inflated bytes in a reference cycle.
                assert held < MiB, held
        finally:
            tracemalloc.stop()
            gc.enable()
