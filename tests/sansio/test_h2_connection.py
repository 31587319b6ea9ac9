"""The HTTP/2 server connection (rawrt.sansio.h2.connection), bytes in and events out.

The client is the ``h2`` package where a well-behaved client is wanted (a test-only oracle: its requests,
flow control and SETTINGS are what real clients send, and it checks what we send back), and hand-built
frames where a client must break a rule. Every scenario is also fed byte by byte.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawrt.errors import LocalProtocolError
from rawrt.limits import Limits
from rawrt.sansio.h2.connection import (
    TRANSITIONS,
    ConnectionTerminated,
    DataReceived,
    Event,
    H2Connection,
    RequestReceived,
    StreamEvent,
    StreamReset,
    StreamState,
    TrailersReceived,
    WindowUpdated,
    validate_request,
)
from rawrt.sansio.h2.frames import (
    PREFACE,
    ContinuationFrame,
    DataFrame,
    ErrorCode,
    FrameReader,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingCode,
    SettingsFrame,
    UnknownFrame,
    WindowUpdateFrame,
    encode_frame,
)
from rawrt.sansio.h2.hpack import Encoder

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"test"), (b":path", b"/hello")]


def post(length: int | None = None) -> list[tuple[bytes, bytes]]:
    head = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"test"), (b":path", b"/echo")]
    return head + ([(b"content-length", str(length).encode())] if length is not None else [])


def h2_client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    return client


def send_body(
    client: h2.connection.H2Connection, stream_id: int, data: bytes, *, end_stream: bool = False
) -> None:
    """h2 sends at most one frame's worth per call."""
    for start in range(0, max(len(data), 1), 16384):
        last = start + 16384 >= len(data)
        client.send_data(stream_id, data[start : start + 16384], end_stream=end_stream and last)


def server(limits: Limits | None = None) -> H2Connection:
    conn = H2Connection(limits or Limits())
    conn.initiate()
    return conn


def feed(conn: H2Connection, data: bytes, *, bytewise: bool = False) -> list[Event]:
    if not bytewise:
        return conn.receive_data(data)
    events: list[Event] = []
    for i in range(len(data)):
        events += conn.receive_data(data[i : i + 1])
    return events


def frames_of(data: bytes) -> list[object]:
    reader = FrameReader(2**24 - 1)
    reader.feed(data)
    return list(reader)


def handshake(
    *, bytewise: bool = False, limits: Limits | None = None
) -> tuple[H2Connection, h2.connection.H2Connection]:
    conn = server(limits)
    client = h2_client()
    assert feed(conn, client.data_to_send(), bytewise=bytewise) == []
    client.receive_data(conn.data_to_send())
    assert feed(conn, client.data_to_send(), bytewise=bytewise) == []  # the client's SETTINGS ack
    return conn, client


class Raw:
    """A client that writes frames by hand, to break rules on purpose."""

    def __init__(self) -> None:
        self.encoder = Encoder()

    def start(self) -> bytes:
        return PREFACE + SettingsFrame().serialize()

    def headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], *, end_stream: bool = True
    ) -> bytes:
        return HeadersFrame(stream_id, self.encoder.encode(headers), end_stream, True).serialize()


def raw_server(limits: Limits | None = None) -> tuple[H2Connection, Raw]:
    conn = server(limits)
    raw = Raw()
    assert conn.receive_data(raw.start()) == []
    conn.data_to_send()
    return conn, raw


def sent(conn: H2Connection) -> list[object]:
    return frames_of(conn.data_to_send())


# --- the preface and SETTINGS ------------------------------------------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True])
def test_settings_exchange_with_a_real_client(bytewise: bool) -> None:
    conn = server()
    ours = frames_of(conn.data_to_send())
    assert ours[0] == SettingsFrame(
        (
            (SettingCode.HEADER_TABLE_SIZE, 4096),
            (SettingCode.ENABLE_PUSH, 0),
            (SettingCode.MAX_CONCURRENT_STREAMS, 100),
            (SettingCode.INITIAL_WINDOW_SIZE, 256 * 1024),
            (SettingCode.MAX_FRAME_SIZE, 16384),
            (SettingCode.MAX_HEADER_LIST_SIZE, 65536),
            (SettingCode.ENABLE_CONNECT_PROTOCOL, 1),
        )
    )
    assert ours[1] == WindowUpdateFrame(0, 1024 * 1024 - 65535)
    client = h2_client()
    assert feed(conn, client.data_to_send(), bytewise=bytewise) == []
    assert sent(conn) == [SettingsFrame(ack=True)]  # §6.5.3
    client.receive_data(b"".join(f.serialize() for f in ours))  # type: ignore[attr-defined]
    assert client.remote_settings.max_concurrent_streams == 100
    assert client.remote_settings.enable_connect_protocol == 1
    assert client.outbound_flow_control_window == 1024 * 1024


