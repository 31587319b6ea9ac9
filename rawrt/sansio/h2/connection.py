"""An HTTP/2 server connection, sans I/O (RFC 9113): bytes in, events out.

Contract
--------
:class:`H2Connection` is the server side of one HTTP/2 connection. The adapter:

1. calls :meth:`~H2Connection.initiate` once (our SETTINGS, and the connection window we grant);
2. feeds every chunk it reads to :meth:`~H2Connection.receive_data`, which returns the events the chunk
   completed (:class:`RequestReceived`, :class:`DataReceived`, :class:`TrailersReceived`,
   :class:`StreamReset`, :class:`WindowUpdated`, :class:`ConnectionTerminated`);
3. answers with :meth:`~H2Connection.send_headers`, :meth:`~H2Connection.send_data` (never more than
   :meth:`~H2Connection.send_window` allows: flow control, §5.2) and :meth:`~H2Connection.reset_stream`,
   gives back receive window with :meth:`~H2Connection.acknowledge_received_data` as the application consumes
   a body (so a slow reader stalls its own stream, not the connection, and memory stays bounded), and
   ends with :meth:`~H2Connection.close` (GOAWAY);
4. writes :meth:`~H2Connection.data_to_send` after each call.

Peer errors never raise out of :meth:`~H2Connection.receive_data`. A stream error (§5.4.2) becomes a
RST_STREAM and a :class:`StreamReset` event (``remote=False``); a connection error (§5.4.1) becomes a
GOAWAY and a final :class:`ConnectionTerminated`, after which the connection takes no more input and the
adapter closes the socket once the GOAWAY is written. Calling a send method wrongly (a closed stream, more
data than the window) is a bug in the caller: :class:`~rawrt.errors.LocalProtocolError`.

What is decided here, and where the RFC leaves a choice:

* **Stream states** are one table, :data:`TRANSITIONS` (§5.1; a server never pushes, so the reserved
  states do not exist).
* **Message rules** (§8.1-§8.3): pseudo-header fields, lowercase names, forbidden connection-specific
  fields, ``te``, field values, ``content-length`` against the DATA received, trailers. A malformed
  request is a stream error of type PROTOCOL_ERROR (§8.1.1).
* **Extended CONNECT** (RFC 8441): ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` is advertised, and a CONNECT with
  ``:protocol`` is a request like another, for the adapter to serve (a WebSocket).
* **Limits**, each from :class:`~rawrt.limits.Limits`: concurrent streams (REFUSED_STREAM past
  ``h2_max_concurrent_streams``, which is safe for the client to retry, §8.7); the decoded header list
  (431, the connection goes on, §10.5.1); a header block's compressed size and its number of CONTINUATION
  frames (ENHANCE_YOUR_CALM: the CONTINUATION floods of 2024); streams the client resets before they are
  answered (ENHANCE_YOUR_CALM past ``h2_max_reset_streams`` more than it let finish: "rapid reset",
  CVE-2023-44487); the receive windows (FLOW_CONTROL_ERROR past them, §6.9.1).
* Priority signals (deprecated, §5.3.2) are read and ignored.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TypeAlias

from rawrt.errors import (
    H2ConnectionError,
    H2StreamError,
    HeaderListTooLarge,
    HPACKError,
    LocalProtocolError,
)
from rawrt.limits import DEFAULT_LIMITS, Limits

from .frames import (
    MAX_WINDOW_SIZE,
    PREFACE,
    BytesLike,
    ContinuationFrame,
    DataFrame,
    ErrorCode,
    Frame,
    FrameReader,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingCode,
    SettingsFrame,
    UnknownFrame,
    WindowUpdateFrame,
    split_data,
    split_header_block,
)
from .hpack import Decoder, Encoder

__all__ = [
    "H2Connection",
    "StreamState",
    "StreamEvent",
    "TRANSITIONS",
    "Event",
    "RequestReceived",
    "DataReceived",
    "TrailersReceived",
    "StreamReset",
    "WindowUpdated",
    "ConnectionTerminated",
    "Headers",
]

#: A header list as the application sees it: ``(name, value)`` pairs, names lowercase.
Headers: TypeAlias = list[tuple[bytes, bytes]]

#: The connection window every peer starts with (§6.9.2); only WINDOW_UPDATE changes it.
INITIAL_CONNECTION_WINDOW = 65_535
#: The initial SETTINGS_INITIAL_WINDOW_SIZE and SETTINGS_HEADER_TABLE_SIZE (§6.5.2), in force until the
#: peer has our SETTINGS.
INITIAL_STREAM_WINDOW = 65_535
INITIAL_HEADER_TABLE_SIZE = 4096


# --- events ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request's header block (§8.1): pseudo-header fields first, validated (§8.3.1)."""

    stream_id: int
    headers: Headers
    end_stream: bool  # no body follows


