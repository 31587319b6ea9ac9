"""Differential: rawrt's HTTP/2 server connection against the ``h2`` package's, on the same client bytes.

Hypothesis builds client sessions with the ``h2`` client (requests with and without bodies, trailers, pings,
resets, window updates, a settings change), cuts the bytes at random places, and feeds them to both servers.
What each makes of them must agree: the same streams opened with the same header lists, the same body bytes
and ends, the same resets, and neither sees an error the other does not. ``h2`` is a test-only oracle here, as
``h11`` is for HTTP/1.1.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from hypothesis import given, settings
from hypothesis import strategies as st

from rawrt.limits import Limits
from rawrt.sansio.h2.connection import (
    ConnectionTerminated,
    DataReceived,
    H2Connection,
    RequestReceived,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)

Outcome = tuple[str, int, object]

_paths = st.sampled_from(["/", "/hello", "/echo?x=1", "/a%20b", "/events?channel=c"])
_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
_names = st.sampled_from(["accept", "user-agent", "x-a", "x-trace-id", "cookie", "te"])

_request = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
        "path": _paths,
        "fields": st.lists(st.tuples(_names, _values), max_size=5),
        "body": st.none() | st.binary(max_size=40_000),
        "trailers": st.booleans(),
        "reset": st.booleans(),
    }
)


def client_session(requests: list[dict[str, object]], ping: bool, window: int | None) -> bytes:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    if window is not None:
        client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    for request in requests:
        stream_id = client.get_next_available_stream_id()
        headers = [
            (":method", str(request["method"])),
            (":scheme", "http"),
            (":authority", "test"),
            (":path", str(request["path"])),
        ]
        for name, value in request["fields"]:  # type: ignore[attr-defined]
            headers.append((name, "trailers" if name == "te" else value))
        body = request["body"]
        trailers = bool(request["trailers"])
        client.send_headers(stream_id, headers, end_stream=body is None and not trailers)
        if isinstance(body, bytes):
            # Within the client's initial windows: both servers grant at least 65,535 (h2's default).
            body = body[: min(len(body), 30_000)]
            for start in range(0, max(len(body), 1), 16384):
                last = start + 16384 >= len(body)
                client.send_data(stream_id, body[start : start + 16384], end_stream=last and not trailers)
        if trailers:
            client.send_headers(stream_id, [("x-checksum", "abc")], end_stream=True)
        if request["reset"]:
            client.reset_stream(stream_id)
        if ping:
            client.ping(b"12345678")
    return client.data_to_send()


def crumbs_joined(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """RFC 9113 §8.2.3: cookie crumbs may be joined with "; ". h2 does it on receipt and puts the result
    last; rawrt's events keep the wire order (its server joins them for the app: rawrt.server.h2)."""
    cookies = [value for name, value in headers if name == b"cookie"]
    rest = [(name, value) for name, value in headers if name != b"cookie"]
    return rest + ([(b"cookie", b"; ".join(cookies))] if cookies else [])


def normalize_ours(conn: H2Connection, chunks: list[bytes]) -> list[Outcome]:
    out: list[Outcome] = []
    for chunk in chunks:
        for event in conn.receive_data(chunk):
            if isinstance(event, RequestReceived):
                out.append(("request", event.stream_id, crumbs_joined(event.headers)))
                if event.end_stream:
                    out.append(("end", event.stream_id, None))
            elif isinstance(event, DataReceived):
                if event.data:
                    out.append(("data", event.stream_id, event.data))
                if event.end_stream:
                    out.append(("end", event.stream_id, None))
            elif isinstance(event, TrailersReceived):
                out.append(("trailers", event.stream_id, [tuple(h) for h in event.headers]))
                out.append(("end", event.stream_id, None))
            elif isinstance(event, StreamReset):
                out.append(("reset", event.stream_id, int(event.error_code)))
            elif isinstance(event, WindowUpdated):
                continue  # about our sending, which h2's server reports differently (and is not compared)
            else:
                assert isinstance(event, ConnectionTerminated)
                out.append(("goaway", 0, int(event.error_code)))
    return out


def normalize_h2(conn: h2.connection.H2Connection, chunks: list[bytes]) -> list[Outcome]:
    out: list[Outcome] = []
    for chunk in chunks:
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.RequestReceived):
                assert event.stream_id is not None and event.headers is not None
                out.append(("request", event.stream_id, [(bytes(n), bytes(v)) for n, v in event.headers]))
            elif isinstance(event, h2.events.DataReceived):
                assert event.stream_id is not None and event.data is not None
                if event.data:
                    out.append(("data", event.stream_id, event.data))
                if event.flow_controlled_length:
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                assert event.stream_id is not None and event.headers is not None
                out.append(("trailers", event.stream_id, [tuple(h) for h in event.headers]))
            elif isinstance(event, h2.events.StreamEnded):
                assert event.stream_id is not None
                out.append(("end", event.stream_id, None))
            elif isinstance(event, h2.events.StreamReset):
                assert event.stream_id is not None
                out.append(("reset", event.stream_id, int(event.error_code or 0)))
        conn.data_to_send()
    return out


def merge_data(outcomes: list[Outcome]) -> list[Outcome]:
    """Adjacent DATA of one stream as one piece (the two may cut a body at different places)."""
    merged: list[Outcome] = []
    for kind, stream_id, value in outcomes:
        if kind == "data" and merged and merged[-1][:2] == ("data", stream_id):
            previous = merged[-1][2]
            assert isinstance(previous, bytes) and isinstance(value, bytes)
            merged[-1] = ("data", stream_id, previous + value)
        else:
            merged.append((kind, stream_id, value))
    return merged


@settings(max_examples=120, deadline=None)
@given(
    st.lists(_request, min_size=1, max_size=6),
    st.booleans(),
    st.none() | st.integers(0, 2**20),
    st.lists(st.integers(1, 5000), max_size=20),
)
def test_same_reading_as_h2(
    requests: list[dict[str, object]], ping: bool, window: int | None, cuts: list[int]
) -> None:
    wire = client_session(requests, ping, window)
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(wire[pos : pos + cut])
        pos += cut
    chunks.append(wire[pos:])
    ours = H2Connection(Limits())
    ours.initiate()
    theirs = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    theirs.initiate_connection()
    mine = merge_data(normalize_ours(ours, chunks))
    reference = merge_data(normalize_h2(theirs, chunks))
    # A request the client reset: h2 reports the reset; both must agree on what came before it. rawrt
    # answers nothing for the reset stream, so neither reports an error of its own.
    assert mine == reference
    assert not any(kind == "goaway" for kind, _, _ in mine)
