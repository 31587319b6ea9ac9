"""Server-Sent Events over real loopback sockets: the wire bytes of ``GET /events`` and of ``EventStream``,
resumption (WHATWG HTML §9.2.4 ``Last-Event-ID``), heartbeats, overflow, disconnects, the send timeout, and
the reconnecting client ``rawrt.sse.connect``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from transport_helpers import (
    TIMEOUT,
    demo,
    exchange,
    get,
    hard_reset,
    open_events,
    publish,
    running,
    wait_until,
)

from rawrt.app import App, Request, Response, StreamingResponse
from rawrt.errors import ConnectionClosed, InvalidEventError
from rawrt.hub import Hub
from rawrt.limits import Limits
from rawrt.sansio.headers import Headers
from rawrt.sansio.http11 import encode_chunk
from rawrt.sansio.sse import MessageEvent, ServerSentEvent, SSEParser
from rawrt.sse import EventSource, EventSourceError, EventStream, event_bytes, hub_stream
from rawrt.sse import connect as sse_connect

FAST = Limits(keep_alive_timeout=0.4)  # a reaper tick of 0.1 s: send timeouts fire promptly


def url(server: object, target: str) -> str:
    return f"http://127.0.0.1:{server.port}{target}"  # type: ignore[attr-defined]


class TestWireBytes:
    """The response head and framing (WHATWG §9.2.5; RFC 9112 §6.3, §7.1)."""

    @pytest.mark.asyncio
    async def test_headers_and_chunks_on_http11(self) -> None:
        async with demo() as (server, app):
            stream = await open_events(server, "/events?channel=news")
            try:
                head = stream.head
                assert head.status == 200
                assert head.header_names == [
                    b"content-type",
                    b"cache-control",
                    b"x-accel-buffering",
                    b"transfer-encoding",
                    b"date",
                    b"server",
                ]
                assert head.header(b"content-type") == b"text/event-stream; charset=utf-8"
                assert head.header(b"cache-control") == b"no-cache"
                assert head.header(b"x-accel-buffering") == b"no"
                assert head.header(b"transfer-encoding") == b"chunked"
                # No resume id: the stream starts at the channel's end, and says so with an id-only event.
                assert await stream.read_piece() == b"id: 0\n\n"
                assert await publish(server, "hello\nworld", "news") == 1
                assert await stream.read_piece() == b"id: 1\ndata: hello\ndata: world\n\n"
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_http10_is_close_delimited_never_chunked(self) -> None:
        async with demo() as (server, app):
            app.hub.publish("default", "old")
            stream = await open_events(server, "/events", version="1.0")
            try:
                assert stream.head.header(b"transfer-encoding") is None
                assert stream.head.header(b"content-length") is None
                assert stream.head.header(b"connection") == b"close"
                app.hub.publish("default", "new")
                await stream.read_until(b"data: new\n\n")
                # The body is the event-stream bytes themselves: no chunk-size lines anywhere.
                assert bytes(stream.raw) == b"id: 1\n\nid: 2\ndata: new\n\n"
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_cr_and_crlf_in_data_arrive_as_lf(self) -> None:
        async with demo() as (server, app):
            stream = await open_events(server, "/events")
            try:
                await stream.read_piece()
                await publish(server, b"a\r\nb\rc\nd")
                assert await stream.read_piece() == b"id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
                assert (await stream.next_event()).data == "a\nb\nc\nd"
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_heartbeat_comment_when_idle(self) -> None:
        async with demo(Limits(sse_heartbeat=0.05)) as (server, app):
            stream = await open_events(server, "/events")
            try:
                assert await stream.read_piece() == b"id: 0\n\n"
                assert await stream.read_piece(1.0) == b": heartbeat\n\n"
                assert await stream.read_piece(1.0) == b": heartbeat\n\n"
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_head_request_gets_the_head_only(self) -> None:
        async with demo() as (server, app):
            response = await exchange(server, b"HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n", method=b"HEAD")
            assert response.status == 200
            assert response.header(b"content-type") == b"text/event-stream; charset=utf-8"
            assert app.hub.subscriber_count("default") == 0

    @pytest.mark.asyncio
    async def test_bad_channel_is_400(self) -> None:
        async with demo() as (server, app):
            for target in ("/events?channel=a%20b", "/events?channel=" + "x" * 65, "/events?channel="):
                response = await exchange(server, get(target))
                assert response.status == 400, target


class TestHubEventBytes:
    """A hub event's SSE form (WHATWG §9.2.6), encoded once for every stream (``rawrt.sse.event_bytes``)."""

    def test_event_bytes(self) -> None:
        event = Hub().publish("a", "line 1\nline 2")
        assert event_bytes(event) == b"id: 1\ndata: line 1\ndata: line 2\n\n"
        assert event_bytes(event) is event_bytes(event)

    def test_event_bytes_parse_back(self) -> None:
        hub = Hub()
        parser = SSEParser()
        for data in ["a", "", "x\r\ny", " lead"]:
            parser.receive_data(event_bytes(hub.publish("c", data)))
        assert parser.events_received() == [
            MessageEvent("message", "a", "1"),
            MessageEvent("message", "", "2"),
            MessageEvent("message", "x\ny", "3"),
            MessageEvent("message", " lead", "4"),
        ]

    def test_as_a_chunk(self) -> None:
        # RFC 9112 §7.1: chunk-size in hex (f: the 15 bytes of "id: 1\ndata: x\n\n"), CRLF, data, CRLF.
        event = Hub().publish("a", "x")
        assert encode_chunk(event_bytes(event)) == b"f\r\nid: 1\ndata: x\n\n\r\n"

    @pytest.mark.asyncio
    async def test_fan_out_pushes_one_object_to_every_stream(self) -> None:
        # The server frames a piece once when the same object is pushed to many connections: the streams
        # must hand it the very same bytes, with the one argument of the push interface.
        pushed: list[bytes] = []

        def push(piece: bytes, chunk: bytes | None = None) -> bool:
            assert chunk is None
            pushed.append(piece)
            return True

        hub = Hub()
        for _ in range(100):
            response = hub_stream(Request("GET", "/events", "1.1", Headers()), hub, "a")
            assert response.on_push is not None
            response.on_push(push)
        pushed.clear()  # each stream's cursor line, written when the push arrived
        event = hub.publish("a", "x")
        assert len(pushed) == 100
        assert all(piece is pushed[0] for piece in pushed)
        assert pushed[0] is event_bytes(event) and pushed[0] == b"id: 1\ndata: x\n\n"

    @pytest.mark.asyncio
    async def test_one_channel_per_stream(self) -> None:
        stream = EventStream(Request("GET", "/", "1.1", Headers()))
        hub = Hub()
        stream.subscribe(hub, "a", cursor=None)
        with pytest.raises(RuntimeError):
            stream.subscribe(hub, "b", cursor=None)
        assert hub.subscriber_count("b") == 0


