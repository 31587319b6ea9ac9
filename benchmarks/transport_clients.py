"""Raw asyncio clients for the SSE fan-out benchmark and the soak: short and long polling, SSE, WebSocket, a
publisher. (``bench_transports.py`` measures with ``rawrt compare``'s clients, :mod:`rawrt.compare.clients`.)

They stay apart from ``rawrt compare``'s because they measure differently, and the published figures were
taken with these: loss is counted from contiguous ids (gaps and tails, :meth:`Tally.finish`) rather than a
set of seen ids per client; :func:`percentile` rounds its rank (``round``, not ``ceil``); the SSE client
has a fast path for whole chunks at 10,000 events/s, where a costlier client would take CPU from the server
on the same two cores; and the scripts build on the callback :class:`HTTPReader`, the port-based
:class:`ClientFactory` and the ``connected``/``gone`` futures, which the compare clients do not have.

Every client is a bare ``asyncio.Protocol`` (no StreamReader, no library, no task per SSE or WebSocket
connection), so that the load generator is cheap next to the server it measures. Each one counts:

* the bytes it read from its socket and the bytes it wrote (HTTP heads, bodies, frames: everything the
  application layer puts on the wire; TCP/IP headers are not counted);
* the HTTP requests it made (a WebSocket upgrade and an SSE stream are one request each);
* for each event, the delivery latency. The publisher puts its ``time.monotonic()`` into the event's data
  (``"%.6f"``); CLOCK_MONOTONIC is system-wide, so a client in any process on the same machine computes
  ``receive time - publish time``, the receive time being taken once per ``data_received`` call;
* the event ids: ids are contiguous per channel, so a client that received ``1..M`` in order lost nothing;
  gaps and duplicates are counted.

The HTTP reader handles what the demo and the aiohttp peer send: a head, then a Content-Length, chunked or
close-delimited body. The SSE parser handles ``\\n`` line ends, ``id:``, ``data:`` and comments (both
servers write that subset); the WebSocket reader handles unmasked server frames up to 64-bit lengths,
answers pings and closes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

HOST = "127.0.0.1"


@dataclass
class Tally:
    """What the clients of one transport saw during one run."""

    #: Delivery latencies in seconds, one per (client, event).
    latencies: list[float] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    requests: int = 0
    #: Events received (first time), over all clients.
    delivered: int = 0
    duplicates: int = 0
    #: Ids skipped between two received events (a tail never received is added by :meth:`finish`).
    gaps: int = 0
    #: Events missing at the end: published ids never received, over all clients.
    lost: int = 0
    errors: list[str] = field(default_factory=list)

    def finish(self, clients: list[Client], published: int, count: int) -> None:
        """Count the events each client is missing at the end (``published`` is the channel's last id,
        ``count`` how many events were published: all of them are missing for a client that got none)."""
        for client in clients:
            self.lost += max(0, published - client.last_id) if client.last_id else count
        self.lost += self.gaps


class Client(asyncio.Protocol):
    """Base of every client: byte counting, latency and id bookkeeping."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.transport: asyncio.Transport | None = None
        self.last_id = 0
        self.now = 0.0
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(f"connection lost before it was ready: {exc!r}"))

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.tally.bytes_out += len(data)
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.now = time.monotonic()
        self.tally.bytes_in += len(data)
        self.feed(data)

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def record(self, event_id: int, data: str | bytes) -> None:
        """One event arrived (at ``self.now``)."""
        tally = self.tally
        tally.latencies.append(self.now - float(data))
        last = self.last_id
        if event_id <= last:
            tally.duplicates += 1
            return
        # A memory hub's ids follow on by 1 within a channel, from a start far above 0 (rawrt.hub.ids): the
        # first event a client gets sets where it starts, and gaps are counted from there.
        if last and event_id != last + 1:
            tally.gaps += event_id - last - 1
        self.last_id = event_id
        tally.delivered += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HTTPReader:
    """A minimal incremental HTTP/1.1 response reader: head, then Content-Length, chunked or EOF body.

    Calls ``on_head(status)``, ``on_body(bytes)`` for each piece of body, ``on_end()`` at the end of each
    response; keep-alive responses follow one another.
    """

    _HEAD, _LENGTH, _SIZE, _DATA, _DATA_CRLF, _TRAILER, _EOF = range(7)

    def __init__(
        self,
        on_head: Callable[[int], None],
        on_body: Callable[[bytes], None],
        on_end: Callable[[], None],
    ) -> None:
        self.on_head = on_head
        self.on_body = on_body
        self.on_end = on_end
        self.buf = bytearray()
        self.state = self._HEAD
        self.need = 0

    def feed(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while buf:
            state = self.state
            if state == self._DATA or state == self._LENGTH:
                take = min(self.need, len(buf))
                self.on_body(bytes(buf[:take]))
                del buf[:take]
                self.need -= take
                if self.need == 0:
                    if state == self._DATA:
                        self.state = self._DATA_CRLF
                    else:
                        self.state = self._HEAD
                        self.on_end()
            elif state == self._SIZE:
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                size = int(bytes(buf[:i]).split(b";", 1)[0], 16)
                del buf[: i + 2]
                if size:
                    self.state, self.need = self._DATA, size
                else:
                    self.state = self._TRAILER
            elif state == self._DATA_CRLF:
                if len(buf) < 2:
                    return
                del buf[:2]
                self.state = self._SIZE
            elif state == self._TRAILER:
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                del buf[: i + 2]
                if i == 0:
                    self.state = self._HEAD
                    self.on_end()
            elif state == self._EOF:
                self.on_body(bytes(buf))
                buf.clear()
            else:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                head = bytes(buf[:i]).split(b"\r\n")
                del buf[: i + 4]
                status = int(head[0].split(b" ", 2)[1])
                length: int | None = None
                chunked = False
                for line in head[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                self.on_head(status)
                if status == 101:
                    self.state = self._EOF  # the rest is the upgraded protocol's
                elif chunked:
                    self.state = self._SIZE
                elif length is not None:
                    self.state, self.need = self._LENGTH, length
                    if length == 0:
                        self.state = self._HEAD
                        self.on_end()
                elif status in (204, 304):
                    self.on_end()
                else:
                    self.state = self._EOF


def request(method: str, target: str, port: int, extra: str = "", body: bytes = b"") -> bytes:
    """A request head (and body): ``Host`` plus ``extra`` header lines, a Content-Length with a body."""
    length = f"Content-Length: {len(body)}\r\n" if method == "POST" else ""
    return f"{method} {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{extra}{length}\r\n".encode() + body


# --------------------------------------------------------------------------------------------- polling


class PollClient(Client):
    """One keep-alive connection making GET requests one at a time (short and long polling)."""

    def __init__(self, tally: Tally, port: int) -> None:
        super().__init__(tally)
        self.port = port
        self.reader = HTTPReader(self._head, self._body, self._end)
        self.status = 0
        self.body = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connected.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def feed(self, data: bytes) -> None:
        self.reader.feed(data)

    def _head(self, status: int) -> None:
        self.status = status

    def _body(self, data: bytes) -> None:
        self.body += data

    def _end(self) -> None:
        body = bytes(self.body)
        self.body.clear()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.status, body))

    async def get(self, target: str) -> tuple[int, bytes]:
        """Send one GET and wait for its whole response."""
        self.waiter = asyncio.get_running_loop().create_future()
        self.tally.requests += 1
        self.send(request("GET", target, self.port))
        return await self.waiter

    def take(self, body: bytes, cursor: int) -> int:
        """Record the events of a poll answer (received at ``self.now``); return the next cursor."""
        answer = json.loads(body)
        for event in answer["events"]:
            self.record(event["id"], event["data"])
        return int(answer.get("cursor", cursor))


