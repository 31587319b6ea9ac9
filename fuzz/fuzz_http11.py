"""Fuzz target for the sans-IO HTTP/1.1 server connection (``rawrt.sansio.http11.HTTPConnection``).

Invariant: any bytes are accepted (giving events) or raise a :class:`~rawrt.errors.ProtocolError` subclass
from ``events_received()`` (the documented exceptions: ``RemoteProtocolError`` and ``LimitExceeded``), and
nothing else. On top of that, for every input:

* feeding it whole, one byte at a time, or cut in thirds gives the same events (adjacent ``Data`` joined),
  the same error class and status, and the same bytes to send;
* every request is answered as soon as its body has ended, so pipelined requests are parsed in turn, and an
  error is answered with ``reject()``, whose output ends with ``b""`` (close);
* every event is one a valid request can produce: a token method, field values without CR/LF/NUL or outer
  whitespace, and a body no longer than the limit.

Run ``test_one_input`` from pytest (``tests/test_fuzz_http11.py`` replays ``fuzz/corpus/http11/`` and adds
Hypothesis inputs), or for long runs with atheris (OSS-Fuzz style)::

    python fuzz/fuzz_http11.py /tmp/http11-corpus fuzz/corpus/http11 -max_total_time=600

The first directory receives the new inputs libFuzzer finds; keep the checked-in corpus small.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __name__ == "__main__":  # pragma: no cover - run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rawrt.errors import ProtocolError  # noqa: E402
from rawrt.limits import Limits  # noqa: E402
from rawrt.sansio import abnf  # noqa: E402
from rawrt.sansio.http11 import Data, EndOfMessage, Event, HTTPConnection, Request  # noqa: E402

# The defaults (rarely reached by fuzz-sized inputs) and tiny limits, so every limit path is fuzzed too.
_LIMITS = (
    Limits(),
    Limits(max_request_line=32, max_header_bytes=48, max_header_count=3, max_body_size=12, max_chunk_ext=6),
)

Outcome = tuple[list[Event], "tuple[type[ProtocolError], int] | None", bytes]


def _answer(conn: HTTPConnection, request: Request) -> None:
    """Answer the request that just ended, exercising each framing the writer has."""
    if request.method == b"HEAD" or request.http_version == b"1.0":
        conn.send_response(200, [(b"content-length", b"2")], date=b"D")
        conn.send_data(b"ok")
    else:
        conn.send_response(200, [], date=b"D")  # chunked
        conn.send_data(request.target[:8])
    conn.send_end()


def _run(chunks: Sequence[bytes], limits: Limits) -> Outcome:
    conn = HTTPConnection(limits)
    events: list[Event] = []
    error: ProtocolError | None = None

    def drain() -> None:
        while True:
            got = conn.events_received()
            if not got:
                return
            for event in got:
                last = events[-1] if events else None
                if isinstance(event, Data) and isinstance(last, Data):
                    events[-1] = Data(last.data + event.data)  # how a body is cut depends on the split
                else:
                    events.append(event)
                if type(event) is EndOfMessage:
                    assert isinstance(conn.request, Request)
                    _answer(conn, conn.request)

    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            drain()
        conn.receive_eof()
        drain()
    except ProtocolError as exc:
        error = exc
        conn.reject(exc, date=b"D")
        sent = conn.data_to_send()
        assert sent and sent[-1] == b"", sent
        # Nothing after the error is ever parsed.
        conn_events = conn.events_received()
        assert conn_events == [], conn_events
        return events, (type(exc), exc.status_hint), b"".join(sent)
    assert error is None
    return events, None, b"".join(conn.data_to_send())


def _check_event(event: Event, limits: Limits) -> None:
    if isinstance(event, Request):
        assert abnf.TOKEN_RE.fullmatch(event.method), event
        assert event.http_version in (b"1.0", b"1.1"), event
        for name, value in event.headers:
            assert abnf.TOKEN_RE.fullmatch(name), event
            assert abnf.FIELD_VALUE_RE.fullmatch(value), event
            assert value == value.strip(b" \t"), event
        assert not (event.chunked and event.content_length is not None), event
        assert len(event.headers) <= limits.max_header_count, event
    elif isinstance(event, Data):
        assert event.data, event
        assert len(event.data) <= limits.max_body_size, event
    elif isinstance(event, EndOfMessage):
        for name, value in event.trailers:
            assert abnf.TOKEN_RE.fullmatch(name) and abnf.FIELD_VALUE_RE.fullmatch(value), event


def test_one_input(data: bytes) -> None:
    """Parse ``data`` cut three ways under two sets of limits; accept, or raise only ProtocolError."""
    third = len(data) // 3
    cuttings = (
        [data],
        [data[i : i + 1] for i in range(len(data))],
        [data[:third], data[third : 2 * third], data[2 * third :]],
    )
    for limits in _LIMITS:
        whole = _run(cuttings[0], limits)
        for chunks in cuttings[1:]:
            assert _run(chunks, limits) == whole, (limits, chunks, whole)
        for event in whole[0]:
            _check_event(event, limits)


def main(argv: list[str]) -> None:  # pragma: no cover - needs atheris, run by hand or by OSS-Fuzz
    import atheris

    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
