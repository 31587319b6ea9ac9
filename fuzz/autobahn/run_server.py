"""Autobahn TestSuite against rawrt's server: the demo's ``/ws`` echo endpoint, driven by kosoku.

Usage (from the repository root)::

    python fuzz/autobahn/run_server.py                       # all 517 cases, 2 in parallel
    python fuzz/autobahn/run_server.py -x '12.*' -x '13.*'   # sections 1-11 (seconds)
    python fuzz/autobahn/run_server.py -i 6.4.1 -p 1 -o /tmp/reports

It starts ``python -m rawrt demo`` on 127.0.0.1 with a free port (a subprocess, so server and kosoku each
get a core), runs ``kosoku 127.0.0.1:PORT/ws`` (fuzzingclient mode) with the selection, writes the reports
to ``-o`` (default ``reports/autobahn/server``), prints a table per section (``summary.py``) and exits with
0 when every case is OK, NON-STRICT or INFORMATIONAL, 1 when one is not, 2 when the run itself broke
(server did not start, kosoku crashed or timed out, no report written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

import summary

__all__ = [
    "REPO",
    "all_cases",
    "select_cases",
    "kosoku_command",
    "clean_reports",
    "python_env",
    "stop",
    "main",
]

#: The repository root: the subprocesses run there so ``python -m rawrt`` imports this checkout.
REPO = Path(__file__).resolve().parents[2]

#: How long the demo server may take to print its "listening on" line.
START_TIMEOUT = 30.0

_LISTENING_RE = re.compile(rb"listening on https?://(\S+?):(\d+)/")


def all_cases() -> list[str]:
    """Every case id kosoku knows, in order."""
    from kosoku.cases import CASES

    return list(CASES)


def select_cases(cases: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """The ids matching an include glob (all when there is none) and no exclude glob, as kosoku selects."""
    return [
        case
        for case in cases
        if (not include or any(fnmatchcase(case, p) for p in include))
        and not any(fnmatchcase(case, p) for p in exclude)
    ]


def kosoku_command() -> list[str]:
    """The kosoku console script, or the same entry point through this interpreter."""
    script = shutil.which("kosoku")
    if script is not None:
        return [script]
    return [sys.executable, "-c", "from kosoku._cli import main; main()"]


def python_env() -> dict[str, str]:
    """The environment for ``python -m rawrt ...``: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def clean_reports(outdir: Path) -> None:
    """Delete the report files a previous run left in ``outdir`` (and nothing else), so none is read twice."""
    if not outdir.is_dir():
        return
    for path in outdir.iterdir():
        if path.name in ("index.json", "index.html") or "_case_" in path.name:
            path.unlink()


async def stop(process: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    """SIGTERM (a graceful shutdown for rawrt), then SIGKILL when it takes longer than ``timeout``."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def start_demo(loop: str) -> tuple[asyncio.subprocess.Process, int]:
    """Start ``python -m rawrt demo --port 0`` and return it with the port it bound."""
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rawrt",
        "demo",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--loop",
        loop,
        "--no-access-log",
        "--log-level",
        "warning",
        cwd=REPO,
        env=python_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    try:
        line = await asyncio.wait_for(server.stdout.readline(), START_TIMEOUT)
    except asyncio.TimeoutError:
        await stop(server)
        raise RuntimeError(f"the demo server printed nothing within {START_TIMEOUT:.0f} s") from None
    match = _LISTENING_RE.search(line)
    if match is None:
        await stop(server)
        raise RuntimeError(f"unexpected first line from the demo server: {line!r}")
    return server, int(match.group(2))


async def run(
    include: Sequence[str], exclude: Sequence[str], parallel: int, outdir: Path, timeout: float, loop: str
) -> int:
    """Run the selection; return kosoku's exit status, or None-like 124 when it timed out."""
    server, port = await start_demo(loop)
    try:
        args = [*kosoku_command(), f"127.0.0.1:{port}/ws", "-p", str(parallel), "-o", str(outdir)]
        args += [a for case in include for a in ("-i", case)]
        args += [a for case in exclude for a in ("-x", case)]
        kosoku = await asyncio.create_subprocess_exec(*args, cwd=REPO)
        try:
            return await asyncio.wait_for(kosoku.wait(), timeout)
        except asyncio.TimeoutError:
            print(f"run_server: kosoku still running after {timeout:.0f} s: stopped", file=sys.stderr)
            await stop(kosoku, 2.0)
            return 124
    finally:
        await stop(server)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-i", "--include", action="append", default=[], metavar="CASE", help="case id or glob"
    )
    parser.add_argument(
        "-x", "--exclude", action="append", default=[], metavar="CASE", help="case id or glob"
    )
    parser.add_argument("-p", "--parallel", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("-o", "--outdir", type=Path, default=REPO / "reports" / "autobahn" / "server")
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound on the kosoku run, seconds")
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "auto"], default="asyncio")
    args = parser.parse_args(argv)

    outdir: Path = args.outdir.resolve()
    clean_reports(outdir)
    started = time.monotonic()
    try:
        status = asyncio.run(run(args.include, args.exclude, args.parallel, outdir, args.timeout, args.loop))
    except RuntimeError as exc:
        print(f"run_server: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    try:
        outcomes = summary.load(outdir)
    except FileNotFoundError:
        print(f"run_server: kosoku exited with {status} and wrote no {outdir}/index.json", file=sys.stderr)
        return 2
    passed = summary.report(outcomes, f"rawrt server (demo /ws), {len(outcomes)} cases in {elapsed:.1f} s")
    print(f"reports: {outdir}/index.html")
    expected = len(select_cases(all_cases(), args.include, args.exclude))
    if status not in (0, 1) or len(outcomes) != expected:  # 1: kosoku's "some case failed", in the table
        print(
            f"run_server: kosoku exited with {status}, {len(outcomes)} of {expected} cases reported",
            file=sys.stderr,
        )
        return 2
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
