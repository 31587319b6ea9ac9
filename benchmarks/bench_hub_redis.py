"""A hub shared through Redis: 1,000 SSE clients on two rawrt nodes, against one node and python-socketio.

Four configurations run side by side in one run, ``--clients`` (1,000) clients each, every client
connected for the whole of it:

* **rawrt-memory**: one rawrt demo node (``demo_server.py --hub memory``), all clients on it;
* **rawrt-redis-1**: one demo node on Redis (``--hub redis://127.0.0.1:P/0``), all clients on it: the
  Redis hop alone, without a second process;
* **rawrt-redis**: two demo nodes sharing one Redis, half of the clients on each; the publisher posts to
  the first. ``POST /publish`` is an ``XADD``; each node reads the stream with its one ``XREAD BLOCK`` loop
  and fans the event out to its own clients (the publisher's node too: its clients get the event from Redis
  like the other node's);
* **socketio-redis**: the named peer, two python-socketio nodes (``socketio_peer.py``: ``AsyncServer`` on
  aiohttp with an ``AsyncRedisManager``) sharing a Redis, half of the clients on each, every client in the
  room that stands for the channel, an ``emit`` to that room from the first node received by all.
  python-socketio sends to the emitting node's clients first, then ``PUBLISH``es for the other nodes.

Every server process and every Redis (``redis-server --save '' --appendonly no``, one per configuration,
so that each one's ``INFO`` counts one configuration alone) are pinned to core 0; this process, on uvloop,
pinned to core 1, holds every client and the publisher. The configurations take turns: in each of
``--rounds`` (8) rounds, in rotated order, each gets

1. a *paced slice*: ``--seconds`` (3 s) of one event every ``--interval-ms`` (100 ms), i.e. 10,000
   deliveries/s, whose data is the publisher's ``time.monotonic()``: every client computes each event's
   publish-to-receive latency (the POST included). p50 / p99 over every (client, event) of the slice, and
   per node (the publisher's node against the other); the POST's own round trip (to its answer's read);
2. a *hop*: ``--hops`` (20) events, 50 ms apart, on a channel with one client (on the node the publisher
   does not post to): the latency of the path alone, without the fan-out to 1,000;
3. a *burst*: ``--burst`` (50) events posted back to back (each POST awaited), and the time from the first
   POST to the last client's last event: delivered events/s at saturation (this process's CPU is reported
   alongside: near 100%, the load generator was the limit).

Redis is measured from Redis itself: ``INFO commandstats`` (calls and microseconds per command, the
benchmark's own ``INFO`` calls left out), ``INFO stats`` (bytes in and out) and ``INFO cpu`` (less its CPU
when idle, measured for 2 s before the rounds), as deltas over each paced slice, divided by the events
published and by the events delivered. Server CPU (``/proc/PID/stat``): the nodes and their Redis, per
delivered event.

Clients are raw asyncio protocols (``transport_clients.py``): rawrt's SSE client, and for Socket.IO a raw
WebSocket speaking the Engine.IO 4 / Socket.IO 5 text protocol (``GET /socket.io/?EIO=4&transport=websocket``,
``40{"channel": C}`` to join, ``42["e", data]`` events, ``3`` to each ``2`` ping). python-socketio's own
``AsyncClient`` would have measured the load generator: with 300 clients on one node it took 50 µs of
client CPU per received event, this raw client 12.6 µs (measured once while writing this benchmark).
Event ids: rawrt's are stream positions (large, increasing, not contiguous); Socket.IO has none, so its
client keys each event by its data (the publish time, unique and increasing). A key not above the client's
last is a duplicate or out of order; lost = expected - delivered, over the whole run. Usage::

    python benchmarks/bench_hub_redis.py [--clients 1000] [--interval-ms 100] [--seconds 3] [--rounds 8]
        [--burst 50] [--hops 20] [--write]

``--write`` puts the figures into docs/benchmarks.md (section ``hub-redis``). Issue 11's aim: rawrt-redis
below 1.5x rawrt-memory's latency (p50 and p99, median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
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
CONFIGS = ("rawrt-memory", "rawrt-redis-1", "rawrt-redis", "socketio-redis")
LABELS = {
    "rawrt-memory": "rawrt, 1 node, memory hub",
    "rawrt-redis-1": "rawrt, 1 node, Redis hub",
    "rawrt-redis": "rawrt, 2 nodes, Redis hub",
    "socketio-redis": "python-socketio, 2 nodes, Redis",
}
SHORT = {
    "rawrt-memory": "memory",
    "rawrt-redis-1": "Redis, 1 node",
    "rawrt-redis": "Redis, 2 nodes",
    "socketio-redis": "socketio",
}
CHANNEL = "fanout"
#: The channel of the hop measurement: one client, on the node the publisher does not post to.
HOP_CHANNEL = "hop"
#: The aim of issue 11: sharing through Redis costs less than this times the single node's latency.
AIM = 1.5
#: Seconds between the hop measurement's events.
HOP_INTERVAL = 0.05


# ------------------------------------------------------------------------------------------- clients


class HubSSEClient(SSEClient):
    """rawrt's SSE client, with ids that increase but are not contiguous (stream positions, not 1, 2, 3)."""

    def record(self, event_id: int, data: str | bytes) -> None:
        record(self, event_id, data)


