# The WebSocket connection (RFC 6455 §5-§7, with RFC 7692 compression): frames in, messages out.
#
# Contract (the same surface as every sans-IO object in rawrt):
#   * ``receive_data(data)`` / ``receive_eof()`` never raise. Every protocol error is turned into a close
#     code in exactly one ``except`` chain (``_receive``): the connection sends a close frame with that
#     code, closes its write side if it is the server, stops parsing (the parser becomes a discarder),
#     and records the exception in ``failure`` for the adapter to log.
#   * ``events_received()`` returns complete messages, pings, pongs and the peer's close, in order.
#   * ``data_to_send()`` returns the bytes to write, including the automatic answers (pong to a ping,
#     close echo); ``b""`` means "close the write side" (shut down TCP).
#   * ``send_*`` methods raise ``ConnectionClosed`` when the state forbids sending (after a close),
#     and ``LocalProtocolError`` when the request itself is invalid (e.g. a 126-byte ping).
#
# The opening handshake is not here (handshake.py): a connection starts OPEN. The states and every
# transition are in states.py's ``TRANSITIONS``, and only there; the events are in events.py. Both are
# re-exported here.
#
# Closing (§7.1): after a close frame has been both sent and received, the server closes TCP first
# (§7.1.1: "the underlying TCP connection, in most normal cases, SHOULD be closed first by the
# server"), so a server's output ends with ``b""`` then; a client waits for the server's EOF (the
# asyncio layer bounds that wait with ``Limits.ws_close_timeout``) and closes its side on EOF.

from __future__ import annotations

import codecs
from collections.abc import Callable

from rawrt.errors import ConnectionClosed, LocalProtocolError, ProtocolError, RemoteProtocolError, printable
from rawrt.limits import DEFAULT_LIMITS, Limits

from .deflate import PerMessageDeflate
from .events import BinaryMessage, CloseReceived, Event, Ping, Pong, TextMessage
from .frames import (
    FIN,
    MAX_CONTROL_PAYLOAD,
    RSV1,
    BytesLike,
    CloseCode,
    FrameReader,
    Opcode,
    encode_close,
    encode_frame,
    parse_close,
)
from .states import TRANSITIONS, Input, Role, State, state_diagram

__all__ = [
    "Role",
    "State",
    "Input",
    "TRANSITIONS",
    "TextMessage",
    "BinaryMessage",
    "Ping",
    "Pong",
    "CloseReceived",
    "Event",
    "WebSocketConnection",
    "state_diagram",
]

_TEXT = Opcode.TEXT.value
_BINARY = Opcode.BINARY.value
_CLOSE = Opcode.CLOSE.value
_PING = Opcode.PING.value
_UTF8_DECODER = codecs.getincrementaldecoder("utf-8")


def _utf8_error(exc: UnicodeDecodeError) -> RemoteProtocolError:
    """§8.1: text that is not UTF-8 fails the connection with 1007."""
    bad = exc.object[exc.start : exc.end]
    return RemoteProtocolError(f"invalid UTF-8 in text: {exc.reason} {printable(bad)}", close_code=1007)


