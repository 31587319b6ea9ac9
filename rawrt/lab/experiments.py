"""The protocol lab's experiments: exchanges run over raw sockets so that every byte can be shown.

Two experiments live here, shared by the demo's endpoints (``POST /lab/experiments/expect-continue``) and
by the command line (``rawrt experiment ...``, :mod:`rawrt.experiment`):

* :func:`expect_continue`: the same ``Expect: 100-continue`` POST sent as HTTP/1.0 and as HTTP/1.1. A
  server must not send a 1xx to an HTTP/1.0 client (RFC 9110 §15.2), and must ignore a 100-continue
  expectation in an HTTP/1.0 request (§10.1.1), so only the 1.1 exchange gets ``100 Continue`` before its
  final answer.
* :func:`sse_resume`: a Server-Sent Events stream is dropped while events are published, then resumed with
  ``Last-Event-ID`` (WHATWG HTML §9.2.4): the events published in between are replayed, none lost, none twice.

Both are bounded: fixed requests, a connect/read timeout, a cap on the bytes read. The endpoint only ever
connects to the server's own listening address (the socket the page's request arrived on, never a name
taken from a header), one run at a time and at most :data:`MAX_RUNS_PER_MINUTE` a minute, so it cannot be
turned into a scanner or an amplifier.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections import deque
from dataclasses import dataclass, field

from ..errors import RawrtError

__all__ = [
    "ExperimentError",
    "Exchange",
    "expect_continue",
    "SSEEvent",
    "SSEResume",
    "sse_resume",
    "Throttle",
    "MAX_RUNS_PER_MINUTE",
]

#: Bound on connecting to the server and on each read (a loaded machine; the exchanges are tiny).
IO_TIMEOUT = 5.0
#: How long the client waits for ``100 Continue`` before sending the body anyway: RFC 9110 §10.1.1 lets a
#: client that sent 100-continue proceed without waiting indefinitely (curl waits 1 s).
CONTINUE_WAIT = 0.5
#: At most this many bytes are read from one answer (the answers here are a few hundred bytes).
MAX_ANSWER = 64 * 1024
#: Experiment runs the demo accepts per minute, all pages together (each opens two loopback connections).
MAX_RUNS_PER_MINUTE = 30

#: The body of the experiment's POST: short and recognisable in the echo.
BODY = b"the body, sent once the server said to go on"


class ExperimentError(RawrtError):
    """The experiment could not run (nothing listening, a timeout, not a rawrt demo): one line."""


class Throttle:
    """One run at a time, and at most ``per_minute`` runs in any 60 s window (all callers together)."""

    def __init__(self, per_minute: int = MAX_RUNS_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self.busy = False
        self.starts: deque[float] = deque()

    def acquire(self) -> bool:
        """Take a run if one is allowed now (then :meth:`release` it), else ``False``."""
        now = time.monotonic()
        while self.starts and now - self.starts[0] > 60.0:
            self.starts.popleft()
        if self.busy or len(self.starts) >= self.per_minute:
            return False
        self.busy = True
        self.starts.append(now)
        return True

    def release(self) -> None:
        self.busy = False


@dataclass(frozen=True)
class Exchange:
    """One request sent over its own connection and what came back, byte for byte."""

    #: ``"1.0"`` or ``"1.1"``.
    version: str
    #: The request head as written, then the body as written after the wait.
    head: bytes
    body: bytes
    #: What the server wrote before the body was sent (``100 Continue``, or nothing), then after it.
    before_body: bytes
    after_body: bytes
    #: Milliseconds the client waited before sending the body (until ``100 Continue``, or the whole wait).
    waited_ms: float

    @property
    def received(self) -> bytes:
        return self.before_body + self.after_body

    @property
    def interim(self) -> bool:
        """Whether a 1xx status line came back (RFC 9110 §15.2)."""
        return any(line.startswith((b"HTTP/1.1 1", b"HTTP/1.0 1")) for line in self.received.split(b"\r\n"))

    def as_dict(self) -> dict[str, object]:
        # latin-1: every byte becomes one character, so the page shows exactly what was on the wire.
        return {
            "version": self.version,
            "sent": (self.head + self.body).decode("latin-1"),
            "received": self.received.decode("latin-1"),
            "before_body": self.before_body.decode("latin-1"),
            "interim": self.interim,
            "waited_ms": round(self.waited_ms, 1),
        }


async def _connect(
    host: str, port: int, ssl_context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
            ),
            IO_TIMEOUT,
        )
    except TimeoutError:
        raise ExperimentError(f"cannot connect to {host}:{port}: timed out after {IO_TIMEOUT:g} s") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ExperimentError(f"cannot connect to {host}:{port}: {reason}") from None


async def _read_to_eof(reader: asyncio.StreamReader, limit: int = MAX_ANSWER) -> bytes:
    data = b""
    deadline = asyncio.get_running_loop().time() + IO_TIMEOUT
    while len(data) < limit:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(limit - len(data)), left)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        data += chunk
    return data


async def _one_expect(
    version: str, host: str, port: int, authority: str, path: str, ssl_context: ssl.SSLContext | None
) -> Exchange:
    reader, writer = await _connect(host, port, ssl_context)
    try:
        head = (
            f"POST {path} HTTP/{version}\r\nHost: {authority}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(BODY)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        writer.write(head)
        await writer.drain()
        loop = asyncio.get_running_loop()
        start = loop.time()
        before = b""
        # Wait for the interim answer (or anything else) up to CONTINUE_WAIT, then send the body anyway.
        while b"\r\n\r\n" not in before:
            left = start + CONTINUE_WAIT - loop.time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(MAX_ANSWER), left)
            except TimeoutError:
                break
            if not chunk:
                break
            before += chunk
        waited = 1000 * (loop.time() - start)
        writer.write(BODY)
        await writer.drain()
        after = await _read_to_eof(reader, MAX_ANSWER - len(before))
    except ConnectionError as exc:
        raise ExperimentError(f"{host}:{port} closed the connection: {exc}") from None
    finally:
        writer.close()
    return Exchange(version, head, BODY, before, after, waited)


async def expect_continue(
    host: str,
    port: int,
    *,
    authority: str | None = None,
    path: str = "/echo",
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[Exchange, Exchange]:
    """Send ``POST path`` with ``Expect: 100-continue`` as HTTP/1.0, then as HTTP/1.1, each on its own
    connection to ``host:port``; return both exchanges (1.0 first).

    Raises:
        ExperimentError: nothing listens there, or the connection failed.
    """
    shown = f"[{host}]" if ":" in host else host
    where = authority or f"{shown}:{port}"
    old = await _one_expect("1.0", host, port, where, path, ssl_context)
    new = await _one_expect("1.1", host, port, where, path, ssl_context)
    return old, new


# ------------------------------------------------------------------------------- SSE: drop and resume


@dataclass(frozen=True)
class SSEEvent:
    id: str
    data: str


@dataclass
class SSEResume:
    """What :func:`sse_resume` saw: the two connections' heads and events, and the published ids."""

    channel: str
    first_request: bytes = b""
    first_response: bytes = b""
    before: list[SSEEvent] = field(default_factory=list)
    second_request: bytes = b""
    second_response: bytes = b""
    after: list[SSEEvent] = field(default_factory=list)
    published_before: list[int] = field(default_factory=list)
    published_while_dropped: list[int] = field(default_factory=list)

    @property
    def last_event_id(self) -> str:
        """The id the client resumed from (the last event seen before the drop)."""
        return self.before[-1].id if self.before else ""

    def check(self) -> tuple[bool, str]:
        """Whether every published event was received exactly once, in order: ``(ok, one line)``."""
        got = [int(e.id) for e in self.before + self.after]
        published = self.published_before + self.published_while_dropped
        lost = sorted(set(published) - set(got))
        duplicates = len(got) - len(set(got))
        ordered = all(a < b for a, b in zip(got, got[1:], strict=False))
        ok = not lost and not duplicates and ordered and got == published
        line = (
            f"{len(published)} published, {len(got)} received: {len(lost)} lost, {duplicates} duplicated, "
            f"ids {'increasing' if ordered else 'OUT OF ORDER'}"
        )
        return ok, line


