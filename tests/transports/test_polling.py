"""Short polling (``GET /poll``), long polling (``GET /longpoll``) and ``POST /publish`` over real loopback
sockets: the JSON contract, cursor semantics, ETag/304 (RFC 9110 §13.1.2, §15.4.5), the batch cap, holds
released by a publish or a timeout, disconnects, validation, and the 1,000-waiter burst.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
import tracemalloc
from typing import Any

import pytest
from transport_helpers import (
    TIMEOUT,
    Client,
    connect,
    demo,
    exchange,
    get,
    hard_reset,
    poll_json,
    post,
    publish,
    wait_until,
)

from rawrt.hub import Hub
from rawrt.limits import Limits
from rawrt.polling import PollAnswer, etag, etag_matches, event_json, parse_timeout


def events_of(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [(e["id"], e["data"]) for e in body["events"]]


class TestPublish:
    """``POST /publish?channel=C``: the UTF-8 body is one event; 200 ``{"id": N}``."""

    @pytest.mark.asyncio
    async def test_ids_count_up_per_channel(self) -> None:
        async with demo() as (server, app):
            assert await publish(server, "a") == 1
            assert await publish(server, "") == 2  # an empty body is a valid event
            assert await publish(server, "x", "other") == 1
            response = await exchange(server, post("/publish", "é".encode()))
            assert response.status == 200
            assert response.header(b"content-type") == b"application/json"
            assert response.body == b'{"id":3}'
            assert [e.data for e in app.hub.since("default", 0).events] == ["a", "", "é"]

    @pytest.mark.asyncio
    @pytest.mark.parametrize("body", [b"\xff", b"caf\xc3", b"\xed\xa0\x80"])  # invalid, truncated, surrogate
    async def test_non_utf8_is_400(self, body: bytes) -> None:
        async with demo() as (server, app):
            response = await exchange(server, post("/publish", body))
            assert response.status == 400
            assert b"UTF-8" in response.body
            assert app.hub.last_id("default") == 0

    @pytest.mark.asyncio
    @pytest.mark.parametrize("channel", ["", "a%20b", "a/b", "x" * 65, "%C3%A9"])
    async def test_bad_channel_is_400(self, channel: str) -> None:
        async with demo() as (server, app):
            for target in (f"/publish?channel={channel}",):
                assert (await exchange(server, post(target, b"x"))).status == 400
            for target in (f"/poll?channel={channel}", f"/longpoll?channel={channel}&since=0"):
                assert (await exchange(server, get(target))).status == 400

    @pytest.mark.asyncio
    async def test_longest_channel_name_is_fine(self) -> None:
        async with demo() as (server, app):
            name = "A-z_0.9" + "x" * 57
            assert await publish(server, "ok", name) == 1


class TestEventJSON:
    """A hub event's JSON form, what the poll answers list and the WebSocket chat sends."""

    def test_event_json(self) -> None:
        event = Hub().publish("ch", 'é "q"\n')
        assert event_json(event) == '{"channel":"ch","id":1,"data":"é \\"q\\"\\n"}'
        assert event_json(event) is event_json(event)


