"""rawrt's WebSocket server as seen on the wire: raw bytes in, raw bytes out, no client library.

What kosoku (Autobahn) does not check: the exact refusals of a bad opening handshake (RFC 6455 §4.2.1,
§4.2.2), and the shape of the frames the *server* sends (§5.1 unmasked, §5.2 RSV bits and minimal length,
RFC 7692 §6 RSV1 on the first frame only), the close echo (§5.5.1) and who closes TCP first (§7.1.1). Also
the ``rawrt.trace`` log of frames. Every wait is bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from httpwire import TIMEOUT, Client, RawResponse, client, running

from rawrt.app import App, Request, Response
from rawrt.sansio.ws.frames import apply_mask
from rawrt.sansio.ws.handshake import accept_key
from rawrt.server import Server
from rawrt.websocket import WebSocket

#: The RFC 6455 §1.2 sample nonce and its accept value.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#: The RFC 6455 §5.7 sample mask key.
MASK = bytes.fromhex("37fa213d")


def handshake(path: str = "/echo", *extra: str, key: bytes = KEY, method: str = "GET") -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def masked(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, key: bytes = MASK) -> bytes:
    """A client frame (§5.2), masked with ``key`` (§5.3), minimal length encoding."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 0x10000:
        head = bytes([b0, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack("!Q", n)
    return head + key + apply_mask(payload, key)


@dataclass
class WireFrame:
    """A frame as read off the wire, with the raw header bytes kept for assertions."""

    b0: int
    b1: int
    header: bytes
    payload: bytes

    @property
    def fin(self) -> bool:
        return bool(self.b0 & 0x80)

    @property
    def rsv(self) -> int:
        return self.b0 & 0x70

    @property
    def opcode(self) -> int:
        return self.b0 & 0x0F

    @property
    def masked(self) -> bool:
        return bool(self.b1 & 0x80)


async def read_frame(c: Client) -> WireFrame:
    async def read(n: int) -> bytes:
        return await asyncio.wait_for(c.reader.readexactly(n), TIMEOUT)

    header = await read(2)
    b0, b1 = header
    length = b1 & 0x7F
    if length == 126:
        ext = await read(2)
        header += ext
        length = struct.unpack("!H", ext)[0]
    elif length == 127:
        ext = await read(8)
        header += ext
        length = struct.unpack("!Q", ext)[0]
    if b1 & 0x80:
        key = await read(4)
        header += key
        payload = apply_mask(await read(length), key)
    else:
        payload = await read(length)
    return WireFrame(b0, b1, header, payload)


def ws_app(**options: object) -> App:
    app = App()

    @app.websocket("/echo", **options)
    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @app.websocket("/stream", **options)
    async def stream(ws: WebSocket) -> None:
        # Sends one fragmented text message, then one fragmented binary message, then closes.
        await ws.recv()
        await ws.send(["frag-one ", "frag-two ", "frag-three"])
        await ws.send(iter([b"\x01" * 10, b"\x02" * 10]))
        await ws.close(4010, "stream over")

    @app.websocket("/only-good-origin", origins=["https://good.example"])
    async def origin(ws: WebSocket) -> None:
        await ws.send("welcome")

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text("Hello, world!")

    return app


@contextlib.asynccontextmanager
async def opened(
    server: Server, path: str = "/echo", *extra: str
) -> AsyncIterator[tuple[Client, RawResponse]]:
    """A raw client after a successful opening handshake."""
    async with client(server) as c:
        await c.send(handshake(path, *extra))
        head = await c.read_head()
        assert head.status == 101, head
        yield c, head


# ------------------------------------------------------------------------------------------ the handshake


class TestOpeningHandshake:
    """RFC 6455 §4.2.2: the 101 response, byte for byte (the §1.2 example)."""

    @pytest.mark.asyncio
    async def test_rfc_example(self) -> None:
        async with running(ws_app(compression=None)) as server, opened(server) as (c, head):
            date = head.header(b"date")
            assert date is not None
            assert head.head == (
                b"HTTP/1.1 101 Switching Protocols\r\n"
                b"Upgrade: websocket\r\n"
                b"Connection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                b"date: " + date + b"\r\n\r\n"
            )
            assert head.header(b"sec-websocket-accept") == ACCEPT == accept_key(KEY)
            assert head.header(b"upgrade") == b"websocket"
            assert head.header(b"content-length") is None  # §4.2.2: a 101 has no body
            assert head.header(b"sec-websocket-extensions") is None

    @pytest.mark.asyncio
    async def test_frames_sent_right_behind_the_handshake(self) -> None:
        # A client may send its first frame without waiting for the 101 (it is pipelined behind the head).
        async with running(ws_app()) as server, client(server) as c:
            await c.send(handshake() + masked(0x1, b"early"))
            assert (await c.read_head()).status == 101
            frame = await read_frame(c)
            assert (frame.opcode, frame.payload) == (0x1, b"early")


REFUSALS = [
    # (name, request bytes, status, a piece of the one-line reason)
    ("bad-key", handshake(key=base64.b64encode(b"short")), 400, b"decodes to 5 bytes, expected 16"),
    ("key-not-base64", handshake(key=b"%%%%not-base64%%%%%%%%=="), 400, b"is not base64"),
    (
        "missing-key",
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",
        400,
        b"no Sec-WebSocket-Key field",
    ),
    (
        "missing-host",
        b"GET /echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
        400,
        b"",
    ),
    (
        "bad-origin",
        handshake("/only-good-origin", "Origin: https://evil.example"),
        403,
        b"Origin 'https://evil.example' is not allowed",
    ),
    ("no-origin", handshake("/only-good-origin"), 403, b"no Origin is not allowed"),
    (
        "version-8",
        handshake().replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"),
        426,
        b"Sec-WebSocket-Version is '8', expected 13",
    ),
    ("plain-get", b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 426, b"speaks WebSocket"),
    ("post", handshake(method="POST").replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"), 405, b""),
]


class TestRefusals:
    """RFC 6455 §4.2.1/§4.2.2: a bad handshake gets its status, a one-line reason, and never a 101."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("raw", "status", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
    )
    async def test_refused(self, raw: bytes, status: int, reason: bytes) -> None:
        async with running(ws_app()) as server, client(server) as c:
            await c.send(raw)
            response = await c.read_response()
            assert response.status == status
            assert b"101" not in response.head.split(b"\r\n")[0]
            assert response.header(b"sec-websocket-accept") is None
            assert response.body.endswith(b"\n") and response.body.count(b"\n") == 1  # one line
            assert reason in response.body
            if status == 426:
                assert response.header(b"upgrade") == b"websocket"
            if raw.startswith(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade") or b"Version: 8" in raw:
                assert response.body.startswith(b"Failed to open a WebSocket connection: ")
            if b"Version: 8" in raw:
                assert response.header(b"sec-websocket-version") == b"13"
            if status == 405:
                assert response.header(b"allow") is not None and b"GET" in response.header(b"allow")  # type: ignore[operator]

    @pytest.mark.asyncio
    async def test_connection_stays_http_after_a_refusal(self) -> None:
        async with running(ws_app()) as server, client(server) as c:
            await c.send(handshake("/only-good-origin", "Origin: https://evil.example"))
            assert (await c.read_response()).status == 403
            await c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            response = await c.read_response()
            assert (response.status, response.body) == (200, b"Hello, world!")

    @pytest.mark.asyncio
    async def test_unknown_path(self) -> None:
        async with running(ws_app()) as server, client(server) as c:
            await c.send(handshake("/nowhere"))
            assert (await c.read_response()).status == 404


# --------------------------------------------------------------------------------------- server frames


class TestServerFrames:
    """RFC 6455 §5: what rawrt's server puts on the wire."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("size", "header_length"),
        [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70000, 10)],
    )
    async def test_unmasked_rsv_clear_minimal_length(self, size: int, header_length: int) -> None:
        payload = bytes(i % 251 for i in range(size))
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(masked(0x2, payload))
            frame = await read_frame(c)
            # §5.1: "A server MUST NOT mask any frames"; §5.2: RSV must be 0 without an extension;
            # §5.2: "the minimal number of bytes MUST be used to encode the length".
            assert not frame.masked
            assert frame.rsv == 0 and frame.fin and frame.opcode == 0x2
            assert len(frame.header) == header_length
            assert frame.payload == payload

    @pytest.mark.asyncio
    async def test_rfc_hello_frame(self) -> None:
        # §5.7: the masked "Hello" from the client, and the unmasked one the server sends back.
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(bytes.fromhex("818537fa213d7f9f4d5158"))
            assert await asyncio.wait_for(c.reader.readexactly(7), TIMEOUT) == bytes.fromhex("810548656c6c6f")

    @pytest.mark.asyncio
    async def test_pong_answers_ping_with_the_same_payload(self) -> None:
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(masked(0x9, b"ping-data"))
            frame = await read_frame(c)
            # §5.5.3: the pong carries "identical Application data"; 0x8A = FIN + PONG, unmasked.
            assert frame.header == b"\x8a\x09" and frame.payload == b"ping-data"

    @pytest.mark.asyncio
    async def test_control_frames_inside_a_fragmented_message(self) -> None:
        # §5.4: control frames may be injected in the middle of a fragmented message.
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(masked(0x1, b"frag", fin=False) + masked(0x9, b"mid") + masked(0x0, b"mented"))
            pong = await read_frame(c)
            assert (pong.opcode, pong.payload) == (0xA, b"mid")
            echo = await read_frame(c)
            assert (echo.b0, echo.payload) == (0x81, b"fragmented")

    @pytest.mark.asyncio
    async def test_fragmented_send_uncompressed(self) -> None:
        async with running(ws_app(compression=None)) as server, opened(server, "/stream") as (c, _):
            await c.send(masked(0x1, b"go"))
            frames = [await read_frame(c) for _ in range(5)]
            assert [f.b0 for f in frames] == [0x01, 0x00, 0x80, 0x02, 0x80]
            assert b"".join(f.payload for f in frames[:3]) == b"frag-one frag-two frag-three"
            assert b"".join(f.payload for f in frames[3:]) == b"\x01" * 10 + b"\x02" * 10
            close = await read_frame(c)
            assert close.header == b"\x88" + bytes([2 + len(b"stream over")])
            assert close.payload == struct.pack("!H", 4010) + b"stream over"

    @pytest.mark.asyncio
    async def test_rsv1_only_on_the_first_frame_of_a_compressed_message(self) -> None:
        async with (
            running(ws_app()) as server,
            opened(server, "/stream", "Sec-WebSocket-Extensions: permessage-deflate") as (c, head),
        ):
            assert head.header(b"sec-websocket-extensions") is not None
            await c.send(masked(0x1, b"go"))
            frames = [await read_frame(c) for _ in range(5)]
            # RFC 7692 §6: RSV1 (0x40) on the first frame of a message, never on continuations.
            assert [f.b0 for f in frames] == [0x41, 0x00, 0x80, 0x42, 0x80]
            assert not any(f.masked for f in frames)
            # §7.2.1: the message's payloads, followed by 00 00 ff ff, inflate to the message.
            inflater = zlib.decompressobj(-15)
            text = inflater.decompress(b"".join(f.payload for f in frames[:3]) + b"\x00\x00\xff\xff")
            assert text == b"frag-one frag-two frag-three"
            data = inflater.decompress(b"".join(f.payload for f in frames[3:]) + b"\x00\x00\xff\xff")
            assert data == b"\x01" * 10 + b"\x02" * 10
            close = await read_frame(c)
            assert close.b0 == 0x88  # control frames are never compressed (RFC 7692 §6.1)

    @pytest.mark.asyncio
    async def test_compressed_echo(self) -> None:
        deflater = zlib.compressobj(wbits=-15)
        message = b"a compressible message " * 20
        data = deflater.compress(message) + deflater.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        async with (
            running(ws_app()) as server,
            opened(server, "/echo", "Sec-WebSocket-Extensions: permessage-deflate") as (c, _),
        ):
            await c.send(masked(0x1, data[:-4], rsv=0x40))
            frame = await read_frame(c)
            assert frame.b0 == 0xC1  # FIN + RSV1 + TEXT
            assert len(frame.payload) < len(message)
            assert zlib.decompressobj(-15).decompress(frame.payload + b"\x00\x00\xff\xff") == message


class TestClosingOnTheWire:
    """RFC 6455 §5.5.1 (the close echo) and §7.1.1 (the server closes TCP first)."""

    @pytest.mark.asyncio
    async def test_client_initiated(self) -> None:
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(masked(0x8, struct.pack("!H", 4002) + b"client reason"))
            echo = await read_frame(c)
            assert echo.b0 == 0x88 and not echo.masked
            assert echo.payload[:2] == struct.pack("!H", 4002)  # "typically echoing the status code"
            # Then the server closes TCP without waiting for us: EOF while our socket is still open.
            assert await c.read_until_eof() == b""

    @pytest.mark.asyncio
    async def test_empty_close_is_answered_with_an_empty_close(self) -> None:
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(masked(0x8, b""))
            echo = await read_frame(c)
            assert echo.header == b"\x88\x00"
            assert await c.read_until_eof() == b""

    @pytest.mark.asyncio
    async def test_server_initiated(self) -> None:
        async with running(ws_app(compression=None)) as server, opened(server, "/stream") as (c, _):
            await c.send(masked(0x1, b"go"))
            for _ in range(5):
                await read_frame(c)
            close = await read_frame(c)
            assert close.payload[:2] == struct.pack("!H", 4010)
            # Nothing more until we answer: the server waits for our close before closing TCP.
            rest = asyncio.ensure_future(c.read_until_eof())
            await asyncio.sleep(0.1)
            assert not rest.done()
            await c.send(masked(0x8, close.payload[:2]))
            assert await rest == b""

    @pytest.mark.asyncio
    async def test_protocol_error_closes_with_1002(self) -> None:
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(bytes([0x81, 0x05]) + b"hello")  # unmasked: §5.1 says the server MUST fail
            close = await read_frame(c)
            assert close.opcode == 0x8 and close.payload[:2] == struct.pack("!H", 1002)
            assert await c.read_until_eof() == b""

    @pytest.mark.asyncio
    async def test_invalid_utf8_closes_with_1007(self) -> None:
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(masked(0x1, b"\xff\xfe"))
            close = await read_frame(c)
            assert close.payload[:2] == struct.pack("!H", 1007)
            assert await c.read_until_eof() == b""


# -------------------------------------------------------------------------------------------- tracing


class TestTrace:
    """``Server(trace=True)``: every frame on ``rawrt.trace``, both directions, the way a learner reads it."""

    @pytest.mark.asyncio
    async def test_frames_are_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="rawrt.trace")
        server = Server(ws_app(compression=None), trace=True)
        await server.start("127.0.0.1", 0)
        try:
            async with opened(server) as (c, _):
                await c.send(masked(0x1, b"Hello"))
                await read_frame(c)
                await c.send(masked(0x2, bytes(100)))
                await read_frame(c)
                await c.send(masked(0x8, struct.pack("!H", 1000)))
                await read_frame(c)
                await c.read_until_eof()
        finally:
            await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)
        traced = [r.getMessage() for r in caplog.records if r.name == "rawrt.trace"]
        # The handshake, annotated (rawrt.server.trace): the request head, then the 101 with its accept key.
        request, response, *lines = traced
        assert request.split("\n")[0].endswith(" <- GET /echo HTTP/1.1 (161 bytes)")
        assert (
            "    Upgrade: websocket\\r\\n" in request
            and "the protocol to switch to (RFC 9110 §7.8)" in request
        )
        assert response.split("\n")[0].endswith(" -> HTTP/1.1 101 Switching Protocols (166 bytes)")
        assert "Sec-WebSocket-Accept" in response and "  = " in response  # the key worked out, marked "="
        # Then the frames, one line each (rawrt.websocket.trace).
        assert lines[:2] == [
            "<< fin=1 rsv1=0 opcode=TEXT mask=37fa213d len=5 payload=b'Hello'",
            ">> fin=1 rsv1=0 opcode=TEXT mask=- len=5 payload=b'Hello'",
        ]
        assert (
            lines[2]
            == "<< fin=1 rsv1=0 opcode=BINARY mask=37fa213d len=100 payload=" + repr(bytes(32)) + "..."
        )
        assert lines[3].startswith(">> fin=1 rsv1=0 opcode=BINARY mask=- len=100 ")
        assert lines[4] == "<< fin=1 rsv1=0 opcode=CLOSE mask=37fa213d len=2 payload=b'\\x03\\xe8'"
        assert lines[5] == ">> fin=1 rsv1=0 opcode=CLOSE mask=- len=2 payload=b'\\x03\\xe8'"
        assert lines[6].endswith(" connection closed") and len(lines) == 7

    @pytest.mark.asyncio
    async def test_off_by_default(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="rawrt.trace")
        async with running(ws_app(compression=None)) as server, opened(server) as (c, _):
            await c.send(masked(0x1, b"Hello"))
            await read_frame(c)
        assert [r for r in caplog.records if r.name == "rawrt.trace"] == []
