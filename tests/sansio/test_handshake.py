"""Tests for rawrt.sansio.ws.handshake: the RFC 6455 §4 opening handshake, both sides."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawrt.errors import HandshakeError
from rawrt.sansio.ws.deflate import DeflateOptions, PerMessageDeflate
from rawrt.sansio.ws.handshake import (
    MAX_EXTENSION_PARAMS,
    MAX_EXTENSIONS,
    MAX_LIST_ELEMENTS,
    ClientRequest,
    Headers,
    accept,
    accept_connect,
    accept_key,
    build_request,
    check_response,
    parse_extensions,
    parse_token_list,
    reject,
    serialize_extensions,
)

# RFC 6455 §1.2, the client's handshake, verbatim.
RFC_REQUEST: Headers = [
    (b"Host", b"server.example.com"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Origin", b"http://example.com"),
    (b"Sec-WebSocket-Protocol", b"chat, superchat"),
    (b"Sec-WebSocket-Version", b"13"),
]
# RFC 6455 §1.2, the server's answer, verbatim.
RFC_RESPONSE: Headers = [
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    (b"Sec-WebSocket-Protocol", b"chat"),
]


def nonce() -> bytes:
    return b"the sample nonce"  # §1.3: base64 of these 16 bytes is the example key


def replace(headers: Headers, name: bytes, *values: bytes) -> Headers:
    """``headers`` with every ``name`` field removed, then one field per value appended."""
    kept = [(n, v) for n, v in headers if n.lower() != name.lower()]
    return kept + [(name, v) for v in values]


def refused(
    headers: Headers, *, method: bytes = b"GET", version: bytes = b"1.1", **kwargs: object
) -> HandshakeError:
    with pytest.raises(HandshakeError) as info:
        accept(method, version, headers, **kwargs)  # type: ignore[arg-type]
    return info.value


class TestAcceptKey:
    """RFC 6455 §1.3: Sec-WebSocket-Accept."""

    def test_rfc_example(self) -> None:
        # Verbatim from §1.3. (Beware: copies of this value with "9kxGzzg" in the middle circulate;
        # the RFC, websockets and SHA-1 all say "9kYGzzh".)
        assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class TestServerHandshake:
    """RFC 6455 §4.2: the server validates the request and answers 101."""

    def test_rfc_example(self) -> None:
        result = accept(b"GET", b"1.1", RFC_REQUEST, subprotocols=["chat"], origins=["http://example.com"])
        assert result.headers == RFC_RESPONSE
        assert result.subprotocol == "chat"
        assert result.extension is None

    def test_http_prefixed_version_and_case(self) -> None:
        headers = [(name.upper(), value) for name, value in RFC_REQUEST]
        headers = replace(headers, b"upgrade", b"WebSocket")
        headers = replace(headers, b"CONNECTION", b"keep-alive", b"Upgrade")
        assert accept(b"GET", b"HTTP/1.1", headers).subprotocol is None

    def test_upgrade_in_a_list(self) -> None:
        headers = replace(RFC_REQUEST, b"Upgrade", b"foo/2, websocket")
        headers = replace(headers, b"Connection", b"keep-alive, ,UPGRADE")
        assert accept(b"GET", b"1.1", headers).headers[2] == RFC_RESPONSE[2]

    def test_method(self) -> None:
        exc = refused(RFC_REQUEST, method=b"POST")
        assert (exc.status_hint, exc.headers, str(exc)) == (
            405,
            ((b"Allow", b"GET"),),
            "method 'POST', expected GET",
        )

    def test_http_version(self) -> None:
        assert refused(RFC_REQUEST, version=b"1.0").status_hint == 400

    def test_no_host(self) -> None:
        exc = refused(replace(RFC_REQUEST, b"Host"))
        assert (exc.status_hint, str(exc)) == (400, "no Host field")

    @pytest.mark.parametrize("value", [None, b"h2c", b"websocket2"])
    def test_upgrade_missing_or_wrong(self, value: bytes | None) -> None:
        headers = replace(RFC_REQUEST, b"Upgrade", *([value] if value else []))
        exc = refused(headers)
        assert exc.status_hint == 426
        assert (b"Upgrade", b"websocket") in exc.headers
        assert "expected websocket" in str(exc)

    def test_connection_without_upgrade(self) -> None:
        exc = refused(replace(RFC_REQUEST, b"Connection", b"keep-alive"))
        assert (exc.status_hint, str(exc)) == (426, "Connection is keep-alive, expected a list with upgrade")

    def test_malformed_connection(self) -> None:
        assert refused(replace(RFC_REQUEST, b"Connection", b"upgrade;x")).status_hint == 400

    @pytest.mark.parametrize("values", [(), (b"8",), (b"13, 8",), (b"13", b"13"), (b"14",)])
    def test_version(self, values: tuple[bytes, ...]) -> None:
        exc = refused(replace(RFC_REQUEST, b"Sec-WebSocket-Version", *values))
        assert exc.status_hint == 426
        assert exc.headers == (
            (b"Sec-WebSocket-Version", b"13"),
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
        )

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ((), "no Sec-WebSocket-Key field"),
            ((b"a", b"b"), "2 Sec-WebSocket-Key fields, expected one"),
            ((b"dGhlIHNhbXBsZSBub25jZQ",), "is not base64"),  # padding missing
            ((b"dGhlIHNhbXBsZSBub25jZQ==\n",), "is not base64"),
            ((b"dGhlIHNhbXBsZSBub25j!Q==",), "is not base64"),
            ((b"c2hvcnQ=",), "decodes to 5 bytes, expected 16"),
        ],
    )
    def test_key(self, values: tuple[bytes, ...], message: str) -> None:
        exc = refused(replace(RFC_REQUEST, b"Sec-WebSocket-Key", *values))
        assert exc.status_hint == 400
        assert message in str(exc)

    def test_origin_allowlist(self) -> None:
        assert accept(b"GET", b"1.1", RFC_REQUEST, origins=["HTTP://EXAMPLE.COM"]).subprotocol is None
        exc = refused(RFC_REQUEST, origins=["https://example.com"])
        assert (exc.status_hint, str(exc)) == (403, "Origin 'http://example.com' is not allowed")
        no_origin = replace(RFC_REQUEST, b"Origin")
        assert refused(no_origin, origins=["http://example.com"]).status_hint == 403
        assert accept(b"GET", b"1.1", no_origin, origins=[None]).extension is None
        assert refused(replace(RFC_REQUEST, b"Origin", b"a", b"b"), origins=["a"]).status_hint == 400

    def test_subprotocol_in_client_order(self) -> None:
        result = accept(b"GET", b"1.1", RFC_REQUEST, subprotocols=["superchat", "chat"])
        assert result.subprotocol == "chat"  # the client listed chat first
        assert accept(b"GET", b"1.1", RFC_REQUEST, subprotocols=["other"]).subprotocol is None

    def test_bad_subprotocol_list(self) -> None:
        exc = refused(replace(RFC_REQUEST, b"Sec-WebSocket-Protocol", b"chat superchat"))
        assert exc.status_hint == 400

    def test_deflate_negotiated(self) -> None:
        headers = RFC_REQUEST + [
            (b"Sec-WebSocket-Extensions", b"x-unknown, permessage-deflate; client_max_window_bits")
        ]
        result = accept(b"GET", b"1.1", headers)
        assert result.headers[-1] == (
            b"Sec-WebSocket-Extensions",
            b"permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        )
        assert isinstance(result.extension, PerMessageDeflate)
        assert accept(b"GET", b"1.1", headers, deflate=None).extension is None

    def test_bad_extensions_header(self) -> None:
        exc = refused(RFC_REQUEST + [(b"Sec-WebSocket-Extensions", b"permessage-deflate;")])
        assert exc.status_hint == 400


class TestExtendedConnect:
    """RFC 8441 §4-§5: the handshake of a WebSocket over an HTTP/2 extended CONNECT."""

    # RFC 8441 §5.1's example request, regular fields only (pseudo-headers are the HTTP/2 layer's).
    REQUEST: Headers = [
        (b"sec-websocket-protocol", b"chat, superchat"),
        (b"sec-websocket-extensions", b"permessage-deflate"),
        (b"sec-websocket-version", b"13"),
        (b"origin", b"http://www.example.com"),
    ]

    def test_rfc_example_accepted_without_key_or_upgrade(self) -> None:
        result = accept_connect(b"websocket", self.REQUEST, subprotocols=["chat"])
        # §5: the 200 carries what RFC 6455 negotiates, and no Sec-WebSocket-Accept (nor Upgrade).
        assert result.headers == [
            (b"Sec-WebSocket-Protocol", b"chat"),
            # SERVER_DEFAULTS: a 4 KiB window rather than 32 KiB (memory per connection).
            (b"Sec-WebSocket-Extensions", b"permessage-deflate; server_max_window_bits=12"),
        ]
        assert result.subprotocol == "chat"
        assert isinstance(result.extension, PerMessageDeflate)

    def test_nothing_to_negotiate(self) -> None:
        result = accept_connect(b"websocket", [(b"sec-websocket-version", b"13")], deflate=None)
        assert (result.headers, result.subprotocol, result.extension) == ([], None, None)

    def test_other_protocol_is_400(self) -> None:
        with pytest.raises(HandshakeError, match="expected websocket") as info:
            accept_connect(b"webtransport", self.REQUEST)
        assert info.value.status_hint == 400

    @pytest.mark.parametrize("version", [[], [b"8"], [b"13", b"13"]])
    def test_version_other_than_13_is_400(self, version: list[bytes]) -> None:
        headers = replace(self.REQUEST, b"sec-websocket-version", *version)
        with pytest.raises(HandshakeError, match="expected 13") as info:
            accept_connect(b"websocket", headers)
        # Not 426: that status needs an Upgrade field, which HTTP/2 forbids (RFC 9113 §8.2.2).
        assert info.value.status_hint == 400
        assert info.value.headers == ((b"Sec-WebSocket-Version", b"13"),)

    def test_origin_checked_as_over_http11(self) -> None:
        with pytest.raises(HandshakeError) as info:
            accept_connect(b"websocket", self.REQUEST, origins=["https://elsewhere"])
        assert info.value.status_hint == 403
        assert accept_connect(b"websocket", self.REQUEST, origins=["http://WWW.example.com"])


class TestReject:
    """RFC 6455 §4.2.1 / §4.4: refusals are plain HTTP responses."""

    def test_426_carries_version(self) -> None:
        status, phrase, headers, body = reject(refused(replace(RFC_REQUEST, b"Sec-WebSocket-Version", b"8")))
        assert (status, phrase) == (426, b"Upgrade Required")
        assert (b"Sec-WebSocket-Version", b"13") in headers
        assert body == b"Failed to open a WebSocket connection: Sec-WebSocket-Version is '8', expected 13.\n"
        assert (b"Content-Length", str(len(body)).encode()) in headers

    def test_unknown_status(self) -> None:
        assert reject(HandshakeError("x", status_hint=418))[:2] == (418, b"Bad Request")


class TestExtensionGrammar:
    """RFC 6455 §9.1: Sec-WebSocket-Extensions syntax."""

    def test_parse(self) -> None:
        values = [
            b'permessage-deflate; client_max_window_bits; server_max_window_bits="10" , x-foo',
            b"Permessage-Deflate;Client_No_Context_Takeover",
        ]
        assert parse_extensions(values) == [
            ("permessage-deflate", [("client_max_window_bits", None), ("server_max_window_bits", "10")]),
            ("x-foo", []),
            ("permessage-deflate", [("client_no_context_takeover", None)]),
        ]

    def test_quoted_pair(self) -> None:
        assert parse_extensions([b'a; b="1\\0"']) == [("a", [("b", "10")])]

    @pytest.mark.parametrize(
        "value", [b"a;", b"a; b=", b'a; b="x y"', b'a; b="unterminated', b"a b", b";a", b"a; b=c d", b"a=b"]
    )
    def test_invalid(self, value: bytes) -> None:
        with pytest.raises(ValueError):
            parse_extensions([value])

    def test_bounds(self) -> None:
        assert len(parse_extensions([b", ".join([b"a"] * MAX_EXTENSIONS)])) == MAX_EXTENSIONS
        with pytest.raises(ValueError, match="extensions"):
            parse_extensions([b", ".join([b"a"] * (MAX_EXTENSIONS + 1))])
        with pytest.raises(ValueError, match="parameters"):
            parse_extensions([b"a" + b"; p" * (MAX_EXTENSION_PARAMS + 1)])
        with pytest.raises(ValueError, match="list elements"):
            parse_token_list([b",".join([b"t"] * (MAX_LIST_ELEMENTS + 1))])

    def test_empty_elements(self) -> None:
        assert parse_extensions([b" , a ,, "]) == [("a", [])]
        assert parse_token_list([b"", b", a,b ,"]) == ["a", "b"]

    @settings(max_examples=100)
    @given(
        st.lists(
            st.tuples(
                st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
                st.lists(
                    st.tuples(
                        st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
                        st.none() | st.from_regex(r"[0-9A-Za-z]{1,5}", fullmatch=True),
                    ),
                    max_size=3,
                ),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def test_round_trip(self, extensions: list[tuple[str, list[tuple[str, str | None]]]]) -> None:
        assert parse_extensions([serialize_extensions(extensions)]) == extensions


class TestClientHandshake:
    """RFC 6455 §4.1: the client builds the request and validates the 101."""

    def request(self, **kwargs: object) -> ClientRequest:
        return build_request("server.example.com", nonce=nonce, subprotocols=["chat", "superchat"], **kwargs)  # type: ignore[arg-type]

    def test_rfc_example(self) -> None:
        request = self.request(origin="http://example.com", deflate=None)
        assert sorted(request.headers) == sorted(RFC_REQUEST)
        result = check_response(request, 101, RFC_RESPONSE)
        assert (result.subprotocol, result.extension) == ("chat", None)

    def test_against_our_server(self) -> None:
        request = self.request()
        answer = accept(b"GET", b"1.1", request.headers, subprotocols=["superchat"])
        result = check_response(request, 101, answer.headers)
        assert result.subprotocol == "superchat"
        assert isinstance(result.extension, PerMessageDeflate)
        assert (result.extension.local_max_window_bits, result.extension.remote_max_window_bits) == (12, 12)

    def test_disabled_deflate_not_offered(self) -> None:
        request = self.request(deflate=DeflateOptions(enabled=False))
        assert request.deflate is None
        assert all(name != b"Sec-WebSocket-Extensions" for name, _ in request.headers)

    def test_bad_nonce(self) -> None:
        with pytest.raises(ValueError, match="16"):
            build_request("h", nonce=lambda: b"short")

    @pytest.mark.parametrize(
        ("status", "headers", "message"),
        [
            (200, RFC_RESPONSE, "status 200, expected 101"),
            (101, replace(RFC_RESPONSE, b"Upgrade"), "Upgrade is nothing, expected websocket"),
            (101, replace(RFC_RESPONSE, b"Connection", b"close"), "Connection is close"),
            (
                101,
                replace(RFC_RESPONSE, b"Sec-WebSocket-Accept"),
                "Sec-WebSocket-Accept is nothing, expected s3pP",
            ),
            (
                101,
                replace(RFC_RESPONSE, b"Sec-WebSocket-Accept", b"wrong="),
                "Sec-WebSocket-Accept is 'wrong='",
            ),
            (101, replace(RFC_RESPONSE, b"Sec-WebSocket-Protocol", b"mqtt"), "'mqtt', which was not offered"),
            (101, replace(RFC_RESPONSE, b"Sec-WebSocket-Protocol", b"chat, superchat"), "2 subprotocols"),
            (
                101,
                replace(RFC_RESPONSE, b"Sec-WebSocket-Protocol", b"ch at"),
                "invalid Sec-WebSocket-Protocol",
            ),
            (101, RFC_RESPONSE + [(b"Sec-WebSocket-Extensions", b"x-foo")], "'x-foo', which was not offered"),
        ],
    )
    def test_invalid_response(self, status: int, headers: Headers, message: str) -> None:
        with pytest.raises(HandshakeError) as info:
            check_response(self.request(), status, headers)
        assert message in str(info.value)

    def test_deflate_not_offered_but_accepted(self) -> None:
        headers = RFC_RESPONSE + [(b"Sec-WebSocket-Extensions", b"permessage-deflate")]
        with pytest.raises(HandshakeError, match="not offered"):
            check_response(self.request(deflate=None), 101, headers)

    def test_deflate_twice(self) -> None:
        headers = RFC_RESPONSE + [(b"Sec-WebSocket-Extensions", b"permessage-deflate, permessage-deflate")]
        with pytest.raises(HandshakeError, match="twice"):
            check_response(self.request(), 101, headers)