def test_a_wrong_preface_is_a_connection_error() -> None:
    conn = server()
    conn.data_to_send()
    events = conn.receive_data(b"GET / HTTP/1.1\r\n")
    assert events == [
        ConnectionTerminated(
            ErrorCode.PROTOCOL_ERROR, 0, False, "the client's connection preface is wrong (§3.4)"
        )
    ]
    assert sent(conn) == [
        GoAwayFrame(0, ErrorCode.PROTOCOL_ERROR, b"the client's connection preface is wrong (\xc2\xa73.4)")
    ]
    assert conn.terminated and conn.receive_data(PREFACE) == []


def test_the_first_frame_must_be_settings() -> None:
    conn = server()
    conn.data_to_send()
    (event,) = conn.receive_data(PREFACE + PingFrame(b"12345678").serialize())
    assert isinstance(event, ConnectionTerminated) and event.error_code == ErrorCode.PROTOCOL_ERROR
    assert "first frame is not SETTINGS" in event.message


def test_settings_ack_applies_our_table_size_and_ping_is_answered() -> None:
    conn, raw = raw_server(Limits(h2_header_table_size=256))
    conn.receive_data(SettingsFrame(ack=True).serialize() + PingFrame(b"abcdefgh").serialize())
    assert sent(conn) == [PingFrame(b"abcdefgh", ack=True)]
    # The client's encoder now owes a size update down to 256 (RFC 7541 §4.2): a block without one is a
    # compression error.
    (event,) = conn.receive_data(raw.headers(1, GET))
    assert isinstance(event, ConnectionTerminated) and event.error_code == ErrorCode.COMPRESSION_ERROR
    # A PING ack is not answered.
    conn2, _ = raw_server()
    assert conn2.receive_data(PingFrame(b"abcdefgh", ack=True).serialize()) == []
    assert conn2.data_to_send() == b""


# --- requests and responses --------------------------------------------------------------------------------


@pytest.mark.parametrize("bytewise", [False, True])
def test_get_answered_through_a_real_client(bytewise: bool) -> None:
    conn, client = handshake(bytewise=bytewise)
    client.send_headers(1, GET, end_stream=True)
    events = feed(conn, client.data_to_send(), bytewise=bytewise)
    assert events == [RequestReceived(1, GET, True)]
    conn.send_headers(1, [(b":status", b"200"), (b"content-type", b"text/plain")])
    assert conn.send_window(1) == 65535
    conn.send_data(1, b"Hello, world!", end_stream=True)
    got = client.receive_data(conn.data_to_send())
    assert [type(e) for e in got] == [
        h2.events.ResponseReceived,
        h2.events.DataReceived,
        h2.events.StreamEnded,
    ]
    assert isinstance(got[0], h2.events.ResponseReceived) and isinstance(got[1], h2.events.DataReceived)
    assert got[0].headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
    assert got[1].data == b"Hello, world!"
    assert conn.open_streams == 0
    with pytest.raises(LocalProtocolError, match="not open for sending"):
        conn.send_data(1, b"more")


@pytest.mark.parametrize("bytewise", [False, True])
def test_a_body_under_flow_control(bytewise: bool) -> None:
    conn, client = handshake(bytewise=bytewise, limits=Limits(h2_connection_window=512 * 1024))
    body = bytes(range(256)) * 1024  # 256 KiB: exactly the stream window we grant
    client.send_headers(1, post(len(body)))
    client.send_data(1, body[:16384])
    events = feed(conn, client.data_to_send(), bytewise=bytewise)
    assert events[0] == RequestReceived(1, post(len(body)), False)
    assert events[1] == DataReceived(1, body[:16384], 16384, False)
    # Consuming half the window gives it back (one WINDOW_UPDATE per half window, not per read).
    conn.acknowledge_received_data(1, 16384)
    assert conn.data_to_send() == b""
    send_body(client, 1, body[16384:], end_stream=True)
    events = feed(conn, client.data_to_send())
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == body[16384:]
    assert isinstance(events[-1], DataReceived) and events[-1].end_stream
    conn.acknowledge_received_data(1, len(body) - 16384)
    # Half the connection's window consumed: given back (the stream is over: no update for it).
    assert sent(conn) == [WindowUpdateFrame(0, len(body))]
    conn.send_headers(1, [(b":status", b"204")], end_stream=True)
    assert [type(e) for e in client.receive_data(conn.data_to_send())] == [
        h2.events.ResponseReceived,
        h2.events.StreamEnded,
    ]