#: Per event (its publish time), the first and the last time a client received it: the first is the path's
#: latency, the gap to the last the fan-out's spread (the server's writes, and this process's reads).
SPREAD: dict[float, list[float]] = {}


def record(client: Client, key: int, data: str | bytes) -> None:
    """One event arrived at ``client.now``; ``key`` must be above the client's last one."""
    tally = client.tally
    now, published = client.now, float(data)
    tally.latencies.append(now - published)
    seen = SPREAD.get(published)
    if seen is None:
        SPREAD[published] = [now, now]
    elif now > seen[1]:
        seen[1] = now
    elif now < seen[0]:
        seen[0] = now
    if key <= client.last_id:
        tally.duplicates += 1
        return
    client.last_id = key
    tally.delivered += 1


class SocketIOClient(Client):
    """One Socket.IO client over a raw WebSocket (module docstring); ready once the namespace is joined."""

    def __init__(self, tally: Tally, port: int, channel: str) -> None:
        super().__init__(tally)
        self.port = port
        self.channel = channel
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
        elif text.startswith(b"0"):  # OPEN: join the default namespace, and the channel's room (the peer)
            self.send_frame(0x1, b"40" + json.dumps({"channel": self.channel}).encode())
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
    #: Medians over the events of the first client's and the last client's latency.
    first_ms: float
    last_ms: float
    #: p50 of the POST /publish round trip.
    post_ms: float
    published: int
    delivered: int
    expected: int
    duplicates: int
    rate: float
    #: Nodes' and Redis's CPU per delivered event, microseconds (``/proc``: 10 ms ticks).
    cpu_us: float
    #: Redis's counters over the slice (``None``: no Redis), and the seconds between the two snapshots.
    redis: RedisStats | None
    window: float
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
    #: Redis commands per event published (0: no Redis).
    commands: float


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


@dataclass(frozen=True)
class Layout:
    """One configuration's processes: its nodes, and its Redis if it has one."""

    nodes: list[Node]
    redis_pid: int | None = None
    redis_port: int | None = None