class TestShortPoll:
    """``GET /poll``: answers at once."""

    @pytest.mark.asyncio
    async def test_without_since_gives_the_current_cursor_and_no_events(self) -> None:
        async with demo() as (server, app):
            for i in range(3):
                app.hub.publish("default", f"e{i}")
            _, body = await poll_json(server, "/poll")
            assert body == {"cursor": 3, "events": []}
            _, body = await poll_json(server, "/poll?channel=nobody")
            assert body == {"cursor": 0, "events": []}

    @pytest.mark.asyncio
    async def test_cursor_semantics(self) -> None:
        async with demo() as (server, app):
            for i in range(1, 4):
                app.hub.publish("c", f"e{i}")
            response, body = await poll_json(server, "/poll?channel=c&since=1")
            assert response.body == (
                b'{"cursor":3,"events":[{"channel":"c","id":2,"data":"e2"},{"channel":"c","id":3,"data":"e3"}]}'
            )
            _, body = await poll_json(server, "/poll?channel=c&since=3")
            assert body == {"cursor": 3, "events": []}  # nothing new: the same cursor back
            _, body = await poll_json(server, "/poll?channel=c&since=0")
            assert events_of(body) == [(1, "e1"), (2, "e2"), (3, "e3")] and "reset" not in body

    @pytest.mark.asyncio
    async def test_reset_when_the_cursor_is_older_than_the_history(self) -> None:
        async with demo(Limits(hub_history_count=5)) as (server, app):
            for i in range(1, 11):
                app.hub.publish("default", f"e{i}")
            _, body = await poll_json(server, "/poll?since=2")
            assert body["reset"] is True
            assert events_of(body)[0] == (6, "e6") and body["cursor"] == 10
            _, body = await poll_json(server, "/poll?since=42")  # ahead: from before a restart
            assert body["reset"] is True and body["cursor"] == 10
            _, body = await poll_json(server, "/poll?since=5")  # exactly the edge: no gap
            assert "reset" not in body and len(body["events"]) == 5

    @pytest.mark.asyncio
    async def test_batch_is_capped_at_1000_and_continues_from_the_cursor(self) -> None:
        async with demo() as (server, app):
            for i in range(1, 2501):
                app.hub.publish("default", str(i))
            cursor = 0
            sizes: list[int] = []
            seen: list[int] = []
            while True:
                _, body = await poll_json(server, f"/poll?since={cursor}")
                if not body["events"]:
                    break
                sizes.append(len(body["events"]))
                seen.extend(e["id"] for e in body["events"])
                cursor = body["cursor"]
            assert sizes == [1000, 1000, 500]
            assert seen == list(range(1, 2501))

    @pytest.mark.asyncio
    @pytest.mark.parametrize("since", ["-1", "abc", "1.5", "", "1" * 20, "%EF%BC%91"])
    async def test_bad_since_is_400(self, since: str) -> None:
        async with demo() as (server, app):
            assert (await exchange(server, get(f"/poll?since={since}"))).status == 400
            assert (await exchange(server, get(f"/longpoll?since={since}"))).status == 400


class TestETag:
    """Short polling's validator: a strong ETag, and 304 on a matching ``If-None-Match``."""

    @pytest.mark.asyncio
    async def test_304_when_nothing_is_new(self) -> None:
        async with demo() as (server, app):
            app.hub.publish("default", "one")
            first, body = await poll_json(server, "/poll?since=0")
            tag = first.header(b"etag")
            assert tag is not None and tag.startswith(b'"default-1.') and not tag.startswith(b"W/")
            assert first.header(b"cache-control") == b"no-cache"
            # The client continues from its cursor and presents the tag it holds: nothing new -> 304.
            again = await exchange(server, get("/poll?since=1", f"If-None-Match: {tag.decode()}"))
            assert (again.status, again.body) == (304, b"")
            assert again.header(b"etag") == tag and again.header(b"cache-control") == b"no-cache"
            assert again.header(b"content-length") is None
            # Weak comparison (RFC 9110 §13.1.2): W/ is ignored; lists and * match too.
            for value in (f"W/{tag.decode()}", f'"zzz", {tag.decode()}', "*"):
                response = await exchange(server, get("/poll?since=1", f"If-None-Match: {value}"))
                assert response.status == 304, value
            app.hub.publish("default", "two")
            fresh = await exchange(server, get("/poll?since=1", f"If-None-Match: {tag.decode()}"))
            assert fresh.status == 200 and json.loads(fresh.body)["cursor"] == 2
            assert fresh.header(b"etag") != tag

    @pytest.mark.asyncio
    async def test_bytes_per_empty_poll(self, capsys: pytest.CaptureFixture[str]) -> None:
        async with demo() as (server, app):
            app.hub.publish("default", "x")
            request = get("/poll?since=1")
            full = await exchange(server, request)
            conn = await connect(server)
            try:
                await conn.send(request)
                raw_200 = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                await asyncio.wait_for(conn.reader.readexactly(len(full.body)), TIMEOUT)
                tag = full.header(b"etag")
                assert tag is not None
                conditional = get("/poll?since=1", f"If-None-Match: {tag.decode()}")
                await conn.send(conditional)
                raw_304 = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            finally:
                await conn.close()
            sizes = (len(request), len(raw_200) + len(full.body), len(conditional), len(raw_304))
            with capsys.disabled():
                print(
                    f"\nempty poll: request {sizes[0]} B + 200 response {sizes[1]} B; "
                    f"conditional: request {sizes[2]} B + 304 response {sizes[3]} B"
                )
            assert raw_304.startswith(b"HTTP/1.1 304 Not Modified\r\n")

    def test_etag_units(self) -> None:
        hub = Hub()
        tag = etag(hub, "c", PollAnswer((), 7))
        assert tag.startswith('"c-7.') and tag.endswith('"')
        assert etag(hub, "c", PollAnswer((), 7, True)).endswith('-reset"')
        assert etag(Hub(), "c", PollAnswer((), 7)) != tag  # another hub (a restart): another epoch
        assert etag_matches(f" W/{tag} ", tag)
        assert not etag_matches(None, tag)
        assert not etag_matches('"c-7"', tag)
        assert not etag_matches(tag[:-1], tag)


