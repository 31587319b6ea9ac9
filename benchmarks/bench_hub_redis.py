"""A hub shared through Redis: 1,000 SSE clients on two rawrt nodes, against one node and python-socketio.

Three configurations run side by side in one run, every client connected for the whole of it:

* **rawrt-memory**: one rawrt demo node (``demo_server.py --hub memory``), all ``--clients`` (1,000) SSE
  clients on it;
* **rawrt-redis**: two demo nodes sharing one Redis (``--hub redis://127.0.0.1:P/0``), half of the clients
  on each; the publisher posts to the first. ``POST /publish`` is an ``XADD``; each node reads the stream
  with its one ``XREAD BLOCK`` loop and fans the event out to its own clients (the publisher's node too:
  its clients get the event from Redis like the other node's);
* **socketio-redis**: the named peer, two python-socketio nodes (``socketio_peer.py``: ``AsyncServer`` on
  aiohttp with an ``AsyncRedisManager``) sharing another Redis, half of the clients on each, a broadcast
  ``emit`` from the first received by all. python-socketio sends to the emitting node's clients first, then
  ``PUBLISH``es for the other nodes.

Every server process and both Redis servers (``redis-server --save '' --appendonly no``, one per cluster,
so that each one's ``INFO`` counts one cluster alone) are pinned to core 0; this process, on uvloop, pinned
to core 1, holds every client and the publisher. The configurations take turns: in each of ``--rounds``
(8) rounds, in rotated order, each gets

1. a *paced slice*: ``--seconds`` (3 s) of one event every ``--interval-ms`` (100 ms), i.e. 10,000
   deliveries/s, whose data is the publisher's ``time.monotonic()``: every client computes each event's
   publish-to-receive latency (the POST included). p50 / p99 over every (client, event) of the slice, and
   per node (where the time goes: the publisher's node against the other); the POST's own round trip;
2. a *burst*: ``--burst`` (100) events posted back to back (each POST awaited), and the time from the first
   POST to the last client's last event: delivered events/s at saturation.

Redis is measured from Redis itself: ``INFO commandstats`` (calls and microseconds per command, the
benchmark's own ``INFO`` calls left out), ``INFO stats`` (bytes in and out) and ``INFO cpu``, as deltas over
each paced slice, divided by the events published and by the events delivered. Server CPU
(``/proc/PID/stat``): the nodes and their Redis, per delivered event.

Clients are raw asyncio protocols (``transport_clients.py``): rawrt's SSE client, and for Socket.IO a raw
WebSocket speaking the Engine.IO 4 / Socket.IO 5 text protocol (``GET /socket.io/?EIO=4&transport=websocket``,
``40`` to join the namespace, ``42["e", data]`` events, ``3`` to each ``2`` ping), as cheap as the SSE one:
python-socketio's own ``AsyncClient`` costs several times more per client and would make the load generator,
not the servers, the bottleneck. Event ids: rawrt's are stream positions (large, increasing, not
contiguous); Socket.IO has none, so its client keys each event by its data (the publish time, unique and
increasing). A key not above the client's last is a duplicate or out of order; lost = expected - delivered.
Usage::

    python benchmarks/bench_hub_redis.py [--clients 1000] [--interval-ms 100] [--seconds 3] [--rounds 8]
        [--burst 100] [--write]

``--write`` puts the figures into docs/benchmarks.md (section ``hub-redis``). Issue 11's aim: rawrt-redis
below 1.5x rawrt-memory's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import CLIENT_CPU, free_port, machine, median, start_server, stop, write_section
from transport_clients import (
    Client,
    ClientFactory,
    Publisher,
    SSEClient,
    Tally,
    cpu_seconds,
    open_clients,
    percentile,
    request,
)

HERE = Path(__file__).resolve().parent
CONFIGS = ("rawrt-memory", "rawrt-redis", "socketio-redis")
CHANNEL = "fanout"
#: The aim of issue 11: sharing through Redis costs less than this times the single node's latency.
AIM = 1.5


# ------------------------------------------------------------------------------------------- clients


class HubSSEClient(SSEClient):
    """rawrt's SSE client, with ids that increase but are not contiguous (stream positions, not 1, 2, 3)."""

    def record(self, event_id: int, data: str | bytes) -> None:
        record(self, event_id, data)