def test_a_stream_window_is_given_back_as_the_body_is_consumed() -> None:
    conn, client = handshake()
    client.send_headers(1, post())
    send_body(client, 1, b"x" * 65535)
    feed(conn, client.data_to_send())
    conn.acknowledge_received_data(1, 65535)
    conn.acknowledge_received_data(1, 0)  # nothing: no frame
    conn.acknowledge_received_data(1, 65537)
    assert WindowUpdateFrame(1, 131072) in sent(conn)


def test_padding_is_given_back_at_once() -> None:
    conn, raw = raw_server(Limits(h2_stream_window=65535, h2_connection_window=65535))
    conn.receive_data(raw.headers(1, post(), end_stream=False))
    (event,) = conn.receive_data(DataFrame(1, b"abc", False, 200).serialize())
    assert event == DataReceived(1, b"abc", 3, False)
    conn.acknowledge_received_data(1, 40000)
    frames = sent(conn)
    # 201 octets of padding (its length octet included) were given back at once, with the 40,000 consumed.
    assert WindowUpdateFrame(1, 40201) in frames and WindowUpdateFrame(0, 40201) in frames


def test_trailers_end_the_request() -> None:
    conn, client = handshake()
    client.send_headers(1, post())
    client.send_data(1, b"body")
    client.send_headers(1, [(b"x-checksum", b"abc")], end_stream=True)
    events = feed(conn, client.data_to_send())
    assert events[-1] == TrailersReceived(1, [(b"x-checksum", b"abc")])
    conn.send_headers(1, [(b":status", b"200")])
    conn.send_headers(1, [(b"x-done", b"yes")], end_stream=True)  # our trailers
    got = client.receive_data(conn.data_to_send())
    assert [type(e) for e in got] == [
        h2.events.ResponseReceived,
        h2.events.TrailersReceived,
        h2.events.StreamEnded,
    ]


def test_trailers_must_end_the_stream_and_carry_no_pseudo_headers() -> None:
    conn, raw = raw_server()
    conn.receive_data(raw.headers(1, post(), end_stream=False))
    (event,) = conn.receive_data(raw.headers(1, [(b"x-a", b"1")], end_stream=False))
    assert isinstance(event, StreamReset) and "trailer section without END_STREAM" in event.message
    conn.receive_data(raw.headers(3, post(), end_stream=False))
    (event,) = conn.receive_data(raw.headers(3, [(b":path", b"/")]))
    assert isinstance(event, StreamReset) and "pseudo-header b':path' in trailers" in event.message
    # HEADERS again after the request ended: STREAM_CLOSED.
    conn.receive_data(raw.headers(5, GET))
    (event,) = conn.receive_data(raw.headers(5, [(b"x", b"1")]))
    assert event == StreamReset(5, ErrorCode.STREAM_CLOSED, False, "HEADERS after the end of stream 5")


def test_extended_connect_is_a_request() -> None:
    conn, raw = raw_server()
    ws = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":path", b"/ws"),
        (b":authority", b"test"),
        (b"sec-websocket-version", b"13"),
    ]
    assert conn.receive_data(raw.headers(1, ws, end_stream=False)) == [RequestReceived(1, ws, False)]


def test_an_informational_response_is_not_the_answer() -> None:
    conn, client = handshake()
    client.send_headers(1, post() + [(b"expect", b"100-continue")])
    feed(conn, client.data_to_send())
    conn.send_headers(1, [(b":status", b"100")])
    with pytest.raises(LocalProtocolError, match="DATA before the response"):
        conn.send_data(1, b"x")
    conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    got = client.receive_data(conn.data_to_send())
    assert [type(e) for e in got] == [
        h2.events.InformationalResponseReceived,
        h2.events.ResponseReceived,
        h2.events.StreamEnded,
    ]