class TestLongPoll:
    """``GET /longpoll``: held until an event after the cursor exists, or the timeout."""

    @pytest.mark.asyncio
    async def test_released_by_a_publish(self) -> None:
        async with demo() as (server, app):
            app.hub.publish("default", "old")
            task = asyncio.ensure_future(poll_json(server, "/longpoll?since=1&timeout=10"))
            await wait_until(lambda: app.hub.subscriber_count("default") == 1)
            start = time.monotonic()
            await publish(server, "new")
            response, body = await asyncio.wait_for(task, TIMEOUT)
            assert time.monotonic() - start < 1.0
            assert body == {"cursor": 2, "events": [{"channel": "default", "id": 2, "data": "new"}]}
            assert response.header(b"cache-control") == b"no-store"
            assert app.hub.subscriber_count("default") == 0

    @pytest.mark.asyncio
    async def test_answers_at_once_when_events_exist_or_no_since(self) -> None:
        async with demo() as (server, app):
            for i in range(1, 4):
                app.hub.publish("default", f"e{i}")
            start = time.monotonic()
            _, body = await poll_json(server, "/longpoll?since=1&timeout=10")
            assert events_of(body) == [(2, "e2"), (3, "e3")] and body["cursor"] == 3
            _, body = await poll_json(server, "/longpoll?timeout=10")
            assert body == {"cursor": 3, "events": []}
            assert time.monotonic() - start < 1.0

    @pytest.mark.asyncio
    async def test_timeout_returns_empty_with_the_same_cursor(self) -> None:
        async with demo() as (server, app):
            app.hub.publish("default", "x")
            start = time.monotonic()
            _, body = await poll_json(server, "/longpoll?since=1&timeout=0.2")
            assert 0.19 <= time.monotonic() - start < 2.0
            assert body == {"cursor": 1, "events": []}
            _, body = await poll_json(server, "/longpoll?since=1&timeout=0")
            assert body == {"cursor": 1, "events": []}

    @pytest.mark.asyncio
    async def test_default_and_capped_timeout(self) -> None:
        limits = Limits(longpoll_default_timeout=0.1, longpoll_max_timeout=0.3)
        async with demo(limits) as (server, app):
            start = time.monotonic()
            await poll_json(server, "/longpoll?since=0")
            assert 0.09 <= time.monotonic() - start < 1.0
            start = time.monotonic()
            await poll_json(server, "/longpoll?since=0&timeout=1000")  # capped server-side, not refused
            assert 0.29 <= time.monotonic() - start < 1.5

    def test_parse_timeout(self) -> None:
        assert parse_timeout(None) == 30.0
        assert parse_timeout("61") == 60.0
        assert parse_timeout("0.5") == 0.5

    @pytest.mark.asyncio
    @pytest.mark.parametrize("timeout", ["abc", "-1", "nan", "inf", "", "1e999", "0x10", "9" * 40])
    async def test_bad_timeout_is_400(self, timeout: str) -> None:
        async with demo() as (server, app):
            response = await exchange(server, get(f"/longpoll?since=0&timeout={timeout}"))
            assert response.status == 400, timeout
            assert b"timeout" in response.body

    @pytest.mark.asyncio
    async def test_reset_answers_at_once(self) -> None:
        async with demo() as (server, app):
            start = time.monotonic()
            _, body = await poll_json(server, "/longpoll?since=5&timeout=10")  # ahead of an empty channel
            assert body == {"cursor": 0, "events": [], "reset": True}
            assert time.monotonic() - start < 1.0

    @pytest.mark.asyncio
    @pytest.mark.parametrize("how", ["fin", "rst"])
    async def test_disconnect_frees_the_waiter_at_once(self, how: str) -> None:
        async with demo() as (server, app):
            conn = await connect(server)
            await conn.send(get("/longpoll?since=0&timeout=30"))
            await wait_until(lambda: app.hub.subscriber_count("default") == 1)
            if how == "rst":
                hard_reset(conn)
            await conn.close()
            took = await wait_until(lambda: app.hub.subscriber_count("default") == 0, timeout=1.0)
            assert took < 0.5

    @pytest.mark.asyncio
    async def test_shutdown_answers_held_requests(self) -> None:
        async with demo() as (server, app):
            task = asyncio.ensure_future(poll_json(server, "/longpoll?since=0&timeout=30"))
            await wait_until(lambda: app.hub.subscriber_count("default") == 1)
            await asyncio.wait_for(server.shutdown(timeout=2.0), TIMEOUT)
            response, body = await asyncio.wait_for(task, TIMEOUT)
            assert body == {"cursor": 0, "events": []}


