"""The ``rawrt.trace`` view of HTTP/2 frames (rawrt/server/h2trace.py, ``Server(trace=True)``, ``--trace``).

The tracer alone, fed wire bytes built with rawrt's own frame serialisers and HPACK encoder, whole and one
byte at a time; then a real server with the ``h2`` package as the client, where a second request on the
same connection is encoded against HPACK's dynamic table: the trace decodes it, and the connection (whose
decoder the trace must not touch) still answers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.events
import pytest

from rawrt import App, Request, Response
from rawrt.limits import Limits
from rawrt.sansio.h2.frames import (
    PREFACE,
    ContinuationFrame,
    DataFrame,
    ErrorCode,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    Priority,
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
from rawrt.server import Server
from rawrt.server.h2trace import PREVIEW, H2Tracer, describe_frame, format_flags

TIMEOUT = 10.0


def traced(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rawrt.trace"]


def feed_both_ways(
    caplog: pytest.LogCaptureFixture, received: bytes, sent: bytes = b"", limits: Limits | None = None
) -> list[str]:
    """The records for ``received`` (then ``sent``), which must be the same fed whole or byte by byte."""
    runs = []
    for step in (max(1, len(received) + len(sent)), 1):
        caplog.clear()
        tracer = H2Tracer(limits or Limits())
        for i in range(0, len(received), step):
            tracer.received(received[i : i + step])
        for i in range(0, len(sent), step):
            tracer.sent(memoryview(sent)[i : i + step])
        runs.append(traced(caplog))
    assert runs[0] == runs[1]
    return runs[0]


@pytest.fixture
def trace_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="rawrt.trace")
    yield caplog


class TestFrames:
    """Each frame type (RFC 9113 §6) as one record: type, stream, length, flags, what the payload says."""

    def test_preface_settings_and_window_update(self, trace_log: pytest.LogCaptureFixture) -> None:
        wire = (
            PREFACE
            + SettingsFrame(((SettingCode.ENABLE_PUSH, 0), (0x99, 7))).serialize()
            + WindowUpdateFrame(0, 983_041).serialize()
            + SettingsFrame(ack=True).serialize()
        )
        assert feed_both_ways(trace_log, wire) == [
            "<< preface b'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n'",
            "<< SETTINGS stream=0 len=12 flags=0 ENABLE_PUSH=0 0x99=7",
            "<< WINDOW_UPDATE stream=0 len=4 flags=0 increment=983041",
            "<< SETTINGS stream=0 len=0 flags=0x01(ACK)",
        ]

    def test_headers_are_hpack_decoded_in_order(self, trace_log: pytest.LogCaptureFixture) -> None:
        """§4.3: a direction's blocks share a dynamic table; the second refers to the first's entries."""
        encoder = Encoder()
        fields = [(b":method", b"GET"), (b":path", b"/hello"), (b"x-custom", b"one")]
        first = encoder.encode(fields)
        second = encoder.encode(fields)
        assert len(second) < len(first)  # x-custom: one now comes from the dynamic table (RFC 7541 §2.3.2)
        wire = (
            PREFACE
            + HeadersFrame(1, first, end_stream=True, end_headers=True).serialize()
            + HeadersFrame(3, second, end_stream=True, end_headers=True).serialize()
        )
        shown = "\n    :method: GET\n    :path: /hello\n    x-custom: one"
        assert feed_both_ways(trace_log, wire)[1:] == [
            f"<< HEADERS stream=1 len={len(first)} flags=0x05(END_STREAM|END_HEADERS){shown}",
            f"<< HEADERS stream=3 len={len(second)} flags=0x05(END_STREAM|END_HEADERS){shown}",
        ]

    def test_continuation_padding_priority_and_never_indexed(
        self, trace_log: pytest.LogCaptureFixture
    ) -> None:
        block = Encoder().encode([(b":status", b"200"), (b"authorization", b"secret")])
        wire = (
            HeadersFrame(
                1,
                block[:3],
                end_headers=False,
                padding=2,
                priority=Priority(depends_on=0, weight=32, exclusive=True),
            ).serialize()
            + ContinuationFrame(1, block[3:], end_headers=True).serialize()
        )
        assert feed_both_ways(trace_log, b"", wire) == [
            ">> HEADERS stream=1 len=11 flags=0x28(PADDED|PRIORITY) padding=2"
            " priority(deprecated, §5.3.2): depends_on=0 weight=32 exclusive=1"
            "\n    (the field block continues in CONTINUATION frames)",
            f">> CONTINUATION stream=1 len={len(block) - 3} flags=0x04(END_HEADERS)"
            "\n    :status: 200\n    authorization: secret (never indexed)",
        ]

    def test_data_is_previewed(self, trace_log: pytest.LogCaptureFixture) -> None:
        big = bytes(range(100)) * 1000
        wire = (
            DataFrame(1, b"data: hi\n\n").serialize()
            + DataFrame(1, b"abc", end_stream=True, padding=4).serialize()
            + encode_frame(0x0, 0x0, 3, big)  # larger than any frame size allows: still only previewed
        )
        assert feed_both_ways(trace_log, b"", wire) == [
            ">> DATA stream=1 len=10 flags=0 data=b'data: hi\\n\\n'",
            ">> DATA stream=1 len=8 flags=0x09(END_STREAM|PADDED) padding=4 data=b'abc'",
            f">> DATA stream=3 len=100000 flags=0 data={big[:PREVIEW]!r}...",
        ]

    def test_connection_and_stream_control_frames(self, trace_log: pytest.LogCaptureFixture) -> None:
        wire = (
            PingFrame(b"\x00\x01\x02\x03\x04\x05\x06\x07", ack=True).serialize()
            + RstStreamFrame(5, ErrorCode.CANCEL).serialize()
            + RstStreamFrame(7, 0x77).serialize()
            + PriorityFrame(9, Priority(depends_on=3, weight=1)).serialize()
            + GoAwayFrame(7, ErrorCode.ENHANCE_YOUR_CALM, b"too many resets").serialize()
            + GoAwayFrame(0, ErrorCode.NO_ERROR).serialize()
            + UnknownFrame(0xFA, 0xFF, 0, b"extension").serialize()
        )
        assert feed_both_ways(trace_log, b"", wire) == [
            ">> PING stream=0 len=8 flags=0x01(ACK) opaque=0001020304050607",
            ">> RST_STREAM stream=5 len=4 flags=0 error=CANCEL",
            ">> RST_STREAM stream=7 len=4 flags=0 error=0x77",
            ">> PRIORITY stream=9 len=5 flags=0 depends_on=3 weight=1 exclusive=0",
            ">> GOAWAY stream=0 len=23 flags=0 last_stream=7 error=ENHANCE_YOUR_CALM"
            " debug=b'too many resets'",
            ">> GOAWAY stream=0 len=8 flags=0 last_stream=0 error=NO_ERROR",
            ">> UNKNOWN(0xfa) stream=0 len=9 flags=0xff(0xff) payload=b'extension'",
        ]

    def test_push_promise(self, trace_log: pytest.LogCaptureFixture) -> None:
        block = Encoder().encode([(b":path", b"/style.css")])
        wire = PushPromiseFrame(1, 2, block, end_headers=True, padding=1).serialize()
        assert feed_both_ways(trace_log, b"", wire) == [
            f">> PUSH_PROMISE stream=1 len={len(block) + 6} flags=0x0c(END_HEADERS|PADDED) padding=1"
            " promised_stream=2\n    :path: /style.css",
        ]

    def test_describe_frame_is_lenient(self) -> None:
        """Frames the connection would refuse are still shown as they were sent (no exception)."""
        assert describe_frame(0x3, 0, 1, 3, b"abc") == "RST_STREAM stream=1 len=3 flags=0"
        assert describe_frame(0x4, 0, 0, 7, b"\x00\x01\x00\x00\x00\x01\x00") == (
            "SETTINGS stream=0 len=7 flags=0 HEADER_TABLE_SIZE=1"
        )
        assert (
            describe_frame(0x4, 0, 0, 12, b"\x00\x01")
            == "SETTINGS stream=0 len=12 flags=0 (payload not kept)"
        )
        assert describe_frame(0x0, 0x8, 1, 0, b"") == "DATA stream=1 len=0 flags=0x08(PADDED) data=b''"
        assert describe_frame(0x1, 0x20, 1, 2, b"\x00\x00") == "HEADERS stream=1 len=2 flags=0x20(PRIORITY)"
        assert describe_frame(0x5, 0x0, 1, 2, b"\x00\x00") == "PUSH_PROMISE stream=1 len=2 flags=0"
        assert format_flags(0x0, 0x41) == "0x41(END_STREAM|0x40)"


class TestHpackContext:
    """The trace's own decoders: bounded, lenient, and honest when they lose step with the encoder."""

    def test_table_size_update_bounded_by_the_other_sides_settings(
        self, trace_log: pytest.LogCaptureFixture
    ) -> None:
        """RFC 7541 §4.2: a size update may reach the SETTINGS_HEADER_TABLE_SIZE the decoder's side sent."""
        encoder = Encoder()
        encoder.set_max_table_size(8192)
        block = encoder.encode([(b":status", b"204")])
        settings = SettingsFrame(((SettingCode.HEADER_TABLE_SIZE, 8192),)).serialize()
        lines = feed_both_ways(
            trace_log, PREFACE + settings, HeadersFrame(1, block, end_headers=True).serialize()
        )
        assert lines[-1].endswith("flags=0x04(END_HEADERS)\n    :status: 204")
        # Without that SETTINGS, the update is past what the client allowed: not decoded, and said so.
        lines = feed_both_ways(trace_log, b"", HeadersFrame(1, block, end_headers=True).serialize())
        assert "(fields not decoded: dynamic table size update to 8192" in lines[0]

    def test_undecodable_block_puts_the_direction_out_of_step(
        self, trace_log: pytest.LogCaptureFixture
    ) -> None:
        good = Encoder().encode([(b":status", b"200")])
        wire = (
            HeadersFrame(1, b"\xff\xff\xff\xff\xff\xff", end_headers=True).serialize()  # an integer too long
            + HeadersFrame(3, good, end_headers=True).serialize()
        )
        first, second = feed_both_ways(trace_log, b"", wire)
        assert "\n    (fields not decoded: " in first
        assert second.endswith(
            "(fields not decoded: HPACK context out of step after an undecodable block ("
            + first.split("(fields not decoded: ")[1]
            + ")"
        )

    def test_header_list_over_the_limit(self, trace_log: pytest.LogCaptureFixture) -> None:
        """RFC 9113 §6.5.2: not shown, but the table stays in step: the next block decodes."""
        limits = Limits(h2_max_header_list_size=100)
        encoder = Encoder()
        big = encoder.encode([(b"x-big", b"v" * 200)])
        small = encoder.encode([(b"x-small", b"1")])
        wire = (
            HeadersFrame(1, big, end_headers=True).serialize()
            + HeadersFrame(3, small, end_headers=True).serialize()
        )
        first, second = feed_both_ways(trace_log, b"", wire, limits)
        assert "(fields not shown: header list of at least" in first
        assert second.endswith("\n    x-small: 1")

    def test_block_over_the_cap_is_not_kept(self, trace_log: pytest.LogCaptureFixture) -> None:
        """Memory: past the connection's own cap on a block (4 x the header-list limit + 1 KiB), the
        fragment is dropped, and so is the HPACK context (§4.3: the connection closes then too)."""
        limits = Limits(h2_max_header_list_size=100)  # cap: 1,424 octets
        fragment = bytes(1000)
        wire = (
            HeadersFrame(1, fragment, end_headers=False).serialize()
            + ContinuationFrame(1, fragment, end_headers=True).serialize()
            + HeadersFrame(3, bytes(2000), end_headers=True).serialize()
            + HeadersFrame(5, Encoder().encode([(b"a", b"b")]), end_headers=True).serialize()
        )
        lines = feed_both_ways(trace_log, b"", wire, limits)
        lost = (
            "(fields not decoded: HPACK context out of step after a field block on stream 1 over 1424 octets)"
        )
        assert lines[0].endswith("(the field block continues in CONTINUATION frames)")
        assert lines[1].endswith(lost)
        assert lines[2].endswith(f"len=2000 flags=0x04(END_HEADERS) (payload not kept)\n    {lost}")
        assert lines[3].endswith(lost)