class Target:
    """One configuration: its nodes (the publisher posts to the first), its Redis, its clients."""

    def __init__(self, name: str, layout: Layout, redis: Any) -> None:
        self.name = name
        self.nodes = layout.nodes
        self.redis_pid = layout.redis_pid
        self.redis = redis
        self.publisher: Publisher | None = None
        #: The hop measurement's one client, on the last node, alone on its channel.
        self.hop_tally = Tally()
        self.hop_conns: list[Client] = []

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes] + ([self.redis_pid] if self.redis_pid else [])

    def clients(self) -> int:
        return sum(len(node.conns) for node in self.nodes)

    def delivered(self) -> int:
        return sum(node.tally.delivered for node in self.nodes) + self.hop_tally.delivered

    def factory(self, port: int, tally: Tally, channel: str) -> ClientFactory:
        cls = SocketIOClient if self.name.startswith("socketio") else HubSSEClient
        return ClientFactory(port, cls, tally, port, channel)

    async def open(self, clients: int) -> None:
        for i, node in enumerate(self.nodes):
            # The clients spread evenly; the first node takes any remainder.
            count = clients // len(self.nodes) + (clients % len(self.nodes) if i == 0 else 0)
            node.conns = await open_clients(self.factory(node.port, node.tally, CHANNEL), count)
        port = self.nodes[-1].port
        self.hop_conns = await open_clients(self.factory(port, self.hop_tally, HOP_CHANNEL), 1)

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
        marks = [(len(n.tally.latencies), n.tally.duplicates) for n in self.nodes]
        SPREAD.clear()
        d0 = self.delivered()
        stats0 = await redis_stats(self.redis) if self.redis is not None else None
        cpu0, t0 = sum(map(cpu_seconds, self.pids)), time.monotonic()
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
        stats = (await redis_stats(self.redis)).minus(stats0) if stats0 is not None else None
        window = time.monotonic() - t0
        delivered = self.delivered() - d0
        per_node = []
        every: list[float] = []
        for node, (n0, _) in zip(self.nodes, marks, strict=True):
            lat = sorted(node.tally.latencies[n0:])
            every += lat
            per_node.append((1000 * percentile(lat, 0.50), 1000 * percentile(lat, 0.99)))
        every.sort()
        spread = [(first - published, last - published) for published, (first, last) in SPREAD.items()]
        return Slice(
            p50_ms=1000 * percentile(every, 0.50),
            p99_ms=1000 * percentile(every, 0.99),
            node_ms=tuple(per_node),
            first_ms=1000 * median([first for first, _ in spread]),
            last_ms=1000 * median([last for _, last in spread]),
            post_ms=1000 * median(posts),
            published=count,
            delivered=delivered,
            expected=expected,
            duplicates=sum(n.tally.duplicates - m[1] for n, m in zip(self.nodes, marks, strict=True)),
            rate=delivered / (t1 - t0),
            cpu_us=1e6 * (cpu1 - cpu0) / max(1, delivered),
            redis=stats,
            window=window,
            errors=tuple(e for node in self.nodes for e in node.tally.errors[:5]),
        )

    async def hop(self, interval: float, count: int) -> list[float]:
        """Publish ``count`` events to the one client of HOP_CHANNEL: latency without fan-out."""
        publisher = await self.connect_publisher()
        tally = self.hop_tally
        n0, d0 = len(tally.latencies), tally.delivered
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in range(count):
            delay = start + k * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await publisher.publish(HOP_CHANNEL)
        deadline = time.monotonic() + 5
        while tally.delivered < d0 + count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return tally.latencies[n0:]

    async def burst(self, events: int) -> Burst:
        publisher = await self.connect_publisher()
        d0 = self.delivered()
        stats0 = await redis_stats(self.redis) if self.redis is not None else None
        own0, t0 = own_cpu(), time.monotonic()
        for _ in range(events):
            await publisher.publish(CHANNEL)
        expected = self.clients() * events
        await self.wait_deliveries(d0 + expected, 15)
        # The last event's arrival: the latest receive time of any client (taken per read).
        end = max(conn.now for node in self.nodes for conn in node.conns)
        own1 = own_cpu()
        stats = (await redis_stats(self.redis)).minus(stats0) if stats0 is not None else None
        delivered = self.delivered() - d0
        seconds = max(1e-6, end - t0)
        commands = sum(stats.calls.values()) / events if stats is not None else 0.0
        return Burst(
            events,
            delivered,
            expected,
            seconds,
            delivered / seconds,
            100 * (own1 - own0) / seconds,
            commands,
        )

    def close(self) -> None:
        for conn in self.hop_conns:
            conn.close()
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
        redis = (
            f"; Redis {cmds / s.published:.2f} cmd/publish {dict(sorted(s.redis.calls.items()))}, "
            f"{sum(s.redis.usec.values()) / s.published:.0f} µs/publish in commands, "
            f"CPU {100 * s.redis.cpu / s.window:.1f}%"
        )
    return (
        f"{name:>14}: p50 {s.p50_ms:6.2f} ms, p99 {s.p99_ms:6.2f} ms (nodes {nodes}); "
        f"first/last client {s.first_ms:.2f}/{s.last_ms:.2f} ms; POST {s.post_ms:.2f} ms; "
        f"delivered {s.delivered}/{s.expected} (dup {s.duplicates}), {s.rate:,.0f}/s; "
        f"CPU {s.cpu_us:.1f} µs/delivery" + redis + (f"; errors {list(s.errors)}" if s.errors else "")
    )


