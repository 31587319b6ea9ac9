"""WebSocket peers that abuse the server (issue 10), driven from the wire on loopback sockets.

* a ping flood from a peer that never reads: reading stops while writing is paused, the write buffer stays
  bounded, and the connection is aborted after ``send_timeout``, its memory freed;
* ``send()`` to a peer that stopped reading: aborted after ``send_timeout`` (1006), ``ConnectionClosed``;
* a fan-out to many permessage-deflate clients (``broadcast`` and the chat): compressed once per deflate
  parameter set, not once per client, and decoded correctly by a real client (the ``websockets`` package),
  also when the client's context-takeover compressor sends its own messages in between.

Every wait is bounded by ``TIMEOUT``; limits are shrunk so that each test takes well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from httpwire import TIMEOUT, running
from test_websocket_lifecycle import ZERO_MASK, fast, masked, raw_ws, read_frame, ws_client
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

import rawrt.sansio.ws.deflate
import rawrt.websocket.fanout
from rawrt.app import App
from rawrt.errors import ConnectionClosed
from rawrt.hub import Hub
from rawrt.limits import KiB, MiB
from rawrt.sansio.ws.deflate import PerMessageDeflate, ShareKey
from rawrt.websocket import WebSocket, broadcast, chat_session


def small_kernel_buffers(ws: WebSocket) -> None:
    """Keep the kernel from absorbing megabytes on the server's side, so the tests stay small and fast."""
    sock = ws._transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * KiB)


# ------------------------------------------------------------------------------------------ ping flood


class TestPingFlood:
    """RFC 6455 §5.5.2 makes every ping owe a pong: a peer that pings and never reads must not grow memory."""

    @staticmethod
    async def flood(writer: asyncio.StreamWriter, seconds: float = TIMEOUT) -> None:
        """Pings as fast as the loop lets us, never reading the pongs, until the connection goes."""
        # 64 pings of 125 bytes (the most a control frame holds, §5.5) per write.
        batch = masked(0x9, b"p" * 125, key=ZERO_MASK) * 64
        transport = writer.transport
        deadline = time.monotonic() + seconds
        while not transport.is_closing() and time.monotonic() < deadline:
            if transport.get_write_buffer_size() < 128 * KiB:  # bound our own side's memory
                writer.write(batch)
            await asyncio.sleep(0)

    @pytest.mark.asyncio
    async def test_pings_read_together_get_at_most_16_pongs(self) -> None:
        async def idle(ws: WebSocket) -> None:
            await ws.wait_closed()

        app = App()
        app.websocket("/idle", limits=fast())(idle)
        async with running(app) as server, raw_ws(server, "/idle") as c:
            # Ten pings get ten pongs (Autobahn 2.10 checks it).
            c.writer.write(b"".join(masked(0x9, b"%d" % i) for i in range(10)))
            assert [(await read_frame(c))[1] for _ in range(10)] == [b"%d" % i for i in range(10)]
            # 1,000 pings in one write: the server reads them in a batch or a few and answers at most 16
            # per batch, the last one for the batch's most recent ping (§5.5.3), not 1,000 times.
            c.writer.write(b"".join(masked(0x9, b"%d" % i) for i in range(1000)))
            pongs: list[bytes] = []
            while not pongs or pongs[-1] != b"999":
                b0, payload = await read_frame(c)
                assert b0 == 0x8A
                pongs.append(payload)
            assert len(pongs) <= 16 * 8
            assert [int(p) for p in pongs] == sorted(int(p) for p in pongs)

    @pytest.mark.asyncio
    async def test_flood_from_a_peer_that_never_reads_keeps_memory_bounded(self) -> None:
        accepted: asyncio.Future[WebSocket] = asyncio.get_running_loop().create_future()

        async def idle(ws: WebSocket) -> None:
            small_kernel_buffers(ws)
            accepted.set_result(ws)
            await ws.wait_closed()

        high = 16 * KiB
        app = App()
        app.websocket("/idle", limits=fast(ws_write_high_water=high))(idle)
        async with running(app) as server, raw_ws(server, "/idle", rcvbuf=4 * KiB) as c:
            ws = await asyncio.wait_for(accepted, TIMEOUT)
            gc.collect()
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                flooding = asyncio.ensure_future(self.flood(c.writer, 0.5))
                peak = held = 0
                while not flooding.done():
                    await asyncio.sleep(0)
                    peak = max(peak, ws.write_buffer_size())
                    held = max(held, tracemalloc.get_traced_memory()[0] - baseline)
                # The write buffer: at most the high-water mark plus the pongs of one read (16); the server's
                # memory (and our 128 KiB of unsent pings) well under a megabyte.
                assert peak <= high + 4 * KiB
                assert held < 1 * MiB
                c.writer.transport.abort()
                await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
                await ws.wait_connection_lost(TIMEOUT)
                gc.collect()
                assert tracemalloc.get_traced_memory()[0] - baseline < 256 * KiB
            finally:
                tracemalloc.stop()

    @pytest.mark.asyncio
    async def test_reading_stops_while_the_peer_reads_nothing_then_it_is_aborted(self) -> None:
        accepted: asyncio.Future[WebSocket] = asyncio.get_running_loop().create_future()

        async def stuffed(ws: WebSocket) -> None:
            small_kernel_buffers(ws)
            # More than the kernel buffers hold and the high-water mark: writing is paused.
            await broadcast([ws], bytes(512 * KiB))
            accepted.set_result(ws)
            await ws.wait_closed()

        app = App()
        app.websocket("/stuffed", limits=fast(ws_write_high_water=16 * KiB, send_timeout=0.5))(stuffed)
        async with running(app) as server, raw_ws(server, "/stuffed", rcvbuf=4 * KiB) as c:
            ws = await asyncio.wait_for(accepted, TIMEOUT)
            paused = time.monotonic()
            buffered = ws.write_buffer_size()
            assert buffered > 16 * KiB
            flooding = asyncio.ensure_future(self.flood(c.writer))
            await asyncio.sleep(0.2)
            # The server reads none of the pings: they back up in our buffer, and no pong is added.
            assert not ws._transport.is_reading()
            assert c.writer.transport.get_write_buffer_size() > 0
            assert ws.write_buffer_size() <= buffered
            # Nothing read for send_timeout: aborted, 1006 (no close frame could reach the peer), freed.
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
            assert 0.5 - 0.05 <= time.monotonic() - paused <= 0.5 + 0.5
            assert ws.close_code == 1006
            await ws.wait_connection_lost(TIMEOUT)
            assert ws.write_buffer_size() == 0
            await asyncio.wait_for(flooding, TIMEOUT)  # the peer saw its connection go


