"""HTTP/2: requests per second against hypercorn, and SSE fan-out over HTTP/2 against HTTP/1.1.

**Requests** (section ``h2-requests``): ``h2load`` (Debian's ``nghttp2-client``), pinned to core 1, asks
``GET /hello`` of rawrt's demo (``demo_server.py``) and of hypercorn (which speaks HTTP/2 through the ``h2``
package) serving an ASGI app that answers the same 13 bytes, both one process on uvloop pinned to core 0.
Cells: HTTP/2 cleartext with prior knowledge, 10 connections x 10 streams in flight (``-c 10 -m 10``) and
x 1 (``-m 1``); HTTP/1.1 (``--h1 -c 10 -m 1``, keep-alive, no pipelining) for rawrt's own HTTP/1.1
figure and hypercorn's. Every cell of every round runs ``--seconds`` after ``--warm-up`` seconds; the
servers alternate within each round and the cells rotate, so drift in the machine's load hits all alike.
Medians; the ratio is the median of the per-round ratios. ``--profile`` also runs rawrt alone under
cProfile for one ``-c 10 -m 10`` cell and prints where its time goes.

**SSE fan-out** (section ``h2-sse-fanout``): one rawrt demo (core 0) with 1,000 event streams of one channel
over 10 HTTP/2 connections (100 streams each: ``h2_clients.H2EventStreams``, raw frames) and 1,000
HTTP/1.1 SSE connections to another channel (``transport_clients.SSEClient``), all open for the whole run,
in one process on uvloop pinned to core 1 with the publisher. The two take turns: ``--fanout-seconds`` of
one event every 100 ms to one channel, then the other, over ``--fanout-rounds`` rounds in rotated order.
Latency is publish-to-receive (the event's data is the publisher's ``time.monotonic()``; the POST is
included), over every (stream, event) of a slice.

Usage::

    python benchmarks/bench_h2.py [--only requests|fanout] [--rounds 5] [--seconds 4] [--profile] [--write]

Needs: h2load, hypercorn (a benchmark peer only: ``pip install hypercorn``), hpack (installed with h2),
uvloop. Never asserts a timing: it measures and writes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from _common import (
    CLIENT_CPU,
    SERVER_CPU,
    free_port,
    machine,
    median,
    pinned,
    start_server,
    stop,
    wait_port,
    write_section,
)
from h2_clients import BaselineSSEClient, H2EventStreams
from transport_clients import (
    HOST,
    Client,
    ClientFactory,
    Publisher,
    Tally,
    cpu_seconds,
    open_clients,
    percentile,
)

HERE = Path(__file__).resolve().parent

ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})
"""

#: (label, load generator and its arguments): the cells of the requests table. h2load --h1 counts every
#: answer of hypercorn's HTTP/1.1 (h11) as failed (its status line has an empty reason phrase,
#: "HTTP/1.1 200 "),
#: so the HTTP/1.1 comparison is made with wrk, and h2load --h1 gives rawrt's HTTP/1.1 figure on the same
#: load generator as its HTTP/2 ones.
CELLS = (
    ("HTTP/2, h2load -c 10 -m 10", ["h2load", "-c", "10", "-m", "10"]),
    ("HTTP/2, h2load -c 10 -m 1", ["h2load", "-c", "10", "-m", "1"]),
    ("HTTP/1.1, h2load --h1 -c 10 -m 1", ["h2load", "--h1", "-c", "10", "-m", "1"]),
    ("HTTP/1.1, wrk -c 10", ["wrk", "-c10"]),
)
SERVERS = ("rawrt", "hypercorn")
#: The cells a server is not run in (see CELLS).
SKIP = {("hypercorn", CELLS[2][0])}


# --- requests per second -------------------------------------------------------------------------------


def measure(port: int, cell: list[str], seconds: float, warm_up: float) -> float:
    """Requests per second of one cell's load generator."""
    if cell[0] == "wrk":
        return wrk(port, cell[1:], seconds, warm_up)
    return h2load(port, cell[1:], seconds, warm_up)


