"""Tests for rawrt.sansio.sse: the WHATWG HTML §9.2 event-stream format, bytes in and events out.

Every parser test runs twice, on the stream whole and one byte at a time (h11's ``t_body_reader``), through
``parse``. Wire bytes are literals; the spec's own examples are copied verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rawrt.errors import InvalidEventError, LimitExceeded, LocalProtocolError
from rawrt.limits import DEFAULT_LIMITS
from rawrt.sansio.sse import (
    CONTENT_TYPE,
    MessageEvent,
    RetryChanged,
    ServerSentEvent,
    SSEEvent,
    SSEParser,
    encode_comment,
)

M = MessageEvent


def feed(
    chunks: Sequence[bytes], *, max_event_size: int = DEFAULT_LIMITS.sse_max_event_size
) -> list[SSEEvent]:
    """Feed ``chunks`` then EOF to a new parser; return every event."""
    parser = SSEParser(max_event_size=max_event_size)
    events: list[SSEEvent] = []
    for chunk in chunks:
        parser.receive_data(chunk)
        events += parser.events_received()
    parser.receive_eof()
    return events + parser.events_received()


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


class Parse(Protocol):
    def __call__(self, data: bytes, *, max_event_size: int = ...) -> list[SSEEvent]: ...


@pytest.fixture(params=["whole", "bytewise"])
def parse(request: pytest.FixtureRequest) -> Parse:
    """``parse(data)``: the events of ``data``, fed whole or one byte at a time (the test runs for both)."""

    def run(data: bytes, *, max_event_size: int = DEFAULT_LIMITS.sse_max_event_size) -> list[SSEEvent]:
        chunks = [data] if request.param == "whole" else bytewise(data)
        return feed(chunks, max_event_size=max_event_size)

    return run


def reference_parse(data: bytes) -> list[SSEEvent]:
    """A direct, whole-input transcription of WHATWG HTML §9.2.6, as an oracle for the incremental parser.

    Same documented deviations as SSEParser: empty and > 2**64 - 1 ``retry`` are ignored; no size limit.
    """
    text = data.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = re.split("\r\n|\r|\n", text)
    lines.pop()  # not terminated: discarded at end of file
    events: list[SSEEvent] = []
    data_buf, type_buf, id_buf = "", "", ""
    for line in lines:
        if line == "":
            if data_buf == "":
                type_buf = ""
                continue
            events.append(MessageEvent(type_buf or "message", data_buf.removesuffix("\n"), id_buf))
            data_buf, type_buf = "", ""
        elif line.startswith(":"):
            continue
        else:
            name, colon, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                type_buf = value
            elif name == "data":
                data_buf += value + "\n"
            elif name == "id" and "\0" not in value:
                id_buf = value
            elif name == "retry" and re.fullmatch("[0-9]+", value) and int(value) < 2**64:
                events.append(RetryChanged(int(value)))
    return events


class TestEncoding:
    """§9.2.5 "Parsing an event stream": what ServerSentEvent.encode() puts on the wire."""

    def test_content_type(self) -> None:
        assert CONTENT_TYPE == "text/event-stream; charset=utf-8"

    def test_data(self) -> None:
        assert ServerSentEvent("hello").encode() == b"data: hello\n\n"

    @pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"])
    def test_data_split_on_every_line_ending(self, eol: str) -> None:
        # Each line of data becomes a data field; the client joins them with LF (so CR/CRLF arrive as LF).
        assert ServerSentEvent(f"a{eol}b{eol}").encode() == b"data: a\ndata: b\ndata:\n\n"

    def test_mixed_line_endings_and_blank_lines(self) -> None:
        assert ServerSentEvent("a\r\n\r\rb\n").encode() == b"data: a\ndata:\ndata:\ndata: b\ndata:\n\n"

    def test_empty_data_is_one_data_line(self) -> None:
        # §9.2.6: "data:" makes the data buffer "\n", which is not empty: dispatched with data "".
        wire = ServerSentEvent("").encode()
        assert wire == b"data:\n\n"
        assert feed([wire]) == [M("message", "", "")]

    def test_no_data_dispatches_nothing_but_sets_id_and_retry(self) -> None:
        wire = ServerSentEvent(id="7", retry=3000).encode()
        assert wire == b"id: 7\nretry: 3000\n\n"
        parser = SSEParser()
        parser.receive_data(wire)
        assert parser.events_received() == [RetryChanged(3000)]
        assert (parser.last_event_id, parser.retry) == ("7", 3000)

    def test_nothing_at_all(self) -> None:
        assert ServerSentEvent().encode() == b"\n"

    def test_all_fields_in_order(self) -> None:
        event = ServerSentEvent("d", event="add", id="42", retry=0, comment="c")
        assert event.encode() == b": c\nevent: add\nid: 42\nretry: 0\ndata: d\n\n"

    def test_leading_space_survives(self) -> None:
        # The parser strips exactly one space after the colon; the encoder always writes one.
        wire = ServerSentEvent("  two", event=" sp", id=" 1").encode()
        assert wire == b"event:  sp\nid:  1\ndata:   two\n\n"
        assert feed([wire]) == [M(" sp", "  two", " 1")]

    def test_empty_event_name_is_omitted(self) -> None:
        assert ServerSentEvent("x", event="").encode() == b"data: x\n\n"

    def test_empty_id_resets(self) -> None:
        assert ServerSentEvent("x", id="").encode() == b"id:\ndata: x\n\n"

    def test_unicode_is_utf8(self) -> None:
        assert ServerSentEvent("é€😀", event="ü").encode() == "event: ü\ndata: é€😀\n\n".encode()

    def test_unicode_line_separators_are_not_split(self) -> None:
        # Only CR and LF end lines in this format (§9.2.5), unlike str.splitlines().
        data = "a\x85b\u2028c\x0bd\x0ce\x1cf"
        assert ServerSentEvent(data).encode() == f"data: {data}\n\n".encode()

    def test_encode_comment(self) -> None:
        assert encode_comment("heartbeat") == b": heartbeat\n\n"
        assert encode_comment() == b":\n\n"
        assert feed([encode_comment("x") * 3]) == []

    def test_frozen(self) -> None:
        event = ServerSentEvent("x")
        with pytest.raises(AttributeError):
            event.data = "y"  # type: ignore[misc]

    def test_equality_ignores_cache(self) -> None:
        assert ServerSentEvent("x", id="1") == ServerSentEvent("x", id="1")
        assert "_wire" not in repr(ServerSentEvent("x"))


class TestEncodingValidation:
    """§9.2.5: ``any-char`` excludes CR and LF; §9.2.6 ignores an id with NUL. Refused at construction."""

    @pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n"])
    @pytest.mark.parametrize("name", ["event", "id", "comment"])
    def test_newline_refused(self, name: str, bad: str) -> None:
        with pytest.raises(InvalidEventError, match="must not contain CR or LF"):
            ServerSentEvent("x", **{name: bad})  # type: ignore[arg-type]

    def test_comment_function_refuses_newline(self) -> None:
        with pytest.raises(InvalidEventError, match="comment"):
            encode_comment("beat\ndata: injected")

    def test_nul_in_id_refused(self) -> None:
        with pytest.raises(InvalidEventError, match="NUL"):
            ServerSentEvent("x", id="a\0b")

    def test_nul_elsewhere_is_fine(self) -> None:
        wire = ServerSentEvent("a\0b", event="t\0").encode()
        assert feed([wire]) == [M("t\0", "a\0b", "")]

    @pytest.mark.parametrize("retry", [-1, True, 1.5, "10"])
    def test_bad_retry(self, retry: object) -> None:
        with pytest.raises(InvalidEventError, match="retry must be a non-negative int"):
            ServerSentEvent("x", retry=retry)  # type: ignore[arg-type]

    @pytest.mark.parametrize("name", ["data", "event", "id", "comment"])
    def test_not_a_str(self, name: str) -> None:
        with pytest.raises(InvalidEventError, match=f"{name} must be a str or None, not bytes"):
            ServerSentEvent(**{name: b"x"})  # type: ignore[arg-type]

    def test_lone_surrogate(self) -> None:
        with pytest.raises(InvalidEventError, match="UTF-8"):
            ServerSentEvent("\ud800")

    def test_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            ServerSentEvent(id="\n")


class TestSpecExamples:
    """WHATWG HTML §9.2.6 "Interpreting an event stream" and §9.2.4 examples, verbatim."""

    def test_stock_ticker(self, parse: Parse) -> None:
        # "...would cause an event message with the interface MessageEvent to be dispatched on the
        # EventSource object. The event's data attribute would contain the string "YHOO\n+2\n10"".
        assert parse(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [M("message", "YHOO\n+2\n10", "")]

    def test_four_blocks(self, parse: Parse) -> None:
        # "The following stream contains four blocks. The first block has just a comment, and will fire
        # nothing. [...] an event [...] with the data "first event", and will then set the last event ID
        # to "1" [...] The third block fires an event with data "second event", and also has an "id"
        # field, this time with no value, which resets the last event ID to the empty string [...] the
        # last block just fires an event with the data " third event" (with a single leading space)."
        stream = (
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
        )
        assert parse(stream) == [
            M("message", "first event", "1"),
            M("message", "second event", ""),
            M("message", " third event", ""),
        ]

    def test_empty_data_fields(self, parse: Parse) -> None:
        # "The following stream fires two events: [...] The first block fires events with the data set to
        # the empty string, as would the last block if it was followed by a blank line. The middle block
        # fires an event with the data set to a single newline character. The last block is discarded
        # because it is not followed by a blank line."
        assert parse(b"data\n\ndata\ndata\n\ndata:") == [M("message", "", ""), M("message", "\n", "")]

    def test_space_after_colon_is_optional(self, parse: Parse) -> None:
        # "The following stream fires two identical events: This is because the space after the colon is
        # ignored if present."
        assert parse(b"data:test\n\ndata: test\n\n") == [M("message", "test", "")] * 2

    def test_event_types(self, parse: Parse) -> None:
        # §9.2.4: "event: add / data: 73857293" etc., listened to with addEventListener('add', ...).
        stream = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
        assert parse(stream) == [M("add", "73857293", ""), M("remove", "2153", ""), M("add", "113411", "")]


class TestLineEndings:
    """§9.2.5: end-of-line = ( cr lf / cr / lf )."""

    @pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
    def test_each_line_ending(self, parse: Parse, eol: bytes) -> None:
        stream = b"data: a" + eol + b"data: b" + eol + eol
        assert parse(stream) == [M("message", "a\nb", "")]

    def test_mixed(self, parse: Parse) -> None:
        assert parse(b"data: a\rdata: b\r\ndata: c\n\r\n") == [M("message", "a\nb\nc", "")]

    def test_cr_lf_split_across_chunks_is_one_terminator(self) -> None:
        # If CR and LF were counted as two line ends, the LF would make a blank line and dispatch "a" alone.
        assert feed([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [M("message", "a\nb", "")]

    def test_cr_then_empty_chunk_then_lf(self) -> None:
        assert feed([b"data: a\r", b"", b"\ndata: b\n\n"]) == [M("message", "a\nb", "")]

    def test_cr_then_partial_utf8_then_lf(self) -> None:
        # The chunk after the CR decodes to nothing yet (half a character); the LF check must wait.
        assert feed([b"data: a\r", b"\xc3", b"\xa9\n\n"]) == [M("message", "a", "")]
        assert feed([b"data: a\r", b"", b"\n\n"]) == [M("message", "a", "")]

    def test_cr_then_other_text(self) -> None:
        assert feed([b"data: a\r", b"data: b\r\r"]) == [M("message", "a\nb", "")]

    def test_double_cr_is_two_line_ends(self, parse: Parse) -> None:
        assert parse(b"data: a\r\rdata: b\n\n") == [M("message", "a", ""), M("message", "b", "")]

    def test_lf_cr_is_two_line_ends(self, parse: Parse) -> None:
        assert parse(b"data: a\n\rdata: b\n\n") == [M("message", "a", ""), M("message", "b", "")]

    @pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
    def test_other_separators_are_content(self, parse: Parse, char: str) -> None:
        # str.splitlines() would split on these (a bug httpx-sse once had); §9.2.5 does not.
        assert parse(f"data: a{char}b\n\n".encode()) == [M("message", f"a{char}b", "")]


class TestDecoding:
    """§9.2.5/§9.2.6: the stream is UTF-8, decoded with replacement; one leading BOM is stripped."""

    def test_bom_stripped(self, parse: Parse) -> None:
        assert parse(b"\xef\xbb\xbfdata: x\n\n") == [M("message", "x", "")]

    def test_only_one_bom_stripped(self, parse: Parse) -> None:
        # The second BOM is part of the first line's field name "\ufeffdata": an unknown field, ignored.
        assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [M("message", "y", "")]

    def test_bom_later_is_content(self, parse: Parse) -> None:
        assert parse(b"data: \xef\xbb\xbfx\n\n") == [M("message", "\ufeffx", "")]

    def test_bom_split_across_chunks(self) -> None:
        assert feed([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [M("message", "x", "")]

    def test_empty_first_chunk_then_bom(self) -> None:
        assert feed([b"", b"\xef\xbb\xbfdata: x\n\n"]) == [M("message", "x", "")]

    def test_invalid_utf8_replaced(self, parse: Parse) -> None:
        assert parse(b"data: a\xffb\xc3\n\n") == [M("message", "a\ufffdb\ufffd", "")]

    def test_truncated_sequence_before_newline(self, parse: Parse) -> None:
        # "\xe2\x82" (2 of the 3 bytes of "€") then LF: one U+FFFD, and the LF still ends the line.
        assert parse(b"data: \xe2\x82\n\n") == [M("message", "\ufffd", "")]

    def test_multibyte_characters(self, parse: Parse) -> None:
        assert parse("data: é€😀\n\n".encode()) == [M("message", "é€😀", "")]


class TestFields:
    """§9.2.6: comments, field names and values, unknown fields."""

    def test_comment_lines_ignored(self, parse: Parse) -> None:
        assert parse(b":c\ndata: a\n: another\ndata: b\n:\n\n") == [M("message", "a\nb", "")]

    def test_only_one_space_stripped(self, parse: Parse) -> None:
        assert parse(b"data:   x\n\n") == [M("message", "  x", "")]

    def test_tab_not_stripped(self, parse: Parse) -> None:
        assert parse(b"data:\tx\n\n") == [M("message", "\tx", "")]

    def test_colon_in_value(self, parse: Parse) -> None:
        assert parse(b'data: {"a": 1}\n\n') == [M("message", '{"a": 1}', "")]

    def test_field_without_colon(self, parse: Parse) -> None:
        assert parse(b"event\ndata\n\n") == [M("message", "", "")]

    def test_field_names_are_case_sensitive(self, parse: Parse) -> None:
        assert parse(b"Data: x\nDATA: y\ndata: z\n\n") == [M("message", "z", "")]

    def test_space_before_colon_makes_another_name(self, parse: Parse) -> None:
        assert parse(b"data : x\ndata: y\n\n") == [M("message", "y", "")]

    def test_unknown_fields_ignored(self, parse: Parse) -> None:
        assert parse(b"foo: bar\ndata: x\nbaz\n\n") == [M("message", "x", "")]

    def test_blank_lines_alone_dispatch_nothing(self, parse: Parse) -> None:
        assert parse(b"\n\n\r\n\r\r") == []


class TestEventType:
    """§9.2.6: the event type buffer, "message" by default, reset at every blank line."""

    def test_default(self, parse: Parse) -> None:
        assert parse(b"data: x\n\n") == [M("message", "x", "")]

    def test_empty_event_name_is_message(self, parse: Parse) -> None:
        assert parse(b"event:\ndata: x\n\n") == [M("message", "x", "")]

    def test_last_event_field_wins(self, parse: Parse) -> None:
        assert parse(b"event: a\nevent: b\ndata: x\n\n") == [M("b", "x", "")]

    def test_type_reset_after_each_event(self, parse: Parse) -> None:
        assert parse(b"event: a\ndata: x\n\ndata: y\n\n") == [M("a", "x", ""), M("message", "y", "")]

    def test_type_reset_by_blank_line_without_data(self, parse: Parse) -> None:
        # Step 2 of "dispatch the event" clears the event type buffer even when nothing is dispatched.
        assert parse(b"event: a\n\ndata: y\n\n") == [M("message", "y", "")]


class TestLastEventId:
    """§9.2.6: the ``id`` field, the last event ID buffer and the last event ID string."""

    def test_persists_across_events(self, parse: Parse) -> None:
        assert parse(b"id: 1\ndata: a\n\ndata: b\n\n") == [M("message", "a", "1"), M("message", "b", "1")]

    def test_id_after_data_in_same_event(self, parse: Parse) -> None:
        assert parse(b"data: a\nid: 9\n\n") == [M("message", "a", "9")]

    def test_id_with_nul_ignored(self, parse: Parse) -> None:
        assert parse(b"id: 1\n\nid: 2\x00\ndata: a\n\n") == [M("message", "a", "1")]

    def test_empty_id_resets(self, parse: Parse) -> None:
        assert parse(b"id: 1\ndata: a\n\nid:\ndata: b\n\n") == [M("message", "a", "1"), M("message", "b", "")]

    def test_set_at_blank_line_even_without_data(self) -> None:
        parser = SSEParser()
        parser.receive_data(b"id: 5\n")
        assert parser.last_event_id == ""  # only the buffer is set until the blank line
        parser.receive_data(b"\n")
        assert (parser.last_event_id, parser.events_received()) == ("5", [])

    def test_seeded_last_event_id_survives_a_blank_line(self) -> None:
        # A reconnecting client seeds the parser with the id it resumes from (as browsers do): a heartbeat's
        # blank line before the first id must not reset it, and events without an id report it.
        parser = SSEParser(last_event_id="41")
        assert parser.last_event_id == "41"
        parser.receive_data(b": heartbeat\n\ndata: x\n\n")
        assert (parser.last_event_id, parser.events_received()) == ("41", [M("message", "x", "41")])

    def test_id_of_unfinished_event_not_kept(self) -> None:
        parser = SSEParser()
        parser.receive_data(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
        parser.receive_eof()
        assert parser.events_received() == [M("message", "a", "1")]
        assert parser.last_event_id == "1"


class TestRetry:
    """§9.2.6: ``retry`` sets the reconnection time if the value is only ASCII digits."""

    def test_valid(self, parse: Parse) -> None:
        assert parse(b"retry: 3000\n\n") == [RetryChanged(3000)]

    def test_in_stream_order(self, parse: Parse) -> None:
        stream = b"data: a\n\nretry: 10\ndata: b\nretry: 20\n\n"
        assert parse(stream) == [
            M("message", "a", ""),
            RetryChanged(10),
            RetryChanged(20),
            M("message", "b", ""),
        ]

    def test_takes_effect_without_blank_line(self) -> None:
        parser = SSEParser()
        parser.receive_data(b"retry: 7\n")
        parser.receive_eof()
        assert (parser.events_received(), parser.retry) == ([RetryChanged(7)], 7)

    def test_leading_zeros(self, parse: Parse) -> None:
        assert parse(b"retry: 000000000000000000000000000012\n") == [RetryChanged(12)]

    @pytest.mark.parametrize(
        "value",
        [
            b"",
            b" 1",
            b"1 ",
            b"-1",
            b"+1",
            b"1.5",
            b"1e3",
            b"abc",
            "\u0663".encode(),
            "\u00b2".encode(),
            b"\xff",
        ],
    )
    def test_ignored(self, parse: Parse, value: bytes) -> None:
        # " 1": only one space is stripped after the colon, so b"retry:  1" has value " 1".
        assert parse(b"retry: " + value + b"\ndata: x\n\n") == [M("message", "x", "")]

    def test_uint64_bound(self, parse: Parse) -> None:
        top = str(2**64 - 1).encode()
        over = str(2**64).encode()
        assert parse(b"retry: " + top + b"\nretry: " + over + b"\nretry: " + b"9" * 5000 + b"\n") == [
            RetryChanged(2**64 - 1)
        ]

    def test_retry_attribute(self) -> None:
        parser = SSEParser()
        assert parser.retry is None
        parser.receive_data(b"retry: 1\nretry: x\n")
        assert parser.retry == 1


class TestEndOfStream:
    """§9.2.6: "Once the end of the file is reached, any pending data must be discarded"."""

    @pytest.mark.parametrize(
        "tail", [b"data: b", b"data: b\n", b"data: b\r", b"event: x\ndata: b\n", b"data: \xc3"]
    )
    def test_incomplete_event_discarded(self, parse: Parse, tail: bytes) -> None:
        assert parse(b"data: a\n\n" + tail) == [M("message", "a", "")]

    def test_receive_eof_idempotent(self) -> None:
        parser = SSEParser()
        parser.receive_eof()
        parser.receive_eof()
        assert parser.events_received() == []

    def test_data_after_eof(self) -> None:
        parser = SSEParser()
        parser.receive_eof()
        with pytest.raises(LocalProtocolError, match="after end of stream"):
            parser.receive_data(b"data: x\n\n")

    def test_events_received_drains(self) -> None:
        parser = SSEParser()
        parser.receive_data(b"data: a\n\n")
        assert parser.events_received() == [M("message", "a", "")]
        assert parser.events_received() == []


class TestLimits:
    """Not in the spec (browsers buffer without bound): ``max_event_size`` bounds what one event buffers."""

    def test_long_line(self, parse: Parse) -> None:
        with pytest.raises(LimitExceeded, match="max_event_size=16"):
            parse(b"data: " + b"x" * 11 + b"\n\n", max_event_size=16)

    def test_line_at_the_limit(self, parse: Parse) -> None:
        assert parse(b"data: " + b"x" * 10 + b"\n\n", max_event_size=16) == [M("message", "x" * 10, "")]

    def test_unterminated_line(self) -> None:
        parser = SSEParser(max_event_size=16)
        parser.receive_data(b"data: 0123456789")
        with pytest.raises(LimitExceeded):
            parser.receive_data(b"x")

    def test_long_comment_counts(self, parse: Parse) -> None:
        with pytest.raises(LimitExceeded):
            parse(b":" + b"x" * 100 + b"\n", max_event_size=16)

    def test_many_data_lines(self, parse: Parse) -> None:
        # Each "data: xxx" line is small, but their sum (plus one LF each) is one event's data.
        with pytest.raises(LimitExceeded):
            parse(b"data: xxx\n" * 5, max_event_size=20)
        assert parse(b"data: xxx\n" * 3 + b"\n", max_event_size=20) == [M("message", "xxx\nxxx\nxxx", "")]

    def test_data_budget_resets_per_event(self, parse: Parse) -> None:
        assert parse(b"data: xxxxxxxx\n\n" * 10, max_event_size=16) == [M("message", "x" * 8, "")] * 10

    def test_counts_characters_not_bytes(self, parse: Parse) -> None:
        assert parse("data: éééééééééé\n\n".encode(), max_event_size=16) == [M("message", "é" * 10, "")]

    def test_error_message_and_class(self) -> None:
        parser = SSEParser(max_event_size=8)
        with pytest.raises(LimitExceeded) as info:
            parser.receive_data(b"data: \x01\x02\x03\x04\x05\n")
        assert info.value.close_code == 1009
        assert "current line: 11" in str(info.value)
        assert "\\x01" in str(info.value)

    def test_no_use_after_error(self) -> None:
        parser = SSEParser(max_event_size=8)
        with pytest.raises(LimitExceeded):
            parser.receive_data(b"data: 123456789")
        with pytest.raises(LocalProtocolError, match="after an error"):
            parser.receive_data(b"\n\n")

    def test_events_before_the_error_are_kept(self) -> None:
        parser = SSEParser(max_event_size=16)
        with pytest.raises(LimitExceeded):
            parser.receive_data(b"data: a\n\ndata: " + b"x" * 20)
        assert parser.events_received() == [M("message", "a", "")]


# --- properties -----------------------------------------------------------------------------------------

# Text without surrogates (not encodable) and with the characters that matter to the format made likely.
_text = st.lists(
    st.one_of(
        st.sampled_from(
            ["\r", "\n", "\r\n", " ", ":", "\0", "\ufeff", "\x85", "\u2028", "é", "😀", "data: "]
        ),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=30,
).map("".join)
_line = _text.map(lambda s: re.sub("[\r\n]", "", s))

_events = st.builds(
    ServerSentEvent,
    data=st.none() | _text,
    event=st.none() | _line,
    id=st.none() | _line.map(lambda s: s.replace("\0", "")),
    retry=st.none() | st.integers(0, 2**64 - 1),
    comment=st.none() | _line,
)


def expected(events: list[ServerSentEvent]) -> list[SSEEvent]:
    """What a conformant client receives for ``events``: the documented CR/CRLF -> LF normalisation."""
    out: list[SSEEvent] = []
    last_id = ""
    for event in events:
        if event.retry is not None:
            out.append(RetryChanged(event.retry))
        if event.id is not None:
            last_id = event.id
        if event.data is not None:
            out.append(M(event.event or "message", re.sub("\r\n|\r", "\n", event.data), last_id))
    return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


class TestProperties:
    """Hypothesis: encode/parse round trip, chunking invariance, and an oracle for arbitrary bytes."""

    @given(st.lists(_events, max_size=8), st.lists(st.integers(0, 10_000), max_size=20))
    def test_round_trip(self, events: list[ServerSentEvent], points: list[int]) -> None:
        wire = b"".join(event.encode() for event in events)
        assert feed(cut(wire, points)) == expected(events)

    @given(_events)
    def test_round_trip_bytewise(self, event: ServerSentEvent) -> None:
        assert feed(bytewise(event.encode())) == expected([event])

    @given(st.binary(max_size=300), st.lists(st.integers(0, 10_000), max_size=20))
    @example(b"\xef\xbb\xbfdata: a\r\n\r\n", [3, 10, 11])
    @example(b"data: \xe2\x82\xacx\r", [7, 8])
    @example(b"retry: 12\rid: a\x00\ndata\n\n", [1])
    def test_arbitrary_bytes_match_reference(self, data: bytes, points: list[int]) -> None:
        assert feed(cut(data, points)) == feed([data]) == reference_parse(data)

    @given(st.binary(max_size=200))
    def test_arbitrary_bytes_bytewise(self, data: bytes) -> None:
        assert feed(bytewise(data)) == reference_parse(data)

    @given(st.binary(max_size=120), st.integers(1, 40), st.lists(st.integers(0, 10_000), max_size=10))
    def test_limit_is_chunking_invariant(self, data: bytes, limit: int, points: list[int]) -> None:
        # Under a small limit: the same outcome (events, or LimitExceeded and nothing else) however cut.
        def outcome(chunks: list[bytes]) -> object:
            parser = SSEParser(max_event_size=limit)
            events: list[SSEEvent] = []
            try:
                for chunk in chunks:
                    parser.receive_data(chunk)
                    events += parser.events_received()
            except LimitExceeded:
                return ("limit", events + parser.events_received())
            parser.receive_eof()
            return events + parser.events_received()

        assert outcome(cut(data, points)) == outcome([data]) == outcome(bytewise(data))
