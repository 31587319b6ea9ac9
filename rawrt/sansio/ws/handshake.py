# The WebSocket opening handshake (RFC 6455 §4), as pure functions over header lists.
#
# Contract:
#   * Headers are ``(name, value)`` byte pairs, names in any case (compared case-insensitively, RFC 9110
#     §5.1), in received order; a field may repeat and list-valued fields are then concatenated
#     (RFC 9110 §5.3).
#   * Server: ``accept(method, http_version, headers, ...)`` returns an ``Accept`` (the 101 response
#     headers, the chosen subprotocol, the negotiated extension to hand to ``WebSocketConnection``) or
#     raises ``HandshakeError`` with ``status_hint`` 400/403/405/426 and, where the status requires
#     them, ``headers``. ``reject(exc)`` turns that error into a response.
#   * Server over HTTP/2: ``accept_connect(protocol, headers, ...)`` does the same for an extended CONNECT
#     (RFC 8441): no key and no Upgrade; the Accept's headers go on a 200.
#   * Client: ``build_request(...)`` makes the request headers and remembers what was offered;
#     ``check_response(request, status, headers)`` validates the server's answer or raises
#     ``HandshakeError``.
#   * Errors say what was received and what was expected, with peer bytes escaped.
#
# The header grammar (Sec-WebSocket-Extensions, §9.1, and comma lists, RFC 9110 §5.6.1) is parsed here
# by a small scanner over regexes, with bounded element counts.

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from rawrt.errors import HandshakeError, printable

from ..abnf import TOKEN
from .deflate import (
    CLIENT_DEFAULTS,
    EXTENSION_NAME,
    SERVER_DEFAULTS,
    DeflateOptions,
    ExtensionParams,
    PerMessageDeflate,
    accept_client_response,
    client_offer,
    negotiate_server,
)

__all__ = [
    "GUID",
    "Headers",
    "Accept",
    "ClientRequest",
    "ClientResult",
    "accept_key",
    "accept",
    "accept_connect",
    "reject",
    "build_request",
    "check_response",
    "parse_extensions",
    "serialize_extensions",
    "parse_token_list",
    "MAX_EXTENSIONS",
    "MAX_EXTENSION_PARAMS",
]

#: A header list: ``(name, value)`` byte pairs in received order.
Headers = list[tuple[bytes, bytes]]

#: RFC 6455 §1.3: the GUID appended to the key before hashing.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Elements accepted in Sec-WebSocket-Extensions (all headers together). Real clients send one or two
#: (Chrome: one permessage-deflate offer); the cap bounds the work an attacker can ask for.
MAX_EXTENSIONS = 32
#: Parameters accepted per extension element; permessage-deflate defines four.
MAX_EXTENSION_PARAMS = 16
#: Elements accepted in Sec-WebSocket-Protocol, Connection and Upgrade lists.
MAX_LIST_ELEMENTS = 64

# --- Grammar ------------------------------------------------------------------------------------------------

# RFC 9110 §5.6.3: OWS = *( SP / HTAB )
_OWS_RE = re.compile(rb"[ \t]*")
_TOKEN_RE = re.compile(TOKEN)
# RFC 9110 §5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
#   qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
#   quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
_QUOTED_RE = re.compile(rb'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"')
_QUOTED_PAIR_RE = re.compile(rb"\\(.)", re.DOTALL)
_TOKEN_FULL_RE = re.compile(TOKEN + rb"\Z")


