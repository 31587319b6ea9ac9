"""The asyncio WebSocket layer (``rawrt/websocket.py``) against a real peer: the ``websockets`` library.

Both directions over loopback sockets: the ``websockets`` client against rawrt's server (echo with opcodes
preserved, large fragmented messages, permessage-deflate, subprotocols, close codes, pings), and rawrt's own
:func:`rawrt.websocket.connect` against rawrt's server and a ``websockets`` server, plus every way
``connect()`` can fail (RFC 6455 §4.1: the client MUST fail the connection on a wrong answer). Every wait is
bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from httpwire import TIMEOUT, running
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection as WsServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.typing import Subprotocol

from rawrt.app import App
from rawrt.errors import ConnectionClosed, HandshakeError
from rawrt.limits import KiB, Limits, MiB
from rawrt.server import Server
from rawrt.websocket import WebSocket, connect

# ------------------------------------------------------------------------------------------------ helpers


def echo_app(**options: object) -> App:
    """``/echo`` echoes each message with its type; ``/info`` sends what the handshake negotiated."""
    app = App()

    @app.websocket("/echo", **options)
    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @app.websocket("/info", subprotocols=["chat.v2", "chat.v1"], **options)
    async def info(ws: WebSocket) -> None:
        assert ws.request is not None
        await ws.send(f"subprotocol={ws.subprotocol}")
        await ws.send(f"query={ws.request.query}")
        await ws.send(f"x-test={ws.request.headers.get('x-test')}")
        await ws.send(f"ext={ws.request.headers.get('sec-websocket-extensions')}")
        await ws.recv()

    @app.websocket("/close")
    async def close(ws: WebSocket) -> None:
        # Closes with the code and reason the client asks for in its first message ("4001 bye").
        request = await ws.recv()
        assert isinstance(request, str)
        code, _, reason = request.partition(" ")
        await ws.close(int(code), reason)

    return app


def uri(server: Server, path: str = "/echo") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


@contextlib.asynccontextmanager
async def ws_client(server: Server, path: str = "/echo", **kwargs: object) -> AsyncIterator[ClientConnection]:
    """The ``websockets`` client, no proxy from the environment, handshake bounded by TIMEOUT."""
    async with ws_connect(uri(server, path), proxy=None, open_timeout=TIMEOUT, **kwargs) as ws:  # type: ignore[arg-type]
        yield ws


async def bounded(awaitable: Awaitable[object]) -> object:
    return await asyncio.wait_for(awaitable, TIMEOUT)


# ------------------------------------------------------------------------- websockets client -> rawrt server


class TestWebsocketsClientEcho:
    """RFC 6455 §5.6: text stays text, binary stays binary, whatever the size."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize("compression", [None, "deflate"])
    async def test_text_and_binary_keep_their_type(self, compression: str | None) -> None:
        async with running(echo_app()) as server, ws_client(server, compression=compression) as ws:
            messages: list[str | bytes] = ["hello", "", "héllo ✓", b"\x00\x01\xff", b""]
            for message in messages:
                await ws.send(message)
                echo = await bounded(ws.recv())
                assert echo == message
                assert type(echo) is type(message)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("compression", [None, "deflate"])
    async def test_large_messages_fragmented_by_the_client(self, compression: str | None) -> None:
        big = bytes(range(256)) * 3000  # 768,000 bytes: below the default 1 MiB message limit
        text = "ünïcode " * 60_000  # split by websockets across frames, maybe inside a character
        async with running(echo_app()) as server, ws_client(server, compression=compression) as ws:
            await ws.send([big[i : i + 100_000] for i in range(0, len(big), 100_000)])
            assert await bounded(ws.recv()) == big
            await ws.send([text[i : i + 7777] for i in range(0, len(text), 7777)])
            assert await bounded(ws.recv()) == text
            await ws.send(big)
            assert await bounded(ws.recv()) == big

    @pytest.mark.asyncio
    async def test_client_ping_is_answered(self) -> None:
        async with running(echo_app()) as server, ws_client(server) as ws:
            pong_waiter = await ws.ping(b"are you there")
            latency = await bounded(pong_waiter)
            assert isinstance(latency, float) and latency >= 0


