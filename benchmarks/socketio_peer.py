"""The python-socketio peer of the Redis hub benchmark: ``python benchmarks/socketio_peer.py PORT --redis U``.

One Socket.IO node as such an application is usually written: ``socketio.AsyncServer`` on aiohttp
(``async_mode="aiohttp"``), its client manager an ``AsyncRedisManager`` on ``--redis``, so several of these
processes sharing one Redis make one Socket.IO cluster. Two endpoints:

* ``/socket.io/``: Engine.IO 4 / Socket.IO 5 (the benchmark's clients connect with
  ``?EIO=4&transport=websocket`` straight away, no long-polling first). A client joins the room its
  CONNECT packet names (``40{"channel": "C"}``; ``default`` without one): rooms stand for rawrt's channels;
* ``POST /publish?channel=C``: the body (UTF-8) is emitted to the room ``C`` on every node as the event
  ``e`` (``sio.emit("e", body, to=C)``); answers ``{"id": N}``, N counting this node's publishes, once
  ``emit`` returned. python-socketio's ``emit`` sends to this node's own clients first, then ``PUBLISH``es
  the message on the Redis channel ``socketio`` for the other nodes (each looks the room up among its own
  clients, and skips its own messages by ``host_id``): one Redis command per emit, whatever the number of
  nodes.

Loggers off, access log off; RLIMIT_NOFILE raised to its hard limit; uvloop by default, like the other
peers.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import socketio  # type: ignore[import-untyped]  # python-socketio ships no type hints
from _common import raise_nofile
from aiohttp import web


def make_app(redis_url: str) -> web.Application:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=socketio.AsyncRedisManager(redis_url),
        logger=False,
        engineio_logger=False,
    )
    app = web.Application()
    sio.attach(app)
    published = 0

    @sio.event  # type: ignore[untyped-decorator]  # python-socketio has no type hints
    async def connect(sid: str, environ: object, auth: dict[str, str] | None) -> None:
        await sio.enter_room(sid, (auth or {}).get("channel", "default"))

    async def publish(request: web.Request) -> web.Response:
        nonlocal published
        data = await request.text()
        await sio.emit("e", data, to=request.query.get("channel", "default"))
        published += 1
        return web.Response(text=json.dumps({"id": published}), content_type="application/json")

    app.router.add_post("/publish", publish)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--redis", required=True, help="redis://HOST:PORT/DB, shared by every node")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    args = parser.parse_args()
    raise_nofile()
    loop: asyncio.AbstractEventLoop
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    # The Redis manager starts its listening task on the loop the server runs on: make it the current one.
    asyncio.set_event_loop(loop)
    web.run_app(
        make_app(args.redis), host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop
    )


if __name__ == "__main__":
    main()
