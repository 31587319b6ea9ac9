"""Tests for rawrt.sansio.ws.connection: the RFC 6455 connection state machine, bytes in and events out."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawrt.errors import ConnectionClosed, LimitExceeded, LocalProtocolError, ProtocolError
from rawrt.limits import Limits
from rawrt.sansio.ws.connection import (
    TRANSITIONS,
    BinaryMessage,
    CloseReceived,
    Event,
    Input,
    Ping,
    Pong,
    Role,
    State,
    TextMessage,
    WebSocketConnection,
    state_diagram,
)
from rawrt.sansio.ws.frames import RSV1, Opcode, encode_close, encode_frame

KEY = bytes.fromhex("37fa213d")  # RFC 6455 §5.7's mask key, pinned for every client frame


def pinned_key() -> bytes:
    return KEY


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as a client sends it: masked with the pinned key."""
    return encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=KEY)


def server_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as a server sends it: unmasked."""
    return encode_frame(opcode, payload, fin=fin, rsv=rsv)


def close_frame(code: int, reason: str = "", *, masked: bool = True) -> bytes:
    return (client_frame if masked else server_frame)(Opcode.CLOSE, encode_close(code, reason))


def server(**kwargs: int) -> WebSocketConnection:
    return WebSocketConnection(Role.SERVER, **kwargs)  # type: ignore[arg-type]


def client(**kwargs: int) -> WebSocketConnection:
    return WebSocketConnection(Role.CLIENT, mask_key=pinned_key, **kwargs)  # type: ignore[arg-type]


def feed(conn: WebSocketConnection, data: bytes, bytewise: bool) -> list[Event]:
    """Feed ``data`` whole, or one byte at a time, and return the events."""
    if bytewise:
        for i in range(len(data)):
            conn.receive_data(data[i : i + 1])
    else:
        conn.receive_data(data)
    return conn.events_received()


BYTEWISE = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])


def assert_failed(conn: WebSocketConnection, code: int, *, reason: str | None = None) -> None:
    """The connection failed with ``code``: a close frame with it went out, then (server) EOF."""
    assert conn.state is State.CLOSED
    out = conn.data_to_send()
    expected_reason = reason if reason is not None else str(conn.failure)[:123]
    frame = encode_frame(Opcode.CLOSE, encode_close(code, expected_reason))
    assert out == [frame, b""]
    assert conn.close_sent == (code, expected_reason)


class TestDataFrames:
    """RFC 6455 §5.6: whole text and binary messages."""

    @BYTEWISE
    def test_text(self, bytewise: bool) -> None:
        conn = server()
        # 81 85 37fa213d 7f9f4d5158: FIN, text, masked, length 5: §5.7 "Hello".
        assert feed(conn, bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), bytewise) == [
            TextMessage("Hello")
        ]

    @BYTEWISE
    def test_binary_and_empty(self, bytewise: bool) -> None:
        conn = server()
        data = (
            client_frame(Opcode.BINARY, b"\x00\xff") + client_frame(Opcode.TEXT) + client_frame(Opcode.BINARY)
        )
        assert feed(conn, data, bytewise) == [BinaryMessage(b"\x00\xff"), TextMessage(""), BinaryMessage(b"")]

    @BYTEWISE
    def test_several_in_one_chunk_and_split(self, bytewise: bool) -> None:
        conn = server()
        data = client_frame(Opcode.TEXT, "é".encode() * 100) * 3
        assert feed(conn, data[:150], bytewise) == []
        assert feed(conn, data[150:], bytewise) == [TextMessage("é" * 100)] * 3

    def test_send_text_and_binary(self) -> None:
        conn = server()
        conn.send_text("Hello")
        conn.send_binary(bytes(256))
        # 81 05: FIN, text, unmasked, 5 bytes; 82 7E 0100: FIN, binary, 16-bit length 256.
        assert conn.data_to_send() == [
            bytes.fromhex("81 05 48 65 6c 6c 6f"),
            bytes.fromhex("82 7E 0100") + bytes(256),
        ]

    def test_client_masks_with_the_given_key(self) -> None:
        conn = client()
        conn.send_text("Hello")
        # §5.7: 81 85 = FIN, text, MASK, 5 bytes; then the key and the masked payload.
        assert conn.data_to_send() == [bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58")]

    def test_client_sends_binary_masked(self) -> None:
        conn = client()
        conn.send_binary(b"Hello")
        # 82 85: FIN, binary, MASK, 5 bytes; the payload is masked as in §5.7.
        assert conn.data_to_send() == [bytes.fromhex("82 85 37 fa 21 3d 7f 9f 4d 51 58")]
        conn.send_fragment(b"a", text=False, fin=False)
        with pytest.raises(LocalProtocolError, match="in progress"):
            conn.send_binary(b"interleaved")

    def test_client_receives_unmasked(self) -> None:
        conn = client()
        assert feed(conn, bytes.fromhex("81 05 48 65 6c 6c 6f"), False) == [TextMessage("Hello")]

    def test_invalid_utf8(self) -> None:
        conn = server()
        conn.receive_data(client_frame(Opcode.TEXT, b"ok\xff"))
        assert conn.events_received() == []
        assert isinstance(conn.failure, ProtocolError)
        assert "invalid UTF-8" in str(conn.failure)
        assert_failed(conn, 1007)


class TestFragmentation:
    """RFC 6455 §5.4: fragmented messages, with control frames in between."""

    @BYTEWISE
    def test_fragmented_text_with_ping(self, bytewise: bool) -> None:
        conn = server()
        data = (
            client_frame(Opcode.TEXT, b"Hel", fin=False)
            + client_frame(Opcode.PING, b"p")
            + client_frame(Opcode.CONT, b"l", fin=False)
            + client_frame(Opcode.CONT, b"o")
        )
        assert feed(conn, data, bytewise) == [Ping(b"p"), TextMessage("Hello")]
        assert conn.data_to_send() == [server_frame(Opcode.PONG, b"p")]

    @BYTEWISE
    def test_fragmented_binary(self, bytewise: bool) -> None:
        conn = server()
        data = client_frame(Opcode.BINARY, b"\x01", fin=False) + client_frame(Opcode.CONT, b"\x02")
        assert feed(conn, data, bytewise) == [BinaryMessage(b"\x01\x02")]

    @BYTEWISE
    def test_utf8_split_inside_a_character(self, bytewise: bool) -> None:
        conn = server()
        euro = "€".encode()  # e2 82 ac
        data = client_frame(Opcode.TEXT, euro[:1], fin=False) + client_frame(Opcode.CONT, euro[1:])
        assert feed(conn, data, bytewise) == [TextMessage("€")]

    def test_invalid_utf8_fails_fast(self) -> None:
        # Autobahn 6.4.x: the first fragment already cannot be UTF-8, fail before the message ends.
        conn = server()
        conn.receive_data(client_frame(Opcode.TEXT, b"\xce\xba\xed\xa0\x80", fin=False))
        assert conn.state is State.CLOSED
        assert_failed(conn, 1007)

    def test_truncated_utf8_at_end(self) -> None:
        conn = server()
        conn.receive_data(client_frame(Opcode.TEXT, b"\xe2\x82", fin=False))
        assert conn.state is State.OPEN
        conn.receive_data(client_frame(Opcode.CONT, b""))
        assert_failed(conn, 1007)

    def test_continuation_without_start(self) -> None:
        conn = server()
        conn.receive_data(client_frame(Opcode.CONT, b"x"))
        assert str(conn.failure) == "continuation frame without a message to continue"
        assert_failed(conn, 1002)

    @pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
    def test_new_message_while_fragmented(self, opcode: Opcode) -> None:
        conn = server()
        conn.receive_data(client_frame(Opcode.TEXT, b"a", fin=False) + client_frame(opcode, b"b"))
        assert str(conn.failure) == "new data frame while a fragmented message is in progress"
        assert_failed(conn, 1002)

    def test_send_fragments(self) -> None:
        conn = server()
        conn.send_fragment("Hel", text=True, fin=False)
        conn.send_ping(b"x")
        with pytest.raises(LocalProtocolError, match="in progress"):
            conn.send_text("interleaved")
        with pytest.raises(LocalProtocolError, match="type differs"):
            conn.send_fragment(b"x", text=False, fin=True)
        conn.send_fragment(b"lo", text=True, fin=True)
        conn.send_binary(b"next")
        assert conn.data_to_send() == [
            bytes.fromhex("01 03 48 65 6c"),  # FIN 0, text, 3 bytes: §5.7 "Hel"
            server_frame(Opcode.PING, b"x"),
            bytes.fromhex("80 02 6c 6f"),  # FIN 1, continuation, 2 bytes: "lo"
            server_frame(Opcode.BINARY, b"next"),
        ]


class TestLimits:
    """RFC 6455 §10.4: frame and message size limits, checked before buffering (close 1009)."""

    def test_frame_too_big_from_header_alone(self) -> None:
        conn = server(max_frame_size=1000)
        # 82 FF: FIN, binary, masked, 64-bit length 2**62; no payload follows.
        conn.receive_data(bytes.fromhex("82 FF 4000000000000000") + KEY)
        assert isinstance(conn.failure, LimitExceeded)
        assert_failed(conn, 1009)

    def test_limits_from_limits_object(self) -> None:
        conn = WebSocketConnection(Role.SERVER, limits=Limits(ws_max_message_size=10, ws_max_frame_size=20))
        assert (conn.max_message_size, conn.max_frame_size) == (10, 20)
        conn.receive_data(client_frame(Opcode.BINARY, bytes(11))[:8])  # header only
        assert_failed(conn, 1009)

    def test_message_too_big_across_fragments(self) -> None:
        conn = server(max_message_size=10)
        conn.receive_data(client_frame(Opcode.BINARY, bytes(6), fin=False))
        assert conn.state is State.OPEN
        conn.receive_data(client_frame(Opcode.CONT, bytes(4), fin=False))
        assert conn.state is State.OPEN
        # 1 more byte than the limit: refused from the header of the third fragment.
        conn.receive_data(client_frame(Opcode.CONT, bytes(1))[:6])
        assert_failed(conn, 1009, reason="frame of 1 bytes, message limit leaves 0")

    def test_budget_resets_after_a_message(self) -> None:
        conn = server(max_message_size=10)
        conn.receive_data(
            client_frame(Opcode.BINARY, bytes(6), fin=False) + client_frame(Opcode.CONT, bytes(4))
        )
        conn.receive_data(client_frame(Opcode.BINARY, bytes(10)))
        assert conn.events_received() == [BinaryMessage(bytes(10))] * 2


class TestPingPong:
    """RFC 6455 §5.5.2 and §5.5.3: pings are answered with identical pongs."""

    @BYTEWISE
    def test_ping_answered(self, bytewise: bool) -> None:
        conn = server()
        # 89 85 ...: FIN, ping, masked, 5 bytes "Hello".
        events = feed(conn, client_frame(Opcode.PING, b"Hello"), bytewise)
        assert events == [Ping(b"Hello")]
        # 8a 05: FIN, pong, unmasked, 5 bytes: the §5.7 pong, identical payload.
        assert conn.data_to_send() == [bytes.fromhex("8a 05 48 65 6c 6c 6f")]
        assert events[0].response() == Pong(b"Hello")  # type: ignore[union-attr]

    def test_pong_event(self) -> None:
        conn = server()
        assert feed(conn, client_frame(Opcode.PONG, b"hb"), False) == [Pong(b"hb")]
        assert conn.data_to_send() == []

    def test_send_ping_pong(self) -> None:
        conn = client()
        conn.send_ping(b"1")
        conn.send_pong()
        assert conn.data_to_send() == [client_frame(Opcode.PING, b"1"), client_frame(Opcode.PONG)]
        with pytest.raises(LocalProtocolError, match="at most 125"):
            conn.send_ping(bytes(126))

    def test_rsv1_on_control_frame_with_extension(self) -> None:
        from rawrt.sansio.ws.deflate import PerMessageDeflate

        conn = WebSocketConnection(Role.SERVER, extension=PerMessageDeflate())
        conn.receive_data(client_frame(Opcode.PING, rsv=RSV1))
        assert_failed(conn, 1002, reason="RSV1 set on a control frame")


class TestClosing:
    """RFC 6455 §5.5.1 and §7.1: the closing handshake; the server closes TCP first."""

    @BYTEWISE
    def test_server_echoes_and_closes_tcp(self, bytewise: bool) -> None:
        conn = server()
        events = feed(conn, close_frame(1001, "bye") + client_frame(Opcode.TEXT, b"late"), bytewise)
        assert events == [CloseReceived(1001, "bye")]
        assert conn.data_to_send() == [server_frame(Opcode.CLOSE, b"\x03\xe9"), b""]
        assert conn.state is State.CLOSED
        assert (conn.close_code, conn.close_reason, conn.close_sent) == (1001, "bye", (1001, ""))
        conn.receive_data(client_frame(Opcode.TEXT, b"discarded"))
        conn.receive_eof()
        assert conn.events_received() == [] and conn.data_to_send() == []

    def test_empty_close_echoed_empty(self) -> None:
        conn = server()
        assert feed(conn, client_frame(Opcode.CLOSE), False) == [CloseReceived(1005, "")]
        # 88 00: FIN, close, no payload: 1005 is never put on the wire.
        assert conn.data_to_send() == [bytes.fromhex("88 00"), b""]

    def test_client_echoes_and_waits_for_server_eof(self) -> None:
        conn = client()
        assert feed(conn, close_frame(1000, masked=False), False) == [CloseReceived(1000, "")]
        assert conn.data_to_send() == [close_frame(1000)]
        assert conn.state is State.CLOSED
        conn.receive_eof()
        assert conn.data_to_send() == [b""]

    def test_server_initiates(self) -> None:
        conn = server()
        conn.send_close(1000, "done")
        assert conn.state is State.CLOSING
        assert conn.data_to_send() == [close_frame(1000, "done", masked=False)]
        with pytest.raises(ConnectionClosed):
            conn.send_text("no more data")
        with pytest.raises(ConnectionClosed):
            conn.send_close()
        # §5.5.1: the peer's messages still arrive, and its pings are still answered.
        assert feed(conn, client_frame(Opcode.TEXT, b"in flight") + client_frame(Opcode.PING), False) == [
            TextMessage("in flight"),
            Ping(b""),
        ]
        assert conn.data_to_send() == [server_frame(Opcode.PONG)]
        assert feed(conn, close_frame(1000), False) == [CloseReceived(1000, "")]
        assert conn.data_to_send() == [b""]  # no second close frame; TCP closed first
        assert state_of(conn) is State.CLOSED
        with pytest.raises(ConnectionClosed) as info:
            conn.send_ping()
        assert info.value.code == 1000

    def test_client_initiates(self) -> None:
        conn = client()
        conn.send_close()
        assert conn.data_to_send() == [close_frame(1000)]
        feed(conn, close_frame(1000, masked=False), False)
        assert conn.data_to_send() == []
        conn.receive_eof()
        assert conn.data_to_send() == [b""]

    @pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
    def test_invalid_code_received(self, code: int) -> None:
        conn = server()
        conn.receive_data(client_frame(Opcode.CLOSE, code.to_bytes(2, "big")))
        assert_failed(conn, 1002, reason=f"invalid close code {code}")

    def test_one_byte_close(self) -> None:
        conn = server()
        conn.receive_data(client_frame(Opcode.CLOSE, b"\x03"))
        assert_failed(conn, 1002)

    def test_reason_not_utf8(self) -> None:
        conn = server()
        conn.receive_data(client_frame(Opcode.CLOSE, b"\x03\xe8\xff"))
        assert_failed(conn, 1007)

    def test_eof_without_close(self) -> None:
        conn = server()
        conn.receive_data(client_frame(Opcode.TEXT, b"partial")[:5])
        conn.receive_eof()
        assert conn.state is State.CLOSED
        assert (conn.close_code, conn.close_reason) == (1006, "")
        assert conn.data_to_send() == [b""]
        conn.receive_eof()
        assert conn.data_to_send() == []

    def test_send_close_validates_first(self) -> None:
        conn = server()
        with pytest.raises(LocalProtocolError):
            conn.send_close(1006)
        assert conn.state is State.OPEN
        conn.send_close(1005)
        assert conn.data_to_send() == [bytes.fromhex("88 00")]


class TestFailing:
    """RFC 6455 §7.1.7: failing the connection, and the one error-to-close-code mapping."""

    def test_app_fail(self) -> None:
        conn = server()
        conn.fail(1008, "policy")
        assert_failed(conn, 1008, reason="policy")
        conn.fail(1000)  # no-op once closed
        assert conn.data_to_send() == []

    def test_fail_1005_with_a_reason_is_refused_before_anything_changes(self) -> None:
        # Found by fuzz/fuzz_ws_connection.py: the code was checked without the reason, and the close frame
        # refused after the transition, leaving a CLOSED connection that still parsed frames (RFC 6455
        # §7.1.7: after failing, "MUST NOT continue to attempt to process data").
        conn = server()
        with pytest.raises(LocalProtocolError, match="reason needs a close code"):
            conn.fail(1005, "app")
        assert conn.state is State.OPEN and conn.data_to_send() == []
        assert feed(conn, client_frame(Opcode.TEXT, b"still open"), False) == [TextMessage("still open")]
        conn.fail(1005)  # no reason: an empty close frame, then TCP closed
        assert conn.data_to_send() == [encode_frame(Opcode.CLOSE, b""), b""]
        assert feed(conn, client_frame(Opcode.PONG, b"x"), False) == []  # discarded

    def test_fail_1006_sends_no_close_frame(self) -> None:
        conn = server()
        conn.fail(1006)
        assert conn.data_to_send() == [b""]
        assert conn.close_sent is None

    def test_fail_invalid_code(self) -> None:
        with pytest.raises(LocalProtocolError):
            server().fail(1015)

    def test_client_fail_waits_for_server(self) -> None:
        conn = client()
        conn.fail(1011)
        assert conn.data_to_send() == [close_frame(1011)]

    def test_fail_while_closing_sends_no_second_close(self) -> None:
        conn = server()
        conn.send_close()
        conn.data_to_send()
        conn.receive_data(client_frame(Opcode.CONT, b"x"))
        assert conn.data_to_send() == [b""]
        assert conn.close_sent == (1000, "")

    def test_bug_becomes_1011_without_details(self, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = server()

        def broken(*args: object) -> None:
            raise ZeroDivisionError("internal detail")

        monkeypatch.setattr(conn, "_receive_control", broken)
        conn.receive_data(client_frame(Opcode.PING))
        assert isinstance(conn.failure, ZeroDivisionError)
        assert_failed(conn, 1011, reason="")

    def test_long_reason_truncated_on_a_character(self) -> None:
        conn = server()
        conn.fail(1008, "é" * 100)
        assert_failed(conn, 1008, reason="é" * 61)


class TestConstruction:
    """RFC 6455 §5.3: the client's masking key source is mandatory and checked."""

    def test_client_needs_mask_key(self) -> None:
        with pytest.raises(ValueError, match="mask_key"):
            WebSocketConnection(Role.CLIENT)

    def test_bad_mask_key(self) -> None:
        conn = WebSocketConnection(Role.CLIENT, mask_key=lambda: b"abc")
        with pytest.raises(LocalProtocolError, match="3 bytes"):
            conn.send_text("x")

    def test_send_encoded(self) -> None:
        frame = encode_frame(Opcode.TEXT, b"broadcast")
        conns = [server(), server()]
        for conn in conns:
            conn.send_encoded(frame)
            assert conn.data_to_send() == [frame]
        with pytest.raises(LocalProtocolError, match="fresh key"):
            client().send_encoded(frame)
        conns[0].send_fragment("x", text=True, fin=False)
        with pytest.raises(LocalProtocolError):
            conns[0].send_encoded(frame)

    def test_state_diagram(self) -> None:
        diagram = state_diagram()
        assert diagram.startswith("stateDiagram-v2")
        assert "OPEN --> CLOSING: SEND_CLOSE" in diagram
        assert diagram.count("-->") == len(TRANSITIONS) + 2


