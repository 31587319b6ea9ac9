"""Property tests of the HTTP/1.1 connection (STYLE.md §8 properties a, b, c, d/g and f).

(a) a generated valid request parses the same however it is split; (b) what a tiny test-side request writer
serializes parses back to what was generated; (c) chunked encode then decode is the identity; (d) arbitrary
bytes give events or a ProtocolError, never another exception, and the same answer however split; (f) every
step of a random session is a legal path in ``TRANSITIONS``, or a RemoteProtocolError into the terminal ERROR
state, or a LocalProtocolError that changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_http11_support import answer_ok, drive, parse, split_every

from rawrt.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from rawrt.limits import Limits
from rawrt.sansio import abnf
from rawrt.sansio.headers import HeaderList
from rawrt.sansio.http11 import (
    TRANSITIONS,
    Data,
    EndOfMessage,
    HTTPConnection,
    Request,
    Role,
    State,
    encode_chunk,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%"
FRAMING = {b"content-length", b"transfer-encoding", b"host", b"connection", b"expect", b"upgrade", b"te"}

tokens = st.text(TCHARS, min_size=1, max_size=12).map(str.encode)
methods = st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH"]), tokens).filter(
    lambda m: m != b"CONNECT"
)
targets = st.builds(
    lambda segments, query: b"/" + b"/".join(segments) + (b"" if query is None else b"?" + query),
    st.lists(st.text(PCHARS, max_size=8).map(str.encode), max_size=4),
    st.none() | st.text(PCHARS + "/?", max_size=12).map(str.encode),
)
field_names = tokens.filter(lambda n: n.lower() not in FRAMING)
# RFC 9110 §5.5: field-vchar = VCHAR / obs-text, with SP / HTAB inside (never first or last).
vchar = st.integers(0x21, 0x7E) | st.integers(0x80, 0xFF)
field_values = (
    st.lists(vchar | st.sampled_from([0x20, 0x09]), max_size=24).map(bytes).map(lambda v: v.strip(b" \t"))
)
ows = st.sampled_from([b"", b" ", b"\t", b"  \t"])


@dataclass
class Generated:
    """A request as generated, before serialization."""

    method: bytes
    target: bytes
    headers: HeaderList
    framing: str  # "none" | "length" | "chunked"
    chunks: list[bytes] = field(default_factory=list)
    trailers: HeaderList = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


@st.composite
def requests(draw: st.DrawFn) -> Generated:
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=4)) if framing != "none" else []
    trailers = (
        draw(st.lists(st.tuples(field_names, field_values), max_size=3)) if framing == "chunked" else []
    )
    headers = [(b"Host", b"example.com")] + draw(st.lists(st.tuples(field_names, field_values), max_size=6))
    return Generated(draw(methods), draw(targets), headers, framing, chunks, trailers)


def write_request(gen: Generated, pad: bytes = b"") -> bytes:
    """A tiny test-side request writer (independent of rawrt's code)."""
    lines = [gen.method + b" " + gen.target + b" HTTP/1.1"]
    lines += [name + b":" + pad + value + pad for name, value in gen.headers]
    body = b""
    if gen.framing == "length":
        lines.append(b"Content-Length: %d" % len(gen.body))
        body = gen.body
    elif gen.framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        body = b"".join(b"%X\r\n%b\r\n" % (len(c), c) for c in gen.chunks)
        body += b"0\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in gen.trailers) + b"\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def check_parsed(gen: Generated, events: list[object]) -> None:
    request = events[0]
    assert isinstance(request, Request)
    assert (request.method, request.target, request.http_version) == (gen.method, gen.target, b"1.1")
    assert request.headers[: len(gen.headers)] == gen.headers
    assert request.chunked is (gen.framing == "chunked")
    body = b"".join(e.data for e in events if isinstance(e, Data))
    assert body == gen.body
    assert events[-1] == EndOfMessage(gen.trailers)


@SETTINGS
@given(requests(), ows, st.data())
def test_valid_requests_parse_the_same_however_split(gen: Generated, pad: bytes, data: st.DataObject) -> None:
    """(a) + (b): split at arbitrary points, the events are those of the whole input, and match gen."""
    wire = write_request(gen, pad)
    whole = drive(HTTPConnection(), [wire])
    assert whole.error is None, whole.error
    check_parsed(gen, list(whole.events))
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    assert drive(HTTPConnection(), split_every(wire, cuts)).key() == whole.key()


@SETTINGS
@given(st.lists(requests(), min_size=2, max_size=3))
def test_pipelined_requests_parse_in_order(gens: list[Generated]) -> None:
    """Several requests in one buffer, each answered before the next is parsed, byte by byte too."""
    out = parse(b"".join(write_request(g) for g in gens), answer=answer_ok)
    assert out.error is None
    starts = [i for i, e in enumerate(out.events) if isinstance(e, Request)] + [len(out.events)]
    assert len(starts) == len(gens) + 1
    for gen, a, b in zip(gens, starts, starts[1:], strict=False):
        check_parsed(gen, list(out.events[a:b]))


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=6), st.integers(1, 64))
def test_chunked_encode_decode_identity(pieces: list[bytes], step: int) -> None:
    """(c) encode_chunk then the parser's chunked reader is the identity (empty pieces encode nothing)."""
    body = b"".join(encode_chunk(p) for p in pieces) + b"0\r\n\r\n"
    wire = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    out = drive(HTTPConnection(), [wire[i : i + step] for i in range(0, len(wire), step)])
    assert out.error is None
    assert b"".join(e.data for e in out.events if isinstance(e, Data)) == b"".join(pieces)
    assert out.events[-1] == EndOfMessage()


