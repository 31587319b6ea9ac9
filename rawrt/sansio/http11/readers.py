"""Reading a request head (RFC 9112 §2-§6): bytes in, a :class:`~.events.Request` out, or a precise error.

Contract
--------
The functions here are pure: they look only at the bytes and the :class:`~rawrt.limits.Limits` they are
given, and either return what they parsed or raise :class:`~rawrt.errors.RemoteProtocolError`
(:class:`~rawrt.errors.LimitExceeded` for a limit), whose ``status_hint`` is the status to answer with.
Buffering, the ``maybe_`` readers that return ``None`` for "need more bytes", and the state machine are
:class:`~rawrt.sansio.http11.HTTPConnection`'s.

Strategy
--------
* :func:`check_head_prefix` refuses a head that is already too big or broken while it is incomplete, so a
  client cannot make the server buffer more than ``max_request_line + max_header_bytes``, and it reports the
  check that a client sending one byte at a time would have met first.
* :func:`parse_head` takes the common case first: an origin-form HTTP/1.1 request line and a valid field
  section, validated in one regex pass over the head as received (``abnf.FAST_HEAD_RE``). Anything else
  goes through the step-by-step path, which is slower and says exactly what is wrong.
* The fields that decide framing and persistence (Content-Length, Transfer-Encoding, Host, Connection,
  Expect, Upgrade) are checked as RFC 9112 §6.3 and RFC 9110 say; every other field is passed through.
"""

from __future__ import annotations

from ...errors import LimitExceeded, RemoteProtocolError, printable
from ...limits import Limits
from .. import abnf
from ..headers import HeaderList
from .events import Request

__all__ = ["check_head_prefix", "parse_head", "parse_trailers"]

# len() of content-length, transfer-encoding, host, connection, expect, upgrade: the only fields the head
# reader looks at; every other name is let through with one set lookup.
_SPECIAL_NAME_LENGTHS = frozenset({14, 17, 4, 10, 6, 7})
# Transfer codings rawrt knows of but does not decode (RFC 9110 §7.8 registry): 501, not 400.
_TE_KNOWN_CODINGS = frozenset({b"gzip", b"x-gzip", b"deflate", b"compress", b"x-compress"})
# After a method's tchars, the bytes that do not (yet) show a broken request line: its SP, and the CR and LF
# that the line-end checks judge.
_METHOD_END_OK = b"\r\n"

# The last Host value found valid. Whether a Host value is valid depends on its bytes alone, and a client
# sends the same Host on every request (and every client of a server mostly the same one), so a value equal
# to this one is not checked again.
_valid_host: bytes | None = None


def check_head_prefix(data: bytearray, n: int, limits: Limits) -> None:
    """Refuse a head that is already too big, or broken, judging by its first ``n`` bytes in ``data``.

    Called on every incomplete head (so a client cannot make the server buffer more than the limits, and a
    bare CR or LF is answered at once instead of at the header timeout), and on the complete head minus its
    last byte before it is parsed.

    Each check fires from a given prefix length on, and once fired stays fired. When several have fired,
    the one that fired at the *shortest* prefix is reported: that is what a client sending one byte at a
    time would get, so the status never depends on how the bytes were split.

    Raises:
        LimitExceeded: the request line (414) or the header section (431) is too long.
        RemoteProtocolError: a bare CR or LF (400).
    """
    never = n + 1
    # 414: no CRLF among the first max_request_line + 2 bytes means the request line is too long.
    at_414 = limits.max_request_line + 2
    if at_414 > n or data.find(b"\r\n", 0, at_414) >= 0:
        at_414 = never
    # 431: the complete head may be max_request_line + max_header_bytes + 4 bytes (CRLF CRLF included);
    # an incomplete one may already hold 3 bytes of that terminator.
    at_431 = limits.max_request_line + limits.max_header_bytes + 4
    if at_431 > n:
        at_431 = never
    # RFC 9112 §2.2 allows a recipient to accept a bare LF as a line terminator; rawrt does not (a bare LF
    # is how several smuggling attacks split lines differently from a front end). The first LF of the
    # head ends the request line: if it is bare, the head is broken.
    lf = data.find(b"\n", 0, n)
    at_lf = lf + 1 if lf >= 0 and (lf == 0 or data[lf - 1] != 0x0D) else never
    # A CR that the next byte shows is not part of a CRLF: a bare CR in the request line.
    cr = data.find(b"\r", 0, n)
    at_cr = cr + 2 if 0 <= cr < n - 1 and data[cr + 1] != 0x0A else never
    # RFC 9112 §3: request-line = method SP ...; method = token (RFC 9110 §9.1). The first byte that can
    # neither continue the method nor be the SP after it shows that no request line is coming (a TLS
    # ClientHello on the plaintext port, another protocol, noise): answered at once, not at the header
    # timeout. A CR or LF there is left to the line-end checks above and to parse_head (the leading CRLFs
    # that §2.2 allows before a request line were skipped by the caller).
    at_method = _bad_method_end(data, n) or never
    first = min(at_414, at_431, at_lf, at_cr, at_method)
    if first == never:
        return
    if first == at_414:
        raise LimitExceeded(f"request line longer than {limits.max_request_line} bytes", status_hint=414)
    if first == at_431:
        raise LimitExceeded(f"header section larger than {limits.max_header_bytes} bytes", status_hint=431)
    if first == at_lf:
        raise RemoteProtocolError("bare LF in request head: lines must end with CRLF (RFC 9112 §2.2)")
    if first == at_cr:
        raise RemoteProtocolError("bare CR in request line (RFC 9112 §2.2)")
    raise RemoteProtocolError(_explain_method(bytes(data[:at_method])))


