"""The four transports of the demo side by side, in rounds, against issue 5's aiohttp figures: a thin wrapper
around ``rawrt compare`` (:mod:`rawrt.compare`), which does the measuring.

``rawrt compare`` runs each technique once; this script adds what a benchmark for the docs needs: the server
(``demo_server.py``, uvloop) pinned to core 0 and the clients (:mod:`rawrt.compare`'s, on uvloop) pinned to
core 1, ``--rounds`` (5) rounds in rotated order so that drift in the machine's load does not always hit the
same technique, medians over the rounds, and issue 5's aiohttp reference beside them. Per technique (see
:mod:`rawrt.compare` for exactly what each figure counts): mean and p99 publish-to-receive latency, the
clients' HTTP requests, bytes on the wire per delivered event, server CPU as % of one core (user + system
over the technique's run, first connect to last close), and lost / duplicated events (all must be 0).
Usage::

    python benchmarks/bench_transports.py [--clients 100] [--interval-ms 100] [--seconds 10] [--rounds 5]
        [--write]

``--write`` puts the table into docs/benchmarks.md (section ``transports``) and draws
docs/transports-chart.svg. Reference figures: aiohttp, 100 clients, one event per 100 ms (issue 5).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from dataclasses import dataclass

from _common import CLIENT_CPU, ROOT, free_port, machine, median, start_server, stop, write_section

sys.path.insert(0, str(ROOT))

from rawrt.compare import Outcome, Settings, Target, run_technique  # noqa: E402

HERE = ROOT / "benchmarks"
CHART = ROOT / "docs" / "transports-chart.svg"

TRANSPORTS = ("poll", "longpoll", "sse", "ws")
LABELS = {"poll": "short polling (1 s)", "longpoll": "long polling", "sse": "SSE", "ws": "WebSocket"}
SHORT = {"poll": "polling 1 s", "longpoll": "long poll", "sse": "SSE", "ws": "WebSocket"}


@dataclass(frozen=True)
class Reference:
    """A figure of issue 5's aiohttp reference (100 clients, one event per 100 ms); None: not given."""

    mean_ms: float | None
    bytes_per_event: float | None
    requests: int | None


REFERENCE = {
    "poll": Reference(499, None, None),
    "longpoll": Reference(8.4, 267, 10_100),
    "sse": Reference(3.6, 73, None),
    "ws": Reference(2.9, 54, None),
}


@dataclass(frozen=True)
class Result:
    """One transport's figures in one round (or their medians)."""

    mean_ms: float
    p99_ms: float
    requests: int
    bytes_per_event: float
    cpu_percent: float
    delivered: int
    lost: int
    duplicates: int
    errors: tuple[str, ...]

    @classmethod
    def of(cls, o: Outcome) -> Result:
        cpu = math.nan if o.cpu_seconds is None else 100 * o.cpu_seconds / o.wall_seconds
        return cls(
            o.mean_ms,
            o.p99_ms,
            o.requests,
            o.bytes_per_event,
            cpu,
            o.delivered,
            o.lost,
            o.duplicates,
            o.errors,
        )


async def run_all(args: argparse.Namespace, port: int, server_pid: int) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {t: [] for t in TRANSPORTS}
    settings = Settings(args.clients, args.seconds, args.interval_ms / 1000, args.poll_interval)
    for r in range(args.rounds):
        # Rotate the order, so drift in machine load does not always hit the same transport.
        order = TRANSPORTS[r % len(TRANSPORTS) :] + TRANSPORTS[: r % len(TRANSPORTS)]
        if args.only:
            order = (args.only,)
        for transport in order:
            res = Result.of(await run_technique(transport, Target("127.0.0.1", port), settings, server_pid))
            results[transport].append(res)
            print(
                f"round {r + 1} {LABELS[transport]:>20}: mean {res.mean_ms:7.2f} ms, "
                f"p99 {res.p99_ms:7.2f} ms, {res.requests:6d} requests, "
                f"{res.bytes_per_event:6.1f} B/event, CPU {res.cpu_percent:5.1f}%, "
                f"delivered {res.delivered}, lost {res.lost}, dup {res.duplicates}"
                + (f", errors {list(res.errors)}" if res.errors else ""),
                flush=True,
            )
    return results


