"""``/ws/chat``: the hub's WebSocket transport in the demo's endpoint contract (docs/demo.md).

Replay after ``since`` then live, text published on the channel, the contract's 400s before any 101, close
1003 for a binary message, close 1013 for a subscriber that fell behind (resumable with ``since``), and an
explicit ``{"reset": true}`` message for a cursor the history cannot honour.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from transport_helpers import TIMEOUT, demo, exchange, get, wait_until

from rawrt.errors import ConnectionClosed, HandshakeError
from rawrt.limits import Limits
from rawrt.server import Server
from rawrt.websocket import WebSocket, connect


async def chat(server: Server, query: str) -> WebSocket:
    return await asyncio.wait_for(connect(f"ws://127.0.0.1:{server.port}/ws/chat?{query}"), TIMEOUT)


async def recv_json(ws: WebSocket) -> dict[str, object]:
    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(message, str)
    value = json.loads(message)
    assert isinstance(value, dict)
    return value


class TestContract:
    """docs/demo.md, ``GET /ws/chat?channel=C&since=N``."""

    @pytest.mark.asyncio
    async def test_replay_after_since_then_live_then_publish(self) -> None:
        async with demo() as (server, app):
            for text in ("one", "two", "three"):
                app.hub.publish("room", text)
            ws = await chat(server, "channel=room&since=1")
            try:
                assert await recv_json(ws) == {"channel": "room", "id": 2, "data": "two"}
                assert await recv_json(ws) == {"channel": "room", "id": 3, "data": "three"}
                app.hub.publish("room", "live ✓")
                assert await recv_json(ws) == {"channel": "room", "id": 4, "data": "live ✓"}
                await ws.send("from the socket")
                # Published on the channel: this client sees it too, and so does every other transport.
                assert await recv_json(ws) == {"channel": "room", "id": 5, "data": "from the socket"}
                assert app.hub.since("room", 4).events[0].data == "from the socket"
            finally:
                await ws.close()

    @pytest.mark.asyncio
    async def test_without_since_live_only_and_default_channel(self) -> None:
        async with demo() as (server, app):
            app.hub.publish("default", "before")
            ws = await chat(server, "")
            try:
                await wait_until(lambda: app.hub.subscriber_count("default") == 1)
                app.hub.publish("default", "after")
                assert await recv_json(ws) == {"channel": "default", "id": 2, "data": "after"}
            finally:
                await ws.close()
            await wait_until(lambda: app.hub.subscriber_count("default") == 0)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("query", ["channel=bad%20name", "channel=" + "x" * 65, "since=-1", "since=abc"])
    async def test_bad_parameters_get_400_before_any_upgrade(self, query: str) -> None:
        async with demo() as (server, _):
            with pytest.raises(HandshakeError, match="400"):
                await chat(server, query)
            raw = get(
                f"/ws/chat?{query}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version: 13",
            )
            response = await exchange(server, raw)
            assert response.status == 400 and response.header(b"sec-websocket-accept") is None

    @pytest.mark.asyncio
    async def test_binary_message_closes_1003(self) -> None:
        async with demo() as (server, app):
            ws = await chat(server, "channel=bin")
            await ws.send(b"\x00\x01")
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.code == 1003
            assert app.hub.last_id("bin") == 0  # nothing was published
            await wait_until(lambda: app.hub.subscriber_count("bin") == 0)

    @pytest.mark.asyncio
    async def test_slow_subscriber_closes_1013_and_resumes_with_since(self) -> None:
        async with demo(Limits(hub_queue_size=4)) as (server, app):
            ws = await chat(server, "channel=slow&since=0")
            await wait_until(lambda: app.hub.subscriber_count("slow") == 1)
            for i in range(1, 21):  # a burst larger than the queue, published before the pump runs
                app.hub.publish("slow", f"e{i}")
            got: list[int] = []
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    got.append(int(str((await recv_json(ws))["id"])))
            assert info.value.code == 1013 and "since=" in info.value.reason
            cursor = int(info.value.reason.rsplit("since=", 1)[1])
            assert got == list(range(1, cursor + 1))
            ws = await chat(server, f"channel=slow&since={cursor}")
            try:
                for expected in range(cursor + 1, 21):
                    assert (await recv_json(ws))["id"] == expected
            finally:
                await ws.close()

    @pytest.mark.asyncio
    async def test_cursor_the_history_cannot_honour_gets_a_reset_message(self) -> None:
        async with demo(Limits(hub_history_count=3)) as (server, app):
            for i in range(10):
                app.hub.publish("old", f"e{i + 1}")
            ws = await chat(server, "channel=old&since=2")
            try:
                assert await recv_json(ws) == {"reset": True, "cursor": 7}
                assert [(await recv_json(ws))["id"] for _ in range(3)] == [8, 9, 10]
            finally:
                await ws.close()
