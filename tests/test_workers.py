"""``--workers N`` (``rawrt/workers.py``): the real command, a supervisor and its worker processes.

An app that answers with its process id shows which worker served each connection. Covered: both workers
serve one port; a worker killed with SIGKILL is replaced and the port keeps answering; SIGTERM stops them
all gracefully (exit 0, no worker left); a supervisor killed with SIGKILL takes its workers with it; a worker
that cannot start makes the supervisor give up with one line and exit 1; the refusals (memory hub, bad
``--hub``) are one-line errors with exit 2. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 15.0
BANNER = re.compile(
    r"listening on http://127\.0\.0\.1:(\d+)/ \(loop: \w+\), (\d+) workers \(pids ([\d, ]+)\)"
)

APP = """
import os
from rawrt import App, Response

app = App()

@app.get("/pid")
async def pid(request):
    return Response.text(str(os.getpid()))
"""

BROKEN = """
import os
from rawrt import App

app = App()

async def fail():
    if os.environ.get("RAWRT_WORKER"):
        raise RuntimeError("this worker cannot start")

app.on_startup.append(fail)
"""


@dataclass
class Supervised:
    process: asyncio.subprocess.Process
    port: int
    pids: list[int]
    log: Path


@asynccontextmanager
async def supervised(tmp_path: Path, *args: str) -> AsyncIterator[Supervised]:
    log = tmp_path / "rawrt.log"
    with open(log, "wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rawrt",
            *args,
            "--port",
            "0",
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"},
        )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
        match = BANNER.search(line)
        assert match is not None, (line, log.read_text(errors="replace"))
        pids = [int(p) for p in match[3].split(", ")]
        assert len(pids) == int(match[2])
        yield Supervised(process, int(match[1]), pids, log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def served_by(port: int) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        writer.write(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 200 "), data
    return int(data.partition(b"\r\n\r\n")[2])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_for(predicate: object, timeout: float = TIMEOUT) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "pidapp.py").write_text(APP)
    (tmp_path / "broken.py").write_text(BROKEN)
    return tmp_path


@pytest.mark.asyncio
async def test_two_workers_share_the_port_and_a_killed_one_is_replaced(app_dir: Path) -> None:
    async with supervised(app_dir, "serve", "pidapp:app", "--workers", "2") as running:
        first, second = running.pids
        # SO_REUSEPORT spreads connections by their address hash: 40 connections all landing on one of two
        # workers would happen once in 2**39 runs.
        seen = {await served_by(running.port) for _ in range(40)}
        assert seen == {first, second}

        os.kill(first, signal.SIGKILL)
        pattern = re.compile(rf"worker 1 \(pid {first}\) died \(killed by SIGKILL\); restarting it in 0\.1 s")
        await wait_for(lambda: pattern.search(running.log.read_text()))
        # Meanwhile and after, the port keeps answering; the new worker serves its share.
        replaced = re.compile(r"worker 1 started \(pid (\d+)\)")
        await wait_for(lambda: len(replaced.findall(running.log.read_text())) == 2)
        new = int(replaced.findall(running.log.read_text())[1])
        await wait_for(lambda: "[worker 1] rawrt.error INFO listening on" in running.log.read_text())
        seen = set()
        for _ in range(40):
            seen.add(await served_by(running.port))
        assert seen == {new, second}

        running.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(running.process.wait(), TIMEOUT) == 0
        assert not alive(new) and not alive(second)
        log = running.log.read_text()
        assert "SIGTERM: stopping 2 worker(s)" in log
        assert log.count("shutdown done in") == 2  # each worker shut down gracefully
        assert "Traceback" not in log


@pytest.mark.asyncio
async def test_sigint_stops_every_worker_once(app_dir: Path) -> None:
    async with supervised(app_dir, "serve", "pidapp:app", "--workers", "3") as running:
        running.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(running.process.wait(), TIMEOUT) == 0
        assert not any(alive(pid) for pid in running.pids)
        assert running.log.read_text().count("shutdown started") == 3


@pytest.mark.asyncio
async def test_workers_stop_when_the_supervisor_is_killed(app_dir: Path) -> None:
    async with supervised(app_dir, "serve", "pidapp:app", "--workers", "2") as running:
        running.process.kill()
        await running.process.wait()
        # Their pipe to the supervisor reads end of file: each shuts itself down.
        await wait_for(lambda: not any(alive(pid) for pid in running.pids))
        assert running.log.read_text().count("the supervisor is gone: shutting down") == 2


@pytest.mark.asyncio
async def test_a_worker_that_cannot_start_makes_the_supervisor_give_up(app_dir: Path) -> None:
    log = app_dir / "broken.log"
    with open(log, "wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "rawrt", "serve", "broken:app", "--workers", "2", "--port", "0"),
            cwd=app_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{app_dir}"},
        )
    # Five failed starts with backoff 0.1 + 0.2 + 0.4 + 0.8 s in between.
    assert await asyncio.wait_for(process.wait(), 60) == 1
    assert process.stdout is not None
    assert await process.stdout.read() == b""  # never "listening": no worker was ever ready
    text = log.read_text()
    assert text.count("RuntimeError: this worker cannot start") >= 5
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(
        r"rawrt: error: worker \d died before it was ready 5 times in a row \(exit status 1\); "
        r"its log above says why",
        last,
    ), last


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "RAWRT_HUB"}
    return subprocess.run(
        [sys.executable, "-m", "rawrt", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


def test_demo_workers_with_the_memory_hub_is_refused() -> None:
    for args in (("--workers", "2"), ("--workers", "2", "--hub", "memory")):
        result = run_cli("demo", *args, "--port", "0")
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(
            "rawrt demo: error: --workers 2 needs a shared hub: with the memory hub each worker would keep "
            "its own events"
        )
        assert "--hub redis://HOST:PORT/DB" in result.stderr


def test_serve_workers_with_an_app_holding_a_memory_hub_is_refused(tmp_path: Path) -> None:
    (tmp_path / "hubapp.py").write_text("from rawrt.demo import create_app\napp = create_app()\n")
    result = subprocess.run(
        [sys.executable, "-m", "rawrt", "serve", "hubapp:app", "--workers", "2", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={k: v for k, v in os.environ.items() if k != "RAWRT_HUB"} | {"PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("rawrt serve: error: --workers 2 needs a shared hub"), result.stderr
    assert "the channels of hubapp:app" in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mongodb://x", "--hub must be 'memory' or a redis://, rediss:// or unix:// URL, not 'mongodb://x'"),
        ("", "--hub must be 'memory' or a redis://, rediss:// or unix:// URL, not ''"),
    ],
)
def test_a_bad_hub_url_is_one_line(url: str, message: str) -> None:
    result = run_cli("demo", "--hub", url, "--port", "0")
    assert result.returncode == 2
    assert result.stderr == f"rawrt demo: error: {message}\n"


def test_workers_must_be_a_positive_count() -> None:
    result = run_cli("demo", "--workers", "0")
    assert result.returncode == 2
    assert "--workers: expected at least 1, got 0" in result.stderr
    assert result.stderr.count("\n") == 1
