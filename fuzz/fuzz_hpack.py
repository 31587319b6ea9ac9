"""Fuzz target for the HPACK decoder and encoder (``rawrt.sansio.h2.hpack``, ``rawrt.sansio.h2.huffman``).

Input layout: the first byte picks the dynamic table size (bits 0-1: 0, 64, 256 or 4096) and the
header-list limit (bits 2-3: 64, 512, 4096 or none); the rest is a sequence of header blocks, each one
length byte then that many bytes (the last may be shorter), decoded in order by one decoder so that the
dynamic table carries from block to block as on a connection.

Invariant: ``Decoder.decode`` returns fields or raises :class:`~rawrt.errors.HPACKError` or
:class:`~rawrt.errors.HeaderListTooLarge`, and nothing else. On top of that, for every input:

* a decoder with the header-list limit and one without agree: the same fields when the list fits, a
  ``HeaderListTooLarge`` exactly when the unlimited list is over the limit, the same ``HPACKError``
  outcome, and after every block the same dynamic table (the limit never puts the table out of step,
  RFC 9113 §10.5.1);
* every decoded list re-encodes with a fresh :class:`Encoder` (Huffman automatic, forced on, forced off)
  and decodes back to the same names and values, with every never-indexed flag kept (§6.2.3);
* every block that is a valid Huffman string re-encodes to itself (padding is at most 7 one-bits, so
  the code has one form per string, §5.2).

Run ``test_one_input`` from pytest (``tests/test_fuzz_hpack.py`` replays ``fuzz/corpus/hpack/`` and adds
Hypothesis inputs), or for long runs with atheris (OSS-Fuzz style)::

    python fuzz/fuzz_hpack.py /tmp/hpack-corpus fuzz/corpus/hpack -max_total_time=600

The first directory receives the new inputs libFuzzer finds; keep the checked-in corpus small.
"""

from __future__ import annotations

import sys

from rawrt.errors import HeaderListTooLarge, HPACKError
from rawrt.sansio.h2.hpack import ENTRY_OVERHEAD, Decoder, Encoder, HeaderField
from rawrt.sansio.h2.huffman import huffman_decode, huffman_encode

_TABLE_SIZES = (0, 64, 256, 4096)
_LIST_LIMITS = (64, 512, 4096, 2**31)


def _blocks(data: bytes) -> list[bytes]:
    blocks = []
    pos = 0
    while pos < len(data):
        length = data[pos]
        blocks.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length
    return blocks


def _list_size(fields: list[HeaderField]) -> int:
    return sum(len(f.name) + len(f.value) + ENTRY_OVERHEAD for f in fields)


def _check_reencode(fields: list[HeaderField], table_size: int) -> None:
    for huffman in (None, True, False):
        block = Encoder(table_size).encode(fields, huffman=huffman)
        again = Decoder(table_size, max_header_list_size=2**31).decode(block)
        assert [f[:2] for f in again] == [f[:2] for f in fields], (fields, again)
        # The encoder may add the flag (credentials, short cookies, §7.1.3) but never drops it.
        assert all(a.sensitive >= f.sensitive for a, f in zip(again, fields, strict=True)), (fields, again)


def test_one_input(data: bytes) -> None:
    """Check the invariants above on ``data``; raise AssertionError (or the bug) when one breaks."""
    if not data:
        return
    table_size = _TABLE_SIZES[data[0] & 3]
    limit = _LIST_LIMITS[(data[0] >> 2) & 3]
    limited = Decoder(table_size, max_header_list_size=limit)
    unlimited = Decoder(table_size, max_header_list_size=2**31)
    for block in _blocks(data[1:]):
        try:
            huffman = huffman_decode(block)
        except HPACKError:
            pass
        else:
            assert huffman_encode(huffman) == block, block
        try:
            expected = unlimited.decode(block)
        except HPACKError:
            try:
                limited.decode(block)
            except HPACKError:
                return
            raise AssertionError("the limited decoder accepted a block the unlimited one refused") from None
        try:
            fields = limited.decode(block)
        except HeaderListTooLarge:
            assert _list_size(expected) > limit
        else:
            assert fields == expected
            assert _list_size(fields) <= limit
        assert limited.table.entries == unlimited.table.entries
        assert limited.table.size == unlimited.table.size <= limited.table.max_size <= table_size
        _check_reencode(expected, table_size)


def main(argv: list[str]) -> None:  # pragma: no cover - needs atheris, run by hand or by OSS-Fuzz
    import atheris

    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
