"""Runs the HTTP/1.1 fuzz target without atheris: the checked-in corpus, then Hypothesis inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_replay import corpus, load_target
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = corpus("http11")
fuzz_one_input = load_target("fuzz_http11")


def test_corpus_is_there() -> None:
    assert 10 <= len(CORPUS) <= 40  # small on purpose: a seed set, not a dump of a fuzzing run


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_corpus(path: Path) -> None:
    fuzz_one_input(path.read_bytes())


def test_target_checks_its_invariant() -> None:
    """The target is not vacuous: it really parses (a known-bad invariant would fail loudly)."""
    fuzz_one_input(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 2)
    fuzz_one_input(b"")


# Bytes biased towards HTTP's own alphabet, so short inputs reach deep states; plus plain binary.
_tokens = st.sampled_from(
    [
        b"GET / HTTP/1.1\r\n",
        b"POST / HTTP/1.0\r\n",
        b"Host: a\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: close\r\n",
        b"Expect: 100-continue\r\n",
        b"\r\n",
        b"\r",
        b"\n",
        b"5\r\n",
        b"0\r\n",
        b';a="b"',
        b"abc",
        b" ",
        b":",
        b"\x00",
        b"\xff",
    ]
)
_inputs = st.binary(max_size=200) | st.lists(_tokens, max_size=24).map(b"".join)


@settings(max_examples=200, deadline=None)
@given(_inputs)
def test_hypothesis_inputs(data: bytes) -> None:
    fuzz_one_input(data)
