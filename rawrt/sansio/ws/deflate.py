# permessage-deflate (RFC 7692): parameter negotiation, and bounded compression of whole messages.
#
# Contract:
#   * Negotiation is pure: the server calls ``negotiate_server(offers, options)`` with the offers parsed
#     from Sec-WebSocket-Extensions (handshake.py parses the header) and gets back the response
#     parameters and a ``PerMessageDeflate``, or ``None`` when no offer is acceptable (the connection then
#     goes on uncompressed: §5 lets a server decline). The client builds its offer with
#     ``client_offer(options)`` and checks the server's answer with ``accept_client_response``, which
#     raises ``HandshakeError`` on anything it did not ask for (§5: the client "MUST _Fail the WebSocket
#     Connection_").
#   * ``PerMessageDeflate`` is per-connection state used by ``WebSocketConnection``: it compresses and
#     decompresses frame payloads, and knows nothing of frames or RSV bits beyond that.
#   * Decompression is bounded as it inflates (``decompressobj.decompress(data, max_length)``): a 100 KB
#     frame that would inflate to 100 MiB is refused with 1009 after producing at most ``max_length + 1``
#     bytes. Nothing is ever inflated first and measured afterwards (RFC 7692 §8.1 warns about this).
#
# Memory: zlib's deflate state costs about 2**(wbits + 2) + 2**(memLevel + 9) bytes and inflate about
# 2**wbits (plus ~7 KB of fixed state each). rawrt's server defaults are websockets': a 12-bit window and
# memLevel 5 for the server's compressor (16 KiB + 16 KiB), and it asks clients that allow it for a
# 12-bit window too, so its inflater holds 4 KiB instead of 32 KiB. Compression ratio on chat-sized
# messages barely moves between 12 and 15 bits; memory per connection drops ~4x. With no_context_takeover
# a side's zlib object is dropped after each message, so an idle connection holds none.
#
# zlib refuses wbits=-8 for raw deflate *compression* ("Invalid initialization option"), so rawrt never
# agrees to compress with an 8-bit window: a client asking for server_max_window_bits=8 has that offer
# declined, and a server answering client_max_window_bits=8 fails a rawrt client's handshake. Use 9, as
# websockets does. Inflating an 8-bit stream is fine.

from __future__ import annotations

import zlib
from dataclasses import dataclass

from rawrt.errors import HandshakeError, LimitExceeded, RemoteProtocolError

from .frames import BytesLike

__all__ = [
    "EXTENSION_NAME",
    "DeflateOptions",
    "DeflateParams",
    "PerMessageDeflate",
    "negotiate_server",
    "client_offer",
    "accept_client_response",
    "ExtensionParams",
    "CLIENT_DEFAULTS",
    "SERVER_DEFAULTS",
    "ShareKey",
    "compress_message",
]

#: The extension token (RFC 7692 §7).
EXTENSION_NAME = "permessage-deflate"

#: Extension parameters as parsed from a header: ``(name, value or None)`` in received order.
ExtensionParams = list[tuple[str, str | None]]

# RFC 7692 §7.2.1: a sender removes the 4 octets 0x00 0x00 0xff 0xff (the empty stored block a sync
# flush ends with) from the end of each message; §7.2.2: the receiver appends them back.
_TAIL = b"\x00\x00\xff\xff"

# Below this size the tail is concatenated to the payload (one copy); above it, it is fed to a second
# decompress() call instead, so a large payload is not copied (the crossover: docs/topics/performance.md).
_TAIL_CONCAT_MAX = 2048


