"""Fuzz target for the HTTP/2 frame reader (``rawrt.sansio.h2.frames``).

Invariant: ``FrameReader`` turns any bytes into frames, ``H2StreamError`` (after which it reads on) and at
most one ``H2ConnectionError`` (after which it stays failed); nothing else may escape. On top of that, for
every input:

* feeding it whole or one byte at a time gives the same frames and the same errors, with the same codes
  and messages (the reader is cut-invariant);
* no frame carries a payload larger than the reader's ``max_frame_size``;
* the frames read serialise without a ``LocalProtocolError`` (the reader builds only values the writer
  accepts) and, written back to back, read back as the same frames;
* ``match_preface`` agrees with a naive definition on the same bytes.

Each input runs with the default SETTINGS_MAX_FRAME_SIZE (16,384) and with a tiny limit of 64 (below
anything RFC 9113 allows to advertise, so that the FRAME_SIZE_ERROR path is cheap to reach).

Run ``test_one_input`` from pytest (``tests/test_fuzz_h2_frames.py`` replays ``fuzz/corpus/h2_frames/``
and adds Hypothesis inputs), or for long runs with atheris (OSS-Fuzz style)::

    python fuzz/fuzz_h2_frames.py /tmp/h2-corpus fuzz/corpus/h2_frames -max_total_time=300

The first directory receives the new inputs libFuzzer finds; keep the checked-in corpus small.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rawrt.errors import H2ConnectionError, H2StreamError
from rawrt.sansio.h2.frames import (
    PREFACE,
    DataFrame,
    Frame,
    FrameReader,
    HeadersFrame,
    PrefaceMatch,
    PushPromiseFrame,
    match_preface,
)

#: What a run gives: frames, and ("stream", id, code, message) / ("connection", code, message) tuples.
Outcome = list[Frame | tuple[object, ...]]


def _run(chunks: Sequence[bytes], max_frame_size: int) -> Outcome:
    reader = FrameReader(max_frame_size)
    outcome: Outcome = []
    for chunk in chunks:
        reader.feed(chunk)
        while True:
            try:
                frame = reader.next_frame()
            except H2StreamError as exc:
                assert exc.stream_id > 0, exc  # stream 0 is the connection: never a stream error
                outcome.append(("stream", exc.stream_id, exc.code, str(exc)))
                continue
            except H2ConnectionError as exc:
                outcome.append(("connection", exc.code, str(exc)))
                # It stays failed, whatever comes next.
                reader.feed(b"\x00" * 9)
                try:
                    reader.next_frame()
                except H2ConnectionError as again:
                    assert again is exc
                else:  # pragma: no cover - a bug
                    raise AssertionError("a failed reader read on") from None
                return outcome
            if frame is None:
                break
            outcome.append(frame)
    return outcome


def _payload_size(frame: Frame) -> int:
    return len(frame.serialize()) - 9


def _check_frames(frames: list[Frame], max_frame_size: int) -> None:
    for frame in frames:
        assert _payload_size(frame) <= max_frame_size, frame
        if isinstance(frame, DataFrame | HeadersFrame | PushPromiseFrame):
            assert frame.padding is None or 0 <= frame.padding <= 255
    # Written back to back, they read back the same (field blocks were contiguous on the way in, and
    # the frames that caused stream errors, which never sit inside a field block, are left out).
    wire = b"".join(frame.serialize() for frame in frames)
    again = _run([wire], max_frame_size)
    assert again == frames, (frames, again)


def test_one_input(data: bytes) -> None:
    """Check the invariants above on ``data``; raise AssertionError (or the bug) when one breaks."""
    for max_frame_size in (16384, 64):
        whole = _run([data], max_frame_size)
        bytewise = _run([data[i : i + 1] for i in range(len(data))], max_frame_size)
        assert whole == bytewise, (max_frame_size, whole, bytewise)
        _check_frames([item for item in whole if not isinstance(item, tuple)], max_frame_size)
    if data.startswith(PREFACE):
        assert match_preface(data) is PrefaceMatch.COMPLETE
    elif PREFACE.startswith(data):
        assert match_preface(data) is PrefaceMatch.PARTIAL
    else:
        assert match_preface(data) is PrefaceMatch.MISMATCH


def main(argv: list[str]) -> None:  # pragma: no cover - needs atheris, run by hand or by OSS-Fuzz
    import atheris

    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
