"""The measurements: one technique's run (:func:`run_technique`), the long-poll burst (:func:`run_burst`),
and the probe that checks a target is a rawrt demo first (:func:`probe`). What each figure counts is in
:mod:`rawrt.compare`'s docstring.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from .clients import Client, HTTPClient, SSEClient, Tally, WSClient
from .target import CompareError, Target

__all__ = [
    "TECHNIQUES",
    "LABELS",
    "Settings",
    "Outcome",
    "BurstOutcome",
    "Progress",
    "run_technique",
    "run_burst",
    "probe",
    "percentile",
    "cpu_seconds",
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
    """One technique's figures (see :mod:`rawrt.compare` for what each one counts)."""

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
    """Measure one technique (see :mod:`rawrt.compare`).

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


# --------------------------------------------------------------------------------------------- the probe


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
