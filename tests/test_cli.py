"""The command line (``rawrt/cli.py``): ``python -m rawrt demo`` and ``python -m rawrt serve module:app``.

Each test starts the real command in a subprocess on ``--port 0``, reads the URL it prints (so the port is
the one actually bound), talks HTTP (or HTTPS) to it, then sends SIGINT or SIGTERM and expects a graceful
exit with status 0 within a few seconds. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import re
import shutil
import signal
import socket
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
async def rawrt(
    *args: str,
    stop: signal.Signals | None = signal.SIGINT,
    cwd: Path = ROOT,
    port: bool = True,
    banner: re.Pattern[str] = BANNER,
) -> AsyncIterator[Running]:
    """Run ``python -m rawrt *args --port 0`` (without ``--port 0`` if not ``port``) in ``cwd`` until the
    block ends, then send it ``stop`` (``None``: the block already did) and check that it exits cleanly."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rawrt",
        *args,
        *(("--port", "0") if port else ()),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
        match = banner.search(line)
        if match is None:
            err = await asyncio.wait_for(proc.stderr.read(), TIMEOUT)
            pytest.fail(f"no banner: stdout {line!r}, stderr {err.decode(errors='replace')}")
        scheme, host, bound, loop = match.groups()
        yield Running(proc, line.strip(), scheme, host, int(bound or 0), loop)
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
        assert proc.returncode == 2
        assert err == b"rawrt serve: error: attribute 'nothing' not found in module 'examples.hello'\n"


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


# --- Errors: one line, exit status 2, no traceback --------------------------------------------------------


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rawrt *args`` to completion (it must fail fast: nothing here ever listens)."""
    return subprocess.run(
        [sys.executable, "-m", "rawrt", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], prog: str, *parts: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory holding ``myapp.py`` (a working app) and two modules that fail at import time."""
    (tmp_path / "myapp.py").write_text(
        "from rawrt import App, Request, Response\n"
        "app = App()\n"
        "@app.get('/where')\n"
        "async def where(request: Request) -> Response:\n"
        "    return Response.json({'client': request.client, 'path': request.path,\n"
        "                          'root_path': getattr(request, 'root_path', None)})\n"
    )
    (tmp_path / "broken.py").write_text("def f() -> None:\n    raise ValueError('boom at import')\nf()\n")
    (tmp_path / "needsdep.py").write_text("import rawrt_no_such_dependency\n")
    return tmp_path


