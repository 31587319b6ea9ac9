"""The life of a rawrt WebSocket connection: keepalive, timeouts, limits, backpressure, shutdown, errors,
the handler-side API (fragmented sends, ping, request) and :func:`rawrt.websocket.broadcast`.

Raw loopback sockets stand in for peers that misbehave in exact ways (never answer a ping, never answer a
close, never read); the ``websockets`` client stands in for a well-behaved one. Times under test are a few
tenths of a second and every wait is bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from httpwire import TIMEOUT, Client, running
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import ConnectionClosedError

import rawrt.websocket.fanout
from rawrt.app import App
from rawrt.errors import ConnectionClosed
from rawrt.limits import KiB, Limits, MiB
from rawrt.sansio.ws.connection import Role, WebSocketConnection
from rawrt.sansio.ws.frames import apply_mask, encode_frame
from rawrt.server import Server
from rawrt.websocket import WebSocket, broadcast
from rawrt.websocket.handover import ByteStream

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
#: A zero mask key: masking is the identity, so a raw client can send megabytes cheaply (§5.3 allows it).
ZERO_MASK = b"\x00\x00\x00\x00"


def handshake(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def masked(opcode: int, payload: bytes, *, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 0x10000:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    return head + key + apply_mask(payload, key)


async def read_frame(c: Client, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """One server frame: ``(first byte, payload)`` (server frames are unmasked)."""

    async def read() -> tuple[int, bytes]:
        b0, b1 = await c.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await c.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await c.reader.readexactly(8))[0]
        return b0, await c.reader.readexactly(n)

    return await asyncio.wait_for(read(), timeout)


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0])


@contextlib.asynccontextmanager
async def raw_ws(
    server: Server, path: str, *, rcvbuf: int | None = None, sndbuf: int | None = None
) -> AsyncIterator[Client]:
    """A raw socket after a successful opening handshake, optionally with small kernel buffers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (server.host, server.port)), TIMEOUT
        )
    except BaseException:
        sock.close()
        raise
    reader, writer = await asyncio.open_connection(sock=sock)
    c = Client(reader, writer)
    try:
        await c.send(handshake(path))
        head = await c.read_head()
        assert head.status == 101, head
        yield c
    finally:
        c.writer.transport.abort()
        await c.close()


