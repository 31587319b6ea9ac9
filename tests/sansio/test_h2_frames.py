"""Tests for rawrt.sansio.h2.frames: the HTTP/2 frame layer (RFC 9113 §3.4, §4, §6, §7).

Wire bytes are literals assembled by hand from the §4.1 layout (Length 24 bits, Type, Flags, R + Stream
Identifier 31 bits, payload), with a comment decoding each header. Every reader test runs twice, fed whole
and one byte at a time. ``hyperframe`` (installed with ``h2``) is a test-only oracle for the differential
tests at the end.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import hyperframe.exceptions
import hyperframe.frame as hf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawrt.errors import H2ConnectionError, H2Error, H2StreamError, LocalProtocolError, RemoteProtocolError
from rawrt.limits import DEFAULT_LIMITS
from rawrt.sansio.h2.frames import (
    ACK,
    DEFAULT_MAX_FRAME_SIZE,
    END_HEADERS,
    END_STREAM,
    FRAME_HEADER_SIZE,
    LARGEST_MAX_FRAME_SIZE,
    MAX_STREAM_ID,
    MAX_WINDOW_SIZE,
    PADDED,
    PREFACE,
    PRIORITY,
    ContinuationFrame,
    DataFrame,
    ErrorCode,
    Frame,
    FrameReader,
    FrameType,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PrefaceMatch,
    Priority,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingCode,
    SettingsFrame,
    UnknownFrame,
    WindowUpdateFrame,
    encode_frame,
    match_preface,
    split_data,
    split_header_block,
)

BYTEWISE = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])

#: What reading gives: frames, and the stream errors met on the way (the reader goes on after those).
Item = Frame | H2StreamError


def h(text: str) -> bytes:
    """Hex to bytes, spaces allowed (the wire literals below are spaced field by field)."""
    return bytes.fromhex(text)


def read_chunks(chunks: Sequence[bytes], max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> list[Item]:
    """Feed ``chunks`` one after the other, reading everything after each; connection errors propagate."""
    reader = FrameReader(max_frame_size)
    items: list[Item] = []
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            try:
                frame = reader.next_frame()
            except H2StreamError as exc:
                items.append(exc)
                continue
            if frame is None:
                break
            items.append(frame)
    return items


def split(data: bytes, bytewise: bool) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))] if bytewise else [data]


def read(data: bytes, *, bytewise: bool, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> list[Item]:
    return read_chunks(split(data, bytewise), max_frame_size)


def assert_wire(data: bytes, *frames: Frame) -> None:
    """parse(data) == frames, fed whole and byte by byte, and serialize(frames) == data."""
    assert read(data, bytewise=False) == list(frames)
    assert read(data, bytewise=True) == list(frames)
    assert b"".join(frame.serialize() for frame in frames) == data


def connection_error(
    data: bytes, *, bytewise: bool, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> H2ConnectionError:
    """The connection error ``data`` causes (the same one however it is fed)."""
    with pytest.raises(H2ConnectionError) as info:
        read(data, bytewise=bytewise, max_frame_size=max_frame_size)
    return info.value


def assert_connection_error(data: bytes, code: ErrorCode, bytewise: bool, match: str = "") -> None:
    exc = connection_error(data, bytewise=bytewise)
    assert exc.code == code, exc
    assert match in str(exc)


# --- §3.4 ---------------------------------------------------------------------------------------------------


class TestPreface:
    """RFC 9113 §3.4: the client connection preface, and telling it from HTTP/1.1."""

    def test_value(self) -> None:
        assert PREFACE == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        assert len(PREFACE) == 24

    @pytest.mark.parametrize(
        "data, expected",
        [
            (b"", PrefaceMatch.PARTIAL),
            (b"P", PrefaceMatch.PARTIAL),
            (b"PRI * HTTP/2.0\r\n", PrefaceMatch.PARTIAL),
            (PREFACE[:-1], PrefaceMatch.PARTIAL),
            (PREFACE, PrefaceMatch.COMPLETE),
            (PREFACE + h("000000 04 00 00000000"), PrefaceMatch.COMPLETE),
            (b"G", PrefaceMatch.MISMATCH),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", PrefaceMatch.MISMATCH),
            (b"PRI * HTTP/1.1", PrefaceMatch.MISMATCH),  # an HTTP/1.1 PRI request line
            (PREFACE[:-1] + b"\r", PrefaceMatch.MISMATCH),
            (PREFACE[:-1] + b"\rmore", PrefaceMatch.MISMATCH),
        ],
    )
    def test_match(self, data: bytes, expected: PrefaceMatch) -> None:
        assert match_preface(data) is expected
        assert match_preface(bytearray(data)) is expected
        assert match_preface(memoryview(data)) is expected

    @given(st.binary(max_size=40) | st.integers(0, 24).map(lambda n: PREFACE[:n]))
    def test_against_a_naive_definition(self, data: bytes) -> None:
        if data.startswith(PREFACE):
            expected = PrefaceMatch.COMPLETE
        elif PREFACE.startswith(data):
            expected = PrefaceMatch.PARTIAL
        else:
            expected = PrefaceMatch.MISMATCH
        assert match_preface(data) is expected


# --- §4.1, §6: every frame type on the wire -----------------------------------------------------------------


class TestWireLiterals:
    """RFC 9113 §4.1 and §6.1-§6.10: one hand-assembled frame of each type, read and written."""

    def test_data(self) -> None:
        # length 5, type 0 (DATA), flags 01 (END_STREAM), stream 1; "hello".
        assert_wire(h("000005 00 01 00000001 68656c6c6f"), DataFrame(1, b"hello", end_stream=True))

    def test_data_padded(self) -> None:
        # length 6, DATA, flags 08 (PADDED), stream 3; Pad Length 3, "hi", 3 zero octets of padding.
        frame = DataFrame(3, b"hi", padding=3)
        assert_wire(h("000006 00 08 00000003 03 6869 000000"), frame)
        assert frame.flow_controlled_length == 6  # §6.1: padding and Pad Length count
        assert DataFrame(3, b"hi").flow_controlled_length == 2

    def test_data_padded_with_zero_padding(self) -> None:
        # PADDED with Pad Length 0 differs on the wire from no PADDED flag: the round trip keeps it.
        assert_wire(h("000003 00 08 00000003 00 6869"), DataFrame(3, b"hi", padding=0))

    def test_data_empty(self) -> None:
        assert_wire(h("000000 00 01 00000005"), DataFrame(5, b"", end_stream=True))

    def test_headers(self) -> None:
        # length 3, type 1 (HEADERS), flags 05 (END_HEADERS | END_STREAM), stream 1; RFC 7541 §C.3.1's
        # first octets: 82 (:method GET), 86 (:scheme http), 84 (:path /).
        assert_wire(h("000003 01 05 00000001 828684"), HeadersFrame(1, h("828684"), end_stream=True))

    def test_headers_with_priority_and_padding(self) -> None:
        # length 9, HEADERS, flags 2c (PRIORITY | PADDED | END_HEADERS), stream 5; Pad Length 2;
        # E=1 + Stream Dependency 3; Weight 0f (weight 16); fragment 82; padding 0000.
        frame = HeadersFrame(5, h("82"), priority=Priority(3, 16, exclusive=True), padding=2)
        assert_wire(h("000009 01 2c 00000005 02 80000003 0f 82 0000"), frame)

    def test_priority(self) -> None:
        # length 5, type 2 (PRIORITY), no flags, stream 5; E=0, depends on 3; Weight ff (256).
        assert_wire(h("000005 02 00 00000005 00000003 ff"), PriorityFrame(5, Priority(3, 256)))

    def test_rst_stream(self) -> None:
        # length 4, type 3 (RST_STREAM), stream 1; error code 8 (CANCEL).
        assert_wire(h("000004 03 00 00000001 00000008"), RstStreamFrame(1, ErrorCode.CANCEL))

    def test_settings(self) -> None:
        # length 12, type 4 (SETTINGS), stream 0; (3 MAX_CONCURRENT_STREAMS, 100), (4 INITIAL_WINDOW_SIZE,
        # 65535).
        frame = SettingsFrame(
            ((SettingCode.MAX_CONCURRENT_STREAMS, 100), (SettingCode.INITIAL_WINDOW_SIZE, 65535))
        )
        assert_wire(h("00000c 04 00 00000000 0003 00000064 0004 0000ffff"), frame)

    def test_settings_empty_and_ack(self) -> None:
        # The server preface is a possibly empty SETTINGS (§3.4); the ACK has flag 01 and no payload.
        assert_wire(h("000000 04 00 00000000"), SettingsFrame())
        assert_wire(h("000000 04 01 00000000"), SettingsFrame(ack=True))

    def test_settings_keeps_unknown_and_repeated_identifiers_in_order(self) -> None:
        # §6.5.2: unknown identifiers (0x99 here) are the connection's to ignore; §6.5.3: order matters.
        frame = SettingsFrame(
            ((0x99, 7), (SettingCode.HEADER_TABLE_SIZE, 0), (SettingCode.HEADER_TABLE_SIZE, 1))
        )
        assert_wire(h("000012 04 00 00000000 0099 00000007 0001 00000000 0001 00000001"), frame)
        (read_back,) = read(frame.serialize(), bytewise=False)
        assert isinstance(read_back, SettingsFrame)
        assert [type(identifier) for identifier, _ in read_back.settings] == [int, SettingCode, SettingCode]

    def test_settings_connect_protocol(self) -> None:
        # RFC 8441 §3: SETTINGS_ENABLE_CONNECT_PROTOCOL is identifier 8.
        assert_wire(
            h("000006 04 00 00000000 0008 00000001"),
            SettingsFrame(((SettingCode.ENABLE_CONNECT_PROTOCOL, 1),)),
        )

    def test_push_promise(self) -> None:
        # length 5, type 5 (PUSH_PROMISE), flags 04 (END_HEADERS), stream 1; promised stream 2; fragment 82.
        assert_wire(h("000005 05 04 00000001 00000002 82"), PushPromiseFrame(1, 2, h("82")))

    def test_push_promise_padded(self) -> None:
        # length 7, PUSH_PROMISE, flags 0c (PADDED | END_HEADERS), stream 1; Pad Length 1; promised 4;
        # fragment 82; padding 00.
        assert_wire(h("000007 05 0c 00000001 01 00000004 82 00"), PushPromiseFrame(1, 4, h("82"), padding=1))

    def test_ping_and_its_response(self) -> None:
        # length 8, type 6 (PING), stream 0; 8 octets of opaque data; the response has flag 01 (ACK).
        ping = PingFrame(h("0102030405060708"))
        assert_wire(h("000008 06 00 00000000 0102030405060708"), ping)
        assert_wire(h("000008 06 01 00000000 0102030405060708"), ping.response())
        assert ping.response() == PingFrame(h("0102030405060708"), ack=True)

    def test_goaway(self) -> None:
        # length 11, type 7 (GOAWAY), stream 0; last stream 3; error 1 (PROTOCOL_ERROR); debug "bye".
        assert_wire(
            h("00000b 07 00 00000000 00000003 00000001 627965"),
            GoAwayFrame(3, ErrorCode.PROTOCOL_ERROR, b"bye"),
        )

    def test_window_update(self) -> None:
        # length 4, type 8 (WINDOW_UPDATE); on stream 0 (the connection) and on stream 1.
        assert_wire(h("000004 08 00 00000000 00010000"), WindowUpdateFrame(0, 65536))
        assert_wire(h("000004 08 00 00000001 7fffffff"), WindowUpdateFrame(1, MAX_WINDOW_SIZE))

    def test_continuation(self) -> None:
        # HEADERS (type 1) without END_HEADERS, then CONTINUATION (type 9) frames on the same stream, the
        # last with flag 04 (END_HEADERS).
        data = h("000001 01 01 00000001 82") + h("000001 09 00 00000001 86") + h("000001 09 04 00000001 84")
        expected = (
            HeadersFrame(1, h("82"), end_stream=True, end_headers=False),
            ContinuationFrame(1, h("86"), end_headers=False),
            ContinuationFrame(1, h("84")),
        )
        assert_wire(data, *expected)

    def test_continuation_of_push_promise(self) -> None:
        data = h("000004 05 00 00000001 00000002") + h("000001 09 04 00000001 82")
        assert_wire(data, PushPromiseFrame(1, 2, end_headers=False), ContinuationFrame(1, h("82")))

    def test_unknown_type(self) -> None:
        # §4.1, §5.5: type fa is unknown: returned whole, flags and all, for the connection to discard.
        assert_wire(h("000002 fa 33 00000007 abcd"), UnknownFrame(0xFA, 0x33, 7, h("abcd")))
        assert_wire(h("000000 0a 00 00000000"), UnknownFrame(0x0A, 0, 0))  # ALTSVC (RFC 7838): unknown here

    def test_frame_types(self) -> None:
        assert [t.value for t in FrameType] == list(range(10))
        for frame in (
            DataFrame(1),
            HeadersFrame(1),
            PriorityFrame(1),
            RstStreamFrame(1),
            SettingsFrame(),
            PushPromiseFrame(1, 2),
            PingFrame(),
            GoAwayFrame(0),
            WindowUpdateFrame(0, 1),
            ContinuationFrame(1),
        ):
            assert frame.serialize()[3] == frame.frame_type
        # Frames of the connection say so uniformly.
        assert SettingsFrame().stream_id == PingFrame().stream_id == GoAwayFrame(5).stream_id == 0

    def test_registries(self) -> None:
        # §7 and §6.5.2 (with RFC 8441 §3), by value.
        assert [c.value for c in ErrorCode] == list(range(14))
        assert ErrorCode.HTTP_1_1_REQUIRED.value == 0xD
        assert [c.value for c in SettingCode] == [1, 2, 3, 4, 5, 6, 8]

    @BYTEWISE
    def test_several_frames_in_a_row(self, bytewise: bool) -> None:
        data = (
            h("000000 04 00 00000000")
            + h("000004 08 00 00000000 00010000")
            + h("000005 00 01 00000001 68656c6c6f")
        )
        assert read(data, bytewise=bytewise) == [
            SettingsFrame(),
            WindowUpdateFrame(0, 65536),
            DataFrame(1, b"hello", end_stream=True),
        ]


class TestReservedAndUnknown:
    """RFC 9113 §4.1: the reserved bit and undefined flags are ignored on receipt, never sent."""

    @BYTEWISE
    def test_reserved_bit_of_the_stream_identifier(self, bytewise: bool) -> None:
        assert read(h("000001 00 00 80000001 61"), bytewise=bytewise) == [DataFrame(1, b"a")]
        # A SETTINGS frame whose only set bit is the reserved one is on stream 0.
        assert read(h("000000 04 00 80000000"), bytewise=bytewise) == [SettingsFrame()]

    @BYTEWISE
    def test_reserved_bits_of_payload_fields(self, bytewise: bool) -> None:
        # WINDOW_UPDATE increment (§6.9), GOAWAY last stream id (§6.8), PUSH_PROMISE promised id (§6.6).
        data = (
            h("000004 08 00 00000001 80000001")
            + h("000008 07 00 00000000 80000005 00000000")
            + h("000004 05 04 00000001 80000002")
        )
        assert read(data, bytewise=bytewise) == [
            WindowUpdateFrame(1, 1),
            GoAwayFrame(5),
            PushPromiseFrame(1, 2),
        ]

    @BYTEWISE
    def test_undefined_flags(self, bytewise: bool) -> None:
        data = (
            h("000001 00 f6 00000001 61")  # DATA: every flag but PADDED and END_STREAM
            + h("000000 04 fe 00000000")  # SETTINGS: every flag but ACK
            + h("000008 06 fe 00000000 0000000000000000")  # PING: likewise
            + h("000005 02 ff 00000003 00000000 0f")  # PRIORITY defines no flag
            + h("000004 03 ff 00000003 00000000")  # RST_STREAM neither
            + h("000001 01 d2 00000003 82")  # HEADERS: all but PRIORITY, PADDED, END_HEADERS, END_STREAM
            + h("000001 09 fb 00000003 84")  # CONTINUATION: all but END_HEADERS
            + h("000001 09 ff 00000003 86")  # ... and with it
        )
        assert read(data, bytewise=bytewise) == [
            DataFrame(1, b"a"),
            SettingsFrame(),
            PingFrame(),
            PriorityFrame(3, Priority(0, 16)),
            RstStreamFrame(3, ErrorCode.NO_ERROR),
            HeadersFrame(3, h("82"), end_headers=False),
            ContinuationFrame(3, h("84"), end_headers=False),
            ContinuationFrame(3, h("86")),
        ]

    def test_unknown_error_codes_are_kept(self) -> None:
        # §7: "Unknown or unsupported error codes MUST NOT trigger any special behavior".
        (frame,) = read(h("000004 03 00 00000001 000000ff"), bytewise=False)
        assert frame == RstStreamFrame(1, 0xFF)
        assert isinstance(frame, RstStreamFrame) and type(frame.error_code) is int
        (frame,) = read(h("000008 07 00 00000000 00000000 00000002"), bytewise=False)
        assert isinstance(frame, GoAwayFrame) and frame.error_code is ErrorCode.INTERNAL_ERROR


# --- §4.2: frame size ---------------------------------------------------------------------------------------


class TestFrameSize:
    """RFC 9113 §4.2: the declared length is checked against SETTINGS_MAX_FRAME_SIZE on the header."""

    def test_default_is_the_limit(self) -> None:
        assert DEFAULT_LIMITS.h2_max_frame_size == DEFAULT_MAX_FRAME_SIZE == 16384
        assert FrameReader().max_frame_size == 16384

    @BYTEWISE
    def test_at_the_limit(self, bytewise: bool) -> None:
        data = encode_frame(FrameType.DATA, 0, 1, bytes(16384))
        assert read(data, bytewise=bytewise) == [DataFrame(1, bytes(16384))]

    @BYTEWISE
    @pytest.mark.parametrize("frame_type", [0, 1, 4, 9, 0x42])
    def test_over_the_limit_header_alone(self, bytewise: bool, frame_type: int) -> None:
        # length 16385: refused as soon as the 9 octets are in; the payload is never sent here at all.
        header = struct.pack("!HBBBL", 16385 >> 8, 16385 & 0xFF, frame_type, 0, 1)
        exc = connection_error(header, bytewise=bytewise)
        assert exc.code == ErrorCode.FRAME_SIZE_ERROR
        assert "of 16385 octets, the limit is 16384" in str(exc)

    def test_the_largest_length_costs_nine_octets(self) -> None:
        reader = FrameReader()
        reader.feed(h("ffffff 00 00 00000001"))
        with pytest.raises(H2ConnectionError, match="16777215 octets"):
            reader.next_frame()

    def test_eight_octets_are_not_a_header(self) -> None:
        reader = FrameReader()
        reader.feed(h("ffffff 00 00 000000"))
        assert reader.next_frame() is None

    @BYTEWISE
    def test_a_raised_limit(self, bytewise: bool) -> None:
        data = encode_frame(FrameType.DATA, 0, 1, bytes(20000))
        assert read(data, bytewise=bytewise, max_frame_size=LARGEST_MAX_FRAME_SIZE) == [
            DataFrame(1, bytes(20000))
        ]
        assert connection_error(data, bytewise=bytewise).code == ErrorCode.FRAME_SIZE_ERROR


# --- §6: stream identifiers ---------------------------------------------------------------------------------

# A valid payload for each type, so that only the stream identifier is wrong.
_STREAM_FRAMES = [
    (FrameType.DATA, h("")),
    (FrameType.HEADERS, h("82")),
    (FrameType.PRIORITY, h("00000000 0f")),
    (FrameType.RST_STREAM, h("00000000")),
    (FrameType.PUSH_PROMISE, h("00000002")),
]
_CONNECTION_FRAMES = [
    (FrameType.SETTINGS, h("")),
    (FrameType.PING, bytes(8)),
    (FrameType.GOAWAY, bytes(8)),
]


class TestStreamIdentifiers:
    """RFC 9113 §6.1-§6.10: which frames need a stream and which belong to the connection."""

    @BYTEWISE
    @pytest.mark.parametrize("frame_type, payload", _STREAM_FRAMES, ids=[t.name for t, _ in _STREAM_FRAMES])
    def test_stream_frames_on_stream_0(self, bytewise: bool, frame_type: FrameType, payload: bytes) -> None:
        data = encode_frame(frame_type, END_HEADERS, 0, payload)
        assert_connection_error(
            data, ErrorCode.PROTOCOL_ERROR, bytewise, f"{frame_type.name} frame on stream 0"
        )

    @BYTEWISE
    def test_continuation_on_stream_0(self, bytewise: bool) -> None:
        # §6.10: stream 0 can never hold the open field block, so this breaks §4.3 too.
        data = h("000001 01 00 00000001 82") + h("000001 09 04 00000000 84")
        assert_connection_error(
            data, ErrorCode.PROTOCOL_ERROR, bytewise, "CONTINUATION frame on stream 0 inside"
        )

    @BYTEWISE
    @pytest.mark.parametrize(
        "frame_type, payload", _CONNECTION_FRAMES, ids=[t.name for t, _ in _CONNECTION_FRAMES]
    )
    def test_connection_frames_on_a_stream(
        self, bytewise: bool, frame_type: FrameType, payload: bytes
    ) -> None:
        data = encode_frame(frame_type, 0, 1, payload)
        assert_connection_error(
            data,
            ErrorCode.PROTOCOL_ERROR,
            bytewise,
            f"{frame_type.name} frame on stream 1, expected stream 0",
        )

    @BYTEWISE
    def test_window_update_and_unknown_go_anywhere(self, bytewise: bool) -> None:
        data = h("000004 08 00 00000000 00000001") + h("000004 08 00 00000009 00000001")
        data += h("000000 fe 00 00000000") + h("000000 fe 00 00000009")
        assert read(data, bytewise=bytewise) == [
            WindowUpdateFrame(0, 1),
            WindowUpdateFrame(9, 1),
            UnknownFrame(0xFE, 0, 0),
            UnknownFrame(0xFE, 0, 9),
        ]

    @BYTEWISE
    @pytest.mark.parametrize("promised", [0, 1, 3, MAX_STREAM_ID])
    def test_push_promise_of_a_stream_no_server_can_open(self, bytewise: bool, promised: int) -> None:
        # §6.6, §5.1.1: stream 0 is never a new stream, and a server's streams are even. The reserved
        # bit does not make 0x80000000 a valid id.
        for field in (promised, promised | 0x80000000):
            data = encode_frame(FrameType.PUSH_PROMISE, END_HEADERS, 1, struct.pack("!L", field))
            assert_connection_error(
                data, ErrorCode.PROTOCOL_ERROR, bytewise, f"promises stream {promised}, expected an even"
            )


# --- §6: lengths --------------------------------------------------------------------------------------------


class TestFixedLengths:
    """RFC 9113 §6.3, §6.4, §6.5, §6.7, §6.8, §6.9: fixed and minimum payload lengths."""

    @BYTEWISE
    @pytest.mark.parametrize("length", [0, 4, 6, 16])
    def test_priority_is_a_stream_error(self, bytewise: bool, length: int) -> None:
        # §6.3: "a stream error (Section 5.4.2) of type FRAME_SIZE_ERROR": the frame is skipped and the
        # next one is read.
        data = encode_frame(FrameType.PRIORITY, 0, 3, bytes(length)) + h("000000 04 01 00000000")
        items = read(data, bytewise=bytewise)
        assert len(items) == 2 and items[1] == SettingsFrame(ack=True)
        error = items[0]
        assert isinstance(error, H2StreamError)
        assert (error.stream_id, error.code) == (3, ErrorCode.FRAME_SIZE_ERROR)
        assert str(error) == f"PRIORITY frame on stream 3 of {length} octets, expected 5"

    @BYTEWISE
    @pytest.mark.parametrize(
        "frame_type, stream_id, length",
        [
            (FrameType.RST_STREAM, 1, 3),
            (FrameType.RST_STREAM, 1, 5),
            (FrameType.PING, 0, 7),
            (FrameType.PING, 0, 9),
            (FrameType.PING, 0, 0),
            (FrameType.WINDOW_UPDATE, 0, 3),
            (FrameType.WINDOW_UPDATE, 1, 5),
        ],
    )
    def test_fixed_lengths_are_connection_errors(
        self, bytewise: bool, frame_type: FrameType, stream_id: int, length: int
    ) -> None:
        # §6.4, §6.7, §6.9: checked on the header, before the payload is waited for: send none of it.
        header = encode_frame(frame_type, 0, stream_id, bytes(length))[:9]
        expected = {FrameType.PING: 8}.get(frame_type, 4)
        assert_connection_error(
            header,
            ErrorCode.FRAME_SIZE_ERROR,
            bytewise,
            f"{frame_type.name} frame of {length} octets, expected {expected}",
        )

    @BYTEWISE
    @pytest.mark.parametrize("length", [1, 5, 7, 13])
    def test_settings_not_a_multiple_of_6(self, bytewise: bool, length: int) -> None:
        assert_connection_error(
            encode_frame(FrameType.SETTINGS, 0, 0, bytes(length))[:9],
            ErrorCode.FRAME_SIZE_ERROR,
            bytewise,
            "expected a multiple of 6",
        )

    @BYTEWISE
    @pytest.mark.parametrize("length", [1, 6])
    def test_settings_ack_with_a_payload(self, bytewise: bool, length: int) -> None:
        # §6.5: "Receipt of a SETTINGS frame with the ACK flag set and a length field value other than 0
        # MUST be treated as a connection error ... of type FRAME_SIZE_ERROR" (h2 is lenient here).
        assert_connection_error(
            encode_frame(FrameType.SETTINGS, ACK, 0, bytes(length)),
            ErrorCode.FRAME_SIZE_ERROR,
            bytewise,
            f"SETTINGS acknowledgement of {length} octets",
        )

    @BYTEWISE
    def test_goaway_too_short(self, bytewise: bool) -> None:
        assert_connection_error(
            encode_frame(FrameType.GOAWAY, 0, 0, bytes(7)), ErrorCode.FRAME_SIZE_ERROR, bytewise, "at least 8"
        )

    @BYTEWISE
    @pytest.mark.parametrize(
        "frame_type, flags, length, minimum",
        [
            (FrameType.DATA, PADDED, 0, 1),
            (FrameType.HEADERS, PADDED | END_HEADERS, 0, 1),
            (FrameType.HEADERS, PRIORITY | END_HEADERS, 4, 5),
            (FrameType.HEADERS, PRIORITY | PADDED | END_HEADERS, 5, 6),
            (FrameType.PUSH_PROMISE, END_HEADERS, 3, 4),
            (FrameType.PUSH_PROMISE, PADDED | END_HEADERS, 4, 5),
        ],
    )
    def test_too_short_for_the_flagged_fields(
        self, bytewise: bool, frame_type: FrameType, flags: int, length: int, minimum: int
    ) -> None:
        # §4.2: "too small to contain mandatory frame data" is FRAME_SIZE_ERROR; frames carrying a field
        # block make it a connection error (and rawrt treats the DATA case the same, §5.4.1).
        header = encode_frame(frame_type, flags, 1, bytes(length))[:9]
        assert_connection_error(
            header, ErrorCode.FRAME_SIZE_ERROR, bytewise, f"of {length} octets, its flags call for {minimum}"
        )


# --- §6.1, §6.2, §6.6: padding ------------------------------------------------------------------------------


class TestPadding:
    """RFC 9113 §6.1, §6.2, §6.6: padding longer than the payload is a connection PROTOCOL_ERROR."""

    @BYTEWISE
    @pytest.mark.parametrize("pad_length", [1, 2, 255])
    def test_data_padding_as_long_as_the_payload(self, bytewise: bool, pad_length: int) -> None:
        # length 1: only the Pad Length octet; any padding at all is "the length of the frame payload or
        # greater".
        data = encode_frame(FrameType.DATA, PADDED, 1, bytes((pad_length,)))
        assert_connection_error(
            data, ErrorCode.PROTOCOL_ERROR, bytewise, f"Pad Length of {pad_length}, but only 0"
        )

    @BYTEWISE
    def test_data_padding_filling_the_payload_exactly(self, bytewise: bool) -> None:
        data = encode_frame(FrameType.DATA, PADDED | END_STREAM, 1, h("04 00000000"))
        assert read(data, bytewise=bytewise) == [DataFrame(1, b"", end_stream=True, padding=4)]
        data = encode_frame(FrameType.DATA, PADDED, 1, h("05 00000000"))
        assert_connection_error(data, ErrorCode.PROTOCOL_ERROR, bytewise, "Pad Length of 5, but only 4")

    @BYTEWISE
    def test_headers_padding(self, bytewise: bool) -> None:
        ok = encode_frame(FrameType.HEADERS, PADDED | END_HEADERS, 1, h("02 82 0000"))
        assert read(ok, bytewise=bytewise) == [HeadersFrame(1, h("82"), padding=2)]
        bad = encode_frame(FrameType.HEADERS, PADDED | END_HEADERS, 1, h("04 82 0000"))
        assert_connection_error(
            bad, ErrorCode.PROTOCOL_ERROR, bytewise, "HEADERS frame on stream 1 has a Pad Length of 4"
        )

    @BYTEWISE
    def test_headers_padding_counts_the_priority_fields(self, bytewise: bool) -> None:
        # Payload 8 = Pad Length + 5 priority octets + 2: a Pad Length of 3 is shorter than the payload
        # but longer than what follows the fixed fields.
        ok = encode_frame(FrameType.HEADERS, PADDED | PRIORITY | END_HEADERS, 1, h("02 00000000 0f 0000"))
        assert read(ok, bytewise=bytewise) == [HeadersFrame(1, b"", priority=Priority(), padding=2)]
        bad = encode_frame(FrameType.HEADERS, PADDED | PRIORITY | END_HEADERS, 1, h("03 00000000 0f 0000"))
        assert_connection_error(
            bad, ErrorCode.PROTOCOL_ERROR, bytewise, "only 2 octets follow its fixed fields"
        )

    @BYTEWISE
    def test_push_promise_padding(self, bytewise: bool) -> None:
        bad = encode_frame(FrameType.PUSH_PROMISE, PADDED | END_HEADERS, 1, h("02 00000002 00"))
        assert_connection_error(bad, ErrorCode.PROTOCOL_ERROR, bytewise, "PUSH_PROMISE frame on stream 1")

    @BYTEWISE
    def test_padding_octets_are_not_checked(self, bytewise: bool) -> None:
        # §6.1: "A receiver is not obligated to verify padding".
        data = encode_frame(FrameType.DATA, PADDED, 1, h("02 61 ffff"))
        assert read(data, bytewise=bytewise) == [DataFrame(1, b"a", padding=2)]


# --- §6.5.2: settings values --------------------------------------------------------------------------------


def settings_frame(identifier: int, value: int) -> bytes:
    return encode_frame(FrameType.SETTINGS, 0, 0, struct.pack("!HL", identifier, value))


class TestSettingsValues:
    """RFC 9113 §6.5.2 and RFC 8441 §3: values that are connection errors."""

    @BYTEWISE
    @pytest.mark.parametrize(
        "identifier, value, code",
        [
            (SettingCode.ENABLE_PUSH, 2, ErrorCode.PROTOCOL_ERROR),
            (SettingCode.ENABLE_PUSH, 2**32 - 1, ErrorCode.PROTOCOL_ERROR),
            (SettingCode.INITIAL_WINDOW_SIZE, 2**31, ErrorCode.FLOW_CONTROL_ERROR),
            (SettingCode.INITIAL_WINDOW_SIZE, 2**32 - 1, ErrorCode.FLOW_CONTROL_ERROR),
            (SettingCode.MAX_FRAME_SIZE, 0, ErrorCode.PROTOCOL_ERROR),
            (SettingCode.MAX_FRAME_SIZE, 16383, ErrorCode.PROTOCOL_ERROR),
            (SettingCode.MAX_FRAME_SIZE, 2**24, ErrorCode.PROTOCOL_ERROR),
            (SettingCode.ENABLE_CONNECT_PROTOCOL, 2, ErrorCode.PROTOCOL_ERROR),
        ],
    )
    def test_invalid(self, bytewise: bool, identifier: SettingCode, value: int, code: ErrorCode) -> None:
        assert_connection_error(
            settings_frame(identifier, value), code, bytewise, f"SETTINGS_{identifier.name} of {value}"
        )
        with pytest.raises(LocalProtocolError, match=f"SETTINGS_{identifier.name}"):
            SettingsFrame(((identifier, value),)).serialize()

    @BYTEWISE
    @pytest.mark.parametrize(
        "identifier, value",
        [
            (SettingCode.ENABLE_PUSH, 0),
            (SettingCode.ENABLE_PUSH, 1),
            (SettingCode.INITIAL_WINDOW_SIZE, 0),
            (SettingCode.INITIAL_WINDOW_SIZE, 2**31 - 1),
            (SettingCode.MAX_FRAME_SIZE, 16384),
            (SettingCode.MAX_FRAME_SIZE, 2**24 - 1),
            (SettingCode.ENABLE_CONNECT_PROTOCOL, 0),
            (SettingCode.HEADER_TABLE_SIZE, 2**32 - 1),
            (SettingCode.MAX_CONCURRENT_STREAMS, 0),
            (SettingCode.MAX_HEADER_LIST_SIZE, 2**32 - 1),
            (0, 2**32 - 1),  # identifier 0 is not defined: kept, whatever its value
            (7, 5),
            (0xFFFF, 9),
        ],
    )
    def test_valid(self, bytewise: bool, identifier: int, value: int) -> None:
        assert read(settings_frame(identifier, value), bytewise=bytewise) == [
            SettingsFrame(((identifier, value),))
        ]

    @BYTEWISE
    def test_a_bad_value_after_good_ones(self, bytewise: bool) -> None:
        data = encode_frame(FrameType.SETTINGS, 0, 0, struct.pack("!HLHL", 1, 0, 5, 1))
        assert_connection_error(data, ErrorCode.PROTOCOL_ERROR, bytewise, "SETTINGS_MAX_FRAME_SIZE of 1")


# --- §6.9: WINDOW_UPDATE increment --------------------------------------------------------------------------


class TestWindowUpdate:
    """RFC 9113 §6.9: a zero increment is a stream error on a stream, a connection error on stream 0."""

    @BYTEWISE
    @pytest.mark.parametrize("increment", ["00000000", "80000000"])
    def test_zero_on_a_stream(self, bytewise: bool, increment: str) -> None:
        data = h("000004 08 00 00000007" + increment) + h("000004 08 00 00000007 00000001")
        items = read(data, bytewise=bytewise)
        assert items[1:] == [WindowUpdateFrame(7, 1)]
        error = items[0]
        assert isinstance(error, H2StreamError)
        assert (error.stream_id, error.code) == (7, ErrorCode.PROTOCOL_ERROR)
        assert str(error) == "WINDOW_UPDATE frame on stream 7 with increment 0"

    @BYTEWISE
    def test_zero_on_the_connection(self, bytewise: bool) -> None:
        assert_connection_error(
            h("000004 08 00 00000000 00000000"),
            ErrorCode.PROTOCOL_ERROR,
            bytewise,
            "on stream 0 with increment 0",
        )


# --- §4.3, §6.10: field blocks ------------------------------------------------------------------------------


class TestFieldBlocks:
    """RFC 9113 §4.3, §5.5, §6.2, §6.10: a field block's frames come in one unbroken run."""

    OPEN = h("000001 01 00 00000001 82")  # HEADERS on stream 1 without END_HEADERS

    @BYTEWISE
    @pytest.mark.parametrize(
        "intruder, name",
        [
            (h("000001 00 00 00000001 61"), "DATA frame on stream 1"),
            (h("000000 04 01 00000000"), "SETTINGS frame on stream 0"),
            (h("000001 01 04 00000003 82"), "HEADERS frame on stream 3"),
            (h("000001 09 04 00000003 82"), "CONTINUATION frame on stream 3"),
            (h("000005 02 00 00000001 00000000 0f"), "PRIORITY frame on stream 1"),
            # §5.5: "extension frames that appear in the middle of a field block ... MUST be treated as
            # a connection error".
            (h("000000 fe 00 00000001"), "extension (type 0xfe) frame on stream 1"),
        ],
    )
    def test_interleaved_frames(self, bytewise: bool, intruder: bytes, name: str) -> None:
        exc = connection_error(self.OPEN + intruder, bytewise=bytewise)
        assert exc.code == ErrorCode.PROTOCOL_ERROR
        assert str(exc) == f"{name} inside the field block of stream 1, expected CONTINUATION on stream 1"

    @BYTEWISE
    def test_interleaved_in_push_promise_block(self, bytewise: bool) -> None:
        data = h("000004 05 00 00000001 00000002") + h("000001 09 04 00000002 82")
        assert_connection_error(
            data, ErrorCode.PROTOCOL_ERROR, bytewise, "inside the field block of stream 1"
        )

    @BYTEWISE
    def test_continuation_with_no_open_block(self, bytewise: bool) -> None:
        assert_connection_error(
            h("000001 09 04 00000001 82"), ErrorCode.PROTOCOL_ERROR, bytewise, "with no field block open"
        )
        # ... nor after a block closed by END_HEADERS.
        data = self.OPEN + h("000001 09 04 00000001 84") + h("000001 09 04 00000001 86")
        assert_connection_error(data, ErrorCode.PROTOCOL_ERROR, bytewise, "with no field block open")

    @BYTEWISE
    def test_other_frames_after_the_block(self, bytewise: bool) -> None:
        data = self.OPEN + h("000000 09 04 00000001") + h("000001 00 01 00000001 61")
        assert read(data, bytewise=bytewise) == [
            HeadersFrame(1, h("82"), end_headers=False),
            ContinuationFrame(1),
            DataFrame(1, b"a", end_stream=True),
        ]


