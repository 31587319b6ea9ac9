"""The listening server: accept connections (with the connection cap's 503), time out slow waits with one
reaper task, and shut down gracefully; :func:`serve` runs one until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
import time
from collections.abc import Awaitable, Callable

from ..app import App
from ..limits import DEFAULT_LIMITS, Limits
from ..websocket import WebSocket
from ..websocket.handover import ByteStream
from .connection import ServerConnection, close_in_stages

__all__ = ["Server", "serve"]


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
        trace: log every WebSocket frame to ``rawrt.trace`` (direction, FIN, opcode, mask, length, payload).
    """

    def __init__(
        self,
        app: App,
        limits: Limits = DEFAULT_LIMITS,
        *,
        ssl: _ssl.SSLContext | None = None,
        trace: bool = False,
    ) -> None:
        self.app = app
        self.limits = limits
        self.ssl = ssl
        self.trace = trace
        self.connections: set[ServerConnection] = set()
        self.websockets: set[WebSocket] = set()
        self.closing = False
        self._server: asyncio.Server | None = None
        self._shutdown_event: asyncio.Event | None = None
        #: The connections' tasks (and the refusals'), which a graceful shutdown waits for.
        self.tasks: set[asyncio.Task[None]] = set()
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

    async def start(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Listen on ``host:port`` (port 0 picks a free port; see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        self.loop_time = loop.time
        # Each connection is read through a ByteStream of rawrt's own (not asyncio's streams), so that a
        # WebSocket can take its transport over with public calls only (rawrt.websocket.handover).
        self._server = await loop.create_server(
            lambda: ByteStream(self._accept), host, port, ssl=self.ssl, backlog=1024
        )
        self._reaper = loop.create_task(self._reap())
        for hook in self.app.on_startup:
            await hook()

    @property
    def port(self) -> int:
        """The port actually bound."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        assert self._server is not None
        return str(self._server.sockets[0].getsockname()[0])

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
        if len(self.connections) >= self.limits.max_connections:
            # Over the cap: a one-shot 503 (RFC 9110 §15.6.4) so the client knows to retry, then close.
            assert stream.transport is not None
            stream.transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: 20\r\nretry-after: 1\r\nconnection: close\r\n\r\nserver at capacity.\n"
            )
            task = loop.create_task(_refuse(stream))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        conn = ServerConnection(self, stream)
        self.connections.add(conn)
        # run() discards its task from tasks when it ends.
        self.tasks.add(loop.create_task(conn.run()))

    async def shutdown(self, timeout: float | None = None) -> None:
        """Graceful shutdown: stop accepting, close idle connections, close WebSockets with 1001, let
        in-flight requests finish; anything still running after ``timeout`` (default
        ``limits.shutdown_timeout``) is cancelled."""
        if self.closing:
            return
        self.closing = True
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
                await asyncio.wait(pending, timeout=1.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for hook in self.app.on_shutdown:
            await hook()


async def serve(
    app: App,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    limits: Limits = DEFAULT_LIMITS,
    ssl: _ssl.SSLContext | None = None,
    trace: bool = False,
    ready: Callable[[Server], Awaitable[None] | None] | None = None,
) -> None:
    """Run a server until cancelled or until SIGINT/SIGTERM, then shut down gracefully."""
    import signal

    server = Server(app, limits, ssl=ssl, trace=trace)
    await server.start(host, port)
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