@contextlib.asynccontextmanager
async def ws_client(server: Server, path: str, **kwargs: object) -> AsyncIterator[ClientConnection]:
    url = f"ws://127.0.0.1:{server.port}{path}"
    async with ws_connect(url, proxy=None, open_timeout=TIMEOUT, **kwargs) as ws:  # type: ignore[arg-type]
        yield ws


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def fast(**changes: object) -> Limits:
    base: dict[str, object] = {"ws_ping_interval": None, "ws_ping_timeout": None, "ws_close_timeout": 0.5}
    base.update(changes)
    return Limits(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- keepalive


class TestKeepalive:
    """``ws_ping_interval`` / ``ws_ping_timeout``: a live peer stays, a dead one is closed with 1011."""

    @pytest.mark.asyncio
    async def test_peer_that_answers_stays_open(self) -> None:
        app = App()
        app.websocket("/echo", limits=fast(ws_ping_interval=0.1, ws_ping_timeout=0.2))(echo)
        async with running(app) as server, raw_ws(server, "/echo") as c:
            loop = asyncio.get_running_loop()
            pings = 0
            end = loop.time() + 0.8
            while loop.time() < end:
                b0, payload = await read_frame(c)
                assert b0 == 0x89 and payload.startswith(b"rawrt-keepalive-")
                pings += 1
                await c.send(masked(0xA, payload))
            # One ping per interval (plus the pong's round trip): the keepalive keeps going.
            assert pings >= 4
            await c.send(masked(0x1, b"still here"))
            while (frame := await read_frame(c))[0] == 0x89:
                await c.send(masked(0xA, frame[1]))
            assert frame == (0x81, b"still here")

    @pytest.mark.asyncio
    async def test_keepalive_without_a_timeout_keeps_pinging(self) -> None:
        app = App()
        app.websocket("/echo", limits=fast(ws_ping_interval=0.1, ws_ping_timeout=None))(echo)
        async with running(app) as server, raw_ws(server, "/echo") as c:
            payloads = []
            for _ in range(3):
                b0, payload = await read_frame(c, timeout=1.0)
                assert b0 == 0x89
                payloads.append(payload)
                await c.send(masked(0xA, payload))
            assert len(set(payloads)) == 3

    @pytest.mark.asyncio
    async def test_websockets_client_answers_and_stays_open(self) -> None:
        app = App()
        app.websocket("/echo", limits=fast(ws_ping_interval=0.1, ws_ping_timeout=0.1))(echo)
        async with running(app) as server, ws_client(server, "/echo", ping_interval=None) as ws:
            await asyncio.sleep(0.6)
            await ws.send("alive")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "alive"

    @pytest.mark.asyncio
    async def test_dead_peer_is_closed_with_1011(self) -> None:
        closed: asyncio.Future[tuple[int | None, float]] = asyncio.get_running_loop().create_future()

        async def handler(ws: WebSocket) -> None:
            async for _ in ws:
                pass
            closed.set_result((ws.close_code, asyncio.get_running_loop().time()))

        app = App()
        app.websocket("/dead", limits=fast(ws_ping_interval=0.2, ws_ping_timeout=0.2))(handler)
        async with running(app) as server, raw_ws(server, "/dead") as c:
            start = asyncio.get_running_loop().time()
            b0, _ = await read_frame(c)
            assert b0 == 0x89  # the keepalive ping, which we ignore
            b0, payload = await read_frame(c)
            assert b0 == 0x88 and close_code(payload) == 1011
            assert await c.read_until_eof() == b""
            elapsed = asyncio.get_running_loop().time() - start
            assert 0.35 < elapsed < 1.0  # interval + timeout = 0.4 s
            code, _ = await asyncio.wait_for(closed, TIMEOUT)
            assert code == 1006  # the handler sees an abnormal closure: the peer sent no close


# --------------------------------------------------------------------------------------------- closing


class TestCloseTimeout:
    """``ws_close_timeout``: RFC 6455 §7.1.1 bounds, the close handshake cannot hang."""

    @pytest.mark.asyncio
    async def test_peer_that_never_answers_the_close(self) -> None:
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        async def handler(ws: WebSocket) -> None:
            await ws.recv()
            loop = asyncio.get_running_loop()
            start = loop.time()
            await ws.close(1000, "bye")
            done.set_result(loop.time() - start)

        app = App()
        app.websocket("/close", limits=fast(ws_close_timeout=0.3))(handler)
        async with running(app) as server, raw_ws(server, "/close") as c:
            await c.send(masked(0x1, b"close please"))
            b0, payload = await read_frame(c)
            assert b0 == 0x88 and close_code(payload) == 1000 and payload[2:] == b"bye"
            # We never answer: after ws_close_timeout the server drops TCP anyway.
            assert await c.read_until_eof() == b""
            elapsed = await asyncio.wait_for(done, TIMEOUT)
            assert 0.25 < elapsed < 1.0

    @pytest.mark.asyncio
    async def test_recv_after_close_raises(self) -> None:
        result: asyncio.Future[tuple[int | None, str, bool]] = asyncio.get_running_loop().create_future()

        async def handler(ws: WebSocket) -> None:
            await ws.close(4000, "done")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            with pytest.raises(ConnectionClosed):
                await ws.send("too late")
            result.set_result((info.value.code, info.value.reason, ws.open))

        app = App()
        app.websocket("/c", limits=fast())(handler)
        async with running(app) as server, ws_client(server, "/c") as ws:
            with pytest.raises(WsConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            # The reason is the peer's: websockets echoes ours (§5.5.1 asks only for the code).
            assert await asyncio.wait_for(result, TIMEOUT) == (4000, "done", False)


# ---------------------------------------------------------------------------------------------- limits


class TestSizeLimits:
    """``ws_max_message_size`` and ``ws_max_frame_size``: close 1009 (RFC 6455 §7.4.1)."""

    @pytest.mark.asyncio
    async def test_default_message_limit_is_1_mib(self) -> None:
        app = App()
        app.websocket("/echo")(echo)
        async with running(app) as server, ws_client(server, "/echo", max_size=None, compression=None) as ws:
            await ws.send(bytes(1 * MiB))
            assert len(await asyncio.wait_for(ws.recv(), TIMEOUT)) == 1 * MiB
            # Past it, even fragmented into small frames: the reassembled message counts.
            await ws.send([bytes(64 * KiB)] * 16 + [b"!"])
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009

    @pytest.mark.asyncio
    async def test_compressed_message_limit_applies_after_decompression(self) -> None:
        app = App()
        app.websocket("/echo", limits=fast(ws_max_message_size=100 * KiB))(echo)
        async with running(app) as server, ws_client(server, "/echo", compression="deflate") as ws:
            await ws.send(bytes(100 * KiB))  # compresses to ~100 bytes on the wire
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == bytes(100 * KiB)
            await ws.send(bytes(100 * KiB + 1))
            with pytest.raises(ConnectionClosedError) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009

    @pytest.mark.asyncio
    async def test_frame_limit_checked_before_the_payload(self) -> None:
        app = App()
        app.websocket("/echo", limits=fast(ws_max_frame_size=1000))(echo)
        async with running(app) as server, raw_ws(server, "/echo") as c:
            await c.send(masked(0x2, bytes(1000)))
            assert await read_frame(c) == (0x82, bytes(1000))
            # A header announcing 2**40 bytes is refused at once: nothing of the payload is awaited.
            await c.send(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 40) + ZERO_MASK)
            b0, payload = await read_frame(c)
            assert b0 == 0x88 and close_code(payload) == 1009
            assert await c.read_until_eof() == b""


# ---------------------------------------------------------------------------------------- backpressure


class TestBackpressure:
    """Reading stops when ``ws_max_queue`` messages wait; ``send`` waits while the peer does not read."""

    @pytest.mark.asyncio
    async def test_bounded_inbound_queue(self) -> None:
        release = asyncio.Event()
        queued: list[int] = []
        received: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def slow(ws: WebSocket) -> None:
            await release.wait()
            queued.append(len(ws._messages))
            count = 0
            async for _ in ws:
                count += 1
                if count == 200:
                    break
            received.set_result(count)

        app = App()
        app.websocket("/slow", limits=fast(ws_max_queue=4, ws_max_message_size=MiB))(slow)
        async with running(app) as server, raw_ws(server, "/slow", sndbuf=64 * KiB) as c:
            frame = masked(0x2, bytes(64 * KiB), key=ZERO_MASK)
            transport = c.writer.transport
            sent = 0
            # Write until the kernel buffers on both sides are full and ours starts to grow: the server
            # stopped reading. 200 messages (12.5 MiB) is far more than loopback buffers hold.
            while sent < 200 and transport.get_write_buffer_size() < 2 * MiB:
                c.writer.write(frame)
                sent += 1
                await asyncio.sleep(0)
            assert transport.get_write_buffer_size() >= 2 * MiB, "the server kept reading"
            await asyncio.sleep(0.05)
            assert sent < 200
            release.set()
            # All that was held back arrives once the handler reads: nothing was dropped.
            while sent < 200:
                c.writer.write(frame)
                sent += 1
            await asyncio.wait_for(c.writer.drain(), TIMEOUT)
            assert await asyncio.wait_for(received, TIMEOUT) == 200
        # One read of 64 KiB holds at most two 64 KiB messages, so the queue never grows past max_queue + 1.
        assert queued and queued[0] <= 5

    @pytest.mark.asyncio
    async def test_send_waits_while_the_peer_does_not_read(self) -> None:
        progress: list[int] = []
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def flood(ws: WebSocket) -> None:
            # A small kernel send buffer, so that our own transport buffer is what fills up.
            ws._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * KiB)
            try:
                while True:
                    await ws.send(bytes(16 * KiB))
                    progress.append(ws._transport.get_write_buffer_size())
            except ConnectionClosed:
                outcome.set_result("closed")

        app = App()
        app.websocket("/flood", limits=fast(ws_write_high_water=32 * KiB))(flood)
        async with running(app) as server, raw_ws(server, "/flood", rcvbuf=4 * KiB) as c:
            await asyncio.sleep(0.3)
            stalled = len(progress)
            await asyncio.sleep(0.2)
            # The handler is blocked in send(): no progress, and our transport buffer stays bounded.
            assert len(progress) == stalled
            assert max(progress) <= 32 * KiB + 16 * KiB + 100
            assert stalled < 100  # kernel buffers hold a few frames, our transport two at most
            # Reading releases it.
            for _ in range(200):
                assert await read_frame(c) == (0x82, bytes(16 * KiB))
                if len(progress) > stalled:
                    break
            assert len(progress) > stalled
        assert await asyncio.wait_for(outcome, TIMEOUT) == "closed"