# --- The reader's contract ----------------------------------------------------------------------------------


class TestReader:
    """The FrameReader surface: None for more, errors sticky or not, iteration."""

    def test_needs_more(self) -> None:
        reader = FrameReader()
        assert reader.next_frame() is None
        reader.feed(h("000005 00 01 00000001"))
        assert reader.next_frame() is None  # the header passed its checks; the payload is awaited
        reader.feed(b"hel")
        assert reader.next_frame() is None
        reader.feed(bytearray(b"lo"))
        assert reader.next_frame() == DataFrame(1, b"hello", end_stream=True)
        assert reader.next_frame() is None

    def test_accepts_memoryview(self) -> None:
        reader = FrameReader()
        reader.feed(memoryview(h("000000 04 01 00000000")))
        assert list(reader) == [SettingsFrame(ack=True)]

    def test_iteration(self) -> None:
        reader = FrameReader()
        reader.feed(h("000000 04 00 00000000") * 3 + h("000000"))
        assert list(reader) == [SettingsFrame()] * 3
        assert list(reader) == []
        reader.feed(h("04 01 00000000"))
        assert next(iter(reader)) == SettingsFrame(ack=True)

    def test_connection_errors_are_final(self) -> None:
        reader = FrameReader()
        reader.feed(h("000000 00 00 00000000") + h("000000 04 00 00000000"))
        with pytest.raises(H2ConnectionError) as first:
            reader.next_frame()
        reader.feed(h("000000 04 00 00000000"))  # ignored: nothing will read it
        with pytest.raises(H2ConnectionError) as second:
            reader.next_frame()
        assert second.value is first.value
        with pytest.raises(H2ConnectionError):
            list(reader)

    def test_stream_errors_are_not(self) -> None:
        reader = FrameReader()
        reader.feed(h("000004 08 00 00000001 00000000") * 2 + h("000000 04 01 00000000"))
        with pytest.raises(H2StreamError):
            next(reader)
        with pytest.raises(H2StreamError):
            list(reader)
        assert list(reader) == [SettingsFrame(ack=True)]

    def test_error_tree(self) -> None:
        # Both kinds are H2Error, a RemoteProtocolError: the peer broke the protocol.
        assert issubclass(H2ConnectionError, H2Error) and issubclass(H2StreamError, H2Error)
        assert issubclass(H2Error, RemoteProtocolError)
        exc = H2StreamError(3, ErrorCode.CANCEL, "why")
        assert (exc.stream_id, exc.code, str(exc)) == (3, ErrorCode.CANCEL, "why")


