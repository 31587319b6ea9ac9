"""An ordered, case-insensitive multi-map of header fields that keeps the received bytes.

RFC 9110 §5.3: field order matters for fields with the same name, and a name may repeat. RFC 9110 §5.1:
names are case-insensitive. rawrt keeps each field exactly as received (``raw``) so that a learner can see
what arrived, and answers lookups case-insensitively through a lower-cased index built on demand.

Values are ``bytes`` on the wire. :meth:`Headers.get` decodes them as Latin-1 (RFC 9110 §5.5: historically
ISO-8859-1), which maps every byte to one character, so nothing is lost in either direction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

__all__ = ["Headers", "HeaderList", "HeaderSequence"]

#: A header list as it travels between the parser, the writer and the app: ``(name, value)`` byte pairs.
HeaderList = list[tuple[bytes, bytes]]
#: What the writer accepts: any sequence of such pairs (a ``Response`` keeps an immutable tuple).
HeaderSequence = Sequence[tuple[bytes, bytes]]


class Headers:
    """Header fields in received order.

    Args:
        raw: ``(name, value)`` pairs, names in any case.
    """

    __slots__ = ("_raw", "_packed", "_index")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._raw: HeaderList | None = list(raw)
        #: The fields as ``name:value\n`` lines while packed (see :meth:`pack`); then ``_raw`` is None.
        self._packed = b""
        self._index: dict[bytes, list[bytes]] | None = None

    @property
    def raw(self) -> HeaderList:
        """The ``(name, value)`` pairs in received order and case (a list the caller may change)."""
        raw = self._raw
        if raw is None:
            # Unpacked on first use after pack(), once: from then on the list is the fields.
            lines = self._packed.split(b"\n")
            lines.pop()  # the empty piece after the last newline
            raw = self._raw = [(name, value) for name, _, value in (line.partition(b":") for line in lines)]
            self._packed = b""
        return raw

    @raw.setter
    def raw(self, raw: HeaderList) -> None:
        self._raw = raw
        self._packed = b""
        self._index = None

    def pack(self) -> None:
        """Hold the fields as one bytes object until they are next looked at.

        For headers kept long and rarely read (a WebSocket's handshake request lives as long as the
        connection): a list of pairs costs about 150 bytes per field in objects, a bytes object one byte per
        byte. Lossless, because a field name is a token (no ``:``) and no value holds a newline (RFC 9110
        §5.5); fields that break that (only an app could build them) are left as they are.
        """
        raw = self._raw
        if raw is None:
            return
        for name, value in raw:
            if b":" in name or b"\n" in name or b"\n" in value:
                return
        self._packed = b"".join([b"%b:%b\n" % field for field in raw])
        self._raw = None
        self._index = None

    def _lookup(self) -> dict[bytes, list[bytes]]:
        # Built lazily: most requests are answered after one or two lookups, and many never look at all.
        if self._index is None:
            index: dict[bytes, list[bytes]] = {}
            for name, value in self.raw:
                index.setdefault(name.lower(), []).append(value)
            self._index = index
        return self._index

    def get_all(self, name: str | bytes) -> list[bytes]:
        """Every value of ``name``, in received order (empty if absent)."""
        key = name.encode("latin-1") if isinstance(name, str) else name
        return self._lookup().get(key.lower(), [])

    def get_bytes(self, name: str | bytes, default: bytes | None = None) -> bytes | None:
        """The values of ``name`` joined with ``b", "`` (RFC 9110 §5.3), or ``default``."""
        values = self.get_all(name)
        if not values:
            return default
        return values[0] if len(values) == 1 else b", ".join(values)

    def get(self, name: str | bytes, default: str | None = None) -> str | None:
        """Like :meth:`get_bytes`, decoded as Latin-1 so every byte survives."""
        value = self.get_bytes(name)
        return default if value is None else value.decode("latin-1")

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, (str, bytes)):
            return False
        return bool(self.get_all(name))

    def __getitem__(self, name: str | bytes) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def items(self) -> Iterator[tuple[str, str]]:
        """``(name, value)`` pairs in received order and case, decoded as Latin-1."""
        for name, value in self.raw:
            yield name.decode("latin-1"), value.decode("latin-1")

    def __iter__(self) -> Iterator[str]:
        for name, _ in self.raw:
            yield name.decode("latin-1")

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"

    def has_token(self, name: str | bytes, token: bytes) -> bool:
        """Whether a comma-separated list header (RFC 9110 §5.6.1) contains ``token``, case-insensitively.

        Used for ``Connection: keep-alive, Upgrade`` and friends, which may be split over several lines.
        """
        token = token.lower()
        for value in self.get_all(name):
            for item in value.split(b","):
                if item.strip(b" \t").lower() == token:
                    return True
        return False
