"""Running behind a proxy and in production (issue 10): proxy headers from trusted peers only, ``root_path``,
a Unix domain socket, the access log (every exchange, with size and duration, in a chosen format), the logs
at start and stop, and a graceful shutdown that answers the request in flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpwire import TIMEOUT, Client, client, get, post

from rawrt.app import App, Request, Response, StreamingResponse
from rawrt.limits import Limits
from rawrt.server import Server


def deploy_app(release: asyncio.Event | None = None) -> App:
    app = App()

    @app.get("/who")
    async def who(request: Request) -> Response:
        return Response.json(
            {
                "client": list(request.client) if request.client else None,
                "scheme": request.scheme,
                "root_path": request.root_path,
                "path": request.path,
            }
        )

    @app.get("/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    @app.post("/small", max_body_size=10)
    async def small(request: Request) -> Response:
        return Response.text(str(len(await request.body())))

    @app.get("/slow")
    async def slow(request: Request) -> Response:
        assert release is not None
        await release.wait()
        return Response.text("finished")

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"first"
            await asyncio.Event().wait()  # until the client leaves
            yield b"never"  # pragma: no cover

        return StreamingResponse(body())

    return app


@contextlib.asynccontextmanager
async def serving(app: App, limits: Limits | None = None, **kwargs: object) -> AsyncIterator[Server]:
    server = Server(app, limits or Limits(), **kwargs)  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)


async def who(server: Server, *headers: str) -> dict[str, object]:
    async with client(server) as c:
        await c.send(get("/who", *headers))
        response = await c.read_response()
    assert response.status == 200
    result: dict[str, object] = json.loads(response.body)
    return result


# ------------------------------------------------------------------------------------------ proxy headers


class TestProxyHeaders:
    @pytest.mark.asyncio
    async def test_trusted_proxy_x_forwarded(self) -> None:
        async with serving(deploy_app(), proxy_headers=True) as server:
            got = await who(server, "X-Forwarded-For: 203.0.113.7, 10.0.0.2", "X-Forwarded-Proto: https")
        # From the right: 10.0.0.2 is not a trusted proxy, so it is the client (RFC 7239 §7.4).
        assert got["client"] == ["10.0.0.2", 0]
        assert got["scheme"] == "https"

    @pytest.mark.asyncio
    async def test_trusted_chain_skipped(self) -> None:
        allow = "127.0.0.1,10.0.0.0/8"
        async with serving(deploy_app(), proxy_headers=True, forwarded_allow_ips=allow) as server:
            got = await who(server, "X-Forwarded-For: 203.0.113.7, 10.0.0.2")
        assert got["client"] == ["203.0.113.7", 0]

    @pytest.mark.asyncio
    async def test_forwarded_rfc7239(self) -> None:
        async with serving(deploy_app(), proxy_headers=True) as server:
            got = await who(
                server, 'Forwarded: for="[2001:db8::1]:4711";proto=https', "X-Forwarded-For: 1.2.3.4"
            )
        assert got["client"] == ["2001:db8::1", 4711]
        assert got["scheme"] == "https"

    @pytest.mark.asyncio
    async def test_untrusted_peer_ignored(self) -> None:
        async with serving(deploy_app(), proxy_headers=True, forwarded_allow_ips=["10.0.0.1"]) as server:
            got = await who(server, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
        client_addr = got["client"]
        assert isinstance(client_addr, list) and client_addr[0] == "127.0.0.1"
        assert got["scheme"] == "http"

    @pytest.mark.asyncio
    async def test_off_by_default(self) -> None:
        async with serving(deploy_app()) as server:
            got = await who(server, "X-Forwarded-For: 203.0.113.7")
        client_addr = got["client"]
        assert isinstance(client_addr, list) and client_addr[0] == "127.0.0.1"

    def test_bad_allow_list(self) -> None:
        with pytest.raises(ValueError):
            Server(deploy_app(), forwarded_allow_ips="not-an-address")


# ------------------------------------------------------------------------------------------ root_path


class TestRootPath:
    @pytest.mark.asyncio
    async def test_prefix_stripped_for_routing(self) -> None:
        async with serving(deploy_app(), root_path="/api/") as server:
            assert (await who(server))["root_path"] == "/api"
            async with client(server) as c:
                await c.send(get("/api/who"))
                body = json.loads((await c.read_response()).body)
                assert body["path"] == "/who" and body["root_path"] == "/api"
                await c.send(get("/apiwho"))  # not below the prefix: routed as it is
                assert (await c.read_response()).status == 404

    def test_relative_root_path_refused(self) -> None:
        with pytest.raises(ValueError):
            Server(deploy_app(), root_path="api")


# ------------------------------------------------------------------------------------------ Unix socket


class TestUnixSocket:
    @pytest.mark.asyncio
    async def test_serves_and_replaces_a_stale_socket(self, tmp_path: Path) -> None:
        path = str(tmp_path / "rawrt.sock")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)  # a socket file nobody listens on: what a killed server leaves
        stale.close()
        server = Server(deploy_app())
        await server.start(uds=path)
        try:
            assert (server.host, server.port) == (path, 0)
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), TIMEOUT)
            c = Client(reader, writer)
            await c.send(get("/who"))
            response = await c.read_response()
            assert response.status == 200
            assert json.loads(response.body)["client"] is None
            await c.close()
            # A live server's socket is not stolen.
            with pytest.raises(OSError):
                await Server(deploy_app()).start(uds=path)
        finally:
            await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)
        assert not os.path.exists(path)


# ------------------------------------------------------------------------------------------ access log

DURATION = re.compile(r" \d+\.\d{6}$")


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [DURATION.sub(" T", r.getMessage()) for r in caplog.records if r.name == "rawrt.access"]


class TestAccessLog:
    @pytest.mark.asyncio
    async def test_failures_keep_their_request_line(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.CRITICAL, logger="rawrt.error")  # the tracebacks: tested elsewhere
        caplog.set_level(logging.INFO, logger="rawrt.access")  # last: it sets the capture handler's level
        async with serving(deploy_app()) as server:
            async with client(server) as c:
                await c.send(get("/boom", "User-Agent: t/1", "Referer: http://r/"))
                assert (await c.read_response()).status == 500
            async with client(server) as c:
                await c.send(post("/small", b"x" * 11))
                assert (await c.read_response()).status == 413
        lines = [line.split(" - ", 1)[1] for line in access_lines(caplog)]
        assert lines == [
            '"GET /boom HTTP/1.1" 500 - "http://r/" "t/1" T',
            '"POST /small HTTP/1.1" 413 - "-" "-" T',
        ]

    @pytest.mark.asyncio
    async def test_stream_ended_by_the_client_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="rawrt.access")
        async with serving(deploy_app()) as server:
            async with client(server) as c:
                await c.send(get("/stream"))
                await c.read_head()
                assert await c.read_chunk() == b"first"
            for _ in range(100):
                if access_lines(caplog):
                    break
                await asyncio.sleep(0.02)
        (line,) = access_lines(caplog)
        assert line.endswith('"GET /stream HTTP/1.1" 200 5 "-" "-" T'), line

    @pytest.mark.asyncio
    async def test_chosen_format(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="rawrt.access")
        fmt = "%(method)s %(target)s %(status_code)s %(bytes)s %(duration_ms).0f"
        async with serving(deploy_app(), access_log_format=fmt) as server:
            await who(server)
        (line,) = [r.getMessage() for r in caplog.records if r.name == "rawrt.access"]
        method, target, status, size, duration = line.split(" ")
        assert (method, target, status) == ("GET", "/who", "200")
        assert int(size) > 0 and float(duration) >= 0

    def test_bad_format_refused(self) -> None:
        with pytest.raises(ValueError, match="client_addr"):
            Server(deploy_app(), access_log_format="%(nope)s")


# ------------------------------------------------------------------------------------------ start and stop


class TestStartStop:
    @pytest.mark.asyncio
    async def test_logs_at_start_and_stop(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="rawrt.error")
        async with serving(deploy_app()) as server:
            port = server.port
        messages = [r.getMessage() for r in caplog.records if r.name == "rawrt.error"]
        assert messages[0] == f"listening on http://127.0.0.1:{port}"
        assert "max_connections=" in messages[1] and "loop " in messages[1]
        assert messages[-2].startswith("shutdown started")
        assert re.fullmatch(r"shutdown done in \d+\.\d{3} s", messages[-1])

    @pytest.mark.asyncio
    async def test_request_in_flight_at_shutdown_is_answered(self) -> None:
        release = asyncio.Event()
        server = Server(deploy_app(release))
        await server.start("127.0.0.1", 0)
        async with client(server) as c:
            await c.send(get("/who"))
            assert (await c.read_response()).status == 200
            # Keep-alive, then a request in flight, and a pipelined one behind it when the shutdown starts.
            await c.send(get("/slow") + get("/who"))
            await asyncio.sleep(0.05)
            stopping = asyncio.ensure_future(server.shutdown(timeout=3.0))
            await asyncio.sleep(0.05)
            release.set()
            response = await c.read_response()
            assert response.status == 200 and response.body == b"finished"
            assert response.header(b"connection") == b"close"
            await asyncio.wait_for(c.reader.read(), TIMEOUT)  # a clean close, not a reset
            await asyncio.wait_for(stopping, TIMEOUT)


# ------------------------------------------------------------------------------------------ TLS port

OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
class TestPlainHTTPOnTheTLSPort:
    @pytest.mark.asyncio
    async def test_logged(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        assert OPENSSL is not None
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(
            [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
            + ["-days", "1", "-subj", "/CN=localhost"],
            check=True,
            capture_output=True,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        caplog.set_level(logging.INFO, logger="rawrt.access")
        async with serving(deploy_app(), ssl=context) as server:
            async with client(server) as c:
                await c.send(get("/who"))
                assert await c.read_until_eof() == b""  # the TLS layer closes it
        assert access_lines(caplog) == ['- - "-" 400 - "-" "-" T']