# --- Writing ------------------------------------------------------------------------------------------------


class TestSerializeValidation:
    """serialize() refuses what RFC 9113 forbids sending, with LocalProtocolError (a bug in the caller)."""

    @pytest.mark.parametrize(
        "frame, match",
        [
            (DataFrame(0), "DATA frame on stream 0, expected a stream id in 1..2\\*\\*31-1"),
            (DataFrame(2**31), "on stream 2147483648"),
            (DataFrame(-1), "on stream -1"),
            (DataFrame(1, padding=256), "padding of 256 octets"),
            (DataFrame(1, padding=-1), "padding of -1 octets"),
            (DataFrame(1, bytes(2**24)), "frame payload of 16777216 octets"),
            (HeadersFrame(0), "HEADERS frame on stream 0"),
            (HeadersFrame(1, padding=300), "padding of 300"),
            (HeadersFrame(1, priority=Priority(weight=0)), "weight 0 is outside 1..256"),
            (HeadersFrame(1, priority=Priority(weight=257)), "weight 257"),
            (HeadersFrame(1, priority=Priority(depends_on=2**31)), "dependency 2147483648"),
            (HeadersFrame(1, priority=Priority(depends_on=-1)), "dependency -1"),
            (PriorityFrame(0), "PRIORITY frame on stream 0"),
            (RstStreamFrame(0), "RST_STREAM frame on stream 0"),
            (RstStreamFrame(1, 2**32), "error code 4294967296 is not 32 bits"),
            (RstStreamFrame(1, -1), "error code -1"),
            (SettingsFrame(((1, 1),), ack=True), "acknowledgement carries no settings"),
            (SettingsFrame(((0x10000, 1),)), "identifier 65536 is not 16 bits"),
            (SettingsFrame(((-1, 1),)), "identifier -1"),
            (SettingsFrame(((1, 2**32),)), "setting value 4294967296"),
            (PushPromiseFrame(0, 2), "PUSH_PROMISE frame on stream 0"),
            (PushPromiseFrame(1, 0), "promised stream 0 is not an even stream id in 2..2\\*\\*31-2"),
            (PushPromiseFrame(1, 3), "promised stream 3"),
            (PushPromiseFrame(1, 2**31), "promised stream 2147483648"),
            (PushPromiseFrame(1, 2, padding=256), "padding of 256"),
            (PingFrame(bytes(7)), "PING opaque data of 7 octets, expected 8"),
            (PingFrame(bytes(9), ack=True), "of 9 octets"),
            (GoAwayFrame(-1), "last stream id -1"),
            (GoAwayFrame(2**31), "last stream id 2147483648"),
            (GoAwayFrame(0, 2**32), "error code 4294967296"),
            (WindowUpdateFrame(0, 0), "window increment 0"),
            (WindowUpdateFrame(0, 2**31), "window increment 2147483648"),
            (WindowUpdateFrame(-1, 1), "WINDOW_UPDATE frame on stream -1, expected a stream id in 0..2"),
            (ContinuationFrame(0), "CONTINUATION frame on stream 0"),
            (UnknownFrame(0x0, 0, 1), "frame type 0 is not an extension frame type"),
            (UnknownFrame(0x9, 0, 1), "frame type 9"),
            (UnknownFrame(0x100, 0, 1), "frame type 256"),
            (UnknownFrame(0xA, 0x100, 1), "flags 256 are not 8 bits"),
            (UnknownFrame(0xA, -1, 1), "flags -1"),
            (UnknownFrame(0xA, 0, 2**31), "extension frame on stream 2147483648"),
        ],
    )
    def test_refused(self, frame: Frame, match: str) -> None:
        with pytest.raises(LocalProtocolError, match=match):
            frame.serialize()

    def test_limits_of_what_is_accepted(self) -> None:
        assert len(DataFrame(MAX_STREAM_ID, bytes(2**24 - 1)).serialize()) == 9 + 2**24 - 1
        assert HeadersFrame(1, priority=Priority(MAX_STREAM_ID, 1), padding=255).serialize()
        assert WindowUpdateFrame(MAX_STREAM_ID, MAX_WINDOW_SIZE).serialize()
        assert GoAwayFrame(MAX_STREAM_ID, 2**32 - 1).serialize()
        assert UnknownFrame(0xFF, 0xFF, MAX_STREAM_ID).serialize()

    def test_encode_frame_writes_what_it_is_given(self) -> None:
        # Tests build frames a peer should not send: a reserved bit, a type with a known number.
        assert encode_frame(0xFF, 0xFF, 0xFFFFFFFF, b"x") == h("000001 ff ff ffffffff 78")
        assert encode_frame(FrameType.PING, 0, 0, bytearray(2)) == h("000002 06 00 00000000 0000")
        with pytest.raises(LocalProtocolError, match="at most 2\\*\\*24-1"):
            encode_frame(0, 0, 1, bytes(2**24))


