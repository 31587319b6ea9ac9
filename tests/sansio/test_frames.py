"""Tests for rawrt.sansio.ws.frames: RFC 6455 §5 framing, masking and close payloads."""

from __future__ import annotations

import struct
from itertools import cycle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawrt.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from rawrt.sansio.ws.frames import (
    FIN,
    RSV1,
    RSV2,
    RSV3,
    CloseCode,
    Frame,
    FrameHeader,
    FrameReader,
    Opcode,
    apply_mask,
    encode_close,
    encode_frame,
    is_valid_close_code,
    parse_close,
    parse_frame,
    parse_header,
)

#: The mask key of every RFC 6455 §5.7 masked example.
RFC_KEY = bytes.fromhex("37fa213d")


def naive_mask(data: bytes, key: bytes) -> bytes:
    """The §5.3 definition, one byte at a time: the oracle for apply_mask."""
    return bytes(b ^ k for b, k in zip(data, cycle(key), strict=False))


def read_all(data: bytes, *, mask_expected: bool, bytewise: bool, **kwargs: int) -> list[Frame]:
    """Parse every frame in ``data``, fed whole or one byte at a time into a growing buffer."""
    reader = FrameReader(mask_expected=mask_expected, max_frame_size=2**63 - 1, **kwargs)
    buf = bytearray()
    frames = []
    chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
    for chunk in chunks:
        buf += chunk
        while (result := reader.maybe_read(buf, 0)) is not None:
            b0, payload, end = result
            rsv = (bool(b0 & RSV1), bool(b0 & RSV2), bool(b0 & RSV3))
            frames.append(Frame(bool(b0 & FIN), Opcode(b0 & 15), payload, *rsv))
            del buf[:end]
    assert not buf, "trailing bytes"
    return frames


def assert_frame_data(
    data: bytes, frame: Frame, *, mask_expected: bool, mask_key: bytes | None = None, bytewise: bool
) -> None:
    """parse(data) == frame, and serialize(frame) == data with the same (pinned) key."""
    assert read_all(data, mask_expected=mask_expected, bytewise=bytewise, rsv_allowed=RSV1) == [frame]
    assert frame.serialize(mask_key) == data


BYTEWISE = pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])


class TestExamples:
    """RFC 6455 §5.7: the spec's example frames, byte for byte."""

    @BYTEWISE
    def test_unmasked_text(self, bytewise: bool) -> None:
        # 81 = FIN 1, RSV 000, opcode 1 (text); 05 = MASK 0, length 5.
        data = bytes.fromhex("81 05 48 65 6c 6c 6f")
        assert_frame_data(data, Frame(True, Opcode.TEXT, b"Hello"), mask_expected=False, bytewise=bytewise)

    @BYTEWISE
    def test_masked_text(self, bytewise: bool) -> None:
        # 81 = FIN 1, RSV 000, opcode 1 (text); 85 = MASK 1, length 5; key 37 fa 21 3d.
        data = bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58")
        frame = Frame(True, Opcode.TEXT, b"Hello")
        assert_frame_data(data, frame, mask_expected=True, mask_key=RFC_KEY, bytewise=bytewise)

    @BYTEWISE
    def test_fragmented_unmasked_text(self, bytewise: bool) -> None:
        # 01 = FIN 0, RSV 000, opcode 1 (text); 03 = MASK 0, length 3: "Hel".
        first = bytes.fromhex("01 03 48 65 6c")
        # 80 = FIN 1, RSV 000, opcode 0 (continuation); 02 = MASK 0, length 2: "lo".
        last = bytes.fromhex("80 02 6c 6f")
        assert_frame_data(first, Frame(False, Opcode.TEXT, b"Hel"), mask_expected=False, bytewise=bytewise)
        assert_frame_data(last, Frame(True, Opcode.CONT, b"lo"), mask_expected=False, bytewise=bytewise)
        assert read_all(first + last, mask_expected=False, bytewise=bytewise) == [
            Frame(False, Opcode.TEXT, b"Hel"),
            Frame(True, Opcode.CONT, b"lo"),
        ]

    @BYTEWISE
    def test_unmasked_ping(self, bytewise: bool) -> None:
        # 89 = FIN 1, RSV 000, opcode 9 (ping); 05 = MASK 0, length 5.
        data = bytes.fromhex("89 05 48 65 6c 6c 6f")
        assert_frame_data(data, Frame(True, Opcode.PING, b"Hello"), mask_expected=False, bytewise=bytewise)

    @BYTEWISE
    def test_masked_pong(self, bytewise: bool) -> None:
        # 8a = FIN 1, RSV 000, opcode A (pong); 85 = MASK 1, length 5; key 37 fa 21 3d.
        data = bytes.fromhex("8a 85 37 fa 21 3d 7f 9f 4d 51 58")
        frame = Frame(True, Opcode.PONG, b"Hello")
        assert_frame_data(data, frame, mask_expected=True, mask_key=RFC_KEY, bytewise=bytewise)

    @BYTEWISE
    def test_256_bytes_binary(self, bytewise: bool) -> None:
        # 82 = FIN 1, RSV 000, opcode 2 (binary); 7E = MASK 0, 16-bit length follows; 0100 = 256.
        payload = bytes(range(256))
        data = bytes.fromhex("82 7E 0100") + payload
        assert_frame_data(data, Frame(True, Opcode.BINARY, payload), mask_expected=False, bytewise=bytewise)

    def test_64_kib_binary(self) -> None:
        # 82 = FIN 1, RSV 000, opcode 2 (binary); 7F = MASK 0, 64-bit length follows: 65536.
        payload = bytes(65536)
        data = bytes.fromhex("82 7F 0000000000010000") + payload
        assert_frame_data(data, Frame(True, Opcode.BINARY, payload), mask_expected=False, bytewise=False)