def record(client: Client, key: int, data: str | bytes) -> None:
    """One event arrived at ``client.now``; ``key`` must be above the client's last one."""
    tally = client.tally
    tally.latencies.append(client.now - float(data))
    if key <= client.last_id:
        tally.duplicates += 1
        return
    client.last_id = key
    tally.delivered += 1


class SocketIOClient(Client):
    """One Socket.IO client over a raw WebSocket (module docstring); ready once the namespace is joined."""

    def __init__(self, tally: Tally, port: int) -> None:
        super().__init__(tally)
        self.port = port
        self.upgraded = False
        self.head = bytearray()
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.tally.requests += 1
        self.send(
            request(
                "GET",
                "/socket.io/?EIO=4&transport=websocket",
                self.port,
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            )
        )

    def feed(self, data: bytes) -> None:
        buf = self.buf
        if not self.upgraded:
            head = self.head
            head += data
            i = head.find(b"\r\n\r\n")
            if i < 0:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.fail(f"socket.io: {bytes(head[:60])!r}")
                return
            self.upgraded = True
            buf += head[i + 4 :]
            head.clear()
        else:
            buf += data
        pos, size = 0, len(buf)
        # Server frames are unmasked (RFC 6455 §5.1); Engine.IO sends one packet per text frame.
        while size - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            if size - pos < header + length:
                break
            payload = bytes(buf[pos + header : pos + header + length])
            pos += header + length
            if opcode == 1:
                self.packet(payload)
            elif opcode == 9:
                self.send_frame(0xA, payload)
            elif opcode == 8:
                self.fail("socket.io: the server closed the WebSocket")
        if pos:
            del buf[:pos]

    def packet(self, text: bytes) -> None:
        """One Engine.IO packet: its type is the first character, a Socket.IO packet type the second."""
        if text.startswith(b"42"):  # MESSAGE + EVENT: ["e", data]
            event = json.loads(text[2:])
            data = event[1]
            # The publish time in microseconds: unique and increasing, the event's key.
            record(self, round(float(data) * 1e6), data)
        elif text == b"2":  # PING (Engine.IO 4: the server pings, the client answers)
            self.send_frame(0x1, b"3")
        elif text.startswith(b"0"):  # OPEN: join the default namespace
            self.send_frame(0x1, b"40")
        elif text.startswith(b"40"):  # CONNECT acknowledged: the client now receives broadcasts
            if not self.connected.done():
                self.connected.set_result(None)
        elif text.startswith(b"44") or text.startswith(b"1"):  # CONNECT_ERROR, or CLOSE
            self.fail(f"socket.io: {text[:60]!r}")

    def fail(self, why: str) -> None:
        self.tally.errors.append(why)
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(why))
        self.close()

    def send_frame(self, opcode: int, payload: bytes) -> None:
        # Client frames must be masked (RFC 6455 §5.3); a zero key leaves the payload as it is. Every
        # payload sent here is under 126 bytes.
        self.send(bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)


# ------------------------------------------------------------------------------------------- Redis


@dataclass(frozen=True)
class RedisStats:
    """A snapshot of one Redis server's counters."""

    calls: dict[str, int]
    usec: dict[str, int]
    bytes_in: int
    bytes_out: int
    cpu: float

    def minus(self, before: RedisStats) -> RedisStats:
        names = self.calls.keys() | before.calls.keys()
        calls = {n: self.calls.get(n, 0) - before.calls.get(n, 0) for n in names}
        usec = {n: self.usec.get(n, 0) - before.usec.get(n, 0) for n in names}
        return RedisStats(
            {n: c for n, c in calls.items() if c},
            {n: u for n, u in usec.items() if calls[n]},
            self.bytes_in - before.bytes_in,
            self.bytes_out - before.bytes_out,
            self.cpu - before.cpu,
        )


