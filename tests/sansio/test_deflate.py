"""Tests for rawrt.sansio.ws.deflate: RFC 7692 negotiation and compression, alone and in a connection."""

from __future__ import annotations

import hashlib
import tracemalloc
import zlib
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawrt.errors import HandshakeError, LimitExceeded, RemoteProtocolError
from rawrt.limits import MiB
from rawrt.sansio.ws.connection import BinaryMessage, Role, State, TextMessage, WebSocketConnection
from rawrt.sansio.ws.deflate import (
    CLIENT_DEFAULTS,
    DeflateOptions,
    DeflateParams,
    ExtensionParams,
    PerMessageDeflate,
    accept_client_response,
    client_offer,
    compress_message,
    negotiate_server,
)
from rawrt.sansio.ws.frames import RSV1, Opcode, encode_frame
from rawrt.sansio.ws.handshake import accept, build_request, check_response

KEY = bytes.fromhex("37fa213d")


def pair(**kwargs: object) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """A sender and a receiver agreeing on the same parameters."""
    return PerMessageDeflate(**kwargs), PerMessageDeflate(**kwargs)  # type: ignore[arg-type]


def params(text: str) -> ExtensionParams:
    """``"a; b=1"`` -> ``[("a", None), ("b", "1")]`` for compact test tables."""
    result: ExtensionParams = []
    for item in filter(None, (p.strip() for p in text.split(";"))):
        name, _, value = item.partition("=")
        result.append((name, value or None))
    return result


class TestExamples:
    """RFC 7692 §7.2.3: the spec's example payloads, byte for byte."""

    def test_hello(self) -> None:
        # §7.2.3.1: "Hello" compresses to f2 48 cd c9 c9 07 00 (the sync-flush tail removed).
        sender, receiver = pair()
        assert sender.compress(b"Hello", fin=True) == bytes.fromhex("f2 48 cd c9 c9 07 00")
        assert (
            receiver.decompress(bytes.fromhex("f2 48 cd c9 c9 07 00"), fin=True, max_length=100) == b"Hello"
        )

    def test_hello_fragmented(self) -> None:
        # §7.2.3.1: the same message in two frames, 41 03 f2 48 cd then 80 04 c9 c9 07 00.
        receiver = PerMessageDeflate()
        out = receiver.decompress(bytes.fromhex("f2 48 cd"), fin=False, max_length=100)
        out += receiver.decompress(bytes.fromhex("c9 c9 07 00"), fin=True, max_length=100)
        assert out == b"Hello"

    def test_context_takeover(self) -> None:
        # §7.2.3.2: the second "Hello" refers back to the first: f2 00 11 00 00.
        sender, receiver = pair()
        first = sender.compress(b"Hello", fin=True)
        second = sender.compress(b"Hello", fin=True)
        assert second == bytes.fromhex("f2 00 11 00 00")
        assert receiver.decompress(first, fin=True, max_length=5) == b"Hello"
        assert receiver.decompress(second, fin=True, max_length=5) == b"Hello"

    def test_no_context_takeover(self) -> None:
        sender, receiver = pair(local_no_context_takeover=True, remote_no_context_takeover=True)
        assert sender.compress(b"Hello", fin=True) == sender.compress(b"Hello", fin=True)
        for _ in range(2):
            assert (
                receiver.decompress(bytes.fromhex("f2 48 cd c9 c9 07 00"), fin=True, max_length=5) == b"Hello"
            )

    def test_stored_block(self) -> None:
        # §7.2.3.3: "Hello" in a stored (uncompressed) block: 00 05 00 fa ff 48 65 6c 6c 6f 00.
        data = bytes.fromhex("00 05 00 fa ff 48 65 6c 6c 6f 00")
        assert PerMessageDeflate().decompress(data, fin=True, max_length=5) == b"Hello"

    def test_bfinal_block(self) -> None:
        # §7.2.3.4: a final block (BFINAL=1) ends the deflate stream: f3 48 cd c9 c9 07 00 00.
        receiver = PerMessageDeflate()
        data = bytes.fromhex("f3 48 cd c9 c9 07 00 00")
        assert receiver.decompress(data, fin=True, max_length=5) == b"Hello"
        # The next message starts a new stream (the old one cannot take input any more).
        assert receiver.decompress(data, fin=True, max_length=5) == b"Hello"

    def test_data_after_bfinal(self) -> None:
        receiver = PerMessageDeflate()
        receiver.decompress(bytes.fromhex("f3 48 cd c9 c9 07 00"), fin=False, max_length=10)
        with pytest.raises(RemoteProtocolError, match="after the final deflate block"):
            receiver.decompress(b"\x00", fin=True, max_length=10)

    def test_two_blocks(self) -> None:
        # §7.2.3.5: two deflate blocks in one message.
        data = bytes.fromhex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")
        assert PerMessageDeflate().decompress(data, fin=True, max_length=5) == b"Hello"

    def test_empty_message(self) -> None:
        # §7.2.3.6: an empty message may be sent as a single 0x00 byte.
        sender, receiver = pair()
        assert sender.compress(b"", fin=True) == b"\x00"
        assert receiver.decompress(b"\x00", fin=True, max_length=0) == b""