def _bad_method_end(data: bytes | bytearray, n: int) -> int:
    """Where the ``method SP`` that starts ``data[:n]`` is broken (the bad byte's index + 1), or 0."""
    match = abnf.TCHARS_RE.match(data, 0, n)
    assert match is not None  # ``*tchar`` matches everywhere, if only the empty string
    end = match.end()
    if end < n and data[end] not in _METHOD_END_OK and (end == 0 or data[end] != 0x20):
        return end + 1
    return 0


def _explain_method(received: bytes) -> str:
    """The error for a request line whose start cannot be ``method SP``; ``received`` ends with the bad byte.

    Only those bytes are quoted, so the text is the same however the head was split.
    """
    if received[0] == 0x16:
        # TLS record type 22 (handshake, RFC 8446 §5.1): the first byte of every ClientHello.
        return (
            f"received {printable(received)}, which looks like a TLS handshake on a plaintext port: "
            "this port speaks HTTP/1.1 without TLS (use http://, or the TLS port)"
        )
    if received[-1] in b" \t" and len(received) == 1:
        return f"request line starts with whitespace: {printable(received)}"
    return f"received {printable(received)}: a request line starts with a method token then SP (RFC 9112 §3)"


def parse_head(whole: bytes, end: int, limits: Limits) -> Request:
    """Parse a complete request head (RFC 9112 §2.1: request-line, field lines, empty line).

    Args:
        whole: the head with its final CRLF CRLF, which starts at ``end``. The caller has run
            :func:`check_head_prefix` on it (or checked the same things more cheaply).
        end: where the final CRLF CRLF starts.
        limits: ``max_header_count`` and ``max_header_bytes`` are checked here.

    Returns:
        The request, its framing and persistence decided (RFC 9112 §6.3, §9.3).

    Raises:
        RemoteProtocolError: the head breaks RFC 9112 or RFC 9110; ``status_hint`` says how to answer.
    """
    # The common case first: an origin-form HTTP/1.1 request line and a valid field section, validated in
    # one regex pass over the head as received (its last field line's CRLF included), with no copy.
    fast = abnf.FAST_HEAD_RE.fullmatch(whole, 0, end + 2)
    if fast is not None and fast.group(1) != b"CONNECT":
        line_len = fast.end(2) + 9  # the target, then b" HTTP/1.1"
        if (
            whole.count(b"\r\n", 0, end) <= limits.max_header_count
            and end - line_len <= limits.max_header_bytes
        ):
            headers: HeaderList = abnf.FIELD_PAIRS_RE.findall(whole, line_len + 2, end + 2)
            if whole.find(b" \r", line_len, end + 2) >= 0 or whole.find(b"\t\r", line_len, end + 2) >= 0:
                headers = [(name, value.rstrip(b" \t")) for name, value in headers]  # RFC 9112 §5: OWS
            return _finish_head(fast.group(1), fast.group(2), b"1.1", headers)
    # Anything else, including the limits, is checked step by step: slower, and says what is wrong.
    head = whole[:end]
    line_end = head.find(b"\r\n")
    line = head if line_end < 0 else head[:line_end]
    # A request line longer than max_request_line has already been refused (414) by check_head_prefix.
    fast = abnf.FAST_REQUEST_LINE_RE.fullmatch(line)
    if fast is not None and fast.group(1) != b"CONNECT":
        method, target = fast.groups()
        http_version = b"1.1"
    else:
        match = abnf.REQUEST_LINE_RE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError(_explain_request_line(line))
        method, target, version = match.groups()
        http_version = b"1.1" if version == b"HTTP/1.1" else _parse_version(version)
        if target[:1] != b"/" or abnf.ORIGIN_FORM_RE.fullmatch(target) is None:
            _check_target(method, target)
        elif method == b"CONNECT":
            raise RemoteProtocolError("CONNECT needs an authority-form target host:port (RFC 9110 §9.3.6)")

    if head.count(b"\r\n") > limits.max_header_count:
        raise LimitExceeded(f"more than {limits.max_header_count} header fields", status_hint=431)
    if len(head) - len(line) > limits.max_header_bytes:
        raise LimitExceeded(f"header section larger than {limits.max_header_bytes} bytes", status_hint=431)
    # The whole field section is validated in one pass, then split into pairs in another; only a section
    # that fails is walked line by line, to say which line is wrong.
    section = head[line_end + 2 :] + b"\r\n" if line_end >= 0 else b""
    if abnf.FIELD_SECTION_RE.fullmatch(section) is None:
        for raw in head.split(b"\r\n")[1:]:
            m = abnf.FIELD_LINE_RE.fullmatch(raw)
            if m is None or abnf.FIELD_VALUE_RE.fullmatch(m.group(2)) is None:
                raise RemoteProtocolError(_explain_field_line(raw))
        raise AssertionError("FIELD_SECTION_RE and FIELD_LINE_RE disagree")  # pragma: no cover
    # RFC 9112 §5: the trailing OWS is not part of the value.
    headers = [(name, value.rstrip(b" \t")) for name, value in abnf.FIELD_PAIRS_RE.findall(section)]
    return _finish_head(method, target, http_version, headers)


