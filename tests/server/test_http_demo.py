"""The demo's endpoint contract (``rawrt/demo.py``), over real loopback sockets and with real clients.

``/hello``, ``/echo`` and ``/inspect`` are what learners, benchmarks and conformance runs point at, so their
bytes are pinned here exactly. The clients are our raw-bytes client (``httpwire``), the stdlib's
``http.client`` (in a thread) and ``curl`` (required on CI, skipped only where it is not installed).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from httpwire import TIMEOUT, chunked, client, exchange, get, post, running

from rawrt.demo import create_app
from rawrt.limits import MiB
from rawrt.server import Server


@pytest_asyncio.fixture
async def demo() -> AsyncIterator[Server]:
    async with running(create_app()) as server:
        yield server


def inspect_json(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    assert isinstance(value, dict)
    return value


class TestHello:
    """``GET /hello``: 200 ``text/plain; charset=utf-8`` ``Hello, world!``."""

    @pytest.mark.asyncio
    async def test_exact_response(self, demo: Server) -> None:
        response = await exchange(demo, get("/hello"))
        assert (response.status, response.reason) == (200, b"OK")
        assert response.body == b"Hello, world!"
        assert response.header_names == [b"content-type", b"content-length", b"date", b"server"]
        assert response.header(b"content-type") == b"text/plain; charset=utf-8"
        assert response.header(b"content-length") == b"13"
        assert response.header(b"server") == b"rawrt"
        date = response.header(b"date")
        assert date is not None and date.endswith(b" GMT")

    @pytest.mark.asyncio
    async def test_head_has_headers_and_no_body(self, demo: Server) -> None:
        async with client(demo) as c:
            await c.send(b"HEAD /hello HTTP/1.1\r\nHost: test\r\n\r\n" + get("/hello"))
            head = await c.read_response(method=b"HEAD")
            assert head.status == 200
            assert head.header(b"content-length") == b"13"
            assert head.header(b"content-type") == b"text/plain; charset=utf-8"
            # The next response follows the head at once: no body bytes were sent for HEAD.
            after = await c.read_response()
            assert after.body == b"Hello, world!"

    @pytest.mark.asyncio
    async def test_post_is_405_with_allow(self, demo: Server) -> None:
        response = await exchange(demo, post("/hello", b"x"))
        assert response.status == 405
        assert response.header(b"allow") == b"GET, HEAD"

    @pytest.mark.asyncio
    async def test_unknown_path_is_404(self, demo: Server) -> None:
        response = await exchange(demo, get("/nope"))
        assert response.status == 404
        assert response.body == b"Not Found\n"


class TestEcho:
    """``POST /echo``: the body back verbatim, with the request's content type."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "body",
        [b"", b"hello", bytes(range(256)) * 4, b"\r\n\r\n0\r\n\r\n"],
        ids=["empty", "text", "binary", "framing-lookalike"],
    )
    async def test_echo_verbatim(self, demo: Server, body: bytes) -> None:
        response = await exchange(demo, post("/echo", body, "Content-Type: application/x-thing"))
        assert response.status == 200
        assert response.body == body
        assert response.header(b"content-length") == str(len(body)).encode()
        assert response.header(b"content-type") == b"application/x-thing"

    @pytest.mark.asyncio
    async def test_default_content_type(self, demo: Server) -> None:
        response = await exchange(demo, post("/echo", b"abc"))
        assert response.header(b"content-type") == b"application/octet-stream"

    @pytest.mark.asyncio
    async def test_large_body(self, demo: Server) -> None:
        body = os.urandom(MiB + 12345)  # past the server's default 1 MiB: /echo allows 16 MiB
        response = await exchange(demo, post("/echo", body))
        assert response.status == 200
        assert response.body == body

    @pytest.mark.asyncio
    async def test_chunked_body(self, demo: Server) -> None:
        head = b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        response = await exchange(demo, head + chunked(b"hello, ", b"chunked ", b"world"))
        assert response.body == b"hello, chunked world"

    @pytest.mark.asyncio
    async def test_over_demo_limit_is_413(self, demo: Server) -> None:
        head = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % (16 * MiB + 1)
        async with client(demo) as c:
            await c.send(head)
            response = await c.read_response()
            assert response.status == 413
            assert response.header(b"connection") == b"close"
            await c.assert_closed()