def reader_error(data: bytes, *, mask_expected: bool = True, **kwargs: int) -> RemoteProtocolError:
    """The error raised on ``data``, fed whole and then byte by byte (both must raise the same)."""
    errors: list[RemoteProtocolError] = []
    for bytewise in (False, True):
        with pytest.raises(RemoteProtocolError) as info:
            read_all(data, mask_expected=mask_expected, bytewise=bytewise, **kwargs)
        errors.append(info.value)
    assert str(errors[0]) == str(errors[1])
    return errors[0]


class TestBaseFraming:
    """RFC 6455 §5.2: header rules enforced by the reader."""

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    def test_reserved_opcode(self, opcode: int) -> None:
        exc = reader_error(bytes([0x80 | opcode, 0x80]) + RFC_KEY)
        assert exc.close_code == 1002
        assert "reserved opcode" in str(exc)

    @pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3, RSV1 | RSV3])
    def test_rsv_without_extension(self, rsv: int) -> None:
        exc = reader_error(bytes([0x81 | rsv, 0x80]) + RFC_KEY)
        assert exc.close_code == 1002
        assert "RSV bits" in str(exc)

    def test_rsv1_allowed_by_extension(self) -> None:
        frames = read_all(bytes([0xC1, 0x00]), mask_expected=False, bytewise=False, rsv_allowed=RSV1)
        assert frames == [Frame(True, Opcode.TEXT, b"", rsv1=True)]
        assert reader_error(bytes([0xA1, 0x00]), mask_expected=False, rsv_allowed=RSV1).close_code == 1002

    def test_unmasked_client_frame(self) -> None:
        exc = reader_error(bytes.fromhex("81 05 48 65 6c 6c 6f"), mask_expected=True)
        assert (exc.close_code, str(exc)) == (1002, "unmasked frame from a client")

    def test_masked_server_frame(self) -> None:
        exc = reader_error(bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), mask_expected=False)
        assert (exc.close_code, str(exc)) == (1002, "masked frame from a server")

    def test_non_minimal_16_bit_length(self) -> None:
        # 7E then 0x007D: 125 fits in 7 bits, so the 16-bit form is not minimal.
        exc = reader_error(bytes.fromhex("82 7E 007D") + bytes(125), mask_expected=False)
        assert "expected 7 bits" in str(exc)

    def test_non_minimal_64_bit_length(self) -> None:
        exc = reader_error(bytes.fromhex("82 7F 000000000000FFFF") + bytes(0xFFFF), mask_expected=False)
        assert "expected 16 or 7" in str(exc)

    def test_64_bit_length_top_bit(self) -> None:
        exc = reader_error(bytes.fromhex("82 7F 8000000000000000"), mask_expected=False)
        assert "most significant bit" in str(exc)

    def test_huge_declared_length_costs_nothing(self) -> None:
        # A header announcing 2**62 bytes is refused from its 10 header bytes alone: 1009.
        reader = FrameReader(mask_expected=False, max_frame_size=1 << 20)
        with pytest.raises(LimitExceeded) as info:
            reader.maybe_read(bytes.fromhex("82 7F 4000000000000000"), 0)
        assert info.value.close_code == 1009

    def test_budget_applies_to_uncompressed_only(self) -> None:
        reader = FrameReader(mask_expected=False, max_frame_size=100, budget=10, rsv_allowed=RSV1)
        with pytest.raises(LimitExceeded, match="message limit leaves 10"):
            reader.maybe_read(bytes([0x82, 11]), 0)
        # The same length with RSV1 passes the header checks: the inflater bounds it.
        assert reader.maybe_read(bytes([0xC2, 11]) + bytes(11), 0) == (0xC2, bytes(11), 13)
        with pytest.raises(LimitExceeded, match="limit is 100"):
            reader.maybe_read(bytes([0xC2, 101]), 0)

    def test_incomplete_headers(self) -> None:
        reader = FrameReader(mask_expected=False, max_frame_size=1 << 20)
        for partial in ("", "82", "82 7E", "82 7E 01", "82 7F 00000000000100", "82 05 0102"):
            assert reader.maybe_read(bytes.fromhex(partial), 0) is None
        masked = FrameReader(mask_expected=True, max_frame_size=1 << 20)
        assert masked.maybe_read(bytes.fromhex("82 85 37 fa 21"), 0) is None

    def test_reads_at_offset(self) -> None:
        reader = FrameReader(mask_expected=False, max_frame_size=1 << 20)
        data = b"junk" + bytes.fromhex("81 05 48 65 6c 6c 6f")
        assert reader.maybe_read(data, 4) == (0x81, b"Hello", len(data))

    def test_parse_frame(self) -> None:
        data = bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58") + b"more"
        assert parse_frame(data, mask_expected=True) == (Frame(True, Opcode.TEXT, b"Hello"), 11)
        assert parse_frame(data[:10], mask_expected=True) is None