class TestPermessageDeflate:
    """RFC 7692: negotiated when offered (and the server allows it), and working in both directions."""

    @pytest.mark.asyncio
    async def test_negotiated_when_offered(self) -> None:
        async with running(echo_app()) as server, ws_client(server, compression="deflate") as ws:
            assert ws.response is not None
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
            assert extensions is not None and extensions.startswith("permessage-deflate")
            # websockets applied it, so its outgoing frames are compressed and ours must decompress.
            assert [type(e).__name__ for e in ws.protocol.extensions] == ["PerMessageDeflate"]
            message = "compress me " * 1000
            await ws.send(message)
            assert await bounded(ws.recv()) == message

    @pytest.mark.asyncio
    async def test_not_negotiated_when_not_offered(self) -> None:
        async with running(echo_app()) as server, ws_client(server, compression=None) as ws:
            assert ws.response is not None
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            assert ws.protocol.extensions == []

    @pytest.mark.asyncio
    async def test_not_negotiated_when_the_route_disables_it(self) -> None:
        async with running(echo_app(compression=None)) as server, ws_client(server) as ws:
            assert ws.response is not None
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            await ws.send("plain")
            assert await bounded(ws.recv()) == "plain"


class TestSubprotocols:
    """RFC 6455 §4.1 item 10 / §4.2.2: the client lists subprotocols by preference; the server picks one."""

    @pytest.mark.asyncio
    async def test_clients_order_of_preference_wins(self) -> None:
        offered = [Subprotocol("chat.v1"), Subprotocol("chat.v2")]  # the route prefers v2; the client v1
        async with running(echo_app()) as server, ws_client(server, "/info", subprotocols=offered) as ws:
            assert ws.subprotocol == "chat.v1"
            assert await bounded(ws.recv()) == "subprotocol=chat.v1"

    @pytest.mark.asyncio
    async def test_unknown_subprotocols_are_declined(self) -> None:
        async with (
            running(echo_app()) as server,
            ws_client(server, "/info", subprotocols=[Subprotocol("mqtt")]) as ws,
        ):
            assert ws.subprotocol is None
            assert ws.response is not None and ws.response.headers.get("Sec-WebSocket-Protocol") is None
            assert await bounded(ws.recv()) == "subprotocol=None"

    @pytest.mark.asyncio
    async def test_handler_sees_request_headers_and_query(self) -> None:
        async with (
            running(echo_app()) as server,
            ws_client(server, "/info?room=a&room=b&x=1", additional_headers={"X-Test": "yes"}) as ws,
        ):
            assert await bounded(ws.recv()) == "subprotocol=None"
            assert await bounded(ws.recv()) == "query={'room': ['a', 'b'], 'x': ['1']}"
            assert await bounded(ws.recv()) == "x-test=yes"
            ext = await bounded(ws.recv())
            assert isinstance(ext, str) and ext.startswith("ext=permessage-deflate")


class TestCloseCodes:
    """RFC 6455 §7.4: close codes and reasons travel both ways, and the close is echoed (§5.5.1)."""

    @pytest.mark.asyncio
    async def test_client_close_code_and_reason_reach_the_handler(self) -> None:
        seen: asyncio.Queue[tuple[int | None, str]] = asyncio.Queue()
        app = App()

        @app.websocket("/wait")
        async def wait(ws: WebSocket) -> None:
            async for _ in ws:
                pass
            await seen.put((ws.close_code, ws.close_reason))

        async with running(app) as server:
            async with ws_client(server, "/wait") as ws:
                await bounded(ws.close(4321, "client says bye"))
                # The server echoed the code (§5.5.1) and closed TCP first (§7.1.1).
                assert ws.close_code == 4321
                assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 4321
            assert await bounded(seen.get()) == (4321, "client says bye")

    @pytest.mark.asyncio
    @pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "going away"), (4001, "bye ✓")])
    async def test_server_close_code_and_reason_reach_the_client(self, code: int, reason: str) -> None:
        async with running(echo_app()) as server, ws_client(server, "/close") as ws:
            await ws.send(f"{code} {reason}")
            exc_type = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
            with pytest.raises(exc_type) as info:
                await bounded(ws.recv())
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, reason)
            # The client's echo arrived, so the close handshake completed cleanly on both sides.
            assert info.value.sent is not None and info.value.sent.code == code


