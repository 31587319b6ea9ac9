"""SSE fan-out to 1,000 clients: rawrt's demo ``/events`` against an aiohttp ``web.StreamResponse`` peer.

The servers run on uvloop, one process each, pinned to core 0 (``demo_server.py`` and ``aiohttp_peer.py``:
the same contract, ``POST /publish?channel=C`` and ``GET /events?channel=C``). This process opens
``--clients`` (1,000) SSE connections with raw asyncio protocols (``transport_clients.SSEClient``) on
uvloop, pinned to core 1, waits until every stream is live, then publishes one event every
``--interval-ms`` (100 ms) for ``--seconds`` (10 s): 10,000 delivered events/s. The event's data is the
publisher's ``time.monotonic()``, so every client computes each event's publish-to-receive latency (the
POST included). Reported per server: p50 and p99 over every (client, event), the events each client
received (every id of every event at every client is checked: lost, duplicated, out of order), server CPU
(``/proc/PID/stat``) and this process's CPU (to show the clients are not the bottleneck).

``--rounds`` (3) rounds after a short warm-up round, rotating which server goes first; each figure is
the median over the rounds and the ratio is rawrt / aiohttp (issue 5's target: p50 and p99 ratios
<= 0.5). Usage::

    python benchmarks/bench_sse_fanout.py [--clients 1000] [--interval-ms 100] [--seconds 10] [--rounds 3]
        [--write]

A third server, the floor (``sse_floor.py``: a bare Protocol writing to every subscriber inside the publish
call), shows how much of the fan-out time is the event loop and the ``send()`` calls alone.

``--write`` puts the figures into docs/benchmarks.md (section ``sse-fanout``).
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
    client_cpu: float
    rate: float
    errors: tuple[str, ...]


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fanout(port: int, pid: int, channel: str, clients: int, interval: float, seconds: float) -> Round:
    loop = asyncio.get_running_loop()
    tally = Tally()
    conns = await open_clients(ClientFactory(port, SSEClient, tally, port, channel), clients)
    _, publisher = await loop.create_connection(lambda: Publisher(Tally(), port), "127.0.0.1", port)
    assert isinstance(publisher, Publisher)
    await asyncio.sleep(0.5)
    cpu0, own0, t0 = cpu_seconds(pid), own_cpu(), time.monotonic()
    last_id, _ = await publish_for(publisher, channel, interval, seconds)
    cpu1, own1, t1 = cpu_seconds(pid), own_cpu(), time.monotonic()
    # Wait for the stragglers, but no longer than 5 s: a lost event must not hang the benchmark.
    deadline = time.monotonic() + 5
    while tally.delivered < clients * last_id and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for conn in [*conns, publisher]:
        conn.close()
    await asyncio.sleep(0.5)  # let the server drop the streams before the next round
    tally.finish(conns, last_id)
    lat = sorted(tally.latencies)
    return Round(
        p50_ms=1000 * percentile(lat, 0.50),
        p99_ms=1000 * percentile(lat, 0.99),
        mean_ms=1000 * sum(lat) / len(lat),
        max_ms=1000 * lat[-1],
        published=last_id,
        delivered=tally.delivered,
        expected=clients * last_id,
        lost=tally.lost,
        duplicates=tally.duplicates,
        server_cpu=100 * (cpu1 - cpu0) / (t1 - t0),
        client_cpu=100 * (own1 - own0) / (t1 - t0),
        rate=tally.delivered / (t1 - t0),
        errors=tuple(tally.errors[:5]),
    )


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
) -> dict[str, list[Round]]:
    interval = args.interval_ms / 1000
    for name in servers:  # warm-up: connections, code paths, the allocator
        print(
            "warm-up", show(name, await fanout(ports[name], pids[name], "warmup", args.clients, interval, 2))
        )
    results: dict[str, list[Round]] = {name: [] for name in servers}
    for i in range(args.rounds):
        # Rotate which server goes first, so drift in machine load hits them alike.
        for name in servers[i % len(servers) :] + servers[: i % len(servers)]:
            r = await fanout(ports[name], pids[name], f"fanout-{i}", args.clients, interval, args.seconds)
            results[name].append(r)
            print(f"round {i + 1}", show(name, r), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=SERVERS, help="run one server alone (profiling; no ratio)")
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    servers = (args.only,) if args.only else SERVERS

    # Each server inherits this limit; it raises its own soft limit to the hard one as well.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * args.clients + 100
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
        results = asyncio.run(run(args, servers, ports, {name: proc.pid for name, proc in procs.items()}))
    finally:
        for proc in procs.values():
            stop(proc)
    if args.only:
        return

    def med(name: str, attr: str) -> float:
        return median([getattr(r, attr) for r in results[name]])

    p50_ratio = med("rawrt", "p50_ms") / med("aiohttp", "p50_ms")
    p99_ratio = med("rawrt", "p99_ms") / med("aiohttp", "p99_ms")
    lost = {name: sum(r.lost for r in results[name]) for name in SERVERS}
    dups = {name: sum(r.duplicates for r in results[name]) for name in SERVERS}
    delivered = {name: sum(r.delivered for r in results[name]) for name in SERVERS}
    expected = {name: sum(r.expected for r in results[name]) for name in SERVERS}
    verdict = "met" if p50_ratio <= 0.5 and p99_ratio <= 0.5 else "missed"
    rows = [
        "| | p50 latency | p99 latency | mean | server CPU | client CPU "
        "| delivered / expected | lost | dup |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SERVERS:
        rows.append(
            f"| {LABELS[name]} | {med(name, 'p50_ms'):.2f} ms | {med(name, 'p99_ms'):.2f} ms "
            f"| {med(name, 'mean_ms'):.2f} ms "
            f"| {med(name, 'server_cpu'):.0f}% | {med(name, 'client_cpu'):.0f}% "
            f"| {delivered[name]:,} / {expected[name]:,} | {lost[name]} | {dups[name]} |"
        )
    rows.append(f"| **rawrt / aiohttp** | **{p50_ratio:.2f}x** | **{p99_ratio:.2f}x** | | | | | | |")
    floor_p50 = med("floor", "p50_ms") / med("aiohttp", "p50_ms")
    floor_p99 = med("floor", "p99_ms") / med("aiohttp", "p99_ms")
    rows.append(f"| floor / aiohttp | {floor_p50:.2f}x | {floor_p99:.2f}x | | | | | | |")
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
{args.clients:,} SSE clients (raw asyncio protocols) and the publisher in one process on uvloop, pinned to
core 1. One event every
{args.interval_ms:g} ms for {args.seconds:g} s ({rate:,.0f} delivered events/s); its data is the
publisher's `time.monotonic()`, so latency is publish-to-receive (the POST included), over every
(client, event). Every id at every client is checked. A warm-up round, then {args.rounds} rounds rotating
which server goes first; medians. CPU: % of one core over the publishing window. Machine: {machine()};
shared with other workloads.

{table}

Per round, p50 / p99 in ms:

| round | rawrt | aiohttp | floor | rawrt / aiohttp |
|---|---|---|---|---|
{per_round}

Issue 5's target (rawrt's p50 and p99 at most 0.5x aiohttp's): **{verdict}**.

The floor (`benchmarks/sse_floor.py`) is not a server: a bare `asyncio.Protocol` that writes the event to
every subscriber's transport inside the publish call (no task, queue or future per delivery, no
backpressure, no heartbeat). Its time is the event loop plus one `send()` per subscriber: the least any
Python server on this loop can take, and so the bound on what a ratio against aiohttp can reach.
""",
        )


if __name__ == "__main__":
    main()