def show_burst(name: str, b: Burst) -> str:
    return (
        f"{name:>14}: burst {b.published} events: {b.delivered}/{b.expected} in {b.seconds:.3f} s, "
        f"{b.rate:,.0f} deliveries/s (load generator CPU {b.client_cpu:.0f}%)"
        + (f"; Redis {b.commands:.2f} cmd/publish" if b.commands else "")
    )


# ------------------------------------------------------------------------------------------- the run


@dataclass
class Results:
    slices: dict[str, list[Slice]]
    bursts: dict[str, list[Burst]]
    #: Every hop latency (one subscriber, no fan-out), seconds.
    hops: dict[str, list[float]] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    #: Each Redis's CPU with its cluster connected but idle (no publishing), fraction of one core.
    redis_idle: dict[str, float] = field(default_factory=dict)
    #: The highest 1-minute load average seen after a turn: other workloads on this shared machine.
    load_max: float = 0.0


async def run(args: argparse.Namespace, layouts: dict[str, Layout]) -> Results:
    from redis.asyncio import Redis

    interval = args.interval_ms / 1000
    targets: dict[str, Target] = {}
    for name, layout in layouts.items():
        redis = Redis(host="127.0.0.1", port=layout.redis_port) if layout.redis_port else None
        targets[name] = Target(name, layout, redis)
    for target in targets.values():
        await target.open(args.clients)
    await asyncio.sleep(0.5)
    for target in targets.values():  # warm-up: code paths, the allocator, Redis's scripts and streams
        print("warm-up", show(target.name, await target.paced(interval, 1)), flush=True)
        print("warm-up", show_burst(target.name, await target.burst(args.burst)), flush=True)
    res = Results({n: [] for n in CONFIGS}, {n: [] for n in CONFIGS}, {n: [] for n in CONFIGS})
    # Redis's CPU with nothing published: its timers, and the rawrt nodes' XREAD BLOCK timing out once a
    # second. Subtracted from the slices' Redis CPU, so that what is left is the publishing's.
    idle0 = {n: await redis_stats(t.redis) for n, t in targets.items() if t.redis is not None}
    t0 = time.monotonic()
    await asyncio.sleep(2)
    for name, before in idle0.items():
        after = await redis_stats(targets[name].redis)
        res.redis_idle[name] = (after.cpu - before.cpu) / (time.monotonic() - t0)
    expected = {n: 0 for n in CONFIGS}
    start = {n: targets[n].delivered() for n in CONFIGS}
    try:
        for i in range(args.rounds):
            # Rotate which configuration goes first, so drift in machine load hits them alike.
            for name in CONFIGS[i % len(CONFIGS) :] + CONFIGS[: i % len(CONFIGS)]:
                target = targets[name]
                s = await target.paced(interval, args.seconds)
                res.slices[name].append(s)
                expected[name] += s.expected
                print(f"round {i + 1}", show(name, s), flush=True)
                hops = await target.hop(HOP_INTERVAL, args.hops)
                res.hops[name] += hops
                expected[name] += args.hops
                print(f"round {i + 1} {name:>14}: hop p50 {1000 * median(hops):.2f} ms", flush=True)
                b = await target.burst(args.burst)
                res.bursts[name].append(b)
                expected[name] += b.expected
                print(f"round {i + 1}", show_burst(name, b), flush=True)
                res.load_max = max(res.load_max, os.getloadavg()[0])
    finally:
        for name, target in targets.items():
            res.lost[name] = expected[name] - (target.delivered() - start[name])
            res.duplicates[name] = sum(node.tally.duplicates for node in target.nodes)
            target.close()
            if target.redis is not None:
                await target.redis.aclose()
        await asyncio.sleep(0.2)
    return res


