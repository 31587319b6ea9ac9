"""An in-memory connection for driving :class:`rawrt.server.ServerConnection` without sockets (hypercorn's
``MemoryReader``/``MemoryWriter`` idea).

The server reads through its real :class:`~rawrt.websocket.handover.ByteStream`, wired to a
:class:`MemoryTransport` that records what the server writes. A test feeds the client's bytes however it
likes (whole, one byte at a time, at arbitrary cut points), then reads back the exact bytes the server sent
and whether it half-closed or closed. No port, no kernel buffers, no timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rawrt.app import App
from rawrt.limits import DEFAULT_LIMITS, Limits
from rawrt.server import Server, ServerConnection
from rawrt.websocket.handover import ByteStream

PEER = ("192.0.2.1", 40000)  # RFC 5737 documentation address: clearly not a real client


class MemoryTransport(asyncio.Transport):
    """Records writes; ``close()`` reports the connection lost to the protocol, as a socket would."""

    def __init__(self, protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.eof_written = False
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed and not self.eof_written, "write after close"
        self.written += data

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": PEER}.get(name, default)


class MemoryConnection:
    """One server connection over in-memory streams: :meth:`feed` client bytes, then :meth:`finish`."""

    def __init__(self, app: App, limits: Limits = DEFAULT_LIMITS) -> None:
        loop = asyncio.get_running_loop()
        self.server = Server(app, limits)
        self.stream = ByteStream()
        self.transport = MemoryTransport(self.stream)
        self.stream.connection_made(self.transport)
        self.connection = ServerConnection(self.server, self.stream)
        self.server.connections.add(self.connection)
        self.task = loop.create_task(self.connection.run())

    async def feed(self, data: bytes) -> None:
        """Deliver ``data`` and let the server run until it waits again."""
        self.stream.data_received(data)
        for _ in range(5):
            await asyncio.sleep(0)

    async def finish(self, timeout: float = 5.0) -> bytes:
        """The client half-closes; wait for the server to end the connection; return all it wrote."""
        if not self.stream.at_eof():
            self.stream.eof_received()
        await asyncio.wait_for(self.task, timeout)
        assert self.transport.closed
        return bytes(self.transport.written)
