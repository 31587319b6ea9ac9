"""WebSocket benchmarks (issues 3 and 4): rawrt's demo ``/ws`` echo against a websockets echo server.

Both servers run one process on uvloop, pinned to core 0 (``benchmarks/ws_servers.py``); the load generator
(``benchmarks/ws_loadgen.py``: a raw asyncio Protocol sending pre-encoded masked frames and counting the
answers by their headers) runs on core 1. Every figure is the median of ``--rounds`` alternated rounds, and
every comparison a ratio measured in the same run, because this machine is shared and noisy.

Sections:

* echo: messages/s at 16 B, 1 KiB and 64 KiB, text and binary, on 1 and 50 connections, with many messages
  in flight (pipelined) or one (latency: p50/p99 round trip). Compression off on both.
* ceiling: the same load generator against a raw TCP echo server, which shows it is not the bottleneck.
* memory: the server's RSS growth (``VmRSS`` in ``/proc/PID/status``) per idle open WebSocket over 5,000
  connections opened by a separate process, compression off and on.
* compression: echo with permessage-deflate on both servers.
* broadcast: ``rawrt.websocket.broadcast()`` against websockets' ``broadcast()`` to 1,000 connections.

Usage::

    python benchmarks/bench_ws.py [--quick] [--write] [--only echo,memory,...]

``--write`` puts the tables into docs/benchmarks.md (sections ``ws-echo``, ``ws-ceiling``, ``ws-memory``,
``ws-compression``, ``ws-broadcast``). Needs: uvloop, websockets.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import CLIENT_CPU, ROOT, free_port, machine, median, pinned, start_server, stop, write_section

HERE = Path(__file__).resolve().parent
SERVERS = ("rawrt", "websockets")
SIZES = (16, 1024, 65536)
#: Messages in flight per connection in the pipelined cells: 1 connection x 100, 50 connections x 2 (the
#: same 100 in flight in total) and 50 connections x 100 (each connection as busy as the single one).
PIPELINED = ((1, 100), (50, 2), (50, 100))
LATENCY = ((1, 1), (50, 1))


def size_name(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


class LoadGen:
    """``ws_loadgen.py --serve`` pinned to the client core, fed one JSON job per line."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            pinned(CLIENT_CPU, [sys.executable, str(HERE / "ws_loadgen.py"), "--serve"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, job: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load generator died")
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            raise RuntimeError(f"load generator: {result['error']}")
        return result

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        self.send(job)
        return self.answer()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


