"""The asyncio protocol a connection is read through until a :class:`~rawrt.websocket.WebSocket` takes over.

Both ends of a WebSocket start as HTTP/1.1: the server reads every request through a :class:`ByteStream`
(any of them may be an opening handshake), and the client reads the handshake's response through one. After
a 101 the WebSocket becomes the transport's protocol itself (no stream objects or reader task per idle
connection: docs/topics/memory.md), and :meth:`ByteStream.detach` is how it gets, without touching asyncio's
internals, everything the stream knew: the transport, the bytes received but not read yet, whether the
peer's EOF came, and whether the transport had paused our writing.

It replaces asyncio's ``StreamReader``/``StreamWriter`` pair with the part rawrt uses, and behaves as they
do: :meth:`~ByteStream.read` returns what arrived, up to ``MAX_RECV`` bytes (``StreamReader.read``), with the
same flow control (reading pauses while more than two reads' worth waits, as with ``limit=MAX_RECV``), and
:meth:`~ByteStream.drain` waits while the transport holds too much of our output, raising
``ConnectionResetError`` once the connection is lost (``StreamWriter.drain``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import NamedTuple, cast

from ..limits import MAX_RECV

__all__ = ["ByteStream", "Handover"]


class Handover(NamedTuple):
    """What :meth:`ByteStream.detach` hands to the transport's next protocol."""

    #: The connection's transport; the caller makes itself its protocol at once (``set_protocol``).
    transport: asyncio.Transport
    #: Bytes received and not read yet: they come before anything the transport delivers from now on.
    data: bytes
    #: Whether the peer's EOF (or the connection's loss) came already: nothing more will be delivered.
    eof: bool
    #: Whether the transport paused our writing (its buffer is above its high-water mark): it will call
    #: ``resume_writing()`` on the next protocol, not ``pause_writing()`` again.
    writing_paused: bool


class ByteStream(asyncio.Protocol):
    """A connection's bytes for one reading task, and its transport for writing.

    Args:
        connected: called with the stream once the connection is made (a server starts its connection's
            task there; see :meth:`rawrt.server.Server.start`).
    """

    __slots__ = (
        "transport",
        "_connected",
        "_loop",
        "_data",
        "_eof",
        "_error",
        "_lost",
        "_over_ssl",
        "_reading_paused",
        "_writing_paused",
        "_read_waiter",
        "_drain_waiter",
        "_closed_waiter",
    )

    def __init__(self, connected: Callable[[ByteStream], None] | None = None) -> None:
        #: The transport, from ``connection_made`` until :meth:`detach`.
        self.transport: asyncio.Transport | None = None
        self._connected = connected
        self._loop = asyncio.get_running_loop()
        #: Received, not read yet.
        self._data = b""
        #: The peer's EOF, or the connection's loss: nothing more will arrive.
        self._eof = False
        #: The error the connection was lost with, raised by read() and drain() from then on.
        self._error: BaseException | None = None
        self._lost = False
        self._over_ssl = False
        self._reading_paused = False
        self._writing_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed_waiter: asyncio.Future[None] | None = None

    # ---------------------------------------------------------------------- asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, which reads and writes (uvloop's are not subclasses of asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        connected, self._connected = self._connected, None
        if connected is not None:
            connected(self)

    def data_received(self, data: bytes) -> None:
        if self._data:
            self._data += data
        else:
            self._data = data
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        transport = self.transport
        if len(self._data) > 2 * MAX_RECV and not self._reading_paused and transport is not None:
            # Backpressure: nobody reads fast enough. TCP flow control holds the rest at the peer.
            self._reading_paused = True
            transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        # Keep our side open after the peer's half-close: the response to what it sent still goes out
        # (RFC 9112 §9.6). TLS has no half-close: asyncio closes an SSL transport whatever we return.
        return not self._over_ssl

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._eof = True
        if exc is not None:
            self._error = exc
        self._wake_reader()
        for waiter in (self._drain_waiter, self._closed_waiter):
            if waiter is not None and not waiter.done():
                if exc is not None and waiter is self._drain_waiter:
                    waiter.set_exception(exc)
                else:
                    waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------------------------- reading

    async def read(self, n: int = MAX_RECV) -> bytes:
        """The bytes received since the last read, at most ``n``, waiting for some if there are none.

        Returns:
            ``b""`` once the peer's EOF came and everything before it was read.

        Raises:
            OSError: the connection was lost with this error (a reset, say).
            RuntimeError: another task is already waiting in ``read()``.
        """
        if not self._data and not self._eof:
            if self._read_waiter is not None:
                raise RuntimeError("read() called while another coroutine is already waiting for data")
            waiter = self._read_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._read_waiter = None
        if self._error is not None:
            raise self._error
        data = self._data
        if len(data) > n:
            data, self._data = data[:n], data[n:]
        else:
            self._data = b""
        if self._reading_paused and len(self._data) <= MAX_RECV:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return data

    def at_eof(self) -> bool:
        """Whether the peer's EOF came and everything before it was read."""
        return self._eof and not self._data

    @property
    def eof(self) -> bool:
        """Whether the peer's EOF (or the connection's loss) came, read or not."""
        return self._eof

    @property
    def buffered(self) -> int:
        """How many received bytes wait to be read."""
        return len(self._data)

    # ------------------------------------------------------------------------------------- writing

    async def drain(self) -> None:
        """Wait until the transport stopped holding more than its high-water mark of our output.

        Raises:
            ConnectionResetError: the connection is lost (or the error it was lost with).
        """
        if self._error is not None:
            raise self._error
        transport = self.transport
        if transport is not None and transport.is_closing():
            # Let a connection_lost() that is already scheduled run first, so it is seen below.
            await asyncio.sleep(0)
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._writing_paused:
            return
        waiter = self._drain_waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._drain_waiter = None

    def close(self) -> None:
        """Close the transport (what was written still goes out first)."""
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is lost (closed by either side)."""
        if self._lost:
            return
        if self._closed_waiter is None:
            self._closed_waiter = self._loop.create_future()
        await asyncio.shield(self._closed_waiter)

    # ----------------------------------------------------------------------------------- take-over

    def detach(self) -> Handover:
        """Give the transport up, with what this stream knows of it (see :class:`Handover`).

        The caller must make another protocol the transport's at once, with no ``await`` in between, so no
        byte can arrive in the meantime and be left here. The stream is unusable afterwards.
        """
        transport = self.transport
        assert transport is not None, "the stream has no transport (not connected, or detached already)"
        handover = Handover(transport, self._data, self._eof, self._writing_paused)
        self.transport = None
        self._data = b""
        return handover