def start_redis(procs: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    """A Redis server on a free port, pinned with the servers, keeping nothing on disk: (pid, port)."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = start_server(argv, port)
    procs.append(proc)
    return proc.pid, port


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--hops", type=int, default=20, help="events to one client per round (0.05 s apart)")
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()

    # Each server inherits this limit; it raises its own soft limit to the hard one as well.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(CONFIGS) * args.clients + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    procs: list[subprocess.Popen[bytes]] = []
    wall0 = time.monotonic()

    def node(script: str, *options: str) -> Node:
        port = free_port()
        proc = start_server([sys.executable, str(HERE / script), str(port), *options], port)
        procs.append(proc)
        return Node(port, proc.pid)

    try:
        layouts: dict[str, Layout] = {"rawrt-memory": Layout([node("demo_server.py", "--hub", "memory")])}
        for name, script, option, count in (
            ("rawrt-redis-1", "demo_server.py", "--hub", 1),
            ("rawrt-redis", "demo_server.py", "--hub", 2),
            ("socketio-redis", "socketio_peer.py", "--redis", 2),
        ):
            pid, port = start_redis(procs)
            url = f"redis://127.0.0.1:{port}/0"
            layouts[name] = Layout([node(script, option, url) for _ in range(count)], pid, port)
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {int(CLIENT_CPU)})
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        load_before = os.getloadavg()[0]
        results = asyncio.run(run(args, layouts))
        load_after = os.getloadavg()[0]
    finally:
        for proc in reversed(procs):
            stop(proc)
    report(args, results, (load_before, load_after), time.monotonic() - wall0)


# ------------------------------------------------------------------------------------------- the report


def report(args: argparse.Namespace, res: Results, load: tuple[float, float], wall: float) -> None:
    slices, bursts = res.slices, res.bursts

    def med(name: str, fn: Callable[[Slice], float]) -> float:
        return median([fn(s) for s in slices[name]])

    def ratio(a: str, b: str, fn: Callable[[Slice], float]) -> float:
        # Slices seconds apart share the machine's conditions: the median of per-round ratios is what the
        # noise from other workloads disturbs least.
        return median([fn(x) / fn(y) for x, y in zip(slices[a], slices[b], strict=True)])

    def p50(s: Slice) -> float:
        return s.p50_ms

    def p99(s: Slice) -> float:
        return s.p99_ms

    def node_ms(i: int, j: int) -> Callable[[Slice], float]:
        return lambda s: s.node_ms[i][j]

    rows = [
        "| | p50 latency | p99 latency | p50 / p99 at the publisher's node | at the other node "
        "| first / last client per event | POST round trip | one subscriber: p50 / p90 "
        "| delivered events/s (paced) "
        "| burst: delivered events/s | load generator CPU (burst) | CPU per delivery (nodes + Redis) "
        "| lost / dup |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CONFIGS:
        cells = [
            f"{med(name, node_ms(i, 0)):.2f} / {med(name, node_ms(i, 1)):.2f} ms"
            for i in range(len(slices[name][0].node_ms))
        ]
        cells += ["–"] * (2 - len(cells))
        hops = sorted(res.hops[name])
        rows.append(
            f"| {LABELS[name]} | {med(name, p50):.2f} ms | {med(name, p99):.2f} ms | {cells[0]} | {cells[1]} "
            f"| {med(name, lambda s: s.first_ms):.2f} / {med(name, lambda s: s.last_ms):.2f} ms "
            f"| {med(name, lambda s: s.post_ms):.2f} ms "
            f"| {1000 * percentile(hops, 0.5):.2f} / {1000 * percentile(hops, 0.9):.2f} ms "
            f"| {med(name, lambda s: s.rate):,.0f} "
            f"| {median([b.rate for b in bursts[name]]):,.0f} "
            f"| {median([b.client_cpu for b in bursts[name]]):.0f}% "
            f"| {med(name, lambda s: s.cpu_us):.1f} µs | {res.lost[name]} / {res.duplicates[name]} |"
        )
    ratios = {
        (a, b): (ratio(a, b, p50), ratio(a, b, p99))
        for a, b in (
            ("rawrt-redis", "rawrt-memory"),
            ("rawrt-redis-1", "rawrt-memory"),
            ("rawrt-redis", "rawrt-redis-1"),
            ("socketio-redis", "rawrt-redis"),
        )
    }
    r50, r99 = ratios["rawrt-redis", "rawrt-memory"]
    for (a, b), (x, y) in ratios.items():
        label, both = f"{SHORT[a]} / {SHORT[b]}", f"{x:.2f}x | {y:.2f}x"
        if (a, b) == ("rawrt-redis", "rawrt-memory"):
            label, both = f"**{label}**", f"**{x:.2f}x** | **{y:.2f}x**"
        rows.append(f"| {label} | {both} |" + " |" * 10)
    table = "\n".join(rows)

    def rmed(name: str, fn: Callable[[Slice, RedisStats], float]) -> float:
        return median([fn(s, s.redis) for s in slices[name] if s.redis is not None])

    def calls(n: str) -> Callable[[Slice, RedisStats], float]:
        return lambda s, r: r.calls.get(n, 0) / s.published

    def usec_per_call(n: str) -> Callable[[Slice, RedisStats], float]:
        return lambda s, r: r.usec.get(n, 0) / max(1, r.calls.get(n, 0))

    def cpu_above_idle(idle: float) -> Callable[[Slice, RedisStats], float]:
        return lambda s, r: 1e6 * (r.cpu - idle * s.window) / s.published

    redis_rows = [
        "| | commands per publish | per delivered event | by command: calls per publish (µs per call) "
        "| µs in commands per publish | Redis CPU per publish (above idle) | bytes in / out per publish "
        "| commands per publish, bursts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in CONFIGS[1:]:
        names = sorted({n for s in slices[name] if s.redis for n in s.redis.calls})
        by = ", ".join(f"{n} {rmed(name, calls(n)):.2f} ({rmed(name, usec_per_call(n)):.1f})" for n in names)
        per_delivery = rmed(name, lambda s, r: sum(r.calls.values()) / max(1, s.delivered))
        bytes_in = rmed(name, lambda s, r: r.bytes_in / s.published)
        bytes_out = rmed(name, lambda s, r: r.bytes_out / s.published)
        per_publish = rmed(name, lambda s, r: sum(r.calls.values()) / s.published)
        usec = rmed(name, lambda s, r: sum(r.usec.values()) / s.published)
        cpu = rmed(name, cpu_above_idle(res.redis_idle[name]))
        redis_rows.append(
            f"| {LABELS[name]} | {per_publish:.2f} | {per_delivery:.4f} | {by} | {usec:.0f} µs "
            f"| {cpu:.0f} µs | {bytes_in:,.0f} / {bytes_out:,.0f} B "
            f"| {median([b.commands for b in bursts[name]]):.2f} |"
        )
    redis_table = "\n".join(redis_rows)

    per_round = "\n".join(
        "| {} | {} | {:.2f}x / {:.2f}x | {} |".format(
            i + 1,
            " | ".join(f"{s.p50_ms:.2f} / {s.p99_ms:.2f}" for s in row),
            row[2].p50_ms / row[0].p50_ms,
            row[2].p99_ms / row[0].p99_ms,
            " / ".join(f"{b.rate / 1000:.0f}k" for b in brow),
        )
        for i, (row, brow) in enumerate(
            zip(
                zip(*(slices[n] for n in CONFIGS), strict=True),
                zip(*(bursts[n] for n in CONFIGS), strict=True),
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
    idle_cpu = ", ".join(f"{SHORT[n]} {100 * v:.2f}%" for n, v in res.redis_idle.items())
    hop = {n: 1000 * percentile(sorted(res.hops[n]), 0.5) for n in CONFIGS}
    post = {n: med(n, lambda s: s.post_ms) for n in CONFIGS}
    cpu_per = {n: med(n, lambda s: s.cpu_us) for n in CONFIGS}
    round_ratios = [
        a.p50_ms / b.p50_ms for a, b in zip(slices["rawrt-redis"], slices["rawrt-memory"], strict=True)
    ]
    noise = (
        f": on both sides of 1, so at {args.clients:,} clients the difference between the hubs is smaller "
        "than this machine's noise"
        if min(round_ratios) < 1 < max(round_ratios)
        else ""
    )
    first = {n: med(n, lambda s: s.first_ms) for n in CONFIGS}
    last = {n: med(n, lambda s: s.last_ms) for n in CONFIGS}
    burst_cmds = median([b.commands for b in bursts["rawrt-redis"]])
    batching = (
        "the publisher awaits each POST, and the nodes' reads kept up with it: one event per read"
        if burst_cmds > 2.9
        else "some reads returned several events"
    )
    sio_near, sio_far = med("socketio-redis", node_ms(0, 0)), med("socketio-redis", node_ms(1, 0))
    r1_50, r1_99 = ratios["rawrt-redis-1", "rawrt-memory"]
    r2_50, r2_99 = ratios["rawrt-redis", "rawrt-redis-1"]
    write_section(
        "hub-redis",
        reflow(f"""## A hub shared through Redis: 2 nodes, {args.clients:,} clients \
(`benchmarks/bench_hub_redis.py`)

Four configurations in one run, {args.clients:,} clients each, every client connected for the whole run:
**rawrt, 1 node, memory hub** (the demo, `benchmarks/demo_server.py --hub memory`); **rawrt, 1 node,
Redis hub** (`--hub redis://...`: the Redis hop alone, without a second process); **rawrt, 2 nodes,
Redis hub** (two demo nodes sharing one Redis, half of the SSE clients on each, the publisher posting to
the first); and the named peer, **python-socketio, 2 nodes, Redis**: two python-socketio
{version("python-socketio")} nodes (`benchmarks/socketio_peer.py`: `AsyncServer` on aiohttp
{version("aiohttp")}, `AsyncRedisManager`) sharing a Redis, half of the clients on each, all in the room
that stands for the channel, an `emit` to it from the first node. redis-py {version("redis")}, without
hiredis, on both sides. Redis {redis_version()} (`--save '' --appendonly no`), one per configuration, so
each one's `INFO` counts one configuration alone. Servers on uvloop {version("uvloop")}; every server
process and every Redis pinned to core 0, so the two nodes of a cluster share one core: this shows what a
second node costs, not what it would gain on a machine of its own. The clients and the publisher: one
process on uvloop, pinned to core 1, raw asyncio protocols: SSE for rawrt; for Socket.IO a raw WebSocket
speaking the Engine.IO 4 / Socket.IO 5 text protocol (`40{{"channel": C}}` to join, `42[...]` events, `3`
to each ping), because python-socketio's `AsyncClient` would have measured the load generator (50 µs of
client CPU per received event against 12.6 µs for the raw client, 300 clients, measured once).

