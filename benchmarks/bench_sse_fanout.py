"""SSE fan-out to 1,000 clients: rawrt's demo ``/events`` against an aiohttp ``web.StreamResponse`` peer.

The servers run on uvloop, one process each, pinned to core 0 (``demo_server.py`` and ``aiohttp_peer.py``:
the same contract, ``POST /publish?channel=C`` and ``GET /events?channel=C``; and ``sse_floor.py``, a bare
Protocol writing to every subscriber inside the publish call, which shows how much of the fan-out time is
the event loop and the ``send()`` calls alone). This process, on uvloop, pinned to core 1, opens
``--clients`` (1,000) SSE connections to each server with raw asyncio protocols
(``transport_clients.SSEClient``), keeps them all open, and lets the servers take turns: in each of
``--rounds`` (12) rounds, each server in rotated order gets ``--seconds`` (3 s) of one event every
``--interval-ms`` (100 ms), i.e. 10,000 delivered events/s. Short turns, seconds apart, keep the comparison
fair on a shared machine whose load comes and goes. The event's data is the publisher's
``time.monotonic()``, so every client computes each event's publish-to-receive latency (the POST included).

Reported per server: p50 and p99 over every (client, event) of a round, medians over the rounds; the ratio
rawrt / aiohttp is the median of the per-round ratios (issue 5's target: p50 and p99 ratios <= 0.5). Every
id of every event at every client is checked over the whole run (lost, duplicated, out of order). Server
CPU (``/proc/PID/stat``) per delivered event, and this process's CPU (the clients are not the bottleneck).
Usage::

    python benchmarks/bench_sse_fanout.py [--clients 1000] [--interval-ms 100] [--seconds 3] [--rounds 12]
        [--only rawrt|aiohttp|floor] [--write]

``--only`` runs one server (for profiling it); ``--write`` puts the figures into docs/benchmarks.md
(section ``sse-fanout``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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
    publish_for,
)

HERE = Path(__file__).resolve().parent
SERVERS = ("rawrt", "aiohttp", "floor")
CHANNEL = "fanout"
LABELS = {
    "rawrt": "rawrt",
    "aiohttp": "aiohttp peer",
    "floor": "floor (raw Protocol, writes inside publish)",
}


@dataclass(frozen=True)
class Round:
    """One server's figures in one round."""

    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    published: int
    delivered: int
    expected: int
    lost: int
    duplicates: int
    server_cpu: float
    #: Server CPU per delivered event, microseconds.
    cpu_us: float
    client_cpu: float
    rate: float
    errors: tuple[str, ...]


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Target:
    """One server under test: its clients (open for the whole run), publisher, tally and channel."""

    def __init__(self, name: str, port: int, pid: int) -> None:
        self.name = name
        self.port = port
        self.pid = pid
        self.tally = Tally()
        self.conns: list[Client] = []
        self.publisher: Publisher | None = None
        self.last_id = 0
        self.published = 0  # events published on the channel (the ids start far above 0: rawrt.hub.ids)

    async def open(self, clients: int) -> None:
        factory = ClientFactory(self.port, SSEClient, self.tally, self.port, CHANNEL)
        self.conns = await open_clients(factory, clients)

    async def connect_publisher(self) -> Publisher:
        # A fresh connection per slice: between two turns the publisher idles longer than rawrt's
        # keep-alive timeout (5 s).
        if self.publisher is not None:
            self.publisher.close()
        _, publisher = await asyncio.get_running_loop().create_connection(
            lambda: Publisher(Tally(), self.port), "127.0.0.1", self.port
        )
        assert isinstance(publisher, Publisher)
        self.publisher = publisher
        return publisher

    async def slice(self, interval: float, seconds: float) -> Round:
        """Publish for ``seconds`` and wait for the deliveries; the figures of this slice alone."""
        tally, clients = self.tally, len(self.conns)
        publisher = await self.connect_publisher()
        n0, d0, dup0 = len(tally.latencies), tally.delivered, tally.duplicates
        cpu0, own0, t0 = cpu_seconds(self.pid), own_cpu(), time.monotonic()
        self.last_id, _ = await publish_for(publisher, CHANNEL, interval, seconds)
        cpu1, own1, t1 = cpu_seconds(self.pid), own_cpu(), time.monotonic()
        # Counted, not derived from the ids: they start far above 0 (rawrt.hub.ids), so a difference from
        # a starting 0 would count every id below the first one as published.
        published = max(1, round(seconds / interval))
        self.published += published
        expected = clients * published
        # Wait for the stragglers, but no longer than 5 s: a lost event must not hang the benchmark.
        deadline = time.monotonic() + 5
        while tally.delivered - d0 < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        delivered = tally.delivered - d0
        lat = sorted(tally.latencies[n0:])
        return Round(
            p50_ms=1000 * percentile(lat, 0.50),
            p99_ms=1000 * percentile(lat, 0.99),
            mean_ms=1000 * sum(lat) / len(lat),
            max_ms=1000 * lat[-1],
            published=published,
            delivered=delivered,
            expected=expected,
            lost=expected - delivered,
            duplicates=tally.duplicates - dup0,
            server_cpu=100 * (cpu1 - cpu0) / (t1 - t0),
            cpu_us=1e6 * (cpu1 - cpu0) / max(1, delivered),
            client_cpu=100 * (own1 - own0) / (t1 - t0),
            rate=delivered / (t1 - t0),
            errors=tuple(tally.errors[:5]),
        )

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        if self.publisher is not None:
            self.publisher.close()
        # Every client must hold every id from 1 to the last one, in order: gaps and missing tails.
        self.tally.finish(self.conns, self.last_id, self.published)