# ------------------------------------------------------------------------------------- rawrt's own client


@contextlib.asynccontextmanager
async def websockets_server(
    handler: Callable[[WsServerConnection], Awaitable[None]], **kwargs: object
) -> AsyncIterator[int]:
    """A ``websockets`` server on 127.0.0.1:<free port>; yields the port."""
    async with ws_serve(handler, "127.0.0.1", 0, **kwargs) as server:  # type: ignore[arg-type]
        port = next(iter(server.sockets)).getsockname()[1]
        yield int(port)


async def ws_echo_handler(ws: WsServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


class TestRawrtClient:
    """``rawrt.websocket.connect`` against rawrt's server and against the ``websockets`` server."""

    async def _roundtrips(self, ws: WebSocket) -> None:
        messages: list[str | bytes] = ["hello", b"\x00\xffbin", "é" * 70_000, bytes(300_000)]
        for message in messages:
            await bounded(ws.send(message))
            echo = await bounded(ws.recv())
            assert echo == message and type(echo) is type(message)
        # A streamed message: one frame per piece (RFC 6455 §5.4), one message at the other end.
        await bounded(ws.send(["stream", "ed ", "text"]))
        assert await bounded(ws.recv()) == "streamed text"
        rtt = await bounded(ws.ping(b"client ping"))
        assert isinstance(rtt, float) and rtt >= 0

    @pytest.mark.asyncio
    @pytest.mark.parametrize("compression", [None, "permessage-deflate"])
    async def test_against_rawrt_server(self, compression: str | None) -> None:
        async with running(echo_app()) as server:
            ws = await connect(uri(server), compression=compression, open_timeout=TIMEOUT)
            try:
                negotiated = ws.headers.get("sec-websocket-extensions")
                assert (negotiated is not None) == (compression is not None)
                assert ws.protocol.extension is not None if compression else ws.protocol.extension is None
                await self._roundtrips(ws)
            finally:
                await bounded(ws.close(4000, "done"))
            assert ws.close_code == 4000  # the server echoed our code
            assert not ws.open

    @pytest.mark.asyncio
    @pytest.mark.parametrize("compression", [None, "permessage-deflate"])
    async def test_against_websockets_server(self, compression: str | None) -> None:
        ws_compression = "deflate" if compression else None
        async with websockets_server(ws_echo_handler, compression=ws_compression) as port:
            ws = await connect(f"ws://127.0.0.1:{port}/", compression=compression, open_timeout=TIMEOUT)
            try:
                assert (ws.protocol.extension is not None) == (compression is not None)
                await self._roundtrips(ws)
            finally:
                await bounded(ws.close())
            assert ws.close_code == 1000
            await bounded(ws.wait_closed())

    @pytest.mark.asyncio
    async def test_subprotocol_negotiated_with_websockets_server(self) -> None:
        async def handler(ws: WsServerConnection) -> None:
            await ws.send(f"chose {ws.subprotocol}")
            await ws.wait_closed()

        async with websockets_server(handler, subprotocols=[Subprotocol("b"), Subprotocol("a")]) as port:
            ws = await connect(f"ws://127.0.0.1:{port}/", subprotocols=["a", "b"], open_timeout=TIMEOUT)
            try:
                assert ws.subprotocol is not None
                assert await bounded(ws.recv()) == f"chose {ws.subprotocol}"
            finally:
                await bounded(ws.close())

    @pytest.mark.asyncio
    async def test_server_close_is_reported(self) -> None:
        async def handler(ws: WsServerConnection) -> None:
            await ws.close(4004, "go away")

        async with websockets_server(handler) as port:
            ws = await connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)
            with pytest.raises(ConnectionClosed) as info:
                await bounded(ws.recv())
            assert (info.value.code, info.value.reason) == (4004, "go away")
            assert [m async for m in ws] == []
            await bounded(ws.wait_closed())
            assert (ws.close_code, ws.close_reason) == (4004, "go away")


# ----------------------------------------------------------------------------------------- connect() fails


