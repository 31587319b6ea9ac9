"""Differential tests: rawrt's HTTP/1.1 parser against h11 (a test oracle only; rawrt never imports h11).

For generated valid requests both parsers must agree on method, target, headers (h11 lowercases names, so
names compare case-insensitively), body and trailers. For a corpus of malformed and request-smuggling inputs,
rawrt must reject whatever h11 rejects. Every place where the two deliberately differ is listed in
:data:`DIFFERENCES` with the RFC section that decides it, and each entry is checked by running both parsers,
so the table cannot go stale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import h11
import pytest
from hypothesis import given, settings
from test_http11_hypothesis import Generated, requests, write_request
from test_http11_support import parse

from rawrt.sansio.http11 import Data, EndOfMessage, Request

H11_REJECTS = "h11 rejects"


@dataclass(frozen=True)
class Parsed:
    """What either parser made of one request: the fields compared, or an error status."""

    method: bytes = b""
    target: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    trailers: tuple[tuple[bytes, bytes], ...] = ()
    error: int | None = None  # the status hint when the input was rejected

    @property
    def rejected(self) -> bool:
        return self.error is not None


def lower(fields: object) -> tuple[tuple[bytes, bytes], ...]:
    assert isinstance(fields, list)
    return tuple((bytes(n).lower(), bytes(v)) for n, v in fields)


def h11_parse(data: bytes) -> Parsed:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")  # EOF: a request that is not complete by then is an error
    request: h11.Request | None = None
    body = b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return Parsed(
                    request.method,
                    request.target,
                    lower(list(request.headers.raw_items())),
                    body,
                    lower(list(event.headers.raw_items())),
                )
            else:
                return Parsed(error=400)  # NEED_DATA / ConnectionClosed before the end: incomplete
    except h11.RemoteProtocolError as exc:
        return Parsed(error=exc.error_status_hint)


def rawrt_parse(data: bytes) -> Parsed:
    out = parse(data, eof=True)  # whole and byte by byte
    if out.error is not None:
        return Parsed(error=out.error.status_hint)
    request = out.events[0]
    end = out.events[-1]
    if not isinstance(request, Request) or not isinstance(end, EndOfMessage):
        return Parsed(error=400)
    body = b"".join(e.data for e in out.events if isinstance(e, Data))
    return Parsed(request.method, request.target, lower(request.headers), body, lower(end.trailers))


# ------------------------------------------------------------------------------- agreement on valid input


@settings(max_examples=100, deadline=None)
@given(requests())
def test_generated_requests_agree(gen: Generated) -> None:
    wire = write_request(gen)
    ours, theirs = rawrt_parse(wire), h11_parse(wire)
    assert not ours.rejected and ours == theirs


def h11_write(gen: Generated) -> bytes:
    """Serialize with h11's client-side writer (a second, independent writer)."""
    client = h11.Connection(h11.CLIENT)
    headers = list(gen.headers)
    if gen.framing == "length":
        headers.append((b"Content-Length", b"%d" % len(gen.body)))
    elif gen.framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
    out = client.send(h11.Request(method=gen.method, target=gen.target, headers=headers)) or b""
    for chunk in gen.chunks:
        out += client.send(h11.Data(data=chunk)) or b""
    out += client.send(h11.EndOfMessage(headers=gen.trailers if gen.framing == "chunked" else [])) or b""
    return out


@settings(max_examples=100, deadline=None)
@given(requests())
def test_h11_client_writer_round_trip(gen: Generated) -> None:
    """(b) with h11 as the writer: what h11's client sends, rawrt parses back to what was generated."""
    ours = rawrt_parse(h11_write(gen))
    assert not ours.rejected
    assert (ours.method, ours.target, ours.body) == (gen.method, gen.target, gen.body)
    assert ours.headers[: len(gen.headers)] == lower(gen.headers)
    assert ours.trailers == lower(gen.trailers)


# ------------------------------------------------------------------------------------ malformed and smuggling

H = b"Host: a\r\n"
POST = b"POST / HTTP/1.1\r\n" + H
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

