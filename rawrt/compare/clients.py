"""The clients ``rawrt compare`` measures with: one :class:`asyncio.Protocol` per connection, counting into
a shared :class:`Tally`.

The clients are bare protocols (no task per SSE or WebSocket connection, no StreamReader), so the load
generator stays cheap next to the server it measures; what they parse, they parse with rawrt's own sans-IO
halves: :class:`~rawrt.sansio.http11.client.ResponseReader` for every response,
:class:`~rawrt.sansio.sse.SSEParser` for the event stream,
:class:`~rawrt.sansio.ws.connection.WebSocketConnection` for the frames. The WebSocket client offers no
compression, so every technique's bytes are uncompressed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import cast

from ..errors import RawrtError
from ..sansio.http11 import Data, EndOfMessage
from ..sansio.http11.client import Response, ResponseReader, encode_request
from ..sansio.sse import MessageEvent, SSEParser
from ..sansio.ws import handshake as hs
from ..sansio.ws.connection import Role, WebSocketConnection
from ..sansio.ws.events import CloseReceived, TextMessage
from .target import Target

__all__ = ["Tally", "Client", "HTTPClient", "SSEClient", "WSClient"]


@dataclass
class Tally:
    """What the clients of one technique saw: shared by all of them, read once the run is over."""

    #: Delivery latencies in seconds, one per (client, first receipt of an event).
    latencies: list[float] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    requests: int = 0
    delivered: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        # The first few say what went wrong; a hundred copies of the same one say nothing more.
        if len(self.errors) < 5:
            self.errors.append(message)


class Client(asyncio.Protocol):
    """Base of every client: counts the bytes both ways and keeps the ids it received."""

    def __init__(self, tally: Tally, target: Target) -> None:
        self.tally = tally
        self.target = target
        self.transport: asyncio.Transport | None = None
        #: Ids received, to tell a duplicate and, at the end, what was lost.
        self.seen: set[int] = set()
        self.last_id = 0
        #: When the current read arrived: one clock reading per read, shared by the events it holds.
        self.now = 0.0
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection closed before it was ready ({exc!r})"))

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.tally.bytes_out += len(data)
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.now = time.monotonic()
        self.tally.bytes_in += len(data)
        self.feed(data)

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def record(self, event_id: int, data: str) -> None:
        """One event arrived (at ``self.now``); ``data`` is the publisher's clock when it was published."""
        tally = self.tally
        if event_id in self.seen:
            tally.duplicates += 1
            return
        self.seen.add(event_id)
        self.last_id = max(self.last_id, event_id)
        tally.delivered += 1
        try:
            tally.latencies.append(self.now - float(data))
        except ValueError:
            tally.error(f"an event whose data is not a publish time: {data[:40]!r}")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HTTPClient(Client):
    """One keep-alive connection making requests one at a time (polling, long polling, the publisher).

    Each response is read by a fresh :class:`ResponseReader` (one reader reads one response).
    """

    def __init__(self, tally: Tally, target: Target) -> None:
        super().__init__(tally, target)
        self.reader = ResponseReader()
        self.status = 0
        self.body = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"the server closed the connection ({exc!r})"))

    def feed(self, data: bytes) -> None:
        self.reader.receive_data(data)
        try:
            events = self.reader.events_received()
        except RawrtError as exc:
            self._fail(f"invalid response: {exc}")
            return
        for event in events:
            if isinstance(event, Response):
                self.status = event.status
            elif isinstance(event, Data):
                self.body += event.data
            elif isinstance(event, EndOfMessage):
                leftover = self.reader.trailing_data
                self.reader = ResponseReader()
                body = bytes(self.body)
                self.body.clear()
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result((self.status, body))
                if leftover:
                    self.feed(leftover)  # unasked-for bytes: the next exchange's reader reports them
                return

    def _fail(self, message: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(message))
        self.close()

    def start_request(
        self, method: str, endpoint: str, body: bytes | None = None
    ) -> asyncio.Future[tuple[int, bytes]]:
        """Write one request now; the future is its whole response, ``(status, body)``, or raises
        ConnectionError (the connection closed, or the response broke HTTP/1.1)."""
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        headers = [] if body is None else [("Content-Length", str(len(body)))]
        head = encode_request(method, self.target.path(endpoint), self.target.host_header, headers)
        self.tally.requests += 1
        self.send(head + (body or b""))
        return waiter

    async def request(self, method: str, endpoint: str, body: bytes | None = None) -> tuple[int, bytes]:
        """Send one request and wait for its whole response: ``(status, body)``.

        Raises:
            ConnectionError: the connection closed, or the response broke HTTP/1.1.
        """
        return await self.start_request(method, endpoint, body)

    def take(self, body: bytes, cursor: int) -> int:
        """Record the events of a ``/poll`` or ``/longpoll`` answer; return the next cursor."""
        answer = json.loads(body)
        for event in answer["events"]:
            self.record(int(event["id"]), event["data"])
        return int(answer.get("cursor", cursor))