def _finish_head(method: bytes, target: bytes, http_version: bytes, headers: HeaderList) -> Request:
    """The checks on a parsed head's fields that decide framing and persistence, and its Request."""
    global _valid_host
    content_lengths: list[bytes] = []
    transfer_encodings: list[bytes] = []
    hosts: list[bytes] = []
    connection: list[bytes] = []
    expect: list[bytes] = []
    upgrade: list[bytes] = []
    for name, value in headers:
        if len(name) not in _SPECIAL_NAME_LENGTHS:
            continue
        lname = name.lower()
        if lname == b"content-length":
            content_lengths.append(value)
        elif lname == b"transfer-encoding":
            transfer_encodings.append(value)
        elif lname == b"host":
            hosts.append(value)
        elif lname == b"connection":
            connection.append(value.lower())
        elif lname == b"expect":
            expect.append(value.lower())
        elif lname == b"upgrade":
            upgrade.append(value.lower())

    if len(hosts) != 1 or hosts[0] != _valid_host:
        _check_host(http_version, hosts)
        if hosts:
            _valid_host = hosts[0]
    if content_lengths or transfer_encodings:
        content_length, chunked = _framing(http_version, content_lengths, transfer_encodings)
    else:
        content_length, chunked = 0, False  # RFC 9112 §6.3 rule 7: no body
    tokens = {t.strip(b" \t") for value in connection for t in value.split(b",")} if connection else ()
    if http_version == b"1.1":
        keep_alive = b"close" not in tokens
    else:
        # RFC 9112 §9.3: an HTTP/1.0 connection persists only when the client asks with keep-alive.
        keep_alive = b"keep-alive" in tokens and b"close" not in tokens
    expect_continue = False
    if expect and http_version == b"1.1":
        # RFC 9110 §10.1.1: 100-continue is the only expectation defined; any other gets 417. A server
        # "MUST ignore" a 100-continue expectation in an HTTP/1.0 request, hence the version check.
        for value in expect:
            for item in value.split(b","):
                item = item.strip(b" \t")
                if item == b"100-continue":
                    expect_continue = True
                elif item:
                    raise RemoteProtocolError(f"unsupported expectation {printable(item)}", status_hint=417)
    upgrade_to = b", ".join(upgrade) if upgrade and b"upgrade" in tokens else None
    # Positional arguments (docs/topics/performance.md).
    return Request(
        method,
        target,
        http_version,
        headers,
        content_length,
        chunked,
        keep_alive,
        expect_continue,
        upgrade_to,
    )