@contextlib.asynccontextmanager
async def fake_server(answer: Callable[[bytes], bytes | None]) -> AsyncIterator[int]:
    """A raw TCP server that reads one request head, writes ``answer(head)`` and closes (None: say nothing
    and wait for the client to leave)."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            reply = answer(head)
            if reply is None:
                await reader.read()  # hold the connection until the client gives up
            else:
                writer.write(reply)  # then close: the client must decide on what it got
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            tasks.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=TIMEOUT)
        await server.wait_closed()


def _key(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"sec-websocket-key":
            return value.strip()
    raise AssertionError(f"no key in {head!r}")


def _accept(head: bytes) -> bytes:
    from rawrt.sansio.ws.handshake import accept_key

    return accept_key(_key(head))


class TestConnectFailures:
    """RFC 6455 §4.1: "If the response lacks ... or ... the client MUST _Fail the WebSocket Connection_"."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("answer", "message"),
        [
            (
                lambda head: b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                "server answered 404 'Not Found', expected 101",
            ),
            (
                lambda head: (
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                ),
                "Sec-WebSocket-Accept",
            ),
            (
                lambda head: (
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                ),
                "Sec-WebSocket-Accept is",
            ),
            (
                lambda head: (
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + _accept(head) + b"\r\nSec-WebSocket-Protocol: evil\r\n\r\n"
                ),
                "server chose subprotocol 'evil', which was not offered",
            ),
            (
                lambda head: (
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: "
                    + _accept(head)
                    + b"\r\nSec-WebSocket-Extensions: x-unknown\r\n\r\n"
                ),
                "server accepted extension 'x-unknown', which was not offered",
            ),
            (
                lambda head: (
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + _accept(head) + b"\r\n\r\n"
                ),
                "Upgrade",
            ),
            (lambda head: b"HTP/1.1 101 Oops\r\n\r\n", "invalid status line"),
            (lambda head: b"HTTP/1.1 101 Switching", "connection closed during the opening handshake"),
        ],
        ids=["404", "no-accept", "bad-accept", "subprotocol", "extension", "upgrade", "status-line", "eof"],
    )
    async def test_wrong_answers_raise_handshake_error(
        self, answer: Callable[[bytes], bytes], message: str
    ) -> None:
        async with fake_server(answer) as port:
            with pytest.raises(HandshakeError) as info:
                await connect(f"ws://127.0.0.1:{port}/", subprotocols=["chat"], open_timeout=TIMEOUT)
            assert message in str(info.value)

    @pytest.mark.asyncio
    async def test_open_timeout(self) -> None:
        async with fake_server(lambda head: None) as port:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises((TimeoutError, asyncio.TimeoutError)):
                await connect(f"ws://127.0.0.1:{port}/", open_timeout=0.3)
            assert 0.25 < loop.time() - start < 2.0

    @pytest.mark.asyncio
    async def test_refused_connection(self) -> None:
        async with fake_server(lambda head: None) as port:
            pass  # the port is free again
        with pytest.raises(OSError):
            await connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT)

    @pytest.mark.asyncio
    async def test_not_a_websocket_uri(self) -> None:
        with pytest.raises(ValueError, match="not a WebSocket URI"):
            await connect("http://127.0.0.1:1/")

    @pytest.mark.asyncio
    async def test_rawrt_refusal_reaches_the_client(self) -> None:
        async with running(echo_app(origins=["https://good.example"])) as server:
            with pytest.raises(HandshakeError, match="403"):
                await connect(uri(server), origin="https://evil.example", open_timeout=TIMEOUT)
            ws = await connect(uri(server), origin="https://good.example", open_timeout=TIMEOUT)
            await bounded(ws.send("ok"))
            assert await bounded(ws.recv()) == "ok"
            await bounded(ws.close())


class TestLimitsInterop:
    """``Limits.ws_max_message_size`` seen from the websockets client: close 1009 (RFC 6455 §7.4.1)."""

    @pytest.mark.asyncio
    async def test_message_too_big(self) -> None:
        limits = Limits(ws_max_message_size=64 * KiB, ws_max_frame_size=1 * MiB)
        async with running(echo_app(limits=limits)) as server, ws_client(server) as ws:
            await ws.send(bytes(64 * KiB))
            assert await bounded(ws.recv()) == bytes(64 * KiB)
            await ws.send(bytes(64 * KiB + 1))
            with pytest.raises(ConnectionClosedError) as info:
                await bounded(ws.recv())
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
