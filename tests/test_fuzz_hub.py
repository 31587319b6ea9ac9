"""Runs the hub fuzz target without atheris: the checked-in corpus, then Hypothesis inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_replay import corpus, load_target
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = corpus("hub")
fuzz_one_input = load_target("fuzz_hub")


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_corpus(path: Path) -> None:
    fuzz_one_input(path.read_bytes())


# Whole operations (``fuzz/fuzz_hub.py``: an opcode, then its argument bytes), so that short inputs are
# programs of several steps rather than one long publish; plus plain binary.
_channel = st.integers(0, 2)
_cursor = st.sampled_from([255, 24, 23, 31, 0]) | st.integers(128, 140)
_operation = st.one_of(
    st.tuples(st.just(0), _channel, st.integers(0, 255), st.integers(0, 4)),  # publish
    st.tuples(st.just(1), _channel, _cursor, st.integers(0, 15)),  # subscribe
    st.tuples(st.just(2), st.integers(0, 7), st.integers(0, 3)),  # drain
    st.tuples(st.just(3), _channel, _cursor, st.integers(0, 9)),  # since
    st.tuples(st.just(4), st.integers(0, 7)),  # close
    st.tuples(st.just(5), st.integers(0, 7)),  # congest
    st.tuples(st.just(6), _channel, st.integers(0, 15)),  # burst
    st.tuples(st.just(7)),  # catch up
).map(bytes)
_limits = st.binary(min_size=5, max_size=5)


@settings(max_examples=150, deadline=None)
@given(st.tuples(_limits, st.lists(_operation, max_size=40).map(b"".join)).map(b"".join))
def test_programs(data: bytes) -> None:
    fuzz_one_input(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_binary(data: bytes) -> None:
    fuzz_one_input(data)