@contextmanager
def servers(kinds: tuple[str, ...], compression: bool = False) -> Iterator[dict[str, tuple[int, int]]]:
    """Start each server (pinned to the server core); yield ``kind -> (port, pid)``."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, tuple[int, int]] = {}
    try:
        for kind in kinds:
            port = free_port()
            argv = [sys.executable, str(HERE / "ws_servers.py"), kind, str(port)]
            argv += ["--compression", "on" if compression else "off"]
            procs[kind] = start_server(argv, port, cwd=ROOT)
            ports[kind] = (port, procs[kind].pid)
        yield ports
    finally:
        for proc in procs.values():
            stop(proc)


@dataclass
class Cell:
    label: str
    job: dict[str, Any]
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def med(self, kind: str, key: str) -> float:
        return median([r[key] for r in self.results[kind]])


def alternate(
    gen: LoadGen,
    ports: dict[str, tuple[int, int]],
    cells: list[Cell],
    rounds: int,
    log: Callable[[str], None],
) -> None:
    """Run every cell ``rounds`` times per server, alternating which server goes first."""
    kinds = list(ports)
    for i in range(rounds):
        for cell in cells:
            order = kinds if (i + cells.index(cell)) % 2 == 0 else kinds[::-1]
            for kind in order:
                result = gen.run({**cell.job, "port": ports[kind][0]})
                cell.results.setdefault(kind, []).append(result)
            log(
                f"round {i + 1} {cell.label}: "
                + ", ".join(f"{k} {cell.results[k][-1]['rate']:.0f}/s" for k in kinds)
            )


def echo_cells(seconds: float, warmup: float) -> tuple[list[Cell], list[Cell]]:
    base = {"kind": "echo", "seconds": seconds, "warmup": warmup}
    pipelined, latency = [], []
    for size in SIZES:
        for opcode in ("text", "binary"):
            for conns, inflight in PIPELINED:
                job = {**base, "size": size, "opcode": opcode, "connections": conns, "inflight": inflight}
                pipelined.append(Cell(f"{size_name(size)} {opcode} {conns}x{inflight}", job))
            for conns, inflight in LATENCY:
                job = {**base, "size": size, "opcode": opcode, "connections": conns, "inflight": inflight}
                latency.append(Cell(f"{size_name(size)} {opcode} {conns}x1", job))
    return pipelined, latency


def ratio_mark(ratio: float, target: float) -> str:
    return f"**{ratio:.2f}x**" if ratio >= target else f"{ratio:.2f}x (target {target:.1f}x: missed)"


def echo_tables(pipelined: list[Cell], latency: list[Cell]) -> str:
    rows = []
    for cell in pipelined:
        size, opcode = size_name(cell.job["size"]), cell.job["opcode"]
        ours, theirs = cell.med("rawrt", "rate"), cell.med("websockets", "rate")
        target = 1.5 if cell.job["size"] <= 1024 else 1.0
        conns, inflight = cell.job["connections"], cell.job["inflight"]
        rows.append(
            f"| {size} | {opcode} | {conns} x {inflight} | {ours:,.0f} | {theirs:,.0f} | "
            f"{ratio_mark(ours / theirs, target)} |"
        )
    lat_rows = []
    for cell in latency:
        size, opcode = size_name(cell.job["size"]), cell.job["opcode"]
        ours, theirs = cell.med("rawrt", "rate"), cell.med("websockets", "rate")
        lat_rows.append(
            f"| {size} | {opcode} | {cell.job['connections']} | {ours:,.0f} | {theirs:,.0f} | "
            f"{ratio_mark(ours / theirs, 1.0)} | {cell.med('rawrt', 'p50_us'):.0f} / "
            f"{cell.med('rawrt', 'p99_us'):.0f} | {cell.med('websockets', 'p50_us'):.0f} / "
            f"{cell.med('websockets', 'p99_us'):.0f} |"
        )
    return (
        "### Many messages in flight (pipelined)\n\n"
        "| size | opcode | connections x in flight each | rawrt msg/s | websockets msg/s | ratio |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "### One message in flight per connection (latency)\n\n"
        "| size | opcode | connections | rawrt msg/s | websockets msg/s | ratio | rawrt p50 / p99 µs "
        "| websockets p50 / p99 µs |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(lat_rows) + "\n"
    )


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def measure_memory(gen: LoadGen, kind: str, connections: int, compression: bool) -> dict[str, float]:
    with servers((kind,), compression) as ports:
        port, pid = ports[kind]
        # Warm up: import and allocate whatever a first connection needs, so only per-connection memory
        # shows in the delta.
        gen.run({"kind": "idle", "port": port, "connections": 200, "compress": compression})
        gen.send({})  # release the warm-up connections
        gen.answer()
        time.sleep(1.0)
        before = vm_rss(pid)
        gen.send({"kind": "idle", "port": port, "connections": connections, "compress": compression})
        opened = gen.answer()
        time.sleep(1.5)  # let the server finish every handler's start
        after = vm_rss(pid)
        gen.send({})
        gen.answer()
        if opened["open"] != connections:
            raise RuntimeError(f"opened {opened['open']} of {connections}")
        if opened["compressed"] != compression:
            raise RuntimeError(f"{kind}: compression negotiated {opened['compressed']}, wanted {compression}")
    return {"before": before, "after": after, "per_conn": (after - before) / connections}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 round of short runs, fewer connections")
    parser.add_argument("--write", action="store_true", help="write the tables into docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", default="echo,ceiling,memory,compression,broadcast")
    args = parser.parse_args()
    only = set(args.only.split(","))
    rounds = args.rounds or (1 if args.quick else 3)
    seconds, warmup = (0.5, 0.2) if args.quick else (1.0, 0.3)
    idle_conns = 1000 if args.quick else 5000
    started = time.monotonic()

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {line}", flush=True)

    header = (
        f"Machine: {machine()}; uvloop {_version('uvloop')}, websockets {_version('websockets')}. "
        f"{rounds} alternated round(s) of {seconds} s after {warmup} s of warm-up per cell; medians.\n"
    )
    gen = LoadGen()
    try:
        if "echo" in only:
            pipelined, latency = echo_cells(seconds, warmup)
            with servers(SERVERS) as ports:
                alternate(gen, ports, pipelined + latency, rounds, log)
            if args.write:
                write_section("ws-echo", ECHO_INTRO + header + "\n" + echo_tables(pipelined, latency))
        if "ceiling" in only:
            with servers(("tcp",)) as ports:
                rows = []
                for conns, inflight in ((1, 100), (50, 2), (50, 100)):
                    rates = [
                        gen.run(
                            {
                                "kind": "echo",
                                "raw": True,
                                "port": ports["tcp"][0],
                                "size": 16,
                                "connections": conns,
                                "inflight": inflight,
                                "seconds": seconds,
                                "warmup": warmup,
                            }
                        )["rate"]
                        for _ in range(rounds)
                    ]
                    rows.append(f"| 16 B | {conns} x {inflight} | {median(rates):,.0f} |")
                    log(f"ceiling {conns}x{inflight}: {median(rates):.0f}/s")
            if args.write:
                write_section(
                    "ws-ceiling",
                    CEILING_INTRO
                    + "| size | connections x in flight | raw TCP echo msg/s |\n|---|---|---|\n"
                    + "\n".join(rows)
                    + "\n",
                )
        if "memory" in only:
            mem: dict[tuple[str, bool], list[dict[str, float]]] = {}
            for i in range(min(rounds, 2)):  # 2 rounds: RSS deltas vary far less than rates
                for compression in (False, True):
                    for kind in SERVERS if i % 2 == 0 else SERVERS[::-1]:
                        gc.collect()
                        m = measure_memory(gen, kind, idle_conns, compression)
                        mem.setdefault((kind, compression), []).append(m)
                        log(f"memory {kind} compression={compression}: {m['per_conn'] / 1024:.1f} KiB/conn")
            if args.write:
                rows = []
                for compression in (False, True):
                    ours = median([m["per_conn"] for m in mem[("rawrt", compression)]])
                    theirs = median([m["per_conn"] for m in mem[("websockets", compression)]])
                    rows.append(
                        f"| {'on' if compression else 'off'} | {ours / 1024:.1f} | {theirs / 1024:.1f} | "
                        f"{ours / theirs:.2f} |"
                    )
                write_section(
                    "ws-memory",
                    MEMORY_INTRO.format(n=idle_conns)
                    + f"Machine: {machine()}; 2 alternated rounds; medians.\n"
                    + "\n| permessage-deflate | rawrt KiB/conn | websockets KiB/conn | rawrt / websockets |\n"
                    "|---|---|---|---|\n" + "\n".join(rows) + "\n",
                )
        if "compression" in only:
            cells = []
            for size in SIZES:
                for conns, inflight in ((1, 100), (50, 2), (1, 1)):
                    job = {
                        "kind": "echo",
                        "size": size,
                        "opcode": "text",
                        "connections": conns,
                        "inflight": inflight,
                        "compress": True,
                        "seconds": seconds,
                        "warmup": warmup,
                    }
                    cells.append(Cell(f"deflate {size_name(size)} {conns}x{inflight}", job))
            with servers(SERVERS, compression=True) as ports:
                alternate(gen, ports, cells, rounds, log)
            if args.write:
                rows = []
                for cell in cells:
                    ours, theirs = cell.med("rawrt", "rate"), cell.med("websockets", "rate")
                    shape = f"{cell.job['connections']} x {cell.job['inflight']}"
                    rows.append(
                        f"| {size_name(cell.job['size'])} | {shape} "
                        f"| {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |"
                    )
                write_section(
                    "ws-compression",
                    COMPRESSION_INTRO
                    + header
                    + "\n| size (text) | connections x in flight | rawrt msg/s | websockets msg/s | ratio |\n"
                    "|---|---|---|---|---|\n" + "\n".join(rows) + "\n",
                )
        if "broadcast" in only:
            listeners = 200 if args.quick else 1000
            out: dict[tuple[str, int], list[float]] = {}
            with servers(SERVERS) as ports:
                for i in range(rounds):
                    for size in (16, 1024):
                        for kind in SERVERS if i % 2 == 0 else SERVERS[::-1]:
                            answer = gen.run(
                                {
                                    "kind": "broadcast",
                                    "port": ports[kind][0],
                                    "connections": listeners,
                                    "count": 20 if args.quick else 100,
                                    "size": size,
                                }
                            )
                            if answer["delivered"] != answer["expected"]:
                                raise RuntimeError(f"{kind}: broadcast delivered {answer}")
                            if answer["recipients"] != listeners:
                                raise RuntimeError(f"{kind}: {answer['recipients']} recipients")
                            out.setdefault((kind, size), []).append(median(answer["durations"]))
                            log(f"broadcast {kind} {size} B: {median(answer['durations']) * 1e3:.2f} ms")
            if args.write:
                rows = []
                for size in (16, 1024):
                    ours, theirs = median(out[("rawrt", size)]), median(out[("websockets", size)])
                    rows.append(
                        f"| {size_name(size)} | {ours * 1e3:.2f} | {ours / listeners * 1e6:.2f} | "
                        f"{theirs * 1e3:.2f} | {theirs / listeners * 1e6:.2f} | {theirs / ours:.2f}x |"
                    )
                write_section(
                    "ws-broadcast",
                    BROADCAST_INTRO.format(n=listeners)
                    + header
                    + "\n| message | rawrt ms / broadcast | rawrt µs / recipient | websockets ms / broadcast "
                    "| websockets µs / recipient | speed-up (websockets time / rawrt time) |\n"
                    "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n",
                )
    finally:
        gen.close()
    log("done")


def _version(dist: str) -> str:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:
        return "?"


ECHO_INTRO = """## WebSocket echo (`benchmarks/bench_ws.py`)