class _SSEReader:
    """A chunked ``text/event-stream`` answer read off a raw socket (RFC 9112 §7.1, WHATWG HTML §9.2.6)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.text = ""

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)

    async def _chunk(self) -> None:
        size_line = await self.reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            raise ExperimentError("the event stream ended")
        data = await self.reader.readexactly(size + 2)
        self.text += data[:-2].decode("utf-8")

    async def event(self, deadline: float) -> SSEEvent | None:
        """The next event with data (id-only events and comments are skipped), or ``None`` at the deadline."""
        loop = asyncio.get_running_loop()
        while True:
            text = self.text.replace("\r\n", "\n").replace("\r", "\n")
            if "\n\n" in text:
                block, _, rest = text.partition("\n\n")
                self.text = rest
                event_id, data = "", []
                for line in block.split("\n"):
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "id":
                        event_id = value
                    elif name == "data":
                        data.append(value)
                if data:
                    return SSEEvent(event_id, "\n".join(data))
                continue
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(self._chunk(), left)
            except TimeoutError:
                return None


async def _publish(host: str, port: int, authority: str, prefix: str, channel: str, text: str) -> int:
    reader, writer = await _connect(host, port, None)
    body = text.encode("utf-8")
    writer.write(
        f"POST {prefix}/publish?channel={channel} HTTP/1.1\r\nHost: {authority}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    try:
        answer = await _read_to_eof(reader)
    finally:
        writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        first = head.split(b"\r\n")[0]
        raise ExperimentError(f"POST /publish answered {first!r}, expected 200: is it a rawrt demo?")
    try:
        return int(json.loads(payload)["id"])
    except (ValueError, KeyError, TypeError):
        raise ExperimentError(f'POST /publish answered {payload[:80]!r}, expected {{"id": N}}') from None


async def _open_stream(
    host: str, port: int, authority: str, prefix: str, channel: str, last_event_id: str | None
) -> tuple[bytes, bytes, _SSEReader, asyncio.StreamWriter]:
    reader, writer = await _connect(host, port, None)
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
    request = (
        f"GET {prefix}/events?channel={channel} HTTP/1.1\r\nHost: {authority}\r\n"
        f"Accept: text/event-stream\r\n{resume}\r\n"
    ).encode()
    writer.write(request)
    sse = _SSEReader(reader)
    try:
        head = await sse.head()
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        writer.close()
        raise ExperimentError(f"GET {prefix}/events gave no answer head: is it a rawrt demo?") from None
    if not head.startswith(b"HTTP/1.1 200") or b"text/event-stream" not in head.lower():
        writer.close()
        first = head.split(b"\r\n")[0]
        raise ExperimentError(f"GET {prefix}/events answered {first!r}, expected a 200 event stream")
    return request, head, sse, writer


async def _collect(sse: _SSEReader, ids: list[int], into: list[SSEEvent]) -> None:
    deadline = asyncio.get_running_loop().time() + IO_TIMEOUT
    wanted = {str(i) for i in ids}
    while wanted - {e.id for e in into}:
        try:
            event = await sse.event(deadline)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            raise ExperimentError(f"the event stream broke: {exc}") from None
        if event is None:
            return
        into.append(event)


async def sse_resume(
    host: str, port: int, *, prefix: str = "", channel: str, count: int = 3, authority: str | None = None
) -> SSEResume:
    """Connect to ``/events``, get ``count`` events, drop the connection, publish ``count`` more, then
    reconnect with ``Last-Event-ID`` set to the last id seen and collect what is replayed.

    Raises:
        ExperimentError: nothing listens there, it is not a rawrt demo, or the stream broke.
    """
    shown = f"[{host}]" if ":" in host else host
    where = authority or f"{shown}:{port}"
    result = SSEResume(channel)
    result.first_request, result.first_response, sse, writer = await _open_stream(
        host, port, where, prefix, channel, None
    )
    try:
        for i in range(1, count + 1):
            result.published_before.append(
                await _publish(host, port, where, prefix, channel, f"before the drop {i}")
            )
        await _collect(sse, result.published_before, result.before)
    finally:
        writer.close()  # the drop: the client goes away mid-stream
    for i in range(1, count + 1):
        result.published_while_dropped.append(
            await _publish(host, port, where, prefix, channel, f"while dropped {i}")
        )
    result.second_request, result.second_response, sse, writer = await _open_stream(
        host, port, where, prefix, channel, result.last_event_id
    )
    try:
        await _collect(sse, result.published_while_dropped, result.after)
    finally:
        writer.close()
    return result