class TestControlFrames:
    """RFC 6455 §5.5: control frames are at most 125 bytes and never fragmented."""

    @pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
    def test_too_long(self, opcode: Opcode) -> None:
        exc = reader_error(bytes([0x80 | opcode, 0x7E, 0x00, 0x7E]), mask_expected=False)
        assert "at most 125" in str(exc)

    @pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
    def test_fragmented(self, opcode: Opcode) -> None:
        exc = reader_error(bytes([opcode, 0x00]), mask_expected=False)
        assert str(exc) == "fragmented control frame"

    def test_125_is_fine(self) -> None:
        data = bytes([0x89, 125]) + bytes(125)
        assert read_all(data, mask_expected=False, bytewise=False) == [Frame(True, Opcode.PING, bytes(125))]

    def test_frame_validation(self) -> None:
        with pytest.raises(LocalProtocolError, match="> 125"):
            Frame(True, Opcode.PING, bytes(126))
        with pytest.raises(LocalProtocolError, match="fragmented"):
            Frame(False, Opcode.CLOSE, b"")
        with pytest.raises(LocalProtocolError, match="reserved opcode"):
            Frame(True, 3, b"")  # type: ignore[arg-type]
        assert Frame(True, 1, b"").opcode is Opcode.TEXT  # type: ignore[arg-type]


class TestClose:
    """RFC 6455 §5.5.1 and §7.4: close payloads and status codes."""

    @pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014])
    def test_valid_defined_codes(self, code: int) -> None:
        assert is_valid_close_code(code)
        assert parse_close(encode_close(code, "bye")) == (code, "bye")

    @pytest.mark.parametrize("code", [3000, 3999, 4000, 4999])
    def test_valid_private_codes(self, code: int) -> None:
        assert is_valid_close_code(code)

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
    def test_invalid_codes(self, code: int) -> None:
        assert not is_valid_close_code(code)
        with pytest.raises(RemoteProtocolError) as info:
            parse_close(code.to_bytes(2, "big"))
        assert info.value.close_code == 1002
        if code != CloseCode.NO_STATUS_RCVD:  # 1005 is sent as an empty payload, see below
            with pytest.raises(LocalProtocolError):
                encode_close(code)

    def test_empty_payload_is_1005(self) -> None:
        assert parse_close(b"") == (CloseCode.NO_STATUS_RCVD, "")
        assert encode_close(CloseCode.NO_STATUS_RCVD) == b""
        with pytest.raises(LocalProtocolError, match="needs a close code"):
            encode_close(CloseCode.NO_STATUS_RCVD, "why")

    def test_one_byte_payload(self) -> None:
        with pytest.raises(RemoteProtocolError, match="1-byte") as info:
            parse_close(b"\x03")
        assert info.value.close_code == 1002

    def test_reason_not_utf8(self) -> None:
        with pytest.raises(RemoteProtocolError, match="not UTF-8") as info:
            parse_close(b"\x03\xe8\xff")
        assert info.value.close_code == 1007

    def test_reason_too_long(self) -> None:
        assert len(encode_close(1000, "x" * 123)) == 125
        with pytest.raises(LocalProtocolError, match="at most 123"):
            encode_close(1000, "x" * 124)


