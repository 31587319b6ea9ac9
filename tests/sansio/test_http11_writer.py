"""Tests of the HTTP/1.1 response writer and of the state table (RFC 9112 §4, §6, §7, §9)."""

from __future__ import annotations

from typing import Any

import pytest
from test_http11_support import GET, HOST

from rawrt.errors import LocalProtocolError, RemoteProtocolError
from rawrt.sansio.headers import HeaderList
from rawrt.sansio.http11 import (
    TRANSITIONS,
    EndOfMessage,
    HTTPConnection,
    Request,
    Role,
    State,
    encode_chunk,
    reason_phrase,
)

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


def ready(request: bytes = GET) -> HTTPConnection:
    """A connection that has read ``request`` (head and body) and must now respond."""
    conn = HTTPConnection()
    conn.receive_data(request)
    events = conn.events_received()
    while not events or type(events[-1]) is not EndOfMessage:
        events = conn.events_received()
    return conn


def states(conn: HTTPConnection) -> tuple[State, State]:
    return conn.client_state, conn.server_state


def respond(conn: HTTPConnection, status: int, headers: HeaderList, body: bytes = b"", **kw: Any) -> bytes:
    conn.send_response(status, headers, **kw)
    conn.send_data(body)
    conn.send_end()
    out = conn.data_to_send()
    return b"".join(out) + (b"<close>" if out and out[-1] == b"" else b"")


