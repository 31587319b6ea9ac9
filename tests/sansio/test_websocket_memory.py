"""Memory held by a WebSocket connection under abuse (issue 10 #2 and #4), from the wire bytes.

* #2: a connection that fails (a deflate bomb, an oversize message, invalid UTF-8) must give its memory back
  as soon as it is dropped, without waiting for the garbage collector: the tests run with ``gc.disable()``,
  so whatever a reference cycle holds shows up as memory still allocated.
* #4: RFC 6455 §5.4 puts no bound on the number of fragments in a message; the memory for a message in
  progress must stay within its size limit plus a constant, however many fragments (empty ones, compressed
  ones that inflate to nothing, one-byte text ones) it comes in.

Memory is measured with tracemalloc, which sees every allocation CPython and zlib make through the Python
allocators (zlib's state included).
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref
import zlib
from collections.abc import Iterator
from types import TracebackType

import pytest

from rawrt.errors import LimitExceeded, RemoteProtocolError
from rawrt.limits import KiB, MiB
from rawrt.sansio.ws.connection import BinaryMessage, Role, State, TextMessage, WebSocketConnection
from rawrt.sansio.ws.deflate import PerMessageDeflate
from rawrt.sansio.ws.frames import RSV1, Opcode, encode_frame

KEY = bytes.fromhex("37fa213d")  # RFC 6455 §5.7's mask key
#: A deflate stored block of length 0 (RFC 1951 §3.2.4: BFINAL 0, BTYPE 00, LEN 0, NLEN 0xffff): inflates to
#: nothing. What a sync flush of no data produces.
EMPTY_DEFLATE = bytes.fromhex("00 00 00 ff ff")


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only reference counting frees memory during the test: a cycle would show as memory still held."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def allocated() -> int:
    return tracemalloc.get_traced_memory()[0]


def masked(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    return encode_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=KEY)


def deflate_bomb(size: int) -> bytes:
    """``size`` zero bytes deflated (raw, level 9), without the sync-flush tail (RFC 7692 §7.2.1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = b"".join(compressor.compress(bytes(MiB)) for _ in range(size // MiB))
    return (data + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def feed(conn: WebSocketConnection, data: bytes, step: int = 64 * KiB) -> None:
    """Feed ``data`` as the server's reads would: MAX_RECV-sized pieces."""
    for i in range(0, len(data), step):
        conn.receive_data(data[i : i + step])


class TestFailedConnectionReleasesMemory:
    """Issue 10 #2: ``failure`` must not keep the inflated message alive in a reference cycle."""

    LIMIT = 4 * MiB

    def failing_input(self, kind: str) -> tuple[bytes, bool]:
        """Wire bytes that fail a server connection after it has buffered about LIMIT bytes."""
        if kind == "deflate bomb":
            return masked(Opcode.BINARY, deflate_bomb(16 * MiB), rsv=RSV1), True
        if kind == "compressed fragments past the limit":
            sender = PerMessageDeflate()
            first = sender.compress(bytes(3 * MiB), fin=False)
            second = sender.compress(bytes(3 * MiB), fin=True)
            return masked(Opcode.BINARY, first, fin=False, rsv=RSV1) + masked(Opcode.CONT, second), True
        if kind == "oversize fragments":
            piece = bytes(MiB)
            frames = [masked(Opcode.BINARY, piece, fin=False)]
            frames += [masked(Opcode.CONT, piece, fin=False) for _ in range(4)]
            return b"".join(frames), False
        assert kind == "invalid UTF-8 at the end of a long text"
        data = b"a" * (self.LIMIT - 1) + b"\xff"
        return masked(Opcode.TEXT, PerMessageDeflate().compress(data, fin=True), rsv=RSV1), True

    @pytest.mark.parametrize(
        "kind",
        [
            "deflate bomb",
            "compressed fragments past the limit",
            "oversize fragments",
            "invalid UTF-8 at the end of a long text",
        ],
    )
    @pytest.mark.usefixtures("no_gc", "traced")
    def test_dropped_connection_frees_everything(self, kind: str) -> None:
        data, deflate = self.failing_input(kind)
        before = allocated()
        conn = WebSocketConnection(
            Role.SERVER,
            max_message_size=self.LIMIT,
            max_frame_size=self.LIMIT,
            extension=PerMessageDeflate() if deflate else None,
        )
        feed(conn, data)
        assert conn.state is State.CLOSED
        assert isinstance(conn.failure, LimitExceeded | RemoteProtocolError)
        code = int.from_bytes(conn.data_to_send()[0][2:4], "big")
        assert code == (1007 if "UTF-8" in kind else 1009)
        # A peer's error keeps its message and nothing else: no traceback, no suppressed context (a
        # UnicodeDecodeError would hold the whole text it was decoding).
        bare = conn.failure.__traceback__ is None and conn.failure.__context__ is None
        alive = weakref.ref(conn)
        del conn
        assert alive() is None, "the connection is in a reference cycle"
        # Everything it held is back (with gc disabled): the inflated megabytes, zlib's state, the buffers.
        assert allocated() - before < 16 * KiB, allocated() - before
        assert bare

    @pytest.mark.usefixtures("no_gc", "traced")
    def test_a_bug_keeps_its_traceback_but_not_the_locals(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # A bug (1011) keeps a traceback for the adapter's log; the frames that returned are cleared, so a
        # large local of the failing code (here: a 4 MiB inflated message) is freed at once.
        conn = WebSocketConnection(Role.SERVER)

        def broken(b0: int, opcode: int, payload: bytes) -> None:
            inflated = bytes(4 * MiB)  # noqa: F841 - held by this frame when it raises
            raise ZeroDivisionError("internal detail")

        monkeypatch.setattr(conn, "_receive_control", broken)
        before = allocated()
        conn.receive_data(masked(Opcode.PING))
        assert isinstance(conn.failure, ZeroDivisionError)
        assert conn.failure.__traceback__ is not None
        names = []
        tb: TracebackType | None = conn.failure.__traceback__
        while tb is not None:
            names.append(tb.tb_frame.f_code.co_name)
            tb = tb.tb_next
        assert names[-1] == "broken"  # the log still says where it happened
        assert allocated() - before < 64 * KiB, allocated() - before


class TestFragmentCountDoesNotGrowMemory:
    """Issue 10 #4: RFC 6455 §5.4 allows any number of fragments; memory stays within the message limit."""

    LIMIT = 16 * KiB
    COUNT = 20_000

    def held_while_in_progress(self, first: bytes, each: bytes, *, deflate: bool = False) -> int:
        """Bytes still allocated after ``first`` then COUNT times ``each`` (a message left unfinished)."""
        before = allocated()
        conn = WebSocketConnection(
            Role.SERVER,
            max_message_size=self.LIMIT,
            extension=PerMessageDeflate() if deflate else None,
        )
        data = first + each * self.COUNT
        before = allocated() - len(data)  # the wire bytes are the test's, not the connection's
        feed(conn, data)
        assert conn.state is State.OPEN and conn.events_received() == []
        held = allocated() - before - len(data)
        del data
        # The message still completes normally.
        conn.receive_data(masked(Opcode.CONT, b""))
        assert len(conn.events_received()) == 1
        return held

    @pytest.mark.usefixtures("traced")
    def test_empty_fragments(self) -> None:
        held = self.held_while_in_progress(masked(Opcode.BINARY, fin=False), masked(Opcode.CONT, fin=False))
        # Before: one list slot per fragment (20,000 x 8 bytes); 40 M of them held 333 MiB.
        assert held < 16 * KiB, held

    @pytest.mark.usefixtures("traced")
    def test_compressed_fragments_that_inflate_to_nothing(self) -> None:
        held = self.held_while_in_progress(
            masked(Opcode.BINARY, EMPTY_DEFLATE, fin=False, rsv=RSV1),
            masked(Opcode.CONT, EMPTY_DEFLATE, fin=False),
            deflate=True,
        )
        assert held < 64 * KiB, held  # zlib's inflate state (its 32 KiB window), not one slot per fragment

    @pytest.mark.usefixtures("traced")
    def test_one_byte_text_fragments(self) -> None:
        # 16 Ki fragments of one character each: the whole message, at its limit. Before: a str object per
        # fragment (about 50 bytes each, plus a list slot), ~58 times the message size.
        conn = WebSocketConnection(Role.SERVER, max_message_size=self.LIMIT)
        data = masked(Opcode.TEXT, b"a", fin=False) + masked(Opcode.CONT, b"a", fin=False) * (self.LIMIT - 2)
        before = allocated()
        feed(conn, data)
        held = allocated() - before
        assert conn.state is State.OPEN
        assert held < 2 * self.LIMIT, held
        conn.receive_data(masked(Opcode.CONT, b"a"))
        assert conn.events_received() == [TextMessage("a" * self.LIMIT)]
        conn.receive_data(masked(Opcode.CONT, b"a"))  # no message in progress: 1002

    def test_fragments_still_reassemble(self) -> None:
        conn = WebSocketConnection(Role.SERVER)
        conn.receive_data(
            masked(Opcode.BINARY, b"ab", fin=False)
            + masked(Opcode.CONT, b"", fin=False)
            + masked(Opcode.PING, b"p")
            + masked(Opcode.CONT, b"c")
            + masked(Opcode.TEXT, "é".encode()[:1], fin=False)
            + masked(Opcode.CONT, "é".encode()[1:])
        )
        events = conn.events_received()
        assert events[0].__class__.__name__ == "Ping"
        assert events[1:] == [BinaryMessage(b"abc"), TextMessage("é")]