class TestMasking:
    """RFC 6455 §5.3: client-to-server masking."""

    # Both methods, and each side of the size at which apply_mask switches from one to the other.
    @pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 16, 125, 511, 512, 513, 4096, 4097, 65536])
    def test_sizes_match_oracle(self, size: int) -> None:
        data = bytes(i * 7 % 256 for i in range(size))
        assert apply_mask(data, RFC_KEY) == naive_mask(data, RFC_KEY)
        assert apply_mask(bytearray(data), bytearray(RFC_KEY)) == naive_mask(data, RFC_KEY)
        assert apply_mask(memoryview(data), memoryview(RFC_KEY)) == naive_mask(data, RFC_KEY)

    @settings(max_examples=200)
    @given(data=st.binary(max_size=10000), key=st.binary(min_size=4, max_size=4))
    def test_oracle_and_involution(self, data: bytes, key: bytes) -> None:
        masked = apply_mask(data, key)
        assert masked == naive_mask(data, key)
        assert apply_mask(masked, key) == data

    def test_leaves_its_input_alone(self) -> None:
        data = bytearray(range(256)) * 8  # the translate method XORs a copy in place, never the caller's
        apply_mask(data, RFC_KEY)
        assert data == bytearray(range(256)) * 8

    def test_returns_bytes(self) -> None:
        assert type(apply_mask(bytearray(5000), RFC_KEY)) is bytes
        assert type(apply_mask(bytearray(5), RFC_KEY)) is bytes


LENGTHS = st.sampled_from([0, 1, 125, 126, 127, 65535, 65536]) | st.integers(0, 70000)


class TestRoundTrip:
    """RFC 6455 §5.2: any frame survives serialize then parse (property (a))."""

    @settings(max_examples=60)
    @given(
        opcode=st.sampled_from(list(Opcode)),
        length=LENGTHS,
        fin=st.booleans(),
        rsv1=st.booleans(),
        key=st.none() | st.binary(min_size=4, max_size=4),
    )
    def test_round_trip(self, opcode: Opcode, length: int, fin: bool, rsv1: bool, key: bytes | None) -> None:
        if opcode >= 8:
            length, fin, rsv1 = min(length, 125), True, False
        frame = Frame(fin, opcode, bytes([length % 251]) * length, rsv1=rsv1)
        data = frame.serialize(key)
        # The encoding is minimal: 2 header bytes up to 125, 4 up to 65535, 10 beyond; 4 more for a key.
        header = 2 if length < 126 else 4 if length < 65536 else 10
        assert len(data) == header + (4 if key else 0) + length
        assert parse_frame(data, mask_expected=key is not None) == (frame, len(data))

    @pytest.mark.parametrize("masked", [False, True])
    def test_2_to_the_32_header_only(self, masked: bool) -> None:
        # Don't allocate 4 GiB: check the header encoding of the 64-bit length, then that the reader
        # accepts it and waits for the payload.
        length = 2**32

        class Sized(bytes):
            def __len__(self) -> int:
                return length

        key = RFC_KEY if masked else None
        header = encode_frame(Opcode.BINARY, Sized(), mask_key=None)
        assert header == bytes([0x82, 0x7F]) + struct.pack("!Q", length)
        if key:
            header = bytes([0x82, 0xFF]) + struct.pack("!Q", length) + key
        reader = FrameReader(mask_expected=masked, max_frame_size=2**40, budget=2**40)
        assert reader.maybe_read(header, 0) is None