async def redis_stats(client: Any) -> RedisStats:
    """``INFO commandstats``, ``stats`` and ``cpu``; this benchmark's own ``INFO`` calls are left out."""
    commands: dict[str, Any] = await client.info("commandstats")
    stats: dict[str, Any] = await client.info("stats")
    cpu: dict[str, Any] = await client.info("cpu")
    calls: dict[str, int] = {}
    usec: dict[str, int] = {}
    for key, value in commands.items():
        name = key.removeprefix("cmdstat_").upper().replace("|", " ")
        if name == "INFO":
            continue
        calls[name] = int(value["calls"])
        usec[name] = int(value["usec"])
    return RedisStats(
        calls,
        usec,
        int(stats["total_net_input_bytes"]),
        int(stats["total_net_output_bytes"]),
        float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    )


# ------------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Slice:
    """One configuration's paced slice."""

    p50_ms: float
    p99_ms: float
    #: p50 / p99 at each node's clients, the publisher's node first.
    node_ms: tuple[tuple[float, float], ...]
    #: p50 of the POST /publish round trip.
    post_ms: float
    published: int
    delivered: int
    expected: int
    duplicates: int
    rate: float
    #: Nodes' and Redis's CPU per delivered event, microseconds.
    cpu_us: float
    #: The part of it spent by Redis.
    redis_cpu_us: float
    redis: RedisStats | None
    errors: tuple[str, ...]


@dataclass(frozen=True)
class Burst:
    """One configuration's burst: events posted back to back."""

    published: int
    delivered: int
    expected: int
    seconds: float
    rate: float
    #: This process's CPU over the burst, % of one core: near 100, the load generator was the limit.
    client_cpu: float


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Node:
    """One server process and the clients connected to it."""

    port: int
    pid: int
    tally: Tally = field(default_factory=Tally)
    conns: list[Client] = field(default_factory=list)


