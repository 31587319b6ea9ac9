"""Tests of the Headers multimap and the ReceiveBuffer (RFC 9110 §5: fields)."""

from __future__ import annotations

import pytest

from rawrt.sansio.buffer import ReceiveBuffer
from rawrt.sansio.headers import Headers

RAW = [(b"Host", b"example.com"), (b"Accept", b"text/html"), (b"accept", b"*/*"), (b"X-Bin", b"caf\xe9")]


class TestHeaders:
    """RFC 9110 §5.1 (case-insensitive names), §5.3 (order and repetition), §5.5 (Latin-1 values)."""

    def test_raw_kept_as_received(self) -> None:
        headers = Headers(RAW)
        assert headers.raw == RAW and headers.raw is not RAW
        assert len(headers) == 4
        assert repr(headers) == f"Headers({RAW!r})"

    def test_lookup_is_case_insensitive_str_or_bytes(self) -> None:
        headers = Headers(RAW)
        assert headers.get_all("ACCEPT") == [b"text/html", b"*/*"]
        assert headers.get_all(b"accept") == [b"text/html", b"*/*"]
        assert headers.get_all("missing") == []

    def test_repeated_fields_are_joined_with_comma(self) -> None:
        headers = Headers(RAW)
        assert headers.get_bytes("accept") == b"text/html, */*"
        assert headers.get_bytes("host") == b"example.com"
        assert headers.get_bytes("missing") is None
        assert headers.get_bytes("missing", b"d") == b"d"

    def test_get_decodes_latin1_so_every_byte_survives(self) -> None:
        headers = Headers(RAW)
        assert headers.get("x-bin") == "café"
        assert (headers.get("x-bin") or "").encode("latin-1") == b"caf\xe9"
        assert headers.get("missing") is None
        assert headers.get("missing", "dflt") == "dflt"

    def test_getitem_and_contains(self) -> None:
        headers = Headers(RAW)
        assert headers["HOST"] == "example.com"
        with pytest.raises(KeyError):
            headers["missing"]
        assert "host" in headers and b"Accept" in headers
        assert "missing" not in headers
        assert 42 not in headers

    def test_iteration_in_received_order_and_case(self) -> None:
        headers = Headers(RAW)
        assert list(headers) == ["Host", "Accept", "accept", "X-Bin"]
        assert list(headers.items())[-1] == ("X-Bin", "café")

    def test_index_is_built_lazily_once(self) -> None:
        headers = Headers(RAW)
        assert headers._index is None
        headers.get_all("host")
        index = headers._index
        headers.get_all("accept")
        assert index is not None and headers._index is index

    def test_empty(self) -> None:
        headers = Headers()
        assert len(headers) == 0 and list(headers) == [] and "x" not in headers

    def test_pack_is_lossless_and_unpacks_on_first_use(self) -> None:
        fields = [*RAW, (b"Empty", b""), (b"Colons", b"a:b: c"), (b"Tab", b"x\ty")]
        headers = Headers(fields)
        headers.get_all("host")  # the index goes too: it is rebuilt from the unpacked fields
        headers.pack()
        assert headers._raw is None and headers._index is None
        assert headers._packed == b"".join(b"%b:%b\n" % field for field in fields)
        assert headers.get_all("accept") == [b"text/html", b"*/*"]
        assert headers.raw == fields and headers._packed == b""
        headers.pack()
        headers.pack()  # packing packed fields changes nothing
        assert headers.raw == fields

    def test_pack_leaves_fields_that_would_not_round_trip(self) -> None:
        for field in [(b"a:b", b"v"), (b"a\nb", b"v"), (b"n", b"line\nbreak")]:
            headers = Headers([field])
            headers.pack()
            assert headers._raw == [field]

    def test_raw_can_be_replaced(self) -> None:
        headers = Headers(RAW)
        headers.get_all("host")
        headers.pack()
        headers.raw = [(b"Host", b"other")]
        assert headers.get("host") == "other" and len(headers) == 1

    @pytest.mark.parametrize(
        ("values", "token", "found"),
        [
            ([b"keep-alive, Upgrade"], b"upgrade", True),
            ([b"close"], b"CLOSE", True),
            ([b"foo", b" \tupgrade\t "], b"upgrade", True),
            ([b"upgraded"], b"upgrade", False),
            ([b"a,,b"], b"", True),  # an empty element is an empty token
            ([], b"close", False),
        ],
    )
    def test_has_token(self, values: list[bytes], token: bytes, found: bool) -> None:
        headers = Headers([(b"Connection", v) for v in values])
        assert headers.has_token("connection", token) is found


class TestReceiveBuffer:
    """The buffer's searches never rescan bytes (h11 ``_receivebuffer``), and consuming resets the mark."""

    def test_append_consume(self) -> None:
        buf = ReceiveBuffer()
        assert not buf and len(buf) == 0
        buf.append(b"hello world")
        assert buf and len(buf) == 11
        assert buf.consume(6) == b"hello " and bytes(buf.data) == b"world"
        assert buf.consume_all() == b"world" and not buf

    def test_find_from_mark_resumes_with_overlap(self) -> None:
        buf = ReceiveBuffer()
        buf.append(b"GET / HTTP/1.1\r\n\r")
        assert buf.find_from_mark(b"\r\n\r\n") == -1
        assert buf._scanned == len(buf) - 3  # the needle may straddle the old end
        buf.append(b"\n")
        assert buf.find_from_mark(b"\r\n\r\n") == 14

    def test_mark_reset_by_consume(self) -> None:
        buf = ReceiveBuffer()
        buf.append(b"abc")
        assert buf.find_from_mark(b"x") == -1 and buf._scanned == 3
        buf.consume(1)
        assert buf._scanned == 0
        buf.append(b"x")
        assert buf.find_from_mark(b"x") == 2
        buf.find_from_mark(b"zz")
        buf.consume_all()
        assert buf._scanned == 0

    def test_short_buffer_mark_is_never_negative(self) -> None:
        buf = ReceiveBuffer()
        buf.append(b"\r")
        assert buf.find_from_mark(b"\r\n\r\n") == -1 and buf._scanned == 0