class _Scanner:
    """Position-keeping matcher over one header value; raises ValueError on a mismatch."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def skip_ows(self) -> None:
        match = _OWS_RE.match(self.data, self.pos)
        assert match is not None  # OWS matches the empty string
        self.pos = match.end()

    def at(self, char: bytes) -> bool:
        """Consume ``char`` (after OWS) if it comes next."""
        self.skip_ows()
        if self.data.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def done(self) -> bool:
        self.skip_ows()
        return self.pos == len(self.data)

    def token(self) -> str:
        self.skip_ows()
        match = _TOKEN_RE.match(self.data, self.pos)
        if match is None:
            raise ValueError(f"expected a token at {printable(self.data[self.pos :])}")
        self.pos = match.end()
        return match.group().decode("ascii")

    def token_or_quoted(self) -> str:
        self.skip_ows()
        match = _QUOTED_RE.match(self.data, self.pos)
        if match is None:
            return self.token()
        self.pos = match.end()
        value = _QUOTED_PAIR_RE.sub(rb"\1", match.group(1))
        # RFC 6455 §9.1: "the value after quoted-string unescaping MUST conform to the 'token' ABNF".
        if not _TOKEN_FULL_RE.match(value):
            raise ValueError(f"quoted parameter value {printable(value)} is not a token")
        return value.decode("ascii")


def _values(headers: Headers, name: bytes) -> list[bytes]:
    return [value for key, value in headers if key.lower() == name]


def parse_token_list(values: Sequence[bytes], *, protocols: bool = False) -> list[str]:
    """Parse comma-separated tokens (RFC 9110 §5.6.1 ``#token``) across several field lines.

    Empty elements are skipped, as §5.6.1 asks recipients to ("1#element" allows ", ,").

    Args:
        values: the values of every field line with this name.
        protocols: parse Upgrade's elements instead, ``protocol-name ["/" protocol-version]`` (RFC 9110
            §7.8), returned as ``"name/version"``.

    Returns:
        The tokens, in order, case preserved.

    Raises:
        ValueError: a non-token element, or more than ``MAX_LIST_ELEMENTS``.
    """
    tokens: list[str] = []
    for value in values:
        scanner = _Scanner(value)
        while not scanner.done():
            if scanner.at(b","):
                continue
            token = scanner.token()
            if protocols and scanner.data.startswith(b"/", scanner.pos):
                scanner.pos += 1
                token += "/" + scanner.token()
            tokens.append(token)
            if len(tokens) > MAX_LIST_ELEMENTS:
                raise ValueError(f"more than {MAX_LIST_ELEMENTS} list elements")
            if not scanner.done() and not scanner.at(b","):
                raise ValueError(f"expected ',' at {printable(value[scanner.pos :])}")
    return tokens


def parse_extensions(values: Sequence[bytes]) -> list[tuple[str, ExtensionParams]]:
    """Parse Sec-WebSocket-Extensions field values (RFC 6455 §9.1).

    Grammar (§9.1, with RFC 9110 list and quoting rules)::

        Sec-WebSocket-Extensions = 1#extension
        extension = extension-token *( ";" extension-param )
        extension-param = token [ "=" (token / quoted-string) ]

    Args:
        values: the values of every Sec-WebSocket-Extensions field line, in order.

    Returns:
        ``(name, params)`` for each element, in order; names and parameter names lower-cased
        (extension tokens are compared case-insensitively like other HTTP tokens).

    Raises:
        ValueError: a syntax error, or more than ``MAX_EXTENSIONS`` elements or
            ``MAX_EXTENSION_PARAMS`` parameters in one element.
    """
    extensions: list[tuple[str, ExtensionParams]] = []
    for value in values:
        scanner = _Scanner(value)
        while not scanner.done():
            if scanner.at(b","):
                continue
            name = scanner.token().lower()
            params: ExtensionParams = []
            while scanner.at(b";"):
                param = scanner.token().lower()
                params.append((param, scanner.token_or_quoted() if scanner.at(b"=") else None))
                if len(params) > MAX_EXTENSION_PARAMS:
                    raise ValueError(f"more than {MAX_EXTENSION_PARAMS} parameters in {name}")
            extensions.append((name, params))
            if len(extensions) > MAX_EXTENSIONS:
                raise ValueError(f"more than {MAX_EXTENSIONS} extensions")
            if not scanner.done() and not scanner.at(b","):
                raise ValueError(f"expected ',' or ';' at {printable(value[scanner.pos :])}")
    return extensions


def serialize_extensions(extensions: Sequence[tuple[str, ExtensionParams]]) -> bytes:
    """Render extension elements for Sec-WebSocket-Extensions (values are tokens: no quoting needed)."""
    return b", ".join(
        "; ".join([name, *(p if v is None else f"{p}={v}" for p, v in params)]).encode("ascii")
        for name, params in extensions
    )


# --- Key and accept (§1.3, §4.2.2) ------------------------------------------------------------------------


def accept_key(key: bytes) -> bytes:
    """Compute Sec-WebSocket-Accept from Sec-WebSocket-Key (RFC 6455 §1.3, §4.2.2 item 5.4).

    Args:
        key: the base64 key exactly as sent by the client.

    Returns:
        ``base64(SHA-1(key + GUID))``.
    """
    return base64.b64encode(hashlib.sha1(key + GUID, usedforsecurity=False).digest())


def _decode_key(key: bytes) -> bytes:
    # §4.1 item 7: "a base64-encoded ... value that, when decoded, is 16 bytes in length". Strict
    # decoding: no whitespace, no missing padding, no characters outside the alphabet.
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        raise HandshakeError(f"Sec-WebSocket-Key {printable(key)} is not base64") from None
    if len(raw) != 16:
        raise HandshakeError(f"Sec-WebSocket-Key decodes to {len(raw)} bytes, expected 16")
    return raw


def _error(message: str, status: int, headers: tuple[tuple[bytes, bytes], ...] = ()) -> HandshakeError:
    exc = HandshakeError(message, status_hint=status)
    exc.headers = headers
    return exc


def _single(headers: Headers, name: bytes, display: str) -> bytes | None:
    values = _values(headers, name)
    if len(values) > 1:
        raise HandshakeError(f"{len(values)} {display} fields, expected one")
    return values[0] if values else None


# RFC 9110 §15.5.22: a 426 "MUST send an Upgrade header field to indicate the acceptable protocols".
_UPGRADE_HEADERS = ((b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"))


def _check_upgrade(headers: Headers, status: int) -> None:
    """§4.2.1 items 3-4 (server) / §4.1 items 2-3 of the response checks (client)."""
    try:
        upgrade = parse_token_list(_values(headers, b"upgrade"), protocols=True)
        connection = parse_token_list(_values(headers, b"connection"))
    except ValueError as exc:
        raise _error(f"invalid Upgrade or Connection field: {exc}", 400) from None
    # §4.2.1 item 3: "An |Upgrade| header field containing the value "websocket", treated as an ASCII
    # case-insensitive value" (it may sit in a list of protocols).
    if not any(token.lower() == "websocket" for token in upgrade):
        received = ", ".join(upgrade) or "nothing"
        raise _error(f"Upgrade is {received}, expected websocket", status, _UPGRADE_HEADERS)
    if not any(token.lower() == "upgrade" for token in connection):
        received = ", ".join(connection) or "nothing"
        raise _error(f"Connection is {received}, expected a list with upgrade", status, _UPGRADE_HEADERS)


# --- Server side (§4.2) ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """A handshake the server accepts.

    Attributes:
        headers: the fields of the ``101 Switching Protocols`` response (§4.2.2 item 5).
        subprotocol: the chosen subprotocol, or None.
        extension: the negotiated permessage-deflate state, to pass to ``WebSocketConnection``.
    """

    headers: Headers
    subprotocol: str | None
    extension: PerMessageDeflate | None


def accept(
    method: bytes,
    http_version: bytes,
    headers: Headers,
    *,
    subprotocols: Sequence[str] = (),
    origins: Collection[str | None] | None = None,
    deflate: DeflateOptions | None = SERVER_DEFAULTS,
) -> Accept:
    """Validate a client's opening handshake and build the 101 response (RFC 6455 §4.2).

    Subprotocols are chosen in the *client's* order of preference: §4.1 item 10 says the client lists
    them "ordered by preference", so the first of its choices that the server supports wins.

    Args:
        method: the request method (must be ``GET``, §4.1 item 2).
        http_version: ``b"1.1"`` (or ``b"HTTP/1.1"``); at least 1.1 is required (§4.1 item 2).
        headers: the request's header fields.
        subprotocols: the subprotocols this endpoint speaks.
        origins: allowed ``Origin`` values (compared case-insensitively); include ``None`` to allow
            requests without an Origin (non-browser clients). ``None`` disables the check (§10.2).
        deflate: permessage-deflate options, or None to never compress.

    Returns:
        The response headers, the subprotocol and the extension.

    Raises:
        HandshakeError: 405 (not GET; ``Allow: GET``), 426 (no websocket upgrade, or a version other
            than 13; with ``Upgrade`` or ``Sec-WebSocket-Version: 13``), 403 (origin not allowed), or
            400 (anything else malformed).
    """
    if method != b"GET":
        raise _error(f"method {printable(method)}, expected GET", 405, ((b"Allow", b"GET"),))
    if http_version.removeprefix(b"HTTP/") != b"1.1":
        raise _error(f"HTTP version {printable(http_version)}, expected 1.1", 400)
    if not _values(headers, b"host"):
        raise HandshakeError("no Host field")  # §4.1 item 4; RFC 9112 §3.2 makes it 400
    _check_upgrade(headers, 426)
    # §4.2.2: an unsupported version gets 426 and the versions we speak. Checked before the key: an
    # old draft's client (Sec-WebSocket-Key1/2) then learns what to speak instead of "bad key".
    version = _values(headers, b"sec-websocket-version")
    if version != [b"13"]:
        received = printable(b", ".join(version)) if version else "nothing"
        # RFC 9110 §15.5.22: every 426 carries Upgrade too, not only the §4.2.2 version list.
        raise _error(
            f"Sec-WebSocket-Version is {received}, expected 13",
            426,
            ((b"Sec-WebSocket-Version", b"13"), *_UPGRADE_HEADERS),
        )
    key = _single(headers, b"sec-websocket-key", "Sec-WebSocket-Key")
    if key is None:
        raise HandshakeError("no Sec-WebSocket-Key field")
    _decode_key(key)
    response: Headers = [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", accept_key(key)),
    ]
    return _negotiate(headers, response, subprotocols, origins, deflate)


def _negotiate(
    headers: Headers,
    response: Headers,
    subprotocols: Sequence[str],
    origins: Collection[str | None] | None,
    deflate: DeflateOptions | None,
) -> Accept:
    """The part of the handshake HTTP/1.1 and HTTP/2 share (RFC 8441 §5 keeps Origin, subprotocols and
    extensions as RFC 6455 has them): the Origin check, then the subprotocol and permessage-deflate,
    appended to ``response``."""
    # §10.2: the Origin check protects servers from cross-site use by browsers.
    if origins is not None:
        origin = _single(headers, b"origin", "Origin")
        text = None if origin is None else origin.decode("latin-1").lower()
        allowed = {o if o is None else o.lower() for o in origins}
        if text not in allowed:
            shown = "no Origin" if origin is None else f"Origin {printable(origin)}"
            raise _error(f"{shown} is not allowed", 403)
    try:
        offered = parse_token_list(_values(headers, b"sec-websocket-protocol"))
        extensions = parse_extensions(_values(headers, b"sec-websocket-extensions"))
    except ValueError as exc:
        raise HandshakeError(f"invalid Sec-WebSocket-Protocol or -Extensions: {exc}") from None
    subprotocol = next((p for p in offered if p in subprotocols), None)
    if subprotocol is not None:
        response.append((b"Sec-WebSocket-Protocol", subprotocol.encode("ascii")))
    # §9.1: extensions the server does not know are simply not echoed (declined).
    extension = None
    if deflate is not None:
        result = negotiate_server([p for name, p in extensions if name == EXTENSION_NAME], deflate)
        if result is not None:
            params, extension = result
            response.append((b"Sec-WebSocket-Extensions", serialize_extensions([(EXTENSION_NAME, params)])))
    return Accept(response, subprotocol, extension)


def accept_connect(
    protocol: bytes,
    headers: Headers,
    *,
    subprotocols: Sequence[str] = (),
    origins: Collection[str | None] | None = None,
    deflate: DeflateOptions | None = SERVER_DEFAULTS,
) -> Accept:
    """Validate a WebSocket opened by an extended CONNECT over HTTP/2 (RFC 8441 §4, §5).

    The HTTP/2 layer has checked the request's shape already (``:method`` CONNECT with ``:protocol``,
    ``:scheme``, ``:path`` and ``:authority``, RFC 8441 §4). What is left is RFC 6455's handshake minus
    the parts HTTP/2 replaces (§5): no ``Upgrade``/``Connection`` (the stream is the tunnel), and no
    ``Sec-WebSocket-Key``/``-Accept`` (they prove an HTTP/1.1 server understood the upgrade; a server
    that advertised ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` has said so already). The answer is a 200 whose
    fields are :attr:`Accept.headers`.

    Args:
        protocol: the ``:protocol`` pseudo-header (must be ``websocket``, RFC 8441 §9.1's token).
        headers: the request's regular fields (pseudo-headers may be present and are ignored).
        subprotocols: as for :func:`accept`.
        origins: as for :func:`accept`.
        deflate: as for :func:`accept`.

    Returns:
        The 200 response's fields (subprotocol, extension), the subprotocol and the extension.

    Raises:
        HandshakeError: 400 (another protocol, or a version other than 13, with
            ``Sec-WebSocket-Version: 13``; HTTP/2 has no 426, which needs ``Upgrade``, RFC 9113 §8.2.2),
            403 (origin not allowed), or 400 (malformed lists).
    """
    if protocol != b"websocket":
        raise HandshakeError(f":protocol {printable(protocol)}, expected websocket")
    # RFC 8441 §5: "Sec-WebSocket-Version ... [is] used [...] in the same way as defined in RFC 6455".
    version = _values(headers, b"sec-websocket-version")
    if version != [b"13"]:
        received = printable(b", ".join(version)) if version else "nothing"
        raise _error(
            f"Sec-WebSocket-Version is {received}, expected 13", 400, ((b"Sec-WebSocket-Version", b"13"),)
        )
    return _negotiate(headers, [], subprotocols, origins, deflate)


_REASONS = {400: b"Bad Request", 403: b"Forbidden", 405: b"Method Not Allowed", 426: b"Upgrade Required"}


def reject(exc: HandshakeError) -> tuple[int, bytes, Headers, bytes]:
    """Turn a refused handshake into an HTTP response (RFC 6455 §4.2.1, §4.4).

    Args:
        exc: the error :func:`accept` raised.

    Returns:
        ``(status, reason_phrase, headers, body)``: the body is the one-line reason in plain text, the
        headers include the error's own (``Allow``, ``Upgrade``, ``Sec-WebSocket-Version``).
    """
    status = exc.status_hint
    body = f"Failed to open a WebSocket connection: {exc}.\n".encode("utf-8", "backslashreplace")
    headers: Headers = [
        *exc.headers,
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", str(len(body)).encode("ascii")),
    ]
    return status, _REASONS.get(status, b"Bad Request"), headers, body


# --- Client side (§4.1) ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A client's opening handshake: the headers to send and what they offered.

    Attributes:
        headers: the request's fields (after the request line ``GET <target> HTTP/1.1``).
        key: the Sec-WebSocket-Key sent (base64).
        subprotocols: the subprotocols offered.
        deflate: the permessage-deflate options offered, or None.
    """

    headers: Headers
    key: bytes
    subprotocols: tuple[str, ...]
    deflate: DeflateOptions | None


@dataclass(frozen=True, slots=True)
class ClientResult:
    """A server's accepted answer.

    Attributes:
        subprotocol: the subprotocol the server chose, or None.
        extension: the negotiated permessage-deflate state, to pass to ``WebSocketConnection``.
    """

    subprotocol: str | None
    extension: PerMessageDeflate | None


def build_request(
    host: str,
    *,
    nonce: Callable[[], bytes],
    subprotocols: Sequence[str] = (),
    origin: str | None = None,
    deflate: DeflateOptions | None = CLIENT_DEFAULTS,
) -> ClientRequest:
    """Build a client's opening handshake (RFC 6455 §4.1).

    Args:
        host: the Host field value (``host`` or ``host:port``).
        nonce: returns 16 random bytes for the key (§4.1 item 7: "randomly selected"); pass
            ``lambda: secrets.token_bytes(16)``, or a constant in tests.
        subprotocols: subprotocols to offer, most preferred first.
        origin: an Origin field to send, if any.
        deflate: permessage-deflate options to offer, or None.

    Returns:
        The request: headers to send, and what :func:`check_response` needs.

    Raises:
        ValueError: ``nonce()`` did not return 16 bytes.
    """
    raw = nonce()
    if len(raw) != 16:
        raise ValueError(f"nonce() returned {len(raw)} bytes, expected 16")
    key = base64.b64encode(raw)
    headers: Headers = [
        (b"Host", host.encode("ascii")),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", key),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    if origin is not None:
        headers.append((b"Origin", origin.encode("ascii")))
    if subprotocols:
        headers.append((b"Sec-WebSocket-Protocol", ", ".join(subprotocols).encode("ascii")))
    if deflate is not None and deflate.enabled:
        offer = serialize_extensions([(EXTENSION_NAME, client_offer(deflate))])
        headers.append((b"Sec-WebSocket-Extensions", offer))
    else:
        deflate = None
    return ClientRequest(headers, key, tuple(subprotocols), deflate)


def check_response(request: ClientRequest, status: int, headers: Headers) -> ClientResult:
    """Validate the server's answer to :func:`build_request` (RFC 6455 §4.1, "the client MUST ...").

    Args:
        request: what was sent.
        status: the response status code.
        headers: the response's header fields.

    Returns:
        The chosen subprotocol and the negotiated extension.

    Raises:
        HandshakeError: any check failed; the message says which and what was received.
    """
    if status != 101:
        raise HandshakeError(f"status {status}, expected 101")
    _check_upgrade(headers, 400)
    accept_value = _single(headers, b"sec-websocket-accept", "Sec-WebSocket-Accept")
    if accept_value != accept_key(request.key):
        shown = "nothing" if accept_value is None else printable(accept_value)
        raise HandshakeError(f"Sec-WebSocket-Accept is {shown}, expected {accept_key(request.key).decode()}")
    try:
        chosen = parse_token_list(_values(headers, b"sec-websocket-protocol"))
        extensions = parse_extensions(_values(headers, b"sec-websocket-extensions"))
    except ValueError as exc:
        raise HandshakeError(f"invalid Sec-WebSocket-Protocol or -Extensions: {exc}") from None
    # §4.1: a subprotocol "that was not present in the client's handshake" fails the connection.
    if len(chosen) > 1:
        raise HandshakeError(f"server chose {len(chosen)} subprotocols, expected at most one")
    subprotocol = chosen[0] if chosen else None
    if subprotocol is not None and subprotocol not in request.subprotocols:
        raise HandshakeError(f"server chose subprotocol {subprotocol!r}, which was not offered")
    # §4.1: an extension "not present in the client's handshake" fails the connection.
    extension = None
    for name, params in extensions:
        if name != EXTENSION_NAME or request.deflate is None:
            raise HandshakeError(f"server accepted extension {name!r}, which was not offered")
        if extension is not None:
            raise HandshakeError(f"server accepted {EXTENSION_NAME} twice")
        extension = accept_client_response(params, request.deflate)
    return ClientResult(subprotocol, extension)
