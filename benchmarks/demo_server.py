"""rawrt's demo app for the transport benchmarks: ``python benchmarks/demo_server.py PORT [--loop L]``.

The demo's own endpoints (``/publish``, ``/events``, ``/poll``, ``/longpoll``, ``/ws/chat``) with every limit
at its default except ``max_connections``, raised past the 1,000 SSE clients (plus a publisher) of the
fan-out benchmark. Access log off, as for the peers. Raises RLIMIT_NOFILE to its hard limit.
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
    args = parser.parse_args()
    raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    limits = dataclasses.replace(DEFAULT_LIMITS, max_connections=20_000)
    app = create_app(limits)
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(app, "127.0.0.1", args.port, limits=limits))


if __name__ == "__main__":
    main()
