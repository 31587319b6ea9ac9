"""WebSocket over HTTP/2 (RFC 8441): an extended CONNECT stream carries the same WebSocket as a TCP
connection after a 101.

Strategy
--------
The WebSocket adapter (:class:`~rawrt.websocket.WebSocket`) is an :class:`asyncio.Protocol` that takes
a transport over after the handshake (:mod:`rawrt.server.upgrade`, :mod:`rawrt.websocket.handover`). Over
HTTP/2 the "connection" is one stream, so :class:`StreamTransport` is an :class:`asyncio.Transport` made
of that stream, and the WebSocket above it does not know the difference (its frames, permessage-deflate,
limits, keepalive and close handshake are the same code):

* ``write`` queues DATA on the stream (:meth:`_Stream.queue` in :mod:`.h2`): sent as the flow-control
  windows allow (RFC 9113 §5.2), the rest held in the stream's pending queue. Past the WebSocket's
  high-water mark the transport calls ``pause_writing()``, and ``resume_writing()`` once the client's
  WINDOW_UPDATEs took the queue under the low-water mark: the same backpressure, and the same
  ``send_timeout`` (a stream paused that long is aborted), as over TCP.
* Received DATA is delivered to ``data_received`` and its window given back at once, unless the WebSocket
  paused reading (its message queue is full): then the DATA waits here, unacknowledged, so the client runs
  out of window for this stream (at most ``h2_stream_window`` bytes wait), as TCP flow control would push
  back on it.
* ``close()`` is END_STREAM after the pending DATA (RFC 8441 §6: "orderly closure"); the client's
  END_STREAM is the WebSocket's EOF; ``abort()`` is RST_STREAM CANCEL (§6: abnormal closure); a
  RST_STREAM from the client, or the connection's end, is ``connection_lost``. Once both sides ended the
  stream, the transport is lost too (the equivalent of the TCP connection closing).

The handshake (RFC 8441 §4, §5) is :func:`rawrt.sansio.ws.handshake.accept_connect`: ``:protocol``
``websocket``, ``sec-websocket-version: 13``, the Origin, subprotocol and permessage-deflate as over
HTTP/1.1; the answer is a ``:status 200`` (no Sec-WebSocket-Accept).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from ..app import Request, Response, Route
from ..errors import HandshakeError, LocalProtocolError
from ..limits import Limits
from ..sansio.h2.connection import H2Connection
from ..sansio.h2.frames import ErrorCode
from ..sansio.ws import handshake as hs
from ..sansio.ws.connection import Role, WebSocketConnection
from ..websocket import WebSocket
from .channel import ServerSide
from .upgrade import Session, deflate_options

__all__ = ["StreamTransport", "serve_websocket"]


class Carrier(Protocol):
    """What the transport uses of its HTTP/2 connection (:class:`rawrt.server.h2.H2Session`; a protocol,
    so that :mod:`.h2` imports this module and not the other way round)."""

    @property
    def conn(self) -> H2Connection: ...

    @property
    def transport(self) -> asyncio.Transport: ...  # the TCP (or TLS) connection

    @property
    def server(self) -> ServerSide: ...

    @property
    def limits(self) -> Limits: ...

    def flush(self) -> None: ...  # write what the sans-IO connection produced

    def reset(self, stream_id: int, code: int) -> None: ...  # RST_STREAM

    async def send_response(self, stream: Any, request: Request, response: Response) -> int: ...

    def head(  # a response's header list: :status, the fields lowercased, date and server
        self, status: int, headers: list[tuple[bytes, bytes]], length: int | None
    ) -> list[tuple[bytes, bytes]]: ...


class Tunnel(Protocol):
    """What the transport uses of its stream (:class:`rawrt.server.h2._Stream`)."""

    stream_id: int
    headers: list[tuple[bytes, bytes]]  # as received, pseudo-header fields first
    body: deque[bytes]  # DATA received before the tunnel existed
    ended: bool  # the client's END_STREAM came before the tunnel existed
    pending: deque[bytes]
    ending: bool
    gone: bool
    tunnel: StreamTransport | None

    def queue(self, piece: bytes) -> None: ...  # send now what the windows allow; keep the rest


class StreamTransport(asyncio.Transport):
    """One HTTP/2 stream as the transport of a WebSocket (module docstring).

    Args:
        session: the HTTP/2 connection the stream is on.
        stream: the extended CONNECT's stream, answered 200 already.
        eof: whether the client's END_STREAM came already (the WebSocket is told by its constructor).
    """

    def __init__(self, session: Carrier, stream: Tunnel, *, eof: bool = False) -> None:
        super().__init__()
        self._session = session
        self._stream = stream
        self._protocol: asyncio.BaseProtocol | None = None
        self._loop = asyncio.get_running_loop()
        #: DATA received while reading is paused, not yet given to the protocol (nor its window back).
        self._held: deque[bytes] = deque()
        self._reading = True
        self._writing_paused = False
        self._high = 64 * 1024
        self._low = 16 * 1024
        #: close() was called: END_STREAM goes (or went) out after the pending DATA.
        self._closing = False
        #: Our END_STREAM went out.
        self._ended = False
        #: The client's END_STREAM arrived (and ``_eof_delivered``: the protocol was told).
        self._eof = self._eof_delivered = eof
        #: connection_lost() was scheduled: the stream is over for the protocol.
        self._lost = False
        stream.tunnel = self

    # --- asyncio.BaseTransport --------------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        # The peer's address, the TLS object...: the connection's, which the stream shares.
        return self._session.transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing or self._lost or self._stream.gone

    def close(self) -> None:
        """END_STREAM once the pending DATA is out (RFC 8441 §6: the orderly end of the tunnel)."""
        if self.is_closing():
            return
        self._closing = True
        stream = self._stream
        self._held.clear()
        if stream.pending:
            stream.ending = True  # _Stream.pump() sets END_STREAM on the last piece
            return
        self._end_stream()

    def _end_stream(self) -> None:
        stream = self._stream
        try:
            self._session.conn.end_stream(stream.stream_id)
        except LocalProtocolError:
            pass  # no longer open for sending: reset by the client meanwhile
        self._session.flush()
        self._ended = True
        self._maybe_lost()

    # --- asyncio.ReadTransport --------------------------------------------------------------------------

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        # The WebSocket's queue is full: hold DATA here, and its window with it (module docstring).
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading:
            return
        self._reading = True
        if self._held or self._eof:
            # Delivered from the loop, as a transport delivers data: not inside the protocol's own call.
            self._loop.call_soon(self._deliver)

    # --- asyncio.WriteTransport -------------------------------------------------------------------------

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = 64 * 1024 if high is None else high
        self._low = self._high // 4 if low is None else low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet sent: waiting for flow-control window."""
        return sum(len(piece) for piece in self._stream.pending)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.is_closing() or not data:
            return
        self._stream.queue(bytes(data))
        if not self._writing_paused and self._stream.pending and self.get_write_buffer_size() > self._high:
            self._writing_paused = True
            self._call("pause_writing")

    def can_write_eof(self) -> bool:
        return False  # the server ends its side with close() (RFC 6455 §7.1.1: it closes first)

    def write_eof(self) -> None:
        raise NotImplementedError("close() ends the stream")

    def abort(self) -> None:
        """RST_STREAM CANCEL (RFC 8441 §6: the abnormal end of the tunnel), and the transport is lost."""
        self._held.clear()
        if not self._lost and not self._stream.gone:
            # Not closed both ways yet (END_STREAM sent maybe, the client's not received): cut it.
            self._session.reset(self._stream.stream_id, ErrorCode.CANCEL)  # calls lost() through the stream
        self._closing = True
        self._lose()

    # --- fed by the HTTP/2 session ----------------------------------------------------------------------

    def data_received(self, data: bytes, end_stream: bool) -> None:
        """DATA for this stream (``end_stream``: the client ended its side: the WebSocket's EOF)."""
        if self._lost:
            return
        if data:
            if self._closing:
                self._acknowledge(len(data))  # after our close nothing is read: only the window matters
            else:
                self._held.append(data)
        if end_stream:
            self._eof = True
        self._deliver()

    def _deliver(self) -> None:
        held = self._held
        protocol = self._protocol
        assert isinstance(protocol, asyncio.Protocol)
        while held and self._reading and not self._lost:
            data = held.popleft()
            # Consumed: the client may send as much again (RFC 9113 §6.9).
            self._acknowledge(len(data))
            protocol.data_received(data)
        if self._eof and not held and not self._eof_delivered and not self._lost:
            self._eof_delivered = True
            protocol.eof_received()
            self._maybe_lost()

    def _acknowledge(self, length: int) -> None:
        self._session.conn.acknowledge_received_data(self._stream.stream_id, length)
        self._session.flush()

    def pumped(self) -> None:
        """The stream sent pending DATA (the client gave window): resume writing, notice END_STREAM."""
        if self._closing and not self._ended and not self._stream.pending:
            self._ended = True  # _Stream.pump() sent END_STREAM with the last piece
            self._maybe_lost()
        if self._writing_paused and self.get_write_buffer_size() <= self._low:
            self._writing_paused = False
            self._call("resume_writing")

    def lost(self) -> None:
        """The stream is gone: reset (by either side), or the connection ended."""
        self._lose()

    def _maybe_lost(self) -> None:
        # Both sides ended the stream: it is closed (RFC 9113 §5.1), as a TCP connection after both FINs.
        if self._ended and self._eof_delivered:
            self._lose()

    def _lose(self) -> None:
        if self._lost:
            return
        self._lost = True
        self._held.clear()
        self._stream.tunnel = None
        self._loop.call_soon(self._call, "connection_lost", None)

    def _call(self, method: str, *args: Any) -> None:
        protocol = self._protocol
        if protocol is not None:
            getattr(protocol, method)(*args)


