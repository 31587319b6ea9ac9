"""Where an idle WebSocket's memory goes: a tracemalloc snapshot diff per connection (rawrt's demo ``/ws``).

Runs rawrt's demo server in this process under tracemalloc, has ``ws_loadgen.py`` (a separate process)
open ``--connections`` idle WebSockets, and prints the allocations that grew, per connection, grouped by the
line that made them (``--group file`` to group by file). This is Python-level memory only (objects, their
buffers); the kernel's socket buffers and libuv's handles are outside it, which is why RSS per connection
(``bench_ws.py``) is larger. Usage::

    python benchmarks/ws_memory_breakdown.py [--connections 1000] [--top 25] [--group line|file]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


async def main(connections: int, top: int, group: str, frames: int) -> None:
    from rawrt.demo import create_app
    from rawrt.limits import DEFAULT_LIMITS
    from rawrt.server import Server

    limits = dataclasses.replace(DEFAULT_LIMITS, max_connections=100_000)
    server = Server(create_app(limits), limits)
    await server.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    gen = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "ws_loadgen.py"),
        "--serve",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert gen.stdin is not None and gen.stdout is not None

    async def idle(n: int) -> None:
        assert gen.stdin is not None and gen.stdout is not None
        gen.stdin.write(json.dumps({"kind": "idle", "port": server.port, "connections": n}).encode() + b"\n")
        await gen.stdin.drain()
        answer = json.loads(await gen.stdout.readline())
        assert answer["open"] == n, answer
        await asyncio.sleep(1.0)

    async def release() -> None:
        assert gen.stdin is not None and gen.stdout is not None
        gen.stdin.write(b"{}\n")
        await gen.stdin.drain()
        await gen.stdout.readline()
        await asyncio.sleep(0.5)

    await idle(100)  # warm-up: lazily built caches and code paths
    await release()
    gc.collect()
    tracemalloc.start(frames)
    before = tracemalloc.take_snapshot()
    await idle(connections)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    await release()
    gen.stdin.close()
    await gen.wait()
    await server.shutdown(1.0)
    del loop

    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(filters).compare_to(before.filter_traces(filters), "traceback")
    grouped: dict[str, int] = {}
    counts: dict[str, int] = {}
    for stat in stats:
        if stat.size_diff <= 0:
            continue
        # Attribute each allocation to the innermost frame in rawrt/ or asyncio/ (the line that asked).
        frame = stat.traceback[-1]
        for f in reversed(stat.traceback):
            if "/rawrt/" in f.filename or "asyncio" in f.filename:
                frame = f
                break
        name = Path(frame.filename).name
        if "/rawrt/sansio/" in frame.filename:
            name = f"sansio/{name}"  # rawrt/websocket.py and rawrt/sansio/websocket.py share a name
        key = name if group == "file" else f"{name}:{frame.lineno}"
        grouped[key] = grouped.get(key, 0) + stat.size_diff
        counts[key] = counts.get(key, 0) + stat.count_diff
    total = sum(grouped.values())
    per_conn = total / connections
    print(f"Python allocations per idle connection: {per_conn:,.0f} B over {connections} connections")
    for key, size in sorted(grouped.items(), key=lambda kv: -kv[1])[:top]:
        line = ""
        if group == "line" and ":" in key:
            name, lineno = key.rsplit(":", 1)
            for candidate in (HERE.parent / "rawrt" / name, Path(asyncio.__file__).parent / name):
                if candidate.exists():
                    line = candidate.read_text().splitlines()[int(lineno) - 1].strip()[:70]
                    break
        print(f"{size / connections:8.0f} B {counts[key] / connections:5.1f} blocks  {key:28} {line}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--group", choices=["line", "file"], default="line")
    parser.add_argument("--frames", type=int, default=12)
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args.connections, args.top, args.group, args.frames))
