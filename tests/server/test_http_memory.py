"""The server over in-memory streams (``memory.py``): exact output bytes, independent of how input is split.

A real socket delivers a request in whatever pieces the network chose; the server's answer must not depend
on them (h11 runs its reader tests whole and byte by byte; STYLE §8 (b)). Here the same client bytes are fed
whole, one byte at a time and cut at arbitrary points chosen by Hypothesis, and the server's output must be
identical byte for byte (the ``Date`` value aside).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory import PEER, MemoryConnection

from rawrt.app import App, Request, Response, StreamingResponse
from rawrt.demo import create_app
from rawrt.limits import Limits

DATE = re.compile(rb"\r\ndate: [^\r]+\r\n")


def undated(data: bytes) -> bytes:
    return DATE.sub(b"\r\ndate: X\r\n", data)


# A session exercising every framing: GET, Content-Length POST, chunked POST with trailers and extensions,
# HEAD, an odd method, and a final Connection: close.
SESSION = (
    b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: t/x\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /inspect HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: v\r\n\r\n"
    b"\r\n"  # RFC 9112 §2.2: a stray CRLF before a request line is ignored
    b"HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n"
    b"M-SEARCH /inspect HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
)

EXPECTED_INSPECT = (
    b'{"method":"POST","target":"/inspect","http_version":"HTTP/1.1","headers":[["Host","a"],'
    b'["Transfer-Encoding","chunked"]],"trailers":[["X-T","v"]],"body_base64":"YWJjZGU="}'
)


async def serve_pieces(app: App, pieces: list[bytes], limits: Limits | None = None) -> bytes:
    conn = MemoryConnection(app, limits or Limits())
    for piece in pieces:
        await conn.feed(piece)
    return undated(await conn.finish())


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


class TestExactBytes:
    """The server's output for a whole session, pinned byte for byte."""

    @pytest.mark.asyncio
    async def test_session(self) -> None:
        out = await serve_pieces(create_app(), [SESSION])
        responses = out.split(b"HTTP/1.1 ")[1:]
        assert len(responses) == 5
        assert responses[0] == (
            b"200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 13\r\n"
            b"date: X\r\nserver: rawrt\r\n\r\nHello, world!"
        )
        assert responses[1] == (
            b"200 OK\r\ncontent-type: t/x\r\ncontent-length: 5\r\ndate: X\r\nserver: rawrt\r\n\r\nhello"
        )
        assert responses[2].endswith(b"\r\n\r\n" + EXPECTED_INSPECT)
        assert responses[3] == (
            b"200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 13\r\n"
            b"date: X\r\nserver: rawrt\r\n\r\n"
        )
        assert responses[4].startswith(b"200 OK\r\ncontent-type: application/json\r\n")
        assert b"\r\nconnection: close\r\n" in responses[4]
        assert b'"method":"M-SEARCH"' in responses[4]

    @pytest.mark.asyncio
    async def test_bad_request_bytes(self) -> None:
        out = await serve_pieces(
            create_app(), [b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\nGET /hello HTTP/1.1\r\n"]
        )
        body = b"whitespace between header name and colon: 'X : y' (RFC 9112 \xc2\xa75.1)\n"
        assert out == (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\ndate: X\r\nserver: rawrt\r\n\r\n%b"
            % (len(body), body)
        )

    @pytest.mark.asyncio
    async def test_peer_address_reaches_the_request(self) -> None:
        app = App()

        @app.get("/peer")
        async def peer(request: Request) -> Response:
            return Response.text(repr(request.client))

        out = await serve_pieces(app, [b"GET /peer HTTP/1.1\r\nHost: a\r\n\r\n"])
        assert out.endswith(b"\r\n\r\n" + repr(PEER).encode())

    @pytest.mark.asyncio
    async def test_streaming_chunks_exactly(self) -> None:
        app = App()

        async def body() -> AsyncIterator[bytes | str]:
            yield b"a"
            yield "\u00e9"
            yield b"x" * 17

        @app.get("/s")
        async def stream(request: Request) -> StreamingResponse:
            return StreamingResponse(body())

        out = await serve_pieces(app, [b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n"])
        assert out.endswith(
            b"transfer-encoding: chunked\r\ndate: X\r\nserver: rawrt\r\n\r\n"
            b"1\r\na\r\n2\r\n\xc3\xa9\r\n11\r\nxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n"
        )


class TestSplitIndependence:
    """The same bytes, however cut, give the same output (STYLE §8 property (b))."""

    @pytest.mark.asyncio
    async def test_byte_at_a_time(self) -> None:
        whole = await serve_pieces(create_app(), [SESSION])
        bytewise = await serve_pieces(create_app(), [bytes([b]) for b in SESSION])
        assert bytewise == whole

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=len(SESSION) - 1), max_size=12))
    def test_arbitrary_cuts(self, points: list[int]) -> None:
        async def run() -> tuple[bytes, bytes]:
            whole = await serve_pieces(create_app(), [SESSION])
            return whole, await serve_pieces(create_app(), cut(SESSION, points))

        whole, pieces = asyncio.run(run())
        assert pieces == whole

    @settings(max_examples=25, deadline=None)
    @given(st.integers(min_value=1, max_value=60))
    def test_limits_answer_the_same_however_cut(self, step: int) -> None:
        """A head over the limits gets the same status whether it arrives whole or in ``step``-byte pieces."""
        limits = Limits(max_request_line=64, max_header_bytes=128)
        # Line: "GET /" + n + " HTTP/1.1", 14 + n bytes. Section: "\r\nHost: a\r\nX: " + m, 14 + m bytes.
        at_the_edge = b"GET /" + b"a" * 50 + b" HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 114 + b"\r\n\r\n"
        heads = [
            b"GET /" + b"a" * 51 + b" HTTP/1.1\r\nHost: a\r\n\r\n",  # 414
            b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 115 + b"\r\n\r\n",  # 431
            at_the_edge,  # both limits exactly reached, not crossed: routed (404: the app has no routes)
        ]

        async def run() -> list[tuple[bytes, bytes]]:
            results = []
            for head in heads:
                whole = await serve_pieces(App(), [head], limits)
                split = await serve_pieces(
                    App(), [head[i : i + step] for i in range(0, len(head), step)], limits
                )
                results.append((whole[:12], split[:12]))
            return results

        results = asyncio.run(run())
        assert [w for w, _ in results] == [b"HTTP/1.1 414", b"HTTP/1.1 431", b"HTTP/1.1 404"]
        assert [s for _, s in results] == [w for w, _ in results]