async def hold(conns: list[Client], target: bytes) -> None:
    for conn in conns:
        conn.writer.write(target)
    await asyncio.gather(*(conn.writer.drain() for conn in conns))


class TestScale:
    """Many held requests: memory per held request, and one publish releasing 1,000 of them at once."""

    COUNT = 1000

    @pytest.mark.asyncio
    async def test_one_publish_releases_1000_waiters(self, capsys: pytest.CaptureFixture[str]) -> None:
        # Client and server ends are both in this process: 2,000 descriptors, more than the usual soft
        # limit of 1,024. Raise the soft limit up to the hard one (allowed without privileges).
        need = 2 * self.COUNT + 256
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < need:
            if hard != resource.RLIM_INFINITY and hard < need:
                pytest.skip(f"needs {need} file descriptors, the hard limit is {hard}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        limits = Limits(max_connections=self.COUNT + 50)
        async with demo(limits) as (server, app):
            conns = await asyncio.gather(*(connect(server) for _ in range(self.COUNT)))
            try:
                tracemalloc.start()
                before = tracemalloc.get_traced_memory()[0]
                await hold(list(conns), get("/longpoll?channel=burst&since=0&timeout=30"))
                await wait_until(lambda: app.hub.subscriber_count("burst") == self.COUNT, timeout=20)
                held = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()

                start = time.perf_counter()
                app.hub.publish("burst", "go")
                bodies = await asyncio.wait_for(asyncio.gather(*(conn.read_response() for conn in conns)), 20)
                elapsed = time.perf_counter() - start
            finally:
                if tracemalloc.is_tracing():
                    tracemalloc.stop()
                await asyncio.gather(*(conn.close() for conn in conns))
            assert all(json.loads(r.body)["events"][0]["data"] == "go" for r in bodies)
            # One shared encoding: every answer carries the very same bytes.
            assert len({r.body for r in bodies}) == 1
            assert app.hub.subscriber_count("burst") == 0
            with capsys.disabled():
                print(
                    f"\nlong poll, in-process (client + server): {(held - before) / self.COUNT:.0f} B per "
                    f"held request; burst: {self.COUNT} released and read in {elapsed * 1000:.0f} ms "
                    f"({elapsed / self.COUNT * 1e6:.0f} us per waiter)"
                )