# --- Properties ------------------------------------------------------------------------------------------

MESSAGES = st.lists(
    st.one_of(
        st.text(max_size=300).map(lambda t: client_frame(Opcode.TEXT, t.encode())),
        st.binary(max_size=300).map(lambda b: client_frame(Opcode.BINARY, b)),
        st.binary(max_size=125).map(lambda b: client_frame(Opcode.PING, b)),
        st.binary(max_size=125).map(lambda b: client_frame(Opcode.PONG, b)),
        st.text(max_size=200).map(
            lambda t: (
                client_frame(Opcode.TEXT, t.encode()[:100], fin=False)
                + client_frame(Opcode.PING, b"i")
                + client_frame(Opcode.CONT, t.encode()[100:])
            )
        ),
    ),
    max_size=8,
)


class TestProperties:
    """RFC 6455 §5: properties over generated streams (STYLE §8 (b), (f), (g))."""

    @settings(max_examples=100, deadline=None)
    @given(frames=MESSAGES, cuts=st.lists(st.integers(0, 5000), max_size=10))
    def test_cutting_the_stream_anywhere(self, frames: list[bytes], cuts: list[int]) -> None:
        stream = b"".join(frames) + close_frame(1000)
        whole = server()
        whole.receive_data(stream)
        pieces = server()
        bounds = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
        for start, end in zip(bounds, bounds[1:], strict=False):
            pieces.receive_data(stream[start:end])
        assert whole.failure is None
        assert pieces.events_received() == whole.events_received()
        assert pieces.data_to_send() == whole.data_to_send()

    @settings(max_examples=300, deadline=None)
    @given(data=st.binary(max_size=300), cut=st.integers(0, 300))
    def test_arbitrary_bytes(self, data: bytes, cut: int) -> None:
        conn = server(max_message_size=1000, max_frame_size=500)
        conn.receive_data(data[:cut])
        conn.receive_data(data[cut:])
        conn.receive_eof()
        events = conn.events_received()
        assert all(isinstance(e, TextMessage | BinaryMessage | Ping | Pong | CloseReceived) for e in events)
        # Only peer errors, never a bug.
        assert conn.failure is None or isinstance(conn.failure, ProtocolError)
        assert conn.state is State.CLOSED
        assert conn.data_to_send()[-1] == b""


