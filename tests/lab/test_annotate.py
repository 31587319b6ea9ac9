"""The lab's annotator (rawrt.lab.annotate): wire bytes in, annotated records out, on the RFCs' examples.

Every response-side test feeds the bytes whole and one byte at a time: the records must not depend on how the
writes were cut (h11's ``t_body_reader`` idea).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rawrt.lab.annotate import PREVIEW, Annotator, Record, hexdump, show
from rawrt.sansio.http11 import encode_chunk

REQUEST = (
    b"GET /poll?channel=default&lab=abcdefgh12 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b'If-None-Match: "default-5.1a2b"\r\n\r\n'
)
# RFC 6455 §1.2/§1.3: the handshake's sample key and the accept value the RFC works out from it.
UPGRADE = (
    b"GET /ws/chat?lab=abcdefgh12 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
)
SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
)


def notes(record: Record) -> list[str]:
    return [row.note for row in record.rows]


def raws(record: Record) -> list[str]:
    return [row.raw for row in record.rows]


def fed(feed: Callable[[bytes], list[Record]], data: bytes, whole: bool) -> list[Record]:
    if whole:
        return feed(data)
    return [record for i in range(len(data)) for record in feed(data[i : i + 1])]


def after(head: bytes) -> Annotator:
    annotator = Annotator()
    annotator.request(head)
    return annotator


class TestHelpers:
    def test_show_escapes_controls_and_counts_the_rest(self) -> None:
        assert show(b"a\r\n\t\x00\x7f\xff") == "a\\r\\n\\t\\x00\\x7f\\xff"
        assert show(b"x" * 10, 4) == "xxxx … (6 more bytes)"
        assert show("é✓".encode()) == "é✓"

    def test_hexdump(self) -> None:
        assert hexdump(b"\x81\x85") == "81 85"
        assert hexdump(bytes(50), 2) == "00 00 … (48 more bytes)"


class TestRequestHead:
    """RFC 9112 §2.1, §3: the request-line, then one field per line, then the empty line."""

    def test_field_by_field(self) -> None:
        (record,) = Annotator().request(REQUEST)
        assert (record.direction, record.kind, record.size) == ("in", "request", len(REQUEST))
        assert record.title == "GET /poll?channel=default&lab=abcdefgh12 HTTP/1.1"
        assert raws(record) == [
            "GET /poll?channel=default&lab=abcdefgh12 HTTP/1.1\\r\\n",
            "Host: 127.0.0.1:8000\\r\\n",
            'If-None-Match: "default-5.1a2b"\\r\\n',
            "\\r\\n",
        ]
        assert notes(record)[0].startswith("request-line: method GET")
        assert "RFC 9110 §7.2" in notes(record)[1]
        assert "304" in notes(record)[2]
        assert "the head ends" in notes(record)[3]

    def test_unknown_fields_are_named(self) -> None:
        (record,) = Annotator().request(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Thing: 1\r\nConnection: close\r\n\r\n"
        )
        assert notes(record)[2] == "field X-Thing"
        assert "ends after this answer" in notes(record)[3]

    def test_a_head_the_parser_refuses_is_shown_raw(self) -> None:
        (record,) = Annotator().request(b"GET / HTTP/1.1\r\nBad Field: x\r\n\r\n")
        assert record.kind == "raw"
        assert "not decoded" in record.title

    def test_bytes_after_the_head_are_not_decoded_without_an_upgrade(self) -> None:
        annotator = after(REQUEST)
        assert annotator.received(b"") == []
        (record,) = annotator.received(b"extra")
        assert (record.kind, record.size) == ("raw", 5)


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "bytewise"])
class TestResponses:
    """RFC 9112 §6.3: the framing the head announces decides what follows."""

    def test_content_length_body_with_json(self, whole: bool) -> None:
        body = b'{"cursor":7,"events":[{"channel":"default","id":7,"data":"hi"}]}'
        wire = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        head, record = fed(after(REQUEST).sent, wire + body, whole)
        assert (head.kind, head.title, head.size) == ("response", "HTTP/1.1 200 OK", len(wire))
        assert notes(head)[-1] == f"empty line: the body follows, {len(body)} bytes (Content-Length)"
        assert (record.kind, record.size) == ("body", len(body))
        assert "JSON: 1 event, cursor 7" in notes(record)[0]

    def test_304_has_no_body(self, whole: bool) -> None:
        wire = b'HTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n'
        (head,) = fed(after(REQUEST).sent, wire, whole)
        assert "no body" in notes(head)[-1]

    def test_empty_body_and_bytes_after_the_response(self, whole: bool) -> None:
        annotator = after(REQUEST)
        (head,) = fed(annotator.sent, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", whole)
        (extra,) = annotator.sent(b"??")
        assert extra.kind == "raw"

    def test_chunked_event_stream(self, whole: bool) -> None:
        wire = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            + encode_chunk(b"id: 5\n\n")
            + encode_chunk(b"id: 6\ndata: one\ndata: two\n\n")
            + encode_chunk(b": heartbeat\n\n")
            + encode_chunk(b"event: reset\nid: 4\ndata: {}\n\nid: 7\ndata: x\n\n")
            + b"0\r\n\r\n"
        )
        head, position, event, heartbeat, two, last = fed(after(REQUEST).sent, wire, whole)
        assert "as chunks" in notes(head)[-1]
        assert position.title == "SSE id=5: a position, no data (nothing dispatched)"
        assert raws(position)[0] == "7\\r\\n"
        assert notes(position)[0] == "chunk-size: 0x7 = 7 bytes of data follow (RFC 9112 §7.1)"
        assert event.title == "SSE event id=6: one\\ntwo"
        assert raws(event) == ["1b\\r\\n", "id: 6\\n", "data: one\\n", "data: two\\n", "\\n", "\\r\\n"]
        assert "lastEventId" in notes(event)[1] and "data field" in notes(event)[2]
        assert "dispatch" in notes(event)[4] and "chunk's data ends" in notes(event)[5]
        assert heartbeat.title == "SSE comment (heartbeat)"
        assert "heartbeat" in notes(heartbeat)[1]
        assert two.title == "SSE event id=4 (reset): {} +1"
        assert "event's type" in notes(two)[1]
        assert last.title == "last chunk: end of the body"
        assert last.size == 5

    def test_chunked_plain_body_with_trailers(self, whole: bool) -> None:
        wire = (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n"
        )
        _, chunk, last = fed(after(REQUEST).sent, wire, whole)
        assert (chunk.title, raws(chunk)[1]) == ("chunk, 5 bytes", "hello")
        assert last.title == "last chunk, with trailers"
        assert "trailer fields" in notes(last)[1]

    def test_sse_comment_lines_of_an_unknown_field(self, whole: bool) -> None:
        wire = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            + encode_chunk(b"retry: 10\nfoo: 1\n")
        )
        _, chunk = fed(after(REQUEST).sent, wire, whole)
        assert chunk.title == "SSE lines"
        assert "reconnection delay" in notes(chunk)[1] and "ignored" in notes(chunk)[2]

    def test_close_delimited_event_stream(self, whole: bool) -> None:
        annotator = after(REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"))
        records = fed(annotator.sent, b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n", whole)
        assert "until the connection closes" in notes(records[0])[-1]
        (body,) = annotator.sent(b"id: 1\ndata: a\n\n")
        assert body.title == "SSE event id=1: a"
        (plain,) = Annotator().sent(b"HTTP/1.0 200 OK\r\n\r\n")[:1]
        assert plain.kind == "response"

    def test_interim_response_then_final(self, whole: bool) -> None:
        wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        interim, final = fed(after(REQUEST).sent, wire, whole)
        assert interim.title == "HTTP/1.1 100 Continue" and "interim" in notes(interim)[0]
        assert final.title == "HTTP/1.1 204 No Content"

    def test_head_request_gets_no_body(self, whole: bool) -> None:
        annotator = after(REQUEST.replace(b"GET", b"HEAD", 1))
        (head,) = fed(annotator.sent, b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", whole)
        assert "no body" in notes(head)[-1]


class TestUndecodable:
    """Bytes the annotator cannot explain are shown raw, never an exception."""

    def test_bad_status_line(self) -> None:
        record, more = after(REQUEST).sent(b"HTTX/1.1 200 OK\r\n\r\nmore")
        assert record.kind == "raw" and "not decoded" in record.title
        assert (more.kind, more.size) == ("raw", 4)
        (rest,) = after(REQUEST).sent(b"HTTP/1.1 200 OK\r\nA B: c\r\n\r\n")
        assert rest.kind == "raw"

    def test_head_too_long(self) -> None:
        annotator = after(REQUEST)
        assert annotator.sent(b"HTTP/1.1 200 OK\r\n") == []
        (record,) = annotator.sent(b"x" * 70000)
        assert "response head too long" in record.title

    def test_bad_chunk_line(self) -> None:
        annotator = after(REQUEST)
        annotator.sent(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        (record,) = annotator.sent(b"zz\r\n")
        assert "invalid chunk-size line" in record.title
        (later,) = annotator.sent(b"anything")
        assert later.kind == "raw"

    def test_chunk_line_and_trailers_too_long(self) -> None:
        annotator = after(REQUEST)
        annotator.sent(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        (record,) = annotator.sent(b"1" * 5000)
        assert "chunk-size line too long" in record.title
        annotator = after(REQUEST)
        annotator.sent(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n")
        assert annotator.sent(b"x: y\r\n") == []
        (record,) = annotator.sent(b"x" * 70000)
        assert "trailer section too long" in record.title


# RFC 6455 §5.7's examples, byte for byte.
MASKED_HELLO = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
UNMASKED_HELLO = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
# RFC 7692 §7.2.3.1: "Hello" compressed in one frame (FIN=1 RSV1=1 opcode=1, length 7).
COMPRESSED_HELLO = bytes([0xC1, 0x07, 0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])


def upgraded() -> Annotator:
    annotator = after(UPGRADE)
    (head,) = annotator.sent(SWITCHING)
    return annotator


class TestHandshake:
    """RFC 6455 §4.2.2: the 101 and Sec-WebSocket-Accept, worked out."""

    def test_accept_is_worked_out_under_its_field(self) -> None:
        annotator = after(UPGRADE)
        (head,) = annotator.sent(SWITCHING)
        assert head.title == "HTTP/1.1 101 Switching Protocols"
        at = raws(head).index("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\\r\\n")
        key, sha, b64 = head.rows[at + 1 : at + 4]
        assert key.raw == "dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11" and key.derived
        # RFC 6455 §1.3: SHA-1 0xb3 0x7a 0x4f 0x2c 0xc0 0x62 0x4f 0x16 0x90 0xf6 0x46 0x06 0xcf 0x38 0x59 0x45
        # 0xb2 0xbe 0xc4 0xea.
        assert sha.raw == "b3 7a 4f 2c c0 62 4f 16 90 f6 46 06 cf 38 59 45 b2 be c4 ea" and sha.hex
        assert b64.raw == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" and b64.note.endswith("✓")
        assert "RSV1=1 are compressed" in notes(head)[-1]

    def test_a_wrong_accept_is_flagged_and_a_keyless_101_has_no_proof(self) -> None:
        annotator = after(UPGRADE)
        (head,) = annotator.sent(SWITCHING.replace(b"s3pP", b"AAAA"))
        assert any(note.endswith("✗") for note in notes(head))
        annotator = after(UPGRADE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""))
        (head,) = annotator.sent(SWITCHING.replace(b"Sec-WebSocket-Extensions: permessage-deflate\r\n", b""))
        assert not any(row.derived for row in head.rows)
        assert "compressed" not in notes(head)[-1]

    def test_frames_in_the_same_write_as_the_101(self) -> None:
        annotator = after(UPGRADE)
        head, frame = annotator.sent(SWITCHING + UNMASKED_HELLO)
        assert frame.kind == "frame" and frame.direction == "out"


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "bytewise"])
class TestFrames:
    """RFC 6455 §5.2, §5.3, §5.7, and RFC 7692 §7.2.3."""

    def test_masked_text_from_the_client(self, whole: bool) -> None:
        (frame,) = fed(upgraded().received, MASKED_HELLO, whole)
        assert (frame.direction, frame.size, frame.title) == ("in", 11, "text frame, 5 B, masked")
        assert [(r.raw, r.hex, r.derived) for r in frame.rows] == [
            ("81", True, False),
            ("85", True, False),
            ("37 fa 21 3d", True, False),
            ("7f 9f 4d 51 58", True, False),
            ("48 65 6c 6c 6f", True, True),
            ("Hello", False, True),
        ]
        assert notes(frame)[0] == "FIN=1 RSV1=0 RSV2=0 RSV3=0 opcode=1 (text) (RFC 6455 §5.2)"
        assert notes(frame)[1] == "MASK=1, payload length 5 (7-bit form: up to 125)"
        assert notes(frame)[2].startswith("masking key")

    def test_unmasked_text_from_the_server(self, whole: bool) -> None:
        (frame,) = fed(upgraded().sent, UNMASKED_HELLO, whole)
        assert frame.title == "text frame, 5 B"
        assert notes(frame)[1].startswith("MASK=0")
        assert raws(frame)[-1] == "Hello"

    def test_fragments(self, whole: bool) -> None:
        # §5.7: a fragmented unmasked text message, "Hel" then "lo".
        wire = bytes([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F])
        first, second = fed(upgraded().sent, wire, whole)
        assert first.title == "text frame, 3 B (more frames follow)"
        assert second.title == "continuation frame, 2 B"

    def test_16_and_64_bit_lengths(self, whole: bool) -> None:
        # §5.7: 256 bytes of binary data in one unmasked frame, and 64 KiB.
        wire = bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(256) + bytes([0x82, 0x7F]) + (65536).to_bytes(8, "big")
        wire += bytes(65536)
        short, long = fed(upgraded().sent, wire, whole)
        assert notes(short)[1] == "MASK=0, 126: the length is in the next 2 bytes (16-bit form)"
        assert (raws(short)[2], notes(short)[2]) == ("01 00", "payload length 256")
        assert notes(long)[1] == "MASK=0, 127: the length is in the next 8 bytes (64-bit form)"
        assert raws(long)[2] == "00 00 00 00 00 01 00 00"
        assert long.size == 10 + 65536 and "more bytes" in raws(long)[3]
        assert len(raws(long)) == 4  # binary: no text row

    def test_control_frames(self, whole: bool) -> None:
        # §5.7: an unmasked ping with "Hello"; a close 1000 "bye"; an empty close; a bad close payload.
        wire = bytes([0x89, 0x05]) + b"Hello" + bytes([0x88, 0x05, 0x03, 0xE8]) + b"bye"
        wire += bytes([0x88, 0x00, 0x88, 0x01, 0x03])
        ping, close, empty, bad = fed(upgraded().sent, wire, whole)
        assert ping.title == "ping frame, 5 B"
        assert close.title == "close frame: 1000" and raws(close)[-1] == "1000 bye"
        assert empty.title == "close frame: 1005"
        assert "invalid close payload" in notes(bad)[-1]

    def test_compressed_text(self, whole: bool) -> None:
        annotator = upgraded()
        (frame,) = fed(annotator.sent, COMPRESSED_HELLO + COMPRESSED_HELLO, whole)[:1]
        assert frame.title == "text frame, 7 B compressed → 5 B"
        assert notes(frame)[0].startswith("FIN=1 RSV1=1")
        assert raws(frame)[-1] == "Hello" and notes(frame)[-1] == "inflated: 5 bytes"

    def test_compressed_and_masked_from_the_client(self, whole: bool) -> None:
        key = bytes([1, 2, 3, 4])
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(COMPRESSED_HELLO[2:]))
        (frame,) = fed(upgraded().received, bytes([0xC1, 0x87]) + key + payload, whole)
        assert frame.title == "text frame, 7 B compressed → 5 B, masked"
        assert raws(frame)[-2] == "f2 48 cd c9 c9 07 00"  # unmasked: the compressed bytes
        assert raws(frame)[-1] == "Hello"

    def test_bad_compressed_data(self, whole: bool) -> None:
        (frame,) = fed(upgraded().sent, bytes([0xC1, 0x02, 0xFF, 0xFF]), whole)
        assert "could not inflate" in notes(frame)[-1]

    def test_reserved_opcode_and_empty_payload(self, whole: bool) -> None:
        (frame,) = fed(upgraded().sent, bytes([0x83, 0x00]), whole)
        assert frame.title == "reserved frame, 0 B"
        assert len(frame.rows) == 2


def test_large_payloads_keep_a_preview_only() -> None:
    annotator = upgraded()
    (frame,) = annotator.sent(bytes([0x81, 0x7E]) + (4000).to_bytes(2, "big") + b"a" * 4000)
    assert raws(frame)[-1] == "a" * PREVIEW + f" … ({4000 - PREVIEW} more bytes)"
    annotator = after(REQUEST)
    head, body = annotator.sent(b"HTTP/1.1 200 OK\r\ncontent-length: 4000\r\n\r\n" + b"b" * 4000)
    assert body.size == 4000 and "more bytes" in raws(body)[0]


def test_as_dict() -> None:
    (frame,) = upgraded().received(MASKED_HELLO)
    value = frame.as_dict()
    assert value["dir"] == "in" and value["kind"] == "frame" and value["size"] == 11
    rows = value["rows"]
    assert isinstance(rows, list)
    assert rows[4] == ["48 65 6c 6c 6f", "unmasked: each byte XOR key[i % 4]", "hd"]


def test_the_rest_of_a_large_sse_chunk_is_counted() -> None:
    annotator = after(REQUEST)
    annotator.sent(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    data = b"id: 1\ndata: " + b"x" * 2000 + b"\n\n"
    (chunk,) = annotator.sent(encode_chunk(data))
    assert raws(chunk)[-2] == f"… ({len(data) - PREVIEW} more bytes)"


def test_a_json_body_that_is_not_a_poll_answer() -> None:
    for body in (b"{not json", b"[1, 2]", b'{"events": 5}'):
        annotator = after(REQUEST)
        wire = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        _, record = annotator.sent(wire + body)
        assert notes(record)[0].startswith("body: ")
        assert ("JSON: 0 events" in notes(record)[0]) == (body == b'{"events": 5}')


def test_a_close_delimited_plain_body() -> None:
    annotator = after(REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"))
    annotator.sent(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n")
    (body,) = annotator.sent(b"some text")
    assert body.title == "body, 9 bytes"


def test_a_compressed_message_in_two_frames() -> None:
    # RFC 7692 §7.2.3.1's "Hello" split after 3 compressed bytes: RSV1 on the first frame only (§6.1).
    payload = COMPRESSED_HELLO[2:]
    wire = bytes([0x41, 0x03]) + payload[:3] + bytes([0x80, 0x04]) + payload[3:]
    first, second = upgraded().sent(wire)
    assert first.title == "text frame, 3 B compressed → 2 B (more frames follow)"
    assert second.title == "continuation frame, 4 B compressed → 3 B"
    assert raws(first)[-1] + raws(second)[-1] == "Hello"