# --- a real server ------------------------------------------------------------------------------------------


def hello_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text("Hello, world!")

    return app


async def h2_exchange(server: Server, paths: list[str]) -> list[tuple[bytes, bytes]]:
    """One connection; each path requested after the previous answer; (status, body) of each."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    answers = []
    try:
        for path in paths:
            stream_id = conn.get_next_available_stream_id()
            headers = [(":method", "GET"), (":scheme", "http"), (":authority", "test"), (":path", path)]
            conn.send_headers(stream_id, headers + [("x-client", "trace-test")], end_stream=True)
            writer.write(conn.data_to_send())
            status, body, ended = b"", b"", False
            while not ended:
                data = await asyncio.wait_for(reader.read(65536), TIMEOUT)
                assert data, "the server closed the connection"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers or [])[b":status"]
                    elif isinstance(event, h2.events.DataReceived) and event.data is not None:
                        body += event.data
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                        ended = True
                writer.write(conn.data_to_send())
            answers.append((status, body))
    finally:
        writer.close()
    return answers


class TestServer:
    @pytest.mark.asyncio
    async def test_both_directions_are_traced(self, trace_log: pytest.LogCaptureFixture) -> None:
        server = Server(hello_app(), trace=True)
        await server.start("127.0.0.1", 0)
        try:
            answers = await h2_exchange(server, ["/hello", "/hello"])
        finally:
            await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)
        # The second request is encoded against the client's dynamic table: the connection decoded it.
        assert answers == [(b"200", b"Hello, world!")] * 2
        lines = traced(trace_log)
        assert all(" << " in line or " >> " in line for line in lines)
        arrows = [line.split(" ", 2)[1:] for line in lines]
        assert arrows[0][0] == ">>" and arrows[0][1].startswith(
            "SETTINGS stream=0 len=42 flags=0 HEADER_TABLE_SIZE=4096"
        )
        assert ["<<", "preface b'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n'"] in arrows
        requests = [text for arrow, text in arrows if arrow == "<<" and text.startswith("HEADERS")]
        assert len(requests) == 2
        for stream_id, text in zip((1, 3), requests, strict=True):
            assert text.startswith(f"HEADERS stream={stream_id} ")
            assert text.endswith("\n    :path: /hello\n    x-client: trace-test")
        responses = [text for arrow, text in arrows if arrow == ">>" and text.startswith("HEADERS")]
        assert [r.split("\n")[1] for r in responses] == ["    :status: 200"] * 2
        assert [">>", "DATA stream=3 len=13 flags=0x01(END_STREAM) data=b'Hello, world!'"] in arrows

    @pytest.mark.asyncio
    async def test_off_by_default(self, trace_log: pytest.LogCaptureFixture) -> None:
        server = Server(hello_app())
        await server.start("127.0.0.1", 0)
        try:
            assert await h2_exchange(server, ["/hello"]) == [(b"200", b"Hello, world!")]
        finally:
            await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)
        assert traced(trace_log) == []
