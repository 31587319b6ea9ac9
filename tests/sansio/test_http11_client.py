"""``rawrt.sansio.http11.client.ResponseReader``: bytes in, events out (RFC 9112 §4, §5, §6.3, §7.1).

Every reader test runs twice, with the bytes whole and one byte at a time (h11 ``t_body_reader``).
"""

from __future__ import annotations

import pytest

from rawrt.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from rawrt.limits import Limits
from rawrt.sansio.http11 import Data, EndOfMessage
from rawrt.sansio.http11.client import Framing, Response, ResponseEvent, ResponseReader, encode_request

SPLITS = ["whole", "bytewise"]


def read(raw: bytes, split: str, *, eof: bool = True, **kwargs: object) -> list[ResponseEvent]:
    """Feed ``raw`` and return the events, with consecutive Data merged (splits cut data differently)."""
    reader = ResponseReader(**kwargs)  # type: ignore[arg-type]
    events: list[ResponseEvent] = []
    pieces = [raw] if split == "whole" else [raw[i : i + 1] for i in range(len(raw))]
    for piece in pieces:
        reader.receive_data(piece)
        events.extend(reader.events_received())
    if eof:
        reader.receive_eof()
        events.extend(reader.events_received())
    merged: list[ResponseEvent] = []
    for event in events:
        if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def head(status: int = 200, *fields: bytes, version: bytes = b"1.1") -> bytes:
    return b"HTTP/%b %d OK\r\n" % (version, status) + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


@pytest.mark.parametrize("split", SPLITS)
class TestFraming:
    """RFC 9112 §6.3: how a response's body ends."""

    def test_chunked(self, split: str) -> None:
        raw = head(200, b"Transfer-Encoding: chunked") + b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n"
        events = read(raw, split, eof=False)
        assert events[0] == Response(200, b"OK", b"1.1", [(b"Transfer-Encoding", b"chunked")])
        assert events[1:] == [Data(b"hello!"), EndOfMessage()]

    def test_chunked_without_trailers(self, split: str) -> None:
        raw = head(200, b"Transfer-Encoding: chunked") + b"2\r\nhi\r\n0\r\n\r\n"
        assert read(raw, split, eof=False)[1:] == [Data(b"hi"), EndOfMessage()]

    def test_content_length(self, split: str) -> None:
        raw = head(200, b"Content-Length: 3") + b"abc"
        assert read(raw, split, eof=False)[1:] == [Data(b"abc"), EndOfMessage()]

    def test_close_delimited(self, split: str) -> None:
        raw = head(200, b"Content-Type: text/event-stream", version=b"1.0") + b"data: x\n\n"
        events = read(raw, split)
        assert isinstance(events[0], Response) and events[0].http_version == b"1.0"
        assert events[1:] == [Data(b"data: x\n\n"), EndOfMessage()]

    @pytest.mark.parametrize("status", [204, 304])
    def test_no_body_statuses(self, split: str, status: int) -> None:
        assert read(head(status), split, eof=False)[1:] == [EndOfMessage()]

    def test_interim_responses_are_skipped(self, split: str) -> None:
        raw = b"HTTP/1.1 100 Continue\r\n\r\n" + head(200, b"Content-Length: 0")
        events = read(raw, split, eof=False)
        assert [type(e) for e in events] == [Response, EndOfMessage]

    def test_status_line_without_reason(self, split: str) -> None:
        events = read(b"HTTP/1.1 204\r\n\r\n", split, eof=False)
        assert events[0] == Response(204, b"", b"1.1", [])

    def test_head_request(self, split: str) -> None:
        events = read(head(200, b"Content-Length: 10"), split, eof=False, method=b"HEAD")
        assert events[1:] == [EndOfMessage()]


SWITCH = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)
# RFC 6455 §5.7: a single-frame unmasked text message, "Hello" (FIN=1, opcode=1, length 5): what a WebSocket
# server may send in the same segment as its 101.
HELLO_FRAME = bytes.fromhex("81 05 48 65 6c 6c 6f")