# ---------------------------------------------------------------------------------------- send timeout


class TestSendTimeout:
    """``Limits.send_timeout`` bounds how long ``send()`` waits for a peer that stopped reading."""

    @pytest.mark.asyncio
    async def test_send_to_a_peer_that_stopped_reading_is_aborted(self) -> None:
        outcome: asyncio.Future[tuple[ConnectionClosed, float, int]] = (
            asyncio.get_running_loop().create_future()
        )
        sockets: list[WebSocket] = []

        async def flood(ws: WebSocket) -> None:
            small_kernel_buffers(ws)
            sockets.append(ws)
            last = time.monotonic()
            try:
                while True:
                    last = time.monotonic()
                    await ws.send(bytes(16 * KiB))
            except ConnectionClosed as exc:
                outcome.set_result((exc, time.monotonic() - last, ws.write_buffer_size()))

        app = App()
        app.websocket("/flood", limits=fast(ws_write_high_water=32 * KiB, send_timeout=0.3))(flood)
        async with running(app) as server, raw_ws(server, "/flood", rcvbuf=4 * KiB) as c:
            exc, waited, buffered = await asyncio.wait_for(outcome, TIMEOUT)
            assert exc.code == 1006
            assert "send_timeout" in exc.reason
            # The send that raised waited send_timeout, give or take the loop's granularity.
            assert 0.25 <= waited < 0.3 + 0.5
            assert buffered == 0  # aborted: the transport dropped what it held
            ws = sockets[0]
            assert ws.close_code == 1006
            # The peer sees the connection go (a reset, or EOF after what its kernel had).
            with contextlib.suppress(ConnectionError):
                while await asyncio.wait_for(c.reader.read(64 * KiB), TIMEOUT):
                    pass

    @pytest.mark.asyncio
    async def test_a_slow_but_reading_peer_is_not_aborted(self) -> None:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def flood(ws: WebSocket) -> None:
            small_kernel_buffers(ws)
            for _ in range(64):
                await ws.send(bytes(16 * KiB))
            done.set_result(64)
            await ws.close()

        app = App()
        app.websocket("/flood", limits=fast(ws_write_high_water=32 * KiB, send_timeout=0.3))(flood)
        async with running(app) as server, ws_client(server, "/flood", max_size=None) as client:
            received = 0
            for _ in range(64):
                assert await asyncio.wait_for(client.recv(), TIMEOUT) == bytes(16 * KiB)
                received += 1
                if received % 16 == 0:
                    await asyncio.sleep(0.1)  # slow, but each pause is shorter than send_timeout
            assert await asyncio.wait_for(done, TIMEOUT) == 64