def _explain_request_line(line: bytes) -> str:
    bad = _bad_method_end(line, len(line))
    if bad:
        return _explain_method(line[:bad])  # what check_head_prefix says when the head arrives byte by byte
    parts = line.split(b" ")
    if len(parts) == 2 and parts[1].startswith(b"/"):
        # RFC 9112 §2.3 / Appendix C.1: HTTP/0.9 requests have no version; rawrt answers them with a
        # normal 400 rather than a 0.9-style bare body.
        return f"HTTP/0.9 request line without a version: {printable(line)}"
    return f"malformed request line {printable(line)}: expected 'METHOD SP target SP HTTP/1.1'"


def _parse_version(version: bytes) -> bytes:
    match = abnf.HTTP_VERSION_RE.fullmatch(version)
    if match is None:
        raise RemoteProtocolError(f"malformed HTTP-version {printable(version)}: expected 'HTTP/1.1'")
    major, minor = match.groups()
    if major != b"1":
        # RFC 9110 §15.6.6: 505 for a major version the server does not support (0.9, 2.0, 3.0 ...).
        raise RemoteProtocolError(f"HTTP version {printable(version)} is not supported", status_hint=505)
    # RFC 9112 §2.3: a recipient treats a higher minor version as the highest it supports.
    return b"1.0" if minor == b"0" else b"1.1"


def _check_target(method: bytes, target: bytes) -> None:
    # RFC 9112 §3.2: the four forms, each tied to what it may be used with.
    if method == b"CONNECT":
        # §3.2.3 and RFC 9110 §9.3.6: CONNECT's target is only ever "host:port".
        ok = abnf.AUTHORITY_FORM_RE.fullmatch(target) is not None
        form = "authority-form (CONNECT)"
    elif target[:1] == b"/":
        ok = abnf.ORIGIN_FORM_RE.fullmatch(target) is not None
        form = "origin-form"
    elif target == b"*":
        ok = method == b"OPTIONS"  # §3.2.4: asterisk-form is only for a server-wide OPTIONS
        form = "asterisk-form (OPTIONS only)"
    else:
        ok = abnf.ABSOLUTE_FORM_RE.fullmatch(target) is not None
        form = "absolute-form"
    if not ok:
        raise RemoteProtocolError(f"invalid request-target {printable(target)} ({form}, RFC 9112 §3.2)")


def _explain_field_line(raw: bytes) -> str:
    if raw[:1] in (b" ", b"\t"):
        return "obsolete line folding in header section (RFC 9112 §5.2)"
    name, colon, value = raw.partition(b":")
    if not colon:
        return f"header line without a colon: {printable(raw)}"
    if name[-1:] in (b" ", b"\t"):
        return f"whitespace between header name and colon: {printable(raw)} (RFC 9112 §5.1)"
    if abnf.TOKEN_RE.fullmatch(name) is None:
        return f"invalid header name {printable(name)}"
    bad = next(c for c in value if not (c == 9 or 0x20 <= c <= 0x7E or c >= 0x80))
    return f"invalid byte 0x{bad:02x} in value of header {printable(name)} (RFC 9110 §5.5)"