@dataclass(frozen=True, slots=True)
class DeflateOptions:
    """What one side is willing to do; the configuration, not the outcome of a negotiation.

    Attributes:
        enabled: offer (client) or accept (server) permessage-deflate at all.
        server_max_window_bits: server: the largest window the server will compress with (9-15);
            client: the window to ask the server for, or None not to ask.
        client_max_window_bits: server: the window to ask the client to compress with when it allows
            it (offered ``client_max_window_bits``), or None not to ask; client: None to offer
            ``client_max_window_bits`` without a value (we accept any window the server asks for),
            or 9-15 to ask for one.
        server_no_context_takeover: server: always reset the compressor per message (less memory,
            worse ratio); client: ask the server to.
        client_no_context_takeover: server: ask the client to reset per message; client: do it.
        mem_level: zlib memLevel for our compressor (1-9). 5 is websockets' choice: a 16 KiB hash
            table instead of 128 KiB for a ratio within a few percent on small messages.
        level: zlib compression level; 6 is zlib's default.
    """

    enabled: bool = True
    server_max_window_bits: int | None = 12
    client_max_window_bits: int | None = 12
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    mem_level: int = 5
    level: int = 6

    def __post_init__(self) -> None:
        for name in ("server_max_window_bits", "client_max_window_bits"):
            bits = getattr(self, name)
            if bits is not None and not 9 <= bits <= 15:
                raise ValueError(f"{name} must be 9-15 (zlib cannot compress with 8), got {bits}")
        if not 1 <= self.mem_level <= 9:
            raise ValueError(f"mem_level must be 1-9, got {self.mem_level}")


#: Client defaults: offer client_max_window_bits without a value and ask nothing of the server.
CLIENT_DEFAULTS = DeflateOptions(server_max_window_bits=None, client_max_window_bits=None)
#: Server defaults: compress with a 12-bit window, ask willing clients for 12 bits too.
SERVER_DEFAULTS = DeflateOptions()


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The parameters of one offer or one response (RFC 7692 §7.1).

    ``client_max_window_bits`` is ``True`` for the value-less form, which only an offer may use
    (§7.1.2.2).
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | bool | None = None

    @classmethod
    def parse(cls, params: ExtensionParams, *, offer: bool) -> DeflateParams:
        """Read the parameters of one offer or response.

        Args:
            params: ``(name, value)`` pairs from the header, quotes already removed (§7.1: "the
                value ... MAY be a quoted-string" and must then still be an integer).
            offer: True for a client's offer (value-less ``client_max_window_bits`` allowed).

        Returns:
            The parameters.

        Raises:
            ValueError: an unknown or duplicate parameter, or an invalid value (§7: the offer is
                then declined by a server and the handshake failed by a client).
        """
        found: dict[str, str | None] = {}
        for name, value in params:
            if name in found:
                raise ValueError(f"duplicate parameter {name}")  # §7: "MUST NOT ... more than one"
            found[name] = value
        server_nct = client_nct = False
        server_bits: int | None = None
        client_bits: int | bool | None = None
        for name, value in found.items():
            if name in ("server_no_context_takeover", "client_no_context_takeover"):
                if value is not None:
                    raise ValueError(f"{name} takes no value, got {value!r}")
                if name == "server_no_context_takeover":
                    server_nct = True
                else:
                    client_nct = True
            elif name == "server_max_window_bits":
                server_bits = _window_bits(name, value)
            elif name == "client_max_window_bits":
                # §7.1.2.2: only an offer may carry it without a value ("I accept any window").
                client_bits = True if value is None and offer else _window_bits(name, value)
            else:
                raise ValueError(f"unknown parameter {name}")
        return cls(server_nct, client_nct, server_bits, client_bits)

    def to_params(self) -> ExtensionParams:
        """Render as header parameters, in a fixed order."""
        params: ExtensionParams = []
        if self.server_no_context_takeover:
            params.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            params.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            params.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            params.append(("client_max_window_bits", None))
        elif self.client_max_window_bits:
            params.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return params


def _window_bits(name: str, value: str | None) -> int:
    # §7.1.2.1 / §7.1.2.2: "a decimal integer value without leading zeros between 8 to 15, inclusive".
    if value is None or len(value) > 2 or not value.isdigit() or value[0] == "0" or not 8 <= int(value) <= 15:
        raise ValueError(f"{name}={value!r}, expected 8-15")
    return int(value)


