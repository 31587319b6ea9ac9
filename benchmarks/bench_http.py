"""HTTP/1.1 keep-alive throughput: rawrt's demo ``/hello`` against uvicorn + httptools (a C parser).

A third server is rawrt with a plain ``App`` (the same ``/hello``, no wire tap): the demo sets ``App.tap`` for
the protocol lab (issue 13), and its untagged requests, wrk's, must cost no more than a plain app's.
Every server runs one process on the same event loop (uvloop), pinned to core 0; wrk (Debian package ``wrk``)
runs on core 1 with 50 keep-alive connections. They are alternated ``--rounds`` times (the order rotating)
and the medians compared. Usage::

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

#: rawrt without the demo: the same /hello answer (Response.text), no tap, nothing else routed.
PLAIN_APP = """
from rawrt import App, Response

app = App()


@app.get("/hello")
async def hello(request):
    return Response.text("Hello, world!")
"""

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
        Path(tmp, "plain_hello.py").write_text(PLAIN_APP)
        rawrt_port, plain_port, uv_port = free_port(), free_port(), free_port()
        quiet = ["--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
        rawrt = start_server(
            [sys.executable, "-m", "rawrt", "demo", "--port", str(rawrt_port), *quiet], rawrt_port, cwd=ROOT
        )
        plain = start_server(
            [sys.executable, "-m", "rawrt", "serve", "plain_hello:app", "--port", str(plain_port), *quiet],
            plain_port,
            cwd=Path(tmp),
            env_path=ROOT,
        )
        uv = start_server(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "uv_hello:app",
                "--port",
                str(uv_port),
                "--http",
                "httptools",
                *quiet,
            ],
            uv_port,
            cwd=Path(tmp),
        )
        ours: list[float] = []
        bare: list[float] = []
        theirs: list[float] = []
        runs = [(ours, rawrt_port), (bare, plain_port), (theirs, uv_port)]
        try:
            for _, port in runs:
                wrk(port, 1, args.connections)  # warm-up
            for i in range(args.rounds):
                # Rotate which goes first, so drift in machine load hits all three alike.
                for results, port in runs[i % 3 :] + runs[: i % 3]:
                    results.append(wrk(port, args.seconds, args.connections))
                print(
                    f"round {i + 1}: rawrt demo {ours[-1]:.0f} req/s, rawrt plain App {bare[-1]:.0f} req/s, "
                    f"uvicorn+httptools {theirs[-1]:.0f} req/s"
                )
        finally:
            for server in (rawrt, plain, uv):
                stop(server)
    ratio = median(ours) / median(theirs)
    tap = median(ours) / median(bare)
    print(
        f"median: rawrt demo {median(ours):.0f} req/s, rawrt plain App {median(bare):.0f} req/s, "
        f"uvicorn+httptools {median(theirs):.0f} req/s; demo/uvicorn {ratio:.2f}x, demo/plain {tap:.2f}x"
    )
    if args.write:
        rows = "\n".join(
            f"| {i + 1} | {a:.0f} | {p:.0f} | {b:.0f} | {a / b:.2f} | {a / p:.2f} |"
            for i, (a, p, b) in enumerate(zip(ours, bare, theirs, strict=True))
        )
        medians = (
            f"| **median** | **{median(ours):.0f}** | **{median(bare):.0f}** | **{median(theirs):.0f}** "
            f"| **{ratio:.2f}x** | **{tap:.2f}x** |"
        )
        write_section(
            "http",
            f"""## HTTP/1.1: `GET /hello`, keep-alive, 50 connections (`benchmarks/bench_http.py`)

rawrt's demo against uvicorn {_version("uvicorn")} with httptools {_version("httptools")} (a C parser) serving
the same 13-byte body, and against rawrt serving a plain `App` with the same `/hello` (no wire tap: the
demo sets `App.tap` for the protocol lab, and wrk's requests are untagged, so the last column is what the
tap costs a request that is not a lab page's); all on uvloop {_version("uvloop")}, one process pinned to
core 0; wrk on core 1; {args.rounds} rounds of {args.seconds} s, the order rotating. Machine: {machine()}.

| round | rawrt demo req/s | rawrt plain App req/s | uvicorn+httptools req/s | demo / uvicorn | demo / plain |
|---|---|---|---|---|---|
{rows}
{medians}
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
