"""HTTP/2 served for real (rawrt/server/h2.py): the demo app on 127.0.0.1:0, driven by real clients.

* ``curl --http2-prior-knowledge`` (cleartext, RFC 9113 §3.3) and ``curl --http2`` over TLS with ALPN (§3.2);
* ``nghttp`` and ``h2load`` (Debian's nghttp2-client);
* the ``h2`` package as a client on an asyncio socket, where the test must see frames: streams that run
  concurrently (a held long poll does not hold up the next request), Server-Sent Events as DATA frames, flow
  control as backpressure, the body limit, a handler's failure, GOAWAY at shutdown, rapid reset.

HTTP/1.1 on the same port is unaffected, however its first bytes are split. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from rawrt import App, Request, Response
from rawrt.config import Config
from rawrt.demo import create_app
from rawrt.hub import Hub
from rawrt.hub.backends import MemoryBackend
from rawrt.limits import Limits
from rawrt.sansio.h2.frames import DataFrame, ErrorCode, FrameReader, GoAwayFrame
from rawrt.server import Server

TIMEOUT = 10.0
CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")
H2LOAD = shutil.which("h2load")
OPENSSL = shutil.which("openssl")
REQUIRE = os.environ.get("RAWRT_REQUIRE_NGHTTP2") == "1"


def need(tool: str | None, name: str, package: str) -> str:
    if tool is None:
        if REQUIRE:
            pytest.fail(f"{name} is not installed (apt-get install {package})")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return tool


@asynccontextmanager
async def serving(
    app: App | None = None, limits: Limits | None = None, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    limits = limits or Limits()
    server = Server(app or create_app(limits, MemoryBackend(Hub(limits))), limits, ssl=ssl_context)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.shutdown(timeout=2.0)


async def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


# --- an h2 client on an asyncio socket ---------------------------------------------------------------------


class Client:
    """The ``h2`` package's client connection on a socket, collecting each stream's response."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, window: int | None
    ) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.reader, self.writer = reader, writer
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.headers: dict[int, list[tuple[bytes, bytes]]] = {}
        self.data: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.auto_ack = True
        self.changed = asyncio.Event()
        #: Every byte received, for what the h2 package will not parse (frames after a GOAWAY, below).
        self.raw = bytearray()
        self.flush()
        self._task = asyncio.ensure_future(self._read())

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                self.raw += data
                self.changed.set()
                for event in self.conn.receive_data(data):
                    self._on(event)
                self.flush()
                self.changed.set()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        self.changed.set()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            assert event.stream_id is not None and event.headers is not None
            self.headers[event.stream_id] = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None and event.data is not None
            self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            assert event.stream_id is not None
            self.ended.add(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            self.reset[event.stream_id] = int(event.error_code or 0)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def request(self, method: str, path: str, body: bytes | None = None, *, end: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"), (":authority", "test"), (":path", path)]
        if body is not None:
            headers.append(("content-length", str(len(body))))
        self.conn.send_headers(stream_id, headers, end_stream=body is None and end)
        if body:
            for start in range(0, len(body), 16384):
                last = start + 16384 >= len(body)
                self.conn.send_data(stream_id, body[start : start + 16384], end_stream=last and end)
        self.flush()
        return stream_id

    async def until(self, predicate: object, timeout: float = TIMEOUT) -> None:
        assert callable(predicate)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            self.changed.clear()
            remaining = deadline - loop.time()
            assert remaining > 0, "timed out"
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pytest.fail("timed out waiting for the server")

    async def response(self, stream_id: int) -> tuple[int, bytes]:
        await self.until(lambda: stream_id in self.ended or stream_id in self.reset)
        status = dict(self.headers[stream_id])[b":status"]
        return int(status), bytes(self.data.get(stream_id, b""))

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()
        with pytest.raises((asyncio.CancelledError, ConnectionError)):
            await self._task
            raise asyncio.CancelledError


@asynccontextmanager
async def client(server: Server, *, window: int | None = None) -> AsyncIterator[Client]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)
    c = Client(reader, writer, window)
    try:
        # The server's SETTINGS and its connection window (1 MiB), before a body is sent against them.
        await c.until(lambda: c.conn.outbound_flow_control_window > 65535)
        yield c
    finally:
        await c.close()


# --- real clients: curl, nghttp, h2load --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_curl_with_prior_knowledge(tmp_path: Path) -> None:
    curl = need(CURL, "curl", "curl")
    body = os.urandom(300_000)
    (tmp_path / "body").write_bytes(body)
    async with serving() as server:
        url = f"http://127.0.0.1:{server.port}"
        result = await run(curl, "-s", "-D", "-", "--http2-prior-knowledge", f"{url}/hello")
        assert result.stdout.startswith(b"HTTP/2 200 \r\n"), result.stdout
        assert b"content-length: 13\r\n" in result.stdout and result.stdout.endswith(b"\r\n\r\nHello, world!")
        result = await run(
            curl, "-s", "--http2-prior-knowledge", "--data-binary", f"@{tmp_path / 'body'}", f"{url}/echo"
        )
        assert result.stdout == body
        # Without prior knowledge, curl speaks HTTP/1.1 to the same port.
        result = await run(curl, "-s", "-D", "-", f"{url}/hello")
        assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.asyncio
async def test_curl_over_tls_chooses_h2_by_alpn(tmp_path: Path) -> None:
    curl = need(CURL, "curl", "curl")
    openssl = need(OPENSSL, "openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=TIMEOUT,
    )  # fmt: skip
    # The context the CLI builds for --ssl-certfile/--ssl-keyfile: it offers h2 by ALPN.
    context = Config(ssl_certfile=str(cert), ssl_keyfile=str(key)).ssl_context()
    async with serving(ssl_context=context) as server:
        url = f"https://127.0.0.1:{server.port}/hello"
        result = await run(curl, "-s", "-D", "-", "--http2", "--cacert", str(cert), url)
        assert result.stdout.startswith(b"HTTP/2 200 \r\n"), (result.stdout, result.stderr)
        result = await run(curl, "-s", "-D", "-", "--http1.1", "--cacert", str(cert), url)
        assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    # With HTTP/2 off, the same context offers only http/1.1: a client asking for h2 gets HTTP/1.1, never a
    # protocol the server would not speak.
    limits = Limits()
    server = Server(create_app(limits, MemoryBackend(Hub(limits))), limits, ssl=context, http2=False)
    await server.start("127.0.0.1", 0)
    try:
        url = f"https://127.0.0.1:{server.port}/hello"
        result = await run(curl, "-s", "-D", "-", "--http2", "--cacert", str(cert), url)
        assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n"), result.stdout
    finally:
        await server.shutdown(timeout=2.0)


@pytest.mark.asyncio
async def test_nghttp_and_h2load() -> None:
    nghttp = need(NGHTTP, "nghttp", "nghttp2-client")
    h2load = need(H2LOAD, "h2load", "nghttp2-client")
    async with serving() as server:
        url = f"http://127.0.0.1:{server.port}"
        result = await run(nghttp, "-nv", f"{url}/hello")
        out = result.stdout.decode()
        assert result.returncode == 0, out
        assert "recv (stream_id=13) :status: 200" in out and "; END_STREAM" in out
        assert "send GOAWAY frame" in out  # nghttp's own, at its end
        result = await run(h2load, "-n", "400", "-c", "2", "-m", "20", f"{url}/hello")
        out = result.stdout.decode()
        assert "400 succeeded, 0 failed, 0 errored, 0 timeout" in out, out
        assert "status codes: 400 2xx" in out


# --- frames seen by an h2 client ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_streams_run_concurrently() -> None:
    async with serving() as server, client(server) as c:
        held = c.request("GET", "/longpoll?channel=c&since=0&timeout=5")
        await asyncio.sleep(0.1)
        hello = c.request("GET", "/hello")
        assert await c.response(hello) == (200, b"Hello, world!")
        assert held not in c.ended  # still held: the long poll did not hold up the next stream
        published = c.request("POST", "/publish?channel=c", b"news")
        status, body = await c.response(published)
        assert status == 200
        event_id = json.loads(body)["id"]
        status, body = await c.response(held)
        assert status == 200
        assert json.loads(body)["events"] == [{"channel": "c", "id": event_id, "data": "news"}]


@pytest.mark.asyncio
async def test_server_sent_events_as_data_frames() -> None:
    async with serving() as server, client(server) as c:
        events = c.request("GET", "/events?channel=s")
        await c.until(lambda: events in c.headers and b"id: 0\n\n" in c.data.get(events, b""))
        headers = dict(c.headers[events])
        assert headers[b":status"] == b"200" and headers[b"content-type"].startswith(b"text/event-stream")
        assert b"transfer-encoding" not in headers and b"connection" not in headers  # §8.2.2
        for text in ("one", "two"):
            c.request("POST", "/publish?channel=s", text.encode())
        await c.until(lambda: c.data[events].count(b"data: ") == 2)
        assert b"data: one\n\n" in c.data[events] and b"data: two\n\n" in c.data[events]
        # Shutdown: GOAWAY, and the endless stream ends properly (END_STREAM), as over HTTP/1.1. Read with
        # rawrt's frame reader: the h2 package refuses every frame after a GOAWAY, though §6.8 lets the
        # streams up to its last stream id go on.
        await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)

        def frames() -> list[object]:
            reader = FrameReader()
            reader.feed(bytes(c.raw))
            return list(reader)

        await c.until(lambda: DataFrame(events, b"", True) in frames())
        goaway = [f for f in frames() if isinstance(f, GoAwayFrame)]
        assert goaway == [GoAwayFrame(events + 4, ErrorCode.NO_ERROR, b"")]  # the last stream: a publish


