"""Measure long polling at scale: memory per held request, and one publish releasing many held requests.

The server runs in a child process (so its memory and file descriptors are its own), the clients in this
one, over real loopback connections::

    python examples/polling_bench.py --held 10000 --burst 1000

Reported (numbers in ``docs/polling.md``):

* memory per held long-poll request on the *server*: Python heap growth (tracemalloc) and RSS growth,
  divided by the number of held requests (kernel socket buffers are not in either);
* the burst: time from ``hub.publish`` to the last released response written to its socket (measured in
  the server, from the ``rawrt.access`` log records, which the server emits after each response is
  written), and per released waiter; plus what the clients saw (all responses read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import sys
import time
import tracemalloc

from rawrt.demo import create_app
from rawrt.limits import Limits
from rawrt.server import Server

CHANNEL = "bench"


def raise_fd_limit(want: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``want`` (at most the hard limit); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


_baseline: list[tracemalloc.Snapshot] = []


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.target = 0
        self.done: asyncio.Future[float] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.done is not None and self.count >= self.target and not self.done.done():
            self.done.set_result(time.perf_counter())


async def serve(max_connections: int) -> None:
    """The child: the demo app, driven by commands on stdin, answering on stdout (one JSON line each)."""
    raise_fd_limit(max_connections + 100)
    limits = Limits(max_connections=max_connections, header_timeout=120.0, keep_alive_timeout=120.0)
    app = create_app(limits)
    server = Server(app, limits)
    await server.start("127.0.0.1", 0)
    counter = _Counter()
    access = logging.getLogger("rawrt.access")
    access.addHandler(counter)
    access.setLevel(logging.INFO)
    access.propagate = False
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(**values: object) -> None:
        print(json.dumps(values), flush=True)

    say(port=server.port)
    while line := (await reader.readline()).decode().split():
        command = line[0]
        if command == "trace":
            tracemalloc.start()
            say(ok=True)
        elif command == "snap":
            traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
            say(
                traced=traced,
                rss=rss(),
                held=app.hub.subscriber_count(CHANNEL),
                conns=len(server.connections),
            )
        elif command == "burst":
            counter.count = 0
            counter.target = int(line[1])
            counter.done = loop.create_future()
            start = time.perf_counter()
            app.hub.publish(CHANNEL, "go")
            published = time.perf_counter()
            end = await counter.done
            say(publish_s=published - start, last_written_s=end - start)
        elif command == "top":
            # Where the held requests' memory is, by source file (to compare against an idle connection).
            snapshot = tracemalloc.take_snapshot()
            stats = snapshot.compare_to(_baseline[0], "filename") if _baseline else []
            say(top=[(str(s.traceback[0].filename).rsplit("/", 2)[-1], s.size_diff) for s in stats[:12]])
        elif command == "base":
            _baseline[:] = [tracemalloc.take_snapshot()]
            say(ok=True)
        elif command == "quit":
            break
    await server.shutdown(timeout=1.0)


async def open_held(
    port: int, count: int, timeout: int, since: int = 0
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    target = f"/longpoll?channel={CHANNEL}&since={since}&timeout={timeout}"
    request = f"GET {target} HTTP/1.1\r\nHost: b\r\n\r\n".encode()
    conns = []
    for start in range(0, count, 500):  # in waves: the listen backlog is 1024
        wave = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(min(500, count - start)))
        )
        for _, writer in wave:
            writer.write(request)
        conns.extend(wave)
    return conns


async def drive(args: argparse.Namespace) -> None:
    raise_fd_limit(max(args.held, args.burst) + 100)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        str(max(args.held, args.burst) + 10),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    async def ask(command: str) -> dict[str, float]:
        stdin.write(command.encode() + b"\n")
        await stdin.drain()
        answer: dict[str, float] = json.loads(await stdout.readline())
        return answer

    async def wait_held(count: int) -> dict[str, float]:
        while True:
            snap = await ask("snap")
            if snap["held"] >= count:
                return snap
            await asyncio.sleep(0.05)

    async def wait_for(key: str, value: int) -> float:
        start = time.perf_counter()
        while (await ask("snap"))[key] != value:
            await asyncio.sleep(0.02)
        return time.perf_counter() - start

    port = int(json.loads(await stdout.readline())["port"])
    # 1. Memory per connection, idle then holding a long poll (tracemalloc on in the server for this part).
    await ask("trace")
    await asyncio.sleep(0.2)
    before = await ask("snap")
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(args.held)]
    await wait_for("conns", args.held)
    after = await ask("snap")
    idle_heap = (after["traced"] - before["traced"]) / args.held
    print(f"idle connections: {args.held}; server heap +{idle_heap:.0f} B per connection")
    for _, writer in idle:
        writer.close()
    await wait_for("conns", 0)
    await ask("base")
    before = await ask("snap")
    conns = await open_held(port, args.held, 60)
    after = await wait_held(args.held)
    heap = (after["traced"] - before["traced"]) / args.held
    print(
        f"held long polls: {args.held}; server heap +{heap:.0f} B per held request (tracemalloc), "
        f"RSS +{(after['rss'] - before['rss']) / args.held:.0f} B per request"
    )
    if args.top:
        print("by file:", (await ask("top"))["top"])
    for _, writer in conns:
        writer.transport.abort()
    took = await wait_for("held", 0)
    print(f"all {args.held} clients reset: every waiter freed after {took * 1e3:.0f} ms (tracemalloc on)")
    stdin.write(b"quit\n")
    await child.wait()

    # 2. The burst, in a fresh server without tracemalloc.
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(args.burst + 10),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout
    port = int(json.loads(await stdout.readline())["port"])
    for round_ in range(args.rounds):
        conns = await open_held(port, args.burst, 60, since=round_)  # one event per round so far
        await wait_held(args.burst)
        client_start = time.perf_counter()
        reads = [asyncio.ensure_future(reader.read(4096)) for reader, _ in conns]
        result = await ask(f"burst {args.burst}")
        await asyncio.gather(*reads)
        client_elapsed = time.perf_counter() - client_start
        print(
            f"burst {round_ + 1}: {args.burst} waiters released; "
            f"publish() took {result['publish_s'] * 1e3:.2f} ms, "
            f"last response written after {result['last_written_s'] * 1e3:.1f} ms "
            f"({result['last_written_s'] / args.burst * 1e6:.0f} us per waiter); clients had all "
            f"{args.burst} after {client_elapsed * 1e3:.1f} ms"
        )
        for _, writer in conns:
            writer.close()
        await wait_for("conns", 0)
    stdin.write(b"quit\n")
    await child.wait()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(int(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", action="store_true", help="show where the held requests' memory is")
    asyncio.run(drive(parser.parse_args()))


if __name__ == "__main__":
    main()
