"""The Redis hub (rawrt.hub.backends.redis) against a real ``redis-server``: two demo nodes share one Redis.

Cross-node delivery on all four transports, resuming on the other node (including a cursor this node has
not read yet), ids that are the stream's entry ids, a Redis that lost its data (every older cursor gets
the reset signal), a Redis that goes away and comes back with its data (503 while away, the outage logged
once, subscribers stay and get everything acknowledged), and a channel nobody reads any more is let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis
from redis_server import RedisServer
from transport_helpers import (
    TIMEOUT,
    EventStreamReader,
    demo,
    exchange,
    get,
    open_events,
    poll_json,
    post,
    publish,
    wait_until,
)

from rawrt.demo import DemoApp
from rawrt.errors import ConnectionClosed
from rawrt.hub.backends import open_backend
from rawrt.hub.backends.redis import RedisBackend
from rawrt.hub.ids import from_stream_id
from rawrt.limits import Limits
from rawrt.server import Server
from rawrt.websocket import WebSocket, connect


@contextlib.asynccontextmanager
async def nodes(url: str, count: int = 2) -> AsyncIterator[list[tuple[Server, DemoApp]]]:
    """``count`` demo servers on one Redis (in this process: each its own backend, connections, loop task)."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(demo(Limits(), hub=url)) for _ in range(count)]


async def chat(server: Server, query: str) -> WebSocket:
    return await asyncio.wait_for(connect(f"ws://127.0.0.1:{server.port}/ws/chat?{query}"), TIMEOUT)


async def recv_json(ws: WebSocket) -> dict[str, object]:
    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(message, str)
    value = json.loads(message)
    assert isinstance(value, dict)
    return value


async def sse_data(reader: EventStreamReader, count: int) -> list[tuple[str, str]]:
    return [(e.last_event_id, e.data) for e in await reader.events(count)]


@pytest.mark.asyncio
async def test_publish_answers_the_stream_entry_id(redis_server: RedisServer) -> None:
    async with nodes(redis_server.url, 1) as [(a, _)]:
        first = await publish(a, "one", "c")
        second = await publish(a, "two", "c")
        assert second > first > 2**50
    client = Redis.from_url(redis_server.url)
    try:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await client.xrange("rawrt:{c}"))
        assert [(from_stream_id(i), f[b"d"]) for i, f in entries] == [(first, b"one"), (second, b"two")]
        stored = cast(bytes, await client.get("rawrt:{c}:origin"))
        origin = from_stream_id(stored)
        assert origin is not None and origin < first
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_all_four_transports_across_nodes(redis_server: RedisServer) -> None:
    """Published on node A, received on node B by SSE, long polling, short polling and /ws/chat; a chat
    message sent to B reaches A's subscribers too. One id sequence everywhere."""
    async with nodes(redis_server.url) as [(a, _), (b, _)]:
        sse = await open_events(b, "/events?channel=x")
        ws = await chat(b, "channel=x")
        held = asyncio.ensure_future(poll_json(b, "/longpoll?channel=x&since=0&timeout=10"))
        a_sse = await open_events(a, "/events?channel=x")
        try:
            await sse.read_until(b"id: ")  # the stream's first, id-only, event: subscribed
            await asyncio.sleep(0.2)  # the long poll is held on B
            sent = [await publish(a, f"event {i}", "x") for i in range(3)]
            assert sent == sorted(sent)
            assert await sse_data(sse, 3) == [(str(i), f"event {n}") for n, i in enumerate(sent)]
            assert [await recv_json(ws) for _ in range(3)] == [
                {"channel": "x", "id": i, "data": f"event {n}"} for n, i in enumerate(sent)
            ]
            _, answer = await asyncio.wait_for(held, TIMEOUT)
            assert [e["id"] for e in answer["events"]] == sent[: len(answer["events"])]
            assert answer["events"] and "reset" not in answer
            _, polled = await poll_json(b, "/poll?channel=x&since=0")
            assert [e["id"] for e in polled["events"]] == sent and "reset" not in polled

            await ws.send("from B's socket")
            chat_event = await recv_json(ws)
            assert chat_event["data"] == "from B's socket"
            assert isinstance(chat_event["id"], int) and chat_event["id"] > sent[-1]
            got_on_a = [(e.last_event_id, e.data) for e in await a_sse.events(4)]
            assert got_on_a[-1] == (str(chat_event["id"]), "from B's socket")
        finally:
            await ws.close()
            await sse.conn.close()
            await a_sse.conn.close()


