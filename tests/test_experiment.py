"""The protocol lab's experiments without a browser: ``rawrt experiment NAME [URL]`` in a subprocess, and
the demo's ``/lab/experiments/...`` endpoints (``rawrt/lab/experiments.py``, ``rawrt/demo.py``).

The commands point at an in-process demo on 127.0.0.1:0 (and once at a demo of their own); errors are
checked to be one line with exit status 2. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rawrt.lab.experiments import Throttle
from rawrt.server import Server

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0  # a bound, not an expectation: each run takes 1 to 3 s


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


async def experiment(*args: str) -> tuple[int, str, str]:
    """``rawrt experiment ARGS`` while this test's loop serves the demo it points at."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rawrt",
        "experiment",
        *args,
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def request(server: Server, method: str, target: str, head: str = "") -> tuple[int, bytes]:
    """One request on its own connection; the status and everything after the head (read to EOF)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n{head}"
        "Connection: close\r\n\r\n".encode()
    )
    data = await asyncio.wait_for(reader.read(-1), 10.0)
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


# ----------------------------------------------------------------------------------------- the commands


@pytest.mark.asyncio
async def test_expect_continue_command(demo_server: Server) -> None:
    """RFC 9110 §15.2: the HTTP/1.0 exchange has no 1xx, the HTTP/1.1 one has 100 Continue first."""
    code, out, err = await experiment("expect-continue", f"http://127.0.0.1:{demo_server.port}/")
    assert code == 0, err
    old, _, new = out.partition("HTTP/1.1 with Expect: 100-continue")
    assert old.startswith("HTTP/1.0 with Expect: 100-continue\n  > POST /echo HTTP/1.0\\r\\n\n")
    assert "100 Continue" not in old and "  < HTTP/1.1 200 OK\\r\\n" in old
    assert "  > POST /echo HTTP/1.1\\r\\n" in new
    assert new.index("  < HTTP/1.1 100 Continue\\r\\n") < new.index("  < HTTP/1.1 200 OK\\r\\n")
    assert out.rstrip().splitlines()[-1].endswith("-> ok")


@pytest.mark.asyncio
async def test_sse_resume_command(demo_server: Server) -> None:
    code, out, err = await experiment("sse-resume", f"http://127.0.0.1:{demo_server.port}")
    assert code == 0, err
    resumed = re.search(r"^3\. resume with Last-Event-ID: (\d+)$", out, re.M)
    assert resumed is not None, out
    assert f"  > Last-Event-ID: {resumed.group(1)}\\r\\n" in out
    replayed = out.partition("  replayed:\n")[2]
    assert [line.split("data: ")[1] for line in replayed.splitlines() if "data: " in line] == [
        "while dropped 1",
        "while dropped 2",
        "while dropped 3",
    ]
    assert out.rstrip().splitlines()[-1] == (
        "check: 6 published, 6 received: 0 lost, 0 duplicated, ids increasing -> ok"
    )


def test_expect_continue_command_starts_its_own_demo() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "rawrt", "experiment", "expect-continue"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().endswith("-> ok")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("name", ["expect-continue", "sse-resume"])
@pytest.mark.parametrize("where", ["closed", "ftp://127.0.0.1/"])
@pytest.mark.asyncio
async def test_errors_are_one_line(name: str, where: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/" if where == "closed" else where
    code, out, err = await experiment(name, url)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"rawrt experiment {name}: error: ")
    assert ("cannot connect to 127.0.0.1:" if where == "closed" else "expected an http://") in err


@pytest.mark.asyncio
async def test_unknown_experiment_is_a_usage_error() -> None:
    code, out, err = await experiment("nope")
    assert code == 2 and len(err.splitlines()) == 1 and "invalid choice: 'nope'" in err


# ---------------------------------------------------------------------------------------- the endpoints


@pytest.mark.asyncio
async def test_expect_continue_endpoint(demo_server: Server) -> None:
    status, body = await request(demo_server, "POST", "/lab/experiments/expect-continue")
    assert status == 200
    answer = json.loads(body)
    assert answer["target"] == f"127.0.0.1:{demo_server.port}" and answer["ok"] is True
    old, new = answer["exchanges"]
    assert old["version"] == "1.0" and old["interim"] is False and old["before_body"] == ""
    assert new["version"] == "1.1" and new["interim"] is True
    assert new["before_body"] == "HTTP/1.1 100 Continue\r\n\r\n"
    assert new["received"].startswith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert old["sent"].startswith("POST /echo HTTP/1.0\r\n") and "Expect: 100-continue\r\n" in old["sent"]


@pytest.mark.asyncio
async def test_burst_endpoint(demo_server: Server) -> None:
    status, body = await request(demo_server, "POST", "/lab/experiments/burst?n=5")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["clients"] == answer["answered"] == answer["requests"] == 5
    assert answer["lost"] == answer["duplicates"] == 0 and answer["bytes"] > 0
    for n in ("0", "1001", "x"):
        assert (await request(demo_server, "POST", f"/lab/experiments/burst?n={n}"))[0] == 400


@pytest.mark.asyncio
async def test_sse_resume_endpoint_ends_and_replays(demo_server: Server) -> None:
    """The stream asks for a 1 s reconnect and ends on its own; a resume replays after Last-Event-ID."""
    status, body = await request(demo_server, "POST", "/publish?channel=exp-e")
    first = json.loads(body)["id"]
    await request(demo_server, "POST", "/publish?channel=exp-e")
    status, body = await request(
        demo_server, "GET", "/lab/experiments/sse-resume?channel=exp-e", f"Last-Event-ID: {first}\r\n"
    )
    assert status == 200
    assert b"retry: 1000\n" in body and f"id: {first + 1}\n".encode() in body
    # The id-only event says where the stream resumes from; the event itself is not sent again.
    assert f"id: {first}\n\n".encode() in body and f"id: {first}\ndata".encode() not in body
    assert body.endswith(b"0\r\n\r\n")


def test_throttle_allows_one_run_at_a_time_and_a_few_a_minute() -> None:
    throttle = Throttle(per_minute=2)
    assert throttle.acquire() and not throttle.acquire()
    throttle.release()
    assert throttle.acquire()
    throttle.release()
    assert not throttle.acquire()  # the third in the same minute
