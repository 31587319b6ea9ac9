"""Runs the SSE fuzz target without atheris: the checked-in corpus, then Hypothesis ``st.binary()`` inputs.

``fuzz/`` is not a package (OSS-Fuzz builds each ``fuzz_*.py`` as a script), so the target is loaded from
its path.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"
CORPUS = sorted((FUZZ_DIR / "corpus" / "sse").iterdir())


def _load_target() -> Callable[[bytes], None]:
    spec = importlib.util.spec_from_file_location("fuzz_sse", FUZZ_DIR / "fuzz_sse.py")
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


# Bytes biased towards the format's own alphabet, so short inputs reach deep states; plus plain binary.
_tokens = st.sampled_from(
    [
        b"data",
        b"event",
        b"id",
        b"retry",
        b":",
        b" ",
        b"\r",
        b"\n",
        b"\r\n",
        b"\x00",
        b"\xef\xbb\xbf",
        b"1",
        b"\xff",
    ]
)


@given(st.binary(max_size=200))
def test_binary(data: bytes) -> None:
    fuzz_one_input(data)


@given(st.lists(_tokens | st.binary(max_size=3), max_size=60).map(b"".join))
def test_tokens(data: bytes) -> None:
    fuzz_one_input(data)
