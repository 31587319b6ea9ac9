"""Issue 11's acceptance runs: real ``rawrt demo`` processes on one Redis, a node killed with SIGKILL mid-run.

Three setups, one checker:

* **two nodes behind a round-robin TCP load balancer.** Every client has a balancer of its own (a few lines
  of asyncio, :class:`Balancer`) that sends each new connection to the node the previous one did not use, so
  *every* reconnect lands on the other node; node A is killed with ``SIGKILL`` while the SSE and WebSocket
  clients are streaming from it, then started again on a new port.
* **every node killed** with ``SIGKILL`` at once while Redis runs, and both started again;
* **``rawrt demo --workers 2``** on one port: the kernel spreads the connections (``SO_REUSEPORT``); one
  worker is killed with ``SIGKILL`` and the supervisor starts another.

One client per transport (SSE through :mod:`rawrt.sse.client`, long polling, short polling, ``/ws/chat``
through :mod:`rawrt.websocket.client`) reads a fresh channel from cursor 0 while a publisher sends 150
events, retrying whatever was not acknowledged (a 503, or a connection cut by the kill). The truth is the
Redis stream itself (``XRANGE``), read at the end: each client must have received exactly its ids, once
each and in order, with no reset signal.

And the memory hub's restart case (issue 11, "A restart can lose events without saying so"), also against
real processes: a cursor from an earlier run gets the reset signal, never the new run's events as if they
continued the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis_server import RedisServer

from rawrt.errors import ConnectionClosed
from rawrt.hub.ids import from_stream_id
from rawrt.sse.client import connect as sse_connect
from rawrt.websocket import connect as ws_connect

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15.0  # a cold interpreter with uvloop on a loaded 2-core machine
BANNER = re.compile(
    r"listening on http://127\.0\.0\.1:(\d+)/ \(loop: \w+\)(?:, \d+ workers \(pids ([\d, ]+)\))?"
)
EVENTS = 150
KILL_AT = 50
CHANNEL = "failover"


# --- real rawrt processes ------------------------------------------------------------------------------


@dataclass
class Node:
    process: asyncio.subprocess.Process
    port: int
    workers: list[int]


async def start_node(log: Path, *args: str) -> Node:
    """``python -m rawrt demo *args --port 0``; its port (and worker pids) from the banner."""
    with open(log, "ab") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rawrt",
            "demo",
            *args,
            "--port",
            "0",
            "--no-access-log",
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
    match = BANNER.search(line)
    if match is None:
        process.kill()
        await process.wait()
        pytest.fail(f"no banner: {line!r}; log: {log.read_text(errors='replace')[-2000:]}")
    pids = [int(p) for p in match[2].split(", ")] if match[2] else []
    return Node(process, int(match[1]), pids)


async def stop_node(node: Node) -> None:
    if node.process.returncode is None:
        node.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(node.process.wait(), TIMEOUT)
        except asyncio.TimeoutError:
            node.process.kill()
            await node.process.wait()
        assert node.process.returncode in (0, -signal.SIGKILL), node.process.returncode


# --- the load balancer ---------------------------------------------------------------------------------


@dataclass
class Balancer:
    """Round-robin TCP balancing over ``ports`` (a list the test edits when a node comes back elsewhere).

    Each new connection goes to the port after the one the previous connection used, skipping a port that
    refuses; bytes are copied both ways, and when either side ends, both are closed (so a killed node's
    clients see their connection end, as through a real balancer).
    """

    ports: list[int]
    turn: int = 0
    live: dict[int, int] = field(default_factory=dict)  # port -> connections open through it now
    used: list[tuple[int, bool]] = field(
        default_factory=list
    )  # each connection's port, and if it skipped one
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        skipped = False
        for _ in range(len(self.ports)):
            port = self.ports[self.turn % len(self.ports)]
            self.turn += 1
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
                break
            except (OSError, asyncio.TimeoutError):
                skipped = True
                continue
        if upstream is None:
            writer.close()
            return
        self.used.append((port, skipped))
        self.live[port] = self.live.get(port, 0) + 1
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            self.live[port] -= 1
            for w in (writer, up_writer):
                w.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        # One side ended: end the other, whichever way round (a node's RST, or the client leaving).
        writer.close()


# --- the clients ---------------------------------------------------------------------------------------


@dataclass
class Received:
    ids: list[int] = field(default_factory=list)
    resets: int = 0
    connections: int = 0
    notes: list[str] = field(default_factory=list)  # what the resets came with, for a failure message


async def http_get(port: int, target: str) -> tuple[int, bytes]:
    """One request on a new connection (``Connection: close``); the status and the body."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"no response: {data[:80]!r}")
    return int(head[9:12]), body