class TestParseHeader:
    """RFC 6455 §5.2: the header layout, decoded without checks (for tools such as the rawrt.trace log)."""

    @pytest.mark.parametrize(
        ("data", "header"),
        [
            # §5.7, unmasked "Hello": 81 = FIN 1, RSV 000, opcode 1 (text); 05 = MASK 0, length 5.
            ("81 05 48 65 6c 6c 6f", FrameHeader(0x81, b"", 5, 2)),
            # §5.7, masked "Hello": 85 = MASK 1, length 5; key 37 fa 21 3d.
            ("81 85 37 fa 21 3d 7f 9f 4d 51 58", FrameHeader(0x81, RFC_KEY, 5, 6)),
            # §5.7, a fragmented unmasked text message's first frame: 01 = FIN 0, opcode 1; length 3.
            ("01 03 48 65 6c", FrameHeader(0x01, b"", 3, 2)),
            # §5.7, 256 bytes of binary data in one unmasked frame: 82 = FIN 1, opcode 2; 7e = 16-bit length.
            ("82 7e 01 00", FrameHeader(0x82, b"", 256, 4)),
            # §5.7, 64 KiB of binary data in one unmasked frame: 7f = 64-bit length.
            ("82 7f 00 00 00 00 00 01 00 00", FrameHeader(0x82, b"", 65536, 10)),
            # The same, masked: FF = MASK 1 and a 64-bit length, then the key: the longest header, 14 bytes.
            ("82 ff 00 00 00 00 00 01 00 00 37 fa 21 3d", FrameHeader(0x82, RFC_KEY, 65536, 14)),
        ],
    )
    def test_layouts(self, data: str, header: FrameHeader) -> None:
        raw = bytes.fromhex(data)
        assert parse_header(raw) == header
        assert parse_header(b"junk" + raw, 4) == header
        assert parse_header(bytearray(raw)) == header and parse_header(memoryview(raw)) == header
        # Every cut short of the whole header needs more bytes.
        for cut in range(header.size):
            assert parse_header(raw[:cut]) is None

    def test_properties(self) -> None:
        header = parse_header(bytes.fromhex("c1 05"))  # FIN 1, RSV1 1 (compressed), opcode 1
        assert header is not None and (header.fin, header.rsv1, header.opcode) == (True, True, 1)
        header = parse_header(bytes.fromhex("00 00"))  # FIN 0, RSV1 0, opcode 0 (continuation)
        assert header is not None and (header.fin, header.rsv1, header.opcode) == (False, False, 0)

    @pytest.mark.parametrize(
        ("data", "header"),
        [
            # What FrameReader refuses is still decoded as sent: a reserved opcode 3 with RSV2 and RSV3 set,
            ("b3 00", FrameHeader(0xB3, b"", 0, 2)),
            # a fragmented ping of 126 bytes,
            ("09 7e 00 7e", FrameHeader(0x09, b"", 126, 4)),
            # a length of 5 sent in 16 bits, and a 64-bit length with its most significant bit set.
            ("82 7e 00 05", FrameHeader(0x82, b"", 5, 4)),
            ("82 7f 80 00 00 00 00 00 00 00", FrameHeader(0x82, b"", 2**63, 10)),
        ],
    )
    def test_lenient(self, data: str, header: FrameHeader) -> None:
        assert parse_header(bytes.fromhex(data)) == header

    @settings(max_examples=60)
    @given(
        opcode=st.sampled_from(list(Opcode)),
        length=LENGTHS,
        fin=st.booleans(),
        rsv1=st.booleans(),
        key=st.none() | st.binary(min_size=4, max_size=4),
    )
    def test_agrees_with_frame_reader(
        self, opcode: Opcode, length: int, fin: bool, rsv1: bool, key: bytes | None
    ) -> None:
        if opcode >= 8:
            length, fin, rsv1 = min(length, 125), True, False
        payload = bytes([length % 251]) * length
        data = encode_frame(opcode, payload, fin=fin, rsv=RSV1 if rsv1 else 0, mask_key=key)
        reader = FrameReader(mask_expected=key is not None, max_frame_size=2**63 - 1, rsv_allowed=RSV1)
        result = reader.maybe_read(data, 0)
        assert result is not None
        b0, unmasked, end = result
        assert parse_header(data) == FrameHeader(b0, key or b"", len(unmasked), end - len(unmasked))
