"""The aiohttp peer of the SSE fan-out benchmark: ``python benchmarks/aiohttp_peer.py PORT [--loop L]``.

A minimal pub/sub written the way an aiohttp application usually is, with the same contract as rawrt's demo
for the two endpoints the benchmark uses:

* ``POST /publish?channel=C``: the body (UTF-8) becomes the channel's next event; answers ``{"id": N}``.
* ``GET /events?channel=C``: a ``web.StreamResponse`` (``text/event-stream``, chunked) that first writes a
  ``: subscribed`` comment (so the client knows it is live), then every event as ``id: N`` and ``data:``
  lines.

Like rawrt's hub, each event's wire bytes are encoded once and shared by every subscriber; each subscriber
has its own ``asyncio.Queue`` (bounded at 1,024 like ``Limits.hub_queue_size``; a full one ends that
stream) and its handler writes what it takes from it. No history, no resume: only what the benchmark
measures. Access log off; RLIMIT_NOFILE raised to its hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict

from _common import raise_nofile
from aiohttp import web

QUEUE_SIZE = 1024

subscribers: defaultdict[str, set[asyncio.Queue[bytes | None]]] = defaultdict(set)
last_ids: defaultdict[str, int] = defaultdict(int)


async def publish(request: web.Request) -> web.Response:
    channel = request.query.get("channel", "default")
    data = await request.text()
    last_ids[channel] += 1
    event_id = last_ids[channel]
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    wire = f"id: {event_id}\n{lines}\n".encode()
    for queue in subscribers[channel]:
        try:
            queue.put_nowait(wire)
        except asyncio.QueueFull:
            # A slow subscriber: end its stream rather than grow memory (as rawrt's overflow does).
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
    return web.Response(text=json.dumps({"id": event_id}), content_type="application/json")


async def events(request: web.Request) -> web.StreamResponse:
    channel = request.query.get("channel", "default")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
    subscribers[channel].add(queue)
    try:
        await response.write(b": subscribed\n\n")
        while True:
            wire = await queue.get()
            if wire is None:
                break
            await response.write(wire)
    except ConnectionError:
        pass  # the client went away
    finally:
        subscribers[channel].discard(queue)
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    args = parser.parse_args()
    raise_nofile()
    app = web.Application()
    app.router.add_post("/publish", publish)
    app.router.add_get("/events", events)
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