class TestErrors:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("myap:app", "could not import module 'myap'"),
            ("myapp:ap", "attribute 'ap' not found in module 'myapp'"),
            ("myapp", "expected MODULE:ATTRIBUTE"),
            ("myapp:", "expected MODULE:ATTRIBUTE"),
            ("myapp:App", "myapp:App is not a rawrt.App (got type)"),
            ("nosuchpackage.sub:app", "could not import module 'nosuchpackage.sub'"),
        ],
    )
    def test_bad_app(self, app_dir: Path, spec: str, expected: str) -> None:
        assert_one_line_error(run_cli("serve", spec, cwd=app_dir), "rawrt serve", expected)

    @pytest.mark.parametrize("module", ["broken", "needsdep"])
    def test_an_error_in_the_users_module_keeps_its_traceback(self, app_dir: Path, module: str) -> None:
        """The user's code failing (even a ModuleNotFoundError for a module it imports) is not a mistake
        of the command: its traceback, from the user's file down, then exit status 1."""
        result = run_cli("serve", f"{module}:app", cwd=app_dir)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("Traceback (most recent call last):\n")
        assert f'{module}.py", line' in result.stderr
        assert (
            "rawrt/cli.py" not in result.stderr and "importlib" not in result.stderr
        )  # only the user's frames
        assert result.stderr.endswith(f"rawrt serve: error: importing '{module}' raised (traceback above)\n")

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["--port", "70000"], "port 70000 is out of range (0-65535)"),
            (["--port", "-1"], "port -1 is out of range"),
            (["--port", "http"], "expected a port number, got 'http'"),
            (
                ["--host", "192.0.2.1", "--port", "0"],
                "cannot listen on 192.0.2.1:0: ",
            ),  # TEST-NET-1: not ours
            (["--ssl-keyfile", "key.pem"], "--ssl-keyfile needs --ssl-certfile"),
            (["--ssl-certfile", "missing-cert.pem"], "--ssl-certfile missing-cert.pem: No such file"),
            (["--log-config", "missing.json"], "--log-config missing.json: No such file"),
            (["--limit", "max_bogus=1"], "unknown limit 'max_bogus' (one of: max_request_line,"),
            (["--limit", "max_body_size"], "expected NAME=VALUE"),
            (
                ["--limit", "max_body_size=lots"],
                "max_body_size: expected a size such as 65536, 64KiB or 16MiB",
            ),
            (["--limit", "shutdown_timeout=none"], "shutdown_timeout: expected seconds, got 'none'"),
            (["--limit", "body_timeout=-1"], "body_timeout: expected a non-negative number of seconds"),
            (["--limit-concurrency", "0"], "expected at least 1"),
            (["--ws-max-size", "1TB"], "expected a size"),
            (["--ws-ping-interval", "often"], "expected seconds or 'none'"),
            (["--forwarded-allow-ips", "10.0.0.1,proxy"], "not an IP address or network: 'proxy'"),
            (["--root-path", "api"], "--root-path must start with '/'"),
            (["--loop", "tokio"], "invalid choice: 'tokio'"),
            (
                ["--access-log-format", "%(nope)s"],
                "--access-log-format '%(nope)s': KeyError('nope') (fields: ",
            ),
        ],
    )
    def test_bad_flag(self, tmp_path: Path, args: list[str], expected: str) -> None:
        assert_one_line_error(run_cli("demo", *args, cwd=tmp_path), "rawrt demo", expected)

    @pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
    def test_port_in_use(self, loop: str) -> None:
        if loop == "uvloop":
            pytest.importorskip("uvloop")
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = run_cli("demo", "--port", str(port), "--loop", loop)
        assert_one_line_error(
            result, "rawrt demo", f"cannot listen on 127.0.0.1:{port}: Address already in use"
        )

    def test_unreadable_key_and_bad_certificate(self, tmp_path: Path) -> None:
        (tmp_path / "cert.pem").write_text(
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        )
        (tmp_path / "keydir").mkdir()  # a directory cannot be read as a file, even by root
        result = run_cli("demo", "--ssl-certfile", "cert.pem", "--ssl-keyfile", "keydir", cwd=tmp_path)
        assert_one_line_error(result, "rawrt demo", "--ssl-keyfile keydir: Is a directory")
        result = run_cli("demo", "--ssl-certfile", "cert.pem", cwd=tmp_path)
        assert_one_line_error(result, "rawrt demo", "cannot load the certificate and key from cert.pem: ")

    @pytest.mark.parametrize(
        ("name", "content", "expected"),
        [
            ("log.json", "{not json", "--log-config log.json: not JSON"),
            ("log.json", "[1, 2]", "expected a JSON object (a dictConfig), got list"),
            ("log.json", '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}', "log.json: "),
            ("log.ini", "[loggers]\nkeys=root\n", "--log-config log.ini: "),
            ("log.ini", "no section header\n", "--log-config log.ini: "),
        ],
    )
    def test_bad_log_config(self, tmp_path: Path, name: str, content: str, expected: str) -> None:
        (tmp_path / name).write_text(content)
        assert_one_line_error(run_cli("demo", "--log-config", name, cwd=tmp_path), "rawrt demo", expected)


# --- Flags, observed from the wire ----------------------------------------------------------------------


def test_version() -> None:
    from rawrt.cli import version

    for args in (["--version"], ["demo", "--version"], ["serve", "--version"]):
        result = run_cli(*args)
        assert (result.returncode, result.stdout, result.stderr) == (0, f"rawrt {version()}\n", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version())


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)