@pytest.mark.asyncio
async def test_flow_control_is_backpressure_for_one_stream_only() -> None:
    body = os.urandom(200_000)
    async with serving() as server, client(server, window=1000) as c:
        c.auto_ack = False
        echo = c.request("POST", "/echo", body)
        await c.until(lambda: len(c.data.get(echo, b"")) >= 1000)
        await asyncio.sleep(0.2)
        assert len(c.data[echo]) == 1000  # exactly the window we gave it: the server waits
        # Another stream is answered meanwhile (its window is its own; the connection's has room).
        hello = c.request("GET", "/hello")
        assert await c.response(hello) == (200, b"Hello, world!")
        c.auto_ack = True
        c.conn.increment_flow_control_window(len(body), stream_id=echo)
        c.conn.increment_flow_control_window(len(body))
        c.flush()
        assert await c.response(echo) == (200, body)


@pytest.mark.asyncio
async def test_body_limit_and_handler_failure() -> None:
    app = App()

    @app.post("/sink")
    async def sink(request: Request) -> Response:
        return Response.text(str(len(await request.body())))

    @app.get("/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    async with serving(app, Limits(max_body_size=50_000)) as server, client(server) as c:
        ok = c.request("POST", "/sink", b"x" * 50_000)
        assert await c.response(ok) == (200, b"50000")
        big = c.request("POST", "/sink", b"x" * 60_000)
        status, text = await c.response(big)
        assert (status, text) == (413, b"request body larger than 50000 bytes\n")
        failed = c.request("GET", "/boom")
        assert await c.response(failed) == (500, b"internal server error\n")
        missing = c.request("GET", "/nowhere")
        assert (await c.response(missing))[0] == 404
        # The connection still serves.
        again = c.request("POST", "/sink", b"abc")
        assert await c.response(again) == (200, b"3")


@pytest.mark.asyncio
async def test_rapid_reset_ends_the_connection_and_the_server_goes_on() -> None:
    async with serving(limits=Limits(h2_max_reset_streams=50)) as server:
        async with client(server) as c:
            for _ in range(60):
                stream_id = c.request("GET", "/longpoll?channel=r&since=0&timeout=5")
                c.conn.reset_stream(stream_id)
            c.flush()
            await c.until(lambda: c.goaway is not None)
            assert c.goaway is not None and c.goaway.error_code == 0xB  # ENHANCE_YOUR_CALM
        async with client(server) as c:
            assert await c.response(c.request("GET", "/hello")) == (200, b"Hello, world!")


@pytest.mark.asyncio
async def test_http11_on_the_same_port_whatever_the_split() -> None:
    async with serving() as server:
        for first in (b"P", b"PRI", b"POST /echo HTTP/1.1\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            request = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
            assert request.startswith(first) or first == b"PRI"
            if first == b"PRI":
                # "PRI" then not the preface: an HTTP/1.1 request line with an unknown method (405 or 400).
                writer.write(b"PRI /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                data = await asyncio.wait_for(reader.read(), TIMEOUT)
                assert data.startswith(b"HTTP/1.1 4")
            else:
                writer.write(first)
                await asyncio.sleep(0.05)
                writer.write(request[len(first) :])
                data = await asyncio.wait_for(reader.read(), TIMEOUT)
                assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nabc")
            writer.close()
        # Not the preface after its first 18 bytes: then it is an HTTP/1.1 request for version 2.0.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        assert data.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