# The inputs a test can produce, each as (Input, action on a server connection).
Action = Callable[[WebSocketConnection], None]
ACTIONS: dict[str, tuple[Input, Action]] = {
    "recv_text": (Input.RECV_FRAME, lambda c: c.receive_data(client_frame(Opcode.TEXT, b"t"))),
    "recv_ping": (Input.RECV_FRAME, lambda c: c.receive_data(client_frame(Opcode.PING))),
    "recv_close": (Input.RECV_CLOSE, lambda c: c.receive_data(close_frame(1000))),
    "recv_bad": (Input.FAIL, lambda c: c.receive_data(client_frame(3))),
    "recv_eof": (Input.RECV_EOF, lambda c: c.receive_eof()),
    "send_text": (Input.SEND_DATA, lambda c: c.send_text("x")),
    "send_fragment": (Input.SEND_DATA, lambda c: c.send_fragment(b"x", text=False, fin=True)),
    "send_ping": (Input.SEND_CONTROL, lambda c: c.send_ping()),
    "send_close": (Input.SEND_CLOSE, lambda c: c.send_close()),
    "fail": (Input.FAIL, lambda c: c.fail(1008)),
}


def receiver(data: bytes) -> Action:
    return lambda conn: conn.receive_data(data)


def state_of(conn: WebSocketConnection) -> State:
    """Read the state without letting mypy narrow it across calls that change it."""
    return conn.state