def _check_host(http_version: bytes, hosts: list[bytes]) -> None:
    # RFC 9112 §3.2: "A server MUST respond with a 400 ... to any HTTP/1.1 request message that lacks a
    # Host header field and to any request message that contains more than one Host header field line or
    # a Host header field with an invalid field value."
    if len(hosts) > 1:
        raise RemoteProtocolError("more than one Host header")
    if not hosts:
        if http_version == b"1.1":
            raise RemoteProtocolError("HTTP/1.1 request without a Host header")
        return
    if abnf.HOST_RE.fullmatch(hosts[0]) is None:
        raise RemoteProtocolError(f"invalid Host header {printable(hosts[0])}")


def _framing(
    http_version: bytes, content_lengths: list[bytes], transfer_encodings: list[bytes]
) -> tuple[int | None, bool]:
    """Decide how the body is delimited, exactly as RFC 9112 §6.3 says for requests."""
    if transfer_encodings:
        if content_lengths:
            # §6.3 rule 3: both present is a smuggling attempt until proven otherwise; §6.1: "a server
            # MAY reject a request that contains both ... and ought to handle it as an error". We do,
            # and close the connection.
            raise RemoteProtocolError("both Transfer-Encoding and Content-Length (RFC 9112 §6.1)")
        if http_version == b"1.0":
            # §6.1: a server "MUST ... treat the message as if the framing is faulty" when it gets
            # Transfer-Encoding on HTTP/1.0, because a 1.0 hop may not have understood it.
            raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)")
        codings = [c.strip(b" \t").lower() for value in transfer_encodings for c in value.split(b",")]
        codings = [c for c in codings if c]  # RFC 9110 §5.6.1: empty list elements are ignored
        if not codings:
            raise RemoteProtocolError("empty Transfer-Encoding")
        for coding in codings:
            if abnf.TOKEN_RE.fullmatch(coding.split(b";")[0].strip(b" \t")) is None:
                raise RemoteProtocolError(f"invalid transfer coding {printable(coding)}")
        if codings[-1] != b"chunked":
            # §6.3 rule 4: a request whose final coding is not chunked cannot be delimited: 400, close.
            raise RemoteProtocolError(
                f"Transfer-Encoding {printable(b', '.join(codings))} does not end in chunked (RFC 9112 §6.3)"
            )
        if codings.count(b"chunked") > 1:
            raise RemoteProtocolError("chunked applied more than once (RFC 9112 §7)")
        if len(codings) > 1:
            # §6.1: "A server that receives a request message with a transfer coding it does not
            # understand SHOULD respond with 501". rawrt decodes chunked only.
            known = codings[0] in _TE_KNOWN_CODINGS
            raise RemoteProtocolError(
                f"transfer coding {printable(codings[0])} is {'not implemented' if known else 'unknown'}",
                status_hint=501,
            )
        return None, True
    # Only called with a Content-Length or a Transfer-Encoding (without either, §6.3 rule 7: no body;
    # _finish_head decides that itself). RFC 9110 §8.6 / RFC 9112 §6.3 rule 5: a list of identical valid
    # values may be taken as one value; differing or invalid values are unrecoverable.
    values = {v.strip(b" \t") for value in content_lengths for v in value.split(b",")}
    if len(values) != 1:
        raise RemoteProtocolError(
            f"conflicting Content-Length values {printable(b', '.join(sorted(values)))}"
        )
    (value,) = values
    if abnf.CONTENT_LENGTH_RE.fullmatch(value) is None:
        raise RemoteProtocolError(f"invalid Content-Length {printable(value)}")
    return int(value), False


def parse_trailers(block: bytes, limits: Limits) -> HeaderList:
    """Parse a chunked body's trailer section (RFC 9112 §7.1.2), without its final CRLF CRLF.

    Raises:
        LimitExceeded: more fields than ``max_header_count`` (431).
        RemoteProtocolError: a field line that is not ``token ":" OWS field-value OWS`` (400).
    """
    lines = block.split(b"\r\n")
    if len(lines) > limits.max_header_count:
        raise LimitExceeded(f"more than {limits.max_header_count} trailer fields", status_hint=431)
    trailers: HeaderList = []
    for raw in lines:
        m = abnf.FIELD_LINE_RE.fullmatch(raw)
        if m is None or abnf.FIELD_VALUE_RE.fullmatch(m.group(2)) is None:
            raise RemoteProtocolError("in trailers: " + _explain_field_line(raw))
        trailers.append((m.group(1), m.group(2).rstrip(b" \t")))
    return trailers