rawrt's demo `/ws` against a websockets echo server (`websockets.asyncio.server.serve`, answering each
message with its own opcode); both one process on uvloop pinned to core 0, compression off, keepalive off.
The load generator (`benchmarks/ws_loadgen.py`) runs on core 1: a raw asyncio `Protocol` on uvloop writing
pre-encoded masked frames and counting the echoed frames by their headers. *Connections x in flight*: each
connection keeps that many messages outstanding and sends one more per echo received; `50 x 2` is 100 in
flight in total, `50 x 100` is 5,000. Targets (issue 3): 1.5x websockets with many in flight at 16 B and
1 KiB, 1.0x everywhere else (64 KiB, one in flight). Ratios are rawrt / websockets; a bold ratio meets its
target.
"""

CEILING_INTRO = """## Load generator ceiling (`benchmarks/bench_ws.py`)

The same load generator, sending the same masked 16-byte frames, against a raw TCP echo server (an asyncio
`Protocol` that writes back what it reads, uvloop, core 0). It counts the echoed frames exactly as it counts
the WebSocket servers' answers. It sustains several times the message rate either WebSocket server
reaches in the table above, so the WebSocket figures measure the servers, not the load generator.

"""

MEMORY_INTRO = """## WebSocket memory per idle connection (`benchmarks/bench_ws.py`)