@dataclass(frozen=True, slots=True)
class DataReceived:
    """A piece of a request body. Give ``flow_controlled_length`` back with ``acknowledge_received_data``
    once the application has consumed it (padding is given back at once, here)."""

    stream_id: int
    data: bytes
    flow_controlled_length: int
    end_stream: bool


@dataclass(frozen=True, slots=True)
class TrailersReceived:
    """The trailer section (§8.1): it always ends the request."""

    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The stream is over before its time: the peer sent RST_STREAM (``remote``), or we did, for a stream
    error of the peer's (``remote=False``: ``message`` says which rule it broke)."""

    stream_id: int
    error_code: int
    remote: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class WindowUpdated:
    """More may be sent on ``stream_id`` (0: on every stream: the connection window or the initial window
    grew)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """GOAWAY: from the peer (``remote``), or ours for a connection error (``remote=False``). After a
    connection error nothing more is read; after the peer's graceful GOAWAY the open streams go on."""

    error_code: int
    last_stream_id: int
    remote: bool
    message: str = ""


Event: TypeAlias = (
    RequestReceived | DataReceived | TrailersReceived | StreamReset | WindowUpdated | ConnectionTerminated
)


# --- stream states (§5.1) ----------------------------------------------------------------------------------


class StreamState(Enum):
    IDLE = auto()
    OPEN = auto()
    HALF_CLOSED_LOCAL = auto()  # we sent END_STREAM; the request may still send
    HALF_CLOSED_REMOTE = auto()  # the request ended; we may still send
    CLOSED = auto()


class StreamEvent(Enum):
    RECV_HEADERS = auto()
    RECV_END_STREAM = auto()
    RECV_RST = auto()
    SEND_HEADERS = auto()
    SEND_END_STREAM = auto()
    SEND_RST = auto()


_S, _E = StreamState, StreamEvent

#: §5.1's diagram for a server, as (state, event) -> new state. A pair that is missing is a frame the state
#: does not allow; the caller decides whether that is the peer's error or ours.
TRANSITIONS: dict[tuple[StreamState, StreamEvent], StreamState] = {
    (_S.IDLE, _E.RECV_HEADERS): _S.OPEN,
    (_S.OPEN, _E.RECV_HEADERS): _S.OPEN,  # trailers (they carry END_STREAM, handled as RECV_END_STREAM)
    (_S.OPEN, _E.RECV_END_STREAM): _S.HALF_CLOSED_REMOTE,
    (_S.OPEN, _E.SEND_HEADERS): _S.OPEN,
    (_S.OPEN, _E.SEND_END_STREAM): _S.HALF_CLOSED_LOCAL,
    (_S.OPEN, _E.RECV_RST): _S.CLOSED,
    (_S.OPEN, _E.SEND_RST): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _E.RECV_HEADERS): _S.HALF_CLOSED_LOCAL,
    (_S.HALF_CLOSED_LOCAL, _E.RECV_END_STREAM): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _E.RECV_RST): _S.CLOSED,
    (_S.HALF_CLOSED_LOCAL, _E.SEND_RST): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _E.SEND_HEADERS): _S.HALF_CLOSED_REMOTE,
    (_S.HALF_CLOSED_REMOTE, _E.SEND_END_STREAM): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _E.RECV_RST): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _E.SEND_RST): _S.CLOSED,
}


@dataclass(slots=True)
class _Stream:
    stream_id: int
    send_window: int
    recv_window: int
    state: StreamState = StreamState.IDLE
    recv_unacked: int = 0  # consumed by the application, not yet given back with WINDOW_UPDATE
    content_length: int | None = None  # what the request announced (§8.1.1)
    received: int = 0  # DATA octets received (without padding)
    answered: bool = False  # we sent a final response's HEADERS

    def move(self, event: StreamEvent) -> None:
        # Every caller has checked the state first (a frame the state does not allow is answered before
        # this), so a missing pair is a bug here, and the KeyError says so.
        self.state = TRANSITIONS[(self.state, event)]


# --- §8 message rules --------------------------------------------------------------------------------------

#: §8.2.2: connection-specific fields have no place in HTTP/2 ("MUST NOT generate"; "MUST treat ... as
#: malformed").
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
#: §8.2.1: a name may not hold 0x00-0x20, 0x41-0x5a (uppercase: names are lowercase in HTTP/2) or 0x7f-0xff,
#: nor be empty (after the ':' of a pseudo-header). One regex per field rather than a loop over its octets:
#: every field of every request passes here.
_NAME = re.compile(rb"(?::|(?=[^:]))[^\x00-\x20A-Z\x7f-\xff]+")
#: §8.2.1: nor a value NUL, CR or LF, nor start or end with SP or HTAB.
_VALUE = re.compile(rb"(?:[^\x00\r\n \t](?:[^\x00\r\n]*[^\x00\r\n \t])?)?")


