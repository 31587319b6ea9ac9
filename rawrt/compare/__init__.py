"""``rawrt compare [URL]``: the four real-time techniques of the demo side by side, measured on the wire.

Contract
--------
For each technique in turn (short polling ``/poll``, long polling ``/longpoll``, Server-Sent Events
``/events``, WebSocket ``/ws/chat``), ``clients`` clients follow a fresh channel while one publisher posts an
event every ``interval`` seconds for ``seconds`` with ``POST /publish``. The figures, per technique:

* **latency** p50/p99 from publish to receive, over every (client, event). The event's data is the
  publisher's ``time.monotonic()`` taken just before it writes the POST; the clients run in the same process,
  so ``receive time - data`` is exact, and the POST's own handling is included (a browser's event is only as
  fresh as its publish).
* **requests**: the HTTP requests the clients made (an SSE stream or a WebSocket upgrade is one). The
  publisher's POSTs are the same for every technique and are not counted.
* **bytes per event**: everything the clients read from and wrote to their sockets (request and response
  heads, chunk framing, WebSocket frames and handshakes, both directions; TCP/IP headers not counted),
  divided by the events delivered.
* **server CPU**: the user + system CPU seconds the server process used from the first client's connect to
  the last one's close, read from ``/proc/PID/stat``. Known only when compare started the server itself.
* **lost / duplicated**: checked per client against the ids the publisher got back from ``/publish``.

Without a URL, compare starts ``python -m rawrt demo --port 0``, reads the port from its banner, and stops it
with SIGTERM after the run. With ``burst``, it measures the long-poll re-request burst instead: ``burst``
clients held on ``/longpoll``, one publish, and the time, requests and bytes for all of them to be answered
and to ask again (:func:`run_burst`).

Layout
------
One module per concern, each importing only the ones above it in this list:

* :mod:`~rawrt.compare.target`: the :class:`Target`, :func:`parse_url`, the demo subprocess
  (:class:`DemoProcess`) and :class:`CompareError`;
* :mod:`~rawrt.compare.clients`: the clients, bare :class:`asyncio.Protocol` objects that parse with rawrt's
  own sans-IO halves and count into a shared :class:`~rawrt.compare.clients.Tally`;
* :mod:`~rawrt.compare.runs`: the probe, one technique's run (:func:`run_technique`), the burst
  (:func:`run_burst`) and their figures (:class:`Outcome`, :class:`BurstOutcome`);
* :mod:`~rawrt.compare.report`: the table, the burst's report and the SVG chart;
* this package: the command (:func:`add_arguments`, :func:`main`, the progress line), and the names
  other modules import, re-exported.

Errors a user can fix (a bad URL, nothing listening, not a rawrt demo) raise :class:`CompareError`, one line;
the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
from pathlib import Path
from typing import TextIO

from .report import format_burst, format_table, svg_chart
from .runs import (
    LABELS,
    TECHNIQUES,
    BurstOutcome,
    Outcome,
    Settings,
    cpu_seconds,
    probe,
    run_burst,
    run_technique,
)
from .target import CompareError, DemoProcess, Target, parse_url

__all__ = [
    "TECHNIQUES",
    "LABELS",
    "CompareError",
    "Target",
    "Outcome",
    "BurstOutcome",
    "Settings",
    "parse_url",
    "run_technique",
    "run_burst",
    "format_table",
    "format_burst",
    "svg_chart",
    "DemoProcess",
    "cpu_seconds",
    "add_arguments",
    "main",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``compare``'s arguments to an ``argparse`` (sub)parser."""
    parser.add_argument(
        "url", nargs="?", help="a running rawrt demo (http://HOST:PORT/); default: start one on a free port"
    )
    parser.add_argument(
        "--clients", type=_positive_int, default=100, metavar="N", help="clients per technique (100)"
    )
    parser.add_argument(
        "--seconds",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="publishing time per technique (10)",
    )
    parser.add_argument(
        "--interval-ms",
        type=_positive_float,
        default=100.0,
        metavar="MS",
        help="time between two publishes (100 ms)",
    )
    parser.add_argument(
        "--poll-interval", type=_positive_float, default=1.0, metavar="S", help="short polling's period (1 s)"
    )
    parser.add_argument("--svg", metavar="FILE", help="also draw the figures into an SVG file")
    parser.add_argument(
        "--burst",
        type=_positive_int,
        metavar="N",
        help="instead: N clients held on /longpoll, one publish; time, requests and bytes until all are "
        "answered and have asked again",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


class _Progress:
    """The progress line on stderr: redrawn in place (``\\r``) on a terminal; otherwise a plain line when
    a technique starts, at most, so a log file gets a few lines and no control characters."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.width = 0
        self.last_topic = ""

    def __call__(self, text: str) -> None:
        if self.tty:
            line = f"rawrt compare: {text}"
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
            self.stream.flush()
            return
        topic = text.partition(":")[0]
        if topic != self.last_topic:
            self.last_topic = topic
            print(f"rawrt compare: {text}", file=self.stream, flush=True)

    def clear(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def _raise_nofile() -> None:
    """Raise the soft file-descriptor limit to the hard one: a thousand clients need more than 1,024
    descriptors on some systems, and the server started here inherits the limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _compare(
    args: argparse.Namespace, target: Target, pid: int | None, where: str, progress: _Progress
) -> str:
    await probe(target)
    if args.burst is not None:
        return format_burst(await run_burst(target, args.burst, pid, progress), where)
    settings = Settings(args.clients, args.seconds, args.interval_ms / 1000, args.poll_interval)
    outcomes = []
    for technique in TECHNIQUES:
        try:
            outcomes.append(await run_technique(technique, target, settings, pid, progress))
        except (ConnectionError, asyncio.TimeoutError, OSError) as exc:
            raise CompareError(f"{LABELS[technique]}: {exc or type(exc).__name__}") from None
    if args.svg:
        try:
            Path(args.svg).write_text(svg_chart(outcomes, settings, where), "utf-8")
        except OSError as exc:
            raise CompareError(f"cannot write {args.svg}: {exc.strerror or exc}") from None
    return format_table(outcomes, settings, where)


def main(args: argparse.Namespace) -> str:
    """Run ``rawrt compare`` with parsed ``args``; return the report to print.

    Raises:
        CompareError: see the module docstring.
    """
    if args.burst is not None and args.svg:
        raise CompareError("--svg draws the four techniques' figures; it cannot be combined with --burst")
    target = parse_url(args.url) if args.url else None
    _raise_nofile()
    progress = _Progress(sys.stderr)
    demo = DemoProcess.start() if target is None else None
    try:
        if demo is not None:
            where = f"server {demo.target.url} (started by compare: pid {demo.pid}, loop {demo.loop})"
            return asyncio.run(_compare(args, demo.target, demo.pid, where, progress))
        assert target is not None
        return asyncio.run(_compare(args, target, None, f"server {target.url}", progress))
    finally:
        progress.clear()
        if demo is not None:
            demo.stop()
