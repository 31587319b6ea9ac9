"""Helpers shared by the transport tests: the raw-bytes client from ``tests/server/httpwire.py``, an event
stream reader on top of it, and a demo server with chosen limits.

``httpwire`` lives next to the server tests and is imported from there (no copy): pytest puts each test
directory without ``__init__.py`` on ``sys.path`` only for its own modules, so the path is added here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from httpwire import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
    TIMEOUT,
    Client,
    RawResponse,
    connect,
    exchange,
    get,
    post,
    running,
)

from rawrt.demo import DemoApp, create_app  # noqa: E402
from rawrt.hub import Hub  # noqa: E402
from rawrt.hub.backends import Backend, MemoryBackend  # noqa: E402
from rawrt.limits import Limits  # noqa: E402
from rawrt.sansio.sse import MessageEvent, SSEParser  # noqa: E402
from rawrt.server import Server  # noqa: E402

__all__ = [
    "TIMEOUT",
    "Client",
    "RawResponse",
    "connect",
    "exchange",
    "get",
    "post",
    "running",
    "demo",
    "EventStreamReader",
    "open_events",
    "publish",
    "poll_json",
    "hard_reset",
    "wait_until",
]


@contextlib.asynccontextmanager
async def demo(
    limits: Limits | None = None, *, hub: Backend | str | None = None
) -> AsyncIterator[tuple[Server, DemoApp]]:
    """The demo app with ``limits`` (for both the app and the server) on 127.0.0.1:<free port>.

    Its memory hub numbers events 1, 2, 3... (``Hub(start=0)``) so that tests read like the docs' examples;
    the server's default, ids from the start time, has its own tests (test_hub_ids.py). ``hub`` picks
    another backend (a Redis URL).
    """
    limits = limits or Limits()
    app = create_app(limits, hub if hub is not None else MemoryBackend(Hub(limits)))
    async with running(app, limits) as server:
        yield server, app


class EventStreamReader:
    """Reads an event stream response off a raw connection: chunked (1.1) or close-delimited (1.0)."""

    def __init__(self, conn: Client, head: RawResponse) -> None:
        self.conn = conn
        self.head = head
        self.chunked = head.header(b"transfer-encoding") == b"chunked"
        self.parser = SSEParser()
        self.raw = bytearray()  # every body byte received, dechunked
        self.pieces: list[bytes] = []  # the chunks (1.1) or reads (1.0) as they arrived
        self.ended = False
        self._events: list[MessageEvent] = []
        self._all: list[MessageEvent] = []

    async def read_piece(self, timeout: float = TIMEOUT) -> bytes | None:
        """The next chunk (or read); ``None`` when the stream ended (last-chunk or EOF)."""
        if self.ended:
            return None
        if self.chunked:
            piece: bytes | None = await asyncio.wait_for(self.conn.read_chunk(), timeout)
            if piece is None:
                await asyncio.wait_for(self.conn.reader.readuntil(b"\r\n"), timeout)  # no trailers
        else:
            piece = await asyncio.wait_for(self.conn.reader.read(65536), timeout) or None
        if piece is None:
            self.ended = True
            self.parser.receive_eof()
            return None
        self.pieces.append(piece)
        self.raw += piece
        self.parser.receive_data(piece)
        new = [e for e in self.parser.events_received() if isinstance(e, MessageEvent)]
        self._events.extend(new)
        self._all.extend(new)
        return piece

    @property
    def parser_events(self) -> list[MessageEvent]:
        """Every message event parsed so far, taken or not."""
        return self._all

    def pending(self) -> int:
        """Message events parsed and not yet taken."""
        return len(self._events)

    async def next_event(self, timeout: float = TIMEOUT) -> MessageEvent:
        """The next message event; fails if the stream ends first or nothing comes within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._events:
            if await self.read_piece(max(0.0, deadline - loop.time())) is None:
                raise AssertionError(f"stream ended; received {bytes(self.raw)!r}")
        return self._events.pop(0)

    async def events(self, count: int, timeout: float = TIMEOUT) -> list[MessageEvent]:
        return [await self.next_event(timeout) for _ in range(count)]

    async def read_until(self, needle: bytes, timeout: float = TIMEOUT) -> None:
        """Read until the dechunked body contains ``needle``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while needle not in self.raw:
            if await self.read_piece(max(0.0, deadline - loop.time())) is None:
                raise AssertionError(f"stream ended before {needle!r}; received {bytes(self.raw)!r}")

    async def read_to_end(self, timeout: float = TIMEOUT) -> None:
        while await self.read_piece(timeout) is not None:
            pass


async def open_events(
    server: Server, target: str, *headers: str, version: str = "1.1", rcvbuf: int | None = None
) -> EventStreamReader:
    """Open ``GET target`` as an event stream and read its head; the caller closes ``reader.conn``.

    ``rcvbuf`` shrinks the client's receive buffer (set before connecting, so the TCP window is small too):
    a client that then stops reading makes the server's writes back up quickly.
    """
    if rcvbuf is None:
        conn = await connect(server)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (server.host, server.port)), TIMEOUT
        )
        conn = await connect_sock(sock)
    await conn.send(get(target, *headers, version=version))
    status_line = await asyncio.wait_for(conn.reader.readuntil(b"\r\n"), TIMEOUT)
    rest = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    # httpwire.read_head insists on HTTP/1.1 in the status line, which rawrt always sends; parse it here so
    # the 1.0 test reads the same bytes.
    version_, status, reason = status_line[:-2].split(b" ", 2)
    assert version_ == b"HTTP/1.1", status_line
    fields = [
        (name, value.strip(b" \t"))
        for name, _, value in (line.partition(b":") for line in rest[:-4].split(b"\r\n") if line)
    ]
    head = RawResponse(int(status), reason, fields, head=status_line + rest)
    return EventStreamReader(conn, head)


async def connect_sock(sock: socket.socket) -> Client:
    """A raw-bytes client over an already connected socket."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(sock=sock), TIMEOUT)
    return Client(reader, writer)


async def publish(server: Server, data: bytes | str, channel: str | None = None) -> int:
    """``POST /publish`` and return the new event's id."""
    body = data.encode() if isinstance(data, str) else data
    target = "/publish" if channel is None else f"/publish?channel={channel}"
    response = await exchange(server, post(target, body))
    assert response.status == 200, response
    value = json.loads(response.body)
    assert isinstance(value, dict) and isinstance(value["id"], int)
    return value["id"]


async def poll_json(server: Server, target: str, *headers: str) -> tuple[RawResponse, dict[str, Any]]:
    """``GET target`` and parse its JSON body."""
    response = await exchange(server, get(target, *headers))
    assert response.status == 200, (response.status, response.body)
    value = json.loads(response.body)
    assert isinstance(value, dict)
    return response, value


def hard_reset(conn: Client) -> None:
    """Close ``conn`` with a TCP RST (SO_LINGER on, 0 s), as a crashed client or a middlebox would."""
    sock = conn.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.writer.transport.abort()


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT, step: float = 0.005) -> float:
    """Poll ``predicate()`` until true; returns the seconds it took (fails after ``timeout``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)
    return loop.time() - start
