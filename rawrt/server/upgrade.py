"""The server's side of the WebSocket opening handshake (RFC 6455 §4.2): refuse over HTTP, or send the 101
and hand the connection's transport to a :class:`~rawrt.websocket.WebSocket`.

The handshake itself is validated by the sans-IO :mod:`rawrt.sansio.ws.handshake`; this module only moves
its answer onto the connection and starts the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableSet
from typing import Protocol

from ..app import Request, Route, Tap, WebSocketHandler
from ..errors import ConnectionClosed, HandshakeError
from ..limits import Limits
from ..sansio import http11
from ..sansio.ws import handshake as hs
from ..sansio.ws.connection import Role, State, WebSocketConnection
from ..sansio.ws.deflate import SERVER_DEFAULTS, DeflateOptions
from ..sansio.ws.frames import CloseCode
from ..websocket import WebSocket
from ..websocket.handover import Handover
from .dates import http_date

__all__ = ["Session", "UpgradingConnection", "deflate_options", "handshake", "upgrade"]

error_log = logging.getLogger("rawrt.error")


class WebSocketServer(Protocol):
    """What a WebSocket session uses of the server (:class:`rawrt.server.Server`)."""

    @property
    def trace(self) -> bool: ...

    @property
    def websockets(self) -> MutableSet[WebSocket]: ...


class UpgradingConnection(Protocol):
    """What the handshake uses of the HTTP connection it runs on (:class:`rawrt.server.ServerConnection`)."""

    @property
    def conn(self) -> http11.HTTPConnection: ...  # the sans-IO HTTP/1.1 connection

    @property
    def limits(self) -> Limits: ...

    @property
    def server(self) -> WebSocketServer: ...

    @property
    def tap(self) -> Tap | None: ...  # the exchange's wire tap (rawrt.lab), which the WebSocket keeps

    def flush(self) -> bool: ...  # write the sans-IO output; False: it asked to close

    def log_access(self, request: Request | None, status: int) -> None: ...

    async def finish_exchange(self) -> bool: ...  # consume the rest of the request; may another follow?

    def detach(self) -> Handover: ...  # give the transport up, for a WebSocket

    def upgraded(self, ws: WebSocket) -> None: ...  # the WebSocket has the transport now


async def upgrade(conn: UpgradingConnection, route: Route, event: http11.Request, request: Request) -> bool:
    """Answer a WebSocket opening handshake on a server connection and run the route's handler.

    Returns whether the connection stays HTTP: False after a 101 and the session (the connection never goes
    back to HTTP), the keep-alive decision after a refused handshake (400/403/405/426).
    """
    session = await handshake(conn, route, event, request)
    if isinstance(session, bool):
        return session
    await session.run()
    return False


class Session:
    """An accepted WebSocket and the handler that will serve it (see :func:`handshake`; over HTTP/2,
    :mod:`.h2_websocket`)."""

    __slots__ = ("server", "ws", "handler", "limits")

    def __init__(
        self, server: WebSocketServer, ws: WebSocket, handler: WebSocketHandler, limits: Limits
    ) -> None:
        self.server = server
        self.ws = ws
        self.handler = handler
        self.limits = limits

    async def run(self) -> None:
        """Run the handler; then finish the close handshake (1000 if the handler did not close; 1011 if it
        raised) and wait, bounded, for TCP (or the HTTP/2 stream) to close."""
        server, ws, limits = self.server, self.ws, self.limits
        try:
            await self.handler(ws)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            ws.abort()
            raise
        except Exception:
            request = ws.request
            error_log.exception("WebSocket handler for %s failed", request.target if request else "?")
            if ws.open:
                ws.protocol.fail(CloseCode.INTERNAL_ERROR, "")
                ws.flush()
        finally:
            server.websockets.discard(ws)
            try:
                if ws.protocol.state is not State.CLOSED:
                    await ws.close(CloseCode.NORMAL_CLOSURE)
                else:
                    await asyncio.wait_for(ws.wait_closed(), limits.ws_close_timeout)
            except (TimeoutError, asyncio.TimeoutError):
                ws.abort()
            await ws.wait_connection_lost(1.0)
            # Still open (a peer that does not read keeps a graceful close waiting on its buffer): abort,
            # so that no socket outlives its place in the connection count (max_connections).
            ws.abort()


async def handshake(
    conn: UpgradingConnection, route: Route, event: http11.Request, request: Request
) -> Session | bool:
    """The opening handshake (RFC 6455 §4.2) on a server connection.

    Returns:
        The :class:`Session` to run after a 101, or, after a refusal (the route's check, or 400/403/405/426
        from :func:`rawrt.sansio.ws.handshake.accept`), whether the HTTP connection may carry another request.
        The server runs the session from the top of the connection's task, so the HTTP exchange's coroutine
        frames are gone for the life of the WebSocket (memory per idle connection, docs/topics/memory.md).
    """

    options = route.ws_options
    check = options.get("check")
    if check is not None:
        # The route's own validation (e.g. query parameters) answers with plain HTTP before any 101.
        refusal = check(request)
        if refusal is not None:
            conn.conn.send_response_bytes(refusal.status, refusal.headers, refusal.body, date=http_date())
            keep = conn.flush()
            conn.log_access(request, refusal.status)
            return keep and await conn.finish_exchange()
    limits: Limits = options.get("limits") or conn.limits
    deflate = deflate_options(route)
    try:
        accepted = hs.accept(
            event.method,
            event.http_version,
            event.headers,
            subprotocols=options.get("subprotocols", ()),
            origins=options.get("origins"),
            deflate=deflate,
        )
    except HandshakeError as exc:
        status, _reason, headers, body = hs.reject(exc)
        # Its Content-Length is the body's own: send_response_bytes checks it and writes it once.
        conn.conn.send_response_bytes(status, headers, body, date=http_date())
        keep = conn.flush()
        conn.log_access(request, status)
        return keep and await conn.finish_exchange()
    http = conn.conn
    http.send_response(101, list(accepted.headers), date=http_date())
    conn.flush()
    conn.log_access(request, 101)
    protocol = WebSocketConnection(Role.SERVER, limits=limits, extension=accepted.extension)
    # The transport goes to the WebSocket with no await in between: no byte can arrive in the meantime.
    handover = conn.detach()
    ws = WebSocket(
        handover.transport,
        protocol,
        limits=limits,
        subprotocol=accepted.subprotocol,
        headers=request.headers,
        request=request,
        trace=conn.server.trace,
        tap=conn.tap,
        # What the HTTP parser received behind the handshake's head, then what the stream had not read yet.
        initial=http.trailing_data + handover.data,
        eof=handover.eof,
        writing_paused=handover.writing_paused,
    )
    conn.upgraded(ws)
    # Held for the app (ws.request.headers) but rarely read again: one bytes object instead of a list of
    # pairs until then.
    request.headers.pack()
    conn.server.websockets.add(ws)
    handler = route.websocket
    assert handler is not None
    return Session(conn.server, ws, handler, limits)


def deflate_options(route: Route) -> DeflateOptions | None:
    """The permessage-deflate parameters a WebSocket route offers (its ``compression`` option), or None."""
    compression = route.ws_options.get("compression", "permessage-deflate")
    if compression is None or compression is False:
        return None
    if isinstance(compression, DeflateOptions):
        return compression
    return SERVER_DEFAULTS
