"""The floor of the SSE fan-out benchmark: ``python benchmarks/sse_floor.py PORT [--loop L]``.

Not a server anyone should run: a bare ``asyncio.Protocol`` that knows two requests, ``POST
/publish?channel=C`` and ``GET /events?channel=C`` (same contract as rawrt's demo and the aiohttp peer),
and fans an event out by calling ``transport.write()`` on every subscriber *inside the publish call*: one
chunk encoded once, no task, queue, future or generator per delivery, no backpressure, no heartbeat, no
limits. What is left is the event loop and one ``send()`` system call per subscriber, so this is the
shortest fan-out Python on this event loop can do: it shows how much of a server's fan-out time its own
code is, and what a latency target can ask for at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import cast
from urllib.parse import parse_qs, urlsplit

from _common import raise_nofile

subscribers: dict[str, set[asyncio.Transport]] = {}
last_ids: dict[str, int] = {}

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class FloorProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.channel: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.channel is not None and self.transport is not None:
            subscribers[self.channel].discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            method, target, _ = head[0].split(" ", 2)
            url = urlsplit(target)
            channel = parse_qs(url.query).get("channel", ["default"])[0]
            if method == "POST" and url.path == "/publish":
                self.publish(channel, body)
            elif method == "GET" and url.path == "/events":
                self.subscribe(channel)
            else:
                self.answer(404, b"not found\n", "text/plain")

    def answer(self, status: int, body: bytes, content_type: str) -> None:
        assert self.transport is not None
        head = f"HTTP/1.1 {status} OK\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
        self.transport.write(head.encode() + body)

    def publish(self, channel: str, data: bytes) -> None:
        event_id = last_ids[channel] = last_ids.get(channel, 0) + 1
        lines = b"".join(b"data: %s\n" % line for line in data.splitlines() or [b""])
        wire = chunk(b"id: %d\n%s\n" % (event_id, lines))
        for transport in subscribers.get(channel, ()):
            transport.write(wire)
        self.answer(200, json.dumps({"id": event_id}).encode(), "application/json")

    def subscribe(self, channel: str) -> None:
        assert self.transport is not None
        self.channel = channel
        subscribers.setdefault(channel, set()).add(self.transport)
        self.transport.write(STREAM_HEAD + chunk(b": subscribed\n\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    args = parser.parse_args()
    raise_nofile()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(
            FloorProtocol, "127.0.0.1", args.port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
