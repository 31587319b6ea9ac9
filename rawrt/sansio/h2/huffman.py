# HPACK's static Huffman code (RFC 7541 §5.2 and Appendix B), both ways.
#
# Contract:
#   * ``huffman_encode(data)`` returns the code of ``data`` padded to a whole octet with the most
#     significant bits of EOS, i.e. with 1 bits (§5.2); ``huffman_length(data)`` is its length in octets,
#     computed without encoding, so the encoder can pick the shorter form first.
#   * ``huffman_decode(data)`` returns the decoded octets or raises ``HPACKError`` (COMPRESSION_ERROR in
#     HTTP/2) for each case §5.2 makes a decoding error: the EOS symbol in the string, padding longer than
#     7 bits, and padding that is not the most significant bits of EOS (i.e. not all 1 bits).
#
# The table is data, not code. Appendix B's code is *canonical*: the codes of one length are consecutive
# and ordered by symbol, and each length's first code follows from the previous length's last one. So the
# 257 code lengths below determine every code, and the codes are rebuilt from them at import time (the
# tests check the result against rows of Appendix B and against the ``hpack`` package's table).
#
# Decoding walks the code tree four bits at a time through a table built at import (state x nibble ->
# next state, symbol emitted), the classic approach of nghttp2's generated decoder: a nibble emits at most
# one symbol because the shortest code has 5 bits. That is two table lookups per input octet instead of
# eight branches, and the work is linear in the input whatever it holds.

from __future__ import annotations

from rawrt.errors import HPACKError

__all__ = ["CODE_LENGTHS", "CODES", "EOS", "huffman_encode", "huffman_decode", "huffman_length"]

#: The end-of-string symbol (Appendix B, symbol 256). It must never appear in a decoded string (§5.2).
EOS = 256

#: Bit length of each symbol's code, symbols 0 to 256 (EOS), transcribed from RFC 7541 Appendix B.
CODE_LENGTHS: tuple[int, ...] = (
    # 0-15
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    # 16-31
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    # 32-47: ' ' to '/'
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    # 48-63: '0' to '?'
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    # 64-79: '@' to 'O'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    # 80-95: 'P' to '_'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    # 96-111: '`' to 'o'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    # 112-127: 'p' to DEL
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    # 128-143
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    # 144-159
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    # 160-175
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    # 176-191
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    # 192-207
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    # 208-223
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    # 224-239
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    # 240-255
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    # 256: EOS
    30,
)  # fmt: skip


def _canonical_codes(lengths: tuple[int, ...]) -> tuple[int, ...]:
    """Assign canonical Huffman codes: by length, then by symbol, each code one more than the previous
    one, shifted left when the length grows."""
    codes = [0] * len(lengths)
    code = 0
    previous = 0
    for rank, symbol in enumerate(sorted(range(len(lengths)), key=lambda s: (lengths[s], s))):
        if rank:
            code += 1
        code <<= lengths[symbol] - previous
        previous = lengths[symbol]
        codes[symbol] = code
    return tuple(codes)


#: Each symbol's code, right-aligned (Appendix B's "code as hex" column).
CODES: tuple[int, ...] = _canonical_codes(CODE_LENGTHS)

# The codes as strings of '0' and '1': encoding joins them and converts once, and ``int(s, 2)`` is linear
# for a power-of-two base, where shifting one growing integer per octet would be quadratic.
_BIT_STRINGS: tuple[str, ...] = tuple(format(c, f"0{n}b") for c, n in zip(CODES, CODE_LENGTHS, strict=True))


def huffman_length(data: bytes) -> int:
    """Octets that ``huffman_encode(data)`` returns, without encoding."""
    bits = sum(CODE_LENGTHS[b] for b in data)
    return (bits + 7) // 8


def huffman_encode(data: bytes) -> bytes:
    """Huffman-encode ``data`` (RFC 7541 §5.2), padded with the most significant bits of EOS (all 1s)."""
    if not data:
        return b""
    bits = "".join([_BIT_STRINGS[b] for b in data])
    padding = -len(bits) % 8
    return int(bits + "1" * padding, 2).to_bytes((len(bits) + padding) // 8, "big")


# --- the decoder's tables, built once at import ------------------------------------------------------------


def _build_tree() -> list[list[int]]:
    """The code tree as ``nodes[i] = [child for bit 0, child for bit 1]``: a child ``>= 0`` is a node, a
    child ``< 0`` is the leaf of symbol ``-child - 1``. Node 0 is the root."""
    nodes: list[list[int]] = [[0, 0]]
    for symbol, (code, length) in enumerate(zip(CODES, CODE_LENGTHS, strict=True)):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if nodes[node][bit] == 0:  # 0 is never a child: the root is nobody's child
                nodes.append([0, 0])
                nodes[node][bit] = len(nodes) - 1
            node = nodes[node][bit]
        nodes[node][code & 1] = -symbol - 1
    return nodes


def _build_tables() -> tuple[tuple[tuple[int, int], ...], tuple[bool, ...]]:
    """``(transitions, accepting)``.

    ``transitions[state * 16 + nibble]`` is ``(next state, symbol emitted or -1)`` after reading the four
    bits of ``nibble`` (most significant first) from node ``state``. ``accepting[state]`` says whether a
    string may end in that state: at the root (a symbol boundary), or on the all-ones path from the root
    at most 7 bits deep, which is exactly "padding of at most 7 bits that is a prefix of EOS" (§5.2).
    """
    nodes = _build_tree()
    transitions: list[tuple[int, int]] = []
    for state in range(len(nodes)):
        for nibble in range(16):
            node, emitted = state, -1
            for shift in (3, 2, 1, 0):
                child = nodes[node][(nibble >> shift) & 1]
                if child < 0:
                    emitted, node = -child - 1, 0
                else:
                    node = child
            transitions.append((node, emitted))
    accepting = [False] * len(nodes)
    node = 0
    for _depth in range(8):  # the root, then 1 to 7 one-bits
        accepting[node] = True
        node = nodes[node][1]
    return tuple(transitions), tuple(accepting)


_TRANSITIONS, _ACCEPTING = _build_tables()


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-coded string (RFC 7541 §5.2).

    Raises:
        HPACKError: the string holds EOS, or ends with padding longer than 7 bits or not made of 1 bits.
    """
    out = bytearray()
    state = 0
    transitions = _TRANSITIONS
    for octet in data:
        for nibble in (octet >> 4, octet & 15):
            state, symbol = transitions[state * 16 + nibble]
            if symbol >= 0:
                if symbol == EOS:
                    # §5.2: "A Huffman-encoded string literal containing the EOS symbol MUST be treated
                    # as a decoding error."
                    raise HPACKError("Huffman-coded string contains the EOS symbol (RFC 7541 §5.2)")
                out.append(symbol)
    if not _ACCEPTING[state]:
        raise HPACKError(
            "Huffman-coded string ends with padding longer than 7 bits or not a prefix of EOS (RFC 7541 §5.2)"
        )
    return bytes(out)