class TestResume:
    """``Last-Event-ID`` (header or ``?last_event_id=``; the header wins) replays exactly once, in order."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("target", "headers"),
        [
            ("/events?channel=r", ("Last-Event-ID: 2",)),
            ("/events?channel=r&last_event_id=2", ()),
            ("/events?channel=r&last_event_id=4", ("Last-Event-ID: 2",)),  # the header wins
        ],
    )
    async def test_replay_then_live(self, target: str, headers: tuple[str, ...]) -> None:
        async with demo() as (server, app):
            for i in range(1, 6):
                app.hub.publish("r", f"event {i}")
            stream = await open_events(server, target, *headers)
            try:
                events = await stream.events(3)
                # The position line, then the replay, coalesced into one chunk (one write).
                assert stream.pieces[0].startswith(b"id: 2\n\nid: 3\ndata: event 3\n\n")
                assert [(e.last_event_id, e.data) for e in events] == [
                    ("3", "event 3"),
                    ("4", "event 4"),
                    ("5", "event 5"),
                ]
                app.hub.publish("r", "event 6")
                assert (await stream.next_event()).data == "event 6"
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_too_old_cursor_gets_a_reset_event(self) -> None:
        async with demo(Limits(hub_history_count=5)) as (server, app):
            for i in range(1, 11):
                app.hub.publish("r", f"event {i}")
            stream = await open_events(server, "/events?channel=r", "Last-Event-ID: 2")
            try:
                reset = await stream.next_event()
                assert reset.type == "reset"
                assert reset.last_event_id == "5"  # where the stream continues from
                info = json.loads(reset.data)
                assert info["cursor"] == 5 and info["last_event_id"] == "2"
                assert "no longer in the history" in info["reason"]
                assert bytes(stream.raw).startswith(b"event: reset\nid: 5\ndata: {")
                assert [e.data for e in await stream.events(5)] == [f"event {i}" for i in range(6, 11)]
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    @pytest.mark.parametrize(("claimed", "why"), [("99", "ahead of the channel"), ("x7", "not an event id")])
    async def test_unusable_cursor_gets_a_reset_event(self, claimed: str, why: str) -> None:
        async with demo() as (server, app):
            app.hub.publish("r", "one")
            stream = await open_events(server, "/events?channel=r", f"Last-Event-ID: {claimed}")
            try:
                reset = await stream.next_event()
                assert reset.type == "reset" and reset.last_event_id == "0"
                assert why in json.loads(reset.data)["reason"]
                assert (await stream.next_event()).data == "one"
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_a_burst_to_a_healthy_client_is_written_at_once(self) -> None:
        # Each event is written from the publish call itself (no task per client): a burst far larger than
        # the hub queue reaches a client that keeps reading, on the same stream, with no overflow.
        async with demo(Limits(hub_queue_size=4)) as (server, app):
            stream = await open_events(server, "/events")
            try:
                assert await stream.read_piece() == b"id: 0\n\n"
                for i in range(1, 101):
                    app.hub.publish("default", f"e{i}")
                assert app.hub.subscriber_count("default") == 1  # still subscribed: nothing overflowed
                assert [e.data for e in await stream.events(100)] == [f"e{i}" for i in range(1, 101)]
                assert not stream.ended
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_a_client_that_pauses_catches_up_on_the_same_stream(self) -> None:
        # The client stops reading: writes back up, the stream stops pushing and waits for it (bounded by
        # send_timeout) while the hub queue holds what comes meanwhile; once it reads again, everything
        # arrives in order on the same stream.
        big = "y" * (128 * 1024)
        async with demo(Limits(write_high_water=1024)) as (server, app):
            stream = await open_events(server, "/events", rcvbuf=1024)
            try:
                assert await stream.read_piece() == b"id: 0\n\n"
                for i in range(1, 21):
                    app.hub.publish("default", f"p{i} {big}")
                got = [e.data.split()[0] for e in await stream.events(20)]
                assert got == [f"p{i}" for i in range(1, 21)] and not stream.ended
                assert app.hub.subscriber_count("default") == 1
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_direct_delivery_falls_back_while_paused_and_resumes(self) -> None:
        # rawrt.hub "Direct delivery": a live event is written from inside publish, without a wake, while
        # the client keeps up. A client that stops reading makes the transport exceed write_high_water:
        # from then on events go through the hub queue (one wake) and the stream's task, nothing lost, and
        # once the client has caught up, publish writes directly again.
        big = "z" * (128 * 1024)
        async with demo(Limits(write_high_water=1024)) as (server, app):
            stream = await open_events(server, "/events", rcvbuf=1024)
            try:
                assert await stream.read_piece() == b"id: 0\n\n"
                (sub,) = app.hub._channels["default"].subscribers
                wakes = 0
                wake = sub._wake

                def counting_wake() -> None:
                    nonlocal wakes
                    wakes += 1
                    wake()

                sub._wake = counting_wake
                app.hub.publish("default", "d1")  # caught up: written from inside publish
                assert sub.cursor == 1 and wakes == 0
                for i in range(2, 22):  # no await in between: the client reads nothing meanwhile
                    app.hub.publish("default", f"p{i} {big}")
                assert wakes == 1  # the first event that found the transport full went to the queue
                assert sub.cursor < 21  # the rest waits in the hub queue for the stream's task
                got = [e.data.split()[0] for e in await stream.events(21)]
                assert got == ["d1", *(f"p{i}" for i in range(2, 22))] and not stream.ended
                await wait_until(lambda: sub.cursor == 21 and not sub.ready)
                wakes = 0
                for i in range(22, 27):
                    app.hub.publish("default", f"d{i}")
                    assert sub.cursor == i  # direct again: taken inside publish
                assert wakes == 0
                assert [e.data for e in await stream.events(5)] == [f"d{i}" for i in range(22, 27)]
                assert app.hub.subscriber_count("default") == 1
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_overflow_ends_the_stream_and_resume_replays(self) -> None:
        # A healthy client gets each event written the moment it is published, so a burst alone never
        # overflows it. A client that stops reading does: its socket and the server's write buffer fill
        # (a tiny receive buffer, 256 KiB events), the stream stops taking events, and its queue overflows.
        big = "x" * (256 * 1024)
        async with demo(Limits(hub_queue_size=4, write_high_water=1024)) as (server, app):
            stream = await open_events(server, "/events", rcvbuf=1024)
            try:
                assert await stream.read_piece() == b"id: 0\n\n"
                for i in range(1, 21):  # no await in between: the client reads nothing meanwhile
                    app.hub.publish("default", f"e{i} {big}")
                assert app.hub.subscriber_count("default") == 0  # overflowed: removed from the channel
                await stream.read_to_end()
                assert stream.ended
            finally:
                await stream.conn.close()
            seen = [e.data.split()[0] for e in stream.parser_events]
            assert seen == [f"e{i}" for i in range(1, len(seen) + 1)] and len(seen) < 20
            again = await open_events(server, "/events", f"Last-Event-ID: {stream.parser.last_event_id}")
            try:
                rest = [e.data.split()[0] for e in await again.events(20 - len(seen))]
                assert rest == [f"e{i}" for i in range(len(seen) + 1, 21)]
            finally:
                await again.conn.close()


class TestDisconnect:
    """A client that goes away is noticed at once and its subscription freed."""

    @pytest.mark.asyncio
    @pytest.mark.parametrize("how", ["fin", "rst"])
    async def test_subscription_freed(self, how: str) -> None:
        async with demo() as (server, app):
            stream = await open_events(server, "/events")
            await stream.read_piece()
            assert app.hub.subscriber_count("default") == 1
            if how == "rst":
                hard_reset(stream.conn)
            await stream.conn.close()
            took = await wait_until(lambda: app.hub.subscriber_count("default") == 0, timeout=1.0)
            assert took < 1.0

    @pytest.mark.asyncio
    async def test_send_timeout_cuts_a_reader_that_stopped_reading(self) -> None:
        limits = Limits(keep_alive_timeout=0.4, sse_send_timeout=0.3)
        async with demo(limits) as (server, app):
            stream = await open_events(server, "/events")
            try:
                await stream.read_piece()
                big = "x" * (256 * 1024)
                # The client reads nothing more: loopback buffers fill, the write blocks, the timeout ends it.
                for _ in range(200):
                    app.hub.publish("default", big)
                    await asyncio.sleep(0.005)
                    if app.hub.subscriber_count("default") == 0:
                        break
                await wait_until(lambda: app.hub.subscriber_count("default") == 0, timeout=3.0)
            finally:
                await stream.conn.close()


def stream_app(make: Callable[[Request], EventStream], produce: Callable[[EventStream], object]) -> App:
    """An app whose ``GET /s`` returns ``make(request)`` and runs ``produce(stream)`` as a task."""
    app = App()
    tasks: set[asyncio.Task[object]] = set()

    @app.get("/s")
    async def handler(request: Request) -> Response | StreamingResponse:
        stream = make(request)

        async def run() -> object:
            return await produce(stream)  # type: ignore[misc]

        task = asyncio.get_running_loop().create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return stream.response()

    return app


class TestEventStream:
    """The emitter API (cf. Spring's ``SseEmitter``)."""

    @pytest.mark.asyncio
    async def test_send_fields_complete_and_on_close(self) -> None:
        closed: list[str] = []

        async def produce(stream: EventStream) -> None:
            stream.on_close(lambda: closed.append("closed"))
            await stream.send("one", event="greeting", id="1")
            await stream.send(ServerSentEvent(data="two", id="2"))
            await stream.send(None, retry=2500)
            stream.complete()
            with pytest.raises(ConnectionClosed):
                await stream.send("after")

        app = stream_app(lambda r: EventStream(r, retry=1000), produce)
        async with running(app) as server:
            stream = await open_events(server, "/s")
            try:
                await stream.read_to_end()
                assert bytes(stream.raw) == (
                    b"retry: 1000\n\nevent: greeting\nid: 1\ndata: one\n\nid: 2\ndata: two\n\nretry: 2500\n\n"
                )
                assert stream.head.header(b"content-type") == b"text/event-stream; charset=utf-8"
                await wait_until(lambda: closed == ["closed"])
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_connection_is_reused_after_a_completed_stream(self) -> None:
        # Regression: the server's disconnect watcher kept reading after the stream ended, and the next
        # request's read failed with "read() called while another coroutine is already waiting".
        async def produce(stream: EventStream) -> None:
            await stream.send("only")
            stream.complete()

        app = stream_app(lambda r: EventStream(r), produce)
        async with running(app) as server:
            stream = await open_events(server, "/s")
            try:
                await stream.read_to_end()
                for _ in range(2):
                    await stream.conn.send(get("/s"))
                    again = await stream.conn.read_response()
                    assert again.status == 200 and again.body == b"data: only\n\n"
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_timeout_completes_the_stream(self) -> None:
        async def produce(stream: EventStream) -> None:
            await stream.send("only")

        app = stream_app(lambda r: EventStream(r, timeout=0.2, heartbeat=0.05), produce)
        async with running(app) as server:
            stream = await open_events(server, "/s")
            try:
                await stream.read_to_end(timeout=2.0)
                assert bytes(stream.raw).startswith(b"data: only\n\n")
                assert b": heartbeat\n\n" in stream.raw
            finally:
                await stream.conn.close()

    @pytest.mark.asyncio
    async def test_send_after_client_left_raises_and_on_close_runs(self) -> None:
        state: dict[str, object] = {}
        done = asyncio.Event()

        async def produce(stream: EventStream) -> None:
            stream.on_close(lambda: state.update(closed=True))
            try:
                while True:
                    await stream.send("tick")
                    await asyncio.sleep(0.01)
            except ConnectionClosed as exc:
                state["error"] = exc
            finally:
                done.set()

        app = stream_app(lambda r: EventStream(r, max_queue=2), produce)
        async with running(app) as server:
            stream = await open_events(server, "/s")
            await stream.next_event()
            await stream.conn.close()
            await asyncio.wait_for(done.wait(), TIMEOUT)
            assert state["closed"] is True
            assert isinstance(state["error"], ConnectionClosed)

    @pytest.mark.asyncio
    async def test_invalid_event_fails_in_the_handler(self) -> None:
        stream = EventStream(Request("GET", "/", "1.1", Headers()))
        with pytest.raises(InvalidEventError):
            await stream.send("x", id="1\n2")
        with pytest.raises(TypeError):
            await stream.send(ServerSentEvent(data="x"), id="1")
        with pytest.raises(ValueError):
            EventStream(Request("GET", "/", "1.1", Headers()), max_queue=0)


class TestClient:
    """``rawrt.sse.connect``: a browser-like EventSource (WHATWG §9.2.3)."""

    @pytest.mark.asyncio
    async def test_receives_events(self) -> None:
        async with demo() as (server, app):
            app.hub.publish("c", "before")
            async with sse_connect(url(server, "/events?channel=c"), last_event_id="0") as source:
                it = aiter(source)
                first = await asyncio.wait_for(anext(it), TIMEOUT)
                assert (first.data, first.last_event_id) == ("before", "1")
                app.hub.publish("c", "x\ny")
                second = await asyncio.wait_for(anext(it), TIMEOUT)
                assert second == MessageEvent("message", "x\ny", "2")
                assert source.last_event_id == "2" and source.connections == 1

    @pytest.mark.asyncio
    async def test_reconnects_after_the_stream_ends_with_nothing_missed(self) -> None:
        # Streams that end every 50 ms (hub_stream's timeout, as a load balancer's rebalancing would):
        # the client reconnects each time with Last-Event-ID and misses nothing published in between.
        async with demo() as (server, app):

            @app.get("/short-events")
            async def short_events(request: Request) -> StreamingResponse | Response:
                return hub_stream(request, app.hub, "default", timeout=0.05)

            async with sse_connect(url(server, "/short-events"), reconnection_time=0.01) as source:
                received: list[str] = []

                async def consume() -> None:
                    async for message in source:
                        received.append(message.data)
                        if len(received) == 60:
                            return

                task = asyncio.ensure_future(consume())
                await wait_until(lambda: app.hub.subscriber_count("default") == 1)
                await wait_until(lambda: source.last_event_id == "0")
                for burst in range(6):  # bursts spread over several streams' lifetimes
                    for i in range(10):
                        app.hub.publish("default", f"m{burst * 10 + i}")
                    await asyncio.sleep(0.04)
                await asyncio.wait_for(task, TIMEOUT)
                assert received == [f"m{i}" for i in range(60)]
                assert source.connections > 1

    @pytest.mark.asyncio
    async def test_reconnects_after_a_reset_connection(self) -> None:
        async with demo() as (server, app):
            async with sse_connect(url(server, "/events"), reconnection_time=0.01) as source:
                it = aiter(source)
                # The source connects when first iterated.
                first = asyncio.ensure_future(anext(it))
                await wait_until(lambda: app.hub.subscriber_count("default") == 1)
                app.hub.publish("default", "a")
                assert (await asyncio.wait_for(first, TIMEOUT)).data == "a"
                source.drop(reset=True)
                await wait_until(lambda: app.hub.subscriber_count("default") == 0)
                app.hub.publish("default", "b")  # published while the client is away
                assert (await asyncio.wait_for(anext(it), TIMEOUT)).data == "b"
                assert source.connections == 2

    @pytest.mark.asyncio
    async def test_honours_retry_and_handler_end(self) -> None:
        count = 0

        async def produce(stream: EventStream) -> None:
            nonlocal count
            count += 1
            await stream.send(f"n{count}", id=str(count), retry=10)
            stream.complete()

        seen_ids: list[str | None] = []

        def make(request: Request) -> EventStream:
            seen_ids.append(request.headers.get("last-event-id"))
            return EventStream(request)

        async with running(stream_app(make, produce)) as server:
            async with sse_connect(url(server, "/s"), reconnection_time=5.0) as source:
                it = aiter(source)
                data = [(await asyncio.wait_for(anext(it), TIMEOUT)).data for _ in range(3)]
                assert data == ["n1", "n2", "n3"]
                assert source.reconnection_time == 0.01
                assert seen_ids[:3] == [None, "1", "2"]

    @pytest.mark.asyncio
    async def test_204_stops_and_errors_fail(self) -> None:
        app = App()

        @app.get("/nocontent")
        async def nocontent(request: Request) -> Response:
            return Response(b"", 204)

        @app.get("/text")
        async def text(request: Request) -> Response:
            return Response.text("not a stream")

        async with running(app) as server:
            async with sse_connect(url(server, "/nocontent")) as source:
                assert [m async for m in source] == []
            with pytest.raises(EventSourceError) as info:
                async with sse_connect(url(server, "/missing")) as source:
                    await anext(aiter(source))
            assert info.value.status == 404
            with pytest.raises(EventSourceError) as info:
                async with sse_connect(url(server, "/text")) as source:
                    await anext(aiter(source))
            assert info.value.content_type == "text/plain; charset=utf-8"

    @pytest.mark.asyncio
    async def test_bounded_retries_when_nobody_listens(self) -> None:
        async with running(App()) as server:
            port = server.port
        source = EventSource(
            f"http://127.0.0.1:{port}/events", reconnection_time=0.001, max_retries=2, connect_timeout=1.0
        )
        async with source:
            with pytest.raises(EventSourceError, match="gave up after 3 failed attempts"):
                await asyncio.wait_for(anext(aiter(source)), TIMEOUT)

    def test_rejects_other_schemes(self) -> None:
        with pytest.raises(ValueError):
            sse_connect("ftp://example.com/")