class TestStatusLine:
    """RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]."""

    def test_status_line_and_headers_in_order(self) -> None:
        wire = respond(ready(), 200, [(b"Content-Type", b"text/plain"), (b"X-A", b"1")], b"hi", date=DATE)
        assert wire == (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\ntransfer-encoding: chunked\r\n"
            b"date: " + DATE + b"\r\nserver: rawrt\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        )

    def test_unregistered_status_has_empty_reason(self) -> None:
        assert respond(ready(), 599, [(b"content-length", b"0")]).startswith(b"HTTP/1.1 599 \r\n")
        assert reason_phrase(599) == b"" and reason_phrase(404) == b"Not Found"

    @pytest.mark.parametrize("status", [99, 100, 102, 199, 600, 0])
    def test_invalid_final_status(self, status: int) -> None:
        conn = ready()
        with pytest.raises(LocalProtocolError):
            conn.send_response(status, [])
        assert conn.server_state is State.SEND_RESPONSE and conn.data_to_send() == []

    def test_no_request_to_respond_to(self) -> None:
        conn = HTTPConnection()
        with pytest.raises(LocalProtocolError, match="no request"):
            conn.send_response(200, [])
        with pytest.raises(LocalProtocolError, match="no request"):
            conn.send_informational(100)

    def test_date_and_server_headers(self) -> None:
        assert b"\r\nserver: rawrt\r\n" in respond(ready(), 204, [])
        assert b"server:" not in respond(ready(), 204, [], server=b"")
        wire = respond(ready(), 204, [(b"Server", b"mine"), (b"Date", b"then")], date=DATE, server=b"rawrt")
        assert wire.count(b"erver:") == 1 and wire.count(b"ate:") == 1 and b"Date: then" in wire
        assert b"date: " + DATE in respond(ready(), 204, [], date=DATE)
        assert b"date:" not in respond(ready(), 204, []).lower()


class TestFraming:
    """RFC 9112 §6.3 / RFC 9110 §8.6: how the writer delimits the response body."""

    def test_content_length_is_honoured(self) -> None:
        wire = respond(ready(), 200, [(b"Content-Length", b"5")], b"hello")
        assert wire.endswith(b"\r\ncontent-length: 5\r\nserver: rawrt\r\n\r\nhello")
        assert wire.lower().count(b"content-length") == 1 and b"chunked" not in wire

    def test_content_length_too_long(self) -> None:
        conn = ready()
        conn.send_response(200, [(b"content-length", b"3")])
        conn.send_data(b"ab")
        with pytest.raises(LocalProtocolError, match="longer than its Content-Length"):
            conn.send_data(b"cd")

    def test_content_length_too_short(self) -> None:
        conn = ready()
        conn.send_response(200, [(b"content-length", b"3")])
        conn.send_data(b"ab")
        with pytest.raises(LocalProtocolError, match="1 bytes short"):
            conn.send_end()
        conn.send_data(b"c")
        conn.send_end()
        assert conn.server_state is State.IDLE

    @pytest.mark.parametrize("value", [b"-1", b"abc", b"", b"1 2", b"+3"])
    def test_invalid_content_length_is_a_local_error_with_no_effect(self, value: bytes) -> None:
        conn = ready()
        with pytest.raises(LocalProtocolError):
            conn.send_response(200, [(b"content-length", value)])
        assert conn.server_state is State.SEND_RESPONSE and conn.data_to_send() == []

    def test_chunked_on_11_without_length(self) -> None:
        conn = ready()
        conn.send_response(200, [(b"Transfer-Encoding", b"gzip")])  # the writer owns the framing
        conn.send_data(b"hello")
        conn.send_data(b"")  # nothing: an empty chunk would end the body
        conn.send_data(b"x" * 17)
        conn.send_end([(b"X-Sum", b"1")])
        head, *rest = conn.data_to_send()
        assert b"gzip" not in head and head.endswith(b"transfer-encoding: chunked\r\nserver: rawrt\r\n\r\n")
        assert rest == [b"5\r\nhello\r\n", b"11\r\n" + b"x" * 17 + b"\r\n", b"0\r\nX-Sum: 1\r\n\r\n"]

    def test_close_delimited_on_10(self) -> None:
        conn = ready(b"GET / HTTP/1.0\r\n\r\n")
        wire = respond(conn, 200, [], b"body")
        assert wire == b"HTTP/1.1 200 OK\r\nconnection: close\r\nserver: rawrt\r\n\r\nbody<close>"
        assert conn.server_state is State.MUST_CLOSE

    def test_10_keep_alive_with_length(self) -> None:
        conn = ready(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        wire = respond(conn, 200, [(b"content-length", b"2")], b"ok")
        assert b"\r\nconnection: keep-alive\r\n" in wire and not wire.endswith(b"<close>")
        assert states(conn) == (State.IDLE, State.IDLE)

    def test_10_keep_alive_without_length_must_close(self) -> None:
        conn = ready(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        wire = respond(conn, 200, [], b"ok")
        assert b"\r\nconnection: close\r\n" in wire and wire.endswith(b"ok<close>")

    @pytest.mark.parametrize(
        ("value", "sent"), [(b"close", b"close"), (b"Close", b"close"), (b"foo, CLOSE", b"close, foo")]
    )
    def test_app_connection_close(self, value: bytes, sent: bytes) -> None:
        conn = ready()
        wire = respond(conn, 200, [(b"Connection", value), (b"content-length", b"0")])
        assert wire.lower().count(b"connection:") == 1 and b"\r\nconnection: " + sent + b"\r\n" in wire
        assert wire.endswith(b"<close>") and conn.server_state is State.MUST_CLOSE

    def test_app_connection_keep_alive_and_empty_items_are_the_writers(self) -> None:
        """Empty list items are ignored (RFC 9110 §5.6.1) and keep-alive is the writer's own decision."""
        wire = respond(ready(), 200, [(b"Connection", b"keep-alive, , upgrade"), (b"content-length", b"0")])
        assert b"\r\nconnection: upgrade\r\n" in wire and not wire.endswith(b"<close>")

    def test_validated_fields_are_trusted(self) -> None:
        """``validated=True`` (the app layer's Response checked its fields when it was built) skips the
        writer's own check; without it the same field is refused."""
        bad = [(b"x-note", b"a\x01b")]
        with pytest.raises(LocalProtocolError):
            ready().send_response(200, bad)
        conn = ready()
        conn.send_response(200, bad, validated=True)
        assert b"x-note: a\x01b\r\n" in b"".join(conn.data_to_send())

    def test_app_connection_other_token_is_kept(self) -> None:
        """RFC 9110 §7.8: a 426 names ``upgrade`` in Connection; options other than close/keep-alive pass
        through, and a token is matched whole (``closed-caption`` does not close)."""
        wire = respond(ready(), 200, [(b"Connection", b"closed-caption"), (b"content-length", b"0")])
        assert b"\r\nconnection: closed-caption\r\n" in wire and not wire.endswith(b"<close>")

    def test_head_has_no_body(self) -> None:
        conn = ready(b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\n")
        wire = respond(conn, 200, [(b"content-length", b"5")], b"hello")
        assert wire.endswith(b"content-length: 5\r\nserver: rawrt\r\n\r\n")
        conn = ready(b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\n")
        wire = respond(conn, 200, [], b"hello")
        assert b"chunked" not in wire and b"ength" not in wire and wire.endswith(b"\r\n\r\n")

    @pytest.mark.parametrize("status", [204, 304])
    def test_no_body_statuses(self, status: int) -> None:
        conn = ready()
        wire = respond(
            conn, status, [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")], b"hello"
        )
        assert b"ength" not in wire and b"chunked" not in wire and wire.endswith(b"server: rawrt\r\n\r\n")
        assert states(conn) == (State.IDLE, State.IDLE)

    def test_send_response_bytes(self) -> None:
        conn = ready()
        conn.send_response_bytes(404, [(b"content-type", b"text/plain")], b"nope", date=DATE)
        assert b"".join(conn.data_to_send()) == (
            b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 4\r\ndate: "
            + DATE
            + b"\r\nserver: rawrt\r\n\r\nnope"
        )

    def test_send_response_bytes_is_one_piece(self) -> None:
        # Head and body in one bytes object: the server writes it with one send().
        conn = ready()
        conn.send_response_bytes(200, [], b"hi")
        assert conn.data_to_send() == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nserver: rawrt\r\n\r\nhi"]
        assert states(conn) == (State.IDLE, State.IDLE)

    def test_send_response_bytes_length_is_the_body_s(self) -> None:
        # An app-supplied Content-Length is validated, then replaced by the length of the body actually sent.
        conn = ready()
        conn.send_response_bytes(200, [(b"Content-Length", b"99")], b"hi")
        assert b"".join(conn.data_to_send()).endswith(b"content-length: 2\r\nserver: rawrt\r\n\r\nhi")
        with pytest.raises(LocalProtocolError, match="invalid Content-Length"):
            ready().send_response_bytes(200, [(b"content-length", b"-1")], b"hi")

    @pytest.mark.parametrize(
        ("request_bytes", "status"), [(b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\n", 200), (GET, 204), (GET, 304)]
    )
    def test_send_response_bytes_without_a_body(self, request_bytes: bytes, status: int) -> None:
        conn = ready(request_bytes)
        conn.send_response_bytes(status, [], b"dropped")
        (wire,) = conn.data_to_send()
        assert wire.endswith(b"\r\n\r\n") and b"dropped" not in wire
        assert states(conn) == (State.IDLE, State.IDLE)

    def test_send_response_bytes_refuses_101(self) -> None:
        conn = ready()
        with pytest.raises(LocalProtocolError, match="101 has no body"):
            conn.send_response_bytes(101, [], b"")
        assert conn.data_to_send() == [] and states(conn) == (State.DONE, State.SEND_RESPONSE)

    def test_encode_chunk(self) -> None:
        assert encode_chunk(b"") == b""
        assert encode_chunk(b"a" * 255) == b"ff\r\n" + b"a" * 255 + b"\r\n"

    def test_sends_chunked_only_while_a_chunked_body_is_sent(self) -> None:
        """``sends_chunked`` promises that ``send_data(data)`` emits exactly ``encode_chunk(data)`` (RFC 9112
        §7.1), so a caller may write a chunk it framed once for many connections."""
        conn = ready()
        assert not conn.sends_chunked  # no response yet
        conn.send_response(200, [])
        assert conn.sends_chunked
        conn.data_to_send()
        conn.send_data(b"id: 1\n\n")
        assert conn.data_to_send() == [encode_chunk(b"id: 1\n\n")] == [b"7\r\nid: 1\n\n\r\n"]
        conn.send_end()
        assert not conn.sends_chunked  # the body is over

    @pytest.mark.parametrize(
        ("request_bytes", "headers"),
        [
            (b"GET / HTTP/1.0\r\n\r\n", []),  # close-delimited (RFC 9112 §6.3 rule 8)
            (GET, [(b"content-length", b"2")]),
            (b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\n", []),  # no body at all
        ],
    )
    def test_sends_chunked_is_false_for_other_framings(
        self, request_bytes: bytes, headers: HeaderList
    ) -> None:
        conn = ready(request_bytes)
        conn.send_response(200, headers)
        assert not conn.sends_chunked


class TestFieldValidation:
    """RFC 9110 §5: what the app asks us to send must be valid fields (no response splitting)."""

    @pytest.mark.parametrize(
        "field",
        [(b"X", b"a\r\nSet-Cookie: evil=1"), (b"X", b"a\nb"), (b"X", b"\x00"), (b"X Y", b"a"), (b"", b"a")],
    )
    def test_bad_fields_are_refused_before_anything_is_sent(self, field: tuple[bytes, bytes]) -> None:
        conn = ready()
        with pytest.raises(LocalProtocolError):
            conn.send_response(200, [field])
        with pytest.raises(LocalProtocolError):
            conn.send_response(101, [field])
        with pytest.raises(LocalProtocolError):
            conn.send_informational(103, [field])
        assert conn.server_state is State.SEND_RESPONSE and conn.data_to_send() == []
        conn.send_response(200, [])
        with pytest.raises(LocalProtocolError):
            conn.send_end([field])
        assert states(conn)[1] is State.SEND_BODY


class TestInterim:
    """RFC 9110 §15.2: 1xx interim responses, never with a body, never to HTTP/1.0."""

    def test_103_early_hints_then_final(self) -> None:
        conn = ready()
        conn.send_informational(103, [(b"Link", b"</s.css>; rel=preload")])
        conn.send_informational(100)
        assert conn.data_to_send() == [
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ]
        assert conn.server_state is State.SEND_RESPONSE

    @pytest.mark.parametrize("status", [101, 200, 99])
    def test_not_interim(self, status: int) -> None:
        with pytest.raises(LocalProtocolError):
            ready().send_informational(status)

    def test_informational_after_final_response(self) -> None:
        conn = ready()
        conn.send_response(200, [])
        with pytest.raises(LocalProtocolError, match="informational"):
            conn.send_informational(100)


class TestSwitchingProtocols:
    """RFC 9110 §15.2.2 / §7.8: 101 hands the connection to another protocol."""

    def test_101_switches_both_halves(self) -> None:
        request = b"GET /ws HTTP/1.1\r\n" + HOST + b"Connection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"
        conn = HTTPConnection()
        conn.receive_data(request + b"\x81\x85frame")
        req, end = conn.events_received()
        assert isinstance(req, Request) and req.upgrade == b"websocket" and end == EndOfMessage()
        conn.send_response(101, [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")], date=DATE)
        assert conn.data_to_send() == [
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\ndate: "
            + DATE
            + b"\r\n\r\n"
        ]
        assert states(conn) == (State.SWITCHED, State.SWITCHED)
        assert conn.events_received() == []
        assert conn.trailing_data == b"\x81\x85frame"

    def test_upgrade_needs_connection_upgrade(self) -> None:
        conn = ready(b"GET / HTTP/1.1\r\n" + HOST + b"Upgrade: websocket\r\n\r\n")
        assert conn.request is not None and conn.request.upgrade is None

    def test_101_to_http10_is_refused(self) -> None:
        conn = ready(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        with pytest.raises(LocalProtocolError, match="HTTP/1.0"):
            conn.send_response(101, [])
        assert conn.server_state is State.SEND_RESPONSE

    def test_101_before_body_is_read(self) -> None:
        conn = HTTPConnection()
        conn.receive_data(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 2\r\n\r\n")
        conn.events_received()
        conn.send_response(101, [])
        assert states(conn) == (State.SEND_BODY, State.SWITCHED)


class TestWrongState:
    """Sending out of turn is the app's bug: LocalProtocolError, and nothing changes."""

    def test_send_data_and_end_before_response(self) -> None:
        conn = ready()
        with pytest.raises(LocalProtocolError):
            conn.send_data(b"x")
        with pytest.raises(LocalProtocolError):
            conn.send_end()
        assert conn.server_state is State.SEND_RESPONSE and conn.data_to_send() == []

    def test_second_response(self) -> None:
        conn = ready()
        conn.send_response(200, [])
        with pytest.raises(LocalProtocolError, match="cannot send a response in server state SEND_BODY"):
            conn.send_response(200, [])

    def test_advance_errors_name_the_culprit(self) -> None:
        conn = HTTPConnection()
        with pytest.raises(RemoteProtocolError, match="unexpected end in client state IDLE"):
            conn._advance(Role.CLIENT, "end")
        with pytest.raises(LocalProtocolError, match="cannot end in server state IDLE"):
            conn._advance(Role.SERVER, "end")


class TestTransitionTable:
    """The state table (h11 "Rule 1"): its shape is part of the documented design."""

    def test_terminal_states_have_no_exits(self) -> None:
        for role, state, _what in TRANSITIONS:
            assert state not in (State.CLOSED, State.ERROR, State.SWITCHED, State.MUST_CLOSE), (role, state)

    def test_every_state_reachable_from_idle(self) -> None:
        for role in Role:
            seen = {State.IDLE}
            frontier = [State.IDLE]
            while frontier:
                state = frontier.pop()
                for (r, s, _what), new in TRANSITIONS.items():
                    if r is role and s is state and new not in seen:
                        seen.add(new)
                        frontier.append(new)
            expected = {State.IDLE, State.SEND_BODY, State.DONE, State.SWITCHED}
            expected |= {State.CLOSED} if role is Role.CLIENT else {State.SEND_RESPONSE, State.MUST_CLOSE}
            assert seen == expected