async def open_websocket(running: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The demo's /ws/chat on a fresh channel (it sends nothing until someone publishes; /ws, the Autobahn
    echo, has its own limits and no keepalive, so the server-wide flags would not show there)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(running.host, running.port), TIMEOUT)
    writer.write(
        b"GET /ws/chat HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await read_head(reader)).startswith(b"HTTP/1.1 101 ")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame (payloads under 126 bytes): (opcode, payload)."""
    first, length = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    assert length < 126
    return first & 0x0F, await asyncio.wait_for(reader.readexactly(length), TIMEOUT)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


class TestLimitFlags:
    @pytest.mark.asyncio
    async def test_limit_concurrency(self) -> None:
        """--limit-concurrency 1: with one request in flight, the next connection gets 503 and is closed;
        with the one connection idle (keep-alive), it is shed to make room and the new one is served."""
        async with rawrt("demo", "--limit-concurrency", "1", "--no-access-log") as running:
            reader, first = await asyncio.wait_for(
                asyncio.open_connection(running.host, running.port), TIMEOUT
            )
            try:
                first.write(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n01234")
                await first.drain()
                await asyncio.sleep(0.2)  # the handler waits for the rest of the body
                assert (await http(running, HELLO))[0].startswith(b"HTTP/1.1 503 ")
                first.write(b"56789")
                assert (await read_head(reader)).startswith(b"HTTP/1.1 200 OK")
                assert await reader.readexactly(10) == b"0123456789"
                # Now idle between requests: the newcomer takes its place.
                assert (await http(running, HELLO))[0] == b"HTTP/1.1 200 OK"
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            finally:
                await close(first)

    @pytest.mark.asyncio
    async def test_timeout_keep_alive(self) -> None:
        """--timeout-keep-alive 0.3: an idle keep-alive connection is closed after ~0.3 s, not 5 s."""
        async with rawrt("demo", "--timeout-keep-alive", "0.3", "--no-access-log") as running:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(running.host, running.port), TIMEOUT
            )
            try:
                writer.write(b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")
                assert (await read_head(reader)).startswith(b"HTTP/1.1 200 OK")
                await reader.readexactly(len(b"Hello, world!"))
                loop = asyncio.get_running_loop()
                started = loop.time()
                assert await asyncio.wait_for(reader.read(), 3.0) == b""
                assert 0.2 < loop.time() - started < 2.0
            finally:
                await close(writer)

    @pytest.mark.asyncio
    async def test_ws_max_size(self) -> None:
        """--ws-max-size 1KiB: a 2000-byte frame is refused with close 1009 before its payload is read."""
        async with rawrt("demo", "--ws-max-size", "1KiB", "--no-access-log") as running:
            reader, writer = await open_websocket(running)
            try:
                writer.write(b"\x82\xfe" + (2000).to_bytes(2, "big") + b"\x00\x00\x00\x00")
                opcode, payload = await read_frame(reader)
                assert (opcode, payload[:2]) == (0x8, (1009).to_bytes(2, "big"))
            finally:
                await close(writer)

    @pytest.mark.asyncio
    async def test_ws_ping_interval(self) -> None:
        """--ws-ping-interval 0.2: a keepalive ping arrives within a second (the default waits 20 s)."""
        async with rawrt(
            "demo", "--ws-ping-interval", "0.2", "--ws-ping-timeout", "5", "--no-access-log"
        ) as running:
            reader, writer = await open_websocket(running)
            try:
                opcode, _ = await asyncio.wait_for(read_frame(reader), 2.0)
                assert opcode == 0x9
            finally:
                await close(writer)

    @pytest.mark.asyncio
    async def test_generic_limit(self) -> None:
        """--limit NAME=VALUE reaches the server: max_header_count=3 answers a fourth field with 431."""
        async with rawrt("demo", "--limit", "max_header_count=3", "--no-access-log") as running:
            assert (await http(running, HELLO))[0] == b"HTTP/1.1 200 OK"
            raw = HELLO.replace(b"\r\n\r\n", b"\r\nA: 1\r\nB: 2\r\n\r\n")
            assert (await http(running, raw))[0].startswith(b"HTTP/1.1 431 ")


class TestConfig:
    """How the flags become Limits (in-process: no server)."""

    def test_limits_from_flags(self) -> None:
        from rawrt.config import Config, add_arguments
        from rawrt.limits import DEFAULT_LIMITS, KiB, MiB

        parser = argparse.ArgumentParser()
        add_arguments(parser)
        assert Config.from_args(parser.parse_args([])).limits == DEFAULT_LIMITS
        args = parser.parse_args(
            [
                "--limit-concurrency=7",
                "--timeout-keep-alive=2.5",
                "--ws-max-size=16MiB",
                "--ws-ping-interval=0",
                "--ws-ping-timeout=none",
                "--limit=max_body_size=64KiB",
                "--limit=body_timeout=none",
                "--limit=ws-max-frame-size=1_000",  # an explicit field wins over the shortcut
                "--limit=hub_history_count=10",
            ]
        )
        limits = Config.from_args(args).limits
        assert (limits.max_connections, limits.keep_alive_timeout) == (7, 2.5)
        assert (limits.ws_max_message_size, limits.ws_max_frame_size) == (16 * MiB, 1000)
        assert (limits.ws_ping_interval, limits.ws_ping_timeout) == (None, None)
        assert (limits.max_body_size, limits.body_timeout, limits.hub_history_count) == (64 * KiB, None, 10)
        args = parser.parse_args(["--limit-concurrency=7", "--limit=max_connections=none"])
        assert Config.from_args(args).limits.max_connections is None  # back to the RLIMIT_NOFILE sizing
        assert Config.from_args(parser.parse_args(["--ws-max-size=2MiB"])).limits.ws_max_frame_size == 2 * MiB

    def test_every_limit_has_a_flag_and_a_documented_row(self) -> None:
        """Every Limits field parses through --limit, and docs/howto/configure.md lists it."""
        from rawrt.config import parse_limit
        from rawrt.limits import Limits

        doc = (ROOT / "docs" / "howto" / "configure.md").read_text(encoding="utf-8")
        for item in dataclasses.fields(Limits):
            assert parse_limit(f"{item.name}=1") == (item.name, 1)
            assert f"| `{item.name}` |" in doc, item.name

    def test_server_options(self) -> None:
        from rawrt.config import Config, add_arguments

        parser = argparse.ArgumentParser()
        add_arguments(parser)
        options = Config.from_args(parser.parse_args([])).server_options()
        assert set(options) == {"limits", "ssl", "trace"}  # nothing a pre-issue-10 serve() would refuse
        args = [
            "--proxy-headers",
            "--forwarded-allow-ips=10.0.0.0/8, 192.0.2.7",
            "--root-path=/api/",
            "--access-log-format=%(request_line)s",
            "--uds=/tmp/x.sock",
        ]
        options = Config.from_args(parser.parse_args(args)).server_options()
        assert options["proxy_headers"] is True
        assert options["forwarded_allow_ips"] == ("10.0.0.0/8", "192.0.2.7")
        assert options["root_path"] == "/api"
        assert options["access_log_format"] == "%(request_line)s"
        assert options["uds"] == "/tmp/x.sock"


# --- Flags that need helper D's Server keywords (proxy_headers, root_path, access_log_format, uds) ----------


async def get_json(running: Running, raw: bytes) -> object:
    status, _, body = await http(running, raw)
    assert status == b"HTTP/1.1 200 OK", body
    return json.loads(body)


class TestServerFlags:
    @pytest.mark.asyncio
    async def test_proxy_headers(self, app_dir: Path) -> None:
        forwarded = (
            b"GET /where HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
        )
        async with rawrt("serve", "myapp:app", "--proxy-headers", cwd=app_dir) as running:
            value = await get_json(running, forwarded)
            assert isinstance(value, dict) and value["client"][0] == "203.0.113.9"
        # Without the flag, or from a proxy that is not trusted, the header is ignored.
        async with rawrt("serve", "myapp:app", cwd=app_dir) as running:
            value = await get_json(running, forwarded)
            assert isinstance(value, dict) and value["client"][0] == "127.0.0.1"
        async with rawrt(
            "serve", "myapp:app", "--proxy-headers", "--forwarded-allow-ips", "192.0.2.1", cwd=app_dir
        ) as running:
            value = await get_json(running, forwarded)
            assert isinstance(value, dict) and value["client"][0] == "127.0.0.1"

    @pytest.mark.asyncio
    async def test_root_path(self, app_dir: Path) -> None:
        async with rawrt("serve", "myapp:app", "--root-path", "/api", cwd=app_dir) as running:
            value = await get_json(
                running, b"GET /api/where HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            )
            assert value == {"client": value["client"], "path": "/where", "root_path": "/api"}  # type: ignore[index]

    @pytest.mark.asyncio
    async def test_access_log_format_and_log_config(self, tmp_path: Path) -> None:
        """--log-config sends rawrt.access to a file; --access-log-format chooses its line."""
        log = tmp_path / "access.log"
        config = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"bare": {"format": "%(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log), "formatter": "bare"}},
            "loggers": {"rawrt.access": {"handlers": ["file"], "level": "INFO", "propagate": False}},
        }
        (tmp_path / "log.json").write_text(json.dumps(config))
        fmt = "%(method)s %(target)s -> %(status_code)d"
        async with rawrt(
            "demo", "--log-config", str(tmp_path / "log.json"), "--access-log-format", fmt
        ) as running:
            await http(running, HELLO)
            await http(running, HELLO.replace(b"/hello", b"/nowhere"))
        assert log.read_text().splitlines() == ["GET /hello -> 200", "GET /nowhere -> 404"]

    @pytest.mark.asyncio
    async def test_uds(self, tmp_path: Path) -> None:
        path = tmp_path / "rawrt.sock"
        banner = re.compile(r"listening on (http)\+unix:(\S+) ()\(loop: (\w+)\)")
        async with rawrt("demo", "--uds", str(path), port=False, banner=banner) as running:
            assert running.host == str(path)
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), TIMEOUT)
            try:
                writer.write(HELLO)
                data = await asyncio.wait_for(reader.read(), TIMEOUT)
            finally:
                await close(writer)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"Hello, world!")