# --------------------------------------------------------------------------------------------- shutdown


class TestShutdown:
    """``Server.shutdown()`` closes every open WebSocket with 1001 (RFC 6455 §7.4.1 "going away")."""

    @pytest.mark.asyncio
    async def test_every_websocket_gets_1001(self) -> None:
        handler_done: list[int | None] = []

        async def handler(ws: WebSocket) -> None:
            async for _ in ws:
                pass
            handler_done.append(ws.close_code)

        app = App()
        app.websocket("/ws", limits=fast())(handler)
        server = Server(app, fast())
        await server.start("127.0.0.1", 0)
        url = f"ws://127.0.0.1:{server.port}/ws"
        try:
            clients = [await ws_connect(url, proxy=None, open_timeout=TIMEOUT) for _ in range(3)]
            try:
                async with raw_ws(server, "/ws") as raw:
                    await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)
                    b0, payload = await read_frame(raw)
                    assert b0 == 0x88 and close_code(payload) == 1001
                    assert payload[2:] == b"server shutting down"
                for ws in clients:
                    with pytest.raises(WsConnectionClosed) as info:
                        await asyncio.wait_for(ws.recv(), TIMEOUT)
                    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            finally:
                for ws in clients:
                    await ws.close()
        finally:
            await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)
        assert server.websockets == set()
        assert len(handler_done) == 4