The server's resident memory (`VmRSS` from `/proc/PID/status`) before and after a separate process opens
{n:,} WebSockets that then stay idle, divided by {n:,}; after a warm-up of 200 connections opened and closed.
Both processes raise `RLIMIT_NOFILE` to its hard limit. rawrt's demo `/ws` (keepalive off) against the
websockets echo server (keepalive off too); with permessage-deflate, the client asks for
`client_no_context_takeover` and both servers use their defaults (server window 12 bits, memLevel 5).
The breakdown is in `docs/topics/memory.md`.
"""

COMPRESSION_INTRO = """## WebSocket echo with permessage-deflate (`benchmarks/bench_ws.py`)

Both servers with their default permessage-deflate settings, which are the same: the server compresses with
a 12-bit window at memLevel 5 and level 6, with context takeover; it asks a client that allows it for a
12-bit window. The load generator offers `permessage-deflate; client_no_context_takeover;
client_max_window_bits` and sends each message compressed on its own (a fresh deflate stream per message, as
that parameter promises), so one pre-encoded frame serves every send; the servers' answers are compressed
with context takeover and counted, not inflated. Text messages made of words (they compress about 3:1).
Compression-off figures for the same cells are in the echo table above.
"""

BROADCAST_INTRO = """## WebSocket broadcast (`benchmarks/bench_ws.py`)

{n:,} listening connections; the server calls `rawrt.websocket.broadcast(listeners, message)` (encodes the
frame once, writes it to each transport) or websockets' `broadcast()` 100 times, timing each call with
`perf_counter` and yielding to the loop for 2 ms between calls. The load generator checks that every
listener received every message. Per recipient = per broadcast / {n:,}.
"""


if __name__ == "__main__":
    main()