class TestSplitting:
    """RFC 9113 §4.2, §4.3, §6.10: cutting a field block or a body to the peer's SETTINGS_MAX_FRAME_SIZE."""

    def test_header_block_that_fits(self) -> None:
        assert split_header_block(1, b"abc", max_frame_size=16384, end_stream=True) == [
            HeadersFrame(1, b"abc", end_stream=True)
        ]
        assert split_header_block(1, b"", max_frame_size=16384) == [HeadersFrame(1, b"")]
        block = bytes(16384)
        assert split_header_block(1, block, max_frame_size=16384) == [HeadersFrame(1, block)]

    def test_header_block_in_three(self) -> None:
        block = bytes(range(256)) * 130  # 33,280 octets: 16384 + 16384 + 512
        frames = split_header_block(3, block, max_frame_size=16384, end_stream=True)
        assert frames == [
            HeadersFrame(3, block[:16384], end_stream=True, end_headers=False),
            ContinuationFrame(3, block[16384:32768], end_headers=False),
            ContinuationFrame(3, block[32768:]),
        ]
        # The serialised run reads back as the same frames, every one within the size.
        data = b"".join(frame.serialize() for frame in frames)
        assert read(data, bytewise=False) == frames

    def test_header_block_exact_multiple(self) -> None:
        block = bytes(32768)
        frames = split_header_block(1, block, max_frame_size=16384)
        assert [type(f) for f in frames] == [HeadersFrame, ContinuationFrame]
        assert isinstance(frames[-1], ContinuationFrame) and frames[-1].end_headers

    def test_header_block_with_padding(self) -> None:
        # Padding takes room from the HEADERS frame only: 16384 - 1 - 10 octets of fragment fit.
        block = bytes(16380)
        frames = split_header_block(1, block, max_frame_size=16384, padding=10)
        assert frames == [
            HeadersFrame(1, block[:16373], end_headers=False, padding=10),
            ContinuationFrame(1, block[16373:]),
        ]
        assert all(len(frame.serialize()) <= 9 + 16384 for frame in frames)

    def test_header_block_refusals(self) -> None:
        with pytest.raises(LocalProtocolError, match="max_frame_size 16383 is outside"):
            split_header_block(1, b"", max_frame_size=16383)
        with pytest.raises(LocalProtocolError, match="padding of 256"):
            split_header_block(1, b"", max_frame_size=16384, padding=256)

    def test_data(self) -> None:
        assert split_data(1, b"", max_frame_size=16384) == [DataFrame(1)]
        assert split_data(1, b"", max_frame_size=16384, end_stream=True) == [DataFrame(1, end_stream=True)]
        assert split_data(1, b"ab", max_frame_size=16384, end_stream=True) == [DataFrame(1, b"ab", True)]
        body = bytes(40000)
        assert split_data(5, body, max_frame_size=16384, end_stream=True) == [
            DataFrame(5, body[:16384]),
            DataFrame(5, body[16384:32768]),
            DataFrame(5, body[32768:], end_stream=True),
        ]
        assert split_data(5, body[:32768], max_frame_size=16384) == [
            DataFrame(5, body[:16384]),
            DataFrame(5, body[16384:32768]),
        ]
        with pytest.raises(LocalProtocolError, match="16777216 is outside"):
            split_data(1, b"", max_frame_size=2**24)