@pytest.mark.asyncio
async def test_resume_on_the_other_node(redis_server: RedisServer) -> None:
    """A cursor from node A is honoured on node B, exactly, on every transport: also a cursor A has just
    handed out and B's loop has not read yet (B catches up rather than calling it a cursor from the
    future)."""
    async with nodes(redis_server.url) as [(a, _), (b, app_b)]:
        ids = [await publish(a, f"e{i}", "r") for i in range(5)]
        _, first = await poll_json(b, f"/poll?channel=r&since={ids[1]}")
        assert [e["id"] for e in first["events"]] == ids[2:] and "reset" not in first
        for _ in range(20):
            fresh = await publish(a, "fresh", "r")
            for target in (f"/poll?channel=r&since={fresh}", f"/longpoll?channel=r&since={fresh}&timeout=0"):
                _, answer = await poll_json(b, target)
                assert answer == {"cursor": fresh, "events": []}, (target, answer)
        reader = await open_events(b, "/events?channel=r", f"Last-Event-ID: {ids[2]}")
        ws = await chat(b, f"channel=r&since={ids[3]}")
        try:
            got = await sse_data(reader, 3)
            assert [int(i) for i, _ in got] == [ids[3], ids[4], app_b.hub.since("r", ids[4]).events[0].id]
            assert (await recv_json(ws))["id"] == ids[4]
        finally:
            await ws.close()
            await reader.conn.close()


@pytest.mark.asyncio
async def test_redis_that_lost_its_data_gives_every_older_cursor_a_reset(redis_server: RedisServer) -> None:
    """Redis without persistence restarts: the stream starts again at a later origin, so a cursor from
    before is never taken for a position in the new stream, on a node that followed the channel all along
    or on one that never saw it."""
    async with nodes(redis_server.url) as [(a, _), (b, _)]:
        old = [await publish(a, f"old {i}", "lost") for i in range(3)]
        _, seen = await poll_json(b, "/poll?channel=lost&since=0")  # B follows the channel
        assert [e["id"] for e in seen["events"]] == old
        redis_server.stop()
        redis_server.start()
        new = await asyncio.wait_for(_publish_when_back(a, "lost"), TIMEOUT)
        assert new > old[-1]
        for node in (a, b):
            # B may still be reconnecting to Redis (backoff), answering from its copy of the old stream:
            # old events then, but never the new one without the reset signal.
            while True:
                _, answer = await poll_json(node, f"/poll?channel=lost&since={old[1]}")
                if new in [e["id"] for e in answer["events"]]:
                    break
                assert [e["id"] for e in answer["events"]] == old[2:], answer
                await asyncio.sleep(0.05)
            assert answer["reset"] is True, answer
            assert [e["id"] for e in answer["events"]] == [new]
        async with nodes(redis_server.url, 1) as [(c, _)]:
            _, answer = await poll_json(c, f"/poll?channel=lost&since={old[-1]}")
            assert answer["reset"] is True and [e["id"] for e in answer["events"]] == [new]


