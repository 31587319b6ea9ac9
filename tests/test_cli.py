"""The command line (``rawrt/cli.py``): ``python -m rawrt demo`` and ``python -m rawrt serve module:app``.

Each test starts the real command in a subprocess on ``--port 0``, reads the URL it prints (so the port is
the one actually bound), talks HTTP (or HTTPS) to it, then sends SIGINT or SIGTERM and expects a graceful
exit with status 0 within a few seconds. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0  # a cold interpreter with uvloop can take a while to start on a loaded CI machine
BANNER = re.compile(r"listening on (https?)://\[?([^\]/]+?)\]?:(\d+)/ \(loop: (\w+)\)")


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    banner: str
    scheme: str
    host: str
    port: int
    loop: str


@asynccontextmanager
async def rawrt(*args: str, stop: signal.Signals | None = signal.SIGINT) -> AsyncIterator[Running]:
    """Run ``python -m rawrt *args --port 0`` from the repository root until the block ends, then send it
    ``stop`` (``None``: the block already did) and check that it exits cleanly."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rawrt",
        *args,
        "--port",
        "0",
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        match = BANNER.search(line)
        if match is None:
            err = await asyncio.wait_for(proc.stderr.read(), TIMEOUT)
            pytest.fail(f"no banner: stdout {line!r}, stderr {err.decode(errors='replace')}")
        scheme, host, port, loop = match.groups()
        yield Running(proc, line.strip(), scheme, host, int(port), loop)
        if stop is not None:
            proc.send_signal(stop)
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 0, err.decode(errors="replace")
        assert b"Traceback" not in err, err.decode(errors="replace")
        assert out == b""  # nothing after the banner
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def http(
    running: Running, raw: bytes, *, context: ssl.SSLContext | None = None
) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Send one request with ``Connection: close`` semantics and read the whole answer."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(running.host, running.port, ssl=context), TIMEOUT
    )
    try:
        writer.write(raw)
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
        except (ConnectionError, ssl.SSLError):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
    assert int(headers[b"content-length"]) == len(body)
    return status_line, headers, body


HELLO = b"GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"


class TestDemo:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
    async def test_serves_hello_and_stops(self, stop: signal.Signals) -> None:
        async with rawrt("demo", stop=stop) as running:
            assert running.banner.startswith("rawrt demo listening on http://127.0.0.1:")
            assert running.port != 0
            status, headers, body = await http(running, HELLO)
            assert status == b"HTTP/1.1 200 OK"
            assert headers[b"content-type"] == b"text/plain; charset=utf-8"
            assert body == b"Hello, world!"

    @pytest.mark.asyncio
    async def test_stops_gracefully_with_a_request_in_flight(self) -> None:
        """SIGTERM while a request body is still arriving: that request is finished, then the exit."""
        async with rawrt("demo", stop=None) as running:
            reader, writer = await asyncio.open_connection(running.host, running.port)
            try:
                writer.write(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n01234")
                await writer.drain()
                await asyncio.sleep(0.2)  # the handler is waiting for the rest of the body
                running.proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.2)
                writer.write(b"56789")
                data = await asyncio.wait_for(reader.read(), TIMEOUT)
            finally:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\nconnection: close\r\n" in data
            assert data.endswith(b"\r\n\r\n0123456789")

    @pytest.mark.asyncio
    @pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
    async def test_loop_choice(self, loop: str) -> None:
        if loop == "uvloop":
            pytest.importorskip("uvloop")
        async with rawrt("demo", "--loop", loop) as running:
            assert running.loop == loop
            assert (await http(running, HELLO))[2] == b"Hello, world!"


class TestServe:
    @pytest.mark.asyncio
    async def test_hello_example(self) -> None:
        async with rawrt("serve", "examples.hello:app", "--no-access-log") as running:
            assert running.banner.startswith("rawrt listening on http://127.0.0.1:")
            assert (await http(running, HELLO))[2] == b"Hello, world!"
            raw = b"GET /hello/J%C3%BCrgen HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
            assert (await http(running, raw))[2] == "Hello, Jürgen!".encode()
            status, headers, _ = await http(running, raw.replace(b"GET", b"POST", 1))
            assert status == b"HTTP/1.1 405 Method Not Allowed"
            assert headers[b"allow"] == b"GET, HEAD"

    @pytest.mark.asyncio
    async def test_upload_example(self) -> None:
        body = bytes(range(256)) * 8000  # ~2 MiB: over the server default, within the route's 64 MiB
        async with rawrt("serve", "examples.upload:app") as running:
            head = b"POST /upload HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
            status, _, answer = await http(running, head % len(body) + body)
            assert status == b"HTTP/1.1 200 OK"
            value = json.loads(answer)
            assert (value["size"], value["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
            chunked = (
                b"POST /upload HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            status, _, answer = await http(running, chunked + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            assert json.loads(answer) == {
                "size": 5,
                "sha256": hashlib.sha256(b"abcde").hexdigest(),
                "chunks": 2,
            }
            refused = (
                b"POST /reject HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            status, headers, answer = await http(running, refused)
            assert status == b"HTTP/1.1 403 Forbidden"  # and no 100 Continue before it
            assert headers[b"connection"] == b"close"

    @pytest.mark.asyncio
    async def test_bad_app_spec_fails(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rawrt",
            "serve",
            "examples.hello:nothing",
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 1
        assert b"examples.hello:nothing is not a rawrt.App (got NoneType)" in err


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
class TestTLS:
    @pytest.fixture
    def certificate(self, tmp_path: Path) -> tuple[Path, Path]:
        assert OPENSSL is not None
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(
            [
                OPENSSL,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=TIMEOUT,
        )
        return cert, key

    @pytest.mark.asyncio
    async def test_https(self, certificate: tuple[Path, Path]) -> None:
        cert, key = certificate
        async with rawrt("demo", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)) as running:
            assert running.scheme == "https"
            context = ssl.create_default_context(cafile=str(cert))
            status, _, body = await http(running, HELLO, context=context)
            assert (status, body) == (b"HTTP/1.1 200 OK", b"Hello, world!")
            # A client that does not trust the certificate fails the handshake; the server keeps serving.
            with pytest.raises(ssl.SSLCertVerificationError):
                await http(running, HELLO, context=ssl.create_default_context())
            assert (await http(running, HELLO, context=context))[2] == b"Hello, world!"
