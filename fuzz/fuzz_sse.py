"""Fuzz target for the SSE parser (``rawrt.sansio.sse.SSEParser``).

Invariant: any bytes are accepted (giving events) or raise :class:`~rawrt.errors.LimitExceeded`, the
parser's only documented exception, and nothing else. On top of that, for every input:

* feeding it whole, one byte at a time, or cut in thirds gives the same events and the same outcome;
* every event is one a conformant stream can carry: a non-empty type, no CR in the data, a last event id
  without NUL, CR or LF, a retry below 2**64;
* every message re-encodes with :class:`ServerSentEvent` and parses back to itself (encoder and parser
  agree on everything the parser can produce).

Run ``test_one_input`` from pytest (``tests/test_fuzz_sse.py`` replays ``fuzz/corpus/sse/`` and adds
Hypothesis inputs), or for long runs with atheris (OSS-Fuzz style)::

    python fuzz/fuzz_sse.py /tmp/sse-corpus fuzz/corpus/sse -max_total_time=600

The first directory receives the new inputs libFuzzer finds; keep the checked-in corpus small.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rawrt.errors import LimitExceeded
from rawrt.sansio.sse import MessageEvent, RetryChanged, ServerSentEvent, SSEEvent, SSEParser

# Two limits: the default (never reached by fuzz-sized inputs) and a tiny one, so the LimitExceeded path
# and its chunking invariance are fuzzed too.
_LIMITS = (1 << 20, 24)


def _run(chunks: Sequence[bytes], max_event_size: int) -> tuple[list[SSEEvent], bool]:
    """Parse ``chunks``; return the events and whether the limit was hit."""
    parser = SSEParser(max_event_size=max_event_size)
    events: list[SSEEvent] = []
    try:
        for chunk in chunks:
            parser.receive_data(chunk)
            events += parser.events_received()
    except LimitExceeded:
        return events + parser.events_received(), True
    parser.receive_eof()
    return events + parser.events_received(), False


def _check_event(event: SSEEvent) -> None:
    if isinstance(event, RetryChanged):
        assert 0 <= event.milliseconds < 2**64, event
        return
    assert isinstance(event, MessageEvent), event
    assert event.type and "\r" not in event.type and "\n" not in event.type, event
    assert "\r" not in event.data, event
    assert not any(c in event.last_event_id for c in "\0\r\n"), event
    wire = ServerSentEvent(data=event.data, event=event.type, id=event.last_event_id).encode()
    again, hit = _run([wire], 1 << 30)
    assert (again, hit) == ([event], False), (event, wire, again)


def test_one_input(data: bytes) -> None:
    """Parse ``data`` cut three ways under two limits; accept, or raise only ``LimitExceeded`` (caught)."""
    third = len(data) // 3
    cuttings = (
        [data],
        [data[i : i + 1] for i in range(len(data))],
        [data[:third], data[third : 2 * third], data[2 * third :]],
    )
    for limit in _LIMITS:
        whole = _run(cuttings[0], limit)
        for chunks in cuttings[1:]:
            assert _run(chunks, limit) == whole, (limit, chunks, whole)
        for event in whole[0]:
            _check_event(event)


def main(argv: list[str]) -> None:  # pragma: no cover - needs atheris, run by hand or by OSS-Fuzz
    import atheris

    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