def test_our_own_mistakes_raise() -> None:
    conn, client = handshake()
    client.send_headers(1, GET, end_stream=True)
    feed(conn, client.data_to_send())
    with pytest.raises(LocalProtocolError, match="starts with :status"):
        conn.send_headers(1, [(b"content-type", b"x")])
    with pytest.raises(LocalProtocolError, match="cannot be sent in HTTP/2"):
        conn.send_headers(1, [(b":status", b"200"), (b"connection", b"close")])
    conn.send_headers(1, [(b":status", b"200")])
    with pytest.raises(LocalProtocolError, match="must end the stream"):
        conn.send_headers(1, [(b"x", b"y")])
    with pytest.raises(LocalProtocolError, match="exceed the flow-control window"):
        conn.send_data(1, b"x" * 65536)
    with pytest.raises(LocalProtocolError, match="not open for sending"):
        conn.send_headers(3, [(b":status", b"200")])
    conn.end_stream(1)
    conn.reset_stream(1)  # already closed: nothing happens
    assert send_window_is_zero(conn, 1) and send_window_is_zero(conn, 99)


def send_window_is_zero(conn: H2Connection, stream_id: int) -> bool:
    return conn.send_window(stream_id) == 0


# --- flow control the other way ----------------------------------------------------------------------------


def test_window_updates_and_initial_window_changes() -> None:
    conn, raw = raw_server()
    conn.receive_data(raw.headers(1, GET))
    conn.send_headers(1, [(b":status", b"200")])
    conn.send_data(1, b"x" * 65535)
    assert conn.send_window(1) == 0
    assert conn.receive_data(WindowUpdateFrame(1, 10).serialize()) == [WindowUpdated(1)]
    assert conn.send_window(1) == 0  # the connection window is still empty
    assert conn.receive_data(WindowUpdateFrame(0, 100).serialize()) == [WindowUpdated(0)]
    assert conn.send_window(1) == 10
    # §6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE moves every stream's window by the difference.
    events = conn.receive_data(SettingsFrame(((SettingCode.INITIAL_WINDOW_SIZE, 65535 + 50),)).serialize())
    assert events == [WindowUpdated(0)] and conn.send_window(1) == 60
    assert conn.receive_data(SettingsFrame(((SettingCode.INITIAL_WINDOW_SIZE, 0),)).serialize()) == []
    assert conn.send_window(1) == 0  # negative, shown as 0
    # A WINDOW_UPDATE for a stream that is over is ignored.
    conn.reset_stream(1)
    assert conn.receive_data(WindowUpdateFrame(1, 10).serialize()) == []


def test_window_overflows() -> None:
    conn, raw = raw_server()
    conn.receive_data(raw.headers(1, GET))
    (event,) = conn.receive_data(WindowUpdateFrame(1, 2**31 - 1).serialize())
    assert event == StreamReset(
        1, ErrorCode.FLOW_CONTROL_ERROR, False, "the stream window would pass 2**31-1 (§6.9.1)"
    )
    conn.receive_data(raw.headers(3, GET))
    assert conn.receive_data(WindowUpdateFrame(3, 10).serialize()) == [WindowUpdated(3)]
    (event,) = conn.receive_data(SettingsFrame(((SettingCode.INITIAL_WINDOW_SIZE, 2**31 - 1),)).serialize())
    assert event == ConnectionTerminated(
        ErrorCode.FLOW_CONTROL_ERROR, 3, False, "a stream window would pass 2**31-1 (§6.9.2)"
    )
    conn, raw = raw_server()
    (event,) = conn.receive_data(WindowUpdateFrame(0, 2**31 - 1).serialize())
    assert isinstance(event, ConnectionTerminated) and event.error_code == ErrorCode.FLOW_CONTROL_ERROR


def test_other_settings_are_taken_or_ignored() -> None:
    conn, raw = raw_server()
    conn.receive_data(
        SettingsFrame(
            (
                (SettingCode.HEADER_TABLE_SIZE, 100),
                (SettingCode.MAX_FRAME_SIZE, 20000),
                (SettingCode.ENABLE_PUSH, 0),
                (0x99, 7),
            )
        ).serialize()
    )
    assert sent(conn) == [SettingsFrame(ack=True)]
    conn.receive_data(raw.headers(1, GET))
    conn.send_headers(1, [(b":status", b"200")])
    conn.send_data(1, b"y" * 20000)
    data_frames = [f for f in sent(conn) if isinstance(f, DataFrame)]
    assert [len(f.data) for f in data_frames] == [20000]  # one frame: the client's larger frame size


