"""rawrt's demo app for the benchmarks: ``python benchmarks/demo_server.py PORT [--loop L] [--hub URL]``.

The demo's own endpoints (``/publish``, ``/events``, ``/poll``, ``/longpoll``, ``/ws/chat``) with every limit
at its default except ``max_connections``, raised past the 1,000 SSE clients (plus a publisher) of the
fan-out benchmark. Access log off, as for the peers. Raises RLIMIT_NOFILE to its hard limit.

``--hub`` names the hub's backend (``rawrt.hub.backends.open_backend``): ``memory`` (the default, whatever
``RAWRT_HUB`` says, so a benchmark never measures a hub it did not ask for) or ``redis://HOST:PORT/DB``,
which ``bench_hub_redis.py`` uses to run several nodes on one Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

from _common import raise_nofile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rawrt.demo import create_app  # noqa: E402
from rawrt.limits import DEFAULT_LIMITS  # noqa: E402
from rawrt.server import serve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--hub", default="memory", help="memory (default) or redis://HOST:PORT/DB")
    args = parser.parse_args()
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    limits = dataclasses.replace(DEFAULT_LIMITS, max_connections=20_000)
    app = create_app(limits, hub=args.hub)
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(app, "127.0.0.1", args.port, limits=limits))


if __name__ == "__main__":
    main()
