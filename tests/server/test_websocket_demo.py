"""The demo's ``/ws`` echo (the Autobahn testee), ``python -m rawrt demo --trace``, and graceful shutdown
against a peer that never finishes the close handshake."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import struct
import sys
import time

import pytest
from httpwire import TIMEOUT, client
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosedError

from rawrt.app import App
from rawrt.demo import WS_ECHO_MAX_MESSAGE
from rawrt.limits import Limits, MiB
from rawrt.sansio.ws.frames import apply_mask
from rawrt.server import Server
from rawrt.websocket import WebSocket

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
MASK = bytes.fromhex("37fa213d")


class TestDemoEcho:
    """``/ws`` accepts messages up to 16 MiB (Autobahn section 9) and echoes them with their type."""

    @pytest.mark.asyncio
    async def test_16_mib_message(self, demo_server: Server) -> None:
        assert WS_ECHO_MAX_MESSAGE == 16 * MiB
        url = f"ws://127.0.0.1:{demo_server.port}/ws"
        async with ws_connect(url, proxy=None, max_size=None, compression=None, open_timeout=TIMEOUT) as ws:
            message = bytes(range(256)) * (16 * MiB // 256)
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
            await ws.send("text stays text")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "text stays text"
            # The frame's declared length is refused before its payload is read (1009, then TCP closes):
            # the client may still be writing when the close arrives, so its send() can fail already.
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(ws.send(bytes(16 * MiB + 1)), TIMEOUT)
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009

    @pytest.mark.asyncio
    async def test_compressed_echo(self, demo_server: Server) -> None:
        url = f"ws://127.0.0.1:{demo_server.port}/ws"
        async with ws_connect(url, proxy=None, max_size=None, open_timeout=TIMEOUT) as ws:
            assert ws.response is not None
            assert (ws.response.headers.get("Sec-WebSocket-Extensions") or "").startswith(
                "permessage-deflate"
            )
            message = "Autobahn " * 500_000  # 4.5 MB of text
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message


class TestCliTrace:
    """``python -m rawrt demo --trace`` prints every frame on ``rawrt.trace``."""

    @pytest.mark.asyncio
    async def test_trace_lines(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rawrt",
            "demo",
            "--port",
            "0",
            "--trace",
            "--no-access-log",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            assert proc.stdout is not None
            banner = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
            found = re.search(rb"http://127\.0\.0\.1:(\d+)/", banner)
            assert found is not None, banner
            port = int(found.group(1))
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
            try:
                writer.write(HANDSHAKE + b"\x81\x85" + MASK + apply_mask(b"Hello", MASK))
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                assert await asyncio.wait_for(reader.readexactly(7), TIMEOUT) == b"\x81\x05Hello"
                writer.write(b"\x88\x82" + MASK + apply_mask(struct.pack("!H", 1000), MASK))
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"\x88\x02\x03\xe8"
            finally:
                writer.close()
                await writer.wait_closed()
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        trace = [
            line.split(" rawrt.trace DEBUG ", 1)[1]
            for line in err.decode().splitlines()
            if "rawrt.trace" in line
        ]
        # The handshake's heads first (their first lines: each field follows on a line of its own), then the
        # frames, one line each.
        assert trace[0].endswith(" <- GET /ws HTTP/1.1 (" + str(len(HANDSHAKE)) + " bytes)"), trace[0]
        assert " -> HTTP/1.1 101 Switching Protocols (" in trace[1]
        assert trace[-1].endswith(" connection closed")
        assert trace[2:-1] == [
            "<< fin=1 rsv1=0 opcode=TEXT mask=37fa213d len=5 payload=b'Hello'",
            ">> fin=1 rsv1=0 opcode=TEXT mask=- len=5 payload=b'Hello'",
            "<< fin=1 rsv1=0 opcode=CLOSE mask=37fa213d len=2 payload=b'\\x03\\xe8'",
            ">> fin=1 rsv1=0 opcode=CLOSE mask=- len=2 payload=b'\\x03\\xe8'",
        ]


class TestShutdownBound:
    """``shutdown(timeout)`` should bound everything, including a close handshake the peer never finishes."""

    @pytest.mark.asyncio
    async def test_unresponsive_peer_does_not_hold_shutdown(self) -> None:
        async def handler(ws: WebSocket) -> None:
            async for _ in ws:
                pass

        app = App()
        app.websocket("/ws")(handler)
        server = Server(app, Limits(ws_close_timeout=1.0))
        await server.start("127.0.0.1", 0)
        try:
            async with client(server) as c:
                await c.send(HANDSHAKE)
                assert (await c.read_head()).status == 101
                start = time.monotonic()
                await asyncio.wait_for(server.shutdown(timeout=0.2), TIMEOUT)
                elapsed = time.monotonic() - start
                frame = await asyncio.wait_for(c.reader.readexactly(4), TIMEOUT)
                assert frame[:2] == b"\x88\x16" and frame[2:] == struct.pack("!H", 1001)
        finally:
            await asyncio.wait_for(server.shutdown(timeout=0.2), TIMEOUT)
        assert elapsed < 0.6