class SSEClient(Client):
    """One ``GET /events`` stream; ready once its first body bytes arrive (the opening ``id:`` line, which
    the server writes once the stream is subscribed)."""

    def __init__(self, tally: Tally, target: Target, channel: str) -> None:
        super().__init__(tally, target)
        self.channel = channel
        self.reader = ResponseReader()
        self.parser = SSEParser()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.tally.requests += 1
        target = self.target.path(f"/events?channel={self.channel}")
        self.send(encode_request("GET", target, self.target.host_header, [("Accept", "text/event-stream")]))

    def feed(self, data: bytes) -> None:
        self.reader.receive_data(data)
        try:
            events = self.reader.events_received()
        except RawrtError as exc:
            self.tally.error(f"events: invalid response: {exc}")
            self.close()
            return
        for event in events:
            if isinstance(event, Response):
                if event.status != 200:
                    self.tally.error(f"events: HTTP {event.status}")
                    self.close()
                    return
            elif isinstance(event, Data):
                if not self.ready.done():
                    self.ready.set_result(None)
                self.parser.receive_data(event.data)
                for message in self.parser.events_received():
                    if (
                        isinstance(message, MessageEvent)
                        and message.type == "message"  # not the "reset" notice
                        and message.last_event_id.isdigit()
                    ):
                        self.record(int(message.last_event_id), message.data)
            elif isinstance(event, EndOfMessage):
                self.tally.error("events: the stream ended")


class WSClient(Client):
    """One ``/ws/chat?since=0`` WebSocket: the upgrade, then one text message per event."""

    def __init__(self, tally: Tally, target: Target, channel: str) -> None:
        super().__init__(tally, target)
        self.channel = channel
        self.reader = ResponseReader(upgrade=True)
        # No compression offered: the table compares the techniques' own framing.
        self.handshake = hs.build_request(
            target.host_header, nonce=lambda: secrets.token_bytes(16), deflate=None
        )
        self.ws: WebSocketConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.tally.requests += 1
        fields = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in self.handshake.headers
            if k.lower() != b"host"
        ]
        target = self.target.path(f"/ws/chat?channel={self.channel}&since=0")
        self.send(encode_request("GET", target, self.target.host_header, fields))

    def feed(self, data: bytes) -> None:
        ws = self.ws
        if ws is None:
            self.reader.receive_data(data)
            try:
                self.reader.events_received()
                response = self.reader.response
                if response is None:
                    return
                result = hs.check_response(self.handshake, response.status, response.headers)
            except RawrtError as exc:
                self.tally.error(f"ws: {exc}")
                self.close()
                return
            ws = self.ws = WebSocketConnection(
                Role.CLIENT, mask_key=lambda: secrets.token_bytes(4), extension=result.extension
            )
            self.ready.set_result(None)
            data = self.reader.trailing_data
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, TextMessage):
                message = json.loads(event.data)
                if "id" in message:  # not a {"reset": ...} notice
                    self.record(int(message["id"]), message["data"])
            elif isinstance(event, CloseReceived):
                self.tally.error(f"ws: closed by the server ({event.code} {event.reason})")
        for out in ws.data_to_send():  # pongs and the close echo
            if out:
                self.send(out)
            else:
                self.close()
