"""Fuzz target for the WebSocket frame parser and connection (``rawrt.sansio.ws.connection``).

Invariant: ``WebSocketConnection.receive_data`` / ``receive_eof`` accept any bytes and never raise; a
peer's error fails the connection with a close frame and is recorded in ``failure``, which must then be
a :class:`~rawrt.errors.ProtocolError` (anything else is a bug that was answered with 1011). On top of
that, for every input:

* feeding it whole or one byte at a time gives the same events, the same bytes to send and the same
  outcome (the parser is cut-invariant);
* every event is well formed: messages within the size limit, text is ``str``, control payloads at most
  125 bytes, close codes valid on the wire or 1005;
* after ``receive_eof`` the connection is CLOSED and its output ends with ``b""`` (TCP closed).

Each input runs against a server (masked frames expected) and a client (unmasked: random bytes reach
deeper), each without and with permessage-deflate negotiated, with small limits so that the 1009 paths
are reachable.

Run ``test_one_input`` from pytest (``tests/test_fuzz_ws.py`` replays ``fuzz/corpus/ws_frames/`` and
adds Hypothesis inputs), or for long runs with atheris (OSS-Fuzz style)::

    python fuzz/fuzz_ws_frames.py /tmp/ws-corpus fuzz/corpus/ws_frames -max_total_time=600

The first directory receives the new inputs libFuzzer finds; keep the checked-in corpus small.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rawrt.errors import ProtocolError
from rawrt.sansio.ws.connection import (
    BinaryMessage,
    CloseReceived,
    Event,
    Ping,
    Pong,
    Role,
    State,
    TextMessage,
    WebSocketConnection,
)
from rawrt.sansio.ws.deflate import PerMessageDeflate
from rawrt.sansio.ws.frames import is_valid_close_code

# Small enough that a fuzzer reaches them, different so that each check has its own path.
MAX_MESSAGE_SIZE = 4096
MAX_FRAME_SIZE = 1024


def _run(chunks: Sequence[bytes], role: Role, deflate: bool) -> tuple[list[Event], list[bytes], str]:
    """Feed ``chunks`` then EOF; return the events, the output and a summary of the outcome."""
    conn = WebSocketConnection(
        role,
        max_message_size=MAX_MESSAGE_SIZE,
        max_frame_size=MAX_FRAME_SIZE,
        mask_key=lambda: b"\x00\x00\x00\x00",
        extension=PerMessageDeflate() if deflate else None,
    )
    for chunk in chunks:
        conn.receive_data(chunk)
    events = conn.events_received()
    failure = conn.failure
    if failure is not None and not isinstance(failure, ProtocolError):
        raise failure  # a bug: the connection answered it with 1011, the fuzzer must see it
    conn.receive_eof()
    output = conn.data_to_send()
    assert conn.state is State.CLOSED
    assert output and output[-1] == b"", output
    assert conn.events_received() == []
    outcome = f"{type(failure).__name__}: {failure}" if failure else f"closed {conn.close_code}"
    return events, output, outcome


def _check_event(event: Event) -> None:
    if isinstance(event, TextMessage):
        assert isinstance(event.data, str)
        assert len(event.data.encode()) <= MAX_MESSAGE_SIZE
    elif isinstance(event, BinaryMessage):
        assert isinstance(event.data, bytes)
        assert len(event.data) <= MAX_MESSAGE_SIZE
    elif isinstance(event, Ping | Pong):
        assert len(event.payload) <= 125
    else:
        assert isinstance(event, CloseReceived)
        assert event.code == 1005 or is_valid_close_code(event.code), event


def test_one_input(data: bytes) -> None:
    """Check the invariants above on ``data``; raise AssertionError (or the bug) when one breaks."""
    for role in (Role.SERVER, Role.CLIENT):
        for deflate in (False, True):
            whole = _run([data], role, deflate)
            bytewise = _run([data[i : i + 1] for i in range(len(data))], role, deflate)
            assert whole == bytewise, (role, deflate, whole, bytewise)
            for event in whole[0]:
                _check_event(event)


def main(argv: list[str]) -> None:  # pragma: no cover - needs atheris, run by hand or by OSS-Fuzz
    import atheris

    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
