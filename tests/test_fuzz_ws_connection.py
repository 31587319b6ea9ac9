"""Replays the WebSocket connection fuzz target without atheris: its corpus, then Hypothesis programs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_replay import corpus, load_target
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = corpus("ws_connection")
fuzz_one_input = load_target("fuzz_ws_connection")


def test_corpus_is_there() -> None:
    assert 10 <= len(CORPUS) <= 40  # small on purpose: a seed set, not a dump of a fuzzing run


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_corpus(path: Path) -> None:
    fuzz_one_input(path.read_bytes())


# Programs: a flags byte (role, deflate, no context takeover), then operations. An operation byte's low 3 bits
# choose it (0-1 data frame, 2 empty-fragment burst, 3 control frame, 4 raw bytes, 5 app call, 6 read
# boundary, 7 EOF); its high bits are its parameters; a length byte and that many payload bytes follow.
_ops = st.tuples(st.integers(0, 255), st.integers(0, 40), st.binary(max_size=40)).map(
    lambda t: bytes([t[0], t[1]]) + t[2][: t[1]]
)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 7), st.lists(_ops, max_size=12))
def test_programs(flags: int, ops: list[bytes]) -> None:
    fuzz_one_input(bytes([flags]) + b"".join(ops))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_binary(data: bytes) -> None:
    fuzz_one_input(data)