#: Malformed input and request-smuggling attempts. rawrt must reject every one that h11 rejects.
CORPUS: dict[str, bytes] = {
    "CL.TE": POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "TE.CL": POST
    + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
    "TE xchunked": POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "TE space before colon": POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "TE tab after colon (valid)": POST + b"Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    "TE chunked, identity": POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "TE identity": POST + b"Transfer-Encoding: identity\r\nContent-Length: 1\r\n\r\nx",
    "TE chunked twice": POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE gzip, chunked": POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "TE empty": POST + b"Transfer-Encoding: \r\n\r\n",
    "TE obs-fold": POST + b"Transfer-Encoding: x\r\n chunked\r\n\r\n0\r\n\r\n",
    "TE vertical tab": POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    "TE on HTTP/1.0": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "CL duplicate differing": POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "CL duplicate identical (valid)": POST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "CL +5": POST + b"Content-Length: +5\r\n\r\nabcde",
    "CL -1": POST + b"Content-Length: -1\r\n\r\n",
    "CL hex": POST + b"Content-Length: 0x5\r\n\r\nabcde",
    "CL with space": POST + b"Content-Length: 1 2\r\n\r\nab",
    "CL trailing comma": POST + b"Content-Length: 5,\r\n\r\nhello",
    "chunk size 0x5": CHUNKED + b"0x5\r\nabcde\r\n0\r\n\r\n",
    "chunk size -1": CHUNKED + b"-1\r\nabcde\r\n0\r\n\r\n",
    "chunk size '5 ;'": CHUNKED + b"5 ;\r\nabcde\r\n0\r\n\r\n",
    "chunk size huge hex": CHUNKED + b"f" * 30 + b"\r\nabcde\r\n0\r\n\r\n",
    "chunk size empty": CHUNKED + b"\r\nabcde\r\n0\r\n\r\n",
    "chunk data too long": CHUNKED + b"5\r\nabcdefg\r\n0\r\n\r\n",
    "chunk bare LF": CHUNKED + b"5\nabcde\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    "bare CR in value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: a\n\n",
    "NUL in value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    "DEL in value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
    "space in name": b"GET / HTTP/1.1\r\nHost: a\r\nX Y: a\r\n\r\n",
    "empty name": b"GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n",
    "Host duplicate": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "Host duplicate on 1.0": b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
    "Host missing on 1.1": b"GET / HTTP/1.1\r\n\r\n",
    "Host invalid": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "request line double space": b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    "request line leading space": b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "HTTP/0.9 request": b"GET /\r\n\r\n",
    "version HTTP/2.0": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "version lowercase": b"GET / http/1.1\r\nHost: a\r\n\r\n",
    "asterisk on GET": b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "CONNECT origin-form": b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
    "Expect unknown": b"GET / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n",
    "trailer obs-fold": CHUNKED + b"0\r\nX: a\r\n b\r\n\r\n",
    "leading CRLF (valid)": b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "TE with empty list element (valid)": POST + b"Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n",
    "chunk ext after BWS (valid)": CHUNKED + b"5 ;a=b\r\nabcde\r\n0\r\n\r\n",
}


@dataclass(frozen=True)
class Difference:
    """One deliberate difference between rawrt and h11, decided by an RFC section."""

    case: str
    rfc: str
    ours: int | None  # rawrt's answer: a status, or None for accepted
    theirs: int | None  # h11's answer
    why: str


#: Every deliberate difference, each with the RFC section that decides it. Determined by running both.
DIFFERENCES: list[Difference] = [
    Difference(
        "CL.TE", "RFC 9112 §6.1, §6.3 rule 3", 400, None, "h11 lets TE win; rawrt refuses both (MAY reject)"
    ),
    Difference("TE on HTTP/1.0", "RFC 9112 §6.1", 400, None, "TE on 1.0 MUST be treated as faulty framing"),
    Difference("TE xchunked", "RFC 9112 §6.3 rule 4", 400, 501, "final coding not chunked: 400, not 501"),
    Difference("TE chunked, identity", "RFC 9112 §6.3 rule 4", 400, 501, "final coding not chunked: 400"),
    Difference("TE identity", "RFC 9112 §6.1 (+ CL: §6.3 rule 3)", 400, 501, "TE and CL together: 400"),
    Difference("TE chunked twice", "RFC 9112 §7", 400, 501, "chunked MUST NOT be applied more than once"),
    Difference(
        "TE empty", "RFC 9112 §6.1 (1#transfer-coding)", 400, 501, "an empty TE is malformed, not unknown"
    ),
    Difference("TE obs-fold", "RFC 9112 §5.2", 400, 501, "obs-fold is refused before TE is looked at"),
    Difference(
        "Host invalid", "RFC 9112 §3.2, RFC 9110 §7.2", 400, None, "a Host with an invalid value MUST be 400"
    ),
    Difference(
        "obs-fold", "RFC 9112 §5.2", 400, None, "server MUST reject obs-fold or replace it; rawrt rejects"
    ),
    Difference(
        "trailer obs-fold", "RFC 9112 §5.2, §7.1.2", 400, None, "trailers follow the field-line rules"
    ),
    Difference("bare LF", "RFC 9112 §2.2", 400, None, "accepting a bare LF is a MAY; rawrt requires CRLF"),
    Difference(
        "chunk bare LF", "RFC 9112 §2.2, §7.1", 400, 400, "(both reject; listed for the bare-LF policy)"
    ),
    Difference(
        "DEL in value", "RFC 9110 §5.5", 400, None, "field-vchar is VCHAR / obs-text: 0x7F is neither"
    ),
    Difference(
        "version HTTP/2.0", "RFC 9110 §15.6.6, RFC 9112 §2.3", 505, None, "h11 parses any 1-digit major"
    ),
    Difference("asterisk on GET", "RFC 9112 §3.2.4", 400, None, "asterisk-form is only for OPTIONS"),
    Difference(
        "CONNECT origin-form", "RFC 9112 §3.2.3, RFC 9110 §9.3.6", 400, None, "CONNECT takes host:port"
    ),
    Difference("Expect unknown", "RFC 9110 §10.1.1", 417, None, "an unmet expectation SHOULD get 417"),
    Difference(
        "leading CRLF (valid)", "RFC 9112 §2.2", None, 400, "SHOULD ignore at least one empty line first"
    ),
    Difference(
        "TE with empty list element (valid)",
        "RFC 9110 §5.6.1",
        None,
        501,
        "empty list elements MUST be ignored",
    ),
    Difference("chunk ext after BWS (valid)", "RFC 9112 §7.1.1", None, 400, "chunk-ext = *( BWS ';' ... )"),
]

