"""A WebSocket load generator fast enough not to be what a benchmark measures.

Design, all for speed:

* a raw ``asyncio.Protocol`` on uvloop: no StreamReader, no task per connection, no library;
* every message is a masked client frame encoded once per job; sending N messages is one
  ``transport.write(frame * N)``;
* responses are not decoded: frames are counted by walking their headers (FIN, opcode, length) and skipping
  their payloads, so a 64 KiB echo costs no copy;
* each connection keeps ``inflight`` messages outstanding: every frame received releases one more.

Used two ways: ``bench_ws.py`` starts ``ws_loadgen.py --serve`` once, pinned to its own core, and sends it
one JSON job per line on stdin (it answers one JSON result per line); or by hand::

    python benchmarks/ws_loadgen.py echo --port 8000 --connections 50 --inflight 2 --size 1024 --seconds 3

Jobs:

* ``echo``: messages/s over ``seconds`` after ``warmup``; with ``inflight == 1`` also the round-trip times
  (p50/p99, microseconds). ``raw`` skips the handshake (for the raw TCP echo server, which sends the masked
  frames back as they are: the header walk skips mask keys too). ``compress`` offers permessage-deflate
  with ``client_no_context_takeover`` and sends messages compressed each on their own (a fresh raw deflate
  stream per message, what that parameter promises), so one pre-encoded frame stays valid for every send.
* ``idle``: open ``connections`` WebSockets, answer ``{"open": N}``, hold them until the next line on stdin
  (``bench_ws.py`` measures the server's memory in between), then close them.
* ``broadcast``: open ``connections`` listeners on ``/bcast`` and a trigger on ``/bctl``; ask for ``count``
  broadcasts of ``size`` bytes; check that every listener received every one; answer the server's timings.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

from _common import raise_nofile

CONNECT_CONCURRENCY = 200
WORDS = (
    "the quick brown fox jumps over lazy dog message chat room user said hello world reply status ok "
    "update value price time event data payload server client stream frame socket again more text"
).split()


def payload(size: int, text: bool) -> bytes:
    """``size`` bytes: words (compressible like chat text) for text, random bytes for binary."""
    rng = random.Random(size)
    if not text:
        return rng.randbytes(size)
    out = []
    total = 0
    while total < size:
        word = rng.choice(WORDS)
        out.append(word)
        total += len(word) + 1
    return " ".join(out).encode()[:size]


def mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    full = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(full, "little")).to_bytes(n, "little")


def client_frame(data: bytes, *, text: bool, rsv1: bool = False) -> bytes:
    b0 = 0x80 | (0x40 if rsv1 else 0) | (1 if text else 2)
    n = len(data)
    if n < 126:
        header = bytes([b0, 0x80 | n])
    elif n < 65536:
        header = bytes([b0, 0xFE]) + n.to_bytes(2, "big")
    else:
        header = bytes([b0, 0xFF]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return header + key + mask(data, key)


def compress_message(data: bytes, wbits: int) -> bytes:
    """RFC 7692 §7.2.1 with no context takeover: a fresh deflate stream, sync-flushed, tail removed."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits, 8)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class Client(asyncio.Protocol):
    """One connection: handshake, then count whole data frames as they arrive."""

    def __init__(self, gen: Generator, raw: bool) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.is_open = raw
        self.head = b""
        self.partial = b""  # an incomplete frame header carried to the next chunk
        self.skip = 0  # payload bytes of the current frame still to arrive
        self.pending = False  # the frame being skipped is a data frame with FIN: count it when it ends
        self.received = 0
        self.sent_at = 0
        self.opened = gen.loop.create_future()
        self.closed = gen.loop.create_future()
        #: When set, takes the data instead of the frame counter (the broadcast trigger's answer).
        self.grab: Callable[[bytes], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.is_open:
            self.opened.set_result(None)
        else:
            self.transport.write(self.gen.request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.is_open:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head[: self.head.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self.opened.set_exception(ConnectionError(f"handshake refused: {status!r}"))
                return
            self.gen.response_head = self.head[:end]
            data = self.head[end + 4 :]
            self.head = b""
            self.is_open = True
            self.opened.set_result(None)
            if not data:
                return
        if self.grab is not None:
            self.grab(data)
            return
        n = len(data)
        pos = self.skip
        count = 0
        if pos:
            if pos > n:
                self.skip = pos - n
                return
            self.skip = 0
            if self.pending:
                count = 1
        elif self.partial:
            data = self.partial + data
            n = len(data)
            self.partial = b""
        while pos < n:
            if pos + 2 > n:
                self.partial = data[pos:]
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                header = 4
                if pos + 4 > n:
                    self.partial = data[pos:]
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == 127:
                header = 10
                if pos + 10 > n:
                    self.partial = data[pos:]
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if b1 & 0x80:
                header += 4
            end = pos + header + length
            done = b0 & 0x80 and b0 & 0x0F < 8  # a data frame ending its message
            if end > n:
                if pos + header > n:
                    self.partial = data[pos:]
                else:
                    self.skip = end - n
                    self.pending = bool(done)
                break
            if done:
                count += 1
            pos = end
        if count:
            self.received += count
            self.gen.frames_received(self, count)


class Generator:
    """One job's connections and counters."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.loop = asyncio.get_running_loop()
        self.job = job
        self.host = job.get("host", "127.0.0.1")
        self.port = int(job["port"])
        self.inflight = int(job.get("inflight", 1))
        self.raw = bool(job.get("raw", False))
        self.compress = bool(job.get("compress", False))
        path = job.get("path", "/ws")
        ext = (
            b"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
            b"client_max_window_bits\r\n"
            if self.compress
            else b""
        )
        key = base64.b64encode(os.urandom(16))
        self.request = (
            b"GET %b HTTP/1.1\r\nHost: %b:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n%b\r\n"
            % (path.encode(), self.host.encode(), self.port, key, ext)
        )
        self.response_head = b""
        self.frame = b""
        self.running = False
        self.recording = False
        self.rtts: list[int] = []
        self.clients: list[Client] = []

    async def open(self, count: int) -> None:
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one() -> Client:
            async with sem:
                _, client = await self.loop.create_connection(
                    lambda: Client(self, self.raw), self.host, self.port
                )
                await client.opened
                return client

        self.clients = list(await asyncio.gather(*(one() for _ in range(count))))

    async def close(self) -> None:
        self.running = False
        for client in self.clients:
            if client.transport is not None:
                client.transport.abort()
        if self.clients:
            await asyncio.wait([c.closed for c in self.clients], timeout=5)
        self.clients = []

    def negotiated_wbits(self) -> int | None:
        """The client window the server asked for, 15 without one; None when compression was declined."""
        head = self.response_head.lower()
        if b"permessage-deflate" not in head:
            return None
        marker = b"client_max_window_bits="
        at = head.find(marker)
        if at < 0:
            return 15
        return int(head[at + len(marker) : at + len(marker) + 2].strip(b' ;"\r\n'))

    def frames_received(self, client: Client, count: int) -> None:
        if not self.running:
            return
        if self.inflight == 1:
            now = time.perf_counter_ns()
            if self.recording:
                self.rtts.append(now - client.sent_at)
            client.sent_at = now
            client.transport.write(self.frame)  # type: ignore[union-attr]
        else:
            client.transport.write(self.frame * count)  # type: ignore[union-attr]

    def received(self) -> int:
        return sum(c.received for c in self.clients)


async def run_echo(job: dict[str, Any]) -> dict[str, Any]:
    gen = Generator(job)
    await gen.open(int(job.get("connections", 1)))
    try:
        text = job.get("opcode", "text") == "text"
        data = payload(int(job["size"]), text)
        wbits = gen.negotiated_wbits() if gen.compress else None
        if gen.compress and wbits is None:
            raise RuntimeError("the server declined permessage-deflate")
        if wbits is not None:
            gen.frame = client_frame(compress_message(data, wbits), text=text, rsv1=True)
        else:
            gen.frame = client_frame(data, text=text)
        gen.running = True
        start_ns = time.perf_counter_ns()
        for client in gen.clients:
            client.sent_at = start_ns
            client.transport.write(gen.frame * gen.inflight)  # type: ignore[union-attr]
        await asyncio.sleep(float(job.get("warmup", 0.5)))
        gen.recording = True
        before, t0 = gen.received(), time.perf_counter()
        await asyncio.sleep(float(job.get("seconds", 2.0)))
        after, t1 = gen.received(), time.perf_counter()
        gen.recording = False
        result: dict[str, Any] = {"rate": (after - before) / (t1 - t0), "messages": after - before}
        if gen.rtts:
            rtts = sorted(gen.rtts)
            result["p50_us"] = rtts[len(rtts) // 2] / 1000
            result["p99_us"] = rtts[min(len(rtts) - 1, len(rtts) * 99 // 100)] / 1000
        return result
    finally:
        await gen.close()


async def run_idle(job: dict[str, Any], wait: asyncio.Future[None]) -> dict[str, Any]:
    gen = Generator(job)
    await gen.open(int(job["connections"]))
    wbits = gen.negotiated_wbits()
    print(json.dumps({"open": len(gen.clients), "compressed": wbits is not None}), flush=True)
    await wait
    await gen.close()
    return {"closed": True}


async def run_broadcast(job: dict[str, Any]) -> dict[str, Any]:
    gen = Generator({**job, "path": "/bcast"})
    ctl = Generator({**job, "path": "/bctl"})
    await gen.open(int(job["connections"]))
    await ctl.open(1)
    try:
        gen.running = ctl.running = False  # count frames only, never answer
        # The server only broadcasts once it saw every listener's handshake; give its tasks a moment.
        await asyncio.sleep(0.2)
        count, size = int(job["count"]), int(job["size"])
        reply: asyncio.Future[bytes] = gen.loop.create_future()
        control = ctl.clients[0]

        def grab(data: bytes) -> None:
            # The answer is one small unmasked text frame (a JSON list; at most 64 KiB for sane counts).
            if not reply.done():
                length = data[1] & 0x7F
                offset = 2 if length < 126 else 4 if length == 126 else 10
                reply.set_result(data[offset:])

        control.grab = grab  # (uvloop caches data_received: it cannot be replaced on the instance)
        control.transport.write(client_frame(f"{count} {size}".encode(), text=True))  # type: ignore[union-attr]
        answer = json.loads(await asyncio.wait_for(reply, 120))
        deadline = time.monotonic() + 10
        expected = count * len(gen.clients)
        while gen.received() < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        answer["delivered"] = gen.received()
        answer["expected"] = expected
        return answer
    finally:
        await ctl.close()
        await gen.close()


async def serve_jobs() -> None:
    """Read JSON jobs from stdin, one per line; write one JSON result per line."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        job = json.loads(line)
        try:
            if job["kind"] == "echo":
                result = await run_echo(job)
            elif job["kind"] == "idle":
                wait: asyncio.Future[None] = loop.create_future()

                async def release(fut: asyncio.Future[None] = wait) -> None:
                    await reader.readline()
                    fut.set_result(None)

                releaser = loop.create_task(release())
                result = await run_idle(job, wait)
                await releaser
            elif job["kind"] == "broadcast":
                result = await run_broadcast(job)
            else:
                result = {"error": f"unknown job {job['kind']!r}"}
        except Exception as exc:  # report, keep serving
            result = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["echo", "serve"], nargs="?", default="echo")
    parser.add_argument("--serve", action="store_true", help="take JSON jobs on stdin")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--inflight", type=int, default=100)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--opcode", choices=["text", "binary"], default="text")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--raw", action="store_true", help="no handshake (raw TCP echo server)")
    parser.add_argument("--compress", action="store_true", help="offer and use permessage-deflate")
    args = parser.parse_args()
    raise_nofile()
    import uvloop

    if args.serve or args.kind == "serve":
        uvloop.run(serve_jobs())
        return
    job = {k: v for k, v in vars(args).items() if k not in ("serve",)}
    job["kind"] = "echo"
    print(json.dumps(uvloop.run(run_echo(job))))


if __name__ == "__main__":
    main()