async def _publish_when_back(server: Server, channel: str) -> int:
    while True:
        response = await exchange(server, post(f"/publish?channel={channel}", b"after"))
        if response.status == 200:
            value = json.loads(response.body)
            assert isinstance(value["id"], int)
            return value["id"]
        assert response.status == 503
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_outage_503_logged_once_and_subscribers_get_everything_acknowledged(
    persistent_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rawrt.hub")
    async with nodes(persistent_redis.url) as [(a, _), (b, _)]:
        reader = await open_events(b, "/events?channel=o")
        # since=0: from the channel's start, so the replay covers "before" however late the chat handler
        # subscribes after its handshake (a live-only chat could miss it on a loaded machine).
        ws = await chat(b, "channel=o&since=0")
        try:
            await reader.read_until(b"id: ")
            before = await publish(a, "before", "o")
            persistent_redis.stop()
            for _ in range(5):
                response = await exchange(a, post("/publish?channel=o", b"during"))
                assert response.status == 503, response
                assert b"unreachable" in response.body and b"not acknowledged" in response.body
                assert response.header(b"retry-after") == b"1"
            response = await exchange(b, get("/poll?channel=never-seen&since=0"))
            assert response.status == 503
            assert (
                response.body.startswith(b"the hub's Redis is unreachable (")
                and b"try again" in response.body
            )
            # An EventSource would give up for good on a 503 (WHATWG §9.2.3): it gets a stream that only
            # sets its reconnection time and ends, so it comes back in 1 s with its Last-Event-ID.
            response = await exchange(b, get("/events?channel=never-seen", "Last-Event-ID: 5"))
            assert response.status == 200
            assert response.header(b"content-type") == b"text/event-stream; charset=utf-8"
            assert response.body.startswith(b": the hub's Redis is unreachable (")
            assert response.body.endswith(b")\nretry: 1000\n\n") and b"id:" not in response.body
            persistent_redis.start()
            after = await asyncio.wait_for(_publish_when_back(a, "o"), TIMEOUT)
            # The subscribers stayed connected, and get both acknowledged events once, in order.
            assert [int(i) for i, _ in await sse_data(reader, 2)] == [before, after]
            assert [(await recv_json(ws))["id"] for _ in range(2)] == [before, after]
        finally:
            await ws.close()
            await reader.conn.close()
    outages = [r for r in caplog.records if "unreachable" in r.getMessage()]
    backs = [r for r in caplog.records if "is back" in r.getMessage()]
    # Once per node (two nodes, each with its own backend), however many requests failed meanwhile.
    assert 1 <= len(outages) <= 2 and 1 <= len(backs) <= 2, [r.getMessage() for r in caplog.records]


@pytest.mark.asyncio
async def test_publish_when_redis_never_started_is_503_not_an_id() -> None:
    async with demo(Limits(), hub="redis://127.0.0.1:1/0") as (server, _):
        response = await exchange(server, post("/publish?channel=z", b"x"))
        assert response.status == 503 and b"not acknowledged" in response.body
        ws = await chat(server, "channel=z")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1013


@pytest.mark.asyncio
async def test_one_read_loop_per_node_and_channels_let_go(redis_server: RedisServer) -> None:
    """100 subscribers on one node cost one XREAD per batch, not one per client; a channel with nobody
    left is dropped by the sweep."""
    async with nodes(redis_server.url) as [(a, _), (b, app_b)]:
        backend = app_b.backend
        assert isinstance(backend, RedisBackend)
        readers = [await open_events(b, "/events?channel=many") for _ in range(100)]
        try:
            for r in readers:
                await r.read_until(b"id: ")
            reads_before = backend.commands.get("XREAD", 0)
            for i in range(10):
                await publish(a, f"m{i}", "many")
            for r in readers:
                assert [d for _, d in await sse_data(r, 10)] == [f"m{i}" for i in range(10)]
            reads = backend.commands.get("XREAD", 0) - reads_before
            assert reads <= 12, reads  # one per batch (each publish may be its own batch), not 100 per event
        finally:
            for r in readers:
                await r.conn.close()
        await wait_until(lambda: app_b.hub.subscriber_count("many") == 0)


@pytest.mark.asyncio
async def test_open_backend_picks_by_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_backend("memory").url == "memory"
    backend = open_backend("redis://user:secret@127.0.0.1:1/0")
    assert isinstance(backend, RedisBackend) and "secret" not in backend.url
    monkeypatch.setenv("RAWRT_HUB", "redis://127.0.0.1:1/2")
    assert isinstance(open_backend(), RedisBackend)
    with pytest.raises(ValueError, match="--hub must be"):
        open_backend("postgres://x")
