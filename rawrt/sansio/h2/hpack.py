# HPACK, header compression for HTTP/2 (RFC 7541): the decoder and the encoder, sans I/O.
#
# Contract:
#   * ``Decoder.decode(block)`` takes one *whole* header block (HTTP/2 joins HEADERS and CONTINUATION
#     payloads before decoding, RFC 9113 §4.3) and returns its fields as ``HeaderField(name, value,
#     sensitive)`` tuples, ``sensitive`` being the never-indexed flag (§6.2.3). It raises ``HPACKError``
#     when the block cannot be decoded (HTTP/2: COMPRESSION_ERROR, the connection is lost) and
#     ``HeaderListTooLarge`` when the fields add up past the header-list limit (HTTP/2: 431 or
#     REFUSED_STREAM, the connection goes on).
#   * ``Encoder.encode(headers)`` returns one header block; a table size change asked for with
#     ``set_max_table_size()`` goes out at the start of the next block (§4.2, RFC 9113 §4.3.1).
#   * Nothing here knows about frames, streams or HTTP semantics: names are not checked for upper case or
#     pseudo-header order (RFC 9113 §8.2 and §8.3 are the connection layer's job). Any octets round-trip.
#
# Strategy:
#   * Every integer is read with a bound (``MAX_INTEGER``, and at most ``MAX_INTEGER_OCTETS`` octets), every
#     string length is checked against what is left of the block before anything is sliced, so a hostile
#     block costs work linear in its length and never more memory than its size plus the output.
#   * The header-list limit is counted while decoding. Past it, fields are no longer collected, but the rest
#     of the block is still read so the dynamic table stays in step (RFC 9113 §10.5.1). An "HPACK bomb" (one
#     large value in the dynamic table, referenced by thousands of one-octet indexed fields) therefore costs
#     one step per input octet and builds nothing.
#   * The dynamic table (§2.3.2, §4) is one ``HeaderTable`` class shared by both sides; it keeps each entry's
#     insertion number so that the encoder finds a field or a name in O(1) instead of scanning.

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

from rawrt.errors import HeaderListTooLarge, HPACKError, LocalProtocolError
from rawrt.limits import DEFAULT_LIMITS
from rawrt.sansio.h2.huffman import huffman_decode, huffman_encode, huffman_length

__all__ = [
    "BytesLike",
    "HeaderField",
    "HeaderTable",
    "Decoder",
    "Encoder",
    "STATIC_TABLE",
    "ENTRY_OVERHEAD",
    "DEFAULT_HEADER_TABLE_SIZE",
    "MAX_INTEGER",
    "MAX_INTEGER_OCTETS",
    "encode_integer",
    "decode_integer",
    "encode_string",
    "decode_string",
]

#: Anything the stdlib accepts as a read-only byte buffer.
BytesLike = bytes | bytearray | memoryview

#: §4.1: an entry's size is its name's length plus its value's length plus 32 (an estimate of the overhead
#: of an entry, two pointers and two lengths). RFC 9113 §6.5.2 counts a header list the same way.
ENTRY_OVERHEAD = 32

#: The initial SETTINGS_HEADER_TABLE_SIZE, so the dynamic table's initial maximum (RFC 9113 §6.5.2).
DEFAULT_HEADER_TABLE_SIZE = 4096

#: The largest integer a decoder accepts (§5.1 sets no bound; "integer values that exceed implementation
#: limits" are a decoding error). Table sizes are SETTINGS values, which are 32-bit (RFC 9113 §6.5.1), and no
#: index or string length in a real block comes close, so 2**32 - 1 is enough for every use.
MAX_INTEGER = 2**32 - 1

#: The most continuation octets an integer may have: 5 carry 35 bits, which covers MAX_INTEGER with any
#: prefix. More can only be zero-valued padding ("0x80 0x80 ..."), a way to make the decoder loop.
MAX_INTEGER_OCTETS = 5


class HeaderField(NamedTuple):
    """One header field: ``(name, value, sensitive)``.

    A tuple, so ``name, value, sensitive = field`` works and ``field[:2]`` is the plain pair.
    ``sensitive`` is the never-indexed flag (§6.2.3, §7.1.3): set on a decoded field that came as a
    "literal never indexed", and honoured by the encoder, which then never indexes it. An intermediary that
    re-encodes a decoded list therefore keeps the protection the origin asked for, as §6.2.3 requires.
    """

    name: bytes
    value: bytes
    sensitive: bool = False