class Target:
    """One configuration: its nodes (the publisher posts to the first), its Redis, its clients."""

    def __init__(self, name: str, nodes: list[Node], redis_pid: int | None, redis: Any) -> None:
        self.name = name
        self.nodes = nodes
        self.redis_pid = redis_pid
        self.redis = redis
        self.publisher: Publisher | None = None

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes] + ([self.redis_pid] if self.redis_pid else [])

    def clients(self) -> int:
        return sum(len(node.conns) for node in self.nodes)

    def delivered(self) -> int:
        return sum(node.tally.delivered for node in self.nodes)

    async def open(self, clients: int) -> None:
        for i, node in enumerate(self.nodes):
            # The clients spread evenly; the first node takes any remainder.
            count = clients // len(self.nodes) + (clients % len(self.nodes) if i == 0 else 0)
            factory = (
                ClientFactory(node.port, SocketIOClient, node.tally, node.port)
                if self.name.startswith("socketio")
                else ClientFactory(node.port, HubSSEClient, node.tally, node.port, CHANNEL)
            )
            node.conns = await open_clients(factory, count)

    async def connect_publisher(self) -> Publisher:
        # A fresh connection per turn: between two turns the publisher idles longer than rawrt's
        # keep-alive timeout (5 s).
        if self.publisher is not None:
            self.publisher.close()
        port = self.nodes[0].port
        _, publisher = await asyncio.get_running_loop().create_connection(
            lambda: Publisher(Tally(), port), "127.0.0.1", port
        )
        assert isinstance(publisher, Publisher)
        self.publisher = publisher
        return publisher

    async def wait_deliveries(self, expected: int, timeout: float) -> None:
        # No longer than ``timeout``: a lost event must not hang the benchmark.
        deadline = time.monotonic() + timeout
        while self.delivered() < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def paced(self, interval: float, seconds: float) -> Slice:
        publisher = await self.connect_publisher()
        marks = [(len(n.tally.latencies), n.tally.delivered, n.tally.duplicates) for n in self.nodes]
        d0 = self.delivered()
        stats0 = await redis_stats(self.redis) if self.redis is not None else None
        cpu0, t0 = sum(map(cpu_seconds, self.pids)), time.monotonic()
        redis_cpu0 = cpu_seconds(self.redis_pid) if self.redis_pid else 0.0
        loop = asyncio.get_running_loop()
        start, count, posts = loop.time(), max(1, round(seconds / interval)), []
        for k in range(count):
            # An absolute schedule: a late publish does not push the later ones back.
            delay = start + k * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = time.monotonic()
            await publisher.publish(CHANNEL)
            # The answer's read time, not now: this loop resumes the publisher only after it handled the
            # events that arrived with the answer.
            posts.append(publisher.now - sent)
        t1 = time.monotonic()
        expected = self.clients() * count
        await self.wait_deliveries(d0 + expected, 5)
        cpu1 = sum(map(cpu_seconds, self.pids))
        redis_cpu1 = cpu_seconds(self.redis_pid) if self.redis_pid else 0.0
        stats = (await redis_stats(self.redis)).minus(stats0) if stats0 is not None else None
        delivered = self.delivered() - d0
        per_node = []
        every: list[float] = []
        for node, (n0, _, _) in zip(self.nodes, marks, strict=True):
            lat = sorted(node.tally.latencies[n0:])
            every += lat
            per_node.append((1000 * percentile(lat, 0.50), 1000 * percentile(lat, 0.99)))
        every.sort()
        errors = [e for node in self.nodes for e in node.tally.errors[:5]]
        return Slice(
            p50_ms=1000 * percentile(every, 0.50),
            p99_ms=1000 * percentile(every, 0.99),
            node_ms=tuple(per_node),
            post_ms=1000 * median(posts),
            published=count,
            delivered=delivered,
            expected=expected,
            duplicates=sum(n.tally.duplicates - m[2] for n, m in zip(self.nodes, marks, strict=True)),
            rate=delivered / (t1 - t0),
            cpu_us=1e6 * (cpu1 - cpu0) / max(1, delivered),
            redis_cpu_us=1e6 * (redis_cpu1 - redis_cpu0) / max(1, delivered),
            redis=stats,
            errors=tuple(errors),
        )

    async def burst(self, events: int) -> Burst:
        publisher = await self.connect_publisher()
        d0 = self.delivered()
        own0, t0 = own_cpu(), time.monotonic()
        for _ in range(events):
            await publisher.publish(CHANNEL)
        expected = self.clients() * events
        await self.wait_deliveries(d0 + expected, 15)
        # The last event's arrival: the latest receive time of any client (taken per read).
        end = max(conn.now for node in self.nodes for conn in node.conns)
        own1 = own_cpu()
        delivered = self.delivered() - d0
        seconds = max(1e-6, end - t0)
        return Burst(events, delivered, expected, seconds, delivered / seconds, 100 * (own1 - own0) / seconds)

    def close(self) -> None:
        for node in self.nodes:
            for conn in node.conns:
                conn.close()
        if self.publisher is not None:
            self.publisher.close()


def show(name: str, s: Slice) -> str:
    nodes = ", ".join(f"{p50:.2f}/{p99:.2f}" for p50, p99 in s.node_ms)
    redis = ""
    if s.redis is not None:
        cmds = sum(s.redis.calls.values())
        redis = f"; Redis {cmds / s.published:.2f} cmd/publish {dict(sorted(s.redis.calls.items()))}"
    return (
        f"{name:>14}: p50 {s.p50_ms:6.2f} ms, p99 {s.p99_ms:6.2f} ms (nodes {nodes}); "
        f"POST {s.post_ms:.2f} ms; "
        f"delivered {s.delivered}/{s.expected} (dup {s.duplicates}), {s.rate:,.0f}/s; "
        f"CPU {s.cpu_us:.1f} µs/delivery (Redis {s.redis_cpu_us:.2f})"
        + redis
        + (f"; errors {list(s.errors)}" if s.errors else "")
    )


def show_burst(name: str, b: Burst) -> str:
    return (
        f"{name:>14}: burst {b.published} events: {b.delivered}/{b.expected} in {b.seconds:.3f} s, "
        f"{b.rate:,.0f} deliveries/s (load generator CPU {b.client_cpu:.0f}%)"
    )