class TestResolve:
    """``App.resolve``: the routing decision the server acts on (RFC 9110 §15.5.5, §15.5.6, RFC 6455 §4.2.2),
    remembered per route and method, and forgotten when the app registers more on the route."""

    def test_decisions(self) -> None:
        app = App()

        @app.get("/items/{item_id}", max_body_size=10)
        async def item(request: Request) -> Response:
            return Response.text(request.path_params["item_id"])

        @app.websocket("/ws")
        async def ws(socket: object) -> None:
            return None

        assert app.resolve("GET", "/nowhere", False).status == 404
        got = app.resolve("GET", "/items/7", False)
        assert (got.status, got.handler, got.params, got.max_body_size) == (200, item, {"item_id": "7"}, 10)
        head = app.resolve("HEAD", "/items/8", False)
        assert (head.handler, head.params, head.max_body_size) == (item, {"item_id": "8"}, None)
        refused = app.resolve("DELETE", "/items/7", False)
        assert refused.status == 405 and refused.response is not None
        assert dict(refused.response.headers)[b"allow"] == b"GET, HEAD"
        upgrade = app.resolve("GET", "/ws", True)
        assert (upgrade.status, upgrade.websocket, upgrade.response) == (101, ws, None)
        plain = app.resolve("GET", "/ws", False)
        assert plain.status == 426 and plain.response is not None and plain.handler is None
        assert app.resolve("POST", "/ws", True).status == 405  # only a GET upgrades (RFC 6455 §4.1)

    @pytest.mark.asyncio
    async def test_a_route_changed_by_the_app_is_decided_again(self) -> None:
        app = App()

        @app.get("/thing")
        async def get_thing(request: Request) -> Response:
            return Response.text("got")

        first = await serve_pieces(app, [b"POST /thing HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"])
        assert first.startswith(b"HTTP/1.1 405 ")

        @app.post("/thing")
        async def post_thing(request: Request) -> Response:
            return Response.text("posted")

        second = await serve_pieces(app, [b"POST /thing HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"])
        assert second.startswith(b"HTTP/1.1 200 ") and second.endswith(b"posted")

    def test_methods_remembered_are_bounded(self) -> None:
        # Method tokens come from the client: a thousand different ones must not grow the memo.
        app = App()

        @app.get("/")
        async def root(request: Request) -> Response:
            return Response.text("root")

        for i in range(1000):
            assert app.resolve(f"M{i}", "/", False).status == 405
        route = app.match("/")
        assert route is not None and len(route[0].resolved) <= 16


class TestShutdownRace:
    """A request that arrived just as the shutdown began (not read yet) is answered, not dropped."""

    @pytest.mark.asyncio
    async def test_request_arrived_but_unread_at_shutdown_is_answered(self) -> None:
        conn = MemoryConnection(create_app())
        await conn.feed(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        conn.stream.data_received(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")  # the task has not run yet
        await conn.server.shutdown(timeout=2.0)  # runs at once, before the connection task does
        out = await conn.finish()
        responses = out.split(b"HTTP/1.1 200 OK")[1:]
        assert len(responses) == 2
        assert b"connection: close" in responses[1]