# --- Hypothesis: round trips --------------------------------------------------------------------------------

stream_ids = st.integers(1, MAX_STREAM_ID)
paddings = st.none() | st.integers(0, 255)
fragments = st.binary(max_size=64)
error_codes = st.sampled_from(list(ErrorCode)) | st.integers(0, 2**32 - 1)
priorities = st.builds(Priority, st.integers(0, MAX_STREAM_ID), st.integers(1, 256), st.booleans())

_SETTING_VALUES: dict[int, st.SearchStrategy[int]] = {
    SettingCode.ENABLE_PUSH: st.integers(0, 1),
    SettingCode.ENABLE_CONNECT_PROTOCOL: st.integers(0, 1),
    SettingCode.INITIAL_WINDOW_SIZE: st.integers(0, MAX_WINDOW_SIZE),
    SettingCode.MAX_FRAME_SIZE: st.integers(DEFAULT_MAX_FRAME_SIZE, LARGEST_MAX_FRAME_SIZE),
}


@st.composite
def a_setting(draw: st.DrawFn) -> tuple[int, int]:
    identifier = draw(st.sampled_from(list(SettingCode)) | st.integers(0, 0xFFFF))
    return identifier, draw(_SETTING_VALUES.get(identifier, st.integers(0, 2**32 - 1)))