def _detach(exc: BaseException) -> BaseException:
    """``exc``, and the exceptions chained to it, made safe to keep in ``failure`` (issue 10 #2).

    A traceback holds its frames, and the frames hold their locals: the inflated output of a deflate bomb, a
    fragment, the received chunk, and ``self``, which holds ``failure``: a reference cycle that keeps all of
    it until a full garbage collection. So a peer's error (a ``ProtocolError``, whose message says all there
    is to say) keeps no traceback at all; a bug keeps its traceback for the adapter's log, with every frame
    that has returned cleared of its locals (the frames still running cannot be cleared: they hold only the
    chunk being parsed and the connection, whose message buffers ``_after_close`` empties). A context that
    ``raise ... from None`` suppressed is never shown, so it is dropped (a ``UnicodeDecodeError`` holds
    the whole message it was decoding).
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, ProtocolError):
            link.__traceback__ = None
        else:
            tb = link.__traceback__
            while tb is not None:
                try:
                    tb.tb_frame.clear()
                except RuntimeError:  # a frame still running (receive_data's own)
                    pass
                tb = tb.tb_next
        if link.__suppress_context__:
            link.__context__ = None
        link = link.__cause__ if link.__cause__ is not None else link.__context__
    return exc


def _discard(conn: WebSocketConnection, data: BytesLike) -> None:
    """The parser once CLOSED: drop everything."""


def _truncate_reason(reason: str) -> str:
    """Cut ``reason`` to the 123 UTF-8 bytes a close frame can carry, on a character boundary."""
    return reason.encode()[:123].decode("utf-8", "ignore")


#: The most pongs queued back to back before the last is replaced by the most recent ping's (§5.5.3).
_MAX_PONG_RUN = 16


class WebSocketConnection:
    """One WebSocket connection after the opening handshake (RFC 6455 §5-§7).

    Args:
        role: ``Role.SERVER`` or ``Role.CLIENT``.
        limits: where ``ws_max_message_size`` and ``ws_max_frame_size`` come from.
        max_message_size: overrides ``limits.ws_max_message_size`` (bytes after reassembly and
            decompression; crossing it closes with 1009).
        max_frame_size: overrides ``limits.ws_max_frame_size`` (declared payload length of one frame,
            checked before the payload is read; 1009).
        mask_key: returns 4 fresh random bytes per frame; required for a client (§5.3: "MUST pick a
            fresh masking key from the set of allowed 32-bit values"), ignored for a server. Pass
            ``lambda: secrets.token_bytes(4)`` in production and a constant in tests.
        extension: the permessage-deflate state negotiated by the handshake, or None.

    Attributes:
        role: as given.
        state: the current :class:`State`.
        close_sent: ``(code, reason)`` of the close frame we sent, if any (1005: empty payload).
        close_received: the peer's close frame, if any.
        failure: the exception that failed the connection, if it failed: a ``ProtocolError`` for a
            peer's fault, anything else for a bug (sent as 1011 without details). Log it.
    """

    #: The last pong queued in the output, while it is still there (not yet taken by ``data_to_send``), and
    #: how many pongs precede it back to back. Class attributes until the first ping, so a connection that is
    #: never pinged carries no extra field.
    _queued_pong: bytes | None = None
    _pong_run = 0

    def __init__(
        self,
        role: Role,
        *,
        limits: Limits = DEFAULT_LIMITS,
        max_message_size: int | None = None,
        max_frame_size: int | None = None,
        mask_key: Callable[[], bytes] | None = None,
        extension: PerMessageDeflate | None = None,
    ) -> None:
        if role is Role.CLIENT and mask_key is None:
            raise ValueError("a client needs a mask_key callable (RFC 6455 §5.3)")
        self.role = role
        self.state = State.OPEN
        self.max_message_size = limits.ws_max_message_size if max_message_size is None else max_message_size
        self.max_frame_size = limits.ws_max_frame_size if max_frame_size is None else max_frame_size
        self.extension = extension
        self.close_sent: tuple[int, str] | None = None
        self.close_received: CloseReceived | None = None
        self.failure: BaseException | None = None
        self._mask_key = mask_key if role is Role.CLIENT else None
        # Neither masking nor compression: a whole message is one encode_frame() call.
        self._plain_server = role is Role.SERVER and extension is None
        self._reader = FrameReader(
            mask_expected=role is Role.SERVER,
            max_frame_size=self.max_frame_size,
            budget=self.max_message_size,
            rsv_allowed=RSV1 if extension is not None else 0,
        )
        self._buf = bytearray()  # the unparsed tail of what was received; usually empty
        self._events: list[Event] = []
        self._out: list[bytes] = []
        self._eof_received = False
        self._eof_sent = False
        # Receiving a fragmented message (§5.4): its opcode (0 = none in progress), whether its first
        # frame had RSV1 (RFC 7692 §6), and its payload so far. The payload is one bytearray that each
        # fragment is appended to, never a list of fragments: §5.4 puts no bound on how many fragments a
        # message has, and empty ones (or compressed ones that inflate to nothing) would each cost a list
        # slot (40 M of them held 333 MiB against a 1 MiB message limit, issue 10 #4). Appended, they cost
        # nothing, so a message in progress holds at most ``max_message_size`` bytes (plus the bytearray's
        # over-allocation) however it is cut, with no fragment-count limit to tune or to break a peer that
        # streams in small pieces. Text is appended as received and validated as it arrives by
        # ``_decoder`` (whose output is dropped); it is decoded once, whole, at the end.
        self._in_opcode = 0
        self._in_compressed = False
        self._in_data = bytearray()
        self._decoder = _UTF8_DECODER()
        # The frame parser; replaced by a discarder once the connection is closed (§7.1.7: "MUST NOT
        # continue to attempt to process data ... after being instructed to _Fail the WebSocket
        # Connection_"; §5.5.1: nothing after a close frame is a frame). A plain function, called with
        # ``self``: a bound method stored on ``self`` would be a reference cycle, and would keep every
        # dropped connection (its buffers, its zlib state) alive until a garbage collection (issue 10 #2).
        self._parse: Callable[[WebSocketConnection, BytesLike], None] = WebSocketConnection._receive
        # Sending a fragmented message: its opcode (0 = none in progress) and whether it is compressed.
        self._out_opcode = 0

    # --- State ----------------------------------------------------------------------------------------

    def _transition(self, event: Input) -> None:
        """Move along ``TRANSITIONS``; an illegal local input raises ``ConnectionClosed``."""
        after = TRANSITIONS.get((self.state, event))
        if after is None:
            raise ConnectionClosed(self.close_code, self.close_reason)
        self.state = after

    @property
    def close_code(self) -> int:
        """The code to report to the app: the peer's close code, or 1006 if it sent none (§7.1.5)."""
        received = self.close_received
        return CloseCode.ABNORMAL_CLOSURE if received is None else received.code

    @property
    def close_reason(self) -> str:
        """The peer's close reason, or ``""``."""
        received = self.close_received
        return "" if received is None else received.reason

    # --- The sans-IO surface --------------------------------------------------------------------------

    def receive_data(self, data: BytesLike) -> None:
        """Feed bytes received from the peer. Never raises; see the module contract.

        Args:
            data: any number of bytes, cut anywhere.
        """
        # The one place where errors become close codes (STYLE §4).
        try:
            self._parse(self, data)
        except ProtocolError as exc:
            self._fail(exc.close_code, str(exc), _detach(exc))
        except Exception as exc:  # a bug: 1011, and no details for the peer (§7.4.1)
            self._fail(CloseCode.INTERNAL_ERROR, "", _detach(exc))

    def receive_eof(self) -> None:
        """Tell the connection that the peer closed its write side. Never raises.

        Without a prior close frame this is an abnormal closure (``close_code`` 1006, §7.1.5). Our
        write side is closed too, unless it already is.
        """
        if self._eof_received:
            return
        self._eof_received = True
        self._transition(Input.RECV_EOF)  # legal in every state
        self._buf.clear()
        self._send_eof()

    def events_received(self) -> list[Event]:
        """Return (and forget) the events parsed so far, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return (and forget) the bytes to write, in order; ``b""`` means: close the write side."""
        out, self._out = self._out, []
        return out

    # --- Receiving ------------------------------------------------------------------------------------

    def _receive(self, data: BytesLike) -> None:
        # Parse straight from ``data`` when nothing is buffered (the common case: whole frames per
        # read), so a small message costs no copy into the buffer.
        buf = self._buf
        if buf:
            buf += data
            src: BytesLike = buf
        else:
            src = data
        read = self._reader.maybe_read
        offset = 0
        while (frame := read(src, offset)) is not None:
            b0, payload, offset = frame
            opcode = b0 & 0x0F
            # Fast path: a whole, uncompressed, unfragmented message.
            if b0 & 0xF0 == FIN and not self._in_opcode and (opcode == _TEXT or opcode == _BINARY):
                if opcode == _TEXT:
                    try:
                        text = payload.decode()
                    except UnicodeDecodeError as exc:
                        raise _utf8_error(exc) from None
                    self._events.append(TextMessage(text))
                else:
                    self._events.append(BinaryMessage(payload))
            elif opcode >= 8:
                self._receive_control(b0, opcode, payload)
                if self.state is State.CLOSED:
                    return  # the rest of the chunk is discarded (§5.5.1)
            else:
                self._receive_fragment(b0, opcode, payload)
        if src is buf:
            del buf[:offset]
        elif offset < len(data):
            buf += data[offset:]

    def _receive_fragment(self, b0: int, opcode: int, payload: bytes) -> None:
        """Any data frame but a whole uncompressed message: start, continue or end a message (§5.4)."""
        fin = b0 & FIN
        if opcode:  # TEXT or BINARY: a new message
            if self._in_opcode:
                raise RemoteProtocolError("new data frame while a fragmented message is in progress")
            self._in_opcode = opcode
            self._in_compressed = bool(b0 & RSV1)
            if opcode == _TEXT:
                self._decoder.reset()
        else:
            if not self._in_opcode:
                raise RemoteProtocolError("continuation frame without a message to continue")
            if b0 & RSV1:
                # RFC 7692 §6.1: RSV1 is set on the first frame of a compressed message only.
                raise RemoteProtocolError("RSV1 set on a continuation frame")
        in_data = self._in_data
        if self._in_compressed:
            assert self.extension is not None  # the reader refuses RSV1 without it
            payload = self.extension.decompress(
                payload, fin=bool(fin), max_length=self.max_message_size - len(in_data)
            )
        if self._in_opcode == _TEXT:
            # Validate as the fragments arrive, so invalid UTF-8 fails at the first bad fragment
            # (Autobahn 6.4.x "fail fast") instead of at the end of a long message.
            try:
                self._decoder.decode(payload, bool(fin))
            except UnicodeDecodeError as exc:
                raise _utf8_error(exc) from None
        in_data += payload
        if fin:
            if self._in_opcode == _TEXT:
                self._events.append(TextMessage(in_data.decode()))  # valid: checked above
            else:
                self._events.append(BinaryMessage(bytes(in_data)))
            in_data.clear()  # frees its buffer: an idle connection holds no message memory
            self._in_opcode = 0
            self._reader.budget = self.max_message_size
        elif self._in_compressed:
            # The inflater bounds compressed messages; continuation frames carry no RSV1 for the
            # reader to recognise them by, so lift the reader's budget to the frame limit.
            self._reader.budget = self.max_frame_size
        else:
            self._reader.budget = self.max_message_size - len(in_data)

    def _receive_control(self, b0: int, opcode: int, payload: bytes) -> None:
        """A close, ping or pong (§5.5); may be interleaved with a fragmented message's frames."""
        if b0 & RSV1:
            raise RemoteProtocolError("RSV1 set on a control frame")  # RFC 7692 §6.1
        if opcode == _CLOSE:
            code, reason = parse_close(payload)
            received = self.close_received = CloseReceived(code, reason)
            self._events.append(received)
            was_open = self.state is State.OPEN
            self._transition(Input.RECV_CLOSE)
            if was_open:
                # §5.5.1: answer with a close frame, "typically echo[ing] the status code it received";
                # an empty close (1005) is answered with an empty close.
                self._write_close(code, "")
            self._after_close()
        elif opcode == _PING:
            self._events.append(Ping(payload))
            # §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response". §5.5.3:
            # one that "has not yet sent Pong frame(s) in response to previous Ping frame(s) ... MAY elect to
            # send a Pong frame for only the most recently processed Ping frame". Each ping gets its pong up
            # to _MAX_PONG_RUN pongs queued back to back (Autobahn 2.10 expects all ten of ten); past that,
            # a flood read in one batch has its last pong replaced by the most recent ping's, so the output
            # holds at most _MAX_PONG_RUN pongs however many pings the batch held.
            out = self._out
            if out and out[-1] is self._queued_pong:
                if self._pong_run >= _MAX_PONG_RUN:
                    out.pop()
                else:
                    self._pong_run += 1
            else:
                self._pong_run = 1
            self._send_frame(Opcode.PONG, payload, Input.SEND_CONTROL)
            self._queued_pong = self._out[-1]
        else:
            self._events.append(Pong(payload))

    def _after_close(self) -> None:
        """Entered CLOSED: stop parsing, and as a server close TCP first (§7.1.1)."""
        self._parse = _discard
        self._buf.clear()
        self._in_data.clear()
        if self.role is Role.SERVER:
            self._send_eof()

    def _fail(self, code: int, reason: str, exc: BaseException | None) -> None:
        """Fail the WebSocket connection (§7.1.7), sending ``code`` unless the state forbids it."""
        self.failure = exc
        was_open = self.state is State.OPEN
        self._transition(Input.FAIL)
        # §7.1.7: "the endpoint SHOULD send a Close frame ... before proceeding"; in CLOSING ours is
        # already out, and 1006 means "no close frame" by definition (§7.4.1).
        if was_open and code != CloseCode.ABNORMAL_CLOSURE:
            self._write_close(code, _truncate_reason(reason))
        self._after_close()

    # --- Sending --------------------------------------------------------------------------------------

    def _send_frame(
        self, opcode: int, payload: BytesLike, event: Input, *, fin: bool = True, rsv: int = 0
    ) -> None:
        """Take the ``event`` transition, then write the frame."""
        self._transition(event)
        self._write_frame(opcode, payload, fin, rsv)

    def _write_frame(self, opcode: int, payload: BytesLike, fin: bool = True, rsv: int = 0) -> None:
        """Encode a frame into the output; the caller has taken the transition."""
        if self._mask_key is None:
            self._out.append(encode_frame(opcode, payload, fin=fin, rsv=rsv))
            return
        key = self._mask_key()
        if len(key) != 4:
            raise LocalProtocolError(f"mask_key() returned {len(key)} bytes, expected 4")
        self._out.append(encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=key))

    def _write_close(self, code: int, reason: str) -> None:
        self._write_frame(Opcode.CLOSE, encode_close(code, reason))
        self.close_sent = (code, reason)

    def _send_eof(self) -> None:
        if not self._eof_sent:
            self._eof_sent = True
            self._out.append(b"")

    def _send_data(self, opcode: int, payload: BytesLike, fin: bool) -> None:
        """Send one data frame, compressing it when an extension was negotiated."""
        if self.extension is None:
            self._send_frame(opcode, payload, Input.SEND_DATA, fin=fin)
            return
        # The transition is checked before compressing, so a refused send leaves the compressor's
        # context untouched.
        if (self.state, Input.SEND_DATA) not in TRANSITIONS:
            raise ConnectionClosed(self.close_code, self.close_reason)
        data = self.extension.compress(payload, fin=fin)
        # RFC 7692 §6: RSV1 marks the first frame of a compressed message, and only that one.
        self._send_frame(opcode, data, Input.SEND_DATA, fin=fin, rsv=RSV1 if opcode else 0)

    def _check_no_fragment(self) -> None:
        if self._out_opcode:
            # §5.4: "the fragments of one message MUST NOT be interleaved between the fragments of
            # another message".
            raise LocalProtocolError("a fragmented message is in progress; finish it with send_fragment")

    def send_text(self, text: str) -> None:
        """Send a text message in one frame.

        Args:
            text: the message.

        Raises:
            ConnectionClosed: a close frame was already sent or the connection is closed.
            LocalProtocolError: a fragmented message is being sent.
        """
        if self.state is State.OPEN and not self._out_opcode and self._plain_server:
            # The common case is the (OPEN, SEND_DATA) -> OPEN row of TRANSITIONS, taken without looking the
            # table up (docs/topics/performance.md).
            self._out.append(encode_frame(_TEXT, text.encode()))
            return
        self._check_no_fragment()
        self._send_data(_TEXT, text.encode(), True)

    def send_binary(self, data: BytesLike) -> None:
        """Send a binary message in one frame.

        Args:
            data: the message.

        Raises:
            ConnectionClosed: a close frame was already sent or the connection is closed.
            LocalProtocolError: a fragmented message is being sent.
        """
        if self.state is State.OPEN and not self._out_opcode and self._plain_server:
            self._out.append(encode_frame(_BINARY, data))  # the common case, as in send_text
            return
        self._check_no_fragment()
        self._send_data(_BINARY, data, True)

    def send_fragment(self, data: str | BytesLike, *, text: bool, fin: bool) -> None:
        """Send one frame of a fragmented message (§5.4), to stream a message of unknown size.

        The first call starts a message (TEXT or BINARY as ``text`` says); later calls continue it
        (CONT frames) until one passes ``fin=True``. Pings, pongs and a close may be sent in between.

        Args:
            data: this fragment; ``str`` is encoded to UTF-8. Text fragments given as bytes may split a
                character; the whole message must be valid UTF-8.
            text: the message type; must be the same on every fragment.
            fin: this is the last fragment.

        Raises:
            ConnectionClosed: a close frame was already sent or the connection is closed.
            LocalProtocolError: ``text`` differs from the message in progress.
        """
        opcode = _TEXT if text else _BINARY
        if self._out_opcode and self._out_opcode != opcode:
            raise LocalProtocolError("fragment type differs from the message in progress")
        payload = data.encode() if isinstance(data, str) else data
        self._send_data(0 if self._out_opcode else opcode, payload, fin)
        self._out_opcode = 0 if fin else opcode

    def send_encoded(self, frame: bytes) -> None:
        """Send a frame encoded beforehand with :func:`~rawrt.sansio.ws.frames.encode_frame`.

        For broadcasts: encode a message once (unmasked, so server role only), then hand the same
        bytes to every connection. The frame is sent uncompressed even if permessage-deflate was
        negotiated, which RFC 7692 §6 allows (RSV1 clear means "not compressed").

        Args:
            frame: one complete, unmasked, non-fragmented TEXT or BINARY frame.

        Raises:
            ConnectionClosed: a close frame was already sent or the connection is closed.
            LocalProtocolError: we are a client (frames must be masked with a fresh key), or a
                fragmented message is being sent.
        """
        if self.role is Role.CLIENT:
            raise LocalProtocolError("a client must mask each frame with a fresh key (RFC 6455 §5.3)")
        self._check_no_fragment()
        self._transition(Input.SEND_DATA)
        self._out.append(frame)

    def send_ping(self, payload: BytesLike = b"") -> None:
        """Send a ping (§5.5.2); the peer answers with a pong carrying the same payload.

        Raises:
            ConnectionClosed: the connection is closed.
            LocalProtocolError: the payload is over 125 bytes.
        """
        self._send_control(Opcode.PING, payload)

    def send_pong(self, payload: BytesLike = b"") -> None:
        """Send an unsolicited pong, a one-way heartbeat (§5.5.3). Pings are answered automatically.

        Raises:
            ConnectionClosed: the connection is closed.
            LocalProtocolError: the payload is over 125 bytes.
        """
        self._send_control(Opcode.PONG, payload)

    def _send_control(self, opcode: Opcode, payload: BytesLike) -> None:
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise LocalProtocolError(f"control frame payload of {len(payload)} bytes, at most 125")
        self._send_frame(opcode, payload, Input.SEND_CONTROL)

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (§7.1.2): send a close frame, then wait for the peer's.

        Args:
            code: a close code valid on the wire (§7.4), or 1005 to send an empty close frame.
            reason: UTF-8 text, at most 123 bytes encoded.

        Raises:
            ConnectionClosed: a close frame was already sent or the connection is closed.
            LocalProtocolError: the code cannot be sent or the reason is too long.
        """
        payload = encode_close(code, reason)  # validate before changing anything
        self._transition(Input.SEND_CLOSE)
        self._write_frame(Opcode.CLOSE, payload)
        self.close_sent = (code, reason)

    def fail(self, code: int = CloseCode.POLICY_VIOLATION, reason: str = "") -> None:
        """Fail the connection at the app's request (§7.1.7): send a close if possible, then stop.

        Unlike :meth:`send_close`, this does not wait for the peer's close: nothing more is parsed, and
        a server closes TCP at once. Calling it on a closed connection does nothing.

        Args:
            code: the close code to send; 1006 sends no close frame at all (just drop TCP).
            reason: sent as is, cut to 123 bytes.

        Raises:
            LocalProtocolError: the code cannot be sent (1015, or outside §7.4's ranges), or 1005 (an empty
                close frame) was given a reason, which it cannot carry.
        """
        if self.state is State.CLOSED:
            return
        if code != CloseCode.ABNORMAL_CLOSURE:
            # Validate what will be sent, reason included, before changing anything: a close frame refused
            # after the transition would leave the connection CLOSED with its parser still running (found by
            # fuzz/fuzz_ws_connection.py: ``fail(1005, "app")``).
            encode_close(code, _truncate_reason(reason))
        self._fail(code, reason, None)
