"""The WebSocket client: :func:`connect` opens a connection (RFC 6455 §4.1), returns a :class:`WebSocket`."""

from __future__ import annotations

import asyncio
import re
import secrets
import ssl as _ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from ..errors import HandshakeError
from ..limits import DEFAULT_LIMITS, MAX_RECV, Limits
from ..sansio import abnf
from ..sansio.headers import Headers
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

    async def opening() -> WebSocket:
        # Read through a ByteStream, which the WebSocket takes the transport over from (.handover).
        _, stream = await asyncio.get_running_loop().create_connection(ByteStream, host, port, ssl=ssl)
        try:
            request = hs.build_request(
                host_header,
                nonce=lambda: secrets.token_bytes(16),
                subprotocols=list(subprotocols),
                origin=origin,
                deflate=deflate,
            )
            fields = [*request.headers, *[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]]
            head = b"GET %b HTTP/1.1\r\n" % target.encode("ascii") + b"".join(
                b"%b: %b\r\n" % pair for pair in fields
            )
            assert stream.transport is not None
            stream.transport.write(head + b"\r\n")
            status, response_headers, leftover = await _read_response_head(stream, limits)
            result = hs.check_response(request, status, response_headers)
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


async def _read_response_head(
    reader: ByteStream, limits: Limits
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Read the handshake's response head (RFC 9112 §4, §5), strictly and within the header limits.

    Returns:
        The status, the fields, and the bytes that followed the head (the server's first frames).
    """
    buf = bytearray()
    limit = limits.max_request_line + limits.max_header_bytes
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) > limit:
            raise HandshakeError(f"response head larger than {limit} bytes")
        data = await reader.read(MAX_RECV)
        if not data:
            raise HandshakeError("connection closed during the opening handshake")
        buf += data
    head = bytes(buf[:end])
    status_line, _, fields = head.partition(b"\r\n")
    match = _STATUS_LINE_RE.fullmatch(status_line)
    if match is None:
        raise HandshakeError(f"invalid status line {status_line[:80]!r}")
    section = fields + b"\r\n" if fields else b""
    if abnf.FIELD_SECTION_RE.fullmatch(section) is None:
        raise HandshakeError("invalid header section in the handshake response")
    pairs = [(name, value.rstrip(b" \t")) for name, value in abnf.FIELD_PAIRS_RE.findall(section)]
    status = int(match.group(1))
    if status != 101:
        raise HandshakeError(f"server answered {status} {match.group(2).decode('latin-1')!r}, expected 101")
    return status, pairs, bytes(buf[end + 4 :])


# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
_STATUS_LINE_RE = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3}) ([\t \x21-\x7e\x80-\xff]*)")