async def poll_client(port: int, got: Received, done: Callable[[int], bool], *, long: bool) -> None:
    cursor = 0
    while not done(cursor):
        target = (
            f"/longpoll?channel={CHANNEL}&since={cursor}&timeout=1"
            if long
            else (f"/poll?channel={CHANNEL}&since={cursor}")
        )
        try:
            status, body = await http_get(port, target)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.05)
            continue
        got.connections += 1
        if status != 200:  # 503 while the node's Redis connection is not up yet
            await asyncio.sleep(0.05)
            continue
        answer = json.loads(body)
        if answer.get("reset"):
            got.resets += 1
            got.notes.append(f"since={cursor} -> {body[:300]!r}")
        got.ids.extend(event["id"] for event in answer["events"])
        cursor = answer["cursor"]
        if not long:
            await asyncio.sleep(0.05)


async def sse_client(port: int, got: Received, done: Callable[[int], bool]) -> None:
    source = sse_connect(
        f"http://127.0.0.1:{port}/events?channel={CHANNEL}",
        last_event_id="0",
        reconnection_time=0.05,
        max_reconnect_delay=0.2,
        max_retries=None,
        read_timeout=5,
    )
    async with source:
        async for message in source:
            if message.type == "reset":
                got.resets += 1
                continue
            got.ids.append(int(message.last_event_id))
            got.connections = source.connections
            if done(got.ids[-1]):
                return


async def ws_client(port: int, got: Received, done: Callable[[int], bool]) -> None:
    cursor = 0
    while not done(cursor):
        try:
            ws = await asyncio.wait_for(
                ws_connect(f"ws://127.0.0.1:{port}/ws/chat?channel={CHANNEL}&since={cursor}"), TIMEOUT
            )
        except (ConnectionError, OSError, asyncio.TimeoutError, ConnectionClosed, Exception):
            await asyncio.sleep(0.05)
            continue
        got.connections += 1
        try:
            async for message in ws:
                value = json.loads(message)
                if value.get("reset"):
                    got.resets += 1
                    continue
                got.ids.append(value["id"])
                cursor = value["id"]
                if done(cursor):
                    break
        except (ConnectionClosed, ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)


async def publisher(port: int, acknowledged: list[int], kill: Callable[[], Any]) -> None:
    """Publish EVENTS events; whatever was not acknowledged is sent again (a retry may store it twice: the
    truth is the stream, not this list)."""
    i = 0
    while i < EVENTS:
        if i == KILL_AT:
            await kill()
        reader = writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
            body = f"event {i}".encode()
            writer.write(
                b"POST /publish?channel=" + CHANNEL.encode() + b" HTTP/1.1\r\nHost: test\r\n"
                b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            data = b""
        finally:
            if writer is not None:
                writer.close()
        if data.startswith(b"HTTP/1.1 200"):
            acknowledged.append(json.loads(data.partition(b"\r\n\r\n")[2])["id"])
            i += 1
            await asyncio.sleep(0.01)
        else:
            await asyncio.sleep(0.05)


async def stream_ids(url: str) -> list[int]:
    client = Redis.from_url(url)
    try:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await client.xrange(f"rawrt:{{{CHANNEL}}}"))
    finally:
        await client.aclose()
    ids = [from_stream_id(entry_id) for entry_id, _ in entries]
    assert all(i is not None for i in ids)
    return cast("list[int]", ids)


async def run_clients(
    ports: Callable[[str], int], kill: Callable[[], Any], redis_url: str
) -> tuple[dict[str, Received], list[int], list[int]]:
    """The four clients and the publisher; ``ports(name)``: where that client connects."""
    final: list[int] = []

    def done(cursor: int) -> bool:
        return bool(final) and cursor >= final[0]

    got = {name: Received() for name in ("sse", "longpoll", "poll", "ws")}
    clients = [
        asyncio.ensure_future(sse_client(ports("sse"), got["sse"], done)),
        asyncio.ensure_future(poll_client(ports("longpoll"), got["longpoll"], done, long=True)),
        asyncio.ensure_future(poll_client(ports("poll"), got["poll"], done, long=False)),
        asyncio.ensure_future(ws_client(ports("ws"), got["ws"], done)),
    ]
    acknowledged: list[int] = []
    try:
        await asyncio.wait_for(publisher(ports("publisher"), acknowledged, kill), 60)
        truth = await stream_ids(redis_url)
        final.append(truth[-1])
        # The streaming clients wait for their next event, so the test, not they, sees them finish.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not all(r.ids and r.ids[-1] >= truth[-1] for r in got.values()):
            for task in clients:
                if task.done():
                    task.result()  # a client that failed: its exception
            if loop.time() > deadline:
                state = {n: (len(r.ids), r.ids[-1:], r.connections, r.resets) for n, r in got.items()}
                pytest.fail(f"clients did not catch up with {len(truth)} events ending {truth[-1]}: {state}")
            await asyncio.sleep(0.02)
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    return got, truth, acknowledged


def check(got: dict[str, Received], truth: list[int], acknowledged: list[int]) -> None:
    assert set(acknowledged) <= set(truth)  # every acknowledged event is in the stream
    assert len(truth) >= EVENTS
    for name, received in got.items():
        # Exactly once, in order, nothing missing, and no reset (the history was never trimmed).
        assert received.resets == 0, (name, received.notes, truth[:3])
        assert received.ids == truth, (name, len(received.ids), len(truth))


