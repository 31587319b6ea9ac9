"""A server connection's I/O: its byte stream, its HTTP/1.1 parser, and the writes between them.

:class:`Channel` is the base of :class:`~rawrt.server.ServerConnection`'s mixins (the disconnect watcher,
the request body, streaming responses): the state they share, and the reads and writes they all use. It
knows its server only through :class:`ServerSide`, so nothing here imports :mod:`rawrt.server.server`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import MutableSet
from typing import Any, Protocol

from ..app import App, Request
from ..limits import Limits
from ..sansio import http11
from ..sansio.headers import HeaderSequence
from ..websocket import WebSocket
from ..websocket.handover import ByteStream
from .deadlines import Deadline

__all__ = ["Channel", "ClientGone", "ServerSide", "access_log", "error_log"]

error_log = logging.getLogger("rawrt.error")
access_log = logging.getLogger("rawrt.access")


class ClientGone(Exception):
    """The client closed or reset the connection: stop quietly."""


class ServerSide(Protocol):
    """What a connection uses of the :class:`rawrt.server.Server` that accepted it."""

    @property
    def app(self) -> App: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def closing(self) -> bool: ...  # a graceful shutdown began

    @property
    def trace(self) -> bool: ...  # log WebSocket frames

    @property
    def shutdown_event(self) -> asyncio.Event: ...

    @property
    def connections(self) -> MutableSet[Any]: ...  # the open HTTP connections

    @property
    def websockets(self) -> MutableSet[WebSocket]: ...  # the open WebSockets

    @property
    def tasks(self) -> MutableSet[asyncio.Task[None]]: ...  # what a shutdown waits for


class Channel(Deadline):
    """The state a server connection's parts share, and its reads and writes."""

    server: ServerSide
    limits: Limits
    #: The connection's bytes, until a WebSocket takes the transport over (``ServerConnection.upgraded``).
    stream: ByteStream
    transport: asyncio.Transport
    #: The sans-IO HTTP/1.1 connection.
    conn: http11.HTTPConnection
    #: Events parsed and not handled yet (a pipelined request's, say).
    events: deque[http11.Event]
    client: tuple[str, int] | None

    def feed(self, data: bytes) -> None:
        """Give the parser bytes read from the stream (``b""``: the client's EOF)."""
        if data:
            self.conn.receive_data(data)
        else:
            self.conn.receive_eof()

    async def read(self, timeout: float | None) -> bytes:
        """The next bytes from the client (``b""`` at EOF), waiting at most ``timeout`` seconds."""
        if timeout is None:
            return await self.stream.read()
        return await self.bounded(self.stream.read(), timeout)

    def flush(self) -> bool:
        """Write what the sans-IO connection produced. Returns False when it asked to close."""
        out = self.conn.data_to_send()
        keep = True
        if out and out[-1] == b"":
            out.pop()
            keep = False
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        return keep

    async def drain(self, timeout: float | None = None, high_water: int | None = None) -> None:
        """Wait for the transport to take our output when it holds more than ``high_water`` bytes
        (default ``Limits.write_high_water``), at most ``timeout`` seconds (``TimeoutError``)."""
        transport = self.transport
        limit = self.limits.write_high_water if high_water is None else high_water
        if transport.get_write_buffer_size() > limit or transport.is_closing():
            if timeout is None:
                await self.stream.drain()
            else:
                await self.bounded(self.stream.drain(), timeout)

    def final_headers(self, headers: HeaderSequence) -> HeaderSequence:
        """A response's headers, plus ``Connection: close`` when a shutdown began while it was prepared.

        RFC 9112 §9.6: a server about to close SHOULD say so in its last response, so that a client does not
        pipeline (or reuse the connection for) a request that will never be answered.
        """
        if self.server.closing:
            return [*headers, (b"connection", b"close")]
        return headers

    def log_access(self, request: Request | None, status: int) -> None:
        """One line on ``rawrt.access`` (INFO) per response; ``request`` is None for an unparsable one."""
        if access_log.isEnabledFor(logging.INFO):
            peer = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            line = f"{request.method} {request.target} HTTP/{request.http_version}" if request else "-"
            access_log.info('%s - "%s" %d', peer, line, status)
