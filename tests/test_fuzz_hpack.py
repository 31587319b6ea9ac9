"""Runs the HPACK fuzz target without atheris: the checked-in corpus, then Hypothesis inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_replay import corpus, load_target
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = corpus("hpack")
fuzz_one_input = load_target("fuzz_hpack")


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_corpus(path: Path) -> None:
    fuzz_one_input(path.read_bytes())


# Representation-shaped pieces (RFC 7541 §6: indexed fields into the static and dynamic tables, literal
# prefixes of each kind with new or indexed names, size updates, raw and Huffman string lengths, integer
# continuations, Huffman octets), so that short inputs reach deep states; plus plain binary.
_PIECES = [
    b"\x82",
    b"\x84",
    b"\xbe",
    b"\xbf",
    b"\xc0",
    b"\x80",
    b"\xff",
    b"\x40",
    b"\x41",
    b"\x7e",
    b"\x00",
    b"\x04",
    b"\x10",
    b"\x1f",
    b"\x20",
    b"\x3f\xe1\x1f",
    b"\x3f",
    b"\x01a",
    b"\x03abc",
    b"\x81\xff",
    b"\x83\xf1\xe3\xc2",
    b"\x86\xa8\xeb\x10\x64\x9c\xbf",
    b"\x80\x80\x80",
    b"cookie",
    b"authorization",
]


def _piece(i: int) -> bytes:
    return _PIECES[i] if i < len(_PIECES) else bytes([i - len(_PIECES)])


_pieces = st.integers(0, len(_PIECES) + 255).map(_piece)
_block = st.lists(_pieces, max_size=20).map(b"".join).map(lambda b: bytes([min(len(b), 255)]) + b[:255])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.lists(_block, max_size=4))
def test_structured_blocks(head: int, blocks: list[bytes]) -> None:
    fuzz_one_input(bytes([head]) + b"".join(blocks))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_binary(data: bytes) -> None:
    fuzz_one_input(data)
