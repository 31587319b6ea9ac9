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

from ..app import App, Request, Tap
from ..limits import Limits
from ..sansio import http11
from ..sansio.headers import HeaderSequence
from ..websocket import WebSocket
from ..websocket.handover import ByteStream
from .deadlines import Deadline

__all__ = [
    "ACCESS_LOG_FIELDS",
    "DEFAULT_ACCESS_LOG_FORMAT",
    "Channel",
    "ClientGone",
    "ServerSide",
    "access_log",
    "error_log",
    "write_access_log",
]

error_log = logging.getLogger("rawrt.error")
access_log = logging.getLogger("rawrt.access")

#: The fields an access log format may use (``%(name)s``), documented in docs/http.md ("Logging").
ACCESS_LOG_FIELDS = (
    "client_addr",  # "host:port" of the client (the proxy's client with proxy_headers), or "-"
    "request_line",  # "GET /path HTTP/1.1", or "-" when no request head could be parsed
    "method",
    "target",
    "http_version",
    "status_code",
    "bytes",  # body bytes sent (a streaming body's total), "-" for an error answered before a handler ran
    "duration",  # seconds from the request head to the end of the response
    "duration_ms",
    "referer",
    "user_agent",
)
#: nginx's "combined" line without the time and user (the logging handler adds a time), plus the duration
#: in seconds, uvicorn's order: ``127.0.0.1:50312 - "GET /hello HTTP/1.1" 200 13 "-" "curl/8.5.0" 0.000213``.
DEFAULT_ACCESS_LOG_FORMAT = (
    '%(client_addr)s - "%(request_line)s" %(status_code)d %(bytes)s '
    '"%(referer)s" "%(user_agent)s" %(duration).6f'
)


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
    def trace(self) -> bool: ...  # log WebSocket and HTTP/2 frames

    @property
    def shutdown_event(self) -> asyncio.Event: ...

    @property
    def connections(self) -> MutableSet[Any]: ...  # the open HTTP connections

    @property
    def websockets(self) -> MutableSet[WebSocket]: ...  # the open WebSockets

    @property
    def tasks(self) -> MutableSet[asyncio.Task[None]]: ...  # what a shutdown waits for

    @property
    def access_log_format(self) -> str: ...  # the access log's line (%-style, fields: ACCESS_LOG_FIELDS)

    @property
    def root_path(self) -> str: ...  # the prefix the app is mounted under ("" for none)

    @property
    def scheme(self) -> str: ...  # "http" or "https"

    @property
    def http2(self) -> bool: ...  # serve HTTP/2 too (rawrt.server.h2)

    def trusts(self, peer: tuple[str, int] | None) -> bool: ...  # proxy headers from this peer are believed


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
    #: ``loop.time()`` when the current request head was parsed; set only while the access log is enabled.
    started: float
    #: Body bytes of the current streaming response sent so far (for the access log).
    sent: int
    #: A write waited longer than ``send_timeout``: the transport was aborted.
    send_timed_out: bool
    #: The current exchange's wire tap (:attr:`rawrt.app.App.tap`), or None: the class attribute, so an
    #: untapped connection carries no field for it (docs/topics/memory.md).
    tap: Tap | None = None

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
            transport = self.transport
            # A client that reset the connection while its handler ran (a long poll) is gone: its answer is
            # dropped. asyncio ignores a write to a closed transport, uvloop raises RuntimeError.
            if not transport.is_closing():
                data = out[0] if len(out) == 1 else b"".join(out)
                transport.write(data)
                if self.tap is not None:
                    self.tap.sent(data)
        return keep

    async def drain(self, timeout: float | None = None, high_water: int | None = None) -> None:
        """Wait for the transport to take our output when it holds more than ``high_water`` bytes
        (default ``Limits.write_high_water``), at most ``timeout`` seconds (default
        ``Limits.send_timeout``).

        Raises:
            TimeoutError: the client did not read in time. The transport is aborted first: a graceful close
                would wait for the unsent bytes to drain, keeping the socket and its buffer for as long as
                the client does not read (nginx's ``send_timeout`` resets the connection too).
        """
        transport = self.transport
        limit = self.limits.write_high_water if high_water is None else high_water
        if transport.get_write_buffer_size() > limit or transport.is_closing():
            if timeout is None:
                timeout = self.limits.send_timeout
            if timeout is None:
                await self.stream.drain()
                return
            try:
                await self.bounded(self.stream.drain(), timeout)
            except TimeoutError:
                self.send_timed_out = True
                transport.abort()
                raise

    def final_headers(self, headers: HeaderSequence) -> HeaderSequence:
        """A response's headers, plus ``Connection: close`` when a shutdown began while it was prepared.

        RFC 9112 §9.6: a server about to close SHOULD say so in its last response, so that a client does not
        pipeline (or reuse the connection for) a request that will never be answered.
        """
        if self.server.closing:
            return [*headers, (b"connection", b"close")]
        return headers

    def log_access(self, request: Request | None, status: int, sent: int | None = None) -> None:
        """One line on ``rawrt.access`` (INFO) per response; ``request`` is None for an unparsable one, and
        ``sent`` (the body's bytes) None when unknown."""
        if not access_log.isEnabledFor(logging.INFO):
            return
        started = getattr(self, "started", 0.0)
        duration = asyncio.get_running_loop().time() - started if started else 0.0
        self.started = 0.0
        client = request.client if request is not None else self.client
        write_access_log(self.server.access_log_format, client, request, status, sent, duration)


def write_access_log(
    fmt: str,
    client: tuple[str, int] | None,
    request: Request | None,
    status: int,
    sent: int | None,
    duration: float,
) -> None:
    """Log one exchange on ``rawrt.access`` in the format ``fmt`` (fields: :data:`ACCESS_LOG_FIELDS`)."""
    fields: dict[str, object] = {
        "client_addr": f"{client[0]}:{client[1]}" if client else "-",
        "status_code": status,
        "bytes": "-" if sent is None else sent,
        "duration": duration,
        "duration_ms": duration * 1000,
    }
    if request is not None:
        fields["request_line"] = f"{request.method} {request.target} HTTP/{request.http_version}"
        fields["method"], fields["target"] = request.method, request.target
        fields["http_version"] = request.http_version
        fields["referer"] = request.headers.get("referer") or "-"
        fields["user_agent"] = request.headers.get("user-agent") or "-"
    else:
        fields.update(request_line="-", method="-", target="-", http_version="-", referer="-")
        fields["user_agent"] = "-"
    access_log.info(fmt, fields)
