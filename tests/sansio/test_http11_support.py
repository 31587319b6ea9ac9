"""Helpers shared by the HTTP/1.1 sans-IO tests (no tests here).

The central helper is :func:`parse`: it feeds the same bytes to two fresh connections, once whole and once
one byte at a time (h11 ``t_body_reader``), and checks that both give the same events and the same error.
Every parser test goes through it, so every parser test is run both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rawrt.errors import ProtocolError
from rawrt.limits import DEFAULT_LIMITS, Limits
from rawrt.sansio.http11 import Data, EndOfMessage, Event, HTTPConnection, Request

__all__ = [
    "Outcome",
    "answer_ok",
    "drive",
    "parse",
    "split_every",
    "merge_data",
    "body_of",
    "request_of",
    "GET",
    "HOST",
]

#: The smallest valid HTTP/1.1 request (RFC 9112 §3.2: Host is mandatory on 1.1).
GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
HOST = b"Host: example.com\r\n"


@dataclass
class Outcome:
    """What a connection made of some input: the events (adjacent Data merged) and the error, if any."""

    events: list[Event]
    error: ProtocolError | None
    conn: HTTPConnection

    @property
    def status(self) -> int | None:
        """The error's status hint, or None when the input was accepted."""
        return None if self.error is None else self.error.status_hint

    def key(self) -> tuple[list[Event], type[ProtocolError] | None, int | None]:
        """What must be equal however the input was split."""
        return self.events, None if self.error is None else type(self.error), self.status


def merge_data(events: Iterable[Event]) -> list[Event]:
    """Join adjacent Data events: how a body is cut into Data events depends on how it arrived."""
    out: list[Event] = []
    for event in events:
        if type(event) is Data and out and type(out[-1]) is Data:
            previous = out.pop()
            assert isinstance(previous, Data)
            out.append(Data(previous.data + event.data))
        else:
            out.append(event)
    return out


def answer_ok(conn: HTTPConnection) -> None:
    """Finish the current exchange with an empty 200, so a pipelined request can be parsed next."""
    conn.send_response(200, [(b"content-length", b"0")])
    conn.send_end()


def drive(
    conn: HTTPConnection,
    chunks: Iterable[bytes],
    *,
    eof: bool = False,
    answer: Callable[[HTTPConnection], None] | None = None,
) -> Outcome:
    """Feed ``chunks`` then (optionally) EOF, reading every event after each piece.

    ``answer`` is called after each EndOfMessage (if the connection can still respond) so pipelining proceeds.
    """
    events: list[Event] = []

    def drain() -> bool:
        while True:
            got = conn.events_received()
            if not got:
                return True
            events.extend(got)
            if answer is not None and type(got[-1]) is EndOfMessage:
                answer(conn)

    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            drain()
        if eof:
            conn.receive_eof()
            drain()
    except ProtocolError as exc:
        return Outcome(merge_data(events), exc, conn)
    return Outcome(merge_data(events), None, conn)


def split_every(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates allowed)."""
    points = sorted({0, len(data), *(c for c in cuts if 0 <= c <= len(data))})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def parse(
    data: bytes,
    *,
    eof: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    answer: Callable[[HTTPConnection], None] | None = None,
) -> Outcome:
    """Parse ``data`` whole and byte by byte; assert both agree; return the whole-input outcome."""
    whole = drive(HTTPConnection(limits), [data], eof=eof, answer=answer)
    bytewise = drive(
        HTTPConnection(limits), [data[i : i + 1] for i in range(len(data))], eof=eof, answer=answer
    )
    assert whole.key() == bytewise.key(), (data, whole.key(), bytewise.key())
    if whole.error is not None:
        assert whole.conn.client_state.name == "ERROR"
    return whole


def request_of(outcome: Outcome) -> Request:
    """The first event, which must be a Request (and no error)."""
    assert outcome.error is None, outcome.error
    request = outcome.events[0]
    assert isinstance(request, Request)
    return request


def body_of(outcome: Outcome) -> bytes:
    """The body bytes of the first request (which must have ended)."""
    assert outcome.error is None, outcome.error
    body = b""
    for event in outcome.events[1:]:
        if isinstance(event, Data):
            body += event.data
        else:
            assert isinstance(event, EndOfMessage)
            return body
    raise AssertionError(f"no EndOfMessage in {outcome.events}")