class TestDecompressionBounds:
    """RFC 7692 §8.1: decompression is bounded as it inflates."""

    def test_invalid_data(self) -> None:
        with pytest.raises(RemoteProtocolError, match="invalid compressed data"):
            PerMessageDeflate().decompress(b"\xff\xff\xff", fin=True, max_length=100)

    @pytest.mark.parametrize("size", [100, 3000])  # both sides of the tail-concatenation shortcut
    def test_exact_limit(self, size: int) -> None:
        sender, receiver = pair()
        payload = bytes(range(256)) * (size // 256 + 1)
        data = sender.compress(payload[:size], fin=True)
        assert receiver.decompress(data, fin=True, max_length=size) == payload[:size]
        sender, receiver = pair()
        data = sender.compress(payload[:size], fin=True)
        with pytest.raises(LimitExceeded):
            receiver.decompress(data, fin=True, max_length=size - 1)

    @pytest.mark.parametrize("fin", [False, True])
    def test_incompressible_frame(self, fin: bool) -> None:
        # Over 2 KB compressed: the tail goes through a second, separately bounded decompress() call.
        payload = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(100))
        sender, receiver = pair()
        data = sender.compress(payload, fin=fin)
        assert len(data) > 2048
        assert receiver.decompress(data, fin=fin, max_length=len(payload)) == payload
        sender, receiver = pair()
        with pytest.raises(LimitExceeded):
            receiver.decompress(sender.compress(payload, fin=fin), fin=fin, max_length=len(payload) - 1)