def feed(reader: ResponseReader, raw: bytes, split: str) -> list[ResponseEvent]:
    """Feed ``raw`` whole or one byte at a time; return every event, unmerged."""
    events: list[ResponseEvent] = []
    for piece in [raw] if split == "whole" else [raw[i : i + 1] for i in range(len(raw))]:
        reader.receive_data(piece)
        events.extend(reader.events_received())
    return events


@pytest.mark.parametrize("split", SPLITS)
class TestSwitchingProtocols:
    """RFC 9110 §15.2.2 and RFC 9112 §6.3 rule 1: a 101 ends the HTTP message at its head; the bytes after it
    belong to the protocol the request's Upgrade asked for (RFC 6455 §4.1, the server's first frames)."""

    def test_101_then_trailing_data(self, split: str) -> None:
        reader = ResponseReader(upgrade=True)
        events = feed(reader, SWITCH + HELLO_FRAME, split)
        assert [type(e) for e in events] == [Response, EndOfMessage]
        response = events[0]
        assert isinstance(response, Response) and response.status == 101
        assert response.header(b"upgrade") == b"websocket"
        assert reader.framing is Framing.NONE
        assert reader.trailing_data == HELLO_FRAME
        assert reader.response == response
        assert reader.events_received() == []  # the reader parses nothing more

    def test_101_alone(self, split: str) -> None:
        reader = ResponseReader(upgrade=True)
        assert [type(e) for e in feed(reader, SWITCH, split)] == [Response, EndOfMessage]
        assert reader.trailing_data == b""
        reader.receive_data(HELLO_FRAME)  # what arrives later is kept for the new protocol too
        assert reader.events_received() == []
        assert reader.trailing_data == HELLO_FRAME

    def test_interim_response_before_101(self, split: str) -> None:
        reader = ResponseReader(upgrade=True)
        events = feed(reader, b"HTTP/1.1 100 Continue\r\n\r\n" + SWITCH, split)
        assert [type(e) for e in events] == [Response, EndOfMessage]
        assert isinstance(events[0], Response) and events[0].status == 101

    def test_upgrade_refused_is_an_ordinary_response(self, split: str) -> None:
        reader = ResponseReader(upgrade=True)
        events = feed(reader, head(426, b"Content-Length: 2") + b"no" + HELLO_FRAME, split)
        assert isinstance(events[0], Response) and events[0].status == 426
        assert events[-1] == EndOfMessage()
        assert reader.trailing_data == HELLO_FRAME

    def test_refusal_head_kept_when_its_body_is_broken(self, split: str) -> None:
        reader = ResponseReader(upgrade=True)
        with pytest.raises(RemoteProtocolError, match="both"):
            feed(reader, head(400, b"Transfer-Encoding: chunked", b"Content-Length: 3"), split)
        assert reader.response is not None and reader.response.status == 400
        reader = ResponseReader(upgrade=True)
        with pytest.raises(RemoteProtocolError, match="invalid chunk-size line"):
            feed(reader, head(403, b"Transfer-Encoding: chunked") + b"zz\r\n", split)
        assert reader.response is not None and reader.response.status == 403

    def test_no_trailing_data_before_the_end(self, split: str) -> None:
        reader = ResponseReader(upgrade=True)
        feed(reader, b"HTTP/1.1 100 Continue\r\n\r\n" + SWITCH[:-1], split)
        assert reader.trailing_data == b"" and reader.response is None  # an interim head is not the response
        reader = ResponseReader()
        feed(reader, head(200, b"Content-Length: 5") + b"abc", split)
        assert reader.trailing_data == b""


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "closed"),  # bare LF: never a head
        (b"HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 099 OK\r\n\r\n", "invalid status code"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "unexpected 101"),
        (head(200, b"Bad Name: x"), "invalid header field line"),
        (head(200, b"A: b", b" folded"), "invalid header field line"),
        (head(200, b"Transfer-Encoding: chunked", b"Content-Length: 3"), "both"),
        (head(200, b"Transfer-Encoding: gzip"), "unsupported Transfer-Encoding"),
        (head(200, b"Content-Length: 3", b"Content-Length: 4"), "invalid Content-Length"),
        (head(200, b"Content-Length: -1"), "invalid Content-Length"),
        (head(200, b"Content-Length: 5") + b"abc", "body bytes still expected"),
        (head(200, b"Transfer-Encoding: chunked") + b"zz\r\n", "invalid chunk-size line"),
        (head(200, b"Transfer-Encoding: chunked") + b"3\r\nabcXY", "not followed by CRLF"),
        (head(200, b"Transfer-Encoding: chunked") + b"3\r\nab", "connection closed in a chunk"),
        (head(200, b"Transfer-Encoding: chunked") + b"3\r\nabc", "after chunk data"),
        (head(200, b"Transfer-Encoding: chunked") + b"3", "chunk-size line"),
        (head(200, b"Transfer-Encoding: chunked") + b"0\r\nX: 1\r\n", "trailer section"),
        (b"", "before a response"),
        (b"HTTP/1.1 200 OK\r\n", "in the response head"),
    ],
)
def test_malformed(split: str, raw: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        read(raw, split)


class TestLimits:
    def test_head_bounded_before_it_is_complete(self) -> None:
        reader = ResponseReader(Limits(max_header_bytes=100))
        reader.receive_data(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200)
        with pytest.raises(LimitExceeded):
            reader.events_received()
        with pytest.raises(LimitExceeded):  # terminal: the same error again
            reader.events_received()

    def test_complete_head_over_the_limit(self) -> None:
        reader = ResponseReader(Limits(max_header_bytes=100))
        reader.receive_data(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200 + b"\r\n\r\n")
        with pytest.raises(LimitExceeded):
            reader.events_received()

    def test_header_count(self) -> None:
        reader = ResponseReader(Limits(max_header_count=2))
        reader.receive_data(head(200, b"A: 1", b"B: 2", b"C: 3"))
        with pytest.raises(LimitExceeded):
            reader.events_received()

    def test_chunk_line_and_trailers(self) -> None:
        limits = Limits(max_chunk_ext=10, max_header_bytes=50)
        reader = ResponseReader(limits)
        reader.receive_data(head(200, b"Transfer-Encoding: chunked") + b"1;" + b"x" * 100)
        with pytest.raises(RemoteProtocolError, match="chunk-size line longer"):
            reader.events_received()
        reader = ResponseReader(limits)
        reader.receive_data(head(200, b"Transfer-Encoding: chunked") + b"1;" + b"x" * 100 + b"\r\n")
        with pytest.raises(RemoteProtocolError, match="chunk-size line longer"):
            reader.events_received()
        reader = ResponseReader(limits)
        reader.receive_data(head(200, b"Transfer-Encoding: chunked") + b"0\r\nX: " + b"y" * 100)
        with pytest.raises(LimitExceeded, match="trailer"):
            reader.events_received()

    def test_data_after_eof_is_a_local_error(self) -> None:
        reader = ResponseReader()
        reader.receive_eof()
        with pytest.raises(LocalProtocolError):
            reader.receive_data(b"x")

    def test_framing_and_header_lookup(self) -> None:
        reader = ResponseReader()
        reader.receive_data(head(200, b"A: 1", b"a: 2", b"Content-Length: 0"))
        response = reader.events_received()[0]
        assert isinstance(response, Response)
        assert response.header(b"A") == b"1, 2" and response.header(b"b") is None
        assert reader.framing is Framing.LENGTH
        assert reader.events_received() == []  # done: nothing more, ever


class TestEncodeRequest:
    def test_bytes(self) -> None:
        assert encode_request("GET", "/e?x=1", "h:1", [("Accept", "text/event-stream")]) == (
            b"GET /e?x=1 HTTP/1.1\r\nHost: h:1\r\nAccept: text/event-stream\r\n\r\n"
        )

    @pytest.mark.parametrize(
        ("target", "host", "headers"),
        [
            ("/a b", "h", []),
            ("/", "h\r\nX: y", []),
            ("/", "h", [("X", "a\r\nY: b")]),
            ("/", "h", [("X Y", "1")]),
        ],
    )
    def test_injection_refused(self, target: str, host: str, headers: list[tuple[str, str]]) -> None:
        with pytest.raises(ValueError):
            encode_request("GET", target, host, headers)