def wrk(port: int, args: list[str], seconds: float, warm_up: float) -> float:
    if warm_up:
        subprocess.run(
            pinned(CLIENT_CPU, ["wrk", "-t1", *args, "-d1s", f"http://{HOST}:{port}/hello"]),
            capture_output=True,
            check=True,
        )
    out = subprocess.run(
        pinned(CLIENT_CPU, ["wrk", "-t1", *args, f"-d{round(seconds)}s", f"http://{HOST}:{port}/hello"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk run failed:\n{out}")
    return float(match.group(1))


def h2load(port: int, args: list[str], seconds: float, warm_up: float) -> float:
    """Requests per second of one h2load run (every answer must be a 2xx)."""
    # h2load reads a duration as whole seconds, or with a unit ("500ms").
    argv = ["h2load", "-t", "1", "-D", f"{round(seconds * 1000)}ms", *args]
    if warm_up:
        argv += ["--warm-up-time", f"{round(warm_up * 1000)}ms"]
    out = subprocess.run(
        pinned(CLIENT_CPU, [*argv, f"http://{HOST}:{port}/hello"]),
        capture_output=True,
        text=True,
        timeout=seconds + warm_up + 60,
    ).stdout
    rate = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    # With -D, the requests still in flight when the time is up count as failed: at most c x m of them.
    in_flight = int(args[args.index("-c") + 1]) * int(args[args.index("-m") + 1])
    if (
        rate is None
        or counts is None
        or codes is None
        or int(counts.group(4)) > in_flight
        or int(codes.group(3))
        or int(codes.group(4))
    ):
        raise RuntimeError(f"h2load {' '.join(args)} on port {port} failed:\n{out}")
    return float(rate.group(1))


def start_rawrt(port: int, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    return start_server(
        [sys.executable, *(extra or []), str(HERE / "demo_server.py"), str(port), "--loop", "uvloop"], port
    )


def start_hypercorn(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    (tmp / "hc_hello.py").write_text(ASGI_APP)
    argv = [sys.executable, "-m", "hypercorn", "-k", "uvloop", "-b", f"{HOST}:{port}"]
    return start_server([*argv, "--log-level", "warning", "hc_hello:app"], port, cwd=tmp)


def profile_rawrt(seconds: float) -> str:
    """rawrt under cProfile for one ``-c 10 -m 10`` run: the top functions by own time (markdown rows)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "rawrt.prof")
        proc = subprocess.Popen(
            pinned(
                SERVER_CPU,
                [sys.executable, "-m", "cProfile", "-o", str(out), str(HERE / "demo_server.py"), str(port)],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port)
            rate = h2load(port, ["-c", "10", "-m", "10"], seconds, 0.5)
        finally:
            proc.send_signal(signal.SIGINT)  # cProfile writes its file on the way out
            proc.wait(30)
        stats = pstats.Stats(str(out))
        raw = stats.stats  # type: ignore[attr-defined]
        total = sum(entry[2] for entry in raw.values())
        top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:15]
        rows = [f"Under cProfile (which slows it down): {rate:,.0f} req/s.", ""]
        rows += ["| function | own time | calls |", "|---|---|---|"]
        for (filename, line, name), (_, calls, own, _, _) in top:
            where = filename.replace(str(HERE.parent) + "/", "")
            where = re.sub(r".*/site-packages/", "", where)
            label = f"`{where}:{line} {name}`" if line else f"`{name}`"
            rows.append(f"| {label} | {100 * own / total:.1f}% | {calls:,} |")
        return "\n".join(rows)


def run_requests(args: argparse.Namespace) -> None:
    ports = {name: free_port() for name in SERVERS}
    rates: dict[tuple[str, str], list[float]] = {(s, c): [] for s in SERVERS for c, _ in CELLS}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        procs = {
            "rawrt": start_rawrt(ports["rawrt"]),
            "hypercorn": start_hypercorn(ports["hypercorn"], Path(tmp)),
        }
        try:
            for name in SERVERS:  # warm-up: code paths, the allocator
                measure(ports[name], list(CELLS[0][1]), 1, 0)
            for i in range(args.rounds):
                cells = CELLS[i % len(CELLS) :] + CELLS[: i % len(CELLS)]
                for label, cell_args in cells:
                    order = SERVERS if i % 2 == 0 else SERVERS[::-1]
                    for name in order:
                        if (name, label) in SKIP:
                            continue
                        rate = measure(ports[name], list(cell_args), args.seconds, args.warm_up)
                        rates[(name, label)].append(rate)
                        print(f"round {i + 1}: {name:9} {label:28} {rate:10,.0f} req/s", flush=True)
        finally:
            for proc in procs.values():
                stop(proc)
    load_after = os.getloadavg()[0]
    profile = profile_rawrt(args.seconds) if args.profile else ""
    rows = [
        "| cell | rawrt req/s | hypercorn req/s | rawrt / hypercorn (median of per-round ratios) "
        "| rawrt: rounds' range |",
        "|---|---|---|---|---|",
    ]
    ratios: dict[str, float] = {}
    for label, _ in CELLS:
        ours, theirs = rates[("rawrt", label)], rates[("hypercorn", label)]
        if theirs:
            ratios[label] = median([a / b for a, b in zip(ours, theirs, strict=True)])
            peer, ratio = f"{median(theirs):,.0f}", f"**{ratios[label]:.2f}x**"
        else:
            peer, ratio = "– (see above)", ""
        rows.append(
            f"| {label} | {median(ours):,.0f} | {peer} | {ratio} | {min(ours):,.0f}-{max(ours):,.0f} |"
        )
    rawrt = {label: median(rates[("rawrt", label)]) for label, _ in CELLS}
    h2_m10, h2_m1, h1 = rawrt[CELLS[0][0]], rawrt[CELLS[1][0]], rawrt[CELLS[2][0]]
    table = "\n".join(rows)
    print(table)
    if profile:
        print(profile)
    aim = ratios[CELLS[0][0]]
    verdict = "met" if aim >= 2 else "missed"
    if not args.write:
        return
    text = f"""## HTTP/2: `GET /hello` with h2load, against hypercorn (`benchmarks/bench_h2.py`)

rawrt's demo (`benchmarks/demo_server.py`) against hypercorn {version("hypercorn")} (HTTP/2 by the `h2`
package {version("h2")}, HTTP/1.1 by `h11`) serving an ASGI app that answers the same 13-byte `text/plain`
body; both one process on uvloop {version("uvloop")}, pinned to core 0; HTTP/2 in cleartext with prior
knowledge (RFC 9113 §3.3). The load generator pinned to core 1, one thread: h2load {_h2load_version()}, and
wrk for the HTTP/1.1 comparison (h2load `--h1` counts every answer of hypercorn's `h11` as failed: its
status line has an empty reason phrase, `HTTP/1.1 200 `). Each cell {args.seconds:g} s after
{args.warm_up:g} s of warm-up; the servers alternated within each of {args.rounds} rounds, the cells rotated.
Medians; the ratio is the median of the per-round ratios. Machine: {machine()}; shared with other
workloads (1-minute load average {load_before:.1f} before the run, {load_after:.1f} after).

{table}

Issue 12's aim (rawrt at least 2x hypercorn over HTTP/2, `-c 10 -m 10`): **{verdict}** ({aim:.2f}x).
rawrt over HTTP/2 with 10 streams in flight per connection: {h2_m10:,.0f} requests/s; with one at a time:
{h2_m1:,.0f}; over HTTP/1.1 with the same 10 connections, one request at a time, and the same load
generator: {h1:,.0f} (HTTP/2 -m 10 / HTTP/1.1 = {h2_m10 / h1:.2f}x; -m 1 / HTTP/1.1 = {h2_m1 / h1:.2f}x).
"""
    if profile:
        text += (
            "\nWhere rawrt's time goes over HTTP/2 (`--profile`: one `-c 10 -m 10` run under cProfile, "
            f"the top 15 functions by own time):\n\n{profile}\n"
        )
    write_section("h2-requests", text)


def _h2load_version() -> str:
    out = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"nghttp2/([\d.]+)", out)
    return match.group(1) if match else "?"


# --- SSE fan-out -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    p50_ms: float
    p99_ms: float
    delivered: int
    expected: int
    rate: float
    cpu_us: float
    client_cpu: float


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Side:
    """One transport's clients on one channel, open for the whole run."""

    def __init__(self, name: str, channel: str) -> None:
        self.name = name
        self.channel = channel
        self.tally = Tally()
        self.first_id = 0
        self.last_id = 0

    def last_ids(self) -> list[int]:
        raise NotImplementedError


class H1Side(Side):
    def __init__(self, channel: str) -> None:
        super().__init__("HTTP/1.1", channel)
        self.conns: list[Client] = []

    async def open(self, port: int, clients: int) -> None:
        factory = ClientFactory(port, BaselineSSEClient, self.tally, port, self.channel)
        self.conns = await open_clients(factory, clients)

    def last_ids(self) -> list[int]:
        return [c.last_id for c in self.conns]

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


class H2Side(Side):
    def __init__(self, channel: str) -> None:
        super().__init__("HTTP/2", channel)
        self.conns: list[H2EventStreams] = []

    async def open(self, port: int, connections: int, streams: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(connections):
            _, conn = await loop.create_connection(
                lambda: H2EventStreams(self.tally, port, self.channel, streams), HOST, port
            )
            assert isinstance(conn, H2EventStreams)
            await asyncio.wait_for(conn.connected, 30)
            self.conns.append(conn)

    def last_ids(self) -> list[int]:
        return [s.last_id for c in self.conns for s in c.streams.values()]

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


async def publish_slice(port: int, side: Side, pid: int, count: int, interval: float) -> Slice:
    """``count`` events to ``side``'s channel, one every ``interval`` seconds (0: each POST as soon as the
    previous one is answered, a burst), and the figures once every stream has them all (or after 5 s)."""
    loop = asyncio.get_running_loop()
    _, publisher = await loop.create_connection(lambda: Publisher(Tally(), port), HOST, port)
    assert isinstance(publisher, Publisher)
    tally = side.tally
    streams = len(side.last_ids())
    n0, d0 = len(tally.latencies), tally.delivered
    cpu0, own0, t0 = cpu_seconds(pid), own_cpu(), time.monotonic()
    start = loop.time()
    for k in range(count):
        delay = start + k * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        side.last_id = await publisher.publish(side.channel)
    t1 = time.monotonic()
    expected = streams * count
    deadline = time.monotonic() + 5  # stragglers, but a lost event must not hang the benchmark
    while tally.delivered - d0 < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
    cpu2, own2, t2 = cpu_seconds(pid), own_cpu(), time.monotonic()
    publisher.close()
    delivered = tally.delivered - d0
    lat = sorted(tally.latencies[n0:])
    return Slice(
        p50_ms=1000 * percentile(lat, 0.5),
        p99_ms=1000 * percentile(lat, 0.99),
        delivered=delivered,
        expected=expected,
        # Paced: what was delivered over the publishing window; a burst: until the last delivery.
        rate=delivered / ((t1 if interval else t2) - t0),
        cpu_us=1e6 * (cpu2 - cpu0) / max(1, delivered),
        client_cpu=100 * (own2 - own0) / (t2 - t0),
    )


async def fanout(
    args: argparse.Namespace, port: int, pid: int
) -> tuple[dict[str, list[Slice]], dict[str, list[Slice]], dict[str, Side]]:
    h1, h2 = H1Side("fanout-h1"), H2Side("fanout-h2")
    await h1.open(port, args.clients)
    await h2.open(port, args.clients // args.streams, args.streams)
    sides: dict[str, Side] = {"HTTP/1.1": h1, "HTTP/2": h2}
    await asyncio.sleep(0.5)
    interval = args.interval_ms / 1000
    paced = max(1, round(args.fanout_seconds / interval))
    for side in sides.values():
        print("warm-up", side.name, await publish_slice(port, side, pid, 10, interval), flush=True)
    results: dict[str, list[Slice]] = {name: [] for name in sides}
    bursts: dict[str, list[Slice]] = {name: [] for name in sides}
    names = list(sides)
    try:
        for i in range(args.fanout_rounds):
            for name in names[i % 2 :] + names[: i % 2]:
                r = await publish_slice(port, sides[name], pid, paced, interval)
                results[name].append(r)
                print(f"round {i + 1}: {name:8} {r}", flush=True)
                r = await publish_slice(port, sides[name], pid, args.burst, 0)
                bursts[name].append(r)
                print(f"round {i + 1}: {name:8} burst {r}", flush=True)
    finally:
        h1.close()
        h2.close()
        await asyncio.sleep(0.2)
    return results, bursts, sides


def run_fanout(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = free_port()
    proc = start_rawrt(port)
    load_before = os.getloadavg()[0]
    try:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {int(CLIENT_CPU)})
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        results, bursts, sides = asyncio.run(fanout(args, port, proc.pid))
    finally:
        stop(proc)
    load_after = os.getloadavg()[0]

    def med(name: str, attr: str, of: dict[str, list[Slice]] = results) -> float:
        return median([getattr(r, attr) for r in of[name]])

    rows = [
        "| | connections | p50 latency | p99 latency | server CPU per delivery (paced) "
        "| burst: deliveries/s | burst: server CPU per delivery | client CPU (paced / burst) "
        "| delivered / expected (whole run) | lost | dup | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, side in sides.items():
        tally = side.tally
        # Each stream's ids must run on to the channel's last one (gaps counted as they came).
        lost = tally.gaps + sum(side.last_id - x for x in side.last_ids())
        total_expected = sum(r.expected for r in results[name] + bursts[name])
        total_delivered = sum(r.delivered for r in results[name] + bursts[name])
        conns = args.clients if name == "HTTP/1.1" else args.clients // args.streams
        rows.append(
            f"| {name} | {conns:,} | {med(name, 'p50_ms'):.2f} ms | {med(name, 'p99_ms'):.2f} ms "
            f"| {med(name, 'cpu_us'):.1f} µs | {med(name, 'rate', bursts):,.0f} "
            f"| {med(name, 'cpu_us', bursts):.1f} µs "
            f"| {med(name, 'client_cpu'):.0f}% / {med(name, 'client_cpu', bursts):.0f}% "
            f"| {total_delivered:,} / {total_expected:,} | {lost} | {tally.duplicates} "
            f"| {len(tally.errors)} |"
        )
    pairs = list(zip(results["HTTP/2"], results["HTTP/1.1"], strict=True))
    burst_pairs = list(zip(bursts["HTTP/2"], bursts["HTTP/1.1"], strict=True))

    def ratio(attr: str, of: list[tuple[Slice, Slice]] = pairs) -> float:
        return median([getattr(a, attr) / getattr(b, attr) for a, b in of])

    rows.append(
        f"| **HTTP/2 / HTTP/1.1** (median of per-round ratios) | | **{ratio('p50_ms'):.2f}x** "
        f"| **{ratio('p99_ms'):.2f}x** | {ratio('cpu_us'):.2f}x | {ratio('rate', burst_pairs):.2f}x "
        f"| {ratio('cpu_us', burst_pairs):.2f}x | | | | | |"
    )
    per_round = "\n".join(
        f"| {i + 1} | {b.p50_ms:.2f} / {b.p99_ms:.2f} | {a.p50_ms:.2f} / {a.p99_ms:.2f} "
        f"| {a.p50_ms / b.p50_ms:.2f}x | {bb.rate:,.0f} | {ba.rate:,.0f} |"
        for i, ((a, b), (ba, bb)) in enumerate(zip(pairs, burst_pairs, strict=True))
    )
    table = "\n".join(rows)
    print(table)
    print(per_round)
    errors = [e for side in sides.values() for e in side.tally.errors[:3]]
    if errors:
        print("errors:", errors)
    if not args.write:
        return
    rate = args.clients * 1000 / args.interval_ms
    write_section(
        "h2-sse-fanout",
        f"""## SSE fan-out over HTTP/2: 1,000 streams on 10 connections (`benchmarks/bench_h2.py`)

One rawrt demo (`benchmarks/demo_server.py`, uvloop {version("uvloop")}, pinned to core 0) serving, at
the same time, {args.clients:,} event streams of one channel over {args.clients // args.streams} HTTP/2
connections ({args.streams} streams each, cleartext with prior knowledge; `benchmarks/h2_clients.py` writes
and reads the frames itself, with the `hpack` package for the headers) and {args.clients:,} HTTP/1.1 SSE
connections to another channel (`transport_clients.SSEClient`). Every stream stays open for the whole run;
the clients and the publisher are one process on uvloop pinned to core 1. In each of {args.fanout_rounds}
rounds each transport in rotated order gets {args.fanout_seconds:g} s of one event every
{args.interval_ms:g} ms ({rate:,.0f} deliveries/s asked), then a burst of {args.burst} events, each
`POST` sent as soon as the previous one is answered (deliveries/s from the first `POST` to the last
delivery). Latency: publish-to-receive (the publisher's `time.monotonic()` is the event's data; the `POST
/publish` is included), over every (stream, event) of a paced slice; medians of the rounds. Server CPU
from `/proc/PID/stat`, from the first `POST` to the last delivery, per delivered event. Lost: ids a stream
never received, checked over the whole run. Machine: {machine()}; shared with other workloads (1-minute
load average {load_before:.1f} before the run, {load_after:.1f} after).

{table}

Per round, paced p50 / p99 in ms, and the bursts' deliveries/s:

| round | HTTP/1.1 | HTTP/2 | HTTP/2 / HTTP/1.1 (p50) | burst HTTP/1.1 | burst HTTP/2 |
|---|---|---|---|---|---|
{per_round}
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["requests", "fanout"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--warm-up", type=float, default=0.5)
    parser.add_argument("--profile", action="store_true", help="also profile rawrt (cProfile) for one cell")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=100, help="HTTP/2 streams per connection")
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--fanout-seconds", type=float, default=3)
    parser.add_argument("--fanout-rounds", type=int, default=8)
    parser.add_argument("--burst", type=int, default=30, help="events published back to back per round")
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    if args.only != "fanout":
        if shutil.which("h2load") is None:
            sys.exit("h2load is not installed (apt-get install nghttp2-client)")
        run_requests(args)
    if args.only != "requests":
        run_fanout(args)


if __name__ == "__main__":
    main()