# ------------------------------------------------------------------------------------------- the run


@dataclass
class Results:
    slices: dict[str, list[Slice]]
    bursts: dict[str, list[Burst]]
    lost: dict[str, int]
    duplicates: dict[str, int]
    delivered: dict[str, int]


async def run(
    args: argparse.Namespace, layout: dict[str, tuple[list[Node], int | None, int | None]]
) -> Results:
    from redis.asyncio import Redis

    interval = args.interval_ms / 1000
    clients: list[Any] = []
    targets: dict[str, Target] = {}
    for name, (nodes, redis_pid, redis_port) in layout.items():
        client = Redis(host="127.0.0.1", port=redis_port) if redis_port else None
        if client is not None:
            clients.append(client)
        targets[name] = Target(name, nodes, redis_pid, client)
    for target in targets.values():
        await target.open(args.clients)
    await asyncio.sleep(0.5)
    for target in targets.values():  # warm-up: code paths, the allocator, Redis's scripts and streams
        print("warm-up", show(target.name, await target.paced(interval, 1)), flush=True)
        print("warm-up", show_burst(target.name, await target.burst(args.burst)), flush=True)
    results = Results({n: [] for n in CONFIGS}, {n: [] for n in CONFIGS}, {}, {}, {})
    expected = {n: 0 for n in CONFIGS}
    start = {n: targets[n].delivered() for n in CONFIGS}
    try:
        for i in range(args.rounds):
            # Rotate which configuration goes first, so drift in machine load hits them alike.
            for name in CONFIGS[i % len(CONFIGS) :] + CONFIGS[: i % len(CONFIGS)]:
                target = targets[name]
                s = await target.paced(interval, args.seconds)
                results.slices[name].append(s)
                expected[name] += s.expected
                print(f"round {i + 1}", show(name, s), flush=True)
                b = await target.burst(args.burst)
                results.bursts[name].append(b)
                expected[name] += b.expected
                print(f"round {i + 1}", show_burst(name, b), flush=True)
    finally:
        for name, target in targets.items():
            delivered = target.delivered() - start[name]
            results.delivered[name] = delivered
            results.lost[name] = expected[name] - delivered
            results.duplicates[name] = sum(node.tally.duplicates for node in target.nodes)
            target.close()
        for client in clients:
            await client.aclose()
        await asyncio.sleep(0.2)
    return results


def start_redis() -> tuple[Any, int]:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return start_server(argv, port), port


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()

    # Each server inherits this limit; it raises its own soft limit to the hard one as well.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(CONFIGS) * args.clients + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    procs = []
    wall0 = time.monotonic()
    try:
        rawrt_redis, rawrt_redis_port = start_redis()
        sio_redis, sio_redis_port = start_redis()
        procs += [rawrt_redis, sio_redis]

        def node(argv: Sequence[str]) -> Node:
            port = free_port()
            proc = start_server([sys.executable, *argv[:1], str(port), *argv[1:]], port)
            procs.append(proc)
            return Node(port, proc.pid)

        demo, peer = str(HERE / "demo_server.py"), str(HERE / "socketio_peer.py")
        rawrt_url = f"redis://127.0.0.1:{rawrt_redis_port}/0"
        sio_url = f"redis://127.0.0.1:{sio_redis_port}/0"
        layout: dict[str, tuple[list[Node], int | None, int | None]] = {
            "rawrt-memory": ([node([demo, "--hub", "memory"])], None, None),
            "rawrt-redis": (
                [node([demo, "--hub", rawrt_url]) for _ in range(2)],
                rawrt_redis.pid,
                rawrt_redis_port,
            ),
            "socketio-redis": (
                [node([peer, "--redis", sio_url]) for _ in range(2)],
                sio_redis.pid,
                sio_redis_port,
            ),
        }
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {int(CLIENT_CPU)})
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        load_before = os.getloadavg()[0]
        results = asyncio.run(run(args, layout))
        load_after = os.getloadavg()[0]
    finally:
        for proc in reversed(procs):
            stop(proc)
    wall = time.monotonic() - wall0
    report(args, results, load_before, load_after, wall)