SMALL = Limits(
    max_request_line=40, max_header_bytes=60, max_header_count=3, max_body_size=20, max_chunk_ext=8
)
PREFIXES = [
    b"",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
]
fuzz_alphabet = st.sampled_from(
    [
        b"\r\n",
        b"\r",
        b"\n",
        b" ",
        b":",
        b";",
        b"0",
        b"5",
        b"a",
        b"GET / HTTP/1.1",
        b"Host: a",
        b"\x00",
        b"\xff",
    ]
)
noise = st.binary(max_size=120) | st.lists(fuzz_alphabet, max_size=40).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PREFIXES), noise, st.booleans(), st.sampled_from([None, SMALL]))
def test_arbitrary_bytes_give_events_or_protocol_errors(
    prefix: bytes, tail: bytes, eof: bool, lim: object
) -> None:
    """(d): never another exception, and the same answer whole and one byte at a time."""
    limits = lim if isinstance(lim, Limits) else Limits()
    out = parse(prefix + tail, eof=eof, limits=limits, answer=answer_ok)  # parse() compares both ways
    assert out.error is None or isinstance(out.error, ProtocolError)


# ------------------------------------------------------------------------------------ (f) state machine

ACTIONS = st.sampled_from(
    [
        ("data", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("data", b"GET / HTTP/1.0\r\n\r\n"),
        ("data", b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
        ("data", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("data", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"),
        ("data", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        ("data", b"ab"),
        ("data", b"2\r\nab\r\n"),
        ("data", b"0\r\n\r\n"),
        ("data", b"garbage\r\n\r\n"),
        ("eof", b""),
        ("events", b""),
        ("events", b""),
        ("informational", b""),
        ("response", b"101"),
        ("response", b"200"),
        ("response", b"204"),
        ("response_length", b"2"),
        ("send_data", b"xy"),
        ("end", b""),
        ("set_max", b"1"),
        ("reject", b""),
    ]
)


def reachable(role: Role, start: State) -> set[State]:
    """States reachable from ``start`` through the table, in zero or more steps."""
    seen = {start}
    frontier = [start]
    while frontier:
        state = frontier.pop()
        for (r, s, _what), new in TRANSITIONS.items():
            if r is role and s is state and new not in seen:
                seen.add(new)
                frontier.append(new)
    return seen


def act(conn: HTTPConnection, action: str, arg: bytes) -> None:
    if action == "data":
        conn.receive_data(arg)
    elif action == "eof":
        conn.receive_eof()
    elif action == "events":
        conn.events_received()
    elif action == "informational":
        conn.send_informational(100)
    elif action == "response":
        conn.send_response(int(arg), [])
    elif action == "response_length":
        conn.send_response(200, [(b"content-length", arg)])
    elif action == "send_data":
        conn.send_data(arg)
    elif action == "end":
        conn.send_end()
    elif action == "set_max":
        conn.set_max_body_size(int(arg))
    else:
        assert action == "reject"
        conn.reject(RemoteProtocolError("test"))


@settings(max_examples=300, deadline=None)
@given(st.lists(ACTIONS, max_size=30))
def test_every_step_is_a_legal_transition(actions: list[tuple[str, bytes]]) -> None:
    """(f) every (state, input) pair is a path in TRANSITIONS, or a ProtocolError as documented."""
    conn = HTTPConnection()
    eof = False
    for action, arg in actions:
        if action == "data" and eof:
            continue  # receive_data() after receive_eof() is a RuntimeError by contract: not a protocol input
        eof = eof or action == "eof"
        before = (conn.client_state, conn.server_state)
        try:
            act(conn, action, arg)
        except RemoteProtocolError:
            # The client broke the protocol: the client half is in the terminal ERROR state for good.
            assert conn.client_state is State.ERROR
            continue
        except LocalProtocolError:
            # The app's bug: nothing changed, so the server can still answer 500 with reject().
            assert (conn.client_state, conn.server_state) == before
            continue
        after = (conn.client_state, conn.server_state)
        if action == "reject":
            assert after == (State.ERROR, State.ERROR) and conn.data_to_send()[-1] == b""
            continue
        if after[0] is State.ERROR and before[0] is not State.ERROR:
            # A deferred error (events were returned first): the next events_received() raises it.
            assert action == "events"
            try:
                conn.events_received()
            except RemoteProtocolError:
                pass
            else:
                raise AssertionError("the deferred error was not raised")
        else:
            assert after[0] in reachable(Role.CLIENT, before[0]), (action, before, after)
        assert after[1] in reachable(Role.SERVER, before[1]), (action, before, after)
        if before[0] in (State.ERROR, State.CLOSED):
            assert after[0] is before[0]  # terminal


# ---------------------------------------------------------------------- the head parser's two paths agree

# Fields the one-pass fast path must hand to the same checks as the step-by-step path: framing, persistence
# and Host fields, with odd spacing and the occasional bad byte.
special_fields = st.sampled_from(
    [
        b"Content-Length: 3",
        b"Content-Length: 3, 3",
        b"Content-Length: x",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip",
        b"Connection: close",
        b"Connection: keep-alive, Upgrade",
        b"Upgrade: websocket",
        b"Expect: 100-continue",
        b"Expect: x",
        b"Host: b",
        b"Host: a b",
        b"X: trailing \t",
        b"X:\tlead",
        b"X : space",
        b"X: a\rb",
        b"X: \x7f",
    ]
)
heads = st.builds(
    lambda method, target, version, fields: (
        method + b" " + target + b" " + version + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    ),
    st.sampled_from([b"GET", b"POST", b"CONNECT", b"OPTIONS"]) | methods,
    targets | st.sampled_from([b"*", b"a:1", b"http://a/", b"/a b", b"/\x80"]),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0"]),
    st.lists(
        st.just(b"Host: a")
        | special_fields
        | st.tuples(field_names, ows, field_values).map(lambda t: b":".join(t[:1]) + b":" + t[1] + t[2]),
        max_size=8,
    ),
)


def _parse_head(wire: bytes, limits: Limits) -> tuple[list[object], str | None, int | None]:
    conn = HTTPConnection(limits)
    conn.receive_data(wire)
    try:
        return list(conn.events_received()), None, None
    except ProtocolError as exc:
        return [], str(exc), exc.status_hint


@settings(max_examples=400, deadline=None)
@given(heads, st.sampled_from([None, Limits(max_header_count=3), Limits(max_header_bytes=40)]))
def test_fast_and_step_by_step_head_parsing_agree(wire: bytes, limits: Limits | None) -> None:
    """A head the one-pass pattern (abnf.FAST_HEAD_RE) accepts must parse exactly as the step-by-step path
    parses it: same Request, same error, same status."""
    lim = limits or Limits()
    fast = _parse_head(wire, lim)
    saved = abnf.FAST_HEAD_RE
    abnf.FAST_HEAD_RE = re.compile(rb"(?!)")  # matches nothing: every head takes the step-by-step path
    try:
        slow = _parse_head(wire, lim)
    finally:
        abnf.FAST_HEAD_RE = saved
    assert fast == slow