#: The static table (Appendix A). Index 1 is the first entry; ``STATIC_TABLE[0]`` is a placeholder so that
#: indices need no arithmetic (index 0 is never valid, §6.1).
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b"", b""),
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)

#: Entries in the static table; the dynamic table's first index is one more (§2.3.3).
STATIC_LENGTH = len(STATIC_TABLE) - 1

# The encoder's lookups in the static table: a whole field, and a name (its lowest index, the shortest
# integer). ``setdefault`` keeps the first index where a name repeats (":method", ":status"...).
_STATIC_FIELDS: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAMES: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(STATIC_TABLE[1:], start=1):
    _STATIC_FIELDS.setdefault((_name, _value), _index)
    _STATIC_NAMES.setdefault(_name, _index)
del _index, _name, _value

# §7.1.3: fields whose values are secrets an attacker could guess one octet at a time through the
# compression ratio (CRIME-style) are sent as "never indexed". Credentials always; cookies when short,
# because a short value can be brute-forced (§7.1.3 names "a short cookie value" as the case in point;
# 20 octets is nghttp2's and hpack's threshold), while indexing long ones saves a lot on every request.
_ALWAYS_SENSITIVE = frozenset({b"authorization", b"proxy-authorization"})
_SHORT_COOKIE = 20


# --- §5.1 integers, §5.2 strings ---------------------------------------------------------------------------


