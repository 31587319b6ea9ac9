"""SSE over HTTP/2 for the benchmarks: many event streams on one connection, written from raw frames.

One :class:`H2EventStreams` is one TCP connection carrying ``streams`` ``GET /events`` requests (RFC 9113
§8.1), each read as Server-Sent Events. It is a bare ``asyncio.Protocol`` that writes and reads frames
itself (the layout of RFC 9113 §4.1), with the ``hpack`` package (the ``h2`` package's own, a test
dependency of rawrt) for the request headers and the one response HEADERS per stream. The ``h2`` package's
state machine would cost the load generator tens of microseconds per DATA frame; at 10,000 events a second
that would measure the client. What it handles is what a server sends such a client: SETTINGS (acked),
PING (answered), WINDOW_UPDATE (ignored: nothing is sent after the requests), HEADERS, DATA, and RST_STREAM
or GOAWAY, which are errors here.

Flow control (§5.2): the client's SETTINGS open every stream's window to 2**31-1 and a WINDOW_UPDATE opens
the connection's, and the connection window is topped up as DATA arrives, so the server is never held back
by this reader.

Each stream keeps its own last event id, so the same checks as the HTTP/1.1 clients' apply (lost,
duplicated, out of order); latency is computed from the event's data, the publisher's ``time.monotonic()``,
at the time of the ``data_received`` call, as in ``transport_clients.Client``.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import cast

from hpack import Decoder, Encoder
from transport_clients import HOST, SSEClient, Tally

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADER = struct.Struct("!BHBBL")  # Length as 8 + 16 bits, Type, Flags, R + Stream Identifier (§4.1)
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
MAX_WINDOW = 2**31 - 1


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return _HEADER.pack(n >> 16, n & 0xFFFF, frame_type, flags, stream_id) + payload


class Stream:
    """One event stream's SSE parser and event-id bookkeeping."""

    __slots__ = ("conn", "stream_id", "last_id", "pending", "status", "ready")

    def __init__(self, conn: H2EventStreams, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.last_id = 0  # 0 until the first event: ids are large, time-based numbers (rawrt/hub/ids.py)
        self.pending = bytearray()
        self.status = 0
        self.ready = False

    def body(self, data: bytes) -> None:
        if not self.ready:
            self.ready = True
            self.conn.stream_ready()
        pending = self.pending
        if not pending and data.endswith(b"\n\n") and data.find(b"\n\n") == len(data) - 2:
            self.event(data)  # one whole event, the common case: no buffering
            return
        pending += data
        start = 0
        while True:
            end = pending.find(b"\n\n", start)
            if end < 0:
                break
            self.event(bytes(pending[start : end + 2]))
            start = end + 2
        if start:
            del pending[:start]

    def event(self, block: bytes) -> None:
        event_id = -1
        payload: bytes | None = None
        for line in block[:-2].split(b"\n"):
            if line.startswith(b"data:"):
                payload = line[5:].lstrip(b" ")
            elif line.startswith(b"id:"):
                event_id = int(line[3:])
        if payload is None:
            return
        tally = self.conn.tally
        tally.latencies.append(self.conn.now - float(payload))
        last = self.last_id
        if not last:
            self.last_id = event_id  # the first event this stream saw sets its baseline
            tally.delivered += 1
            return
        if event_id <= last:
            tally.duplicates += 1
            return
        if event_id != last + 1:
            tally.gaps += event_id - last - 1
        self.last_id = event_id
        tally.delivered += 1


class H2EventStreams(asyncio.Protocol):
    """``streams`` event streams of ``channel`` on one HTTP/2 connection (cleartext, prior knowledge)."""

    def __init__(self, tally: Tally, port: int, channel: str, streams: int) -> None:
        self.tally = tally
        self.port = port
        self.channel = channel
        self.count = streams
        self.streams: dict[int, Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.now = 0.0
        self.unacked = 0  # connection window consumed since the last WINDOW_UPDATE
        self.waiting = streams
        self.decoder = Decoder()
        loop = asyncio.get_running_loop()
        #: Done when every stream has had its first body bytes (the streams are live).
        self.connected: asyncio.Future[None] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        # §6.5.2: INITIAL_WINDOW_SIZE (0x4) = 2**31-1, ENABLE_PUSH (0x2) = 0.
        settings = struct.pack("!HLHL", 0x4, MAX_WINDOW, 0x2, 0)
        out = [PREFACE, frame(SETTINGS, 0, 0, settings)]
        out.append(frame(WINDOW_UPDATE, 0, 0, struct.pack("!L", MAX_WINDOW - 65_535)))
        encoder = Encoder()
        for i in range(self.count):
            stream_id = 2 * i + 1  # §5.1.1: client streams are odd, in increasing order
            self.streams[stream_id] = Stream(self, stream_id)
            block = encoder.encode(
                [
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", f"{HOST}:{self.port}"),
                    (":path", f"/events?channel={self.channel}"),
                    ("accept", "text/event-stream"),
                ]
            )
            out.append(frame(HEADERS, END_STREAM | END_HEADERS, stream_id, block))
        self.tally.requests += self.count
        self.send(b"".join(out))

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.tally.bytes_out += len(data)
        self.transport.write(data)

    def stream_ready(self) -> None:
        self.waiting -= 1
        if not self.waiting and not self.connected.done():
            self.connected.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(f"connection lost before it was ready: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self.now = time.monotonic()
        self.tally.bytes_in += len(data)
        buf = self.buf
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        pos, end = 0, len(data)
        unpack = _HEADER.unpack_from
        streams = self.streams
        while end - pos >= 9:
            high, low, frame_type, flags, stream_id = unpack(data, pos)
            length = high << 16 | low
            start = pos + 9
            stop = start + length
            if stop > end:
                break
            pos = stop
            if frame_type == DATA:
                self.unacked += length
                payload = data[start:stop]
                if flags & PADDED:
                    payload = payload[1 : len(payload) - payload[0]]
                stream = streams.get(stream_id & MAX_WINDOW)
                if stream is not None and payload:
                    stream.body(payload)
                if flags & END_STREAM:
                    self.tally.errors.append(f"h2 events: stream {stream_id} ended")
            elif frame_type == HEADERS:
                # Decoded, even though only :status matters: the HPACK table must stay in step (§4.3).
                headers = dict(self.decoder.decode(data[start:stop]))
                if headers.get(":status") != "200":
                    self.tally.errors.append(f"h2 events: stream {stream_id} got {headers.get(':status')}")
                if not flags & END_HEADERS:
                    self.tally.errors.append("h2 events: CONTINUATION is not handled by this client")
            elif frame_type == SETTINGS:
                if not flags & ACK:
                    self.send(frame(SETTINGS, ACK, 0))  # §6.5.3
            elif frame_type == PING:
                if not flags & ACK:
                    self.send(frame(PING, ACK, 0, data[start:stop]))  # §6.7
            elif frame_type in (RST_STREAM, GOAWAY):
                self.tally.errors.append(f"h2 events: frame type {frame_type} on stream {stream_id}")
        if pos < end:
            buf += data[pos:]
        if self.unacked > 2**30:
            self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack("!L", self.unacked)))
            self.unacked = 0

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class BaselineSSEClient(SSEClient):
    """``transport_clients.SSEClient`` whose first event sets its baseline id (ids are time-based numbers,
    so the first one a live stream sees is not 1)."""

    def record(self, event_id: int, data: str | bytes) -> None:
        if not self.last_id:
            self.last_id = event_id - 1
        super().record(event_id, data)