def report(
    args: argparse.Namespace, res: Results, load_before: float, load_after: float, wall: float
) -> None:
    slices, bursts = res.slices, res.bursts

    def med(name: str, fn: Any) -> float:
        return median([fn(s) for s in slices[name]])

    def ratio(a: str, b: str, fn: Any) -> float:
        # Slices seconds apart share the machine's conditions: the median of per-round ratios is what the
        # noise from other workloads disturbs least.
        return median([fn(x) / fn(y) for x, y in zip(slices[a], slices[b], strict=True)])

    def p50(s: Slice) -> float:
        return s.p50_ms

    def p99(s: Slice) -> float:
        return s.p99_ms

    def commands(s: Slice) -> float:
        return sum(s.redis.calls.values()) if s.redis else 0.0

    rows = [
        "| | p50 latency | p99 latency | p50 / p99, publisher's node | p50 / p99, other node "
        "| POST round trip | delivered events/s (paced) | burst: delivered events/s "
        "| CPU per delivery (nodes + Redis) | lost / dup (whole run) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CONFIGS:
        nodes = len(slices[name][0].node_ms)
        node_cells = [
            f"{med(name, lambda s, i=i: s.node_ms[i][0]):.2f} / "
            f"{med(name, lambda s, i=i: s.node_ms[i][1]):.2f} ms"
            for i in range(nodes)
        ]
        if nodes == 1:
            node_cells.append("–")
        rows.append(
            f"| {name} | {med(name, p50):.2f} ms | {med(name, p99):.2f} ms "
            f"| {node_cells[0]} | {node_cells[1]} "
            f"| {med(name, lambda s: s.post_ms):.2f} ms | {med(name, lambda s: s.rate):,.0f} "
            f"| {median([b.rate for b in bursts[name]]):,.0f} "
            f"| {med(name, lambda s: s.cpu_us):.1f} µs | {res.lost[name]} / {res.duplicates[name]} |"
        )
    r50, r99 = ratio("rawrt-redis", "rawrt-memory", p50), ratio("rawrt-redis", "rawrt-memory", p99)
    s50, s99 = ratio("socketio-redis", "rawrt-redis", p50), ratio("socketio-redis", "rawrt-redis", p99)
    rows.append(f"| **rawrt-redis / rawrt-memory** | **{r50:.2f}x** | **{r99:.2f}x** | | | | | | | |")
    rows.append(f"| socketio-redis / rawrt-redis | {s50:.2f}x | {s99:.2f}x | | | | | | | |")
    table = "\n".join(rows)

    redis_rows = [
        "| | commands per publish | per delivered event | by command, per publish | Redis µs per publish "
        "(commandstats) | Redis CPU per publish | bytes out of Redis per publish |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("rawrt-redis", "socketio-redis"):
        names = sorted({n for s in slices[name] if s.redis for n in s.redis.calls})
        by = ", ".join(
            f"{n} {med(name, lambda s, n=n: s.redis.calls.get(n, 0) / s.published if s.redis else 0):.2f}"
            for n in names
        )
        redis_rows.append(
            f"| {name} | {med(name, lambda s: commands(s) / s.published):.2f} "
            f"| {med(name, lambda s: commands(s) / max(1, s.delivered)):.4f} | {by} "
            f"| {med(name, lambda s: sum(s.redis.usec.values()) / s.published if s.redis else 0):.1f} µs "
            f"| {med(name, lambda s: 1e6 * s.redis.cpu / s.published if s.redis else 0):.0f} µs "
            f"| {med(name, lambda s: s.redis.bytes_out / s.published if s.redis else 0):,.0f} B |"
        )
    redis_table = "\n".join(redis_rows)

    per_round = "\n".join(
        f"| {i + 1} | {a.p50_ms:.2f} / {a.p99_ms:.2f} | {b.p50_ms:.2f} / {b.p99_ms:.2f} "
        f"| {c.p50_ms:.2f} / {c.p99_ms:.2f} | {b.p50_ms / a.p50_ms:.2f}x / {b.p99_ms / a.p99_ms:.2f}x "
        f"| {ba.rate:,.0f} / {bb.rate:,.0f} / {bc.rate:,.0f} |"
        for i, (a, b, c, ba, bb, bc) in enumerate(
            zip(
                slices["rawrt-memory"],
                slices["rawrt-redis"],
                slices["socketio-redis"],
                bursts["rawrt-memory"],
                bursts["rawrt-redis"],
                bursts["socketio-redis"],
                strict=True,
            )
        )
    )
    verdict = "met" if r50 < AIM and r99 < AIM else "missed"
    print(table)
    print(redis_table)
    print(f"aim (rawrt-redis p50 and p99 below {AIM}x rawrt-memory's): {verdict}; run took {wall:.0f} s")
    if not args.write:
        return
    from importlib.metadata import version

    rate = args.clients * 1000 / args.interval_ms
    burst_cpu = {n: median([b.client_cpu for b in bursts[n]]) for n in CONFIGS}
    write_section(
        "hub-redis",
        f"""## A hub shared through Redis: 2 nodes, {args.clients:,} clients (`benchmarks/bench_hub_redis.py`)

Three configurations in one run, every client connected for the whole run:
**rawrt-memory**, one rawrt demo node with the memory hub and all {args.clients:,} SSE clients;
**rawrt-redis**, two demo nodes sharing one Redis (`--hub redis://...`, Redis Streams), half of the clients
on each, the publisher posting to the first; **socketio-redis**, the named peer: two python-socketio
{version("python-socketio")} nodes (`benchmarks/socketio_peer.py`: `AsyncServer` on aiohttp
{version("aiohttp")}, `AsyncRedisManager`, redis-py {version("redis")}) sharing another Redis, half of the
clients on each, a broadcast `emit` from the first node. Redis {redis_version()} (`--save '' --appendonly
no`), one per cluster so each one's `INFO` counts one cluster. All servers on uvloop {version("uvloop")},
every server process and both Redis pinned to core 0; the clients and the publisher in one process on
uvloop, pinned to core 1: raw asyncio protocols, SSE for rawrt, and for Socket.IO a raw WebSocket speaking
the Engine.IO 4 / Socket.IO 5 text protocol (python-socketio's `AsyncClient` costs several times more per
client and would have measured the load generator).

Each round, each configuration in rotated order gets {args.seconds:g} s of one event every
{args.interval_ms:g} ms ({rate:,.0f} deliveries/s); the event's data is the publisher's `time.monotonic()`,
so latency is publish-to-receive (the POST included), over every (client, event) of the slice, and per node.
Then a burst of {args.burst} events posted back to back (each POST awaited): delivered events/s from the first
POST to the last client's last event. {args.rounds} rounds after a warm-up; medians of the rounds, ratios the
median of per-round ratios. Redis figures are `INFO commandstats` / `stats` / `cpu` deltas over each paced
slice (the benchmark's own `INFO` calls left out). Machine: {machine()}; shared with other workloads
(1-minute load average {load_before:.1f} before the run, {load_after:.1f} after); the whole run took
{wall:.0f} s.

{table}

Redis, per paced slice:

{redis_table}

Per round, p50 / p99 in ms, and the bursts' delivered events/s:

| round | rawrt-memory | rawrt-redis | socketio-redis | redis / memory | bursts: memory / redis / socketio |
|---|---|---|---|---|---|
{per_round}

Issue 11's aim (rawrt-redis p50 and p99 below {AIM}x rawrt-memory's, on the median of per-round ratios):
**{verdict}**. The load generator's CPU during the bursts (median, % of one core): rawrt-memory
{burst_cpu["rawrt-memory"]:.0f}%, rawrt-redis {burst_cpu["rawrt-redis"]:.0f}%, socketio-redis
{burst_cpu["socketio-redis"]:.0f}%.
""",
    )


def redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return "unknown"


if __name__ == "__main__":
    main()