class TestStateMachine:
    """RFC 6455 §7: every (state, input) is in TRANSITIONS, or raises without changing the state."""

    @settings(max_examples=300, deadline=None)
    @given(names=st.lists(st.sampled_from(sorted(ACTIONS)), max_size=8), role=st.sampled_from(list(Role)))
    def test_sequences(self, names: list[str], role: Role) -> None:
        conn = WebSocketConnection(role, mask_key=pinned_key)
        mask = role is Role.SERVER
        for name in names:
            event, action = ACTIONS[name]
            if not mask and event in (Input.RECV_FRAME, Input.RECV_CLOSE):
                # A client receives unmasked frames: re-encode the same action's frame.
                frame = {"recv_text": server_frame(Opcode.TEXT, b"t"), "recv_ping": server_frame(Opcode.PING)}
                action = receiver(frame.get(name, close_frame(1000, masked=False)))
            before = conn.state
            expected = TRANSITIONS.get((before, event))
            if before is State.CLOSED and event in (Input.RECV_FRAME, Input.RECV_CLOSE):
                expected = State.CLOSED  # the discarder: received frames are not inputs any more
            try:
                action(conn)
            except ConnectionClosed:
                # Only local inputs may be refused, and they change nothing.
                assert expected is None
                assert event.name.startswith("SEND_")
                assert conn.state is before
            else:
                assert expected is not None, (before, event)
                assert conn.state is expected
            if conn.state is State.CLOSED and role is Role.SERVER:
                assert b"" in conn.data_to_send() or conn._eof_sent


class TestLayering:
    """STYLE §1: the WebSocket sans-IO modules do no I/O and use no global randomness or clock."""

    FORBIDDEN = {"asyncio", "socket", "selectors", "ssl", "time", "random", "secrets", "threading", "os"}

    @pytest.mark.parametrize("module", ["frames", "connection", "handshake", "deflate"])
    def test_imports(self, module: str) -> None:
        import ast
        from pathlib import Path

        import rawrt.sansio

        source = (Path(rawrt.sansio.__file__).parent / "ws" / f"{module}.py").read_text()
        imported: set[str] = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        assert imported & self.FORBIDDEN == set()
        assert imported <= {
            "__future__",
            "rawrt",
            "struct",
            "dataclasses",
            "enum",
            "codecs",
            "collections",
            "zlib",
        } | {
            "base64",
            "binascii",
            "hashlib",
            "re",
        }
