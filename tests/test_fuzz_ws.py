"""Runs the WebSocket fuzz target without atheris: the checked-in corpus, then Hypothesis inputs.

``fuzz/`` is not a package (OSS-Fuzz builds each ``fuzz_*.py`` as a script), so the target is loaded from
its path.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# Hypothesis keys its example cache by choice sequences; b"" and "" and 0 hash alike, and comparing them
# raises BytesWarning under ``python -bb``. That is Hypothesis's internals, not rawrt: silence it there only.
pytestmark = pytest.mark.filterwarnings(r"ignore::BytesWarning:hypothesis\..*")

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"
CORPUS = sorted((FUZZ_DIR / "corpus" / "ws_frames").iterdir())


def _load_target() -> Callable[[bytes], None]:
    spec = importlib.util.spec_from_file_location("fuzz_ws_frames", FUZZ_DIR / "fuzz_ws_frames.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target: Callable[[bytes], None] = module.test_one_input
    return target


fuzz_one_input = _load_target()


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