def _check_name(name: bytes, stream_id: int) -> None:
    if _NAME.fullmatch(name) is None:
        raise _malformed(stream_id, f"field name {name[:40]!r} is not a lowercase token (RFC 9113 §8.2.1)")


def _check_value(name: bytes, value: bytes, stream_id: int) -> None:
    if _VALUE.fullmatch(value) is None:
        raise _malformed(
            stream_id,
            f"field {name[:40]!r} has a value with NUL, CR, LF or surrounding whitespace (RFC 9113 §8.2.1)",
        )


def _malformed(stream_id: int, message: str) -> H2StreamError:
    return H2StreamError(stream_id, ErrorCode.PROTOCOL_ERROR, f"malformed request: {message}")


def validate_request(headers: Headers, stream_id: int, *, connect_protocol: bool) -> int | None:
    """Check a request's header list (§8.2, §8.3.1; RFC 8441 §4); its ``content-length``, if any.

    Raises:
        H2StreamError: PROTOCOL_ERROR, with the rule the request broke.
    """
    pseudo: dict[bytes, bytes] = {}
    regular_seen = False
    content_length: int | None = None
    for name, value in headers:
        _check_name(name, stream_id)
        _check_value(name, value, stream_id)
        if name.startswith(b":"):
            if regular_seen:
                raise _malformed(stream_id, f"pseudo-header {name!r} after a regular field (§8.3)")
            if name not in _REQUEST_PSEUDO or (name == b":protocol" and not connect_protocol):
                raise _malformed(stream_id, f"unknown pseudo-header {name!r} in a request (§8.3)")
            if name in pseudo:
                raise _malformed(stream_id, f"pseudo-header {name!r} twice (§8.3)")
            pseudo[name] = value
            continue
        regular_seen = True
        if name in _CONNECTION_SPECIFIC:
            raise _malformed(stream_id, f"connection-specific field {name!r} (§8.2.2)")
        if name == b"te" and value.lower() != b"trailers":
            raise _malformed(stream_id, f"te: {value[:40]!r}; only 'trailers' is allowed (§8.2.2)")
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise _malformed(stream_id, f"content-length {value[:40]!r} is not a number (§8.1.1)")
            if content_length is not None and int(value) != content_length:
                raise _malformed(stream_id, "two different content-length values (§8.1.1)")
            content_length = int(value)
    method = pseudo.get(b":method")
    if method is None:
        raise _malformed(stream_id, "no :method (§8.3.1)")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        # §8.5: a plain CONNECT names only the authority to tunnel to.
        if b":scheme" in pseudo or b":path" in pseudo or b":authority" not in pseudo:
            raise _malformed(stream_id, "CONNECT takes :authority and neither :scheme nor :path (§8.5)")
        return content_length
    if b":protocol" in pseudo and method != b"CONNECT":
        raise _malformed(stream_id, ":protocol with a method other than CONNECT (RFC 8441 §4)")
    for required in (b":scheme", b":path"):
        if not pseudo.get(required):
            raise _malformed(stream_id, f"no {required.decode()} (§8.3.1)")
    if b":protocol" in pseudo and b":authority" not in pseudo:
        raise _malformed(stream_id, "extended CONNECT without :authority (RFC 8441 §4)")
    path = pseudo[b":path"]
    if not path.startswith(b"/") and not (path == b"*" and method == b"OPTIONS"):
        raise _malformed(stream_id, f":path {path[:40]!r} is neither absolute nor '*' for OPTIONS (§8.3.1)")
    return content_length


def _check_response(headers: Headers) -> None:
    """Our own answer's header list: a bug in the caller if it breaks §8.2 or §8.3.2."""
    if not headers or headers[0][0] != b":status" or not headers[0][1].isdigit():
        raise LocalProtocolError("a response's header list starts with :status (RFC 9113 §8.3.2)")
    for name, _value in headers[1:]:
        if name.startswith(b":") or name in _CONNECTION_SPECIFIC or name != name.lower():
            raise LocalProtocolError(f"field {name!r} cannot be sent in HTTP/2 (RFC 9113 §8.2)")


# --- the connection ----------------------------------------------------------------------------------------


@dataclass
class _Block:
    """A header block being reassembled from HEADERS and CONTINUATION frames (§4.3)."""

    stream_id: int
    end_stream: bool
    fragments: list[bytes] = field(default_factory=list)
    size: int = 0
    frames: int = 1