# ----------------------------------------------------------------------------------------------- errors


class TestHandlerErrors:
    """A handler's bug: close 1011, the traceback on ``rawrt.error``, no details for the peer."""

    @pytest.mark.asyncio
    async def test_exception_closes_with_1011(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.ERROR, logger="rawrt.error")

        async def buggy(ws: WebSocket) -> None:
            await ws.recv()
            raise RuntimeError("secret internal detail")

        app = App()
        app.websocket("/buggy", limits=fast())(buggy)
        async with running(app) as server, raw_ws(server, "/buggy") as c:
            await c.send(masked(0x1, b"trigger"))
            b0, payload = await read_frame(c)
            assert b0 == 0x88 and payload == struct.pack("!H", 1011)  # no reason text
            rest = await c.read_until_eof()
            assert rest == b""
        records = [r for r in caplog.records if r.name == "rawrt.error"]
        assert len(records) == 1
        assert records[0].exc_info is not None and records[0].exc_info[0] is RuntimeError
        assert "/buggy" in records[0].getMessage()

    @pytest.mark.asyncio
    async def test_handler_returning_closes_with_1000(self) -> None:
        async def short(ws: WebSocket) -> None:
            await ws.send("bye")

        app = App()
        app.websocket("/short", limits=fast())(short)
        async with running(app) as server, ws_client(server, "/short") as ws:
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "bye"
            with pytest.raises(WsConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000


# ----------------------------------------------------------------------------------------- handler API


class TestHandlerAPI:
    """``send`` of (async) iterables, ``ping``, ``subprotocol``, ``request`` on the server side."""

    @pytest.mark.asyncio
    async def test_streamed_send_and_ping(self) -> None:
        rtts: list[float] = []

        async def pieces() -> AsyncIterator[bytes]:
            for i in range(5):
                await asyncio.sleep(0)
                yield bytes([i]) * 1000

        async def handler(ws: WebSocket) -> None:
            assert ws.request is not None and ws.request.query_param("n") == "5"
            assert ws.subprotocol == "proto"
            await ws.send(pieces())  # an async iterable: one binary message in five frames
            await ws.send(["a", "b", "c"])  # an iterable of str: one text message
            await ws.send(["only"])  # a single piece: one frame with FIN
            rtts.append(await ws.ping(b"handler ping"))
            rtts.append(await ws.ping())
            await ws.recv()

        app = App()
        app.websocket("/h", subprotocols=["proto"], limits=fast())(handler)
        async with (
            running(app) as server,
            ws_client(server, "/h?n=5", subprotocols=["proto"]) as ws,
        ):
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"".join(bytes([i]) * 1000 for i in range(5))
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "abc"
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "only"
            for _ in range(50):
                if len(rtts) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(rtts) == 2 and all(0 <= rtt < TIMEOUT for rtt in rtts)
            await ws.send("done")

    @pytest.mark.asyncio
    async def test_fragment_frames_on_the_wire(self) -> None:
        async def handler(ws: WebSocket) -> None:
            await ws.send(iter([b"x" * 10, b"y" * 200, b"z"]))
            await ws.recv()

        app = App()
        app.websocket("/f", compression=None, limits=fast())(handler)
        async with running(app) as server, raw_ws(server, "/f") as c:
            frames = [await read_frame(c) for _ in range(3)]
            assert frames == [(0x02, b"x" * 10), (0x00, b"y" * 200), (0x80, b"z")]

    @pytest.mark.asyncio
    async def test_mixed_fragment_types_are_refused(self) -> None:
        errors: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def handler(ws: WebSocket) -> None:
            try:
                await ws.send(["text", b"bytes"])
            except TypeError as exc:
                errors.set_result(exc)
            with pytest.raises(ValueError):
                await ws.send([])

        app = App()
        app.websocket("/m", limits=fast())(handler)
        async with running(app) as server, ws_client(server, "/m"):
            exc = await asyncio.wait_for(errors, TIMEOUT)
            assert "same type" in str(exc)

    @pytest.mark.asyncio
    async def test_ping_fails_when_the_connection_closes(self) -> None:
        outcome: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

        async def handler(ws: WebSocket) -> None:
            try:
                await ws.ping(b"never answered")
            except ConnectionClosed as exc:
                outcome.set_result(exc.code)

        app = App()
        app.websocket("/p", limits=fast())(handler)
        async with running(app) as server, raw_ws(server, "/p") as c:
            b0, _ = await read_frame(c)
            assert b0 == 0x89
            c.writer.transport.abort()  # gone without a close frame
            assert await asyncio.wait_for(outcome, TIMEOUT) == 1006


# ------------------------------------------------------------------------------------------- broadcast


class TestBroadcast:
    """``broadcast()``: one encoding, every client, and a slow client closed with 1013."""

    @pytest.mark.asyncio
    async def test_encoded_once_and_received_by_all(self, monkeypatch: pytest.MonkeyPatch) -> None:
        members: set[WebSocket] = set()
        joined = asyncio.Semaphore(0)

        async def member(ws: WebSocket) -> None:
            members.add(ws)
            joined.release()
            try:
                async for _ in ws:
                    pass
            finally:
                members.discard(ws)

        app = App()
        app.websocket("/room", limits=fast())(member)
        calls: list[tuple[int, int]] = []
        compressed: list[tuple[int, int]] = []

        def spy(opcode: int, payload: bytes, **kwargs: object) -> bytes:
            calls.append((opcode, len(payload)))
            if kwargs.get("rsv"):
                compressed.append((opcode, len(payload)))
            return encode_frame(opcode, payload, **kwargs)  # type: ignore[arg-type]

        async with running(app) as server:
            async with contextlib.AsyncExitStack() as stack:
                deflated = await stack.enter_async_context(ws_client(server, "/room", compression="deflate"))
                plain = [
                    await stack.enter_async_context(ws_client(server, "/room", compression=None))
                    for _ in range(4)
                ]
                for _ in range(5):
                    await asyncio.wait_for(joined.acquire(), TIMEOUT)
                monkeypatch.setattr(rawrt.websocket.fanout, "encode_frame", spy)
                assert await broadcast(members, "hello room") == 5
                assert await broadcast(members, b"\x00binary") == 5
                monkeypatch.undo()
                # Once per message and wire form, not once per client: the four plain clients share one
                # frame, the deflate client gets one compressed frame (RSV1) built for its parameters.
                assert [opcode for opcode, _ in compressed] == [0x1, 0x2]
                assert sorted(calls) == sorted([(0x1, 10), (0x2, 7), *compressed])
                for ws in [deflated, *plain]:
                    assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hello room"
                    assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\x00binary"

    @pytest.mark.asyncio
    async def test_slow_client_closed_with_1013(self) -> None:
        members: dict[str, WebSocket] = {}
        joined = asyncio.Semaphore(0)

        async def member(ws: WebSocket) -> None:
            assert ws.request is not None
            name = ws.request.query_param("name") or ""
            if name == "slow":
                # Keep the kernel from absorbing megabytes on the server's side, so the test stays small.
                sock = ws._transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * KiB)
            members[name] = ws
            joined.release()
            async for _ in ws:
                pass

        app = App()
        app.websocket("/room", limits=fast(ws_write_high_water=16 * KiB, ws_close_timeout=0.5))(member)
        async with running(app) as server:
            async with (
                raw_ws(server, "/room?name=slow", rcvbuf=4 * KiB) as slow,
                ws_client(server, "/room?name=fast", max_size=None) as quick,
            ):
                for _ in range(2):
                    await asyncio.wait_for(joined.acquire(), TIMEOUT)
                chunk = bytes(8 * KiB)
                sent_fast = 0
                for _ in range(200):
                    await broadcast(list(members.values()), chunk)
                    sent_fast += 1
                    assert await asyncio.wait_for(quick.recv(), TIMEOUT) == chunk  # the fast one keeps up
                    if not members["slow"].open:
                        break
                # The slow one fell behind by more than 4 x 16 KiB: it got a 1013 close, queued after
                # what it had not read yet; the broadcast never waited for it.
                assert not members["slow"].open
                assert members["slow"].protocol.close_sent == (1013, "too slow for the broadcast")
                assert members["fast"].open
                assert await broadcast(list(members.values()), "after") == 1
                assert await asyncio.wait_for(quick.recv(), TIMEOUT) == "after"
                frames = 0
                while True:
                    b0, payload = await read_frame(slow)
                    if b0 == 0x88:
                        break
                    assert (b0, payload) == (0x82, chunk)
                    frames += 1
                assert close_code(payload) == 1013
                assert frames < sent_fast


