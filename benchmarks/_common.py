"""Shared helpers for the benchmarks: pinned subprocesses, readiness checks, medians, and writing figures
into ``docs/benchmarks.md`` between ``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers.

Benchmarks measure speed as a *ratio* against a named peer in the same run: this machine is shared and
noisy, so the two servers are alternated, each figure is a median, and server and load generator are pinned
to different cores with ``taskset``.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SERVER_CPU = "0"
CLIENT_CPU = "1"


def raise_nofile() -> None:
    """Raise the soft file-descriptor limit to the hard one (thousands of sockets need more than 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pinned(cpu: str, argv: Sequence[str]) -> list[str]:
    """``argv`` pinned to ``cpu`` when taskset exists (it does on Debian: util-linux)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpu, *argv]
    return list(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def start_server(
    argv: Sequence[str], port: int, cwd: Path | None = None, env_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server pinned to SERVER_CPU; ``env_path`` goes first on its PYTHONPATH (this checkout's rawrt
    for a server started outside it)."""
    env = None
    if env_path is not None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(env_path), os.environ.get("PYTHONPATH")])),
        }
    proc = subprocess.Popen(
        pinned(SERVER_CPU, argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
    except Exception:
        proc.kill()
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


def write_section(name: str, text: str) -> None:
    """Replace the ``name`` section of docs/benchmarks.md (appending it if missing)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    doc = DOC.read_text("utf-8") if DOC.exists() else "# Benchmarks\n"
    if begin in doc and end in doc:
        doc = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(doc, "utf-8")
