"""A tiny, strict HTTP/1.1 test client on raw asyncio streams, for the server integration tests.

It sends exactly the bytes a test gives it and reads responses back exactly as framed on the wire
(Content-Length, chunked or close-delimited), so a test can assert on status, header bytes and body bytes
without any client library smoothing things over. Every wait is bounded by :data:`TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from rawrt.app import App
from rawrt.limits import DEFAULT_LIMITS, Limits
from rawrt.server import Server

#: The bound on every single wait in these tests: generous for a loaded CI machine, short enough to fail fast.
TIMEOUT = 5.0


@dataclass
class RawResponse:
    """One response as read off the wire."""

    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    #: The chunked body's trailer section, if any.
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: The head's bytes exactly as received (status line through the empty line).
    head: bytes = b""
    #: Whether the body was chunked on the wire.
    chunked: bool = False

    def header(self, name: bytes) -> bytes | None:
        """The value of the only (or first) field named ``name`` (case-insensitive), or ``None``."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: bytes) -> list[bytes]:
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    @property
    def header_names(self) -> list[bytes]:
        return [n for n, _ in self.headers]


def _parse_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    fields: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\r\n"):
        if line:
            name, colon, value = line.partition(b":")
            assert colon, f"bad field line {line!r}"
            fields.append((name, value.strip(b" \t")))
    return fields


class Client:
    """One TCP connection to the server. Use :func:`connect`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    def shutdown_write(self) -> None:
        """Half-close: send FIN, keep reading."""
        self.writer.write_eof()

    async def read_head(self) -> RawResponse:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status_line, _, rest = head.partition(b"\r\n")
        version, status, reason = status_line.split(b" ", 2)
        assert version == b"HTTP/1.1", status_line
        return RawResponse(int(status), reason, _parse_fields(rest), head=head)

    async def read_response(self, *, method: bytes = b"GET") -> RawResponse:
        """Read the next response (interim ones included) with its body, framed as its head says."""
        response = await self.read_head()
        if response.status < 200 or response.status in (204, 304) or method == b"HEAD":
            return response
        te = response.header(b"transfer-encoding")
        length = response.header(b"content-length")
        if te is not None:
            assert te == b"chunked", te
            assert length is None, "both Transfer-Encoding and Content-Length in a response"
            response.chunked = True
            response.body, response.trailers = await self._read_chunked()
        elif length is not None:
            response.body = await asyncio.wait_for(self.reader.readexactly(int(length)), TIMEOUT)
        else:
            response.body = await self.read_until_eof()
        return response

    async def _read_chunked(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        parts: list[bytes] = []
        while True:
            size = await self.read_chunk()
            if size is None:
                break
            parts.append(size)
        trailer_block = b""
        while True:
            line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), TIMEOUT)
            if line == b"\r\n":
                break
            trailer_block += line
        return b"".join(parts), _parse_fields(trailer_block)

    async def read_chunk(self) -> bytes | None:
        """One chunk of a chunked body; ``None`` for the last-chunk (the trailer section follows)."""
        line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), TIMEOUT)
        size = int(line[:-2].split(b";")[0], 16)
        if size == 0:
            return None
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), TIMEOUT)
        assert data[-2:] == b"\r\n"
        return data[:-2]

    async def read_until_eof(self, timeout: float = TIMEOUT) -> bytes:
        """Everything until the server closes (fails if it does not close within ``timeout``)."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def assert_closed(self, timeout: float = TIMEOUT) -> None:
        """The server closed the connection with nothing more sent."""
        rest = await self.read_until_eof(timeout)
        assert rest == b"", rest

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


async def connect(server: Server, **kwargs: object) -> Client:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(server.host, server.port, **kwargs),  # type: ignore[arg-type]
        TIMEOUT,
    )
    return Client(reader, writer)


@contextlib.asynccontextmanager
async def client(server: Server) -> AsyncIterator[Client]:
    c = await connect(server)
    try:
        yield c
    finally:
        await c.close()


@contextlib.asynccontextmanager
async def running(app: App, limits: Limits = DEFAULT_LIMITS) -> AsyncIterator[Server]:
    """``app`` served on 127.0.0.1:<free port> for the block, then shut down."""
    server = Server(app, limits)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)


async def exchange(server: Server, raw: bytes, *, method: bytes = b"GET") -> RawResponse:
    """Send ``raw`` on a new connection and read one response."""
    async with client(server) as c:
        await c.send(raw)
        return await c.read_response(method=method)


def get(path: str = "/hello", *headers: str, version: str = "1.1") -> bytes:
    """A bodiless request's bytes, with a Host header."""
    lines = [f"GET {path} HTTP/{version}", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(path: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    """A POST with a Content-Length body."""
    lines = [f"POST {path} HTTP/{version}", "Host: test", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes, trailers: bytes = b"") -> bytes:
    """A chunked body: ``pieces`` (non-empty: an empty one would be the last-chunk), the last-chunk,
    ``trailers`` (field lines with their CRLFs), CRLF."""
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n" + trailers + b"\r\n"