def encode_integer(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """Encode ``value`` with an N-bit prefix (§5.1); ``flags`` fills the first octet's high bits.

    Args:
        value: a non-negative integer.
        prefix_bits: N, 1 to 8.
        flags: the representation's pattern in the bits above the prefix (e.g. ``0x80`` for §6.1).
    """
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = bytearray([flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_integer(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """Decode the integer whose N-bit prefix is in ``data[pos]`` (§5.1).

    Returns:
        ``(value, position after the integer)``.

    Raises:
        HPACKError: the block ends inside the integer, or it exceeds ``MAX_INTEGER`` or
            ``MAX_INTEGER_OCTETS`` continuation octets.
    """
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    end = len(data)
    while True:
        if pos == end:
            raise HPACKError("header block ends inside an integer (RFC 7541 §5.1)")
        if shift == 7 * MAX_INTEGER_OCTETS:
            raise HPACKError(f"integer longer than {MAX_INTEGER_OCTETS} continuation octets (RFC 7541 §5.1)")
        octet = data[pos]
        pos += 1
        value += (octet & 127) << shift
        shift += 7
        if value > MAX_INTEGER:
            raise HPACKError(f"integer larger than {MAX_INTEGER} (RFC 7541 §5.1)")
        if not octet & 128:
            return value, pos


def encode_string(data: bytes, huffman: bool | None = None) -> bytes:
    """Encode a string literal (§5.2): H flag and 7-bit-prefix length, then the octets.

    Args:
        data: the octets.
        huffman: ``True`` always Huffman-codes, ``False`` never; ``None`` picks Huffman only when it is
            strictly shorter (a tie keeps the raw octets, which cost nothing to decode).
    """
    if huffman is None:
        huffman = huffman_length(data) < len(data)
    if huffman:
        coded = huffman_encode(data)
        return encode_integer(len(coded), 7, 0x80) + coded
    return encode_integer(len(data), 7) + data


def decode_string(data: bytes, pos: int) -> tuple[bytes, int]:
    """Decode the string literal at ``data[pos]`` (§5.2).

    Returns:
        ``(octets, position after the string)``.

    Raises:
        HPACKError: the block ends before the string does, or its Huffman code is invalid.
    """
    if pos == len(data):
        raise HPACKError("header block ends before a string literal (RFC 7541 §5.2)")
    huffman = data[pos] & 0x80
    length, pos = decode_integer(data, pos, 7)
    end = pos + length
    # Checked before slicing: a declared length never makes the decoder wait for or copy bytes that are
    # not there (a block is whole, so a string longer than the rest of it is simply an error).
    if end > len(data):
        raise HPACKError(
            f"string literal of {length} octets, but only {len(data) - pos} left in the header block"
            " (RFC 7541 §5.2)"
        )
    raw = data[pos:end]
    return (huffman_decode(raw) if huffman else raw), end


# --- §2.3.2 and §4: the dynamic table -------------------------------------------------------------------


class HeaderTable:
    """The dynamic table (§2.3.2) with its size accounting (§4.1) and eviction (§4.4).

    Entries are numbered in insertion order; the newest has dynamic index ``STATIC_LENGTH + 1`` (62). The
    numbers let the encoder keep ``{field: number}`` and ``{name: number}`` maps of the newest copies, so
    it looks fields up in O(1); the index is then ``62 + (newest number - number)``.

    Attributes:
        max_size: the current maximum size (§4.2), set by a size update.
        size: the sum of the entries' sizes (§4.1).
    """

    def __init__(self, max_size: int = DEFAULT_HEADER_TABLE_SIZE) -> None:
        self.max_size = max_size
        self.size = 0
        # Newest first, so that dynamic index 62 is entries[0] and eviction pops from the right (§2.3.3).
        self._entries: deque[tuple[bytes, bytes]] = deque()
        self._inserted = 0  # entries ever added: the number of the next one
        self._fields: dict[tuple[bytes, bytes], int] = {}
        self._names: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[tuple[bytes, bytes]]:
        """The entries, newest (index 62) first: what RFC 7541 Appendix C prints after each example."""
        return list(self._entries)

    def get(self, index: int) -> tuple[bytes, bytes]:
        """The entry at ``index`` in the index address space (§2.3.3): static, then dynamic.

        Raises:
            HPACKError: index 0 (§6.1) or an index past the end of both tables (§2.3.3).
        """
        if 0 < index <= STATIC_LENGTH:
            return STATIC_TABLE[index]
        position = index - STATIC_LENGTH - 1
        if 0 <= position < len(self._entries):
            return self._entries[position]
        if index == 0:
            raise HPACKError("index 0 is not a valid index (RFC 7541 §6.1)")
        raise HPACKError(
            f"index {index} is past the end of the tables ({STATIC_LENGTH} static and {len(self._entries)}"
            " dynamic entries, RFC 7541 §2.3.3)"
        )

    def add(self, name: bytes, value: bytes) -> None:
        """Insert an entry, evicting the oldest ones until it fits (§4.4).

        An entry larger than the maximum size empties the table and is not added; that is not an error.
        """
        entry_size = len(name) + len(value) + ENTRY_OVERHEAD
        if entry_size > self.max_size:
            self._evict(0)
            return
        self._evict(self.max_size - entry_size)
        self._entries.appendleft((name, value))
        self.size += entry_size
        self._fields[name, value] = self._inserted
        self._names[name] = self._inserted
        self._inserted += 1

    def resize(self, max_size: int) -> None:
        """Set the maximum size, evicting entries until the table fits (§4.3)."""
        self.max_size = max_size
        self._evict(max_size)

    def _evict(self, target: int) -> None:
        """Evict the oldest entries until the table's size is at most ``target`` (§4.4)."""
        while self.size > target:
            name, value = self._entries.pop()
            self.size -= len(name) + len(value) + ENTRY_OVERHEAD
            # Forget the maps' entries only if they point at this copy: a newer copy may be in the table.
            evicted = self._inserted - len(self._entries) - 1
            if self._fields[name, value] == evicted:
                del self._fields[name, value]
            if self._names[name] == evicted:
                del self._names[name]

    def find(self, name: bytes, value: bytes) -> tuple[int, bool]:
        """Find a field for the encoder: ``(index, True)`` for the whole field, ``(index, False)`` for its
        name alone, ``(0, False)`` for neither. The static table wins, its indices being smaller."""
        index = _STATIC_FIELDS.get((name, value))
        if index is not None:
            return index, True
        number = self._fields.get((name, value))
        if number is not None:
            return STATIC_LENGTH + self._inserted - number, True
        index = _STATIC_NAMES.get(name)
        if index is not None:
            return index, False
        number = self._names.get(name)
        if number is not None:
            return STATIC_LENGTH + self._inserted - number, False
        return 0, False


# --- the decoder -----------------------------------------------------------------------------------------


class Decoder:
    """Decodes header blocks from one peer's encoder (one per HTTP/2 connection and direction).

    Args:
        max_table_size: SETTINGS_HEADER_TABLE_SIZE as we announced it: the dynamic table starts at this size,
            and a size update above it is an error (§4.2, §6.3).
        max_header_list_size: the most a decoded list may add up to, counting each field as name + value
            + 32 octets (RFC 9113 §6.5.2, the value we announce as SETTINGS_MAX_HEADER_LIST_SIZE).
    """

    def __init__(
        self,
        max_table_size: int = DEFAULT_HEADER_TABLE_SIZE,
        max_header_list_size: int = DEFAULT_LIMITS.h2_max_header_list_size,
    ) -> None:
        self.table = HeaderTable(max_table_size)
        self.max_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        self._update_required = False
        self._failed: HPACKError | None = None

    def set_max_table_size(self, size: int) -> None:
        """Apply a new SETTINGS_HEADER_TABLE_SIZE of ours, once the peer acknowledged it.

        When it is smaller than the table's current maximum, the peer's encoder must shrink its table, and
        signal it with a size update at the start of the next header block (§4.2, RFC 9113 §4.3.1): a
        block without one is then an error.
        """
        self.max_table_size = size
        if size < self.table.max_size:
            self._update_required = True

    def decode(self, block: BytesLike) -> list[HeaderField]:
        """Decode one whole header block.

        Returns:
            the fields in order, each with its never-indexed flag.

        Raises:
            HPACKError: the block is malformed (COMPRESSION_ERROR); the decoder is then unusable, as is the
                connection (RFC 9113 §4.3), and every later call raises it again.
            HeaderListTooLarge: the fields add up past ``max_header_list_size``. The whole block was
                still read, so the dynamic table is in step and the decoder can go on with the next block.
        """
        if self._failed is not None:
            raise HPACKError(f"the decoder failed earlier: {self._failed}")
        try:
            return self._decode(bytes(block))
        except HPACKError as exc:
            self._failed = exc
            raise

    def _decode(self, data: bytes) -> list[HeaderField]:
        table = self.table
        fields: list[HeaderField] = []
        limit = self.max_header_list_size
        total = 0  # the list's size so far (RFC 9113 §6.5.2); past ``limit``, fields are no longer kept
        updates_allowed = True  # size updates may only open a block (§4.2)
        pos = 0
        end = len(data)
        while pos < end:
            octet = data[pos]
            if octet & 0x80:
                # §6.1 indexed header field: 1xxxxxxx, index with a 7-bit prefix.
                index, pos = decode_integer(data, pos, 7)
                name, value = table.get(index)
                sensitive = False
            elif octet & 0x40:
                # §6.2.1 literal with incremental indexing: 01xxxxxx, name index with a 6-bit prefix.
                name, value, pos = self._literal(data, pos, 6)
                # The name was read before the insertion, so a name taken from the very entry this
                # insertion evicts is still right (§4.4 allows exactly that).
                table.add(name, value)
                sensitive = False
            elif octet & 0x20:
                # §6.3 dynamic table size update: 001xxxxx, new maximum size with a 5-bit prefix.
                if not updates_allowed:
                    raise HPACKError(
                        "dynamic table size update after a header field; it must open the block"
                        " (RFC 7541 §4.2)"
                    )
                size, pos = decode_integer(data, pos, 5)
                if size > self.max_table_size:
                    raise HPACKError(
                        f"dynamic table size update to {size}, above the SETTINGS_HEADER_TABLE_SIZE of"
                        f" {self.max_table_size} (RFC 7541 §6.3)"
                    )
                table.resize(size)
                self._update_required = False
                continue
            else:
                # §6.2.2 literal without indexing: 0000xxxx; §6.2.3 never indexed: 0001xxxx. Both have a
                # 4-bit name index prefix; only the never-indexed flag tells them apart.
                sensitive = bool(octet & 0x10)
                name, value, pos = self._literal(data, pos, 4)
            if self._update_required:
                raise self._missing_update()
            updates_allowed = False
            total += len(name) + len(value) + ENTRY_OVERHEAD
            if total <= limit:
                fields.append(HeaderField(name, value, sensitive))
            elif fields:
                fields = []  # let the kept fields go now, not when the block is done
        if self._update_required:
            raise self._missing_update()
        if total > limit:
            raise HeaderListTooLarge(
                f"header list of at least {total} octets (names, values and 32 per field) exceeds the limit"
                f" of {limit} (RFC 9113 §6.5.2)"
            )
        return fields

    def _missing_update(self) -> HPACKError:
        return HPACKError(
            f"SETTINGS_HEADER_TABLE_SIZE was lowered to {self.max_table_size}, below the table's"
            f" {self.table.max_size}, and the header block does not open with a size update (RFC 7541 §4.2)"
        )

    def _literal(self, data: bytes, pos: int, prefix_bits: int) -> tuple[bytes, bytes, int]:
        """Read a literal representation (§6.2): a name index (0: a literal name follows), then a value."""
        index, pos = decode_integer(data, pos, prefix_bits)
        if index:
            name = self.table.get(index)[0]
        else:
            name, pos = decode_string(data, pos)
        value, pos = decode_string(data, pos)
        return name, value, pos


# --- the encoder -----------------------------------------------------------------------------------------


class Encoder:
    """Encodes header lists for one peer's decoder (one per HTTP/2 connection and direction).

    Args:
        max_table_size: the dynamic table's size, which must match what the peer's decoder starts with: its
            SETTINGS_HEADER_TABLE_SIZE (4096 until its SETTINGS say otherwise).
    """

    def __init__(self, max_table_size: int = DEFAULT_HEADER_TABLE_SIZE) -> None:
        self.table = HeaderTable(max_table_size)
        # Size updates owed to the decoder: the smallest size set since the last block, and the last one.
        self._pending_min: int | None = None
        self._pending_last = max_table_size

    def set_max_table_size(self, size: int) -> None:
        """Use a new maximum table size, e.g. after the peer's SETTINGS_HEADER_TABLE_SIZE changed (it must
        not exceed that setting). Entries are evicted now; the size update opens the next block (§4.2).

        Raises:
            LocalProtocolError: ``size`` is negative or above ``MAX_INTEGER``.
        """
        if not 0 <= size <= MAX_INTEGER:
            raise LocalProtocolError(f"table size {size} is not between 0 and {MAX_INTEGER}")
        self.table.resize(size)
        self._pending_min = size if self._pending_min is None else min(self._pending_min, size)
        self._pending_last = size

    def encode(
        self,
        headers: Iterable[tuple[bytes, bytes] | tuple[bytes, bytes, bool]],
        huffman: bool | None = None,
    ) -> bytes:
        """Encode a header list into one header block.

        Args:
            headers: ``(name, value)`` pairs or ``(name, value, sensitive)`` triples (a decoded
                ``HeaderField`` is one), in order. Sensitive fields are sent never-indexed (§6.2.3), as are
                credentials and short cookies (§7.1.3).
            huffman: ``None`` Huffman-codes each string only when that is shorter; ``True`` or ``False``
                forces it.

        Returns:
            the header block, to be cut into HEADERS and CONTINUATION frames by the caller.
        """
        out = bytearray()
        if self._pending_min is not None:
            # §4.2: when the size was lowered and raised again between two blocks, the decoder must see the
            # smallest value first (so it evicts what the encoder evicted), then the final one.
            if self._pending_min < self._pending_last:
                out += encode_integer(self._pending_min, 5, 0x20)
            out += encode_integer(self._pending_last, 5, 0x20)
            self._pending_min = None
        table = self.table
        for header in headers:
            name, value = header[0], header[1]
            sensitive = len(header) > 2 and bool(header[2])
            if not sensitive:
                sensitive = name in _ALWAYS_SENSITIVE or (name == b"cookie" and len(value) < _SHORT_COOKIE)
            index, whole = table.find(name, value)
            if whole and not sensitive:
                out += encode_integer(index, 7, 0x80)  # §6.1
                continue
            if sensitive:
                out += encode_integer(index, 4, 0x10)  # §6.2.3: the value is always literal
            elif self._worth_indexing(name, value):
                out += encode_integer(index, 6, 0x40)  # §6.2.1
                table.add(name, value)
            else:
                out += encode_integer(index, 4, 0x00)  # §6.2.2
            if not index:
                out += encode_string(name, huffman)
            out += encode_string(value, huffman)
        return bytes(out)

    def _worth_indexing(self, name: bytes, value: bytes) -> bool:
        # An entry that takes more than three quarters of the table would evict nearly everything else for
        # one field; nghttp2 draws the line at the same place.
        return (len(name) + len(value) + ENTRY_OVERHEAD) * 4 <= self.table.max_size * 3
