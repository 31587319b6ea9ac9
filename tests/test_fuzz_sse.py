"""Runs the SSE fuzz target without atheris: the checked-in corpus, then Hypothesis ``st.binary()`` inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_replay import corpus, load_target
from hypothesis import given
from hypothesis import strategies as st

CORPUS = corpus("sse")
fuzz_one_input = load_target("fuzz_sse")


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