@cache
def bomb() -> bytes:
    """100 MiB of zeros deflated to ~100 KB (level 9), without the sync-flush tail."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MiB)
    data = b"".join(compressor.compress(chunk) for _ in range(100))
    return (data + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


class TestDeflateBomb:
    """RFC 7692 §8.1: a small frame that inflates to 100 MiB closes with 1009 at the limit."""

    def test_bomb_closes_1009_with_bounded_memory(self) -> None:
        data = bomb()
        assert len(data) < 200_000
        frame = encode_frame(Opcode.BINARY, data, rsv=RSV1, mask_key=KEY)
        conn = WebSocketConnection(Role.SERVER, extension=PerMessageDeflate(), max_message_size=MiB)
        tracemalloc.start()
        try:
            conn.receive_data(frame)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert conn.state is State.CLOSED
        assert isinstance(conn.failure, LimitExceeded)
        close = conn.data_to_send()[0]
        assert (close[0], close[2:4]) == (0x88, b"\x03\xf1")  # close, 1009
        # The frame (~100 KB, copied for unmasking) plus at most limit + 1 inflated bytes, which zlib
        # holds twice for a moment (its growing output blocks, then the joined bytes): ~2.3 MiB, where
        # inflating first and measuring afterwards would have cost 100 MiB.
        assert peak < 2 * MiB + 4 * len(frame), peak

    def test_bomb_across_fragments(self) -> None:
        data = bomb()
        cut = len(data) // 2
        conn = WebSocketConnection(Role.SERVER, extension=PerMessageDeflate(), max_message_size=MiB)
        conn.receive_data(encode_frame(Opcode.BINARY, data[:cut], fin=False, rsv=RSV1, mask_key=KEY))
        assert conn.state is State.CLOSED
        assert isinstance(conn.failure, LimitExceeded)


def server_with_deflate(**kwargs: int) -> WebSocketConnection:
    return WebSocketConnection(Role.SERVER, extension=PerMessageDeflate(), **kwargs)  # type: ignore[arg-type]


class TestConnection:
    """RFC 7692 §6: RSV1 marks the first frame of a compressed message, and only that one."""

    def test_compressed_text_and_uncompressed_binary(self) -> None:
        conn = server_with_deflate()
        data = encode_frame(Opcode.TEXT, bytes.fromhex("f2 48 cd c9 c9 07 00"), rsv=RSV1, mask_key=KEY)
        data += encode_frame(Opcode.BINARY, b"raw", mask_key=KEY)
        conn.receive_data(data)
        assert conn.events_received() == [TextMessage("Hello"), BinaryMessage(b"raw")]

    def test_fragmented_compressed(self) -> None:
        conn = server_with_deflate()
        # §7.2.3.1: 41 = FIN 0, RSV1, text; 80 = FIN 1, continuation (no RSV1).
        conn.receive_data(
            encode_frame(Opcode.TEXT, bytes.fromhex("f2 48 cd"), fin=False, rsv=RSV1, mask_key=KEY)
        )
        conn.receive_data(encode_frame(Opcode.CONT, bytes.fromhex("c9 c9 07 00"), mask_key=KEY))
        assert conn.events_received() == [TextMessage("Hello")]

    def test_rsv1_on_continuation(self) -> None:
        conn = server_with_deflate()
        conn.receive_data(encode_frame(Opcode.TEXT, b"\xf2", fin=False, rsv=RSV1, mask_key=KEY))
        conn.receive_data(encode_frame(Opcode.CONT, b"\x00", rsv=RSV1, mask_key=KEY))
        assert str(conn.failure) == "RSV1 set on a continuation frame"
        assert conn.data_to_send()[0][2:4] == b"\x03\xea"  # 1002

    def test_invalid_utf8_after_inflating(self) -> None:
        sender = PerMessageDeflate()
        conn = server_with_deflate()
        conn.receive_data(
            encode_frame(Opcode.TEXT, sender.compress(b"\xff", fin=True), rsv=RSV1, mask_key=KEY)
        )
        assert conn.data_to_send()[0][2:4] == b"\x03\xef"  # 1007

    def test_sending_compressed(self) -> None:
        conn = server_with_deflate()
        conn.send_text("Hello")
        conn.send_fragment(b"Hel", text=False, fin=False)
        conn.send_fragment(b"lo", text=False, fin=True)
        out = conn.data_to_send()
        # c1 07: FIN, RSV1, text, 7 bytes (§7.2.3.1's frame), then a fragmented binary message whose
        # first frame (42 = RSV1, binary) alone has RSV1 and whose last frame (80) does not.
        assert out[0] == bytes.fromhex("c1 07 f2 48 cd c9 c9 07 00")
        assert (out[1][0], out[2][0]) == (0x42, 0x80)
        receiver = PerMessageDeflate(local_max_window_bits=12, remote_max_window_bits=15)
        receiver.decompress(out[0][2:], fin=True, max_length=100)
        assert (
            receiver.decompress(out[1][2:], fin=False, max_length=100)
            + receiver.decompress(out[2][2:], fin=True, max_length=100)
            == b"Hello"
        )

    def test_closed_connection_leaves_compressor_alone(self) -> None:
        conn = server_with_deflate()
        conn.send_close()
        with pytest.raises(Exception, match="connection closed"):
            conn.send_text("x")

    def test_compressed_message_limit(self) -> None:
        sender = PerMessageDeflate()
        conn = server_with_deflate(max_message_size=10)
        conn.receive_data(
            encode_frame(
                Opcode.BINARY, sender.compress(bytes(6), fin=False), fin=False, rsv=RSV1, mask_key=KEY
            )
        )
        conn.receive_data(
            encode_frame(Opcode.CONT, sender.compress(bytes(4), fin=False), fin=False, mask_key=KEY)
        )
        assert conn.state is State.OPEN
        conn.receive_data(encode_frame(Opcode.CONT, sender.compress(bytes(1), fin=True), mask_key=KEY))
        assert isinstance(conn.failure, LimitExceeded)


class TestSharedCompression:
    """One compressed message for many connections (``compress_message``, used by broadcasts)."""

    def test_fresh_compressor_output_inflates_on_any_receiver(self) -> None:
        sender = PerMessageDeflate(local_max_window_bits=12)
        assert sender.share_key == (12, sender.level, sender.mem_level)
        message = b"Hello, Hello, Hello"
        shared = compress_message(message, sender.share_key)
        # RFC 7692 §7.1.1.1: a receiver that keeps its window (context takeover) inflates it too, after
        # other messages.
        receiver = PerMessageDeflate(remote_max_window_bits=12)
        first = sender.compress(b"earlier", fin=True)
        assert receiver.decompress(first, fin=True, max_length=100) == b"earlier"
        assert receiver.decompress(shared, fin=True, max_length=100) == message

    def test_forget_context_starts_from_an_empty_window(self) -> None:
        sender = PerMessageDeflate()
        sender.compress(b"Hello", fin=True)
        context = sender.compress(b"Hello", fin=True)  # refers back to the first message
        sender.forget_context()
        fresh = sender.compress(b"Hello", fin=True)
        assert fresh == compress_message(b"Hello", sender.share_key) != context


# --- Negotiation -------------------------------------------------------------------------------------------


class TestServerNegotiation:
    """RFC 7692 §7.1: the server picks the first acceptable offer."""

    @pytest.mark.parametrize(
        ("offer", "options", "response"),
        [
            ("", DeflateOptions(server_max_window_bits=None, client_max_window_bits=None), ""),
            ("", DeflateOptions(), "server_max_window_bits=12"),
            (
                "client_max_window_bits",
                DeflateOptions(),
                "server_max_window_bits=12; client_max_window_bits=12",
            ),
            (
                "client_max_window_bits",
                DeflateOptions(client_max_window_bits=None),
                "server_max_window_bits=12",
            ),
            (
                "client_max_window_bits=10",
                DeflateOptions(),
                "server_max_window_bits=12; client_max_window_bits=10",
            ),
            (
                "client_max_window_bits=14",
                DeflateOptions(client_max_window_bits=None),
                "server_max_window_bits=12; client_max_window_bits=14",
            ),
            ("server_max_window_bits=10", DeflateOptions(), "server_max_window_bits=10"),
            ("server_max_window_bits=15", DeflateOptions(), "server_max_window_bits=12"),
            (
                "server_max_window_bits=9",
                DeflateOptions(server_max_window_bits=None),
                "server_max_window_bits=9",
            ),
            (
                "server_no_context_takeover; client_no_context_takeover",
                DeflateOptions(),
                "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
            ),
            (
                "",
                DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
                "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
            ),
        ],
    )
    def test_response(self, offer: str, options: DeflateOptions, response: str) -> None:
        result = negotiate_server([params(offer)], options)
        assert result is not None
        assert result[0] == params(response)

    def test_extension_matches_response(self) -> None:
        result = negotiate_server([params("server_no_context_takeover; client_max_window_bits=10")])
        assert result is not None
        ext = result[1]
        assert (ext.local_no_context_takeover, ext.remote_no_context_takeover) == (True, False)
        assert (ext.local_max_window_bits, ext.remote_max_window_bits) == (12, 10)
        assert repr(ext).startswith("PerMessageDeflate(local_no_context_takeover=True")

    @pytest.mark.parametrize(
        "bad",
        [
            "server_max_window_bits=8",  # zlib cannot compress with 8
            "server_max_window_bits",
            "server_max_window_bits=16",
            "server_max_window_bits=010",
            "client_max_window_bits=7",
            "client_max_window_bits=x",
            "server_no_context_takeover=1",
            "client_no_context_takeover; client_no_context_takeover",
            "unknown_parameter",
        ],
    )
    def test_bad_offer_declined_next_one_used(self, bad: str) -> None:
        assert negotiate_server([params(bad)]) is None
        result = negotiate_server([params(bad), params("client_no_context_takeover")])
        assert result is not None
        assert ("client_no_context_takeover", None) in result[0]

    def test_disabled(self) -> None:
        assert negotiate_server([params("")], DeflateOptions(enabled=False)) is None

    @pytest.mark.parametrize(
        "kwargs",
        [{"server_max_window_bits": 8}, {"client_max_window_bits": 16}, {"mem_level": 0}, {"mem_level": 10}],
    )
    def test_invalid_options(self, kwargs: dict[str, int]) -> None:
        with pytest.raises(ValueError):
            DeflateOptions(**kwargs)  # type: ignore[arg-type]

    def test_invalid_windows(self) -> None:
        with pytest.raises(ValueError, match="cannot compress"):
            PerMessageDeflate(local_max_window_bits=8)
        with pytest.raises(ValueError, match="decompression window"):
            PerMessageDeflate(remote_max_window_bits=16)


class TestClientNegotiation:
    """RFC 7692 §7.1: the client offers, then checks the response strictly."""

    def test_default_offer(self) -> None:
        assert client_offer() == params("client_max_window_bits")
        options = DeflateOptions(
            server_no_context_takeover=True, server_max_window_bits=10, client_max_window_bits=11
        )
        assert client_offer(options) == params(
            "server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11"
        )

    @pytest.mark.parametrize(
        ("response", "local_bits", "remote_bits", "local_nct"),
        [
            ("", 15, 15, False),
            ("client_max_window_bits=9; server_max_window_bits=10", 9, 10, False),
            ("client_no_context_takeover; server_no_context_takeover", 15, 15, True),
        ],
    )
    def test_accepted(self, response: str, local_bits: int, remote_bits: int, local_nct: bool) -> None:
        ext = accept_client_response(params(response))
        assert (ext.local_max_window_bits, ext.remote_max_window_bits) == (local_bits, remote_bits)
        assert ext.local_no_context_takeover is local_nct

    @pytest.mark.parametrize(
        ("response", "options", "message"),
        [
            ("client_max_window_bits", CLIENT_DEFAULTS, "client_max_window_bits=None, expected 8-15"),
            ("client_max_window_bits=8", CLIENT_DEFAULTS, "not supported by zlib"),
            ("x=1", CLIENT_DEFAULTS, "unknown parameter"),
            ("", DeflateOptions(server_no_context_takeover=True), "not granted"),
            ("", DeflateOptions(server_max_window_bits=10), "server_max_window_bits=None"),
            ("server_max_window_bits=11", DeflateOptions(server_max_window_bits=10), "at most 10"),
            (
                "client_max_window_bits=12",
                DeflateOptions(server_max_window_bits=None, client_max_window_bits=11),
                "offered at most 11",
            ),
        ],
    )
    def test_refused(self, response: str, options: DeflateOptions, message: str) -> None:
        with pytest.raises(HandshakeError, match=message):
            accept_client_response(params(response), options)

    def test_params_round_trip(self) -> None:
        value = DeflateParams(True, True, 10, True)
        assert DeflateParams.parse(value.to_params(), offer=True) == value


# --- Properties ------------------------------------------------------------------------------------------

WINDOWS = st.integers(9, 15)


class TestRoundTrip:
    """RFC 7692 §7.2: compress then decompress is the identity, any fragmentation, any window."""

    @settings(max_examples=120, deadline=None)
    @given(
        messages=st.lists(
            st.tuples(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=3)), max_size=4
        ),
        bits=WINDOWS,
        no_context_takeover=st.booleans(),
    )
    def test_identity(
        self, messages: list[tuple[bytes, list[int]]], bits: int, no_context_takeover: bool
    ) -> None:
        sender, receiver = pair(
            local_no_context_takeover=no_context_takeover,
            remote_no_context_takeover=no_context_takeover,
            local_max_window_bits=bits,
            remote_max_window_bits=bits,
        )
        for message, cuts in messages:
            bounds = [0, *sorted(c % (len(message) + 1) for c in cuts), len(message)]
            pieces = [message[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
            out = b""
            for i, piece in enumerate(pieces):
                fin = i == len(pieces) - 1
                out += receiver.decompress(
                    sender.compress(piece, fin=fin), fin=fin, max_length=len(message) - len(out)
                )
            assert out == message

    @settings(max_examples=40, deadline=None)
    @given(texts=st.lists(st.text(max_size=500), max_size=4), bits=WINDOWS, nct=st.booleans())
    def test_through_connections(self, texts: list[str], bits: int, nct: bool) -> None:
        options = DeflateOptions(
            server_max_window_bits=bits, client_max_window_bits=bits, client_no_context_takeover=nct
        )
        request = build_request("h", nonce=lambda: bytes(16), deflate=options)
        answer = accept(b"GET", b"1.1", request.headers, deflate=options)
        result = check_response(request, 101, answer.headers)
        client = WebSocketConnection(Role.CLIENT, mask_key=lambda: KEY, extension=result.extension)
        server = WebSocketConnection(Role.SERVER, extension=answer.extension)
        for text in texts:
            client.send_text(text)
            server.send_text(text)
        for data in client.data_to_send():
            server.receive_data(data)
        for data in server.data_to_send():
            client.receive_data(data)
        assert server.events_received() == client.events_received() == [TextMessage(t) for t in texts]


class TestInterop:
    """RFC 7692 against the websockets library's implementation, both directions."""

    def test_websockets_client_to_rawrt_server(self) -> None:
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        from websockets.frames import Frame as WsFrame
        from websockets.frames import Opcode as WsOpcode
        from websockets.uri import parse_uri

        theirs = ClientProtocol(
            parse_uri("ws://h/"), extensions=[ClientPerMessageDeflateFactory(client_max_window_bits=True)]
        )
        request = theirs.connect()
        theirs.send_request(request)
        headers = [(k.encode(), v.encode()) for k, v in request.headers.raw_items()]
        answer = accept(b"GET", b"1.1", headers)
        head = b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(
            k + b": " + v + b"\r\n" for k, v in answer.headers
        )
        theirs.data_to_send()
        theirs.receive_data(head + b"\r\n")
        theirs.events_received()
        assert [e.name for e in theirs.extensions] == ["permessage-deflate"]
        ours = WebSocketConnection(Role.SERVER, extension=answer.extension)
        messages = ["Hello", "Hello", "é" * 1000, ""]
        for text in messages:
            theirs.send_text(text.encode())
        theirs.send_binary(b"part1", fin=False)
        theirs.send_continuation(b"part2", fin=True)
        for data in theirs.data_to_send():
            ours.receive_data(data)
        assert ours.events_received() == [*(TextMessage(t) for t in messages), BinaryMessage(b"part1part2")]
        for text in messages:
            ours.send_text(text)
        for data in ours.data_to_send():
            theirs.receive_data(data)
        received = theirs.events_received()
        assert all(isinstance(f, WsFrame) and f.opcode is WsOpcode.TEXT for f in received)
        assert [bytes(f.data).decode() for f in received if isinstance(f, WsFrame)] == messages
