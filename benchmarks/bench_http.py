"""HTTP/1.1 keep-alive throughput: rawrt's demo ``/hello`` against uvicorn + httptools (a C parser).

Both servers run one process on the same event loop (uvloop), pinned to core 0; wrk (Debian package ``wrk``)
runs on core 1 with 50 keep-alive connections. The two are alternated ``--rounds`` times and the medians
compared. Usage::

    python benchmarks/bench_http.py [--rounds 5] [--seconds 5] [--write]

``--write`` puts the figures into docs/benchmarks.md. Needs: wrk, uvicorn, httptools, uvloop.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import CLIENT_CPU, ROOT, free_port, machine, median, pinned, start_server, stop, write_section

UVICORN_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})
"""


def wrk(port: int, seconds: int, connections: int) -> float:
    out = subprocess.run(
        pinned(
            CLIENT_CPU, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/hello"]
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk run failed:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "uv_hello.py").write_text(UVICORN_APP)
        rawrt_port, uv_port = free_port(), free_port()
        rawrt = start_server(
            [
                sys.executable,
                "-m",
                "rawrt",
                "demo",
                "--port",
                str(rawrt_port),
                "--loop",
                "uvloop",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            rawrt_port,
            cwd=ROOT,
        )
        uv = start_server(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "uv_hello:app",
                "--port",
                str(uv_port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            uv_port,
            cwd=Path(tmp),
        )
        try:
            wrk(rawrt_port, 1, args.connections)  # warm-up
            wrk(uv_port, 1, args.connections)
            ours: list[float] = []
            theirs: list[float] = []
            for i in range(args.rounds):
                # Alternate which goes first, so drift in machine load hits both alike.
                order = [(ours, rawrt_port), (theirs, uv_port)]
                for results, port in order if i % 2 == 0 else order[::-1]:
                    results.append(wrk(port, args.seconds, args.connections))
                print(f"round {i + 1}: rawrt {ours[-1]:.0f} req/s, uvicorn+httptools {theirs[-1]:.0f} req/s")
        finally:
            stop(rawrt)
            stop(uv)
    ratio = median(ours) / median(theirs)
    print(
        f"median: rawrt {median(ours):.0f} req/s, uvicorn+httptools {median(theirs):.0f} req/s, "
        f"ratio {ratio:.2f}x"
    )
    if args.write:
        rows = "\n".join(
            f"| {i + 1} | {a:.0f} | {b:.0f} | {a / b:.2f} |"
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
        )
        write_section(
            "http",
            f"""## HTTP/1.1: `GET /hello`, keep-alive, 50 connections (`benchmarks/bench_http.py`)

rawrt's demo against uvicorn {_version("uvicorn")} with httptools {_version("httptools")} (a C parser) serving
the same 13-byte body; both on uvloop {_version("uvloop")}, one process pinned to core 0; wrk on core 1;
{args.rounds} alternated rounds of {args.seconds} s. Machine: {machine()}.

| round | rawrt req/s | uvicorn+httptools req/s | ratio |
|---|---|---|---|
{rows}
| **median** | **{median(ours):.0f}** | **{median(theirs):.0f}** | **{ratio:.2f}x** |
""",
        )


def _version(dist: str) -> str:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
