"""The servers ``bench_ws.py`` measures, one per process: ``python benchmarks/ws_servers.py KIND PORT``.

KIND is one of:

* ``rawrt``: rawrt's demo app (``/ws`` is the echo every figure uses), plus ``/bcast`` (listeners) and
  ``/bctl`` (the broadcast trigger, see below). ``max_connections`` is raised past the 5,000 connections of
  the memory test; every other limit is the demo's.
* ``websockets``: a websockets echo server (``websockets.asyncio.server.serve``) answering each message with
  the same opcode, with the same two extra routes. Keepalive is off and messages may be 16 MiB, as in
  rawrt's demo ``/ws``; permessage-deflate uses websockets' defaults (server window 12 bits, memLevel 5,
  the client asked for a 12-bit window if it allows one), which are rawrt's defaults too.
* ``websockets-pure``: the same websockets server with its C extension (``websockets.speedups``, which
  only unmasks) blocked, so it masks in pure Python as rawrt does (``bench_masking.py`` uses it).
* ``tcp``: a raw TCP echo server (an asyncio ``Protocol`` writing back what it reads), the ceiling that
  shows the load generator is not the bottleneck.

Broadcast: connections to ``/bcast`` only listen. A message ``"COUNT SIZE"`` on ``/bctl`` makes the server
broadcast COUNT text messages of SIZE bytes to every ``/bcast`` connection, timing each ``broadcast()``
call with ``perf_counter``, yielding to the loop between two calls (so the transports flush), and answer
with the JSON list of durations in seconds.

Both servers run on uvloop and raise RLIMIT_NOFILE to its hard limit. With ``--compression off`` the server
refuses permessage-deflate (the load generator does not offer it either unless told to).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import raise_nofile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BROADCAST_PAUSE = 0.002


def parse_trigger(message: str | bytes) -> tuple[int, int]:
    text = message.decode() if isinstance(message, bytes) else message
    count, size = text.split()
    return int(count), int(size)


async def run_broadcasts(
    count: int, size: int, broadcast: Callable[[str], Awaitable[object] | object]
) -> list[float]:
    payload = "x" * size
    durations = []
    for _ in range(count):
        start = time.perf_counter()
        result = broadcast(payload)
        if asyncio.iscoroutine(result):
            await result
        durations.append(time.perf_counter() - start)
        await asyncio.sleep(BROADCAST_PAUSE)
    return durations


async def rawrt_main(port: int, compression: bool) -> None:
    from rawrt.demo import create_app
    from rawrt.limits import DEFAULT_LIMITS
    from rawrt.server import serve
    from rawrt.websocket import WebSocket, broadcast

    limits = dataclasses.replace(DEFAULT_LIMITS, max_connections=100_000)
    app = create_app(limits)
    if not compression:
        # The demo's /ws accepts permessage-deflate when offered; "off" makes sure it never is.
        route = app.match("/ws")
        assert route is not None
        route[0].ws_options["compression"] = None
    listeners: set[WebSocket] = set()

    @app.websocket("/bcast", compression=None)
    async def bcast(ws: WebSocket) -> None:
        listeners.add(ws)
        try:
            await ws.wait_closed()
        finally:
            listeners.discard(ws)

    @app.websocket("/bctl", compression=None)
    async def bctl(ws: WebSocket) -> None:
        async for message in ws:
            count, size = parse_trigger(message)
            durations = await run_broadcasts(count, size, lambda m: broadcast(listeners, m))
            await ws.send(json.dumps({"durations": durations, "recipients": len(listeners)}))

    await serve(app, "127.0.0.1", port, limits=limits)


async def websockets_main(port: int, compression: bool) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

    listeners: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        try:
            await serve_one(ws)
        except ConnectionClosed:
            pass  # the load generator drops its connections without a close handshake

    async def serve_one(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/ws"
        if path == "/bcast":
            listeners.add(ws)
            try:
                await ws.wait_closed()
            finally:
                listeners.discard(ws)
        elif path == "/bctl":
            async for message in ws:
                count, size = parse_trigger(message)
                durations = await run_broadcasts(count, size, lambda m: broadcast(listeners, m))
                await ws.send(json.dumps({"durations": durations, "recipients": len(listeners)}))
        else:
            async for message in ws:
                await ws.send(message)

    kwargs: dict[str, Any] = {"compression": "deflate" if compression else None}
    async with serve(handler, "127.0.0.1", port, ping_interval=None, max_size=16 * 2**20, **kwargs) as server:
        await _until_signalled()
        server.close()


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.write = transport.write  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.write(data)


async def tcp_main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, "127.0.0.1", port, backlog=1024)
    async with server:
        await _until_signalled()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["rawrt", "websockets", "websockets-pure", "tcp"])
    parser.add_argument("port", type=int)
    parser.add_argument("--compression", choices=["on", "off"], default="off")
    args = parser.parse_args()
    raise_nofile()
    import uvloop

    compression = args.compression == "on"
    if args.kind == "rawrt":
        coro = rawrt_main(args.port, compression)
    elif args.kind == "websockets":
        coro = websockets_main(args.port, compression)
    elif args.kind == "websockets-pure":
        # websockets.frames falls back to websockets.utils.apply_mask when the import fails.
        sys.modules["websockets.speedups"] = None  # type: ignore[assignment]
        coro = websockets_main(args.port, compression)
    else:
        coro = tcp_main(args.port)
    uvloop.run(coro)


if __name__ == "__main__":
    main()
