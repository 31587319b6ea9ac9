"""Runs the HTTP/2 frame fuzz target without atheris: the checked-in corpus, then Hypothesis inputs."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from fuzz_replay import corpus, load_target
from hypothesis import given, settings
from hypothesis import strategies as st

CORPUS = corpus("h2_frames")
fuzz_one_input = load_target("fuzz_h2_frames")


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_corpus(path: Path) -> None:
    fuzz_one_input(path.read_bytes())


@st.composite
def frame_headers(draw: st.DrawFn) -> bytes:
    """A 9-octet header with a small length, a type in or near RFC 9113's, any flags, a small stream id,
    then that many payload octets (or fewer: the input may end mid-frame)."""
    length = draw(st.integers(0, 20))
    frame_type = draw(st.integers(0, 11))
    flags = draw(st.sampled_from([0, 0x01, 0x04, 0x05, 0x08, 0x20, 0x2C, 0xFF]))
    stream_id = draw(st.sampled_from([0, 1, 2, 3, 0x80000001]))
    payload = draw(st.binary(min_size=0, max_size=length))
    return struct.pack("!HBBBL", length >> 8, length & 0xFF, frame_type, flags, stream_id) + payload


# Frame-shaped inputs so that short ones reach deep states; plus plain binary.
@settings(max_examples=200, deadline=None)
@given(st.lists(frame_headers(), max_size=8).map(b"".join))
def test_structured_bytes(data: bytes) -> None:
    fuzz_one_input(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_binary(data: bytes) -> None:
    fuzz_one_input(data)