Each round, each configuration in rotated order gets {args.seconds:g} s of one event every
{args.interval_ms:g} ms ({rate:,.0f} deliveries/s); the event's data is the publisher's `time.monotonic()`,
so latency is publish-to-receive (the POST included), over every (client, event) of the slice, and per
node. Then {args.hops} events 50 ms apart to a channel with one client, on the node the publisher does not
post to (*one subscriber*: the path without the fan-out). Then a burst: {args.burst} events posted back to
back (each POST awaited), and delivered events/s from the first POST to the last client's last event;
where the load generator's CPU nears 100%, the burst measured it, not the servers. {args.rounds} rounds
after a warm-up; medians of the rounds (one subscriber: of every event of every round), ratios the median
of per-round ratios. POST round trip: to the answer's read. Redis figures are `INFO commandstats` /
`stats` / `cpu` deltas over each paced slice (the benchmark's own `INFO` calls left out), Redis's CPU when
idle (clients connected, nothing published: {idle_cpu} of a core) subtracted. Lost / dup: over the whole
run. Machine: {machine()}; shared: other sessions ran CPU work on both cores during this run (1-minute
load average {load[0]:.1f} before it, up to {res.load_max:.1f} during it, {load[1]:.1f} after; this
benchmark's own processes count in it too), so every latency here carries their noise: the per-round
table shows the spread.
The whole run took {wall:.0f} s.

{table}

Redis, per paced slice:

{redis_table}

Per round, p50 / p99 in ms, and the bursts' delivered events/s (k = thousand):

| round | {" | ".join(SHORT[n] for n in CONFIGS)} | 2 nodes / memory | bursts |
|---|---|---|---|---|---|---|
{per_round}

Issue 11's aim (rawrt, 2 nodes on Redis, p50 and p99 below {AIM}x one memory node's, on the median of
per-round ratios): **{verdict}**. The per-round p50 ratios range from {min(round_ratios):.2f}x to
{max(round_ratios):.2f}x{noise}; the one-subscriber figures isolate what Redis adds.

Where the time goes:

* **The path, then the fan-out.** Per event (medians over the events), the first client has it after
  {first["rawrt-memory"]:.2f} ms on one memory node, {first["rawrt-redis-1"]:.2f} ms on one node on Redis
  and {first["rawrt-redis"]:.2f} ms on two; the last after {last["rawrt-memory"]:.2f},
  {last["rawrt-redis-1"]:.2f} and {last["rawrt-redis"]:.2f} ms. The first is the path: POST, publish,
  for Redis the `XADD`, its answer and the reply to each node's blocked `XREAD` (parsed by redis-py), then
  one write. With one subscriber the same path takes {hop["rawrt-memory"]:.2f}, {hop["rawrt-redis-1"]:.2f}
  and {hop["rawrt-redis"]:.2f} ms: the Redis hop costs about {hop["rawrt-redis"] - hop["rawrt-memory"]:.2f}
  ms per event, whatever the number of subscribers. The gap to the last client is the fan-out: rawrt writes
  an event to each subscriber inside the publish call ({cpu_per["rawrt-memory"]:.1f} µs of server CPU per
  delivery on one memory node; on one memory node the POST is answered after the writes, in
  {post["rawrt-memory"]:.2f} ms), while this process reads the {args.clients:,} sockets on the other core.
  One memory node spends {cpu_per["rawrt-memory"] * args.clients / 1000:.1f} ms of CPU per event
  ({args.clients:,} deliveries), yet the last client has it after {last["rawrt-memory"]:.2f} ms: the rest is
  waiting, for the core (shared with other workloads in this run) and for this process's reads.
  The fan-out is about the same work whatever the hub (CPU per delivery, above), and at {args.clients:,}
  clients it is most of the latency:
  one node on Redis / one memory node is {r1_50:.2f}x at p50 and {r1_99:.2f}x at p99; splitting the clients
  over two nodes on the same core gives {r2_50:.2f}x / {r2_99:.2f}x of one node on Redis (the two nodes'
  fan-outs share core 0: the same work, interleaved; on two machines they would run side by side). Redis
  itself spends microseconds per event in the commands (above); the rest of its CPU per publish is spent
  outside them (socket reads and writes, waking the blocked readers).
* **Commands**: one `XADD` per publish, and one `XREAD` per node per read batch: at one event per
  {args.interval_ms:g} ms every read returns one event, so 1 + nodes commands per publish, whatever the number
  of subscribers. An `XREAD` returns up to 1,000 entries, so events that queue up while a node fans out are
  read together; in the bursts it took {burst_cmds:.2f} commands per publish ({batching}).
  python-socketio sends one `PUBLISH` per emit (Redis pushes it to every subscribed node): fewer commands,
  but no history, so a client that reconnects cannot resume.
* **python-socketio** sends to the emitting node's own clients first and only then `PUBLISH`es: the
  other node starts its fan-out after the first one's (p50 {sio_near:.2f} ms at the publisher's node,
  {sio_far:.2f} ms at the other). Its fan-out costs {cpu_per["socketio-redis"]:.1f} µs of server CPU per
  delivery (the packet is encoded once, but each emit starts an asyncio task per recipient, which puts it
  into the Engine.IO socket's queue for that socket's writer task; none runs before the emit has created
  them all, so even the first client waits for the whole loop) against rawrt's
  {cpu_per["rawrt-redis"]:.1f} µs on two nodes and {cpu_per["rawrt-memory"]:.1f} µs on one. First / last
  client per event: {first["socketio-redis"]:.2f} / {last["socketio-redis"]:.2f} ms; one subscriber:
  {hop["socketio-redis"]:.2f} ms.
"""),
    )


def reflow(text: str, width: int = 110) -> str:
    """Wrap the prose of a Markdown section to ``width`` once its figures are in (tables stay as they are)."""
    blocks = []
    for block in text.split("\n\n"):
        if block.lstrip().startswith(("|", "#")):
            blocks.append(block)
            continue
        # A bulleted list: each item wrapped on its own, continued under its text.
        items = re.split(r"\n(?=\* )", block)
        blocks.append(
            "\n".join(
                textwrap.fill(
                    " ".join(item.split()),
                    width,
                    subsequent_indent="  " if item.startswith("* ") else "",
                    break_on_hyphens=False,
                )
                for item in items
            )
        )
    return "\n\n".join(blocks)


def redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return "unknown"


if __name__ == "__main__":
    main()
