"""The listening server: accept connections (with the connection cap: shed the oldest idle keep-alive
connection, else 503), time out slow waits with one reaper task, and shut down gracefully; :func:`serve`
runs one until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl as _ssl
import stat
import time
from collections.abc import Awaitable, Callable, Iterable

from ..app import App
from ..limits import DEFAULT_LIMITS, Limits
from ..websocket import WebSocket
from ..websocket.handover import ByteStream
from .channel import ACCESS_LOG_FIELDS, DEFAULT_ACCESS_LOG_FORMAT, error_log, write_access_log
from .connection import ServerConnection, close_in_stages
from .proxy import TrustedProxies

__all__ = ["Server", "serve", "raise_nofile_limit", "default_max_connections", "remove_stale_socket"]

#: File descriptors kept out of the default connection cap: the listening sockets, log files, the app's own
#: files and sockets, the event loop's self-pipe and selector.
FD_RESERVE = 64
#: The file descriptor limit tried when the hard limit is "unlimited" (macOS refuses more than OPEN_MAX).
_NOFILE_UNLIMITED_TARGET = 65536


def raise_nofile_limit() -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (what uvicorn's users do with ``ulimit -n``).

    Returns:
        The soft limit now in force, or None where the platform has no ``resource`` module (Windows).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, _NOFILE_UNLIMITED_TARGET)
    if soft == resource.RLIM_INFINITY or (target != resource.RLIM_INFINITY and soft >= target):
        return int(soft) if soft != resource.RLIM_INFINITY else _NOFILE_UNLIMITED_TARGET
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return int(soft)
    return int(target)


def default_max_connections(nofile: int | None) -> int:
    """The connection cap when ``Limits.max_connections`` is None: 90% of the file descriptor limit minus
    :data:`FD_RESERVE` (one descriptor per connection; the rest for the process's other files), at least
    16; 1000 where the limit is unknown."""
    if nofile is None:
        return 1000
    return max(16, int(nofile * 0.9) - FD_RESERVE)


async def _refuse(stream: ByteStream) -> None:
    """Close after the 503 of a server at capacity."""
    # The client has usually sent its request already: close in stages, or the reset that unread request
    # provokes would erase our 503 before the client reads it (RFC 9112 §9.6).
    try:
        await close_in_stages(stream)
    finally:
        stream.close()


class Server:
    """An HTTP/1.1 + WebSocket server for an :class:`App`.

    Args:
        app: the application.
        limits: size and time limits.
        ssl: a server-side :class:`ssl.SSLContext` for HTTPS/WSS.
        trace: log every WebSocket frame to ``rawrt.trace`` (direction, FIN, opcode, mask, length, payload),
            and every HTTP/2 frame (direction, type, stream, length, flags, HPACK-decoded fields).
        proxy_headers: take the client's address and the scheme from ``X-Forwarded-For`` /
            ``X-Forwarded-Proto`` or ``Forwarded`` (RFC 7239), when the peer is in ``forwarded_allow_ips``.
        forwarded_allow_ips: the trusted proxies: addresses, networks (``"10.0.0.0/8"``), or ``"*"``; a
            string is split at commas.
        root_path: the prefix the app is mounted under behind a proxy (ASGI's ``root_path``): stripped from
            :attr:`Request.path` for routing, and exposed as :attr:`Request.root_path`.
        access_log_format: the ``rawrt.access`` line, %-style with the fields of
            :data:`~rawrt.server.channel.ACCESS_LOG_FIELDS` (None: :data:`DEFAULT_ACCESS_LOG_FORMAT`).

    Raises:
        ValueError: a bad ``forwarded_allow_ips`` entry, ``root_path`` or ``access_log_format``.
    """

    def __init__(
        self,
        app: App,
        limits: Limits = DEFAULT_LIMITS,
        *,
        ssl: _ssl.SSLContext | None = None,
        trace: bool = False,
        proxy_headers: bool = False,
        forwarded_allow_ips: str | Iterable[str] = ("127.0.0.1", "::1"),
        root_path: str = "",
        access_log_format: str | None = None,
        http2: bool = True,
    ) -> None:
        self.app = app
        self.limits = limits
        #: Serve HTTP/2 as well (rawrt.server.h2): with prior knowledge in cleartext (RFC 9113 §3.3), and
        #: under TLS when the context offers ``h2`` by ALPN (§3.2; the CLI's context does).
        self.http2 = http2
        if ssl is not None and not http2:
            # A context that offers h2 by ALPN would let a client choose a protocol this server then does
            # not speak (RFC 7301 §3.2): with HTTP/2 off, only http/1.1 is offered.
            ssl.set_alpn_protocols(["http/1.1"])
        self.ssl = ssl
        self.trace = trace
        self.scheme = "http" if ssl is None else "https"
        self.proxy_headers = proxy_headers
        if isinstance(forwarded_allow_ips, str):
            forwarded_allow_ips = forwarded_allow_ips.split(",")
        self.forwarded_allow_ips = TrustedProxies(forwarded_allow_ips)
        root_path = root_path.rstrip("/")
        if root_path and not root_path.startswith("/"):
            raise ValueError(f"root_path must start with '/': {root_path!r}")
        self.root_path = root_path
        self.access_log_format = access_log_format or DEFAULT_ACCESS_LOG_FORMAT
        try:
            self.access_log_format % dict.fromkeys(ACCESS_LOG_FIELDS, 0)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(
                f"bad access_log_format {self.access_log_format!r} ({exc!r}); "
                f"fields: {', '.join(ACCESS_LOG_FIELDS)}"
            ) from None
        if ssl is not None:
            _watch_plain_http(ssl, self.access_log_format)
        #: The connection cap in force: ``limits.max_connections``, or sized from RLIMIT_NOFILE at start().
        self.max_connections = limits.max_connections or default_max_connections(None)
        self.uds: str | None = None
        self.connections: set[ServerConnection] = set()
        self.websockets: set[WebSocket] = set()
        self.closing = False
        self._server: asyncio.Server | None = None
        self._shutdown_event: asyncio.Event | None = None
        #: The connections' tasks (and the refusals'), which a graceful shutdown waits for.
        self.tasks: set[asyncio.Task[None]] = set()
        #: The 503s being sent (sockets outside the connection count, bounded in _accept).
        self._refusals: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self.loop_time: Callable[[], float] = time.monotonic
        timeouts = [
            t
            for t in (limits.header_timeout, limits.body_timeout, limits.keep_alive_timeout)
            if t is not None
        ]
        #: How often the reaper checks deadlines: a twentieth of the shortest timeout, between 20 and 250 ms
        #: (so a timeout fires at most 5% or 250 ms late; a tick costs one pass over the connections).
        self.reaper_tick = min(0.25, max(0.02, min(timeouts, default=5.0) / 20))

    @property
    def shutdown_event(self) -> asyncio.Event:
        """Set when a graceful shutdown begins."""
        if self._shutdown_event is None:
            self._shutdown_event = asyncio.Event()
        return self._shutdown_event

    def trusts(self, peer: tuple[str, int] | None) -> bool:
        """Whether ``peer``'s proxy headers are believed (``proxy_headers`` and ``forwarded_allow_ips``)."""
        if not self.proxy_headers:
            return False
        return self.forwarded_allow_ips(peer[0] if peer else "")

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        uds: str | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        """Listen on ``host:port`` (port 0 picks a free port; see :attr:`port`), on the Unix domain
        socket ``uds`` (a stale socket file there is removed first), or on ``sock``, a socket already
        bound and listening (a worker of ``--workers``, :mod:`rawrt.workers`; its owner removes a Unix
        socket's file, not this server).

        Raises:
            OSError: the address is in use (``EADDRINUSE``) or cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self.loop_time = loop.time
        nofile = raise_nofile_limit()
        if self.limits.max_connections is None:
            self.max_connections = default_max_connections(nofile)
        # Each connection is read through a ByteStream of rawrt's own (not asyncio's streams), so that a
        # WebSocket can take its transport over with public calls only (rawrt.websocket.handover).
        if sock is not None:
            if sock.family == socket.AF_UNIX:
                self._server = await loop.create_unix_server(
                    lambda: ByteStream(self._accept), sock=sock, ssl=self.ssl, backlog=1024
                )
                where = f"unix:{sock.getsockname()}"
            else:
                self._server = await loop.create_server(
                    lambda: ByteStream(self._accept), sock=sock, ssl=self.ssl, backlog=1024
                )
                shown = f"[{self.host}]" if ":" in self.host else self.host
                where = f"{self.scheme}://{shown}:{self.port}"
        elif uds is not None:
            remove_stale_socket(uds)
            self._server = await loop.create_unix_server(
                lambda: ByteStream(self._accept), uds, ssl=self.ssl, backlog=1024
            )
            self.uds = uds
            where = f"unix:{uds}"
        else:
            self._server = await loop.create_server(
                lambda: ByteStream(self._accept), host, port, ssl=self.ssl, backlog=1024
            )
            shown = f"[{self.host}]" if ":" in self.host else self.host
            where = f"{self.scheme}://{shown}:{self.port}"
        self._reaper = loop.create_task(self._reap())
        for hook in self.app.on_startup:
            await hook()
        limits = self.limits
        error_log.info("listening on %s", where)
        error_log.info(
            "loop %s; max_connections=%d (RLIMIT_NOFILE %s), keep_alive_timeout=%s, header_timeout=%s, "
            "send_timeout=%s, max_body_size=%d",
            type(loop).__module__ + "." + type(loop).__qualname__,
            self.max_connections,
            nofile if nofile is not None else "unknown",
            limits.keep_alive_timeout,
            limits.header_timeout,
            limits.send_timeout,
            limits.max_body_size,
        )

    @property
    def port(self) -> int:
        """The port actually bound (0 on a Unix domain socket)."""
        assert self._server is not None
        name = self._server.sockets[0].getsockname()
        return int(name[1]) if isinstance(name, tuple) else 0

    @property
    def host(self) -> str:
        """The address actually bound (the socket's path on a Unix domain socket)."""
        assert self._server is not None
        name = self._server.sockets[0].getsockname()
        return str(name[0]) if isinstance(name, tuple) else str(name)

    async def _reap(self) -> None:
        """Time out the connections whose bounded wait has passed its deadline (one task for all)."""
        while True:
            await asyncio.sleep(self.reaper_tick)
            now = self.loop_time()
            for conn in self.connections:
                if conn.deadline and conn.deadline <= now:
                    conn.time_out()

    def _accept(self, stream: ByteStream) -> None:
        """A connection was made (``ByteStream.connection_made``): start its task."""
        if self.closing:
            stream.close()
            return
        loop = asyncio.get_running_loop()
        if len(self.connections) >= self.max_connections and not self._shed():
            assert stream.transport is not None
            if len(self._refusals) >= max(16, self.max_connections // 16):
                # A flood at the cap: each 503 holds its socket for up to LINGER_TIMEOUT, so their number is
                # bounded too (within the cap's headroom of descriptors); past it, a reset at once.
                stream.transport.abort()
                return
            # Over the cap: a one-shot 503 (RFC 9110 §15.6.4) so the client knows to retry, then close.
            stream.transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: 20\r\nretry-after: 1\r\nconnection: close\r\n\r\nserver at capacity.\n"
            )
            task = loop.create_task(_refuse(stream))
            self.tasks.add(task)
            self._refusals.add(task)
            task.add_done_callback(self.tasks.discard)
            task.add_done_callback(self._refusals.discard)
            return
        conn = ServerConnection(self, stream)
        self.connections.add(conn)
        # run() discards its task from tasks when it ends.
        self.tasks.add(loop.create_task(conn.run()))

    def _shed(self) -> bool:
        """At the cap: close the keep-alive connection idle for longest (its keep-alive deadline is the
        earliest), as a keep-alive timeout would, to make room. Returns False if none is idle.

        A scan of the connections, only when at the cap: idle keep-alive connections are the cheapest to
        lose (the client reconnects on its next request, RFC 9112 §9.3), a refused new one is not.
        """
        oldest = None
        for conn in self.connections:
            if (
                conn.idle
                and conn.requests_served
                and not conn.timed_out
                and conn.websocket is None
                and not conn.stream.buffered  # a request just arrived: not idle after all
            ):
                if oldest is None or conn.deadline < oldest.deadline:
                    oldest = conn
        if oldest is None:
            return False
        error_log.debug(
            "at the connection cap: closing the idle keep-alive connection from %s", oldest.client
        )
        oldest.time_out()
        return True

    async def shutdown(self, timeout: float | None = None) -> None:
        """Graceful shutdown: stop accepting, close idle connections, close WebSockets with 1001, let
        in-flight requests finish; anything still running after ``timeout`` (default
        ``limits.shutdown_timeout``) is cancelled, and its socket cut (aborted)."""
        if self.closing:
            return
        self.closing = True
        started = time.monotonic()
        error_log.info(
            "shutdown started: %d connections, %d WebSockets", len(self.connections), len(self.websockets)
        )
        self.shutdown_event.set()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.abort_idle()
            conn.abort_stream()
        budget = timeout or self.limits.shutdown_timeout
        deadline = asyncio.get_running_loop().time() + budget
        websockets = list(self.websockets)
        if websockets:
            # RFC 6455 §7.4.1: 1001 "going away". The close handshakes share the shutdown budget: a peer that
            # never answers is aborted when it runs out, not after its own ws_close_timeout.
            closers = [asyncio.ensure_future(ws.close(1001, "server shutting down")) for ws in websockets]
            _, late = await asyncio.wait(closers, timeout=budget)
            for ws in websockets:
                if ws.close_code is None:
                    ws.abort()
            for closer in late:
                closer.cancel()
            await asyncio.gather(*closers, return_exceptions=True)
        tasks = [t for t in self.tasks if not t.done()]
        if tasks:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            _, pending = await asyncio.wait(tasks, timeout=remaining)
            for task in pending:
                task.cancel()
            if pending:
                # The budget is spent: cut the sockets too. A cancelled connection task still closes
                # gracefully (ServerConnection.run), and a graceful close waits for the client to read what
                # is buffered, for up to send_timeout: a client that stopped reading kept its socket and its
                # task that long after "shutdown done" (found by the soak, issue 10).
                for conn in list(self.connections):
                    conn.transport.abort()
                _, late = await asyncio.wait(pending, timeout=1.0)
                if late:
                    error_log.warning("%d connection tasks still running after the shutdown", len(late))
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for hook in self.app.on_shutdown:
            await hook()
        if self.uds is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.uds)
        error_log.info("shutdown done in %.3f s", time.monotonic() - started)


def _watch_plain_http(context: _ssl.SSLContext, fmt: str) -> None:
    """Log plain HTTP sent to the TLS port (an ``http://`` URL for an ``https://`` server).

    OpenSSL recognises it (``SSL_R_HTTP_REQUEST``) and fails the handshake, which asyncio reports to no one:
    the connection is closed before any protocol of ours sees it, and nothing can be answered in plaintext
    from inside the TLS layer. The context's TLS objects are given a subclass that logs that failure, as an
    access line ``"-" 400`` (no request line was parsed, no response is sent: the client sees the connection
    close, where nginx would send its 400) and an INFO line on ``rawrt.error``. The peer's address is not
    known at that level.
    """
    base = context.sslobject_class
    if getattr(base, "_rawrt_watches_plain_http", False):
        return

    class PlainHTTPWatch(base):  # type: ignore[valid-type,misc]
        _rawrt_watches_plain_http = True

        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except _ssl.SSLError as exc:
                if exc.reason == "HTTP_REQUEST":
                    error_log.info("plain HTTP received on the TLS port: the client should use https://")
                    write_access_log(fmt, None, None, 400, None, 0.0)
                raise

    context.sslobject_class = PlainHTTPWatch


def remove_stale_socket(path: str) -> None:
    """Remove a Unix socket file left by a server that is gone; refuse one a live server listens on."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: stale
    else:
        raise OSError(errno.EADDRINUSE, f"a server is listening on {path}")
    finally:
        probe.close()


async def serve(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    limits: Limits = DEFAULT_LIMITS,
    ssl: _ssl.SSLContext | None = None,
    trace: bool = False,
    ready: Callable[[Server], Awaitable[None] | None] | None = None,
    proxy_headers: bool = False,
    forwarded_allow_ips: str | Iterable[str] = ("127.0.0.1", "::1"),
    root_path: str = "",
    access_log_format: str | None = None,
    uds: str | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Run a server until cancelled or until SIGINT/SIGTERM, then shut down gracefully (the arguments are
    :class:`Server`'s and :meth:`Server.start`'s)."""
    import signal

    server = Server(
        app,
        limits,
        ssl=ssl,
        trace=trace,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        root_path=root_path,
        access_log_format=access_log_format,
    )
    await server.start(host, port, uds=uds, sock=sock)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        if ready is not None:
            result = ready(server)
            if result is not None:
                await result
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.shutdown()