# --- the client breaking the rules -------------------------------------------------------------------------

MALFORMED = [
    (
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"Host", b"x")],
        "is not a lowercase token",
    ),
    (
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"", b"x")],
        "is not a lowercase token",
    ),
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"x", b"a\nb")], "NUL, CR, LF"),
    (
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"x", b" a")],
        "surrounding whitespace",
    ),
    ([(b":method", b"GET"), (b"x", b"1"), (b":scheme", b"http"), (b":path", b"/")], "after a regular field"),
    (
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":status", b"200")],
        "unknown pseudo-header",
    ),
    ([(b":method", b"GET"), (b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")], "twice"),
    (
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"connection", b"close")],
        "connection-specific",
    ),
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"te", b"gzip")], "only 'trailers'"),
    (
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"content-length", b"x")],
        "not a number",
    ),
    (
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b"content-length", b"1"),
            (b"content-length", b"2"),
        ],
        "two different content-length",
    ),
    ([(b":scheme", b"http"), (b":path", b"/")], "no :method"),
    ([(b":method", b"CONNECT"), (b":authority", b"x"), (b":path", b"/")], "CONNECT takes :authority"),
    ([(b":method", b"CONNECT"), (b":scheme", b"https")], "CONNECT takes :authority"),
    (
        [(b":method", b"GET"), (b":protocol", b"websocket"), (b":scheme", b"http"), (b":path", b"/")],
        "other than CONNECT",
    ),
    ([(b":method", b"GET"), (b":path", b"/")], "no :scheme"),
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"")], "no :path"),
    (
        [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"), (b":path", b"/")],
        "extended CONNECT without :authority",
    ),
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"x")], "neither absolute nor '*'"),
    ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"*")], "neither absolute nor '*'"),
]


@pytest.mark.parametrize(("headers", "message"), MALFORMED)
def test_malformed_requests_are_stream_errors(headers: list[tuple[bytes, bytes]], message: str) -> None:
    conn, raw = raw_server()
    (event,) = conn.receive_data(raw.headers(1, headers))
    assert isinstance(event, StreamReset) and not event.remote
    assert event.error_code == ErrorCode.PROTOCOL_ERROR and message in event.message, event.message
    assert sent(conn) == [RstStreamFrame(1, ErrorCode.PROTOCOL_ERROR)]
    # The connection goes on.
    assert conn.receive_data(raw.headers(3, GET)) == [RequestReceived(3, GET, True)]


