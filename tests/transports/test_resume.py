"""Resumption across transports: nothing lost, nothing repeated, nothing reordered, nothing altered.

A publisher puts a numbered stream of events on one channel while clients of every HTTP transport (SSE over
raw sockets, the reconnecting ``rawrt.sse`` client, long polling, short polling) drop their connection at
random points, gracefully (FIN) or with a hard reset (SO_LINGER 0, then close: an RST), in the middle of a
replay, while held, or with a response half read, and resume from their cursor (``Last-Event-ID`` for SSE,
``since`` for polling). Every client must end with exactly the published sequence, byte for byte.

The WebSocket transport (``/ws/chat`` with ``since``) drops and resumes the same way, so all four
techniques are held to the same standard on the same hub and cursor.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from transport_helpers import TIMEOUT, Client, connect, demo, get, hard_reset, open_events, wait_until

from rawrt.demo import DemoApp
from rawrt.errors import ConnectionClosed
from rawrt.limits import Limits
from rawrt.server import Server
from rawrt.sse import connect as sse_connect
from rawrt.websocket import connect as ws_connect

COUNT = 300
CHANNEL = "resume"


def payload(i: int) -> str:
    # Multi-line (LF survives SSE as separate data lines), non-ASCII (UTF-8 across chunk cuts), JSON-hostile.
    return f'{i:03d} événement ✓ "quoted" \\ back\nsecond line {i}'


#: How often each kind of interruption happened in the current test (so a test that silently stopped
#: exercising them would fail).
STATS: Counter[str] = Counter()


async def drop(conn: Client, rng: random.Random) -> None:
    """End ``conn`` with a FIN or an RST, at random."""
    if rng.random() < 0.5:
        hard_reset(conn)
        STATS["rst"] += 1
    else:
        STATS["fin"] += 1
    await conn.close()


async def sse_client(server: Server, rng: random.Random) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    last = "0"
    while len(got) < COUNT:
        stream = await open_events(server, f"/events?channel={CHANNEL}", f"Last-Event-ID: {last}")
        budget = rng.randint(1, 60)  # events to take before dropping this connection
        try:
            while len(got) < COUNT and budget > 0:
                while not stream.ended and not stream.pending():
                    await stream.read_piece()
                if stream.ended and not stream.pending():
                    STATS["sse stream ended by server"] += 1
                    break  # the server ended the stream (overflow): resume like a browser would
                event = await stream.next_event()
                got.append((int(event.last_event_id), event.data.encode()))
                budget -= 1
            # Anything read past the last complete event is lost with the connection: the parser only
            # dispatches on the blank line, and the cursor is the id of the last *dispatched* event.
            if got:
                last = str(got[-1][0])
        finally:
            await drop(stream.conn, rng)
    return got


async def sse_library_client(server: Server, rng: random.Random) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    target = f"http://127.0.0.1:{server.port}/events?channel={CHANNEL}"
    async with sse_connect(target, last_event_id="0", reconnection_time=0.001) as source:
        async for message in source:
            got.append((int(message.last_event_id), message.data.encode()))
            if len(got) == COUNT:
                break
            if rng.random() < 0.05:
                source.drop(reset=rng.random() < 0.5)
                STATS["sse client dropped"] += 1
    return got


async def poll_client(server: Server, rng: random.Random, long: bool) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    cursor = 0
    conn = await connect(server)
    try:
        while len(got) < COUNT:
            path = "/longpoll" if long else "/poll"
            await conn.send(get(f"{path}?channel={CHANNEL}&since={cursor}&timeout=5"))
            roll = rng.random()
            if roll < 0.1:
                # Drop while held (or before the answer arrives): the cursor stays where it was.
                await asyncio.sleep(rng.random() * 0.01)
                await drop(conn, rng)
                STATS["poll dropped while held"] += 1
                conn = await connect(server)
                continue
            if roll < 0.2:
                # Drop with the answer half read: it was never received, so it does not count.
                await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                await drop(conn, rng)
                STATS["poll dropped with the answer half read"] += 1
                conn = await connect(server)
                continue
            response = await conn.read_response()
            assert response.status == 200, response
            body = json.loads(response.body)
            assert "reset" not in body
            for event in body["events"]:
                got.append((event["id"], event["data"].encode()))
            cursor = body["cursor"]
            if not long:
                await asyncio.sleep(0.002)
    finally:
        await conn.close()
    return got


async def ws_client(server: Server, rng: random.Random) -> list[tuple[int, bytes]]:
    """``/ws/chat`` with ``since``: take a random number of events, drop (close, or RST), resume."""
    got: list[tuple[int, bytes]] = []
    cursor = 0
    while len(got) < COUNT:
        uri = f"ws://127.0.0.1:{server.port}/ws/chat?channel={CHANNEL}&since={cursor}"
        ws = await asyncio.wait_for(
            ws_connect(uri, compression=rng.choice([None, "permessage-deflate"])), TIMEOUT
        )
        budget = rng.randint(1, 60)
        try:
            while len(got) < COUNT and budget > 0:
                event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert "reset" not in event, event
                got.append((event["id"], event["data"].encode()))
                cursor = event["id"]
                budget -= 1
        except ConnectionClosed as exc:
            assert exc.code == 1013, exc  # fell behind its queue: resume with since
            STATS["ws closed 1013"] += 1
        finally:
            sock = ws._transport.get_extra_info("socket")
            if ws.open and sock is not None and sock.fileno() >= 0 and rng.random() < 0.5:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:  # the server closed it between the check and now
                    pass
                ws.abort()  # an RST: no close handshake at all
                STATS["rst"] += 1
                STATS["ws dropped"] += 1
            else:
                await asyncio.wait_for(ws.close(), TIMEOUT)
                STATS["fin"] += 1
    return got


async def publisher(app: DemoApp, rng: random.Random) -> None:
    for i in range(1, COUNT + 1):
        app.hub.publish(CHANNEL, payload(i))
        if rng.random() < 0.3:
            await asyncio.sleep(rng.random() * 0.004)


ClientFn = Callable[[Server, random.Random], Awaitable[list[tuple[int, bytes]]]]

CLIENTS: dict[str, ClientFn] = {
    "sse-raw": sse_client,
    "sse-client": sse_library_client,
    "long-poll": lambda server, rng: poll_client(server, rng, long=True),
    "short-poll": lambda server, rng: poll_client(server, rng, long=False),
    "websocket": ws_client,
}


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_client_gets_every_event_exactly_once(seed: int) -> None:
    expected = [(i, payload(i).encode()) for i in range(1, COUNT + 1)]
    # A small live queue makes SSE subscribers overflow now and then too: one more way for a stream to end.
    STATS.clear()
    async with demo(Limits(hub_queue_size=64)) as (server, app):
        rng = random.Random(seed)
        names = [name for name in CLIENTS for _ in range(2)]
        tasks = [asyncio.ensure_future(CLIENTS[name](server, random.Random(rng.random()))) for name in names]
        await asyncio.sleep(0.01)  # let some connect before the first event, some after
        await publisher(app, random.Random(rng.random()))
        results = await asyncio.wait_for(asyncio.gather(*tasks), 20)
        for name, got in zip(names, results, strict=True):
            assert got == expected, name
        # Every dropped connection's subscription was freed (SSE streams and held long polls alike).
        await wait_until(lambda: app.hub.subscriber_count(CHANNEL) == 0, timeout=2.0)
    for kind in ("rst", "fin", "sse client dropped", "poll dropped while held", "ws dropped"):
        assert STATS[kind] > 0, (kind, STATS)
