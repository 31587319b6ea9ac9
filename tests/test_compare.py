"""``rawrt compare`` (``rawrt/compare/``): the real command in a subprocess, kept short.

One run starts its own demo (``--clients 5 --seconds 2``, the slowest: short polling waits for its last
poll) and writes the SVG; it runs in the background while the other tests run. The URL runs point at an
in-process demo with fewer clients and a shorter publishing time. Every wait is bounded; only 127.0.0.1
is bound.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rawrt.compare import CompareError, Target, _Progress, parse_url
from rawrt.server import Server

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0  # a bound, not an expectation: the runs below take 5 to 15 s on a loaded 2-core machine
ROWS = ("short polling", "long polling", "SSE", "WebSocket")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rawrt", "compare", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


async def compare_async(*args: str) -> tuple[int, str, str]:
    """The command while this test's loop serves the demo it points at."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rawrt",
        "compare",
        *args,
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def table(out: str) -> dict[str, list[str]]:
    """The table's rows by technique (columns are separated by two spaces or more)."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("technique"))
    assert re.split(r"\s{2,}", lines[header]) == [
        "technique",
        "p50 ms",
        "p99 ms",
        "requests",
        "bytes/event",
        "server CPU",
        "events",
        "lost",
        "dup",
    ]
    rows = {}
    for line in lines[header + 1 : header + 5]:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == 9, line
        rows[re.sub(r" \(.*\)$", "", cells[0])] = cells
    assert tuple(rows) == ROWS
    return rows


def check_rows(rows: dict[str, list[str]], clients: int, cpu_known: bool) -> None:
    for name, (_, p50, p99, requests, size, cpu, events, lost, dup) in rows.items():
        assert (lost, dup) == ("0", "0"), name
        assert float(p50) <= float(p99), name
        assert int(events.replace(",", "")) > 0 and int(events.replace(",", "")) % clients == 0, name
        assert re.fullmatch(r"\d+ B", size), name
        assert re.fullmatch(r"\d+\.\d\d s", cpu) if cpu_known else cpu == "n/a", name
        if name in ("SSE", "WebSocket"):
            assert requests == str(clients), name  # one stream or upgrade each
        else:
            assert int(requests.replace(",", "")) > clients, name


class OwnDemo:
    """``rawrt compare --clients 5 --seconds 2 --svg FILE`` without a URL (compare starts and stops its own
    demo), started when the module's first test starts and read by the last tests: it runs alongside the
    others, which keeps the file's wall time near this one run's (about 11 s)."""

    def __init__(self, svg: Path) -> None:
        self.svg = svg
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rawrt", "compare", "--clients", "5", "--seconds", "2", "--svg", str(svg)],
            cwd=ROOT,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._run: subprocess.CompletedProcess[str] | None = None

    def result(self) -> subprocess.CompletedProcess[str]:
        if self._run is None:
            out, err = self.proc.communicate(timeout=TIMEOUT)
            self._run = subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)
        return self._run


@pytest.fixture(scope="module", autouse=True)
def own_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnDemo]:
    run = OwnDemo(tmp_path_factory.mktemp("compare") / "compare.svg")
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        run.proc.communicate()


@pytest.mark.asyncio
async def test_against_a_url(demo_server: Server) -> None:
    url = f"http://127.0.0.1:{demo_server.port}/"
    code, out, err = await compare_async(url, "--clients", "3", "--seconds", "0.5", "--poll-interval", "0.25")
    assert code == 0, err
    assert f"server {url}" in out.splitlines()[0]
    check_rows(table(out), 3, cpu_known=False)


@pytest.mark.asyncio
async def test_burst_against_a_url(demo_server: Server) -> None:
    code, out, err = await compare_async(f"http://127.0.0.1:{demo_server.port}", "--burst", "20")
    assert code == 0, err
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines()[2:])
    assert lines["answered"].startswith("20 of 20 in ")
    assert lines["requests"].startswith("20 ")
    assert lines["server CPU"].startswith("n/a")
    assert lines["lost / dup"].startswith("0 / 0")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line_error(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 2
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("rawrt compare: error: ")
    return lines[0]


def test_closed_port_is_a_one_line_error() -> None:
    port = _closed_port()
    line = one_line_error(compare(f"http://127.0.0.1:{port}/", "--clients", "1", "--seconds", "1"))
    assert f"cannot connect to http://127.0.0.1:{port}/" in line


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "http://", "http://127.0.0.1:99999/", "http://h/?q=1"])
def test_bad_url_is_a_one_line_error(url: str) -> None:
    with pytest.raises(CompareError):
        parse_url(url)
    one_line_error(compare(url))


def test_not_a_demo_is_a_one_line_error() -> None:
    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        line = one_line_error(compare(f"http://127.0.0.1:{server.server_address[1]}/"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert "is not a rawrt demo server: GET /hello answered 404" in line


def test_parse_url_keeps_a_path_prefix() -> None:
    assert parse_url("http://127.0.0.1:8000/rt/") == Target("127.0.0.1", 8000, "/rt")
    assert parse_url("http://[::1]/").url == "http://[::1]:80/"
    assert Target("127.0.0.1", 8000, "/rt").path("/poll") == "/rt/poll"


def test_progress_redraws_one_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    progress = _Progress(tty)
    progress("SSE: opening 5 clients")
    progress("SSE: 1/20 events published, 0 delivered")
    progress.clear()
    assert "\n" not in tty.getvalue()
    assert tty.getvalue().count("\r") == 4
    plain = io.StringIO()
    progress = _Progress(plain)
    progress("SSE: opening 5 clients")
    progress("SSE: 1/20 events published, 0 delivered")  # same technique: no new line
    progress("WebSocket: opening 5 clients")
    assert plain.getvalue().splitlines() == [
        "rawrt compare: SSE: opening 5 clients",
        "rawrt compare: WebSocket: opening 5 clients",
    ]


# The two tests of the run without a URL come last: by then it has (nearly) finished.


def test_without_url_starts_a_demo_and_prints_the_table(own_demo: OwnDemo) -> None:
    run = own_demo.result()
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert re.match(
        r"rawrt compare: 5 clients per technique, .* \(started by compare: pid \d+, loop \w+\)", run.stdout
    )
    check_rows(table(run.stdout), 5, cpu_known=True)
    # stderr is not a terminal here: plain progress lines, no carriage returns.
    assert "\r" not in run.stderr


def test_svg_is_valid_and_names_the_four_techniques(own_demo: OwnDemo) -> None:
    run, svg = own_demo.result(), own_demo.svg
    assert run.returncode == 0, run.stderr
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"short poll", "long poll", "SSE", "WebSocket"} <= texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) > 4 * 4  # the bars are drawn
