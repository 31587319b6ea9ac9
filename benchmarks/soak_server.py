"""rawrt's demo for the soak benchmark: ``python benchmarks/soak_server.py PORT --lag-file F [...]``.

The demo app (``rawrt.demo.create_app``) of this checkout, served by ``rawrt.server.serve`` with every limit
at its default except ``max_connections`` (``--max-connections``, so that 10,000 clients fit whatever
default the tree has). Until SIGTERM, then the graceful shutdown of ``serve`` (its duration goes to stderr).

Two things the demo does not do by itself:

* **Bind retries.** A graceful restart starts this process on the port the previous one is still
  draining; the old server closes its listening socket first thing at shutdown, but the new process may
  get there a moment before. ``EADDRINUSE`` is retried every 0.1 s for ``--bind-retry`` seconds.
* **An event-loop lag monitor.** A task sleeps ``TICK`` and measures how late it wakes up (that is the time
  every other callback on the loop waited too); once a second it appends ``monotonic max_lag_s mean_lag_s``
  to ``--lag-file``. CLOCK_MONOTONIC is system-wide, so the load generator aligns the lines with its own.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import logging
import sys
import time
from pathlib import Path

from _common import ROOT, raise_nofile

#: The lag monitor's sleep: 50 ms costs the server 20 wake-ups a second, nothing next to its load.
TICK = 0.05


async def monitor_lag(path: str) -> None:
    """Append one ``monotonic max_lag mean_lag`` line a second to ``path`` (lags in seconds)."""
    loop = asyncio.get_running_loop()
    with open(path, "a", buffering=1) as out:
        while True:
            worst = total = 0.0
            count = 0
            second = loop.time() + 1.0
            while loop.time() < second:
                before = loop.time()
                await asyncio.sleep(TICK)
                lag = max(0.0, loop.time() - before - TICK)
                worst = max(worst, lag)
                total += lag
                count += 1
            out.write(f"{time.monotonic():.3f} {worst:.6f} {total / max(1, count):.6f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--max-connections", type=int, default=19_000)
    parser.add_argument("--lag-file", required=True)
    parser.add_argument("--bind-retry", type=float, default=15.0)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose rawrt is served")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    from rawrt.demo import create_app
    from rawrt.limits import DEFAULT_LIMITS
    from rawrt.server import serve

    raise_nofile()
    # rawrt.error at INFO: the start, the shutdown and its duration; the access log stays off.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("rawrt.error").setLevel(logging.INFO)
    limits = dataclasses.replace(DEFAULT_LIMITS, max_connections=args.max_connections)
    app = create_app(limits)
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    monitor: list[asyncio.Task[None]] = []

    def ready(server: object) -> None:
        monitor.append(asyncio.get_running_loop().create_task(monitor_lag(args.lag_file)))

    log = logging.getLogger("rawrt.soak")
    log.setLevel(logging.INFO)

    async def run() -> None:
        await serve(app, "127.0.0.1", args.port, limits=limits, ready=ready)
        # What follows serve() until the exit (asyncio.run cancelling what is left, closing the loop, the
        # interpreter's exit) is timed too: the soak measures SIGTERM to exit, rawrt logs only its part.
        log.info("serve() returned: %d other tasks left", len(asyncio.all_tasks()) - 1)

    deadline = time.monotonic() + args.bind_retry
    while True:
        try:
            asyncio.run(run())
            log.info("the event loop is closed")
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    main()