def medians(results: list[Result]) -> Result:
    return Result(
        mean_ms=median([r.mean_ms for r in results]),
        p99_ms=median([r.p99_ms for r in results]),
        requests=round(median([r.requests for r in results])),
        bytes_per_event=median([r.bytes_per_event for r in results]),
        cpu_percent=median([r.cpu_percent for r in results]),
        delivered=round(median([r.delivered for r in results])),
        lost=sum(r.lost for r in results),
        duplicates=sum(r.duplicates for r in results),
        errors=tuple(e for r in results for e in r.errors),
    )


def _ref(value: float | None, fmt: str, unit: str = "") -> str:
    return "–" if value is None else format(value, fmt) + unit


def table(summary: dict[str, Result], results: dict[str, list[Result]]) -> str:
    lines = [
        "| transport | mean latency (rounds' range) | p99 latency | HTTP requests | bytes/event | server CPU "
        "| lost / dup | aiohttp ref. mean | ref. bytes/event | ref. requests |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in TRANSPORTS:
        s, ref = summary[t], REFERENCE[t]
        lo, hi = min(r.mean_ms for r in results[t]), max(r.mean_ms for r in results[t])
        lines.append(
            f"| {LABELS[t]} | {s.mean_ms:.1f} ms ({lo:.1f}–{hi:.1f}) | {s.p99_ms:.1f} ms | {s.requests:,} "
            f"| {s.bytes_per_event:.0f} B | {s.cpu_percent:.1f}% | {s.lost} / {s.duplicates} "
            f"| {_ref(ref.mean_ms, 'g', ' ms')} | {_ref(ref.bytes_per_event, 'g', ' B')} "
            f"| {_ref(ref.requests, ',')} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the chart

_COLORS = {"rawrt": "#2b6cb0", "ref": "#a0aec0"}


def _bar_panel(
    x0: float,
    title: str,
    values: list[tuple[str, float | None, float | None]],
    log: bool,
    unit: str,
) -> list[str]:
    """One panel: for each transport a rawrt bar and (when given) a reference bar."""
    width, top, height = 270.0, 60.0, 230.0
    out = [
        f'<text x="{x0 + width / 2:.1f}" y="{top - 22}" text-anchor="middle" '
        f'font-weight="bold">{title}</text>',
        f'<line x1="{x0}" y1="{top + height}" x2="{x0 + width}" y2="{top + height}" stroke="#333"/>',
    ]
    numbers = [v for _, a, b in values for v in (a, b) if v is not None and v > 0]
    if log:
        lo, hi = 0.1, 10 ** math.ceil(math.log10(max(numbers) * 1.5))

        def scale(v: float) -> float:
            return height * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

        ticks = [10.0**k for k in range(int(math.log10(lo)), int(math.log10(hi)) + 1)]
    else:
        hi = max(numbers) * 1.2

        def scale(v: float) -> float:
            return height * v / hi

        step = 10 ** math.floor(math.log10(hi / 2))
        ticks = [k * step for k in range(int(hi / step) + 1)]
    for tick in ticks:
        y = top + height - scale(tick)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + width}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        out.append(
            f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#555">{tick:g}</text>'
        )
    group = width / len(values)
    bar = group * 0.32
    for i, (label, ours, ref) in enumerate(values):
        gx = x0 + i * group + group * 0.15
        for j, (value, color) in enumerate(((ours, _COLORS["rawrt"]), (ref, _COLORS["ref"]))):
            bx = gx + j * (bar + 2)
            if value is None:
                continue
            h = scale(value)
            out.append(
                f'<rect x="{bx:.1f}" y="{top + height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{label}: {value:.4g} {unit}</title></rect>'
            )
            out.append(
                f'<text x="{bx + bar / 2:.1f}" y="{top + height - h - 3:.1f}" text-anchor="middle" '
                f'font-size="9">{value:.3g}</text>'
            )
        out.append(
            f'<text x="{gx + bar:.1f}" y="{top + height + 14}" text-anchor="middle" '
            f'font-size="10">{label}</text>'
        )
    return out


def chart(summary: dict[str, Result], clients: int, interval_ms: float) -> str:
    """The SVG: mean latency and p99 latency (log scales) and bytes per event, rawrt beside the reference."""
    mean = [(SHORT[t], summary[t].mean_ms, REFERENCE[t].mean_ms) for t in TRANSPORTS]
    p99 = [(SHORT[t], summary[t].p99_ms, None) for t in TRANSPORTS]
    size = [(SHORT[t], summary[t].bytes_per_event, REFERENCE[t].bytes_per_event) for t in TRANSPORTS]
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="960" height="360" viewBox="0 0 960 360" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="960" height="360" fill="white"/>',
        f'<text x="480" y="18" text-anchor="middle" font-size="14" font-weight="bold">rawrt transports: '
        f"{clients} clients, one event every {interval_ms:g} ms</text>",
        *_bar_panel(45, "mean latency (ms, log scale)", mean, True, "ms"),
        *_bar_panel(365, "p99 latency (ms, log scale)", p99, True, "ms"),
        *_bar_panel(675, "bytes on the wire per event", size, False, "B"),
        f'<rect x="330" y="334" width="12" height="12" fill="{_COLORS["rawrt"]}"/>',
        '<text x="346" y="344">rawrt (median of rounds)</text>',
        f'<rect x="520" y="334" width="12" height="12" fill="{_COLORS["ref"]}"/>',
        '<text x="536" y="344">aiohttp reference (issue 5)</text>',
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument(
        "--only", choices=TRANSPORTS, help="run one transport alone (for profiling; writes nothing)"
    )
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md and the SVG chart")
    args = parser.parse_args()

    port = free_port()
    server = start_server(
        [sys.executable, str(HERE / "demo_server.py"), str(port), "--loop", args.loop], port
    )
    try:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {int(CLIENT_CPU)})
        if args.loop == "uvloop":
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        load_before = os.getloadavg()[0]
        results = asyncio.run(run_all(args, port, server.pid))
        load_after = os.getloadavg()[0]
    finally:
        stop(server)
    if args.only:
        return
    summary = {t: medians(results[t]) for t in TRANSPORTS}
    text = table(summary, results)
    print(text)
    if args.write:
        CHART.parent.mkdir(exist_ok=True)
        CHART.write_text(chart(summary, args.clients, args.interval_ms), "utf-8")
        write_section(
            "transports",
            f"""## The four transports: delivery latency, requests, bytes (`benchmarks/bench_transports.py`)

Measured by `rawrt compare`'s clients (`rawrt/compare/`, [howto/compare.md](howto/compare.md)), run by
this wrapper for {args.rounds} rounds: rawrt's demo on {args.loop} pinned to core 0; {args.clients} clients
per transport (asyncio protocols reading with rawrt's sans-IO response, SSE and WebSocket parsers) and the
publisher in one process on {args.loop}, pinned to core 1. One event every {args.interval_ms:g} ms for
{args.seconds:g} s via `POST /publish`; its data is the publisher's `time.monotonic()` (`"%.6f"`, 11 to 13
bytes), so latency is publish-to-receive, the POST included. Clients send minimal requests (`Host`, plus
`Accept` for SSE and the upgrade fields for WebSocket, no compression offered): bytes per event count
everything the clients read and wrote (heads and handshakes included, TCP/IP headers not), divided by the
events delivered; the event ids are 16-digit numbers (start time in ms × 1024), in every JSON event and SSE
`id:` line. Short polling: every {args.poll_interval:g} s from a random phase per client. Server CPU: utime +
stime from the first client's connect to the last one's close, % of one core. Each transport alone on a
fresh channel (`poll-<6 hex digits>`...); {args.rounds} rounds in rotated order; medians (lost / dup: totals
over all rounds, checked against the ids `/publish` returned).
Machine: {machine()}; shared with other workloads
(1-minute load average {load_before:.1f} before the run, {load_after:.1f} after), so the latencies carry
noise: the range shows the rounds' spread.

The reference columns are issue 5's figures for an aiohttp implementation with 100 clients and one event
per 100 ms (its payload is not known, so bytes compare only roughly; "–": not given).

{text}

![rawrt transports chart](transports-chart.svg)
""",
        )


if __name__ == "__main__":
    main()
