"""Fuzz target for the WebSocket connection as a whole (``rawrt.sansio.ws.connection``), driven by a program.

``fuzz_ws_frames.py`` feeds raw bytes, which rarely get past the frame header checks into the message layer.
Here the input is a *program* that builds valid-looking traffic: data frames with chosen FIN/RSV1/opcode,
their payloads compressed by a real permessage-deflate peer when the message is compressed, bursts of empty
fragments, pings/pongs/closes interleaved with a fragmented message, raw garbage, and the app's own sends
(``send_text``, ``send_fragment``, ``send_ping``, ``send_close``, ``fail``) in between, then EOF.

Invariants, for every program:

* ``receive_data`` / ``receive_eof`` never raise; ``failure`` is ``None`` or a
  :class:`~rawrt.errors.ProtocolError` (the documented close codes: 1002, 1007, 1009); anything else is a
  bug, answered with 1011, and raised here so the fuzzer sees it;
* the app's sends raise nothing but ``ConnectionClosed`` (state forbids) or ``LocalProtocolError`` (bad
  request, e.g. a 126-byte ping);
* feeding the wire bytes whole or one byte at a time gives the same events, output and outcome;
* every event is well formed, and no message exceeds ``MAX_MESSAGE_SIZE``;
* memory is bounded: the message in progress never holds more than ``MAX_MESSAGE_SIZE`` bytes, however many
  fragments it comes in (issue 10 #4), and the unparsed buffer never more than one frame;
* while the program sent only valid traffic, the messages received are exactly the ones sent (a model of
  RFC 6455 §5.4 reassembly and RFC 7692 decompression is the oracle).

Run ``test_one_input`` from pytest (``tests/test_fuzz_ws_connection.py`` replays
``fuzz/corpus/ws_connection/`` and adds Hypothesis programs), or for long runs with atheris::

    python fuzz/fuzz_ws_connection.py /tmp/wsc-corpus fuzz/corpus/ws_connection -max_total_time=600

The first directory receives the new inputs libFuzzer finds; keep the checked-in corpus small.
"""

from __future__ import annotations

import codecs
import sys

from rawrt.errors import ConnectionClosed, LocalProtocolError, ProtocolError
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
from rawrt.sansio.ws.frames import RSV1, Opcode, encode_frame, is_valid_close_code

# Small, so that a fuzzer reaches the 1009 paths; different, so that each check has its own path.
MAX_MESSAGE_SIZE = 2048
MAX_FRAME_SIZE = 512
#: Header (14 bytes at most, RFC 6455 §5.2) plus one frame: the most the unparsed buffer may hold.
MAX_BUFFERED = MAX_FRAME_SIZE + 14
_KEY = b"\x01\x02\x03\x04"
_OPCODES = (Opcode.CONT.value, Opcode.TEXT.value, Opcode.BINARY.value)
_CONTROL = (Opcode.PING.value, Opcode.PONG.value, Opcode.CLOSE.value)