#: What decides the bytes of a message compressed from a fresh compressor: (window bits, level, memLevel).
#: Connections with the same key can be sent the very same compressed frame (see ``compress_message``).
ShareKey = tuple[int, int, int]


def compress_message(data: BytesLike, key: ShareKey) -> bytes:
    """Compress a whole message with a fresh compressor, for every connection whose ``share_key`` is ``key``.

    A broadcast compresses once and sends the result to many connections (``rawrt.websocket.fanout``).
    That is valid for each of them, with or without context takeover: the message refers to nothing
    before it (a fresh compressor has an empty window), and a decompressor that keeps its window
    (RFC 7692 §7.1.1.1, context takeover) simply never gets a reference into it; DEFLATE back-references
    are a permission, never a requirement (RFC 1951 §3.2.5). The window is at most ``key``'s, the one
    the peer agreed to inflate with (§7.1.2.1). The sender's own compressor of a context-takeover
    connection must then forget its context (``PerMessageDeflate.forget_context``): its history no
    longer matches the peer's.

    Args:
        data: the message's payload.
        key: ``(window bits, level, memLevel)``, a ``PerMessageDeflate.share_key``.

    Returns:
        The compressed payload, its trailing 0x00 0x00 0xff 0xff removed (§7.2.1).
    """
    bits, level, mem_level = key
    compressor = zlib.compressobj(level, zlib.DEFLATED, -bits, mem_level)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