def show(name: str, r: Round) -> str:
    return (
        f"{name:>7}: p50 {r.p50_ms:6.2f} ms, p99 {r.p99_ms:6.2f} ms, "
        f"mean {r.mean_ms:6.2f}, max {r.max_ms:6.1f}; "
        f"delivered {r.delivered}/{r.expected} (lost {r.lost}, dup {r.duplicates}), "
        f"{r.rate:,.0f} events/s; CPU server {r.server_cpu:.0f}%, clients {r.client_cpu:.0f}%"
        + (f"; errors {list(r.errors)}" if r.errors else "")
    )


async def run(
    args: argparse.Namespace, servers: tuple[str, ...], ports: dict[str, int], pids: dict[str, int]
) -> tuple[dict[str, list[Round]], dict[str, Tally], dict[str, int]]:
    interval = args.interval_ms / 1000
    targets = {name: Target(name, ports[name], pids[name]) for name in servers}
    for target in targets.values():
        await target.open(args.clients)
    await asyncio.sleep(0.5)
    for target in targets.values():  # warm-up: code paths, the allocator, the caches
        print("warm-up", show(target.name, await target.slice(interval, 1)), flush=True)
    results: dict[str, list[Round]] = {name: [] for name in servers}
    try:
        for i in range(args.rounds):
            # Rotate which server goes first, so drift in machine load hits them alike.
            for name in servers[i % len(servers) :] + servers[: i % len(servers)]:
                r = await targets[name].slice(interval, args.seconds)
                results[name].append(r)
                print(f"round {i + 1}", show(name, r), flush=True)
    finally:
        for target in targets.values():
            target.close()
        await asyncio.sleep(0.2)
    tallies = {name: target.tally for name, target in targets.items()}
    return results, tallies, {name: target.published for name, target in targets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--only", choices=SERVERS, help="run one server alone (profiling; no ratio)")
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    servers = (args.only,) if args.only else SERVERS

    # Each server inherits this limit; it raises its own soft limit to the hard one as well.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(SERVERS) * args.clients + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    ports = {name: free_port() for name in servers}
    scripts = {"rawrt": "demo_server.py", "aiohttp": "aiohttp_peer.py", "floor": "sse_floor.py"}
    procs = {
        name: start_server(
            [sys.executable, str(HERE / scripts[name]), str(ports[name]), "--loop", "uvloop"], ports[name]
        )
        for name in servers
    }
    try:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {int(CLIENT_CPU)})
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        load_before = os.getloadavg()[0]
        pids = {name: proc.pid for name, proc in procs.items()}
        results, tallies, targets_last = asyncio.run(run(args, servers, ports, pids))
        load_after = os.getloadavg()[0]
    finally:
        for proc in procs.values():
            stop(proc)
    if args.only:
        return

    def med(name: str, attr: str) -> float:
        return median([getattr(r, attr) for r in results[name]])

    def round_ratio(name: str, attr: str) -> float:
        # Pairs of slices a few seconds apart share the machine's conditions: the median of their ratios
        # is what noise from other workloads disturbs least.
        pairs = zip(results[name], results["aiohttp"], strict=True)
        return median([getattr(a, attr) / getattr(b, attr) for a, b in pairs])

    p50_ratio, p99_ratio = round_ratio("rawrt", "p50_ms"), round_ratio("rawrt", "p99_ms")
    verdict = "met" if p50_ratio <= 0.5 and p99_ratio <= 0.5 else "missed"
    rows = [
        "| | p50 latency | p99 latency | mean | server CPU | CPU per delivery | client CPU "
        "| delivered / expected (whole run) | lost | dup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SERVERS:
        tally = tallies[name]
        rows.append(
            f"| {LABELS[name]} | {med(name, 'p50_ms'):.2f} ms | {med(name, 'p99_ms'):.2f} ms "
            f"| {med(name, 'mean_ms'):.2f} ms | {med(name, 'server_cpu'):.0f}% "
            f"| {med(name, 'cpu_us'):.1f} µs | {med(name, 'client_cpu'):.0f}% "
            f"| {tally.delivered:,} / {args.clients * targets_last[name]:,} "
            f"| {tally.lost} | {tally.duplicates} |"
        )
    rows.append(
        f"| **rawrt / aiohttp** (median of per-round ratios) | **{p50_ratio:.2f}x** | **{p99_ratio:.2f}x** "
        f"| {round_ratio('rawrt', 'mean_ms'):.2f}x | | {round_ratio('rawrt', 'cpu_us'):.2f}x | | | | |"
    )
    rows.append(
        f"| rawrt / aiohttp (ratio of the medians) "
        f"| {med('rawrt', 'p50_ms') / med('aiohttp', 'p50_ms'):.2f}x "
        f"| {med('rawrt', 'p99_ms') / med('aiohttp', 'p99_ms'):.2f}x "
        f"| {med('rawrt', 'mean_ms') / med('aiohttp', 'mean_ms'):.2f}x | "
        f"| {med('rawrt', 'cpu_us') / med('aiohttp', 'cpu_us'):.2f}x | | | | |"
    )
    rows.append(
        f"| floor / aiohttp | {round_ratio('floor', 'p50_ms'):.2f}x | {round_ratio('floor', 'p99_ms'):.2f}x "
        f"| {round_ratio('floor', 'mean_ms'):.2f}x | | {round_ratio('floor', 'cpu_us'):.2f}x | | | | |"
    )
    table = "\n".join(rows)
    per_round = "\n".join(
        f"| {i + 1} | {a.p50_ms:.2f} / {a.p99_ms:.2f} | {b.p50_ms:.2f} / {b.p99_ms:.2f} "
        f"| {c.p50_ms:.2f} / {c.p99_ms:.2f} | {a.p50_ms / b.p50_ms:.2f}x / {a.p99_ms / b.p99_ms:.2f}x |"
        for i, (a, b, c) in enumerate(
            zip(results["rawrt"], results["aiohttp"], results["floor"], strict=True)
        )
    )
    print(table)
    print(f"target (p50 and p99 ratios <= 0.5): {verdict}")
    if args.write:
        from importlib.metadata import version

        rate = args.clients * 1000 / args.interval_ms
        write_section(
            "sse-fanout",
            f"""## SSE fan-out: 1 publisher, {args.clients:,} clients (`benchmarks/bench_sse_fanout.py`)

rawrt's demo `/events` against a minimal aiohttp {version("aiohttp")} pub/sub
(`benchmarks/aiohttp_peer.py`: `web.StreamResponse`, one `asyncio.Queue` per subscriber, each event encoded
once), and the floor below: all on uvloop {version("uvloop")}, one process each, pinned to core 0.
{args.clients:,} SSE clients per server (raw asyncio protocols) and the publishers in one process on uvloop,
pinned to core 1. Every client stays connected for the whole run; the servers take turns: in each round,
each server gets {args.seconds:g} s of one event every {args.interval_ms:g} ms ({rate:,.0f} delivered
events/s), in rotated order, after a 1 s warm-up each. An event's data is the publisher's
`time.monotonic()`, so latency is publish-to-receive (the POST included), over every (client, event) of the
round. Every id at every client is checked over the whole run (lost: ids never received, dup: received
twice). {args.rounds} rounds; figures are medians of the rounds, ratios the median of the per-round ratios
(slices seconds apart share the machine's conditions). CPU: % of one core over the publishing window, and
per delivered event. Machine: {machine()}; shared with other workloads (1-minute load average
{load_before:.1f} before the run, {load_after:.1f} after): rounds hit by them show in the per-round table.

{table}

Per round, p50 / p99 in ms:

| round | rawrt | aiohttp | floor | rawrt / aiohttp |
|---|---|---|---|---|
{per_round}

Issue 5's target (rawrt's p50 and p99 at most 0.5x aiohttp's, judged on the median of per-round
ratios): **{verdict}**.

The floor (`benchmarks/sse_floor.py`) is not a server: a bare `asyncio.Protocol` that writes the event to
every subscriber's transport inside the publish call (no task, queue or future per delivery, no
backpressure, no heartbeat). Its time is the event loop plus one `send()` per subscriber: about the least
a Python server on this loop can take, and so a bound on what a ratio against aiohttp can reach.
""",
        )


if __name__ == "__main__":
    main()