def test_valid_forms_pass() -> None:
    ok = [
        [(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":path", b"*")],
        [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b"te", b"Trailers"),
            (b"content-length", b"0"),
        ],
    ]
    for headers in ok:
        validate_request(headers, 1, connect_protocol=True)
    with pytest.raises(Exception, match="unknown pseudo-header"):
        validate_request(
            [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"), (b":path", b"/")],
            1,
            connect_protocol=False,
        )


def test_content_length_against_data() -> None:
    conn, raw = raw_server()
    conn.receive_data(raw.headers(1, post(3), end_stream=False))
    (event,) = conn.receive_data(DataFrame(1, b"abcd").serialize())
    assert isinstance(event, StreamReset) and "more DATA than content-length 3" in event.message
    conn.receive_data(raw.headers(3, post(3), end_stream=False))
    (event,) = conn.receive_data(DataFrame(3, b"ab", True).serialize())
    assert isinstance(event, StreamReset) and "content-length 3 but 2 octets" in event.message
    (event,) = conn.receive_data(raw.headers(5, post(3)))
    assert isinstance(event, StreamReset) and "content-length 3 but 0 octets" in event.message


def test_stream_id_rules() -> None:
    conn, raw = raw_server()
    (event,) = conn.receive_data(raw.headers(2, GET))
    assert isinstance(event, ConnectionTerminated) and "odd-numbered" in event.message
    conn, raw = raw_server()
    conn.receive_data(raw.headers(5, GET))
    (event,) = conn.receive_data(raw.headers(3, GET))
    assert isinstance(event, ConnectionTerminated) and "ids must increase" in event.message
    assert event.last_stream_id == 5


def test_frames_on_idle_and_closed_streams() -> None:
    idle: list[tuple[DataFrame | RstStreamFrame | WindowUpdateFrame, str]] = [
        (DataFrame(1, b"x"), "DATA on idle stream 1"),
        (RstStreamFrame(1, ErrorCode.CANCEL), "RST_STREAM on idle stream 1"),
        (WindowUpdateFrame(1, 1), "WINDOW_UPDATE on idle stream 1"),
    ]
    for frame, what in idle:
        conn, _ = raw_server()
        (event,) = conn.receive_data(frame.serialize())
        assert isinstance(event, ConnectionTerminated) and event.error_code == ErrorCode.PROTOCOL_ERROR
        assert what in event.message
    conn, raw = raw_server()
    conn.receive_data(raw.headers(1, GET))
    conn.send_headers(1, [(b":status", b"200")], end_stream=True)  # closed normally
    (event,) = conn.receive_data(DataFrame(1, b"x").serialize())
    assert event == StreamReset(1, ErrorCode.STREAM_CLOSED, False, "DATA on closed stream 1 (§5.1)")
    (event,) = conn.receive_data(raw.headers(1, GET))
    assert event.error_code == ErrorCode.STREAM_CLOSED  # type: ignore[union-attr]
    assert conn.receive_data(RstStreamFrame(1, ErrorCode.CANCEL).serialize()) == []  # already closed: ignored
    # DATA on a half-closed (remote) stream: the request already ended.
    conn.receive_data(raw.headers(3, GET))
    (event,) = conn.receive_data(DataFrame(3, b"x").serialize())
    assert event == StreamReset(3, ErrorCode.STREAM_CLOSED, False, "DATA after the end of stream 3 (§5.1)")


def test_data_for_a_stream_we_reset_is_dropped_and_its_window_given_back() -> None:
    conn, raw = raw_server(Limits(h2_connection_window=65535))
    conn.receive_data(raw.headers(1, post(), end_stream=False))
    conn.reset_stream(1, ErrorCode.CANCEL)
    assert sent(conn) == [RstStreamFrame(1, ErrorCode.CANCEL)]
    for _ in range(4):  # 4 x 16 KiB > the connection window, unless it is given back
        assert conn.receive_data(DataFrame(1, b"z" * 16384).serialize()) == []
    assert WindowUpdateFrame(0, 32768) in sent(conn)


def test_flow_control_violations() -> None:
    conn, raw = raw_server(Limits(h2_stream_window=65535, h2_connection_window=65535 * 2))
    conn.receive_data(raw.headers(1, post(), end_stream=False))
    for _ in range(3):
        conn.receive_data(DataFrame(1, b"a" * 16384).serialize())
    (event,) = conn.receive_data(DataFrame(1, b"a" * 16384).serialize())  # 65,536 > 65,535
    assert isinstance(event, StreamReset) and event.error_code == ErrorCode.FLOW_CONTROL_ERROR
    conn, raw = raw_server(Limits(h2_stream_window=65535, h2_connection_window=65535))
    conn.receive_data(raw.headers(1, post(), end_stream=False) + raw.headers(3, post(), end_stream=False))
    conn.receive_data(b"".join(DataFrame(1, b"a" * 16000).serialize() for _ in range(2)))
    conn.receive_data(DataFrame(3, b"a" * 16000).serialize() + DataFrame(3, b"a" * 16000).serialize())
    (event,) = conn.receive_data(DataFrame(3, b"a" * 16000).serialize())
    assert isinstance(event, ConnectionTerminated) and event.error_code == ErrorCode.FLOW_CONTROL_ERROR


def test_push_promise_from_a_client_is_a_connection_error() -> None:
    conn, raw = raw_server()
    conn.receive_data(raw.headers(1, GET))
    (event,) = conn.receive_data(PushPromiseFrame(1, 2, b"").serialize())
    assert isinstance(event, ConnectionTerminated) and "PUSH_PROMISE" in event.message


def test_priority_unknown_frames_and_goaway_from_the_client() -> None:
    conn, raw = raw_server()
    assert conn.receive_data(PriorityFrame(7).serialize() + encode_frame(0xEE, 0, 0, b"?")) == []
    assert conn.receive_data(GoAwayFrame(0, ErrorCode.NO_ERROR, b"bye").serialize()) == [
        ConnectionTerminated(ErrorCode.NO_ERROR, 0, True, "bye")
    ]
    reader = FrameReader()
    reader.feed(encode_frame(0xEE, 0, 0, b"?"))
    assert isinstance(reader.next_frame(), UnknownFrame)  # what the connection was given, and ignored


def test_a_stream_reset_by_the_client() -> None:
    conn, client = handshake()
    client.send_headers(1, GET, end_stream=True)
    feed(conn, client.data_to_send())
    client.reset_stream(1, 8)
    assert feed(conn, client.data_to_send()) == [StreamReset(1, ErrorCode.CANCEL, True)]
    assert conn.open_streams == 0
    # After our answer began, a reset is a client that stopped reading, not a rapid reset.
    client.send_headers(3, GET, end_stream=True)
    feed(conn, client.data_to_send())
    conn.send_headers(3, [(b":status", b"200")])
    client.receive_data(conn.data_to_send())
    client.reset_stream(3, 8)
    assert feed(conn, client.data_to_send()) == [StreamReset(3, ErrorCode.CANCEL, True)]


def test_without_extended_connect_and_with_a_short_memory() -> None:
    conn = H2Connection(Limits(), enable_connect_protocol=False)
    conn.CLOSED_MEMORY = 2
    conn.initiate()
    (settings_frame,) = [f for f in frames_of(conn.data_to_send()) if isinstance(f, SettingsFrame)]
    assert all(k != SettingCode.ENABLE_CONNECT_PROTOCOL for k, _ in settings_frame.settings)
    raw = Raw()
    conn.receive_data(raw.start())
    for stream_id in (1, 3, 5):
        conn.receive_data(raw.headers(stream_id, GET))
        conn.reset_stream(stream_id)
    # Stream 1 is forgotten: a HEADERS on it is an old id, not a closed stream.
    (event,) = conn.receive_data(raw.headers(1, GET))
    assert isinstance(event, ConnectionTerminated) and "ids must increase" in event.message


# --- limits ------------------------------------------------------------------------------------------------


def test_concurrent_streams_past_the_limit_are_refused() -> None:
    conn, raw = raw_server(Limits(h2_max_concurrent_streams=2))
    assert len(conn.receive_data(raw.headers(1, GET) + raw.headers(3, GET))) == 2
    (event,) = conn.receive_data(raw.headers(5, GET))
    assert event == StreamReset(5, ErrorCode.REFUSED_STREAM, False, "more than 2 concurrent streams (§5.1.2)")
    conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    assert conn.receive_data(raw.headers(7, GET)) == [RequestReceived(7, GET, True)]


def test_rapid_reset_is_stopped() -> None:
    conn, raw = raw_server(Limits(h2_max_reset_streams=10))
    data = b"".join(
        raw.headers(i, GET) + RstStreamFrame(i, ErrorCode.CANCEL).serialize() for i in range(1, 25, 2)
    )
    events = conn.receive_data(data)
    assert sum(isinstance(e, StreamReset) for e in events) == 10
    assert (
        isinstance(events[-1], ConnectionTerminated) and events[-1].error_code == ErrorCode.ENHANCE_YOUR_CALM
    )
    assert "rapid reset" in events[-1].message
    # A client that lets its streams finish may reset as many as it likes.
    conn, raw = raw_server(Limits(h2_max_reset_streams=10))
    for i in range(1, 200, 4):
        conn.receive_data(raw.headers(i, GET))
        conn.send_headers(i, [(b":status", b"200")], end_stream=True)
        conn.receive_data(raw.headers(i + 2, GET) + RstStreamFrame(i + 2, ErrorCode.CANCEL).serialize())
    assert not conn.terminated


def test_continuation_flood_is_stopped() -> None:
    conn, raw = raw_server(Limits(h2_max_continuation_frames=4))
    block = raw.encoder.encode(GET)
    data = HeadersFrame(1, block[:2], True, False).serialize()
    data += b"".join(ContinuationFrame(1, b"", False).serialize() for _ in range(3))
    assert conn.receive_data(data) == []
    (event,) = conn.receive_data(ContinuationFrame(1, b"", False).serialize())
    assert isinstance(event, ConnectionTerminated) and event.error_code == ErrorCode.ENHANCE_YOUR_CALM
    # Within the limits, a block in pieces is one request.
    conn, raw = raw_server()
    block = raw.encoder.encode(GET)
    data = (
        HeadersFrame(1, block[:3], True, False).serialize()
        + ContinuationFrame(1, block[3:], True).serialize()
    )
    assert conn.receive_data(data) == [RequestReceived(1, GET, True)]


def test_a_large_compressed_block_is_stopped() -> None:
    conn, raw = raw_server(Limits(h2_max_header_list_size=1000))
    data = HeadersFrame(1, b"\x00" * 6000, True, False).serialize()
    (event,) = conn.receive_data(data)
    assert isinstance(event, ConnectionTerminated) and event.error_code == ErrorCode.ENHANCE_YOUR_CALM


def test_an_hpack_bomb_gets_431_and_the_connection_goes_on() -> None:
    conn, raw = raw_server(Limits(h2_max_header_list_size=4096))
    # One 1,000-octet value indexed once, then referenced 100 times: 100 KiB decoded from ~200 octets.
    big = [(b"x-big", b"v" * 1000)]
    first = raw.encoder.encode(GET + big)
    bomb = first + bytes([0x80 | 62]) * 100
    events = conn.receive_data(HeadersFrame(1, bomb, False, True).serialize())
    assert (
        len(events) == 1 and isinstance(events[0], StreamReset) and "exceeds the limit" in events[0].message
    )
    frames = sent(conn)
    assert isinstance(frames[0], HeadersFrame) and frames[-1] == RstStreamFrame(1, ErrorCode.NO_ERROR)
    # The table stayed in step: the next request that uses it decodes.
    assert conn.receive_data(raw.headers(3, GET + big)) == [RequestReceived(3, GET + big, True)]
    # With END_STREAM on the bomb, the 431 closes the stream: no RST_STREAM.
    conn.receive_data(
        HeadersFrame(5, raw.encoder.encode(GET) + bytes([0x80 | 62]) * 100, True, True).serialize()
    )
    assert not any(isinstance(f, RstStreamFrame) for f in sent(conn))
    # As trailers, too large is a stream error.
    conn.receive_data(raw.headers(7, post(), end_stream=False))
    (event,) = conn.receive_data(HeadersFrame(7, bytes([0x80 | 62]) * 100, True, True).serialize())
    assert isinstance(event, StreamReset) and event.error_code == ErrorCode.PROTOCOL_ERROR


def test_a_broken_hpack_block_is_a_compression_error() -> None:
    conn, _ = raw_server()
    (event,) = conn.receive_data(HeadersFrame(1, b"\xff\xff\xff\xff\xff\xff\x7f", True, True).serialize())
    assert isinstance(event, ConnectionTerminated) and event.error_code == ErrorCode.COMPRESSION_ERROR


def test_smaller_windows_than_the_protocol_initial_are_not_announced() -> None:
    conn = H2Connection(Limits(h2_stream_window=1000, h2_connection_window=1000))
    conn.initiate()
    (settings_frame,) = frames_of(conn.data_to_send())
    assert isinstance(settings_frame, SettingsFrame)
    assert (SettingCode.INITIAL_WINDOW_SIZE, 65535) in settings_frame.settings


# --- shutting down -----------------------------------------------------------------------------------------


def test_graceful_goaway() -> None:
    conn, raw = raw_server()
    conn.receive_data(raw.headers(1, GET))
    conn.close()
    conn.close()  # once
    assert sent(conn) == [GoAwayFrame(1, ErrorCode.NO_ERROR, b"")]
    # New streams after our GOAWAY are ignored (their block is still decoded: HPACK stays in step).
    assert conn.receive_data(raw.headers(3, GET)) == []
    assert conn.receive_data(DataFrame(3, b"x").serialize()) == []
    # The stream in flight is answered.
    conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    assert conn.open_streams == 0


# --- properties --------------------------------------------------------------------------------------------


def test_transition_table_has_no_way_out_of_closed() -> None:
    assert not any(state is StreamState.CLOSED for state, _ in TRANSITIONS)
    assert all(new is not StreamState.IDLE for new in TRANSITIONS.values())
    assert (StreamState.IDLE, StreamEvent.RECV_HEADERS) in TRANSITIONS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=30), st.binary(max_size=3000))
def test_any_split_gives_the_same_events(cuts: list[int], body: bytes) -> None:
    client = h2_client()
    client.send_headers(1, post(len(body)))
    send_body(client, 1, body, end_stream=True)
    client.send_headers(3, GET, end_stream=True)
    client.ping(b"12345678")
    wire = client.data_to_send()
    whole = server()
    expected = whole.receive_data(wire)
    conn = server()
    events: list[Event] = []
    pos = 0
    for cut in cuts:
        events += conn.receive_data(wire[pos : pos + cut])
        pos += cut
    events += conn.receive_data(wire[pos:])
    assert events == expected
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == body
    assert [e.stream_id for e in events if isinstance(e, RequestReceived)] == [1, 3]