async def short_poller(
    client: PollClient, channel: str, interval: float, start_at: float, final_id: list[int]
) -> None:
    """Poll every ``interval`` seconds from a random phase after ``start_at`` (loop time), so the clients'
    requests spread over the interval; stop after the poll that fetched ``final_id[0]`` (set by the caller
    once publishing is over)."""
    loop = asyncio.get_running_loop()
    start = start_at + random.uniform(0, interval)
    cursor = 0
    k = 0
    while not final_id or cursor < final_id[0]:
        delay = start + k * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        k += 1
        status, body = await client.get(f"/poll?channel={channel}&since={cursor}")
        if status == 200:
            cursor = client.take(body, cursor)
        elif status != 304:
            client.tally.errors.append(f"poll: HTTP {status}")
            return


async def long_poller(client: PollClient, channel: str, stop: asyncio.Event, timeout: float = 30) -> None:
    """Long poll in a loop: each answer is followed at once by the next request with the new cursor."""
    cursor = 0
    while not stop.is_set():
        status, body = await client.get(f"/longpoll?channel={channel}&since={cursor}&timeout={timeout:g}")
        if status != 200:
            client.tally.errors.append(f"longpoll: HTTP {status}")
            return
        cursor = client.take(body, cursor)


# ------------------------------------------------------------------------------------------------- SSE