class TestInspect:
    """``ANY /inspect``: how the request was parsed, as JSON."""

    @pytest.mark.asyncio
    async def test_fields_exactly(self, demo: Server) -> None:
        raw = (
            b"PUT /inspect?a=1&b=%20 HTTP/1.1\r\nHost: test\r\nX-Mixed-CASE: v1\r\n"
            b"x-mixed-case: v2\r\nContent-Length: 3\r\n\r\n\x00\xff\x80"
        )
        response = await exchange(demo, raw)
        assert response.status == 200
        assert response.header(b"content-type") == b"application/json"
        assert inspect_json(response.body) == {
            "method": "PUT",
            "target": "/inspect?a=1&b=%20",
            "http_version": "HTTP/1.1",
            "headers": [
                ["Host", "test"],
                ["X-Mixed-CASE", "v1"],
                ["x-mixed-case", "v2"],
                ["Content-Length", "3"],
            ],
            "trailers": [],
            "body_base64": base64.b64encode(b"\x00\xff\x80").decode(),
        }

    @pytest.mark.asyncio
    @pytest.mark.parametrize("method", ["PURGE", "M-SEARCH", "get", "X!#$%&'*+.^_`|~1"])
    async def test_odd_method_tokens(self, demo: Server, method: str) -> None:
        response = await exchange(demo, f"{method} /inspect HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        assert response.status == 200
        assert inspect_json(response.body)["method"] == method

    @pytest.mark.asyncio
    async def test_http_10(self, demo: Server) -> None:
        async with client(demo) as c:
            await c.send(b"GET /inspect HTTP/1.0\r\n\r\n")
            response = await c.read_response()
            assert inspect_json(response.body)["http_version"] == "HTTP/1.0"
            assert inspect_json(response.body)["headers"] == []
            await c.assert_closed()

    @pytest.mark.asyncio
    async def test_trailers(self, demo: Server) -> None:
        head = b"POST /inspect HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        body = chunked(b"abc", b"def", trailers=b"X-Sum: 42\r\nx-other:  spaced  \r\n")
        response = await exchange(demo, head + body)
        value = inspect_json(response.body)
        assert value["trailers"] == [["X-Sum", "42"], ["x-other", "spaced"]]
        assert base64.b64decode(value["body_base64"]) == b"abcdef"

    @pytest.mark.asyncio
    async def test_obs_text_header_survives_as_latin1(self, demo: Server) -> None:
        raw = b"GET /inspect HTTP/1.1\r\nHost: test\r\nX-Name: caf\xe9 \xff\x80\r\n\r\n"
        response = await exchange(demo, raw)
        assert inspect_json(response.body)["headers"][1] == ["X-Name", "caf\xe9 \xff\x80"]

    @pytest.mark.asyncio
    async def test_absolute_form_target(self, demo: Server) -> None:
        raw = b"GET http://test/inspect?x=1 HTTP/1.1\r\nHost: test\r\n\r\n"
        response = await exchange(demo, raw)
        assert response.status == 200
        assert inspect_json(response.body)["target"] == "http://test/inspect?x=1"


class TestStdlibClient:
    """``http.client`` (in a thread) against the demo: another implementation's idea of HTTP/1.1."""

    @staticmethod
    def _requests(port: int) -> list[tuple[int, str | None, bytes]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            results = []
            conn.request("GET", "/hello")
            r = conn.getresponse()
            results.append((r.status, r.getheader("content-type"), r.read()))
            conn.request("POST", "/echo", body=b"x" * 100_000, headers={"Content-Type": "a/b"})
            r = conn.getresponse()
            results.append((r.status, r.getheader("content-type"), r.read()))
            # A body from an iterator: http.client sends it chunked.
            conn.request("POST", "/echo", body=iter([b"one ", b"two"]), encode_chunked=True)
            r = conn.getresponse()
            results.append((r.status, r.getheader("content-type"), r.read()))
            conn.request("HEAD", "/hello")
            r = conn.getresponse()
            results.append((r.status, r.getheader("content-length"), r.read()))
            return results
        finally:
            conn.close()

    @pytest.mark.asyncio
    async def test_keep_alive_session(self, demo: Server) -> None:
        results = await asyncio.wait_for(asyncio.to_thread(self._requests, demo.port), TIMEOUT)
        assert results == [
            (200, "text/plain; charset=utf-8", b"Hello, world!"),
            (200, "a/b", b"x" * 100_000),
            (200, "application/octet-stream", b"one two"),
            (200, "13", b""),
        ]


CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="curl is not installed (CI installs it)")
class TestCurl:
    """curl against the demo (``--noproxy '*'`` and ``-q``: no proxy or ~/.curlrc gets in the way)."""

    @staticmethod
    async def curl(*args: str, stdin: bytes | None = None) -> bytes:
        assert CURL is not None
        proc = await asyncio.create_subprocess_exec(
            CURL,
            "-q",
            "--noproxy",
            "*",
            "--silent",
            "--show-error",
            "--max-time",
            str(TIMEOUT),
            *args,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT + 2)
        assert proc.returncode == 0, err
        return out

    @pytest.mark.asyncio
    async def test_get(self, demo: Server) -> None:
        out = await self.curl(f"http://127.0.0.1:{demo.port}/hello")
        assert out == b"Hello, world!"

    @pytest.mark.asyncio
    async def test_post_echo(self, demo: Server, tmp_path: Path) -> None:
        data = os.urandom(300_000)
        path = tmp_path / "body"
        path.write_bytes(data)
        out = await self.curl("--data-binary", f"@{path}", f"http://127.0.0.1:{demo.port}/echo")
        assert out == data

    @pytest.mark.asyncio
    async def test_chunked_upload(self, demo: Server) -> None:
        out = await self.curl(
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
            f"http://127.0.0.1:{demo.port}/inspect",
            stdin=b"streamed body",
        )
        value = inspect_json(out)
        assert ["Transfer-Encoding", "chunked"] in value["headers"]
        assert base64.b64decode(value["body_base64"]) == b"streamed body"

    @pytest.mark.asyncio
    async def test_head(self, demo: Server) -> None:
        out = await self.curl("--head", f"http://127.0.0.1:{demo.port}/hello")
        lines = out.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 200 OK"
        assert b"content-length: 13" in lines
        assert out.endswith(b"\r\n\r\n")

    @pytest.mark.asyncio
    async def test_http_10(self, demo: Server) -> None:
        out = await self.curl("-0", "--include", f"http://127.0.0.1:{demo.port}/inspect")
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nconnection: close" in head
        assert inspect_json(body)["http_version"] == "HTTP/1.0"

    @pytest.mark.asyncio
    async def test_http_10_head(self, demo: Server) -> None:
        out = await self.curl("-0", "--head", f"http://127.0.0.1:{demo.port}/hello")
        assert out.startswith(b"HTTP/1.1 200 OK\r\n")