#: Differences found on inputs outside CORPUS (checked in test_other_differences).
OTHER_DIFFERENCES: dict[str, tuple[bytes, str, int | None, int | None]] = {
    # name: (input, RFC section, rawrt, h11)
    "version HTTP/0.9": (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", "RFC 9110 §15.6.6", 505, None),
    "chunk size trailing space": (CHUNKED + b"5 \r\nabcde\r\n0\r\n\r\n", "RFC 9112 §7.1", 400, None),
    "chunk ext without name": (CHUNKED + b"5;\r\nabcde\r\n0\r\n\r\n", "RFC 9112 §7.1.1", 400, None),
    "chunk ext unterminated quote": (CHUNKED + b'5;a="b\r\nabcde\r\n0\r\n\r\n', "RFC 9112 §7.1.1", 400, None),
    # 17 hex digits: rawrt caps chunk-size at limits.MAX_CHUNK_SIZE_DIGITS (16), h11 at 20.
    "chunk size 17 digits": (
        CHUNKED + b"0" * 16 + b"5\r\nabcde\r\n0\r\n\r\n",
        "RFC 9112 §7.1 (bounded)",
        400,
        None,
    ),
    # 20 digits: rawrt caps Content-Length at 19 digits (below 2**63); h11 takes it, then waits for the body.
    "CL 20 digits": (
        POST + b"Content-Length: " + b"9" * 20 + b"\r\n\r\n",
        "RFC 9110 §8.6 (overflow)",
        400,
        400,
    ),
}


#: Accepted by both, but h11 folds repeated identical Content-Length fields into one.
FOLDED = {"CL duplicate identical (valid)"}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_rawrt_rejects_what_h11_rejects(case: str) -> None:
    ours, theirs = rawrt_parse(CORPUS[case]), h11_parse(CORPUS[case])
    listed = {d.case: d for d in DIFFERENCES}
    if case in listed:
        diff = listed[case]
        assert (ours.error, theirs.error) == (diff.ours, diff.theirs), diff
        return
    if theirs.rejected:
        assert ours.rejected, f"h11 rejects {case!r} ({theirs.error}) but rawrt accepts it"
    elif case in FOLDED:
        # h11 keeps one of several identical Content-Length fields; rawrt keeps what was received.
        # RFC 9110 §8.6 allows either; everything else must agree.
        assert dataclasses.replace(ours, headers=tuple(dict.fromkeys(ours.headers))) == theirs
    else:
        assert ours == theirs, f"{case!r}: neither rejects, so both must parse it the same"


def test_every_listed_difference_is_in_the_corpus() -> None:
    assert {d.case for d in DIFFERENCES} <= set(CORPUS)
    assert all(d.rfc.startswith("RFC ") for d in DIFFERENCES)


@pytest.mark.parametrize("case", sorted(OTHER_DIFFERENCES))
def test_other_differences(case: str) -> None:
    data, _rfc, ours, theirs = OTHER_DIFFERENCES[case]
    assert (rawrt_parse(data).error, h11_parse(data).error) == (ours, theirs)


def test_smuggled_request_is_never_parsed() -> None:
    """After CL.TE/TE.CL, neither the body nor the request hidden in it is ever seen by rawrt."""
    for case in ("CL.TE", "TE.CL"):
        out = parse(CORPUS[case] + b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", eof=True)
        assert out.status == 400 and out.events == []