class H2Connection:
    """The server side of one HTTP/2 connection (module docstring).

    Args:
        limits: ``h2_*`` bounds, and ``max_header_bytes`` for nothing else.
        enable_connect_protocol: advertise RFC 8441 extended CONNECT (WebSocket over HTTP/2).
    """

    #: A closed stream's id is remembered this long (in streams), to tell late frames for a stream we
    #: reset (ignored) from frames for a stream that is long gone (STREAM_CLOSED).
    CLOSED_MEMORY = 256

    def __init__(self, limits: Limits = DEFAULT_LIMITS, *, enable_connect_protocol: bool = True) -> None:
        self.limits = limits
        self.enable_connect_protocol = enable_connect_protocol
        self._reader = FrameReader(limits.h2_max_frame_size)
        # The decoder starts at the protocol's 4096 and takes our SETTINGS_HEADER_TABLE_SIZE when the client
        # acknowledges it: the client's encoder changes its table only after it has our SETTINGS (§6.5.3).
        self._decoder = Decoder(INITIAL_HEADER_TABLE_SIZE, limits.h2_max_header_list_size)
        self._encoder = Encoder()
        self._out = bytearray()
        self._preface_left = len(PREFACE)
        self._settings_seen = False
        self._streams: dict[int, _Stream] = {}
        self._closed: OrderedDict[int, bool] = OrderedDict()  # stream id -> whether we reset it
        self._highest = 0  # the highest stream id the client opened
        self._block: _Block | None = None
        # Windows: ours to send in (the peer's grants), and theirs to send in (ours).
        self._peer_initial_window = 65_535
        self._peer_max_frame_size = 16_384
        self._send_window = INITIAL_CONNECTION_WINDOW
        # Until the client has our SETTINGS it may fill a stream's initial 65,535 octets: a smaller window of
        # ours could only be enforced after its acknowledgement, so ours is never smaller.
        self._stream_window = max(limits.h2_stream_window, INITIAL_STREAM_WINDOW)
        self._connection_window = max(limits.h2_connection_window, INITIAL_CONNECTION_WINDOW)
        self._recv_window = self._connection_window
        self._recv_unacked = 0
        self._resets = 0  # streams the client reset before we answered them
        self._finished = 0  # streams we answered completely
        self._goaway_sent: int | None = None  # the last stream id we announced
        self.terminated = False

    # --- setup and output ----------------------------------------------------------------------------

    def initiate(self) -> None:
        """Our SETTINGS (§3.4: the server's preface) and the connection window we grant."""
        limits = self.limits
        settings = [
            (SettingCode.HEADER_TABLE_SIZE, limits.h2_header_table_size),
            (SettingCode.ENABLE_PUSH, 0),
            (SettingCode.MAX_CONCURRENT_STREAMS, limits.h2_max_concurrent_streams),
            (SettingCode.INITIAL_WINDOW_SIZE, self._stream_window),
            (SettingCode.MAX_FRAME_SIZE, limits.h2_max_frame_size),
            (SettingCode.MAX_HEADER_LIST_SIZE, limits.h2_max_header_list_size),
        ]
        if self.enable_connect_protocol:
            settings.append((SettingCode.ENABLE_CONNECT_PROTOCOL, 1))
        self._out += SettingsFrame(tuple((int(k), v) for k, v in settings)).serialize()
        grant = self._connection_window - INITIAL_CONNECTION_WINDOW
        if grant > 0:
            self._out += WindowUpdateFrame(0, grant).serialize()

    def data_to_send(self) -> bytes:
        """The bytes to write now (and forget)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def open_streams(self) -> int:
        """Streams in a state that counts against SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2)."""
        return len(self._streams)

    # --- input ---------------------------------------------------------------------------------------

    def receive_data(self, data: BytesLike) -> list[Event]:
        """Feed bytes read from the client; the events they complete (module docstring)."""
        if self.terminated:
            return []
        events: list[Event] = []
        data = bytes(data)
        try:
            if self._preface_left:
                data = self._read_preface(data)
            self._reader.feed(data)
            while True:
                try:
                    frame = self._reader.next_frame()
                    if frame is None:
                        break
                    self._dispatch(frame, events)
                except H2StreamError as exc:
                    self._stream_error(exc, events)
        except H2ConnectionError as exc:
            self._connection_error(int(exc.code), str(exc), events)
        return events

    def _read_preface(self, data: bytes) -> bytes:
        offset = len(PREFACE) - self._preface_left
        take = data[: self._preface_left]
        if take != PREFACE[offset : offset + len(take)]:
            raise H2ConnectionError(
                ErrorCode.PROTOCOL_ERROR, "the client's connection preface is wrong (§3.4)"
            )
        self._preface_left -= len(take)
        return data[len(take) :]

    def _dispatch(self, frame: Frame, events: list[Event]) -> None:
        if not self._settings_seen:
            # §3.4: "the first frame the client sends MUST be a SETTINGS frame".
            if not isinstance(frame, SettingsFrame) or frame.ack:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "the first frame is not SETTINGS (§3.4)")
            self._settings_seen = True
        if self._block is not None:
            # The frame layer let only a CONTINUATION of this block through (§4.3).
            assert isinstance(frame, ContinuationFrame)
            self._continue_block(frame, events)
        elif isinstance(frame, DataFrame):
            self._on_data(frame, events)
        elif isinstance(frame, HeadersFrame):
            block = _Block(frame.stream_id, frame.end_stream, [frame.fragment], len(frame.fragment))
            self._block = block
            self._check_block(block)
            if frame.end_headers:
                self._end_block(events)
        elif isinstance(frame, SettingsFrame):
            self._on_settings(frame, events)
        elif isinstance(frame, WindowUpdateFrame):
            self._on_window_update(frame, events)
        elif isinstance(frame, RstStreamFrame):
            self._on_rst(frame, events)
        elif isinstance(frame, PingFrame):
            if not frame.ack:
                self._out += frame.response().serialize()  # §6.7: "MUST send a PING frame with ACK"
        elif isinstance(frame, GoAwayFrame):
            events.append(
                ConnectionTerminated(
                    int(frame.error_code),
                    frame.last_stream_id,
                    True,
                    frame.debug_data.decode("utf-8", "replace"),
                )
            )
        elif isinstance(frame, PushPromiseFrame):
            # §8.4: "A client cannot push."
            raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, "a client sent PUSH_PROMISE (§8.4)")
        else:
            # PRIORITY (deprecated, §5.3.2) on any stream, and unknown frame types (§5.5): ignored.
            assert isinstance(frame, (PriorityFrame, UnknownFrame))

    # --- header blocks (§4.3) -------------------------------------------------------------------------

    def _check_block(self, block: _Block) -> None:
        # A compressed block can be longer than the list it decodes to (Huffman codes reach 30 bits per
        # octet), but not by much more than 4 times; past that, or past a handful of frames, it is a flood.
        limit = 4 * self.limits.h2_max_header_list_size + 1024
        if block.size > limit or block.frames > self.limits.h2_max_continuation_frames:
            raise H2ConnectionError(
                ErrorCode.ENHANCE_YOUR_CALM,
                f"a header block of {block.size} octets in {block.frames} frames is past the limits"
                f" ({limit} octets, {self.limits.h2_max_continuation_frames} frames)",
            )

    def _continue_block(self, frame: ContinuationFrame, events: list[Event]) -> None:
        block = self._block
        assert block is not None
        block.fragments.append(frame.fragment)
        block.size += len(frame.fragment)
        block.frames += 1
        self._check_block(block)
        if frame.end_headers:
            self._end_block(events)

    def _end_block(self, events: list[Event]) -> None:
        block = self._block
        assert block is not None
        self._block = None
        stream_id = block.stream_id
        try:
            fields = self._decoder.decode(b"".join(block.fragments))
            too_large: HeaderListTooLarge | None = None
        except HPACKError as exc:
            # §4.3: a block that cannot be decoded leaves the tables out of step: COMPRESSION_ERROR.
            raise H2ConnectionError(ErrorCode.COMPRESSION_ERROR, str(exc)) from None
        except HeaderListTooLarge as exc:
            fields, too_large = [], exc
        headers = [(f[0], f[1]) for f in fields]
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._on_trailers(stream, headers, block.end_stream, too_large, events)
            return
        self._open_stream(stream_id, headers, block.end_stream, too_large, events)

    def _open_stream(
        self,
        stream_id: int,
        headers: Headers,
        end_stream: bool,
        too_large: HeaderListTooLarge | None,
        events: list[Event],
    ) -> None:
        if stream_id % 2 == 0:
            raise H2ConnectionError(
                ErrorCode.PROTOCOL_ERROR, f"stream {stream_id}: a client opens odd-numbered streams (§5.1.1)"
            )
        if stream_id <= self._highest:
            if stream_id in self._closed:
                # HEADERS on a stream that is over: §5.1 "closed", STREAM_CLOSED.
                raise H2StreamError(
                    stream_id, ErrorCode.STREAM_CLOSED, f"stream {stream_id} is closed (§5.1)"
                )
            raise H2ConnectionError(
                ErrorCode.PROTOCOL_ERROR,
                f"stream {stream_id} opened after stream {self._highest}: ids must increase (§5.1.1)",
            )
        self._highest = stream_id
        if self._goaway_sent is not None:
            # §6.8: after our GOAWAY, streams above its last id are not processed (the block was decoded
            # above, so the HPACK state stays right).
            self._remember_closed(stream_id, reset=True)
            return
        stream = _Stream(stream_id, self._peer_initial_window, self._stream_window)
        stream.move(StreamEvent.RECV_HEADERS)
        if len(self._streams) >= self.limits.h2_max_concurrent_streams:
            # §5.1.2: REFUSED_STREAM, so the client knows the request was not processed and may retry.
            self._streams[stream_id] = stream
            raise H2StreamError(
                stream_id,
                ErrorCode.REFUSED_STREAM,
                f"more than {self.limits.h2_max_concurrent_streams} concurrent streams (§5.1.2)",
            )
        self._streams[stream_id] = stream
        if too_large is not None:
            # §10.5.1: the block was processed for HPACK's sake; the request is answered 431.
            if end_stream:
                stream.move(StreamEvent.RECV_END_STREAM)
            self.send_headers(stream_id, [(b":status", b"431"), (b"content-length", b"0")], end_stream=True)
            if stream.state is not StreamState.CLOSED:
                self.reset_stream(stream_id, ErrorCode.NO_ERROR)
            events.append(StreamReset(stream_id, ErrorCode.NO_ERROR, False, str(too_large)))
            return
        stream.content_length = validate_request(
            headers, stream_id, connect_protocol=self.enable_connect_protocol
        )
        if end_stream:
            self._end_of_request(stream)
        events.append(RequestReceived(stream_id, headers, end_stream))

    def _on_trailers(
        self,
        stream: _Stream,
        headers: Headers,
        end_stream: bool,
        too_large: HeaderListTooLarge | None,
        events: list[Event],
    ) -> None:
        stream_id = stream.stream_id
        if stream.state not in (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL):
            raise H2StreamError(
                stream_id, ErrorCode.STREAM_CLOSED, f"HEADERS after the end of stream {stream_id}"
            )
        if too_large is not None:
            raise H2StreamError(stream_id, ErrorCode.PROTOCOL_ERROR, str(too_large))
        if not end_stream:
            # §8.1: a second header block is a trailer section, and it ends the stream.
            raise _malformed(stream_id, "a trailer section without END_STREAM (§8.1)")
        for name, value in headers:
            _check_name(name, stream_id)
            _check_value(name, value, stream_id)
            if name.startswith(b":"):
                raise _malformed(stream_id, f"pseudo-header {name!r} in trailers (§8.1)")
        self._end_of_request(stream)
        events.append(TrailersReceived(stream_id, headers))

    def _end_of_request(self, stream: _Stream) -> None:
        if stream.content_length is not None and stream.received != stream.content_length:
            raise _malformed(
                stream.stream_id,
                f"content-length {stream.content_length} but {stream.received} octets of DATA (§8.1.1)",
            )
        stream.move(StreamEvent.RECV_END_STREAM)
        self._forget_if_closed(stream)

    # --- DATA and flow control (§5.2, §6.9) ---------------------------------------------------------

    def _on_data(self, frame: DataFrame, events: list[Event]) -> None:
        length = frame.flow_controlled_length
        # The connection window counts every DATA frame, whatever its stream's state (§6.9).
        if length > self._recv_window:
            raise H2ConnectionError(
                ErrorCode.FLOW_CONTROL_ERROR,
                f"{length} octets of DATA with {self._recv_window} left in the connection window (§6.9.1)",
            )
        self._recv_window -= length
        try:
            stream = self._stream_for_data(frame.stream_id, length)
        except H2StreamError:
            self._give_back(length)  # discarded: nobody will consume it
            raise
        if stream is None:
            self._give_back(length)
            return
        stream.recv_window -= length
        stream.received += len(frame.data)
        if stream.content_length is not None and stream.received > stream.content_length:
            raise _malformed(
                frame.stream_id, f"more DATA than content-length {stream.content_length} (§8.1.1)"
            )
        padding = length - len(frame.data)
        if padding:
            self.acknowledge_received_data(frame.stream_id, padding)  # nobody consumes padding
        if frame.end_stream:
            self._end_of_request(stream)
        events.append(DataReceived(frame.stream_id, frame.data, len(frame.data), frame.end_stream))

    def _stream_for_data(self, stream_id: int, length: int) -> _Stream | None:
        """The stream a DATA frame is for; ``None`` for one we reset (its data may still be in flight)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._highest:
                raise H2ConnectionError(ErrorCode.PROTOCOL_ERROR, f"DATA on idle stream {stream_id} (§5.1)")
            if self._closed.get(stream_id):
                return None
            raise H2StreamError(
                stream_id, ErrorCode.STREAM_CLOSED, f"DATA on closed stream {stream_id} (§5.1)"
            )
        if stream.state not in (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL):
            raise H2StreamError(
                stream_id, ErrorCode.STREAM_CLOSED, f"DATA after the end of stream {stream_id} (§5.1)"
            )
        if length > stream.recv_window:
            raise H2StreamError(
                stream_id,
                ErrorCode.FLOW_CONTROL_ERROR,
                f"{length} octets of DATA with {stream.recv_window} left in the stream's window (§6.9.1)",
            )
        return stream

    def acknowledge_received_data(self, stream_id: int, length: int) -> None:
        """The application consumed ``length`` octets of ``stream_id``'s body: let the client send more.

        WINDOW_UPDATE goes out once half a window is owed, not for every read (fewer frames, same flow).
        """
        if length <= 0:
            return
        stream = self._streams.get(stream_id)
        if stream is not None and stream.state in (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL):
            stream.recv_unacked += length
            if stream.recv_unacked * 2 >= self._stream_window:
                self._out += WindowUpdateFrame(stream_id, stream.recv_unacked).serialize()
                stream.recv_window += stream.recv_unacked
                stream.recv_unacked = 0
        self._give_back(length)

    def _give_back(self, length: int) -> None:
        """Octets the connection window may have again (consumed, or discarded)."""
        self._recv_unacked += length
        if self._recv_unacked * 2 >= self._connection_window:
            self._out += WindowUpdateFrame(0, self._recv_unacked).serialize()
            self._recv_window += self._recv_unacked
            self._recv_unacked = 0

    def _on_window_update(self, frame: WindowUpdateFrame, events: list[Event]) -> None:
        stream_id = frame.stream_id
        if stream_id == 0:
            if self._send_window + frame.increment > MAX_WINDOW_SIZE:
                raise H2ConnectionError(
                    ErrorCode.FLOW_CONTROL_ERROR, "the connection window would pass 2**31-1 (§6.9.1)"
                )
            self._send_window += frame.increment
            events.append(WindowUpdated(0))
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._highest:
                raise H2ConnectionError(
                    ErrorCode.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id} (§5.1)"
                )
            return  # closed: §5.1 lets WINDOW_UPDATE arrive a while after
        if stream.send_window + frame.increment > MAX_WINDOW_SIZE:
            raise H2StreamError(
                stream_id, ErrorCode.FLOW_CONTROL_ERROR, "the stream window would pass 2**31-1 (§6.9.1)"
            )
        stream.send_window += frame.increment
        events.append(WindowUpdated(stream_id))

    def send_window(self, stream_id: int) -> int:
        """How many octets of DATA :meth:`send_data` may send on ``stream_id`` now (0 when blocked)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.state not in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE):
            return 0
        return max(0, min(self._send_window, stream.send_window))

    # --- SETTINGS, RST_STREAM ------------------------------------------------------------------------

    def _on_settings(self, frame: SettingsFrame, events: list[Event]) -> None:
        if frame.ack:
            # Ours are in force now. The windows were from the start (see __init__); the table size is now.
            self._decoder.set_max_table_size(self.limits.h2_header_table_size)
            return
        for identifier, value in frame.settings:
            if identifier == SettingCode.HEADER_TABLE_SIZE:
                # The peer's decoder allows this much; our encoder may use less (RFC 7541 §4.2).
                self._encoder.set_max_table_size(min(value, self.limits.h2_header_table_size))
            elif identifier == SettingCode.INITIAL_WINDOW_SIZE:
                # §6.9.2: the change applies to every stream's window, which may go negative.
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    if stream.send_window + delta > MAX_WINDOW_SIZE:
                        raise H2ConnectionError(
                            ErrorCode.FLOW_CONTROL_ERROR, "a stream window would pass 2**31-1 (§6.9.2)"
                        )
                    stream.send_window += delta
                if delta > 0:
                    events.append(WindowUpdated(0))
            elif identifier == SettingCode.MAX_FRAME_SIZE:
                self._peer_max_frame_size = value
            # ENABLE_PUSH, MAX_CONCURRENT_STREAMS (both about pushes, which rawrt never sends),
            # MAX_HEADER_LIST_SIZE (advisory, §6.5.2) and unknown settings (§6.5.2: "MUST ignore").
        self._out += SettingsFrame(ack=True).serialize()  # §6.5.3

    def _on_rst(self, frame: RstStreamFrame, events: list[Event]) -> None:
        stream_id = frame.stream_id
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._highest:
                raise H2ConnectionError(
                    ErrorCode.PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id} (§5.1)"
                )
            return  # already closed
        stream.move(StreamEvent.RECV_RST)
        self._forget_if_closed(stream)
        if not stream.answered:
            # A stream the client opened and cancelled before the answer: the shape of "rapid reset"
            # (CVE-2023-44487). A client that lets most of its streams finish never comes near the limit.
            self._resets += 1
            if self._resets - self._finished > self.limits.h2_max_reset_streams:
                raise H2ConnectionError(
                    ErrorCode.ENHANCE_YOUR_CALM,
                    f"{self._resets} streams reset by the client before their answer, {self._finished}"
                    f" answered: past the limit of {self.limits.h2_max_reset_streams} (rapid reset)",
                )
        events.append(StreamReset(stream_id, int(frame.error_code), True))

    # --- errors ----------------------------------------------------------------------------------------

    def _stream_error(self, exc: H2StreamError, events: list[Event]) -> None:
        stream_id = exc.stream_id
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.move(StreamEvent.SEND_RST)
            self._forget_if_closed(stream, reset=True)
        else:
            self._remember_closed(stream_id, reset=True)
        self._out += RstStreamFrame(stream_id, int(exc.code)).serialize()
        events.append(StreamReset(stream_id, int(exc.code), False, str(exc)))

    def _connection_error(self, code: int, message: str, events: list[Event]) -> None:
        self._out += GoAwayFrame(self._highest, code, message.encode("utf-8")[:256]).serialize()
        self._goaway_sent = self._highest
        self.terminated = True
        self._streams.clear()
        events.append(ConnectionTerminated(code, self._highest, False, message))

    def _remember_closed(self, stream_id: int, *, reset: bool) -> None:
        self._closed[stream_id] = reset
        while len(self._closed) > self.CLOSED_MEMORY:
            self._closed.popitem(last=False)

    def _forget_if_closed(self, stream: _Stream, *, reset: bool = False) -> None:
        if stream.state is StreamState.CLOSED and self._streams.pop(stream.stream_id, None) is not None:
            self._remember_closed(stream.stream_id, reset=reset)
            if stream.answered and not reset:
                self._finished += 1

    # --- output ---------------------------------------------------------------------------------------

    def _stream_for_send(self, stream_id: int, what: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.state not in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE):
            raise LocalProtocolError(f"cannot send {what} on stream {stream_id}: it is not open for sending")
        return stream

    def send_headers(self, stream_id: int, headers: Headers, *, end_stream: bool = False) -> None:
        """Send a response's header block (or trailers, with ``end_stream``), cut to the peer's frame size."""
        stream = self._stream_for_send(stream_id, "HEADERS")
        if not stream.answered:
            _check_response(headers)
            stream.answered = not headers[0][1].startswith(b"1")  # 1xx are not the answer (§8.1)
        elif not end_stream:
            raise LocalProtocolError("a second header block (trailers) must end the stream (RFC 9113 §8.1)")
        block = self._encoder.encode(headers)
        for frame in split_header_block(
            stream_id, block, max_frame_size=self._peer_max_frame_size, end_stream=end_stream
        ):
            self._out += frame.serialize()
        stream.move(StreamEvent.SEND_HEADERS)
        if end_stream:
            stream.move(StreamEvent.SEND_END_STREAM)
            self._forget_if_closed(stream)

    def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Send body octets; no more than :meth:`send_window` allows (else a LocalProtocolError)."""
        stream = self._stream_for_send(stream_id, "DATA")
        if not stream.answered:
            raise LocalProtocolError(
                f"DATA before the response's HEADERS on stream {stream_id} (RFC 9113 §8.1)"
            )
        if len(data) > min(self._send_window, stream.send_window):
            raise LocalProtocolError(
                f"{len(data)} octets of DATA on stream {stream_id} exceed the flow-control window (§6.9.1)"
            )
        self._send_window -= len(data)
        stream.send_window -= len(data)
        for frame in split_data(
            stream_id, data, max_frame_size=self._peer_max_frame_size, end_stream=end_stream
        ):
            self._out += frame.serialize()
        if end_stream:
            stream.move(StreamEvent.SEND_END_STREAM)
            self._forget_if_closed(stream)

    def end_stream(self, stream_id: int) -> None:
        """End our side of the stream with an empty DATA frame."""
        self.send_data(stream_id, b"", end_stream=True)

    def reset_stream(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> None:
        """Send RST_STREAM (e.g. CANCEL when the handler failed mid-response, NO_ERROR after a complete
        answer to a request whose body is not wanted, §8.1)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # already closed: nothing to reset
        stream.move(StreamEvent.SEND_RST)
        # After NO_ERROR (a complete answer, §8.1) the stream counts as finished, not as reset.
        self._forget_if_closed(stream, reset=error_code != ErrorCode.NO_ERROR)
        self._remember_closed(stream_id, reset=True)  # late DATA for it is ignored either way
        self._out += RstStreamFrame(stream_id, error_code).serialize()

    def close(self, error_code: int = ErrorCode.NO_ERROR, message: str = "") -> None:
        """Send GOAWAY with the last stream id processed (§6.8). With NO_ERROR (a graceful shutdown) the open
        streams go on and new ones are ignored; the adapter closes the socket when they are done."""
        if self._goaway_sent is not None:
            return
        self._goaway_sent = self._highest
        self._out += GoAwayFrame(self._highest, error_code, message.encode("utf-8")[:256]).serialize()