# --- the runs ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_two_nodes_behind_a_balancer_one_killed_and_restarted(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    hub = ("--hub", redis_server.url)
    a = await start_node(tmp_path / "a.log", *hub)
    b = await start_node(tmp_path / "b.log", *hub)
    nodes = [a, b]
    ports = [a.port, b.port]
    balancers = {name: Balancer(ports) for name in ("sse", "longpoll", "poll", "ws", "publisher")}
    streaming_on_a: list[int] = []
    try:
        for balancer in balancers.values():
            await balancer.start()

        async def kill() -> None:
            # The SSE and WebSocket clients' first connections went to node A (the balancers start there).
            streaming_on_a.append(sum(bal.live.get(a.port, 0) for bal in balancers.values()))
            a.process.send_signal(signal.SIGKILL)
            await a.process.wait()
            await asyncio.sleep(0.3)
            restarted = await start_node(tmp_path / "a2.log", *hub)
            nodes.append(restarted)
            ports[0] = restarted.port  # the balancers share this list

        got, truth, acknowledged = await run_clients(lambda n: balancers[n].port, kill, redis_server.url)
        check(got, truth, acknowledged)
        assert streaming_on_a[0] >= 2  # at least the SSE and WebSocket streams were cut by the kill
        for name in ("sse", "ws", "longpoll", "poll"):
            used = balancers[name].used
            # Every reconnect went to the other node (the balancer alternates), through the restart too,
            # except while node A was down and refused.
            assert all(x != y or skipped for (x, _), (y, skipped) in zip(used, used[1:], strict=False)), (
                name,
                used,
            )
            assert len(used) >= 2, name
        assert got["sse"].connections >= 2 and got["ws"].connections >= 2
    finally:
        for balancer in balancers.values():
            await balancer.close()
        for node in nodes:
            await stop_node(node)


@pytest.mark.asyncio
async def test_every_node_killed_and_restarted_while_redis_runs(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 11: "all nodes restarted while Redis keeps running: clients resume exactly"."""
    hub = ("--hub", redis_server.url)
    nodes = [await start_node(tmp_path / f"{n}.log", *hub) for n in ("a", "b")]
    ports = [node.port for node in nodes]
    balancers = {name: Balancer(ports) for name in ("sse", "longpoll", "poll", "ws", "publisher")}
    try:
        for balancer in balancers.values():
            await balancer.start()

        async def kill() -> None:
            for node in nodes:
                node.process.send_signal(signal.SIGKILL)
                await node.process.wait()
            await asyncio.sleep(0.3)  # nothing answers: every client and the publisher retry meanwhile
            for i in range(2):
                restarted = await start_node(tmp_path / f"restarted-{i}.log", *hub)
                nodes.append(restarted)
                ports[i] = restarted.port

        got, truth, acknowledged = await run_clients(lambda n: balancers[n].port, kill, redis_server.url)
        check(got, truth, acknowledged)
        assert got["sse"].connections >= 2 and got["ws"].connections >= 2
    finally:
        for balancer in balancers.values():
            await balancer.close()
        for node in nodes:
            await stop_node(node)


@pytest.mark.asyncio
async def test_two_workers_on_one_port_one_killed(redis_server: RedisServer, tmp_path: Path) -> None:
    node = await start_node(tmp_path / "workers.log", "--hub", redis_server.url, "--workers", "2")
    assert len(node.workers) == 2
    killed: list[int] = []
    try:

        async def kill() -> None:
            pid = node.workers[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            await asyncio.sleep(0.3)

        got, truth, acknowledged = await run_clients(lambda _: node.port, kill, redis_server.url)
        check(got, truth, acknowledged)
        log = (tmp_path / "workers.log").read_text()
        assert f"worker 1 (pid {killed[0]}) died (killed by SIGKILL); restarting it" in log
    finally:
        await stop_node(node)
        assert node.process.returncode == 0


@pytest.mark.asyncio
async def test_memory_hub_restart_gives_an_earlier_cursor_the_reset_signal(tmp_path: Path) -> None:
    """Issue 11: publish 5, restart, publish 10, then GET /poll?since=<5th id> (and since=5, the old ids)."""

    async def publish(port: int, count: int) -> list[int]:
        ids = []
        for i in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /publish?channel=r HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                b"Content-Length: 1\r\n\r\n" + str(i % 10).encode()
            )
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            ids.append(json.loads(data.partition(b"\r\n\r\n")[2])["id"])
        return ids

    first = await start_node(tmp_path / "1.log")
    try:
        old = await publish(first.port, 5)
    finally:
        await stop_node(first)
    second = await start_node(tmp_path / "2.log")
    try:
        new = await publish(second.port, 10)
        assert min(new) > max(old)  # never an id an earlier run handed out
        for since in (old[-1], 5):
            status, body = await http_get(second.port, f"/poll?channel=r&since={since}")
            answer = json.loads(body)
            assert status == 200
            assert answer.get("reset") is True, since
            assert [e["id"] for e in answer["events"]] == new  # the replay from the oldest retained
    finally:
        await stop_node(second)