settings_frames = st.builds(SettingsFrame, st.lists(a_setting(), max_size=6).map(tuple)) | st.just(
    SettingsFrame(ack=True)
)

#: Frames that stand alone (not part of a field block).
single_frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(DataFrame, stream_ids, st.binary(max_size=300), st.booleans(), paddings),
    st.builds(PriorityFrame, stream_ids, priorities),
    st.builds(RstStreamFrame, stream_ids, error_codes),
    settings_frames,
    st.builds(PingFrame, st.binary(min_size=8, max_size=8), st.booleans()),
    st.builds(GoAwayFrame, st.integers(0, MAX_STREAM_ID), error_codes, st.binary(max_size=40)),
    st.builds(WindowUpdateFrame, st.integers(0, MAX_STREAM_ID), st.integers(1, MAX_WINDOW_SIZE)),
    st.builds(
        UnknownFrame, st.integers(0xA, 0xFF), st.integers(0, 0xFF), st.integers(0, MAX_STREAM_ID), fragments
    ),
)


@st.composite
def field_blocks(draw: st.DrawFn) -> list[Frame]:
    """A HEADERS or PUSH_PROMISE frame and its CONTINUATION frames, END_HEADERS on the last only."""
    stream_id = draw(stream_ids)
    continuations = draw(st.integers(0, 3))
    opener: Frame
    if draw(st.booleans()):
        opener = HeadersFrame(
            stream_id,
            draw(fragments),
            draw(st.booleans()),
            not continuations,
            draw(st.none() | priorities),
            draw(paddings),
        )
    else:
        promised = draw(st.integers(1, MAX_STREAM_ID // 2)) * 2  # §5.1.1: a server's streams are even
        opener = PushPromiseFrame(stream_id, promised, draw(fragments), not continuations, draw(paddings))
    block: list[Frame] = [opener]
    block += [
        ContinuationFrame(stream_id, draw(fragments), i == continuations - 1) for i in range(continuations)
    ]
    return block


frame_sequences = st.lists(single_frames.map(lambda f: [f]) | field_blocks(), max_size=8).map(
    lambda units: [frame for unit in units for frame in unit]
)


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points."""
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


class TestRoundTrip:
    """Hypothesis: serialize then read gives the frames back, for every type, however the bytes are cut."""

    @settings(max_examples=300, deadline=None)
    @given(frame_sequences, st.data())
    def test_sequences(self, frames: list[Frame], data: st.DataObject) -> None:
        wire = b"".join(frame.serialize() for frame in frames)
        assert read_chunks([wire]) == frames
        assert read_chunks(data.draw(cuts(wire))) == frames

    @settings(max_examples=50, deadline=None)
    @given(single_frames | field_blocks().map(lambda block: block[0]))
    def test_bytewise(self, frame: Frame) -> None:
        assert read(frame.serialize(), bytewise=True) == [frame]

    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=70_000), st.booleans(), st.integers(DEFAULT_MAX_FRAME_SIZE, 40_000))
    def test_split_data(self, body: bytes, end_stream: bool, max_frame_size: int) -> None:
        frames = split_data(1, body, max_frame_size=max_frame_size, end_stream=end_stream)
        assert b"".join(f.data for f in frames) == body
        assert all(len(f.data) <= max_frame_size for f in frames)
        assert [f.end_stream for f in frames] == [False] * (len(frames) - 1) + [end_stream]
        wire = b"".join(f.serialize() for f in frames)
        assert read_chunks([wire], max_frame_size) == frames

    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=70_000), st.booleans(), st.integers(DEFAULT_MAX_FRAME_SIZE, 40_000), paddings)
    def test_split_header_block(
        self, block: bytes, end_stream: bool, max_frame_size: int, padding: int | None
    ) -> None:
        frames = split_header_block(
            7, block, max_frame_size=max_frame_size, end_stream=end_stream, padding=padding
        )
        assert b"".join(f.fragment for f in frames) == block
        assert [f.end_headers for f in frames] == [False] * (len(frames) - 1) + [True]
        wire = b"".join(f.serialize() for f in frames)
        assert all(len(f.serialize()) <= FRAME_HEADER_SIZE + max_frame_size for f in frames)
        assert read_chunks([wire], max_frame_size) == frames


# --- Differential: hyperframe as the oracle -----------------------------------------------------------------


def _flags(**named: bool) -> list[str]:
    return [name for name, on in named.items() if on]


def to_hyperframe(frame: Frame) -> hf.Frame:
    """The hyperframe object for the same frame."""
    if isinstance(frame, DataFrame):
        flags = _flags(END_STREAM=frame.end_stream, PADDED=frame.padding is not None)
        return hf.DataFrame(frame.stream_id, frame.data, flags=flags, pad_length=frame.padding or 0)
    if isinstance(frame, HeadersFrame):
        priority = frame.priority or Priority(0, 1)
        flags = _flags(
            END_STREAM=frame.end_stream,
            END_HEADERS=frame.end_headers,
            PADDED=frame.padding is not None,
            PRIORITY=frame.priority is not None,
        )
        return hf.HeadersFrame(
            frame.stream_id,
            frame.fragment,
            flags=flags,
            pad_length=frame.padding or 0,
            depends_on=priority.depends_on,
            stream_weight=priority.weight - 1,
            exclusive=priority.exclusive,
        )
    if isinstance(frame, PriorityFrame):
        p = frame.priority
        return hf.PriorityFrame(
            frame.stream_id, depends_on=p.depends_on, stream_weight=p.weight - 1, exclusive=p.exclusive
        )
    if isinstance(frame, RstStreamFrame):
        return hf.RstStreamFrame(frame.stream_id, frame.error_code)
    if isinstance(frame, SettingsFrame):
        return hf.SettingsFrame(0, dict(frame.settings), flags=_flags(ACK=frame.ack))
    if isinstance(frame, PushPromiseFrame):
        flags = _flags(END_HEADERS=frame.end_headers, PADDED=frame.padding is not None)
        return hf.PushPromiseFrame(
            frame.stream_id,
            frame.promised_stream_id,
            frame.fragment,
            flags=flags,
            pad_length=frame.padding or 0,
        )
    if isinstance(frame, PingFrame):
        return hf.PingFrame(0, frame.opaque_data, flags=_flags(ACK=frame.ack))
    if isinstance(frame, GoAwayFrame):
        return hf.GoAwayFrame(0, frame.last_stream_id, frame.error_code, frame.debug_data)
    if isinstance(frame, WindowUpdateFrame):
        return hf.WindowUpdateFrame(frame.stream_id, frame.increment)
    if isinstance(frame, ContinuationFrame):
        return hf.ContinuationFrame(
            frame.stream_id, frame.fragment, flags=_flags(END_HEADERS=frame.end_headers)
        )
    extension = hf.ExtensionFrame(frame.frame_type, frame.stream_id, frame.flags, frame.payload)
    extension.body_len = len(frame.payload)  # its serialize() reads body_len, which only parse_body() sets
    return extension


def from_hyperframe(frame: hf.Frame) -> Frame:
    """rawrt's value for a frame hyperframe parsed."""
    flags = frame.flags
    if isinstance(frame, hf.DataFrame):
        padding = frame.pad_length if "PADDED" in flags else None
        return DataFrame(frame.stream_id, frame.data, "END_STREAM" in flags, padding)
    if isinstance(frame, hf.HeadersFrame):
        priority = None
        if "PRIORITY" in flags:
            priority = Priority(frame.depends_on, frame.stream_weight + 1, frame.exclusive)
        padding = frame.pad_length if "PADDED" in flags else None
        return HeadersFrame(
            frame.stream_id, frame.data, "END_STREAM" in flags, "END_HEADERS" in flags, priority, padding
        )
    if isinstance(frame, hf.PriorityFrame):
        return PriorityFrame(
            frame.stream_id, Priority(frame.depends_on, frame.stream_weight + 1, frame.exclusive)
        )
    if isinstance(frame, hf.RstStreamFrame):
        return RstStreamFrame(frame.stream_id, frame.error_code)
    if isinstance(frame, hf.SettingsFrame):
        return SettingsFrame(tuple(frame.settings.items()), "ACK" in flags)
    if isinstance(frame, hf.PushPromiseFrame):
        padding = frame.pad_length if "PADDED" in flags else None
        return PushPromiseFrame(
            frame.stream_id, frame.promised_stream_id, frame.data, "END_HEADERS" in flags, padding
        )
    if isinstance(frame, hf.PingFrame):
        return PingFrame(frame.opaque_data, "ACK" in flags)
    if isinstance(frame, hf.GoAwayFrame):
        return GoAwayFrame(frame.last_stream_id, frame.error_code, frame.additional_data)
    if isinstance(frame, hf.WindowUpdateFrame):
        return WindowUpdateFrame(frame.stream_id, frame.window_increment)
    if isinstance(frame, hf.ContinuationFrame):
        return ContinuationFrame(frame.stream_id, frame.data, "END_HEADERS" in flags)
    assert isinstance(frame, hf.ExtensionFrame) and frame.type is not None, frame
    return UnknownFrame(frame.type, frame.flag_byte, frame.stream_id, frame.body)


def hyperframe_read(data: bytes) -> hf.Frame:
    frame, length = hf.Frame.parse_frame_header(memoryview(data[:9]))
    assert length == len(data) - 9
    frame.parse_body(memoryview(data[9:]))
    return frame


def _unique_settings(frame: Frame) -> bool:
    # hyperframe keeps settings in a dict: a repeated identifier would collapse.
    if isinstance(frame, SettingsFrame):
        identifiers = [identifier for identifier, _ in frame.settings]
        return len(set(identifiers)) == len(identifiers)
    return True


#: Every frame type, ALTSVC (0xa, which hyperframe knows) left out of the unknown ones.
differential_frames = (
    single_frames | field_blocks().map(lambda block: block[-1]) | field_blocks().map(lambda b: b[0])
).filter(lambda f: _unique_settings(f) and not (isinstance(f, UnknownFrame) and f.frame_type == 0xA))


def _hyperframe_can_write(frame: Frame) -> bool:
    # hyperframe 6.1 writes a setting identifier as ``identifier & 0xFF`` (SettingsFrame.serialize_body):
    # 0x100 goes out as 0. RFC 9113 §6.5.1 makes it 16 bits; rawrt writes all 16 (test_its_settings_bug).
    return not isinstance(frame, SettingsFrame) or all(identifier < 0x100 for identifier, _ in frame.settings)


def _hyperframe_can_read(frame: Frame) -> bool:
    # hyperframe 6.1 compares a HEADERS frame's Pad Length with the payload *minus* the Pad Length octet
    # (HeadersFrame.parse_body), so it refuses padding that leaves an empty fragment and no priority
    # fields. RFC 9113 §6.2 refuses padding only when it is "the length of the frame payload or greater".
    return not (
        isinstance(frame, HeadersFrame) and frame.padding and frame.priority is None and not frame.fragment
    )


class TestDifferential:
    """hyperframe (h2's frame layer) and rawrt agree on the bytes and on what they mean."""

    @settings(max_examples=400, deadline=None)
    @given(differential_frames.filter(_hyperframe_can_write))
    def test_same_bytes(self, frame: Frame) -> None:
        assert frame.serialize() == to_hyperframe(frame).serialize()

    @settings(max_examples=400, deadline=None)
    @given(differential_frames.filter(_hyperframe_can_read))
    def test_hyperframe_reads_ours(self, frame: Frame) -> None:
        assert from_hyperframe(hyperframe_read(frame.serialize())) == frame

    @settings(max_examples=400, deadline=None)
    @given(differential_frames.filter(_hyperframe_can_write))
    def test_we_read_hyperframes(self, frame: Frame) -> None:
        wire = to_hyperframe(frame).serialize()
        if isinstance(frame, ContinuationFrame):
            # Our reader needs the field block open: precede it with a HEADERS frame that opens it.
            wire = HeadersFrame(frame.stream_id, end_headers=False).serialize() + wire
            assert read(wire, bytewise=False)[1:] == [frame]
        else:
            assert read(wire, bytewise=False) == [frame]

    def test_its_settings_bug(self) -> None:
        # Found by test_same_bytes: hyperframe truncates 16-bit setting identifiers when writing.
        frame = SettingsFrame(((0x100, 0),))
        assert frame.serialize() == h("000006 04 00 00000000 0100 00000000")
        assert to_hyperframe(frame).serialize() == h("000006 04 00 00000000 0000 00000000")
        assert from_hyperframe(hyperframe_read(frame.serialize())) == frame  # its reader is right

    def test_its_headers_padding_bug(self) -> None:
        # Found by test_hyperframe_reads_ours: a HEADERS frame whose padding fills all but the Pad Length
        # octet is valid (§6.2), hyperframe refuses it; rawrt reads it, and refuses one octet more.
        data = h("000002 01 0c 00000001 01 00")
        assert read(data, bytewise=False) == [HeadersFrame(1, b"", padding=1)]
        with pytest.raises(hyperframe.exceptions.InvalidPaddingError):
            hyperframe_read(data)
        assert (
            connection_error(h("000002 01 0c 00000001 02 00"), bytewise=False).code
            == ErrorCode.PROTOCOL_ERROR
        )