async def serve_websocket(session: Carrier, stream: Tunnel, request: Request, route: Route) -> int:
    """Answer an extended CONNECT (RFC 8441 §4) on ``route`` and run its WebSocket handler on the stream.

    Returns:
        The status answered: 200 and the session run to its end, or the refusal's (the route's check, or
        400/403 from :func:`~rawrt.sansio.ws.handshake.accept_connect`).
    """
    options = route.ws_options
    check = options.get("check")
    if check is not None:
        # The route's own validation (e.g. query parameters) answers with plain HTTP, as over HTTP/1.1.
        refusal: Response | None = check(request)
        if refusal is not None:
            await session.send_response(stream, request, refusal)
            return refusal.status
    limits: Limits = options.get("limits") or session.limits
    protocol = next((value for name, value in stream.headers if name == b":protocol"), b"")
    try:
        accepted = hs.accept_connect(
            protocol,
            request.headers.raw,
            subprotocols=options.get("subprotocols", ()),
            origins=options.get("origins"),
            deflate=deflate_options(route),
        )
    except HandshakeError as exc:
        status, _reason, headers, body = hs.reject(exc)
        await session.send_response(stream, request, Response(body, status, headers))
        return status
    # RFC 8441 §5: a 2xx accepts; the stream is the WebSocket's from now on (no END_STREAM).
    session.conn.send_headers(stream.stream_id, session.head(200, accepted.headers, None))
    session.flush()
    # DATA that came with the request, before the 200 (a client may send its first frames at once): the
    # WebSocket's first bytes, as bytes behind a 101's head over HTTP/1.1.
    initial = b"".join(stream.body)
    stream.body.clear()
    if initial:
        session.conn.acknowledge_received_data(stream.stream_id, len(initial))
    transport = StreamTransport(session, stream, eof=stream.ended)
    ws = WebSocket(
        transport,
        WebSocketConnection(Role.SERVER, limits=limits, extension=accepted.extension),
        limits=limits,
        subprotocol=accepted.subprotocol,
        headers=request.headers,
        request=request,
        trace=session.server.trace,
        initial=initial,
        eof=stream.ended,
    )
    # Held for the app (ws.request.headers) but rarely read again (as over HTTP/1.1, docs/topics/memory.md).
    request.headers.pack()
    session.server.websockets.add(ws)
    handler = route.websocket
    assert handler is not None
    await Session(session.server, ws, handler, limits).run()
    return 200
