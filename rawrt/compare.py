"""``rawrt compare [URL]``: the four real-time techniques of the demo side by side, measured on the wire.

Contract
--------
For each technique in turn (short polling ``/poll``, long polling ``/longpoll``, Server-Sent Events
``/events``, WebSocket ``/ws/chat``), ``clients`` clients follow a fresh channel while one publisher posts an
event every ``interval`` seconds for ``seconds`` with ``POST /publish``. The figures, per technique:

* **latency** p50/p99 from publish to receive, over every (client, event). The event's data is the
  publisher's ``time.monotonic()`` taken just before it writes the POST; the clients run in the same process,
  so ``receive time - data`` is exact, and the POST's own handling is included (a browser's event is only as
  fresh as its publish).
* **requests**: the HTTP requests the clients made (an SSE stream or a WebSocket upgrade is one). The
  publisher's POSTs are the same for every technique and are not counted.
* **bytes per event**: everything the clients read from and wrote to their sockets (request and response
  heads, chunk framing, WebSocket frames and handshakes, both directions; TCP/IP headers not counted),
  divided by the events delivered.
* **server CPU**: the user + system CPU seconds the server process used from the first client's connect to
  the last one's close, read from ``/proc/PID/stat``. Known only when compare started the server itself.
* **lost / duplicated**: checked per client against the ids the publisher got back from ``/publish``.

Without a URL, compare starts ``python -m rawrt demo --port 0``, reads the port from its banner, and stops it
with SIGTERM after the run. With ``burst``, it measures the long-poll re-request burst instead: ``burst``
clients held on ``/longpoll``, one publish, and the time, requests and bytes for all of them to be answered
and to ask again (:func:`run_burst`).

Strategy
--------
The clients are bare :class:`asyncio.Protocol` objects (no task per SSE or WebSocket connection, no
StreamReader), so the load generator stays cheap next to the server it measures; what they parse, they parse
with rawrt's own sans-IO halves: :class:`~rawrt.sansio.http11.client.ResponseReader` for every response,
:class:`~rawrt.sansio.sse.SSEParser` for the event stream,
:class:`~rawrt.sansio.ws.connection.WebSocketConnection` for the frames. The WebSocket client offers no
compression, so every technique's bytes are uncompressed.
Errors a user can fix (a bad URL, nothing listening, not a rawrt demo) raise :class:`CompareError`, one line;
the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO, cast
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from .errors import RawrtError
from .sansio.http11 import Data, EndOfMessage
from .sansio.http11.client import Response, ResponseReader, encode_request
from .sansio.sse import MessageEvent, SSEParser
from .sansio.ws import handshake as hs
from .sansio.ws.connection import Role, WebSocketConnection
from .sansio.ws.events import CloseReceived, TextMessage

__all__ = [
    "TECHNIQUES",
    "LABELS",
    "CompareError",
    "Target",
    "Outcome",
    "BurstOutcome",
    "Settings",
    "parse_url",
    "run_technique",
    "run_burst",
    "format_table",
    "format_burst",
    "svg_chart",
    "DemoProcess",
    "cpu_seconds",
    "main",
]

#: The techniques, in the order they run and are shown.
TECHNIQUES = ("poll", "longpoll", "sse", "ws")
#: How each technique is named in the table (short polling's interval is added where it is known).
LABELS = {"poll": "short polling", "longpoll": "long polling", "sse": "SSE", "ws": "WebSocket"}

#: Time between the clients being ready and the first publish: held long polls reach the hub first, so the
#: first event's latency is not a request still in flight.
SETTLE = 0.3
#: How long compare waits, after the last publish, for every client to have every event (short polling
#: gets its poll interval on top). A client still missing events then counts them as lost.
DRAIN = 3.0
#: Bound on one HTTP exchange of the probe and on opening one client.
OPEN_TIMEOUT = 10.0
#: Bound on the demo server's start (a cold interpreter on a loaded machine) and on its stop.
SERVER_TIMEOUT = 15.0
#: The banner ``rawrt demo`` prints once it listens (``rawrt/cli.py``).
BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/ \(loop: (\w+)\)")


class CompareError(RawrtError):
    """A mistake in the command or its target (bad URL, nothing listening, not a rawrt demo): one line."""


# ----------------------------------------------------------------------------------------------- the target


@dataclass(frozen=True)
class Target:
    """Where the demo is: ``host``, ``port``, and the path prefix its endpoints sit under (``""`` at root)."""

    host: str
    port: int
    prefix: str = ""

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}{self.prefix}/"

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == 80 else f"{shown}:{self.port}"

    def path(self, endpoint: str) -> str:
        return self.prefix + endpoint


def parse_url(url: str) -> Target:
    """``http://HOST[:PORT][/PREFIX]`` as a :class:`Target`.

    Raises:
        CompareError: not an ``http://`` URL with a host (``https`` is not supported: the clients speak
            plain TCP), or it has a query or fragment.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CompareError(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme != "http" or not parts.hostname:
        raise CompareError(f"expected an http://HOST:PORT/ URL of a rawrt demo, got {url!r}")
    if parts.query or parts.fragment:
        raise CompareError(f"expected the demo's base URL, without a query or fragment, got {url!r}")
    prefix = parts.path.rstrip("/")
    if not re.fullmatch(r"[\x21-\x7e]*", prefix):
        raise CompareError(f"invalid path in {url!r}")
    return Target(parts.hostname, 80 if port is None else port, prefix)


# ------------------------------------------------------------------------------------------- the clients


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


# ------------------------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Settings:
    """What one comparison does (the command's options)."""

    clients: int = 100
    seconds: float = 10.0
    #: Seconds between two publishes.
    interval: float = 0.1
    #: Seconds between two short polls of one client.
    poll_interval: float = 1.0


@dataclass(frozen=True)
class Outcome:
    """One technique's figures (see the module docstring for what each one counts)."""

    technique: str
    clients: int
    published: int
    delivered: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    requests: int
    bytes_in: int
    bytes_out: int
    #: Server CPU seconds over the run, None when the server is not ours to measure.
    cpu_seconds: float | None
    #: Wall seconds of the window the CPU was measured over.
    wall_seconds: float
    lost: int
    duplicates: int
    errors: tuple[str, ...] = ()

    @property
    def bytes_per_event(self) -> float:
        return (self.bytes_in + self.bytes_out) / self.delivered if self.delivered else math.nan


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest-rank; NaN when there are none."""
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of process ``pid`` so far (``/proc/PID/stat`` fields 14 and 15), None without /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The command name (field 2) may hold spaces and parentheses: split after its closing one.
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Progress = Callable[[str], None]


async def _open(factory: Callable[[], Client], target: Target, count: int) -> list[Client]:
    """Open ``count`` clients, at most 100 connecting at a time (a burst of SYNs overflows the listen
    backlog); return once every one is ready."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(100)

    async def one() -> Client:
        async with gate:
            _, client = await asyncio.wait_for(
                loop.create_connection(factory, target.host, target.port), OPEN_TIMEOUT
            )
            await asyncio.wait_for(client.ready, OPEN_TIMEOUT)
            return client

    tasks = [loop.create_task(one()) for _ in range(count)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for client in results:
            if isinstance(client, Client):
                client.close()
        raise


async def _publish(publisher: HTTPClient, channel: str) -> int:
    """Publish one event whose data is the clock now; return its id."""
    body = f"{time.monotonic():.6f}".encode()
    status, answer = await publisher.request("POST", f"/publish?channel={channel}", body)
    if status != 200:
        raise CompareError(f"POST /publish answered {status}: {answer[:100]!r}")
    return int(json.loads(answer)["id"])


async def _short_poller(
    client: HTTPClient, channel: str, interval: float, start: float, final: asyncio.Future[int]
) -> None:
    """Poll every ``interval`` from a random phase after ``start`` (loop time), so the clients' requests
    spread over the interval as independent browsers' do; stop after the poll that fetched the last event."""
    loop = asyncio.get_running_loop()
    first = start + secrets.randbelow(1000) / 1000 * interval
    cursor = 0
    k = 0
    while not (final.done() and cursor >= final.result()):
        delay = first + k * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        k += 1
        status, body = await client.request("GET", f"/poll?channel={channel}&since={cursor}")
        if status != 200:
            client.tally.error(f"poll: HTTP {status}")
            return
        cursor = client.take(body, cursor)


async def _long_poller(client: HTTPClient, channel: str) -> None:
    """Long poll in a loop: each answer is followed at once by the next request with the new cursor."""
    cursor = 0
    while True:
        status, body = await client.request("GET", f"/longpoll?channel={channel}&since={cursor}&timeout=60")
        if status != 200:
            client.tally.error(f"longpoll: HTTP {status}")
            return
        cursor = client.take(body, cursor)


def _channel(name: str) -> str:
    # A fresh channel per run: no event of another run (or of another user of a shared server) mixes in.
    # Short, since the name is in every request's target and every JSON event: its bytes are counted.
    return f"{name}-{secrets.token_hex(3)}"


async def run_technique(
    technique: str,
    target: Target,
    settings: Settings,
    server_pid: int | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Measure one technique (see the module docstring).

    Args:
        technique: one of :data:`TECHNIQUES`.
        target: the demo server.
        settings: clients, duration and intervals.
        server_pid: the server's process, to read its CPU time (None: not measured).
        progress: called with a short status now and then.

    Raises:
        CompareError: the server refused a publish.
        ConnectionError / TimeoutError: a client could not connect, or the server closed on it.
    """
    loop = asyncio.get_running_loop()
    tally = Tally()
    channel = _channel(technique)
    say = progress or (lambda _: None)
    say(f"{LABELS[technique]}: opening {settings.clients} clients")
    cpu0, t0 = (cpu_seconds(server_pid) if server_pid else None), time.monotonic()
    factory: Callable[[], Client]
    if technique == "sse":
        factory = lambda: SSEClient(tally, target, channel)  # noqa: E731
    elif technique == "ws":
        factory = lambda: WSClient(tally, target, channel)  # noqa: E731
    elif technique in ("poll", "longpoll"):
        factory = lambda: HTTPClient(tally, target)  # noqa: E731
    else:
        raise ValueError(f"unknown technique {technique!r}")
    clients = await _open(factory, target, settings.clients)
    publisher = cast(HTTPClient, (await _open(lambda: HTTPClient(Tally(), target), target, 1))[0])
    start = loop.time() + SETTLE
    final: asyncio.Future[int] = loop.create_future()
    tasks: list[asyncio.Task[None]] = []
    for client in clients:
        assert isinstance(client, HTTPClient) or technique in ("sse", "ws")
        if technique == "poll":
            poll = _short_poller(cast(HTTPClient, client), channel, settings.poll_interval, start, final)
            tasks.append(loop.create_task(poll))
        elif technique == "longpoll":
            tasks.append(loop.create_task(_long_poller(cast(HTTPClient, client), channel)))
    published: list[int] = []
    try:
        await asyncio.sleep(max(0.0, start - loop.time()))
        count = max(1, round(settings.seconds / settings.interval))
        for k in range(count):
            # An absolute schedule: a late publish does not push the later ones back.
            delay = start + k * settings.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            published.append(await _publish(publisher, channel))
            say(f"{LABELS[technique]}: {k + 1}/{count} events published, {tally.delivered} delivered")
        final.set_result(published[-1])
        # Wait until every client has every event (or the drain time is over): no fixed grace period to
        # guess, and a lost event costs a bounded wait.
        deadline = loop.time() + DRAIN + (settings.poll_interval if technique == "poll" else 0)
        while loop.time() < deadline and any(c.last_id < published[-1] and not c.closed for c in clients):
            await asyncio.sleep(0.02)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in [*clients, publisher]:
            c.close()
        await asyncio.sleep(0.2)  # the server sees the closes (and pays for them) inside the CPU window
    cpu1, t1 = (cpu_seconds(server_pid) if server_pid else None), time.monotonic()
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            tally.error(f"{LABELS[technique]}: {task.exception()!r}")
    ids = set(published)
    lost = sum(len(ids - c.seen) for c in clients)
    latencies = sorted(tally.latencies)
    return Outcome(
        technique=technique,
        clients=settings.clients,
        published=len(published),
        delivered=tally.delivered,
        mean_ms=1000 * sum(latencies) / len(latencies) if latencies else math.nan,
        p50_ms=1000 * percentile(latencies, 0.50),
        p99_ms=1000 * percentile(latencies, 0.99),
        requests=tally.requests,
        bytes_in=tally.bytes_in,
        bytes_out=tally.bytes_out,
        cpu_seconds=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        wall_seconds=t1 - t0,
        lost=lost,
        duplicates=tally.duplicates,
        errors=tuple(tally.errors),
    )


@dataclass(frozen=True)
class BurstOutcome:
    """The long-poll re-request burst (:func:`run_burst`)."""

    clients: int
    #: Publish to each client's answer, sorted, in ms.
    answered_ms: tuple[float, ...]
    #: Publish to the last client's re-request written, in ms.
    rerequested_ms: float
    #: Requests the clients made in the burst (one re-request each), and bytes both ways (answers and
    #: re-requests, heads included).
    requests: int
    bytes: int
    cpu_seconds: float | None
    #: This process's CPU seconds over the same window: the clients' own share of the times above.
    client_cpu_seconds: float
    #: Checked with a second publish, which every re-request must get.
    lost: int
    duplicates: int
    errors: tuple[str, ...] = ()


async def run_burst(
    target: Target, clients: int, server_pid: int | None = None, progress: Progress | None = None
) -> BurstOutcome:
    """``clients`` long polls held on a fresh channel, one publish: how long until all are answered and
    have asked again, with how many requests and bytes, and the server's CPU from the publish until the
    re-requests are in (plus 0.5 s for the server to take them). A second publish then checks that every
    re-request is held: each client must get it, once."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    channel = _channel("burst")
    say = progress or (lambda _: None)
    say(f"burst: opening {clients} clients")
    conns = [cast(HTTPClient, c) for c in await _open(lambda: HTTPClient(tally, target), target, clients)]
    publisher = cast(HTTPClient, (await _open(lambda: HTTPClient(Tally(), target), target, 1))[0])
    answered: list[float] = []
    rerequested: list[float] = []
    first_id: asyncio.Future[int] = loop.create_future()

    async def client_loop(client: HTTPClient) -> None:
        cursor = 0
        answered_once = stamp = False
        while True:
            waiter = client.start_request("GET", f"/longpoll?channel={channel}&since={cursor}&timeout=60")
            if stamp:  # the re-request that follows the burst's answer is written: when?
                rerequested.append(time.monotonic())
                stamp = False
            status, body = await waiter
            if status != 200:
                client.tally.error(f"longpoll: HTTP {status}")
                return
            cursor = client.take(body, cursor)
            if first_id.done() and not answered_once:
                answered.append(client.now)
                answered_once = stamp = True

    tasks = [loop.create_task(client_loop(c)) for c in conns]
    try:
        # The held requests must be in the hub before the publish, or it measures their arrival: wait
        # until the server's CPU stops moving (at most 5 s), then a little more.
        say(f"burst: {clients} long polls going to the server")
        await asyncio.sleep(0.5)
        if server_pid is not None:
            before = cpu_seconds(server_pid)
            for _ in range(50):
                await asyncio.sleep(0.1)
                now = cpu_seconds(server_pid)
                if now == before:
                    break
                before = now
        else:
            await asyncio.sleep(1.0 + clients / 1000)
        bytes0 = tally.bytes_in + tally.bytes_out
        requests0 = tally.requests
        say("burst: publishing")
        cpu0, proc0 = (cpu_seconds(server_pid) if server_pid else None), time.process_time()
        t0 = time.monotonic()
        published = [await _publish(publisher, channel)]
        first_id.set_result(published[0])
        deadline = loop.time() + 30
        while len(answered) < clients and loop.time() < deadline:
            await asyncio.sleep(0.005)
        bytes1 = tally.bytes_in + tally.bytes_out
        requests1 = tally.requests
        await asyncio.sleep(0.5)
        cpu1, proc1 = (cpu_seconds(server_pid) if server_pid else None), time.process_time()
        say("burst: checking that every re-request is held")
        published.append(await _publish(publisher, channel))
        while loop.time() < deadline and any(c.last_id < published[-1] and not c.closed for c in conns):
            await asyncio.sleep(0.01)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in [*conns, publisher]:
            c.close()
    ids = set(published)
    answer_ms = sorted(1000 * (a - t0) for a in answered)
    return BurstOutcome(
        clients=clients,
        answered_ms=tuple(answer_ms),
        rerequested_ms=1000 * (max(rerequested) - t0) if rerequested else math.nan,
        requests=requests1 - requests0,
        bytes=bytes1 - bytes0,
        cpu_seconds=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        client_cpu_seconds=proc1 - proc0,
        lost=sum(len(ids - c.seen) for c in conns),
        duplicates=tally.duplicates,
        errors=tuple(tally.errors),
    )


# --------------------------------------------------------------------------------------- the demo server


class DemoProcess:
    """``python -m rawrt demo --port 0`` in a subprocess, with the same rawrt as this process.

    Attributes:
        pid: the server's process id.
        target: where it listens (the port read from its banner).
        loop: the event loop it runs, from its banner (``uvloop`` when installed, else ``asyncio``).
    """

    def __init__(self, proc: subprocess.Popen[bytes], target: Target, loop: str, log: IO[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.target = target
        self.loop = loop
        self._log = log

    @classmethod
    def start(cls, timeout: float = SERVER_TIMEOUT) -> DemoProcess:
        """Start the server and wait for its banner.

        Raises:
            CompareError: it exited or printed no banner within ``timeout`` (its stderr is in the message).
        """
        env = dict(os.environ)
        # The child imports the rawrt this process runs, whatever the current directory.
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        # stderr goes to a file, not a pipe nobody reads (a full pipe would block the server's logging).
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [sys.executable, "-m", "rawrt", "demo", "--host", "127.0.0.1", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
        assert proc.stdout is not None
        line = _readline(proc.stdout, timeout)
        match = BANNER.search(line)
        if match is None:
            _stop(proc, timeout)
            log.seek(0)
            err = log.read().decode(errors="replace").strip().splitlines()
            log.close()
            detail = err[-1] if err else f"it printed {line.strip()!r}"
            raise CompareError(f"the demo server did not start: {detail}")
        return cls(proc, Target("127.0.0.1", int(match.group(1))), match.group(2), log)

    def stop(self, timeout: float = SERVER_TIMEOUT) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it is still running after ``timeout``."""
        _stop(self.proc, timeout)
        self._log.close()


def _readline(stream: IO[bytes], timeout: float) -> str:
    """One line from a pipe, or ``""`` after ``timeout`` seconds (a thread, since a pipe read cannot time out
    portably)."""
    import threading

    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].decode(errors="replace") if out else ""


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


async def probe(target: Target) -> None:
    """Check that ``target`` is a rawrt demo: ``GET /hello`` answers ``Hello, world!`` and ``GET /poll``
    answers a cursor.

    Raises:
        CompareError: nothing listens there, or something else does.
    """
    loop = asyncio.get_running_loop()
    tally = Tally()
    try:
        _, client = await asyncio.wait_for(
            loop.create_connection(lambda: HTTPClient(tally, target), target.host, target.port), OPEN_TIMEOUT
        )
    except (OSError, asyncio.TimeoutError) as exc:
        # asyncio's text is "Connect call failed ('127.0.0.1', 9)"; the errno says why in the usual words.
        if isinstance(exc, OSError) and exc.errno:
            reason = os.strerror(exc.errno)
        else:
            reason = str(exc) or "timed out"
        raise CompareError(f"cannot connect to {target.url}: {reason}") from None
    not_demo = f"{target.url} is not a rawrt demo server"
    try:
        status, body = await asyncio.wait_for(client.request("GET", "/hello"), OPEN_TIMEOUT)
        if status != 200 or body != b"Hello, world!":
            raise CompareError(
                f"{not_demo}: GET /hello answered {status} {body[:40]!r}, expected 200 'Hello, world!'"
            )
        status, body = await asyncio.wait_for(
            client.request("GET", f"/poll?channel={_channel('probe')}"), OPEN_TIMEOUT
        )
        try:
            cursor = json.loads(body)["cursor"] if status == 200 else None
        except (ValueError, KeyError, TypeError):
            cursor = None
        if not isinstance(cursor, int):
            raise CompareError(f"{not_demo}: GET /poll answered {status} {body[:40]!r}, expected a cursor")
    except (ConnectionError, asyncio.TimeoutError) as exc:
        raise CompareError(f"{not_demo}: {exc or type(exc).__name__}") from None
    finally:
        client.close()


# ------------------------------------------------------------------------------------------ the output


def _label(technique: str, settings: Settings) -> str:
    if technique == "poll":
        return f"short polling ({settings.poll_interval:g} s)"
    return LABELS[technique]


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def format_table(outcomes: Sequence[Outcome], settings: Settings, where: str) -> str:
    """The plain-text table ``rawrt compare`` prints (columns separated by two spaces or more)."""
    header = [
        "technique",
        "p50 ms",
        "p99 ms",
        "requests",
        "bytes/event",
        "server CPU",
        "events",
        "lost",
        "dup",
    ]
    rows = [header]
    for o in outcomes:
        cpu = "n/a" if o.cpu_seconds is None else f"{o.cpu_seconds:.2f} s"
        size = "-" if math.isnan(o.bytes_per_event) else f"{o.bytes_per_event:.0f} B"
        rows.append(
            [
                _label(o.technique, settings),
                _ms(o.p50_ms),
                _ms(o.p99_ms),
                f"{o.requests:,}",
                size,
                cpu,
                f"{o.delivered:,}",
                str(o.lost),
                str(o.duplicates),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        f"rawrt compare: {settings.clients} clients per technique, one event every "
        f"{1000 * settings.interval:g} ms for {settings.seconds:g} s, {where}",
        "",
    ]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines += [
        "",
        "latency: publish to receive. requests: the clients' HTTP requests (an SSE stream or a WebSocket",
        "upgrade is one; the publisher's POSTs are not counted). bytes/event: what the clients read and",
        "wrote, heads and framing included, per event delivered. server CPU: the server process's user +",
        "system seconds while the technique ran. events: delivered. lost/dup: against the published ids.",
    ]
    for o in outcomes:
        lines += [f"{_label(o.technique, settings)}: error: {e}" for e in o.errors]
    return "\n".join(lines)


def format_burst(b: BurstOutcome, where: str) -> str:
    """The plain-text report of :func:`run_burst`."""
    a = b.answered_ms
    cpu = "n/a" if b.cpu_seconds is None else f"{b.cpu_seconds:.2f} s"
    answered = (
        f"{len(a):,} of {b.clients:,} in {a[-1]:.1f} ms (p50 {percentile(a, 0.5):.1f} ms, "
        f"p99 {percentile(a, 0.99):.1f} ms)"
        if a
        else f"0 of {b.clients:,}"
    )
    lines = [
        f"rawrt compare --burst: {b.clients:,} clients held on /longpoll, one publish, {where}",
        "",
        f"answered          {answered}",
        f"re-requested      all in {_ms(b.rerequested_ms)} ms (the last re-request written)",
        f"requests          {b.requests:,} (one re-request per client)",
        f"bytes             {b.bytes:,} B, {b.bytes / max(1, b.clients):.0f} B per client "
        "(the answer and the re-request, heads included)",
        f"server CPU        {cpu} (from the publish until 0.5 s after the last re-request)",
        f"client CPU        {b.client_cpu_seconds:.2f} s (this process, same window: in the times above)",
        f"lost / dup        {b.lost} / {b.duplicates} (a second publish, which every re-request must get)",
    ]
    lines += [f"error: {e}" for e in b.errors]
    return "\n".join(lines)


def _panel(
    x0: float,
    y0: float,
    title: str,
    values: list[tuple[str, float | None]],
    unit: str,
    log: bool,
) -> list[str]:
    """One bar panel, 250 x 245 with its labels, its top left corner at (x0, y0)."""
    width, top, height = 250.0, y0 + 30, 200.0
    out = [
        f'<text x="{x0 + width / 2:.1f}" y="{y0 + 14:.1f}" text-anchor="middle" font-weight="bold">'
        f"{escape(title)}</text>",
        f'<line x1="{x0}" y1="{top + height}" x2="{x0 + width}" y2="{top + height}" stroke="#333"/>',
    ]
    numbers = [v for _, v in values if v is not None and v > 0 and math.isfinite(v)]
    hi = max(numbers, default=1.0)
    if log:
        # The decade below the smallest value, so that no bar is zero high.
        lo = 10 ** (math.ceil(math.log10(min(numbers, default=1.0))) - 1)
        top_value = 10 ** math.ceil(math.log10(hi * 1.2))

        def scale(v: float) -> float:
            span = math.log10(top_value) - math.log10(lo)
            return height * (math.log10(max(v, lo)) - math.log10(lo)) / span if span else 0.0

        ticks = [10.0**k for k in range(round(math.log10(lo)), round(math.log10(top_value)) + 1)]
    else:
        top_value = hi * 1.25

        def scale(v: float) -> float:
            return height * v / top_value

        # A 1, 2 or 5 step that gives at most 6 gridlines.
        magnitude = 10 ** math.floor(math.log10(top_value / 6))
        step = next(m * magnitude for m in (1, 2, 5, 10) if top_value / (m * magnitude) <= 6)
        ticks = [k * step for k in range(int(top_value / step) + 1)]
    for tick in ticks:
        y = top + height - scale(tick)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + width}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        out.append(
            f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#555">{tick:g}</text>'
        )
    group = width / len(values)
    bar = group * 0.6
    for i, (label, value) in enumerate(values):
        bx = x0 + i * group + (group - bar) / 2
        cx = bx + bar / 2
        if value is None or not math.isfinite(value):
            out.append(
                f'<text x="{cx:.1f}" y="{top + height - 4}" text-anchor="middle" font-size="10">n/a</text>'
            )
        else:
            h = scale(value)
            out.append(
                f'<rect x="{bx:.1f}" y="{top + height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{_COLORS[i]}"><title>{escape(label)}: {value:.4g} {unit}</title></rect>'
            )
            out.append(
                f'<text x="{cx:.1f}" y="{top + height - h - 3:.1f}" text-anchor="middle" '
                f'font-size="10">{_number(value)}</text>'
            )
        out.append(
            f'<text x="{cx:.1f}" y="{top + height + 14}" text-anchor="middle" font-size="10">'
            f"{escape(label)}</text>"
        )
    return out


def _number(value: float) -> str:
    # 1234 rather than 1.23e+03; three significant digits below 100.
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


_COLORS = ("#dd6b20", "#d69e2e", "#2b6cb0", "#2f855a")
_SHORT = {"poll": "short poll", "longpoll": "long poll", "sse": "SSE", "ws": "WebSocket"}


def svg_chart(outcomes: Sequence[Outcome], settings: Settings, where: str) -> str:
    """The table's figures as a hand-written SVG (900 x 600): five bar panels and the lost/dup counts."""
    names = [_SHORT[o.technique] for o in outcomes]

    def col(get: Callable[[Outcome], float | None]) -> list[tuple[str, float | None]]:
        return [(n, get(o)) for n, o in zip(names, outcomes, strict=True)]

    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="900" height="600" viewBox="0 0 900 600" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="900" height="600" fill="white"/>',
        f'<text x="450" y="22" text-anchor="middle" font-size="15" font-weight="bold">rawrt compare: '
        f"{settings.clients} clients, one event every {1000 * settings.interval:g} ms for "
        f"{settings.seconds:g} s</text>",
        f'<text x="450" y="40" text-anchor="middle" font-size="11" fill="#555">{escape(where)}</text>',
        *_panel(50, 55, "latency p50 (ms, log)", col(lambda o: o.p50_ms), "ms", True),
        *_panel(345, 55, "latency p99 (ms, log)", col(lambda o: o.p99_ms), "ms", True),
        *_panel(640, 55, "HTTP requests (log)", col(lambda o: float(o.requests)), "requests", True),
        *_panel(50, 320, "bytes on the wire per event", col(lambda o: o.bytes_per_event), "B", False),
        *_panel(345, 320, "server CPU (s)", col(lambda o: o.cpu_seconds), "s", False),
        '<text x="765" y="334" text-anchor="middle" font-weight="bold">lost / duplicated events</text>',
    ]
    for i, (name, o) in enumerate(zip(names, outcomes, strict=True)):
        y = 380 + 30 * i
        color = "#2f855a" if o.lost == 0 and o.duplicates == 0 else "#c53030"
        parts.append(f'<rect x="660" y="{y - 11}" width="12" height="12" fill="{_COLORS[i]}"/>')
        parts.append(f'<text x="680" y="{y}">{escape(name)}</text>')
        parts.append(
            f'<text x="860" y="{y}" text-anchor="end" fill="{color}">{o.lost} / {o.duplicates}</text>'
        )
    notes = (
        "latency: publish to receive",
        "requests: the clients' (publisher's not counted)",
        "bytes: both directions, heads and framing",
        "CPU: the server process, while each ran",
    )
    for i, note in enumerate(notes):
        parts.append(f'<text x="650" y="{515 + 16 * i}" font-size="10" fill="#555">{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``compare``'s arguments to an ``argparse`` (sub)parser."""
    parser.add_argument(
        "url", nargs="?", help="a running rawrt demo (http://HOST:PORT/); default: start one on a free port"
    )
    parser.add_argument(
        "--clients", type=_positive_int, default=100, metavar="N", help="clients per technique (100)"
    )
    parser.add_argument(
        "--seconds",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="publishing time per technique (10)",
    )
    parser.add_argument(
        "--interval-ms",
        type=_positive_float,
        default=100.0,
        metavar="MS",
        help="time between two publishes (100 ms)",
    )
    parser.add_argument(
        "--poll-interval", type=_positive_float, default=1.0, metavar="S", help="short polling's period (1 s)"
    )
    parser.add_argument("--svg", metavar="FILE", help="also draw the figures into an SVG file")
    parser.add_argument(
        "--burst",
        type=_positive_int,
        metavar="N",
        help="instead: N clients held on /longpoll, one publish; time, requests and bytes until all are "
        "answered and have asked again",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


class _Progress:
    """The progress line on stderr: redrawn in place (``\\r``) on a terminal; otherwise a plain line when
    a technique starts, at most, so a log file gets a few lines and no control characters."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.width = 0
        self.last_topic = ""

    def __call__(self, text: str) -> None:
        if self.tty:
            line = f"rawrt compare: {text}"
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
            self.stream.flush()
            return
        topic = text.partition(":")[0]
        if topic != self.last_topic:
            self.last_topic = topic
            print(f"rawrt compare: {text}", file=self.stream, flush=True)

    def clear(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def _raise_nofile() -> None:
    """Raise the soft file-descriptor limit to the hard one: a thousand clients need more than 1,024
    descriptors on some systems, and the server started here inherits the limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _compare(
    args: argparse.Namespace, target: Target, pid: int | None, where: str, progress: _Progress
) -> str:
    await probe(target)
    if args.burst is not None:
        return format_burst(await run_burst(target, args.burst, pid, progress), where)
    settings = Settings(args.clients, args.seconds, args.interval_ms / 1000, args.poll_interval)
    outcomes = []
    for technique in TECHNIQUES:
        try:
            outcomes.append(await run_technique(technique, target, settings, pid, progress))
        except (ConnectionError, asyncio.TimeoutError, OSError) as exc:
            raise CompareError(f"{LABELS[technique]}: {exc or type(exc).__name__}") from None
    if args.svg:
        try:
            Path(args.svg).write_text(svg_chart(outcomes, settings, where), "utf-8")
        except OSError as exc:
            raise CompareError(f"cannot write {args.svg}: {exc.strerror or exc}") from None
    return format_table(outcomes, settings, where)


def main(args: argparse.Namespace) -> str:
    """Run ``rawrt compare`` with parsed ``args``; return the report to print.

    Raises:
        CompareError: see the module docstring.
    """
    if args.burst is not None and args.svg:
        raise CompareError("--svg draws the four techniques' figures; it cannot be combined with --burst")
    target = parse_url(args.url) if args.url else None
    _raise_nofile()
    progress = _Progress(sys.stderr)
    demo = DemoProcess.start() if target is None else None
    try:
        if demo is not None:
            where = f"server {demo.target.url} (started by compare: pid {demo.pid}, loop {demo.loop})"
            return asyncio.run(_compare(args, demo.target, demo.pid, where, progress))
        assert target is not None
        return asyncio.run(_compare(args, target, None, f"server {target.url}", progress))
    finally:
        progress.clear()
        if demo is not None:
            demo.stop()