# -------------------------------------------------------------------------------------------- take-over


async def stream_pair() -> tuple[ByteStream, Client]:
    """The server's stream on one end of a socket pair, as after a handshake; a peer on the other."""
    ours, theirs = socket.socketpair()
    _, stream = await asyncio.get_running_loop().create_connection(ByteStream, sock=ours)
    return stream, Client(*await asyncio.open_connection(sock=theirs))


async def stream_buffered(stream: ByteStream, n: int, *, eof: bool = False) -> None:
    """Wait until the stream has buffered ``n`` bytes (and the EOF) that nobody read."""

    async def wait() -> None:
        while stream.buffered < n or (eof and not stream.eof):
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), TIMEOUT)


def take_over(stream: ByteStream, initial: bytes = b"") -> WebSocket:
    """A server WebSocket taking the stream's transport over, as rawrt.server.upgrade does after a 101."""
    handover = stream.detach()
    return WebSocket(
        handover.transport,
        WebSocketConnection(Role.SERVER),
        limits=fast(),
        initial=initial + handover.data,
        eof=handover.eof,
        writing_paused=handover.writing_paused,
    )


class TestTakeOver:
    """After the handshake the WebSocket replaces the stream as the transport's protocol: the bytes behind
    the head come first, then what the stream buffered but nobody read, then new ones; nothing is lost
    or reordered, and dropping the stream does not close the connection."""

    @pytest.mark.asyncio
    async def test_buffered_bytes_come_first_in_order(self) -> None:
        stream, peer = await stream_pair()
        try:
            wire = masked(0x1, b"one") + masked(0x1, b"two") + masked(0x1, b"three")
            # wire[:5]: what the HTTP parser held behind the head; wire[5:14]: buffered by the stream since
            # the last read; the rest arrives after the take-over.
            await peer.send(wire[5:14])
            await stream_buffered(stream, 9)
            ws = take_over(stream, initial=wire[:5])
            del stream
            gc.collect()  # the stream collected must not close the transport
            await peer.send(wire[14:])
            assert [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(3)] == ["one", "two", "three"]
            await ws.send("four")
            assert await read_frame(peer) == (0x81, b"four")
            await peer.send(masked(0x8, struct.pack("!H", 1000)))
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
            assert ws.close_code == 1000
            assert await read_frame(peer) == (0x88, struct.pack("!H", 1000))
            assert await peer.read_until_eof() == b""
        finally:
            await peer.close()

    @pytest.mark.asyncio
    async def test_eof_seen_by_the_stream_is_not_lost(self) -> None:
        stream, peer = await stream_pair()
        try:
            await peer.send(masked(0x1, b"last"))
            peer.writer.write_eof()
            await stream_buffered(stream, 10, eof=True)
            ws = take_over(stream)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "last"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1006  # §7.1.5: TCP closed without a close frame
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        finally:
            await peer.close()