class PerMessageDeflate:
    """permessage-deflate state of one connection (RFC 7692 §6 and §7.2).

    "Local" is the direction we send (we compress), "remote" the one we receive (we decompress). The
    connection calls :meth:`compress` for every data frame it sends in a compressed message and
    :meth:`decompress` for every data frame of a received message whose first frame had RSV1 set.

    Args:
        local_no_context_takeover: reset our compressor at each message (§7.1.1).
        remote_no_context_takeover: the peer resets its compressor at each message, so we reset our
            decompressor too (§7.1.1; not required for correctness, but frees its memory).
        local_max_window_bits: our compression window, 9-15.
        remote_max_window_bits: the peer's compression window, 8-15: our decompression window.
        mem_level: zlib memLevel of our compressor.
        level: zlib compression level.
    """

    __slots__ = (
        "local_no_context_takeover",
        "remote_no_context_takeover",
        "local_max_window_bits",
        "remote_max_window_bits",
        "mem_level",
        "level",
        "_compressor",
        "_decompressor",
        "_ended",
    )

    def __init__(
        self,
        *,
        local_no_context_takeover: bool = False,
        remote_no_context_takeover: bool = False,
        local_max_window_bits: int = 15,
        remote_max_window_bits: int = 15,
        mem_level: int = 5,
        level: int = 6,
    ) -> None:
        if not 9 <= local_max_window_bits <= 15:
            raise ValueError(f"cannot compress with a {local_max_window_bits}-bit window (zlib: 9-15)")
        if not 8 <= remote_max_window_bits <= 15:
            raise ValueError(f"invalid decompression window {remote_max_window_bits}")
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.mem_level = mem_level
        self.level = level
        # Created on first use and dropped after each message without context takeover, so an idle
        # connection that never compresses (or resets per message) holds no zlib state at all.
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        # The peer's deflate stream hit a BFINAL block inside the current message (§7.2.3.4 allows it).
        self._ended = False

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_max_window_bits={self.local_max_window_bits}, "
            f"remote_max_window_bits={self.remote_max_window_bits})"
        )

    @property
    def share_key(self) -> ShareKey:
        """What a message compressed for this connection depends on (see :func:`compress_message`)."""
        return (self.local_max_window_bits, self.level, self.mem_level)

    def forget_context(self) -> None:
        """Start the next message from an empty window: the peer got a message we did not compress here.

        Always valid (RFC 7692 §7.1.1.1: context takeover is what a peer allows, not what we must do).
        """
        self._compressor = None

    def compress(self, data: BytesLike, *, fin: bool) -> bytes:
        """Compress one frame's worth of a message (RFC 7692 §7.2.1).

        Args:
            data: the uncompressed payload of this frame.
            fin: this is the message's last frame: the trailing 0x00 0x00 0xff 0xff is removed.

        Returns:
            The compressed payload.
        """
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self.level, zlib.DEFLATED, -self.local_max_window_bits, self.mem_level
            )
        # Z_SYNC_FLUSH ends each frame on a byte boundary with an empty stored block, so the peer can
        # inflate every frame as it arrives; the block is the 4 octets §7.2.1 strips at message end.
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            out = out[:-4]
            if self.local_no_context_takeover:
                self._compressor = None
        return out

    def decompress(self, data: bytes, *, fin: bool, max_length: int) -> bytes:
        """Decompress one frame's payload of a compressed message (RFC 7692 §7.2.2).

        Args:
            data: the compressed payload as received.
            fin: this is the message's last frame: 0x00 0x00 0xff 0xff is appended first.
            max_length: the most bytes this frame may inflate to (what is left of the message limit).

        Returns:
            The decompressed bytes, at most ``max_length`` of them.

        Raises:
            LimitExceeded: the frame inflates past ``max_length`` (close 1009); inflation stopped at
                ``max_length + 1`` bytes.
            RemoteProtocolError: the data is not a valid deflate stream (close 1002).
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-self.remote_max_window_bits)
        if self._ended and data:
            raise RemoteProtocolError("compressed data after the final deflate block of the message")
        try:
            if fin and len(data) <= _TAIL_CONCAT_MAX:
                out = decompressor.decompress(data + _TAIL, max_length + 1)
            else:
                out = decompressor.decompress(data, max_length + 1)
                if fin and len(out) <= max_length:
                    # Flushing may release output held back by the limit: bound this call too.
                    out += decompressor.decompress(_TAIL, max_length + 1 - len(out))
        except zlib.error as exc:
            raise RemoteProtocolError(f"invalid compressed data: {exc}") from None
        # max_length + 1 means "one byte more than allowed is enough to know it is too much": zlib
        # leaves the rest in unconsumed_tail without inflating it.
        if len(out) > max_length:
            raise LimitExceeded(f"compressed message inflates past the limit ({max_length} bytes left)")
        if decompressor.eof:
            self._ended = True
        if fin:
            self._ended = False
            # A stream that ended (BFINAL) cannot take more input: start afresh for the next message.
            if self.remote_no_context_takeover or decompressor.eof:
                self._decompressor = None
        return out


# --- Negotiation (RFC 7692 §5, §7.1) -----------------------------------------------------------------------


def negotiate_server(
    offers: list[ExtensionParams], options: DeflateOptions = SERVER_DEFAULTS
) -> tuple[ExtensionParams, PerMessageDeflate] | None:
    """Pick the first acceptable permessage-deflate offer and build the response (RFC 7692 §5, §7.1).

    Offers are tried in the client's order (§5.1: the client lists them "in its preference order").
    An offer that is invalid (unknown or duplicate parameter, bad value) or that cannot be honoured is
    declined and the next one tried (§7: "the server MUST decline an extension negotiation offer" it
    cannot accept); when none fits the connection goes on uncompressed.

    Args:
        offers: the parameters of each ``permessage-deflate`` element of Sec-WebSocket-Extensions.
        options: what the server accepts and prefers.

    Returns:
        ``(response_params, extension)``, or ``None`` to decline them all.
    """
    if not options.enabled:
        return None
    for params in offers:
        try:
            offer = DeflateParams.parse(params, offer=True)
        except ValueError:
            continue
        # server_max_window_bits (§7.1.2.1): our configured maximum, but never more than the client
        # asked for. zlib cannot compress with 8 bits: decline rather than promise it.
        server_bits = offer.server_max_window_bits
        if options.server_max_window_bits is not None:
            server_bits = min(server_bits or 15, options.server_max_window_bits)
        if server_bits == 8:
            continue
        # client_max_window_bits (§7.1.2.2): only if the client offered it ("MUST NOT include" it
        # otherwise); a value-less offer means "any value is fine", a value M means "at most M".
        client_bits = offer.client_max_window_bits
        if client_bits is True:
            client_bits = options.client_max_window_bits
        elif client_bits is not None and options.client_max_window_bits is not None:
            client_bits = min(client_bits, options.client_max_window_bits)
        response = DeflateParams(
            # §7.1.1.1: a server that is asked for no context takeover "MUST include" it; it may
            # also impose it itself.
            server_no_context_takeover=offer.server_no_context_takeover or options.server_no_context_takeover,
            # §7.1.1.2: the client's announcement may be echoed; the server may also demand it.
            client_no_context_takeover=offer.client_no_context_takeover or options.client_no_context_takeover,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
        )
        extension = PerMessageDeflate(
            local_no_context_takeover=response.server_no_context_takeover,
            remote_no_context_takeover=response.client_no_context_takeover,
            local_max_window_bits=server_bits or 15,
            remote_max_window_bits=int(client_bits or 15),
            mem_level=options.mem_level,
            level=options.level,
        )
        return response.to_params(), extension
    return None


def client_offer(options: DeflateOptions = CLIENT_DEFAULTS) -> ExtensionParams:
    """The parameters of the client's permessage-deflate offer (RFC 7692 §7.1).

    ``client_max_window_bits`` is always offered: without a value it tells the server we can compress
    with any window it asks for (9-15, see the module note on 8), which lets a server save memory.

    Args:
        options: what to ask for.

    Returns:
        The offer's parameters, for the Sec-WebSocket-Extensions header.
    """
    return DeflateParams(
        server_no_context_takeover=options.server_no_context_takeover,
        client_no_context_takeover=options.client_no_context_takeover,
        server_max_window_bits=options.server_max_window_bits,
        client_max_window_bits=options.client_max_window_bits or True,
    ).to_params()


def accept_client_response(
    params: ExtensionParams, options: DeflateOptions = CLIENT_DEFAULTS
) -> PerMessageDeflate:
    """Check the server's permessage-deflate response against our offer (RFC 7692 §7.1).

    Args:
        params: the response's parameters.
        options: what :func:`client_offer` offered.

    Returns:
        The extension state for the client's connection.

    Raises:
        HandshakeError: the response is invalid or does not answer our offer; RFC 7692 §5: the client
            "MUST _Fail the WebSocket Connection_".
    """
    try:
        response = DeflateParams.parse(params, offer=False)
    except ValueError as exc:
        raise HandshakeError(f"invalid permessage-deflate response: {exc}") from None
    # §7.1.1.1: a server accepting an offer with server_no_context_takeover "MUST include" it.
    if options.server_no_context_takeover and not response.server_no_context_takeover:
        raise HandshakeError("permessage-deflate: server_no_context_takeover was asked for, not granted")
    server_bits = response.server_max_window_bits
    if options.server_max_window_bits is not None:
        # §7.1.2.1: the server answers "with the same or smaller value as the offer".
        if server_bits is None or server_bits > options.server_max_window_bits:
            raise HandshakeError(
                f"permessage-deflate: server_max_window_bits={server_bits}, "
                f"asked for at most {options.server_max_window_bits}"
            )
    client_bits = response.client_max_window_bits
    assert client_bits is not True  # parse(offer=False) requires a value
    if client_bits is not None:
        if options.client_max_window_bits is not None and client_bits > options.client_max_window_bits:
            raise HandshakeError(
                f"permessage-deflate: client_max_window_bits={client_bits}, "
                f"offered at most {options.client_max_window_bits}"
            )
        if client_bits == 8:
            raise HandshakeError("permessage-deflate: client_max_window_bits=8 is not supported by zlib")
    return PerMessageDeflate(
        local_no_context_takeover=response.client_no_context_takeover or options.client_no_context_takeover,
        remote_no_context_takeover=response.server_no_context_takeover,
        local_max_window_bits=int(client_bits or options.client_max_window_bits or 15),
        remote_max_window_bits=server_bits or 15,
        mem_level=options.mem_level,
        level=options.level,
    )
