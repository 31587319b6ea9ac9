"""A receive buffer whose searches never rescan bytes they have already looked at.

A server that searches the whole buffer for ``b"\\r\\n\\r\\n"`` after every ``recv()`` does quadratic work
on a head that trickles in a byte at a time (the slowloris shape). :meth:`ReceiveBuffer.find_from_mark`
remembers how far it has looked, so the total work stays O(bytes received) (h11 ``_receivebuffer``).

Removing bytes from the front is ``del buf[:n]``: CPython's ``bytearray`` moves its start pointer instead of
copying for that, so consuming a buffer piece by piece stays linear too.
"""

from __future__ import annotations

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """Bytes received and not yet consumed."""

    __slots__ = ("data", "_scanned")

    def __init__(self) -> None:
        self.data = bytearray()
        # How many leading bytes of ``data`` are known not to contain the start of the needle searched for
        # by find_from_mark(). Reset whenever bytes are consumed.
        self._scanned = 0

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def append(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        self.data += data

    def find_from_mark(self, needle: bytes) -> int:
        """Find ``needle``, resuming where the previous unsuccessful search stopped.

        Returns:
            The index of the first occurrence, or -1. After -1, the next call only scans new bytes (plus
            ``len(needle) - 1`` bytes of overlap, since the needle may straddle the old end).
        """
        index = self.data.find(needle, self._scanned)
        if index < 0:
            self._scanned = max(0, len(self.data) - len(needle) + 1)
        return index

    def consume(self, n: int) -> bytes:
        """Remove and return the first ``n`` bytes."""
        data = self.data
        if n >= len(data):
            # Often the whole buffer (a head or a body piece that arrived alone): one copy, not two.
            out = bytes(data)
            data.clear()
        else:
            out = bytes(data[:n])
            del data[:n]
        self._scanned = 0
        return out

    def consume_all(self) -> bytes:
        """Remove and return everything."""
        out = bytes(self.data)
        self.data.clear()
        self._scanned = 0
        return out
