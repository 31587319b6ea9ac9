"""Noticing that a client left while its request is being handled.

A connection's task reads only between exchanges. While a handler holds a request open (a long poll) or a
streaming response runs (SSE), nothing would read the socket, so a client that closed would be noticed only
at the next write. The watcher is a task that reads meanwhile: an EOF or a reset marks the connection
disconnected (:meth:`DisconnectWatch.wait_disconnected` returns) and, during a streaming response, cancels
the connection's task so the stream ends at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..websocket import WebSocket
from .channel import Channel

__all__ = ["DisconnectWatch"]


class DisconnectWatch(Channel):
    """The disconnect watcher (a mixin of :class:`~rawrt.server.ServerConnection`)."""

    #: The WebSocket that took the connection over, if one did.
    websocket: WebSocket | None
    #: The client is known to have gone away.
    _disconnected: bool
    #: The watcher task, while one runs.
    _watcher: asyncio.Task[None] | None
    #: Cancel the connection's task when the client goes (a streaming response is being sent).
    _cancel_on_disconnect: bool

    async def wait_disconnected(self) -> None:
        """Return when the client has gone away, or the server is shutting down (see :class:`Request`)."""
        if self._disconnected:
            return
        if self.websocket is not None:
            # Upgraded: the WebSocket reads the socket now, and its end is the client's going away.
            await self.websocket.wait_closed()
            return
        self.start_watching()
        assert self._watcher is not None
        waiter = asyncio.ensure_future(self.server.shutdown_event.wait())
        try:
            await asyncio.wait({self._watcher, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    def is_disconnected(self) -> bool:
        """Whether the client is known to have gone away."""
        return self._disconnected

    def start_watching(self) -> None:
        """Start the watcher, unless it runs already."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop_watching(self) -> None:
        """Stop the watcher before the connection's task reads again: two readers cannot share the stream.
        Bytes it read meanwhile stay buffered in the parser."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self) -> None:
        """Read while the handler holds the request, so a client that leaves is noticed at once.

        Bytes that arrive meanwhile (a pipelined request) are kept for the parser, up to one request head's
        worth; past that the watcher stops reading, which is TCP backpressure on the client.
        """
        budget = self.limits.max_request_line + self.limits.max_header_bytes
        try:
            while self.conn.buffered_bytes <= budget:
                data = await self.stream.read()
                self.feed(data)
                if not data:
                    break
            else:
                await asyncio.Event().wait()  # keep "not disconnected" until cancelled
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            return
        self._disconnected = True
        if self._cancel_on_disconnect and self.task is not None:
            self.task.cancel()
