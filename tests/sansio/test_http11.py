"""Wire-byte tests of the HTTP/1.1 request parser (RFC 9112), each run whole and one byte at a time.

Every test goes through :func:`test_http11_support.parse`, which feeds the input both ways and asserts that
the events and the error status agree. Test classes are named after the RFC section they check.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import pytest
from test_http11_support import GET, HOST, answer_ok, body_of, drive, parse, request_of

from rawrt.errors import LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError
from rawrt.limits import DEFAULT_LIMITS, MAX_CHUNK_SIZE_DIGITS, Limits
from rawrt.sansio import http11
from rawrt.sansio.http11 import (
    ConnectionEnded,
    Data,
    EndOfMessage,
    Event,
    HTTPConnection,
    Request,
    State,
)

SMALL = Limits(
    max_request_line=64, max_header_bytes=128, max_header_count=4, max_body_size=16, max_chunk_ext=16
)


def states(conn: HTTPConnection) -> tuple[State, State]:
    """(client state, server state), read fresh (mypy would otherwise keep a narrowed attribute)."""
    return conn.client_state, conn.server_state


def post_chunked(body: bytes, *, headers: bytes = b"") -> bytes:
    return b"POST /upload HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n" + headers + b"\r\n" + body


def post_cl(body: bytes) -> bytes:
    return b"POST /upload HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % len(body) + body


def with_header(line: bytes, version: bytes = b"1.1") -> bytes:
    host = HOST if version == b"1.1" else b""
    return b"GET / HTTP/" + version + b"\r\n" + host + line + b"\r\n\r\n"


class TestMessageParsing:
    """RFC 9112 §2.2: message parsing (CRLF line endings, empty lines before a request, incremental input)."""

    def test_simple_get(self) -> None:
        out = parse(GET)
        assert out.events == [
            Request(b"GET", b"/", b"1.1", [(b"Host", b"example.com")], content_length=0),
            EndOfMessage(),
        ]
        assert out.conn.client_state is State.DONE
        assert out.conn.server_state is State.SEND_RESPONSE

    def test_incomplete_head_gives_nothing(self) -> None:
        out = parse(GET[:-1])
        assert out.events == [] and out.error is None
        assert out.conn.client_state is State.IDLE
        assert out.conn.buffered_bytes == len(GET) - 1

    def test_events_stop_after_request_so_body_limit_can_be_set(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(post_cl(b"hello"))
        first = conn.events_received()
        assert [type(e) for e in first] == [Request]
        assert conn.events_received() == [Data(b"hello"), EndOfMessage()]

    def test_leading_empty_lines_are_ignored(self) -> None:
        # §2.2: "SHOULD ignore at least one empty line (CRLF) received prior to the request-line".
        assert request_of(parse(b"\r\n\r\n" + GET)).target == b"/"

    def test_bare_lf_line_ending_is_rejected(self) -> None:
        out = parse(b"GET / HTTP/1.1\nHost: a\n\n")
        assert type(out.error) is RemoteProtocolError and out.status == 400
        assert "bare LF" in str(out.error)

    def test_bare_lf_is_detected_before_the_head_completes(self) -> None:
        out = parse(b"GET / HTTP/1.1\n")
        assert out.status == 400 and out.events == []

    def test_leading_bare_lf(self) -> None:
        assert parse(b"\r\n\nGET / HTTP/1.1\r\n").status == 400

    def test_bare_lf_inside_header_section(self) -> None:
        assert parse(b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n").status == 400

    def test_bare_cr_in_request_line(self) -> None:
        out = parse(b"GET /\r HTTP/1.1\r\n")
        assert out.status == 400 and "bare CR" in str(out.error)

    def test_bare_cr_in_header_value(self) -> None:
        assert parse(with_header(b"X: a\rb")).status == 400

    def test_bare_lf_early_in_overlong_line_gives_the_same_answer_however_split(self) -> None:
        # Regression: whole input said 414, byte-at-a-time said 400 (the LF arrives first).
        data = b"GET / HTTP/1.1\n" + b"a" * 9000 + b"\r\n\r\n"
        out = parse(data)
        assert out.status == 400 and "bare LF" in str(out.error)
        assert parse(b"GET\r" + b"a" * 9000 + b"\r\n\r\n").status == 400

    def test_whitespace_before_request_line(self) -> None:
        out = parse(b" GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        assert out.status == 400 and "whitespace" in str(out.error)

    def test_eof_before_any_request_ends_the_connection(self) -> None:
        out = parse(b"", eof=True)
        assert out.events == [ConnectionEnded()]
        assert out.conn.client_state is State.CLOSED

    def test_eof_after_leading_crlf_only(self) -> None:
        assert parse(b"\r\n", eof=True).events == [ConnectionEnded()]

    def test_eof_mid_head(self) -> None:
        out = parse(b"GET / HTTP/1.1\r\nHo", eof=True)
        assert out.status == 400 and "middle of a request head" in str(out.error)

    def test_receive_data_after_eof_is_a_bug(self) -> None:
        conn = HTTPConnection()
        conn.receive_eof()
        with pytest.raises(RuntimeError):
            conn.receive_data(b"x")

    def test_receive_empty_data_is_harmless(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(b"")
        assert conn.events_received() == [] and conn.buffered_bytes == 0


class TestRequestLine:
    """RFC 9112 §3: request-line = method SP request-target SP HTTP-version."""

    @pytest.mark.parametrize("method", [b"GET", b"POST", b"get", b"M-SEARCH", b"X!#$%&'*+.^_`|~9"])
    def test_method_is_any_token_case_preserved(self, method: bytes) -> None:
        # RFC 9110 §9.1: methods are case-sensitive tokens.
        assert request_of(parse(method + b" / HTTP/1.1\r\n" + HOST + b"\r\n")).method == method

    @pytest.mark.parametrize(
        "line",
        [
            b"GET  / HTTP/1.1",  # two spaces
            b"GET / HTTP/1.1 ",  # trailing space
            b"GET\t/ HTTP/1.1",  # HTAB is not SP
            b"G(T / HTTP/1.1",  # "(" is not a tchar
            b"GET / HTTP/1.1 extra",
            b"/ HTTP/1.1",
            b"GET",
            b"GET /a b HTTP/1.1",
        ],
    )
    def test_malformed_request_lines(self, line: bytes) -> None:
        out = parse(line + b"\r\n" + HOST + b"\r\n")
        assert type(out.error) is RemoteProtocolError and out.status == 400

    # The first bytes of a TLS 1.3 ClientHello (RFC 8446 §5.1: record type 22 handshake, legacy version 3.1,
    # length; §4.1.2: type 1 client_hello, length, legacy_version 3.3): what a browser sends to https://
    # pointed at the plaintext port.
    CLIENT_HELLO = bytes.fromhex("16 03 01 02 00 01 00 01 fc 03 03") + bytes(32)

    def test_tls_client_hello_is_400_at_once(self) -> None:
        # Issue 10 #10: no CRLF will ever come; the first byte already shows this is not a request line.
        out = parse(self.CLIENT_HELLO)
        assert out.status == 400 and out.events == [] and type(out.error) is RemoteProtocolError
        assert "looks like a TLS handshake on a plaintext port" in str(out.error)
        assert "'\\x16'" in str(out.error)  # what was received, and only the byte that was checked

    def test_tls_client_hello_with_crlfs_in_it_gets_the_same_answer(self) -> None:
        # A complete "head" (its random bytes happen to hold CRLF CRLF) takes parse_head's path: same text.
        data = self.CLIENT_HELLO + b"\r\n\r\n"
        assert str(parse(data).error) == str(parse(self.CLIENT_HELLO).error)

    @pytest.mark.parametrize(
        ("data", "received"),
        [
            (b"\x00", "'\\x00'"),
            (b"{", "'{'"),
            (b"GET\x00", "'GET\\x00'"),
            (b"G(T / HTTP/1.1", "'G('"),
            (b"\r\nGET\t/", "'GET\\x09'"),
            (b"\xff\xfe", "'\\xff'"),
        ],
    )
    def test_bytes_that_cannot_start_a_request_line_are_400_at_once(self, data: bytes, received: str) -> None:
        # RFC 9112 §3: request-line = method SP ...; method = token (RFC 9110 §9.1). No EOF, no CRLF: the
        # answer must not wait for the header timeout.
        out = parse(data)
        assert out.status == 400 and out.events == []
        assert f"received {received}" in str(out.error) and "method token then SP" in str(out.error)

    @pytest.mark.parametrize("data", [b"G", b"M-SEARCH", b"GET ", b"\r", b"\r\n", b"\r\n\r\nPO", b"GET\r"])
    def test_a_request_line_still_possible_waits(self, data: bytes) -> None:
        # A method still arriving, or the empty lines RFC 9112 §2.2 allows before the request line.
        out = parse(data)
        assert out.error is None and out.events == []

    def test_http09_request_is_400_never_a_09_answer(self) -> None:
        # §2.3 / Appendix C.1: "GET /" with no version is HTTP/0.9; rawrt answers it with an HTTP/1.1 400.
        out = parse(b"GET /\r\n\r\n")
        assert out.status == 400 and "HTTP/0.9" in str(out.error)
        conn = out.conn
        assert out.error is not None
        conn.reject(out.error)
        sent = b"".join(conn.data_to_send())
        assert sent.startswith(b"HTTP/1.1 400 Bad Request\r\n")

    def test_request_line_at_limit_is_accepted(self) -> None:
        target = b"/" + b"a" * (SMALL.max_request_line - len(b"GET / HTTP/1.1"))
        line = b"GET " + target + b" HTTP/1.1"
        assert len(line) == SMALL.max_request_line
        assert request_of(parse(line + b"\r\nHost: a\r\n\r\n", limits=SMALL)).target == target

    def test_request_line_over_limit_is_414(self) -> None:
        line = b"GET /" + b"a" * SMALL.max_request_line + b" HTTP/1.1"
        out = parse(line + b"\r\nHost: a\r\n\r\n", limits=SMALL)
        assert type(out.error) is LimitExceeded and out.status == 414

    def test_request_line_over_limit_is_414_while_still_incomplete(self) -> None:
        # No CRLF yet: the server must not wait for one (8 KiB default limit).
        out = parse(b"GET /" + b"a" * DEFAULT_LIMITS.max_request_line)
        assert out.status == 414 and out.events == []

    def test_request_line_one_byte_short_of_limit_waits(self) -> None:
        out = parse(b"GET /" + b"a" * (SMALL.max_request_line - 5) + b"\r", limits=SMALL)
        assert out.error is None and out.events == []


class TestRequestTarget:
    """RFC 9112 §3.2: the four forms of request-target, each tied to its use."""

    @pytest.mark.parametrize(
        "target",
        [b"/", b"/a/b/c", b"/search?q=a+b&x=%20", b"/a:b@c!$&'()*+,;=-._~", b"/?", b"/p?a/b?c", b"//double"],
    )
    def test_origin_form(self, target: bytes) -> None:
        assert request_of(parse(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")).target == target

    @pytest.mark.parametrize("target", [b"/a|b", b"/a\\b", b"/{x}", b"/a^b", b"/q?x=[1]&y={a|b}&z=`c`"])
    def test_origin_form_accepts_what_browsers_send_unencoded(self, target: bytes) -> None:
        """Deliberate leniency (abnf._BROWSER_CHARS): the WHATWG URL Standard leaves these unencoded."""
        assert request_of(parse(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")).target == target

    @pytest.mark.parametrize("target", [b"/a#frag", b'/a"b', b"/a<b>"])
    def test_origin_form_rejects_chars_outside_rfc3986(self, target: bytes) -> None:
        out = parse(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")
        assert out.status == 400 and "origin-form" in str(out.error)

    @pytest.mark.parametrize("target", [b"/a\x7fb", b"/a\x80b", b"/a\x00b"])
    def test_control_and_non_ascii_bytes_in_the_target_are_refused(self, target: bytes) -> None:
        out = parse(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")
        assert out.status == 400 and "request line" in str(out.error)

    @pytest.mark.parametrize("target", [b"http://example.com/a?b", b"https://[::1]:8443/", b"urn:isbn:123"])
    def test_absolute_form(self, target: bytes) -> None:
        assert request_of(parse(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")).target == target

    @pytest.mark.parametrize("target", [b"1http://x/", b"http//x", b"ht tp://x"])
    def test_bad_absolute_form(self, target: bytes) -> None:
        assert parse(b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n").status == 400

    @pytest.mark.parametrize("target", [b"example.com:443", b"[::1]:8080", b"10.0.0.1:1"])
    def test_authority_form_for_connect(self, target: bytes) -> None:
        request = request_of(parse(b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n\r\n"))
        assert request.method == b"CONNECT" and request.target == target

    @pytest.mark.parametrize(
        "target", [b"/", b"example.com", b"example.com:", b"http://example.com:443", b"*"]
    )
    def test_connect_requires_authority_form(self, target: bytes) -> None:
        # §3.2.3; RFC 9110 §9.3.6: CONNECT's target is host:port, nothing else.
        out = parse(b"CONNECT " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n")
        assert out.status == 400 and "authority-form" in str(out.error)

    def test_asterisk_form_for_options(self) -> None:
        assert request_of(parse(b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n")).target == b"*"

    def test_asterisk_form_only_for_options(self) -> None:
        out = parse(b"GET * HTTP/1.1\r\n" + HOST + b"\r\n")
        assert out.status == 400 and "asterisk" in str(out.error)


class TestHTTPVersion:
    """RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT; 1.x served, other majors 505."""

    @pytest.mark.parametrize(
        ("wire", "version"),
        [(b"HTTP/1.1", b"1.1"), (b"HTTP/1.0", b"1.0"), (b"HTTP/1.2", b"1.1"), (b"HTTP/1.9", b"1.1")],
    )
    def test_1x_versions(self, wire: bytes, version: bytes) -> None:
        # A higher 1.x minor version is treated as the highest this server supports (1.1).
        assert request_of(parse(b"GET / " + wire + b"\r\n" + HOST + b"\r\n")).http_version == version

    @pytest.mark.parametrize("wire", [b"HTTP/2.0", b"HTTP/3.0", b"HTTP/0.9", b"HTTP/9.9"])
    def test_other_major_versions_are_505(self, wire: bytes) -> None:
        # RFC 9110 §15.6.6: 505 HTTP Version Not Supported.
        out = parse(b"GET / " + wire + b"\r\n" + HOST + b"\r\n")
        assert out.status == 505 and type(out.error) is RemoteProtocolError

    @pytest.mark.parametrize(
        "wire", [b"http/1.1", b"HTTP/1.10", b"HTTP/11", b"HTTP/1.", b"HTTPS/1.1", b"HTTP/a.b"]
    )
    def test_malformed_versions_are_400(self, wire: bytes) -> None:
        out = parse(b"GET / " + wire + b"\r\n" + HOST + b"\r\n")
        assert out.status == 400 and "HTTP-version" in str(out.error)


class TestFieldLines:
    """RFC 9112 §5 (field lines) and RFC 9110 §5.5 (field values)."""

    def test_names_case_preserved_and_ows_stripped(self) -> None:
        request = request_of(parse(with_header(b"X-Thing:  \t a b \t ")))
        assert request.headers == [(b"Host", b"example.com"), (b"X-Thing", b"a b")]

    def test_empty_value(self) -> None:
        assert request_of(parse(with_header(b"X-Empty:"))).headers[-1] == (b"X-Empty", b"")
        assert request_of(parse(with_header(b"X-Empty:   "))).headers[-1] == (b"X-Empty", b"")

    def test_obs_text_is_kept(self) -> None:
        # RFC 9110 §5.5: field-vchar = VCHAR / obs-text (0x80-0xFF).
        assert request_of(parse(with_header(b"X: caf\xe9 \xff"))).headers[-1] == (b"X", b"caf\xe9 \xff")

    def test_repeated_fields_keep_order(self) -> None:
        request = request_of(parse(with_header(b"A: 1\r\nB: 2\r\nA: 3")))
        assert request.headers[1:] == [(b"A", b"1"), (b"B", b"2"), (b"A", b"3")]

    @pytest.mark.parametrize("line", [b"X : a", b"X\t: a", b"Host : a"])
    def test_whitespace_before_colon_is_400(self, line: bytes) -> None:
        # §5.1: "A server MUST reject ... any received request message that contains whitespace between a
        # header field name and colon with a response status code of 400".
        out = parse(with_header(line))
        assert out.status == 400 and "between header name and colon" in str(out.error)

    def test_obs_fold_is_400(self) -> None:
        # §5.2: a server MUST either reject obs-fold with 400 or replace it; rawrt rejects.
        out = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n")
        assert out.status == 400 and "folding" in str(out.error)

    def test_obs_fold_with_tab(self) -> None:
        assert parse(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n").status == 400

    @pytest.mark.parametrize("byte", [0x00, 0x01, 0x08, 0x0B, 0x0C, 0x0D, 0x1F, 0x7F])
    def test_control_characters_in_value_are_400(self, byte: int) -> None:
        out = parse(with_header(b"X: a" + bytes([byte]) + b"b"))
        assert out.status == 400 and f"0x{byte:02x}" in str(out.error)

    def test_htab_in_value_is_fine(self) -> None:
        assert request_of(parse(with_header(b"X: a\tb"))).headers[-1] == (b"X", b"a\tb")

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (b"X Y: a", "invalid header name"),
            (b": a", "invalid header name"),
            (b"X(: a", "invalid header name"),
            (b"\xff: a", "invalid header name"),
            (b"no colon here", "without a colon"),
        ],
    )
    def test_bad_field_names(self, line: bytes, message: str) -> None:
        out = parse(with_header(line))
        assert out.status == 400 and message in str(out.error)

    def test_header_count_limit_is_431(self) -> None:
        lines = b"".join(b"X%d: y\r\n" % i for i in range(SMALL.max_header_count))  # + Host = one too many
        out = parse(b"GET / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n", limits=SMALL)
        assert type(out.error) is LimitExceeded and out.status == 431

    def test_header_count_at_limit_is_fine(self) -> None:
        lines = b"".join(b"X%d: y\r\n" % i for i in range(SMALL.max_header_count - 1))
        assert (
            len(request_of(parse(b"GET / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n", limits=SMALL)).headers)
            == 4
        )

    def test_header_section_size_boundary(self) -> None:
        # The header section counted: each field line with its CRLF, as received.
        def head(value_len: int) -> bytes:
            return b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * value_len + b"\r\n\r\n"

        overhead = len(b"\r\nHost: a\r\nX: ")
        fits = head(SMALL.max_header_bytes - overhead)
        assert request_of(parse(fits, limits=SMALL)).headers[-1][1] == b"v" * (
            SMALL.max_header_bytes - overhead
        )
        out = parse(head(SMALL.max_header_bytes - overhead + 1), limits=SMALL)
        assert out.status == 431

    def test_header_section_at_limit_with_longest_request_line(self) -> None:
        # Regression: byte-at-a-time input was refused (431) while whole input was accepted.
        line = b"GET /" + b"a" * (SMALL.max_request_line - 14) + b" HTTP/1.1"
        assert len(line) == SMALL.max_request_line
        section = b"\r\nHost: a\r\nX: " + b"v" * (SMALL.max_header_bytes - len(b"\r\nHost: a\r\nX: "))
        assert len(section) == SMALL.max_header_bytes
        assert request_of(parse(line + section + b"\r\n\r\n", limits=SMALL)).method == b"GET"

    def test_huge_header_section_is_431_while_incomplete(self) -> None:
        out = parse(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 200, limits=SMALL)
        assert out.status == 431 and out.events == []

    def test_value_with_long_inner_whitespace_is_linear(self) -> None:
        # Regression: a lazy regex backtracked quadratically on inner whitespace (64 KiB took seconds).
        head = (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a"
            + b" " * 60_000
            + b"b\r\nY:"
            + b" " * 60_000
            + b"\x01\r\n\r\n"
        )
        conn = HTTPConnection()
        conn.receive_data(head)
        start = time.perf_counter()
        with pytest.raises(RemoteProtocolError):
            conn.events_received()
        assert time.perf_counter() - start < 0.5


class TestHost:
    """RFC 9112 §3.2 and RFC 9110 §7.2: exactly one valid Host on HTTP/1.1."""

    def test_missing_host_on_11_is_400(self) -> None:
        out = parse(b"GET / HTTP/1.1\r\n\r\n")
        assert out.status == 400 and "without a Host" in str(out.error)

    def test_missing_host_on_10_is_fine(self) -> None:
        assert request_of(parse(b"GET / HTTP/1.0\r\n\r\n")).http_version == b"1.0"

    @pytest.mark.parametrize("version", [b"1.0", b"1.1"])
    def test_two_hosts_are_400(self, version: bytes) -> None:
        out = parse(b"GET / HTTP/" + version + b"\r\nHost: a\r\nhost: a\r\n\r\n")
        assert out.status == 400 and "more than one Host" in str(out.error)

    @pytest.mark.parametrize(
        "host", [b"example.com", b"example.com:8080", b"[::1]:80", b"10.0.0.1", b"", b"a-b.c_d"]
    )
    def test_valid_hosts(self, host: bytes) -> None:
        assert request_of(parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")).headers == [
            (b"Host", host)
        ]

    @pytest.mark.parametrize("host", [b"a b", b"a/b", b"a:b", b"a:123456", b"[::1", b"a@b:c", b"\xff"])
    def test_invalid_hosts_are_400(self, host: bytes) -> None:
        out = parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert out.status == 400 and "invalid Host" in str(out.error)


class TestBodyFraming:
    """RFC 9112 §6.3: how the length of a request body is determined (and request smuggling refused)."""

    def test_no_framing_headers_means_no_body(self) -> None:
        out = parse(b"POST / HTTP/1.1\r\n" + HOST + b"\r\nGET")
        assert request_of(out).content_length == 0
        assert out.events[1:] == [EndOfMessage()]

    def test_content_length_body(self) -> None:
        out = parse(post_cl(b"hello world"))
        assert request_of(out).content_length == 11 and not request_of(out).chunked
        assert body_of(out) == b"hello world"

    def test_content_length_zero(self) -> None:
        out = parse(post_cl(b""))
        assert out.events[1:] == [EndOfMessage()]

    @pytest.mark.parametrize(
        "headers", [b"Content-Length: 5\r\nContent-Length: 5\r\n", b"Content-Length: 5, 5\r\n"]
    )
    def test_identical_repeated_content_length_is_accepted(self, headers: bytes) -> None:
        # RFC 9110 §8.6: a list of identical values may be taken as that one value.
        out = parse(b"POST / HTTP/1.1\r\n" + HOST + headers + b"\r\nhello")
        assert request_of(out).content_length == 5 and body_of(out) == b"hello"

    @pytest.mark.parametrize(
        "headers",
        [
            b"Content-Length: 5\r\nContent-Length: 6\r\n",
            b"Content-Length: 5, 6\r\n",
            b"Content-Length: 5,\r\n",
        ],
    )
    def test_differing_content_lengths_are_400(self, headers: bytes) -> None:
        out = parse(b"POST / HTTP/1.1\r\n" + HOST + headers + b"\r\nhello!")
        assert out.status == 400 and "conflicting Content-Length" in str(out.error)

    @pytest.mark.parametrize("value", [b"+5", b"-1", b"5 5", b"0x5", b"", b"5.0", b"1" * 20, b"\xb5"])
    def test_malformed_content_length_is_400(self, value: bytes) -> None:
        out = parse(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: " + value + b"\r\n\r\n")
        assert out.status == 400 and "Content-Length" in str(out.error)

    @pytest.mark.parametrize(
        "value", [b"chunked", b"Chunked", b"CHUNKED", b"\tchunked", b" chunked ", b", chunked"]
    )
    def test_chunked(self, value: bytes) -> None:
        out = parse(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding:" + value + b"\r\n\r\n0\r\n\r\n")
        assert request_of(out).chunked and request_of(out).content_length is None
        assert body_of(out) == b""

    def test_transfer_encoding_and_content_length_is_400_and_closes(self) -> None:
        # §6.3 rule 3 / §6.1: CL.TE and TE.CL smuggling; rawrt refuses the request outright.
        for headers in (
            b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
        ):
            out = parse(
                b"POST / HTTP/1.1\r\n" + HOST + headers + b"\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
            )
            assert out.status == 400 and "both Transfer-Encoding and Content-Length" in str(out.error)
            assert out.events == []
            assert out.error is not None
            out.conn.reject(out.error)
            assert out.conn.data_to_send()[-1] == b""

    def test_transfer_encoding_on_http10_is_400(self) -> None:
        out = parse(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert out.status == 400 and "HTTP/1.0" in str(out.error)

    @pytest.mark.parametrize("value", [b"gzip, chunked", b"foo, chunked", b"deflate,chunked"])
    def test_other_codings_before_chunked_are_501(self, value: bytes) -> None:
        # §6.1: a transfer coding the server does not understand: 501 (rawrt decodes chunked only).
        out = parse(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: " + value + b"\r\n\r\n")
        assert out.status == 501

    def test_known_and_unknown_codings_are_told_apart(self) -> None:
        known = parse(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n")
        unknown = parse(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: foo, chunked\r\n\r\n")
        assert "not implemented" in str(known.error) and "unknown" in str(unknown.error)

    def test_codings_over_two_header_lines(self) -> None:
        out = parse(
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        assert out.status == 501

    @pytest.mark.parametrize(
        "value",
        [
            b"chunked, identity",
            b"xchunked",
            b"chunkedx",
            b"gzip",
            b"identity",
            b"chunked;q=1",
            b"chunked, gzip",
        ],
    )
    def test_final_coding_not_chunked_is_400(self, value: bytes) -> None:
        # §6.3 rule 4: a request whose final transfer coding is not chunked cannot be delimited.
        out = parse(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: " + value + b"\r\n\r\n")
        assert out.status == 400 and "does not end in chunked" in str(out.error)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (b"chunked, chunked", "more than once"),
            (b"", "empty Transfer-Encoding"),
            (b" , ", "empty Transfer-Encoding"),
            (b"g(zip, chunked", "invalid transfer coding"),
        ],
    )
    def test_malformed_transfer_encoding(self, value: bytes, message: str) -> None:
        out = parse(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: " + value + b"\r\n\r\n")
        assert out.status == 400 and message in str(out.error)

    def test_content_length_body_then_pipelined_request(self) -> None:
        out = parse(post_cl(b"abc") + GET, answer=answer_ok)
        assert [type(e) for e in out.events] == [Request, Data, EndOfMessage, Request, EndOfMessage]


class TestChunked:
    """RFC 9112 §7.1: chunked transfer coding (chunk-size, extensions, data, trailer section)."""

    def test_chunks(self) -> None:
        out = parse(post_chunked(b"5\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n"))
        assert body_of(out) == b"hello 0123456789"
        assert out.events[-1] == EndOfMessage([])

    def test_chunk_data_may_contain_crlf(self) -> None:
        assert body_of(parse(post_chunked(b"4\r\n\r\n\r\n\r\n0\r\n\r\n"))) == b"\r\n\r\n"

    def test_uppercase_hex_and_leading_zeros(self) -> None:
        digits = b"0" * (MAX_CHUNK_SIZE_DIGITS - 1) + b"A"
        assert body_of(parse(post_chunked(digits + b"\r\n" + b"x" * 10 + b"\r\n000\r\n\r\n"))) == b"x" * 10

    def test_too_many_size_digits(self) -> None:
        digits = b"0" * MAX_CHUNK_SIZE_DIGITS + b"5"
        assert parse(post_chunked(digits + b"\r\nhello\r\n0\r\n\r\n")).status == 400

    @pytest.mark.parametrize(
        "ext",
        [
            b";a",
            b";a=b",
            b" ; a = b",
            b";a=b;c;d=e",
            b';a="quoted string"',
            b';a="with \\"escapes\\" and \\\\"',
            b';a="\xff obs-text"',
            b"\t;\ta\t=\tb",
        ],
    )
    def test_extensions_are_parsed_and_ignored(self, ext: bytes) -> None:
        # §7.1.1: chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
        #         ext-val = token / quoted-string
        out = parse(post_chunked(b"5" + ext + b"\r\nhello\r\n0" + ext + b"\r\n\r\n"))
        assert body_of(out) == b"hello"

    @pytest.mark.parametrize(
        "line",
        [
            b"0x5",
            b"-1",
            b"+5",
            b"5 ;",
            b"5 ",
            b" 5",
            b"5;",
            b"5;a=",
            b";a=b",
            b"",
            b"g",
            b'5;a="unterminated',
            b'5;a="bad\x01"',
            b"5;a b",
            b"f" * 30,
        ],
    )
    def test_bad_chunk_size_lines(self, line: bytes) -> None:
        out = parse(post_chunked(line + b"\r\nhello\r\n0\r\n\r\n"))
        assert out.status == 400 and type(out.error) is RemoteProtocolError

    def test_bare_lf_after_chunk_size(self) -> None:
        assert parse(post_chunked(b"5\nhello\r\n0\r\n\r\n")).status == 400

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"5\n", "chunk-size line ends in a bare LF"),
            (b"5;a=b\n", "chunk-size line ends in a bare LF"),
            (b"\n", "chunk-size line ends in a bare LF"),
            (b"5\r\nhello\r\n0\n", "chunk-size line ends in a bare LF"),
            (b"5\r\nhello\n", "not followed by CRLF: '\\x0a'"),
            (b"5\r\nhelloX", "not followed by CRLF: 'X'"),
            (b"0\r\n\n", "bare LF in the trailer section"),
            (b"0\r\nX: y\n", "bare LF in the trailer section"),
            (b"0\r\nX: y\r\n\n", "bare LF in the trailer section"),
        ],
    )
    def test_bare_lf_is_refused_as_soon_as_it_arrives(self, body: bytes, message: str) -> None:
        # Issue 10 #9, RFC 9112 §7.1: chunk lines end in CRLF. A bare LF used to leave the decoder waiting for
        # a CRLF that never came, until the body timeout; now the LF itself is the error (no EOF here).
        out = parse(post_chunked(body))
        assert out.status == 400 and type(out.error) is RemoteProtocolError
        assert message in str(out.error)

    @pytest.mark.parametrize("after", [b"X\r\n0\r\n\r\n", b"\n0\r\n\r\n", b"\rX0\r\n\r\n", b"\r"])
    def test_chunk_data_not_followed_by_crlf(self, after: bytes) -> None:
        out = parse(post_chunked(b"5\r\nhello" + after), eof=True)
        assert out.status == 400
        assert [type(e) for e in out.events] == [Request, Data]

    def test_chunk_extension_length_limit(self) -> None:
        limit = MAX_CHUNK_SIZE_DIGITS + SMALL.max_chunk_ext
        ok = b"5;" + b"a" * (limit - 2)
        assert body_of(parse(post_chunked(ok + b"\r\nhello\r\n0\r\n\r\n"), limits=SMALL)) == b"hello"
        out = parse(post_chunked(ok + b"a\r\nhello\r\n0\r\n\r\n"), limits=SMALL)
        assert out.status == 400 and "chunk-size line longer" in str(out.error)

    def test_endless_chunk_line_is_refused_while_incomplete(self) -> None:
        out = parse(post_chunked(b"5;" + b"a" * 100), limits=SMALL)
        assert out.status == 400 and [type(e) for e in out.events] == [Request]

    def test_trailers(self) -> None:
        out = parse(post_chunked(b"5\r\nhello\r\n0\r\nX-Checksum:  abc \r\nX-Other: \xff\r\n\r\n"))
        assert out.events[-1] == EndOfMessage([(b"X-Checksum", b"abc"), (b"X-Other", b"\xff")])

    @pytest.mark.parametrize(
        "trailer",
        [b"X: a\r\n b", b"bad name: a", b"X : a", b"X: a\x00b", b"no colon", b"X: a\rb", b"\r"],
    )
    def test_invalid_trailers_are_400(self, trailer: bytes) -> None:
        out = parse(post_chunked(b"0\r\n" + trailer + b"\r\n\r\n"))
        assert out.status == 400 and "in trailers" in str(out.error)

    def test_trailer_count_limit(self) -> None:
        trailers = b"".join(b"T%d: v\r\n" % i for i in range(SMALL.max_header_count + 1))
        out = parse(post_chunked(b"0\r\n" + trailers + b"\r\n"), limits=SMALL)
        assert out.status == 431

    def test_trailer_size_limit(self) -> None:
        value = b"v" * (SMALL.max_header_bytes - 3)
        out = parse(post_chunked(b"0\r\nX: " + value + b"\r\n\r\n"), limits=SMALL)
        assert out.events[-1] == EndOfMessage([(b"X", value)])
        out = parse(post_chunked(b"0\r\nX: " + value + b"v\r\n\r\n"), limits=SMALL)
        assert out.status == 431

    def test_trailer_size_limit_while_incomplete(self) -> None:
        out = parse(post_chunked(b"0\r\nX: " + b"v" * 200), limits=SMALL)
        assert out.status == 431

    @pytest.mark.parametrize(
        ("body", "where"),
        [
            (b"", "chunk-size line"),
            (b"5", "chunk-size line"),
            (b"5\r\nhel", "in a chunk"),
            (b"5\r\nhello", "after chunk data"),
            (b"5\r\nhello\r", "after chunk data"),
            (b"5\r\nhello\r\n0\r\n", "trailer section"),
            (b"5\r\nhello\r\n0\r\nX: y\r\n", "trailer section"),
        ],
    )
    def test_eof_inside_chunked_body(self, body: bytes, where: str) -> None:
        out = parse(post_chunked(body), eof=True)
        assert out.status == 400 and where in str(out.error)

    def test_chunked_body_then_pipelined_request(self) -> None:
        out = parse(post_chunked(b"3\r\nabc\r\n0\r\n\r\n") + GET, answer=answer_ok)
        assert [type(e) for e in out.events] == [Request, Data, EndOfMessage, Request, EndOfMessage]


class TestBodyLimits:
    """Body size limits: 413 before reading a declared body, and as a chunked body grows."""

    def test_content_length_over_route_limit_is_413_before_reading(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(post_cl(b"x" * 100))
        [request] = conn.events_received()
        assert isinstance(request, Request)
        with pytest.raises(LimitExceeded) as info:
            conn.set_max_body_size(99)
        assert info.value.status_hint == 413
        assert conn.client_state is State.ERROR
        assert conn.events_received() == []

    def test_route_limit_at_content_length_is_fine(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(post_cl(b"x" * 100))
        conn.events_received()
        conn.set_max_body_size(100)
        assert conn.events_received() == [Data(b"x" * 100), EndOfMessage()]

    def test_content_length_over_default_limit_is_413_without_set_max_body_size(self) -> None:
        # Regression: the default limit was only enforced if the server called set_max_body_size.
        head = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 17\r\n\r\n"
        out = parse(head + b"x" * 17, limits=SMALL)
        assert type(out.error) is LimitExceeded and out.status == 413
        assert [type(e) for e in out.events] == [Request]

    def test_route_may_raise_the_limit(self) -> None:
        conn = HTTPConnection(SMALL)
        conn.receive_data(post_cl(b"x" * 100))
        conn.events_received()
        conn.set_max_body_size(1000)
        assert conn.events_received() == [Data(b"x" * 100), EndOfMessage()]
        conn.send_response(200, [(b"content-length", b"0")])
        conn.send_end()
        # The next request starts from the configured limit again.
        conn.receive_data(post_cl(b"x" * 100))
        conn.events_received()
        assert conn.max_body_size == SMALL.max_body_size
        with pytest.raises(LimitExceeded):
            conn.events_received()

    def test_set_max_body_size_without_request(self) -> None:
        conn = HTTPConnection()
        conn.set_max_body_size(5)
        assert conn.max_body_size == 5 and conn.client_state is State.IDLE

    def test_chunked_at_limit_is_fine(self) -> None:
        out = parse(post_chunked(b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"), limits=SMALL)
        assert body_of(out) == b"12345678" * 2

    def test_chunked_growing_past_limit_is_413(self) -> None:
        out = parse(post_chunked(b"8\r\n12345678\r\n9\r\n123456789\r\n0\r\n\r\n"), limits=SMALL)
        assert type(out.error) is LimitExceeded and out.status == 413
        assert body_of_partial(out.events) == b"12345678"  # the oversized chunk was never read

    def test_huge_chunk_size_is_413_before_reading(self) -> None:
        out = parse(post_chunked(b"ffffffffffffffff\r\n"))
        assert out.status == 413


def body_of_partial(events: Sequence[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data))


class TestPersistence:
    """RFC 9112 §9.3: persistent connections (keep-alive) and §9.3.2 pipelining."""

    @pytest.mark.parametrize(
        ("version", "connection", "keep_alive"),
        [
            (b"1.1", b"", True),
            (b"1.1", b"Connection: close\r\n", False),
            (b"1.1", b"Connection: Keep-Alive, CLOSE\r\n", False),
            (b"1.1", b"Connection: foo\r\nConnection: close\r\n", False),
            (b"1.0", b"", False),
            (b"1.0", b"Connection: keep-alive\r\n", True),
            (b"1.0", b"Connection: foo , Keep-Alive\r\n", True),
            (b"1.0", b"Connection: keep-alive, close\r\n", False),
        ],
    )
    def test_keep_alive(self, version: bytes, connection: bytes, keep_alive: bool) -> None:
        out = parse(b"GET / HTTP/" + version + b"\r\n" + HOST + connection + b"\r\n")
        assert request_of(out).keep_alive is keep_alive

    def test_second_request_not_parsed_until_response_finished(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(GET + b"GET /two HTTP/1.1\r\n" + HOST + b"\r\n")
        # A request without a body comes with its EndOfMessage in the same call.
        assert [type(e) for e in conn.events_received()] == [Request, EndOfMessage]
        assert conn.events_received() == []  # the pipelined request waits
        conn.send_response(200, [])
        assert conn.events_received() == []  # still waits: the response body is not finished
        conn.send_data(b"first")
        conn.send_end()
        second = conn.events_received()
        assert isinstance(second[0], Request) and second[0].target == b"/two"

    def test_pipelined_requests_answered_in_order(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(b"".join(b"GET /%d HTTP/1.1\r\n" % i + HOST + b"\r\n" for i in range(3)))
        sent = []
        for i in range(3):
            request, end = conn.events_received()
            assert isinstance(request, Request) and request.target == b"/%d" % i
            assert end == EndOfMessage()
            conn.send_response_bytes(200, [], request.target)
            sent.append(b"".join(conn.data_to_send()))
        assert [s.endswith(b"/%d" % i) for i, s in enumerate(sent)] == [True] * 3

    def test_request_after_connection_close_is_never_parsed(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n" + GET)
        assert [type(e) for e in conn.events_received() + conn.events_received()] == [Request, EndOfMessage]
        conn.send_response_bytes(200, [], b"")
        assert conn.data_to_send()[-1] == b""
        assert conn.server_state is State.MUST_CLOSE
        assert conn.events_received() == []

    def test_handler_answers_before_reading_the_body(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(post_cl(b"ignored") + GET)
        conn.events_received()
        conn.send_response_bytes(200, [], b"ok")
        assert states(conn) == (State.SEND_BODY, State.DONE)
        assert conn.events_received() == [Data(b"ignored"), EndOfMessage()]
        # The exchange cycled on EndOfMessage: the next request is read.
        request, _ = conn.events_received()
        assert isinstance(request, Request) and states(conn) == (State.DONE, State.SEND_RESPONSE)


class TestExpectContinue:
    """RFC 9110 §10.1.1: Expect: 100-continue (and other expectations)."""

    def test_expect_continue_on_11(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(
            b"POST / HTTP/1.1\r\n" + HOST + b"Expect: 100-Continue\r\nContent-Length: 5\r\n\r\n"
        )
        [request] = conn.events_received()
        assert isinstance(request, Request) and request.expect_continue
        assert conn.expects_continue
        conn.send_informational(100)
        assert conn.data_to_send() == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        assert not conn.expects_continue
        conn.receive_data(b"hello")
        assert conn.events_received() == [Data(b"hello"), EndOfMessage()]
        conn.send_response_bytes(200, [], b"")
        assert b"connection: close" not in b"".join(conn.data_to_send()).lower()
        assert conn.server_state is State.IDLE

    def test_expect_on_10_is_ignored(self) -> None:
        # "A server that receives a 100-continue expectation in an HTTP/1.0 request MUST ignore that
        # expectation"; rawrt ignores every expectation on 1.0.
        for value in (b"100-continue", b"something-else"):
            out = parse(b"POST / HTTP/1.0\r\nExpect: " + value + b"\r\nContent-Length: 0\r\n\r\n")
            assert request_of(out).expect_continue is False

    def test_informational_to_10_client_is_a_local_error(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        conn.events_received()
        assert not conn.expects_continue
        with pytest.raises(LocalProtocolError) as info:
            conn.send_informational(100)
        assert info.value.status_hint == 500 and "HTTP/1.0" in str(info.value)
        assert conn.server_state is State.SEND_RESPONSE and conn.data_to_send() == []

    @pytest.mark.parametrize("value", [b"200-ok", b"100-continue, foo", b"100-continue=1"])
    def test_other_expectations_are_417(self, value: bytes) -> None:
        out = parse(b"GET / HTTP/1.1\r\n" + HOST + b"Expect: " + value + b"\r\n\r\n")
        assert out.status == 417

    def test_empty_expect_items_are_ignored(self) -> None:
        out = parse(b"GET / HTTP/1.1\r\n" + HOST + b"Expect: ,\r\n\r\n")
        assert request_of(out).expect_continue is False

    def test_response_without_100_while_body_pending_closes(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(
            b"POST / HTTP/1.1\r\n" + HOST + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        conn.events_received()
        conn.send_response_bytes(413, [], b"")
        sent = conn.data_to_send()
        assert b"connection: close\r\n" in sent[0] and sent[-1] == b""


class TestHalfClose:
    """A client may half-close after its request (RFC 9112 §9.6); EOF anywhere else is an error."""

    def test_eof_after_full_request_still_gets_an_answer(self) -> None:
        out = parse(GET, eof=True)
        assert out.events == [request_of(out), EndOfMessage()]
        conn = out.conn
        conn.send_response_bytes(200, [], b"bye")
        sent = conn.data_to_send()
        # The head and body come out as one piece (one write), then b"": close after writing.
        assert len(sent) == 2 and sent[-1] == b""
        assert sent[0].startswith(b"HTTP/1.1 200 OK\r\n") and sent[0].endswith(b"\r\n\r\nbye")
        assert conn.client_state is State.CLOSED and conn.server_state is State.MUST_CLOSE

    def test_eof_after_body_with_pipelined_request_serves_it(self) -> None:
        out = parse(GET + GET, eof=True, answer=answer_ok)
        types = [Request, EndOfMessage, Request, EndOfMessage, ConnectionEnded]
        assert [type(e) for e in out.events] == types
        assert out.conn.client_state is State.CLOSED

    def test_eof_between_requests(self) -> None:
        out = parse(GET, answer=answer_ok)
        out.conn.receive_eof()
        assert out.conn.events_received() == [ConnectionEnded()]
        assert out.conn.events_received() == []

    def test_eof_mid_body(self) -> None:
        out = parse(post_cl(b"hello")[:-2], eof=True)
        assert out.status == 400 and "2 body bytes still expected" in str(out.error)
        assert [type(e) for e in out.events] == [Request, Data]


class TestErrorState:
    """After a protocol error the connection is in ERROR and parses nothing more (anti-smuggling)."""

    def test_pending_error_keeps_no_reference_cycle(self) -> None:
        # Issue 10 #2's pattern: an error kept for the next call must not hold the connection (and its buffer)
        # in a cycle through its traceback's frames, or a dropped connection waits for the GC.
        import gc
        import weakref

        gc.collect()
        gc.disable()
        try:
            conn = HTTPConnection()
            conn.receive_data(post_chunked(b"5\r\nhello\r\nzz\r\n"))
            assert [type(e) for e in conn.events_received()] == [Request]
            assert conn.events_received() == [Data(b"hello")]  # the error waits for the next call
            alive = weakref.ref(conn)
            del conn
            assert alive() is None
        finally:
            gc.enable()

    def test_bytes_after_a_rejected_request_are_never_parsed(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(b"GET / HTTP/1.1\r\nX : y\r\n\r\n" + GET)
        with pytest.raises(RemoteProtocolError) as info:
            conn.events_received()
        assert conn.client_state is State.ERROR
        assert conn.events_received() == []
        conn.receive_data(GET)  # discarded
        assert conn.events_received() == []
        conn.reject(info.value, date=b"Sun, 06 Nov 1994 08:49:37 GMT")
        head, close = conn.data_to_send()
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"\r\nconnection: close\r\n" in head and b"\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n" in head
        assert head.endswith(b"\r\n\r\n" + str(info.value).encode() + b"\n")
        assert close == b""
        assert conn.server_state is State.ERROR

    def test_reject_500_says_nothing(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(GET)
        conn.events_received()
        conn.reject(ProtocolError("secret internal detail", status_hint=500))
        head, close = conn.data_to_send()
        assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and head.endswith(b"\r\n\r\n")
        assert b"secret" not in head and b"content-length: 0" in head and close == b""

    def test_reject_after_response_started_only_closes(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(post_chunked(b"5\r\nhello\r\nzz\r\n"))
        conn.events_received()
        conn.send_response(200, [])
        conn.data_to_send()
        # The Data parsed before the error comes first; the error is raised by the next call.
        assert conn.events_received() == [Data(b"hello")]
        assert conn.client_state is State.ERROR
        with pytest.raises(RemoteProtocolError) as info:
            conn.events_received()
        assert conn.events_received() == []
        conn.reject(info.value)
        assert conn.data_to_send() == [b""]

    def test_response_after_error_closes(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(post_cl(b"x" * 10))
        conn.events_received()
        with pytest.raises(LimitExceeded):
            conn.set_max_body_size(1)
        assert not conn.keep_alive
        conn.send_response_bytes(413, [], b"too big")
        sent = conn.data_to_send()
        assert b"connection: close\r\n" in sent[0] and sent[-1] == b""

    def test_limit_error_class(self) -> None:
        out = parse(b"GET /" + b"a" * 100, limits=SMALL)
        assert isinstance(out.error, LimitExceeded) and isinstance(out.error, RemoteProtocolError)


class TestLimitsDefaults:
    """The defaults in rawrt.limits are the ones the parser applies."""

    def test_default_limits_object(self) -> None:
        assert HTTPConnection().limits is DEFAULT_LIMITS
        assert HTTPConnection().max_body_size == DEFAULT_LIMITS.max_body_size

    def test_custom_limits(self) -> None:
        limits = dataclasses.replace(DEFAULT_LIMITS, max_body_size=3)
        out = drive(HTTPConnection(limits), [post_cl(b"abcd")])
        assert out.status == 413


class TestHeadKeeping:
    """HeadKeepingConnection: each request head's exact bytes, for the demo's wire view (rawrt.lab)."""

    def test_keeps_each_head_as_received(self) -> None:
        conn = http11.HeadKeepingConnection()
        first = b"POST /a HTTP/1.1\r\nHost: x\r\ncontent-LENGTH:  3 \r\n\r\n"
        second = b"GET /b HTTP/1.1\r\nhost:x\r\n\r\n"
        # Blank lines before a request-line are skipped (RFC 9112 §2.2) and are not part of the head.
        conn.receive_data(b"\r\n" + first[:10])
        assert conn.events_received() == []
        assert conn.head == b""  # nothing complete yet
        conn.receive_data(first[10:] + b"abc" + second)
        events = conn.events_received()
        assert type(events[0]) is http11.Request and events[0].method == b"POST"
        assert conn.head == first
        # The body is consumed without being recorded; the next head replaces nothing before it is taken.
        assert [type(e) for e in conn.events_received()] == [http11.Data, http11.EndOfMessage]
        conn.send_response(200, [(b"content-length", b"0")])
        conn.send_end()
        conn.data_to_send()
        request, end = conn.events_received()  # one request per call: the head is never replaced first
        assert type(request) is http11.Request and request.target == b"/b"
        assert type(end) is http11.EndOfMessage
        assert conn.head == second

    def test_connection_ended_keeps_no_head(self) -> None:
        conn = http11.HeadKeepingConnection()
        conn.receive_eof()
        assert [type(e) for e in conn.events_received()] == [http11.ConnectionEnded]
        assert conn.head == b""