# ----------------------------------------------------------------------------- shared compression


@contextlib.contextmanager
def count_compression(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Count shared compressions (``compress_message``) and per-connection ones (``compress``)."""
    counts = {"shared": 0, "per_connection": 0}
    shared = rawrt.sansio.ws.deflate.compress_message
    per_connection = PerMessageDeflate.compress

    def spy_shared(data: bytes, key: ShareKey) -> bytes:
        counts["shared"] += 1
        return shared(data, key)

    def spy_per_connection(self: PerMessageDeflate, data: bytes, *, fin: bool) -> bytes:
        counts["per_connection"] += 1
        return per_connection(self, data, fin=fin)

    monkeypatch.setattr(rawrt.websocket.fanout, "compress_message", spy_shared, raising=False)
    monkeypatch.setattr(PerMessageDeflate, "compress", spy_per_connection)
    try:
        yield counts
    finally:
        monkeypatch.undo()


NO_CONTEXT_TAKEOVER = ClientPerMessageDeflateFactory(
    server_no_context_takeover=True, client_max_window_bits=True
)


class TestSharedCompression:
    """RFC 7692: one compressed frame per deflate parameter set, shared by every subscriber."""

    @pytest.mark.asyncio
    async def test_broadcast_compresses_once_for_many_deflate_clients(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        members: list[WebSocket] = []
        joined = asyncio.Semaphore(0)

        async def member(ws: WebSocket) -> None:
            members.append(ws)
            joined.release()
            async for message in ws:
                assert isinstance(message, str)
                await ws.send(f"own {message}")  # the connection's own compressor, with context takeover

        app = App()
        app.websocket("/room", limits=fast())(member)
        async with running(app) as server, contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(ws_client(server, "/room", compression="deflate"))
                for _ in range(6)
            ] + [
                await stack.enter_async_context(
                    ws_client(server, "/room", compression=None, extensions=[NO_CONTEXT_TAKEOVER])
                )
                for _ in range(4)
            ]
            for _ in clients:
                await asyncio.wait_for(joined.acquire(), TIMEOUT)
            assert all(ws.protocol.extension is not None for ws in members)
            payload = "event " * 2000  # compressible, so a wrong context would show as garbage
            for turn in range(3):
                with count_compression(monkeypatch) as counts:
                    assert await broadcast(members, f"{turn} {payload}") == 10
                    assert await broadcast(members, f"{turn} {payload}".encode()) == 10
                # Once per message (both kinds of clients share the default window, level and memLevel).
                assert counts == {"shared": 2, "per_connection": 0}
                for client in clients:
                    assert await asyncio.wait_for(client.recv(), TIMEOUT) == f"{turn} {payload}"
                    assert await asyncio.wait_for(client.recv(), TIMEOUT) == f"{turn} {payload}".encode()
                    # The connection's compressor forgot its context: its next message still decodes.
                    await client.send(f"{turn} {payload}")
                    assert await asyncio.wait_for(client.recv(), TIMEOUT) == f"own {turn} {payload}"

    @pytest.mark.asyncio
    async def test_chat_fan_out_compresses_each_event_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        hub = Hub()
        subscribed = asyncio.Semaphore(0)

        async def chat(ws: WebSocket) -> None:
            subscribed.release()
            await chat_session(ws, hub, "room", None)

        app = App()
        app.websocket("/chat", limits=fast(ws_max_message_size=MiB))(chat)
        n_clients, n_events = 20, 10
        async with running(app) as server, contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    ws_client(server, "/chat", compression="deflate", max_size=None)
                )
                for _ in range(n_clients)
            ]
            for _ in clients:
                await asyncio.wait_for(subscribed.acquire(), TIMEOUT)
            await asyncio.sleep(0.05)  # let every session subscribe (chat_session runs after the accept)
            events = [f"{i} " + "x" * (64 * KiB) for i in range(n_events)]
            with count_compression(monkeypatch) as counts:
                for data in events:
                    hub.publish("room", data)
                for client in clients:
                    for i, data in enumerate(events, 1):
                        received = await asyncio.wait_for(client.recv(), TIMEOUT)
                        assert received == f'{{"channel":"room","id":{i},"data":"{data}"}}'
            # Once per event, not once per event and client (200).
            assert counts == {"shared": n_events, "per_connection": 0}
