"""The WebSocket client: :func:`connect` opens a connection (RFC 6455 §4.1), returns a :class:`WebSocket`.

The opening handshake is HTTP/1.1, written and read by the sans-IO client half: the GET request by
:func:`~rawrt.sansio.http11.client.encode_request`, the response by
:class:`~rawrt.sansio.http11.client.ResponseReader`, which stops after the ``101`` and hands over the bytes
that followed it (the server's first frames). The handshake's own rules are in
:mod:`rawrt.sansio.ws.handshake`.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl as _ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..errors import HandshakeError, RemoteProtocolError
from ..limits import DEFAULT_LIMITS, MAX_RECV, Limits
from ..sansio.headers import Headers
from ..sansio.http11.client import Response, ResponseReader, encode_request
from ..sansio.ws import handshake as hs
from ..sansio.ws.connection import Role, WebSocketConnection
from ..sansio.ws.deflate import CLIENT_DEFAULTS, DeflateOptions
from .connection import WebSocket
from .handover import ByteStream

__all__ = ["connect"]


async def connect(
    uri: str,
    *,
    subprotocols: Iterable[str] = (),
    compression: str | DeflateOptions | None = "permessage-deflate",
    headers: Iterable[tuple[str, str]] = (),
    origin: str | None = None,
    ssl: _ssl.SSLContext | None = None,
    limits: Limits = DEFAULT_LIMITS,
    open_timeout: float | None = 10.0,
    trace: bool = False,
) -> WebSocket:
    """Open a WebSocket client connection (RFC 6455 §4.1).

    Args:
        uri: ``ws://host[:port]/path?query`` or ``wss://...``.
        subprotocols: subprotocols to offer, most preferred first.
        compression: ``"permessage-deflate"`` (offer it), a :class:`DeflateOptions`, or None.
        headers: extra request header fields.
        origin: an ``Origin`` to send.
        ssl: the TLS context for ``wss://`` (default: the system's trust store).
        limits: message size, keepalive and close timeouts.
        open_timeout: bound on TCP connect + TLS + handshake.
        trace: log every frame on ``rawrt.trace``.

    Raises:
        HandshakeError: the server refused or answered wrongly (status, missing header, bad accept...).
        OSError / TimeoutError: the connection could not be made in time.
        ValueError: the URI is not ``ws://`` or ``wss://``, or its target, its host or a header would not stay
            on one line of the request (header injection).
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URI: {uri!r}")
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if secure and ssl is None:
        ssl = _ssl.create_default_context()
    if isinstance(compression, DeflateOptions):
        deflate: DeflateOptions | None = compression
    elif compression:
        deflate = CLIENT_DEFAULTS
    else:
        deflate = None
    host_header = host if (port == (443 if secure else 80)) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" + ("" if port == (443 if secure else 80) else f":{port}")

    request = hs.build_request(
        host_header,
        nonce=lambda: secrets.token_bytes(16),
        subprotocols=list(subprotocols),
        origin=origin,
        deflate=deflate,
    )
    # The request's bytes are built before connecting, so one that cannot be sent is refused without a
    # connection (encode_request checks every field). It writes the Host field itself, first.
    fields = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers if k.lower() != b"host"]
    head = encode_request("GET", target, host_header, [*fields, *headers])

    async def opening() -> WebSocket:
        # Read through a ByteStream, which the WebSocket takes the transport over from (.handover).
        _, stream = await asyncio.get_running_loop().create_connection(ByteStream, host, port, ssl=ssl)
        try:
            assert stream.transport is not None
            stream.transport.write(head)
            response, leftover = await _read_response(stream, limits)
            response_headers = response.headers
            result = hs.check_response(request, response.status, response_headers)
        except BaseException:
            stream.close()
            raise
        protocol = WebSocketConnection(
            Role.CLIENT, limits=limits, mask_key=lambda: secrets.token_bytes(4), extension=result.extension
        )
        handover = stream.detach()
        return WebSocket(
            handover.transport,
            protocol,
            limits=limits,
            subprotocol=result.subprotocol,
            headers=Headers(response_headers),
            trace=trace,
            initial=leftover + handover.data,
            eof=handover.eof,
            writing_paused=handover.writing_paused,
        )

    if open_timeout is None:
        return await opening()
    return await asyncio.wait_for(opening(), open_timeout)


async def _read_response(stream: ByteStream, limits: Limits) -> tuple[Response, bytes]:
    """Read the handshake's response with the sans-IO :class:`ResponseReader` (RFC 9112 §4-§6).

    Returns:
        The ``101`` response, and the bytes that followed its head (the server's first frames).

    Raises:
        HandshakeError: the server refused (any other final status), answered with a response that breaks
            RFC 9112 or the header limits, or closed the connection first (RFC 6455 §4.1: the client
            "MUST _Fail the WebSocket Connection_").
    """
    reader = ResponseReader(limits, upgrade=True)
    while True:
        data = await stream.read(MAX_RECV)
        if data:
            reader.receive_data(data)
        else:
            reader.receive_eof()
        try:
            reader.events_received()  # the head is all we need: it is kept in reader.response
            error = None
        except RemoteProtocolError as exc:
            error = exc
        response = reader.response
        if response is not None:
            # A refusal's status is reported even if the body after it is broken.
            if response.status != 101:
                reason = response.reason.decode("latin-1")
                raise HandshakeError(f"server answered {response.status} {reason!r}, expected 101")
            return response, reader.trailing_data
        if not data:
            raise HandshakeError("connection closed during the opening handshake") from error
        if error is not None:
            raise HandshakeError(str(error)) from error