class SSEClient(Client):
    """One event stream: ``GET /events``; ready once the first body bytes arrive (the stream is live)."""

    def __init__(self, tally: Tally, port: int, channel: str) -> None:
        super().__init__(tally)
        self.port = port
        self.channel = channel
        self.reader = HTTPReader(self._head, self._body, self._end)
        self.pending = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.tally.requests += 1
        self.send(
            request("GET", f"/events?channel={self.channel}", self.port, "Accept: text/event-stream\r\n")
        )

    def feed(self, data: bytes) -> None:
        reader = self.reader
        if reader.state == HTTPReader._SIZE and not reader.buf:
            # Fast path, the common case at 10,000 events/s: the read holds whole chunks (the servers
            # write one chunk per event or batch). Decoded in place, without the general reader's copies.
            pos, size_all = 0, len(data)
            while pos < size_all:
                eol = data.find(b"\r\n", pos)
                if eol < 0 or eol - pos > 16:
                    break
                size = int(data[pos:eol].split(b";", 1)[0], 16)
                start = eol + 2
                stop = start + size
                if size == 0 or stop + 2 > size_all:
                    break
                self._body(data[start:stop])
                pos = stop + 2
            if pos == size_all:
                return
            data = data[pos:]
        reader.feed(data)

    def _head(self, status: int) -> None:
        if status != 200:
            self.tally.errors.append(f"events: HTTP {status}")

    def _end(self) -> None:
        self.tally.errors.append("events: the stream ended")

    def _body(self, data: bytes) -> None:
        if not self.connected.done():
            self.connected.set_result(None)
        pending = self.pending
        if not pending and data.endswith(b"\n\n") and data.find(b"\n\n") == len(data) - 2:
            self._event(data)  # one whole event: no buffering
            return
        pending += data
        start = 0
        while True:
            end = pending.find(b"\n\n", start)
            if end < 0:
                break
            self._event(bytes(pending[start : end + 2]))
            start = end + 2
        if start:
            del pending[:start]

    def _event(self, block: bytes) -> None:
        """One event block (ending with the blank line): record it if it has data."""
        event_id = -1
        payload: bytes | None = None
        for line in block[:-2].split(b"\n"):
            if line.startswith(b"data:"):
                payload = line[5:].lstrip(b" ")
            elif line.startswith(b"id:"):
                event_id = int(line[3:])
        if payload is not None:
            self.record(event_id, payload)


# ------------------------------------------------------------------------------------------- WebSocket


class WSClient(Client):
    """One ``/ws/chat`` WebSocket: the upgrade, then text frames with the event's JSON."""

    def __init__(self, tally: Tally, port: int, channel: str) -> None:
        super().__init__(tally)
        self.port = port
        self.channel = channel
        self.upgraded = False
        self.head = bytearray()
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.tally.requests += 1
        self.send(
            request(
                "GET",
                f"/ws/chat?channel={self.channel}&since=0",
                self.port,
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            )
        )

    def feed(self, data: bytes) -> None:
        buf = self.buf
        if not self.upgraded:
            head = self.head
            head += data
            i = head.find(b"\r\n\r\n")
            if i < 0:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.tally.errors.append(f"ws: {bytes(head[:40])!r}")
                self.close()
                return
            self.upgraded = True
            buf += head[i + 4 :]
            head.clear()
            self.connected.set_result(None)
        else:
            buf += data
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            if size - pos < header + length:
                break
            payload = bytes(buf[pos + header : pos + header + length])
            pos += header + length
            if opcode == 1:
                message: dict[str, Any] = json.loads(payload)
                if "id" in message:
                    self.record(message["id"], message["data"])
            elif opcode == 9:
                self._send_frame(0xA, payload)
            elif opcode == 8:
                self._send_frame(0x8, payload[:2])
                self.close()
        if pos:
            del buf[:pos]

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        # Client frames must be masked (RFC 6455 §5.3); a zero key leaves the payload as it is.
        self.send(bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)


# ------------------------------------------------------------------------------------------- publisher


class Publisher(PollClient):
    """``POST /publish?channel=C`` over one keep-alive connection; the body is ``time.monotonic()``."""

    async def publish(self, channel: str) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        body = f"{time.monotonic():.6f}".encode()
        self.send(request("POST", f"/publish?channel={channel}", self.port, "", body))
        status, answer = await self.waiter
        if status != 200:
            raise RuntimeError(f"publish: HTTP {status} {answer[:80]!r}")
        return int(json.loads(answer)["id"])


async def publish_for(
    publisher: Publisher, channel: str, interval: float, seconds: float
) -> tuple[int, float]:
    """Publish one event every ``interval`` seconds for ``seconds``, on an absolute schedule (a late
    publish does not push the later ones back). Returns the last event id and the wall time taken."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = max(1, round(seconds / interval))
    last = 0
    for k in range(count):
        delay = start + k * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        last = await publisher.publish(channel)
    return last, loop.time() - start


async def open_clients(
    factory: Callable[[], Client], count: int, concurrency: int = 100, timeout: float = 30
) -> list[Client]:
    """Open ``count`` connections (at most ``concurrency`` at a time); return once every one is ready."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Client:
        async with gate:
            _, client = await loop.create_connection(factory, HOST, factory_port(factory))
            await asyncio.wait_for(client.connected, timeout)
            return client

    return list(await asyncio.gather(*(one() for _ in range(count))))


def factory_port(factory: Callable[[], Client]) -> int:
    port = getattr(factory, "port", None)
    if not isinstance(port, int):
        raise TypeError("open_clients() needs a factory with a .port attribute (see ClientFactory)")
    return port


class ClientFactory:
    """A protocol factory that knows its port: ``ClientFactory(port, SSEClient, tally, port, channel)``."""

    def __init__(self, port: int, cls: Callable[..., Client], *args: Any) -> None:
        self.port = port
        self.cls = cls
        self.args = args

    def __call__(self) -> Client:
        return self.cls(*self.args)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, in seconds (``/proc/PID/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of an already sorted list, nearest-rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]
