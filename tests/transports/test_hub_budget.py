"""The hub's global history budget from the wire (issue 10, item 1): ``POST /publish`` to many channels of the
demo app, over a real loopback socket, keeps the server's memory within ``Limits.hub_total_history_bytes``
plus a constant, the answers for evicted cursors carry the reset signal, and the memory comes back.

The issue measured 64 channels x 16 events of 1 MB growing the server by about 2 GiB, and 100,000
one-event channels costing about 1.2 KiB each, never freed; here the same shapes, in small.
"""

from __future__ import annotations

import gc
import json
import tracemalloc

import pytest
from transport_helpers import TIMEOUT, Client, connect, demo, get, open_events, post

from rawrt.limits import KiB, Limits

BUDGET = 256 * KiB
#: What the process allocates besides the history while the test runs (the connection's buffers on both
#: sides, the route and response objects, tracemalloc's own frames): measured at 60 to 70 KiB.
SLACK = 192 * KiB
LIMITS = Limits(hub_total_history_bytes=BUDGET)
#: Requests written at once on the keep-alive connection (pipelined, RFC 9112 §9.3.2), then read back.
BATCH = 8


async def publish_all(conn: Client, posts: list[tuple[str, bytes]]) -> list[int]:
    """``POST /publish?channel=C`` each body, pipelined ``BATCH`` at a time; the ids, in order."""
    ids: list[int] = []
    for start in range(0, len(posts), BATCH):
        batch = posts[start : start + BATCH]
        await conn.send(b"".join(post(f"/publish?channel={channel}", body) for channel, body in batch))
        for _ in batch:
            response = await conn.read_response(method=b"POST")
            assert response.status == 200, (response.status, response.body)
            ids.append(json.loads(response.body)["id"])
    return ids


async def poll(conn: Client, target: str) -> dict[str, object]:
    await conn.send(get(target))
    response = await conn.read_response()
    assert response.status == 200, (response.status, response.body)
    value = json.loads(response.body)
    assert isinstance(value, dict)
    return value


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


class TestBudgetFromTheWire:
    @pytest.mark.asyncio
    async def test_large_events_on_many_channels(self) -> None:
        # 64 channels x 16 events of 16 KiB: 16 MiB published (32 MiB in memory as text and UTF-8 copy),
        # and the history stays within its 256 KiB budget.
        async with demo(LIMITS) as (server, app):
            conn = await connect(server)
            try:
                await publish_all(conn, [("warm-up", b"x" * 16 * KiB)] * BATCH)
                posts = [(f"c{c}", b"%04d" % i + b"x" * 16 * KiB) for i in range(16) for c in range(64)]
                tracemalloc.start()
                try:
                    before = traced()
                    ids = await publish_all(conn, posts)
                    held = traced() - before
                    peak = tracemalloc.get_traced_memory()[1] - before
                finally:
                    tracemalloc.stop()
                # Each channel's ids increase (they do not restart at 1 when an emptied channel is forgotten
                # and published on again: they continue from the hub's floor).
                for c in range(64):
                    assert ids[c::64] == sorted(set(ids[c::64]))
                assert held <= BUDGET + SLACK, f"{held / KiB:.0f} KiB held after 16 MiB published"
                assert app.hub.history_footprint <= BUDGET
                assert peak <= BUDGET + SLACK + 4 * 16 * KiB * BATCH, f"peak {peak / KiB:.0f} KiB"

                # The answers: a cursor whose events were evicted gets the reset signal, by poll and SSE.
                answer = await poll(conn, "/poll?channel=c0&since=1")
                assert answer["reset"] is True
                reader = await open_events(server, "/events?channel=c0", "Last-Event-ID: 1")
                try:
                    assert reader.head.status == 200
                    await reader.read_until(b"event: reset", TIMEOUT)
                finally:
                    await reader.conn.close()
                # One channel still kept answers from its history with no reset.
                newest = await poll(conn, f"/poll?channel=c63&since={ids[-1] - 1}")
                events = newest["events"]
                assert isinstance(events, list)
                assert "reset" not in newest and [e["id"] for e in events] == [ids[-1]]
            finally:
                await conn.close()

    @pytest.mark.asyncio
    async def test_one_event_channels_are_freed(self) -> None:
        # The 100,000 one-event channels, as 1,000: the channel table stays within the budget too.
        async with demo(LIMITS) as (server, app):
            conn = await connect(server)
            try:
                await publish_all(conn, [(f"warm-{i}", b"x") for i in range(BATCH)])
                tracemalloc.start()
                try:
                    before = traced()
                    await publish_all(conn, [(f"one-{i}", b"x") for i in range(1000)])
                    held = traced() - before
                    channels = len(app.hub._channels)

                    # And the memory comes back: an event of almost the budget evicts the one-event channels.
                    await publish_all(conn, [("big", b"x" * (BUDGET // 2 - 2 * KiB))])
                    after = traced() - before
                finally:
                    tracemalloc.stop()
                assert channels <= BUDGET // KiB, channels  # a retained channel costs more than 1 KiB
                assert held <= BUDGET + SLACK, f"{held / KiB:.0f} KiB held by 1,000 one-event channels"
                assert len(app.hub._channels) <= 3
                assert after <= BUDGET + SLACK, f"{after / KiB:.0f} KiB"
                # A client that had nothing of a forgotten channel is told it missed events.
                answer = await poll(conn, "/poll?channel=one-0&since=0")
                assert answer["reset"] is True and answer["events"] == []
            finally:
                await conn.close()
