"""Runs the WebSocket fuzz target without atheris: the checked-in corpus, then Hypothesis inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_replay import corpus, load_target
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = corpus("ws_frames")
fuzz_one_input = load_target("fuzz_ws_frames")


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_corpus(path: Path) -> None:
    fuzz_one_input(path.read_bytes())


# Header-shaped bytes (FIN/RSV/opcode first bytes, mask bits and length markers, zero mask keys, deflate
# blocks) so that short inputs reach deep states; plus plain binary.
_PIECES = [
    b"\x81",
    b"\x82",
    b"\x01",
    b"\x00",
    b"\x80",
    b"\x88",
    b"\x89",
    b"\x8a",
    b"\xc1",
    b"\x41",
    b"\x85",
    b"\xfe\x00\x7e",
    b"\xff\x00\x00\x00\x00\x00\x01\x00\x00",
    b"\x00\x00\x00\x00",
    b"\x03\xe8",
    b"\xf2\x48\xcd\xc9\xc9\x07\x00",
    b"Hello",
    "é€".encode(),
    b"\xff",
]


def _piece(i: int) -> bytes:
    return _PIECES[i] if i < len(_PIECES) else bytes([i - len(_PIECES)])


_pieces = st.integers(0, len(_PIECES) + 255).map(_piece)


@settings(max_examples=150, deadline=None)
@given(st.lists(_pieces, max_size=30).map(b"".join))
def test_structured_bytes(data: bytes) -> None:
    fuzz_one_input(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_binary(data: bytes) -> None:
    fuzz_one_input(data)