class _Reader:
    """Takes bytes off the program; past its end, zeros (so every program is complete)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def __bool__(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


class _Model:
    """What a correct connection receives from the traffic built so far (valid until ``valid`` is False)."""

    def __init__(self, deflate: bool) -> None:
        self.deflate = deflate
        self.valid = True
        self.messages: list[Event] = []
        self.opcode = 0
        self.compressed = False
        self.parts = bytearray()
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def frame(self, opcode: int, fin: bool, rsv1: bool, size: int) -> bool:
        """Whether a data frame is valid here (RFC 6455 §5.4, RFC 7692 §6.1); invalidates the model if not."""
        ok = (
            size <= MAX_FRAME_SIZE
            and (not rsv1 or (self.deflate and opcode != 0))
            and (opcode == 0) == bool(self.opcode)
        )
        if not ok:
            self.valid = False
        return ok

    def payload(self, opcode: int, fin: bool, rsv1: bool, data: bytes) -> None:
        if opcode:
            self.opcode, self.compressed = opcode, rsv1
            self.parts.clear()
            self.decoder.reset()
        self.parts += data
        if len(self.parts) > MAX_MESSAGE_SIZE:
            self.valid = False
            return
        if self.opcode == Opcode.TEXT.value:
            try:
                self.decoder.decode(data, fin)
            except UnicodeDecodeError:
                self.valid = False
                return
        if fin:
            done = bytes(self.parts)
            is_text = self.opcode == Opcode.TEXT.value
            self.messages.append(TextMessage(done.decode()) if is_text else BinaryMessage(done))
            self.opcode = 0


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


def _feed(conn: WebSocketConnection, wire: bytes, bytewise: bool) -> None:
    pieces = [wire[i : i + 1] for i in range(len(wire))] if bytewise else [wire] if wire else []
    for piece in pieces:
        conn.receive_data(piece)
        # Bounded memory (issue 10 #4): white-box, the two buffers the peer controls.
        assert len(conn._in_data) <= MAX_MESSAGE_SIZE, len(conn._in_data)
        assert len(conn._buf) <= MAX_BUFFERED, len(conn._buf)


def _app(conn: WebSocketConnection, op: int, data: bytes) -> str:
    """One app call; returns what happened (the exceptions allowed are part of the outcome)."""
    try:
        if op == 0:
            conn.send_text(data.decode("utf-8", "replace"))
        elif op == 1:
            conn.send_binary(data)
        elif op == 2:
            conn.send_fragment(data, text=bool(len(data) & 1), fin=bool(len(data) & 2))
        elif op == 3:
            conn.send_ping(data)
        elif op == 4:
            conn.send_pong(data)
        elif op == 5:
            conn.send_close(1000 + (len(data) % 20), data[:10].decode("ascii", "replace"))
        else:
            conn.fail(1000 + (len(data) % 20), "app")
    except (ConnectionClosed, LocalProtocolError) as exc:
        return type(exc).__name__
    return "ok"


def _run(program: bytes, bytewise: bool) -> tuple[list[Event], list[bytes], list[str], _Model]:
    reader = _Reader(program)
    flags = reader.byte()
    role = Role.CLIENT if flags & 1 else Role.SERVER
    deflate = bool(flags & 2)
    nct = bool(flags & 4)
    conn = WebSocketConnection(
        role,
        max_message_size=MAX_MESSAGE_SIZE,
        max_frame_size=MAX_FRAME_SIZE,
        mask_key=lambda: _KEY,
        extension=PerMessageDeflate(local_no_context_takeover=nct, remote_no_context_takeover=nct)
        if deflate
        else None,
    )
    # The peer's compressor: a real permessage-deflate sender with the same parameters.
    peer = PerMessageDeflate(local_no_context_takeover=nct, remote_no_context_takeover=nct)
    mask = _KEY if role is Role.SERVER else None  # RFC 6455 §5.1: only a client masks
    model = _Model(deflate)
    events: list[Event] = []
    output: list[bytes] = []
    log: list[str] = []
    wire = bytearray()

    def flush() -> None:
        _feed(conn, bytes(wire), bytewise)
        wire.clear()
        events.extend(conn.events_received())
        output.extend(conn.data_to_send())

    eof = False
    while reader and not eof:
        b = reader.byte()
        kind = b % 8
        if kind in (0, 1):  # a data frame
            opcode = _OPCODES[(b >> 5) % 3]
            fin, rsv1 = bool(b & 0x08), bool(b & 0x10)
            payload = reader.take(reader.byte())
            valid = model.valid and model.frame(opcode, fin, rsv1, len(payload))
            if valid and deflate and (rsv1 or (opcode == 0 and model.compressed)):
                body = peer.compress(payload, fin=fin)
                if len(body) > MAX_FRAME_SIZE:
                    model.valid = False
            else:
                body = payload
            if model.valid:
                model.payload(opcode, fin, rsv1, payload)
            wire += encode_frame(opcode, body, fin=fin, rsv=RSV1 if rsv1 else 0, mask_key=mask)
        elif kind == 2:  # a burst of empty continuation frames (issue 10 #4), compressed or not
            count = reader.byte() * 4
            if model.valid and not model.opcode:
                model.valid = False
            empty = encode_frame(0, b"", fin=False, mask_key=mask)
            wire += empty * count
        elif kind == 3:  # a control frame, possibly in the middle of a fragmented message (§5.4)
            opcode = _CONTROL[(b >> 3) % 3]
            payload = reader.take(reader.byte() % 130)
            if opcode == Opcode.CLOSE.value or len(payload) > 125:
                model.valid = False  # after a close, or a protocol error, no more messages
            wire += encode_frame(opcode, payload, mask_key=mask)
        elif kind == 4:  # raw bytes
            wire += reader.take(reader.byte() % 64)
            model.valid = False
        elif kind == 5:  # the app does something, between two reads
            flush()
            op = (b >> 3) % 7
            log.append(_app(conn, op, reader.take(reader.byte() % 140)))
            if op >= 5:
                model.valid = False
        elif kind == 6:  # a read boundary
            flush()
        else:
            eof = bool(b & 0x08)
    flush()
    failure = conn.failure
    if failure is not None and not isinstance(failure, ProtocolError):
        raise failure  # a bug: the connection answered it with 1011, the fuzzer must see it
    conn.receive_eof()
    output.extend(conn.data_to_send())
    assert conn.state is State.CLOSED
    assert output and output[-1] == b"", output
    assert conn.events_received() == []
    log.append(f"{type(failure).__name__}: {failure}" if failure else f"closed {conn.close_code}")
    return events, output, log, model


def test_one_input(data: bytes) -> None:
    """Check the invariants above on the program ``data``; raise AssertionError (or the bug) if one breaks."""
    events, output, log, model = _run(data, bytewise=False)
    assert (events, output, log) == _run(data, bytewise=True)[:3], data
    for event in events:
        _check_event(event)
    if model.valid:
        received = [e for e in events if isinstance(e, TextMessage | BinaryMessage)]
        assert received == model.messages, (received, model.messages)


def main(argv: list[str]) -> None:  # pragma: no cover - needs atheris, run by hand or by OSS-Fuzz
    import atheris

    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
