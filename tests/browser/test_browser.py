"""Real-browser tests: a headless Chromium (Debian package ``chromium``) against the demo server.

What only a browser can show: that rawrt's wire formats satisfy a real ``EventSource`` (WHATWG HTML §9.2)
and a real ``WebSocket`` (RFC 6455, with the permessage-deflate offer of RFC 7692 that Chromium sends on
every connection), including the browser's own reconnection with ``Last-Event-ID``, and that the chat page
(``/chat``, ``rawrt/static/chat.html``) works across tabs on different transports, and that the protocol lab
(``/``, ``rawrt/static/index.html``) runs its four lanes and shows their bytes.

The browser is driven through the DevTools protocol by ``chromium.py`` (next to this file). One Chromium
runs for the module; each test gets its own DevTools connection and its own server on 127.0.0.1:0, and
closes its tabs before the server shuts down. Every wait is bounded.

Skipped when ``chromium`` is not installed, unless ``RAWRT_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then the
missing browser is an error, never a silent skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from chromium import Browser, Chromium, Page

from rawrt.app import App, Request, Response, StreamingResponse
from rawrt.demo import DemoApp, create_app
from rawrt.limits import DEFAULT_LIMITS, Limits
from rawrt.server import Server
from rawrt.sse import hub_stream
from rawrt.websocket import WebSocket

pytestmark = pytest.mark.browser

#: Bound of one wait in these tests (a page load, a message to arrive), in seconds.
TIMEOUT = 5.0

#: Chromium's EventSource reconnection time when the server sets no ``retry`` (the demo sets none): 3 s.
BROWSER_RECONNECT = 3.0


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """One headless Chromium for the module, killed (and its profile removed) whatever happens."""
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("RAWRT_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "RAWRT_REQUIRE_BROWSER=1 but no `chromium` on PATH: install the Debian package `chromium`",
                pytrace=False,
            )
        pytest.skip("no `chromium` on PATH (Debian package `chromium`); set RAWRT_REQUIRE_BROWSER=1 to fail")
    process = Chromium.launch(executable)
    try:
        yield process
    finally:
        process.kill()


@pytest_asyncio.fixture
async def browser(chromium: Chromium) -> AsyncIterator[Browser]:
    """A DevTools connection for one test; its tabs are closed at the end."""
    connection = await Browser.connect(chromium.browser_url)
    try:
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def serve(app: App, browser: Browser, limits: Limits = DEFAULT_LIMITS) -> AsyncIterator[Server]:
    """Run ``app`` on 127.0.0.1:<free port> (as ``tests/conftest.py``'s ``start_server`` does). The browser's
    tabs are closed first on the way out, so the server's shutdown does not race their reconnections."""
    server = Server(app, limits)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        try:
            await browser.close_pages()
        finally:
            await server.shutdown(timeout=2.0)


# ------------------------------------------------------------------------------------------------ helpers


def server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The ERROR records rawrt's loggers emitted during the test (each a bug: rawrt logs none otherwise)."""
    errors = []
    for record in caplog.records:
        if not record.name.startswith("rawrt") or record.levelno < logging.ERROR:
            continue
        exc = record.exc_info[1] if record.exc_info else None
        errors.append(f"{record.name}: {record.getMessage()}: {exc!r}")
    return errors


def url(server: Server) -> str:
    """The server's base URL."""
    return f"http://127.0.0.1:{server.port}"


def drop_connection(server: Server, request: Request) -> None:
    """Abort the server's connection that carries ``request`` (a TCP RST, as when a server process dies)."""
    for conn in server.connections:
        if conn.transport.get_extra_info("peername") == request.client:
            conn.transport.abort()
            return
    raise AssertionError(f"no connection from {request.client}")


async def publish(base: str, channel: str, data: str) -> int:
    """``POST /publish?channel=...`` with ``data`` as the body, over a fresh connection; returns the id."""
    host, _, port = base.removeprefix("http://").partition(":")
    body = data.encode("utf-8")
    head = (
        f"POST /publish?channel={channel} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), TIMEOUT)
    try:
        writer.write(head.encode("ascii") + body)
        response = await asyncio.wait_for(reader.read(), TIMEOUT)  # to EOF: we asked for Connection: close
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", response[:500]
    answer = json.loads(rest.partition(b"\r\n\r\n")[2])
    event_id = answer["id"]
    assert isinstance(event_id, int)
    return event_id


def record(app: App, path: str) -> list[Request]:
    """Wrap the ``GET`` handler of ``path`` so that every request it answers is appended to the list."""
    found = app.match(path)
    assert found is not None, path
    route = found[0]
    handler = route.handlers["GET"]
    requests: list[Request] = []

    async def recording(request: Request) -> Response | StreamingResponse:
        requests.append(request)
        return await handler(request)

    route.handlers["GET"] = recording
    return requests


def record_websockets(app: App, path: str) -> list[WebSocket]:
    """Wrap the WebSocket handler of ``path`` so that every accepted connection is appended to the list."""
    found = app.match(path)
    assert found is not None, path
    route = found[0]
    handler = route.websocket
    assert handler is not None
    accepted: list[WebSocket] = []

    async def recording(ws: WebSocket) -> None:
        accepted.append(ws)
        await handler(ws)

    route.websocket = recording
    return accepted


# Payloads whose bytes must come out of the browser as they went in. Not "\r": an SSE data line ends at CR,
# LF or CRLF and the client joins lines with LF (documented in rawrt.sse), so CR cannot survive SSE.
PAYLOADS = [
    "hello",
    "two\nlines",
    "\n",
    " one leading space (SSE strips exactly one after the colon)",
    "üñíçødé ✓ — 日本語 🎉 (astral plane: 𝄞)",
    "data: not a field\n\nid: 99\nevent: fake",
    ": not a comment",
    '{"id": 12345, "data": "json in json"}',
    "trailing newline\n",
    "tab\tand NUL \x00 and DEL \x7f",
    "x" * 100_000,
    "",
]


# ------------------------------------------------------------------------------------------------ the tests


@pytest.mark.asyncio
async def test_page_eventsource_and_websocket_receive_published_events(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """An EventSource and a WebSocket made in the page (not the page's own code) get every event POSTed to
    /publish: the same text, in order, each once, the SSE ones with their id as ``lastEventId``."""
    app = create_app()
    async with serve(app, browser) as server:
        base = url(server)
        page = await browser.new_page(base + "/chat")
        assert await page.evaluate("document.title") == "rawrt chat: four ways to be real-time"
        await page.evaluate(
            """
            window.got = { sse: [], ws: [], sseOpen: false, wsOpen: false, errors: 0 };
            const source = new EventSource("/events?channel=browser1");
            source.onopen = () => { got.sseOpen = true; };
            source.onerror = () => { got.errors += 1; };
            source.onmessage = (m) => { got.sse.push([m.type, m.lastEventId, m.data]); };
            const socket = new WebSocket(`ws://${location.host}/ws/chat?channel=browser1`);
            socket.onopen = () => { got.wsOpen = true; };
            socket.onmessage = (m) => { got.ws.push(m.data); };
            socket.onclose = () => { got.errors += 1; };
            window.source = source;
            window.socket = socket;
            """
        )
        await page.wait_for("got.sseOpen && got.wsOpen")

        ids = [await publish(base, "browser1", data) for data in PAYLOADS]
        # The server's default ids start from its start time (rawrt.hub.ids): exact in JavaScript too.
        assert app.hub.start > 2**50
        assert ids == list(range(app.hub.start + 1, app.hub.start + len(PAYLOADS) + 1))

        n = len(PAYLOADS)
        await page.wait_for(f"got.sse.length >= {n} && got.ws.length >= {n}")
        # Let anything extra (a duplicate) arrive before counting.
        await asyncio.sleep(0.2)
        got = await page.evaluate("got")
        assert got["errors"] == 0
        assert got["sse"] == [["message", str(i), data] for i, data in zip(ids, PAYLOADS, strict=True)]
        assert [json.loads(text) for text in got["ws"]] == [
            {"channel": "browser1", "id": i, "data": data} for i, data in zip(ids, PAYLOADS, strict=True)
        ]
        # The UTF-8 bytes too, as the page encodes them (lone surrogates would not survive either way).
        page_bytes = await page.evaluate("got.sse.map(([, , d]) => Array.from(new TextEncoder().encode(d)))")
        assert [bytes(b) for b in page_bytes] == [data.encode("utf-8") for data in PAYLOADS]
        assert await page.evaluate("[source.readyState, socket.readyState]") == [1, 1]
    assert server_errors(caplog) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("ending", ["completed", "reset"])
async def test_eventsource_reconnects_with_last_event_id_and_misses_nothing(
    browser: Browser, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    """The server ends the SSE stream mid-way; the browser reconnects by itself with ``Last-Event-ID`` while
    events keep coming, and ends up with each event exactly once, in order.

    ``completed``: rawrt ends the first stream cleanly (the chunked body's last chunk; here through
    ``hub_stream``'s ``timeout``, as a load balancer's rebalancing would; a subscriber that falls behind its
    hub queue ends the same way). ``reset``: the server's side of the TCP connection is aborted (RST), a
    network error for the browser.
    """
    limits = Limits(hub_queue_size=4)
    app: DemoApp = create_app(limits)
    if ending == "completed":
        found = app.match("/events")
        assert found is not None
        first = [True]

        async def ends_once(request: Request) -> Response | StreamingResponse:
            timeout, first[0] = (1.0 if first[0] else None), False
            return hub_stream(request, app.hub, "resume", limits=limits, timeout=timeout)

        found[0].handlers["GET"] = ends_once
    requests = record(app, "/events")
    async with serve(app, browser, limits) as server:
        base = url(server)
        page = await browser.new_page(base + "/hello")
        await page.evaluate(
            """
            window.got = { messages: [], opens: 0, errors: 0 };
            const source = new EventSource("/events?channel=resume");
            source.onopen = () => { got.opens += 1; };
            source.onerror = () => { got.errors += 1; };
            source.onmessage = (m) => { got.messages.push([m.lastEventId, m.data]); };
            window.source = source;
            """
        )
        await page.wait_for("got.opens === 1")
        s = app.hub.start
        for i in range(1, 6):
            assert await publish(base, "resume", f"event {i}") == s + i
        await page.wait_for("got.messages.length === 5")

        if ending == "completed":
            await page.wait_for("got.errors === 1")  # the stream ended after its 1 s
            for i in range(6, 16):
                assert await publish(base, "resume", f"event {i}") == s + i
        else:
            drop_connection(server, requests[0])
            for i in range(6, 16):
                assert await publish(base, "resume", f"event {i}") == s + i
            await page.wait_for("got.errors === 1")
        assert await page.evaluate("source.readyState") == 0  # CONNECTING: the browser will retry

        # Keep publishing while the browser waits out its reconnection time.
        for i in range(16, 26):
            assert await publish(base, "resume", f"event {i}") == s + i
            await asyncio.sleep(0.05)
        reconnected = "got.opens === 2 && got.messages.length >= 25"
        await page.wait_for(reconnected, timeout=BROWSER_RECONNECT + TIMEOUT)
        await asyncio.sleep(0.2)
        got = await page.evaluate("got")

    assert got["messages"] == [[str(s + i), f"event {i}"] for i in range(1, 26)]
    assert (got["opens"], got["errors"]) == (2, 1)
    # Server side: the first request had no resume id; the browser's reconnection sent Last-Event-ID: 5 (the
    # fifth event's id), the last event it was given before the stream ended.
    assert len(requests) == 2
    assert requests[0].headers.get("last-event-id") is None
    assert requests[1].headers.get("last-event-id") == str(s + 5)
    assert requests[1].query_param("last_event_id") is None
    assert server_errors(caplog) == []


CHAT_READY = {
    "ws": "document.getElementById('status').textContent === 'WebSocket open'",
    "sse": "document.getElementById('status').textContent === 'SSE stream open'",
    # Polling tabs start "from now": they are ready once their first answer gave them a cursor.
    "poll": "window.rawrtChat.cursor !== null",
    "longpoll": "window.rawrtChat.cursor !== null",
}

CHAT_LOG = """[...document.querySelectorAll('#log div')].map((line) => [
    Number(line.dataset.id), line.querySelector('.meta').textContent,
    line.querySelector('b').textContent, line.querySelector('span:last-child').textContent])"""


async def wait_for_lines(page: Page, transport: str, n: int, *, timeout: float = TIMEOUT) -> None:
    """Wait until a chat tab's log shows ``n`` lines; the timeout's message has what it does show."""
    try:
        await page.wait_for(f"document.querySelectorAll('#log div').length >= {n}", timeout=timeout)
    except AssertionError:
        shown = await page.evaluate(CHAT_LOG)
        status = await page.evaluate("document.getElementById('status').textContent")
        raise AssertionError(
            f"{transport} tab: {len(shown)} lines, not {n}: {shown} (status: {status!r})"
        ) from None


async def say(page: Page, name: str, text: str) -> None:
    """Type ``text`` as ``name`` in a chat tab and submit the form, as a user would."""
    await page.evaluate(
        f"""
        document.getElementById('name').value = {json.dumps(name)};
        document.getElementById('text').value = {json.dumps(text)};
        document.getElementById('send').requestSubmit();
        """
    )
    await page.wait_for("document.getElementById('text').value === ''")


@pytest.mark.asyncio
async def test_chat_page_tabs_on_four_transports_see_each_others_messages(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """Four chat tabs, one per transport: a message sent in one shows up in all, each counted under its
    tab's transport, with the same hub ids everywhere."""
    app = create_app()
    async with serve(app, browser) as server:
        base = url(server)
        tabs: dict[str, Page] = {}
        for transport in ("ws", "sse", "poll", "longpoll"):
            tabs[transport] = await browser.new_page(f"{base}/chat?transport={transport}")
        for transport, page in tabs.items():
            await page.wait_for(CHAT_READY[transport])
            checked = "document.querySelector('input[name=transport]:checked').value"
            assert await page.evaluate(checked) == transport

        # Each tab sends one message: the WebSocket tab over its socket, the others with POST /publish.
        sent = [(transport, f"hello from {transport} ✓") for transport in tabs]
        for transport, text in sent:
            await say(tabs[transport], transport, text)
        for transport, page in tabs.items():
            await wait_for_lines(page, transport, len(sent))
        await asyncio.sleep(0.3)  # let a duplicate arrive, if there were one

        for transport, page in tabs.items():
            # Every tab shows every message once, in hub id order, as arrived over its own transport.
            expected = [
                [i, f"#{i} via {transport}", name, text]
                for i, (name, text) in enumerate(sent, app.hub.start + 1)
            ]
            assert await page.evaluate(CHAT_LOG) == expected, transport
            stats = await page.evaluate("window.rawrtChat.stats")
            assert stats[transport]["msgs"] == len(sent), (transport, stats)
            assert all(s["msgs"] == 0 for t, s in stats.items() if t != transport), (transport, stats)
            assert stats[transport]["reqs"] >= 1
            assert stats[transport]["bytes"] > 0, (transport, stats)
            seen = [app.hub.start + i for i in (1, 2, 3, 4)]
            assert await page.evaluate("[...window.rawrtChat.seen]") == seen
            assert await page.evaluate("window.rawrtChat.cursor") == seen[-1]
            # The stats table shows this tab's transport as the active row.
            active = await page.evaluate("document.querySelector('#stats tr.active td').textContent")
            assert active == transport
    assert [event.id for event in app.hub.since("default", 0).events] == seen
    assert server_errors(caplog) == []


# A text message of every kind of character and binary messages with every byte value; sizes on both sides
# of the 7-bit, 16-bit and 64-bit length encodings (RFC 6455 §5.2).
WS_ECHO_SCRIPT = """
(async () => {
    const socket = new WebSocket(`ws://${location.host}/ws`);
    socket.binaryType = "arraybuffer";
    const replies = [];
    let wake = null;
    socket.onmessage = (m) => { replies.push(m.data); if (wake) wake(); };
    await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
    const bytes = (n) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 256);
    const messages = [
        "héllo ✓ 🎉", "", "a".repeat(125), "b".repeat(126), "ü".repeat(40000),
        bytes(256).buffer, new ArrayBuffer(0), bytes(65535).buffer, bytes(65536).buffer, bytes(200000).buffer,
    ];
    for (const message of messages) socket.send(message);
    while (replies.length < messages.length) await new Promise((resolve) => { wake = resolve; });
    const hex = (data) => Array.from(new Uint8Array(data), (b) => b.toString(16).padStart(2, "0")).join("");
    const closed = new Promise((resolve) => { socket.onclose = (e) => resolve([e.code, e.wasClean]); });
    const extensions = socket.extensions;
    socket.close(1000, "done");
    return {
        extensions,
        sent: messages.map((m) => typeof m === "string" ? ["text", m] : ["binary", hex(m)]),
        replies: replies.map((m) => typeof m === "string" ? ["text", m] : ["binary", hex(m)]),
        close: await closed,
    };
})()
"""


@pytest.mark.asyncio
async def test_page_websocket_echo_keeps_opcodes_and_negotiates_permessage_deflate(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """A page WebSocket to /ws gets text back as text and binary (ArrayBuffer) as binary, byte for byte, over
    a permessage-deflate connection that Chromium offered and rawrt accepted (seen from both ends)."""
    app = create_app()
    accepted = record_websockets(app, "/ws")
    async with serve(app, browser) as server:
        base = url(server)
        page = await browser.new_page(base + "/hello")
        await page.send("Network.enable")
        since = len(page.events)
        result = await page.evaluate(WS_ECHO_SCRIPT, timeout=TIMEOUT)

        assert result["replies"] == result["sent"]
        assert [kind for kind, _ in result["replies"]] == ["text"] * 5 + ["binary"] * 5
        assert result["close"] == [1000, True]

        # The browser's view of the handshake: its offer and rawrt's answer.
        request = await page.wait_event("Network.webSocketWillSendHandshakeRequest", since=since)
        response = await page.wait_event("Network.webSocketHandshakeResponseReceived", since=since)
        offered = {k.lower(): v for k, v in request["request"]["headers"].items()}
        answered = {k.lower(): v for k, v in response["response"]["headers"].items()}
        assert "permessage-deflate" in offered["sec-websocket-extensions"]
        assert response["response"]["status"] == 101
        assert answered["sec-websocket-extensions"].startswith("permessage-deflate")
        assert result["extensions"] == answered["sec-websocket-extensions"]

        # The frames as Chromium saw them (after inflating): opcode 1 for text, 2 for binary, both ways.
        def opcodes(method: str) -> list[int]:
            return [p["response"]["opcode"] for m, p in page.events[since:] if m == method]

        await page.wait_event("Network.webSocketClosed", since=since)
        # (Chromium reports data frames only: no close frame among them.)
        assert opcodes("Network.webSocketFrameSent") == [1] * 5 + [2] * 5
        assert opcodes("Network.webSocketFrameReceived") == [1] * 5 + [2] * 5

    # The server's view: one connection, with the extension in force (its frames were compressed).
    assert len(accepted) == 1
    assert accepted[0].protocol.extension is not None
    assert "permessage-deflate" in (accepted[0].headers.get("sec-websocket-extensions") or "")
    assert server_errors(caplog) == []


@pytest.mark.asyncio
async def test_chat_tabs_recover_from_overflow_on_every_transport(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """A burst larger than a subscriber's hub queue (4 here) right after the tabs open. rawrt writes each
    event to a healthy SSE stream the moment it is published, so the SSE tab simply keeps up; the WebSocket
    tab may fall behind (close 1013, the page reconnects with ``since``); a held long poll answers and polls
    again. Every tab ends with every event once, in order.
    """
    limits = Limits(hub_queue_size=4)
    app = create_app(limits)
    async with serve(app, browser, limits) as server:
        base = url(server)
        tabs = {
            transport: await browser.new_page(f"{base}/chat?transport={transport}")
            for transport in CHAT_READY
        }
        for transport, page in tabs.items():
            await page.wait_for(CHAT_READY[transport])
        # Before any tab has received an event (the WebSocket tab has no cursor yet).
        for i in range(1, 13):
            app.hub.publish("default", json.dumps({"from": "burst", "text": f"burst {i}"}))
        for i in range(13, 17):
            await publish(base, "default", json.dumps({"from": "post", "text": f"post {i}"}))
        for transport, page in tabs.items():
            await wait_for_lines(page, transport, 16, timeout=BROWSER_RECONNECT + TIMEOUT)
        await asyncio.sleep(0.3)
        for transport, page in tabs.items():
            log = await page.evaluate(CHAT_LOG)
            assert [line[0] for line in log] == list(range(app.hub.start + 1, app.hub.start + 17)), transport
            assert [line[3] for line in log] == [f"burst {i}" for i in range(1, 13)] + [
                f"post {i}" for i in range(13, 17)
            ]
            assert (await page.evaluate("window.rawrtChat.stats"))[transport]["msgs"] == 16
    assert server_errors(caplog) == []


@pytest.mark.asyncio
async def test_chat_tab_switching_transport_resumes_from_its_cursor(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """One tab cycles through the four transports (clicking the radio buttons) while events are published,
    some right as it switches: its log ends with every event once, in order, and each old transport let go
    of its connection (no live hub subscription is left once the tab is on short polling)."""
    app = create_app()
    async with serve(app, browser) as server:
        base = url(server)
        page = await browser.new_page(f"{base}/chat?transport=ws")
        await page.wait_for(CHAT_READY["ws"])
        n = 0
        for transport in ("sse", "longpoll", "poll", "ws", "sse"):
            for _ in range(2):
                n += 1
                await publish(base, "default", json.dumps({"from": "py", "text": f"message {n}"}))
            await wait_for_lines(page, "switching", n, timeout=2 * TIMEOUT)
            await page.evaluate(f"document.querySelector('input[value={transport}]').click()")
            n += 1  # while the new transport starts: it must pick this one up from the cursor
            await publish(base, "default", json.dumps({"from": "py", "text": f"message {n}"}))
            await page.wait_for(CHAT_READY[transport] if transport in ("ws", "sse") else "true")
            if transport == "poll":
                await wait_for_lines(page, "switching", n, timeout=2 * TIMEOUT)
                await asyncio.sleep(0.2)
                assert app.hub.subscriber_count("default") == 0
        await wait_for_lines(page, "switching", n, timeout=2 * TIMEOUT)
        await asyncio.sleep(0.3)
        log = await page.evaluate(CHAT_LOG)
        assert [line[0] for line in log] == list(range(app.hub.start + 1, app.hub.start + n + 1))
        assert [line[3] for line in log] == [f"message {i}" for i in range(1, n + 1)]
        stats = await page.evaluate("window.rawrtChat.stats")
        assert sum(s["msgs"] for s in stats.values()) == n
        assert all(s["msgs"] > 0 for s in stats.values()), stats
    assert server_errors(caplog) == []


# ------------------------------------------------------------------------------- the protocol lab (GET /)

LAB_READY = (
    "window.rawrtLab && rawrtLab.wire.open && Object.values(rawrtLab.lanes).every((lane) => lane.ready)"
)


def lane_texts(lane: str) -> str:
    """JavaScript: the texts a lab lane shows, in order."""
    selector = f"#lane-{lane} .messages li:not(.empty) .text"
    return f"[...document.querySelectorAll('{selector}')].map((e) => e.textContent)"


@pytest.mark.asyncio
async def test_lab_every_lane_receives_a_published_message(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """The lab page runs its four lanes on its channel: an event POSTed to /publish shows up in each lane
    once, each lane's wire view shows its own requests and the server's counters."""
    app = create_app()
    async with serve(app, browser) as server:
        base = url(server)
        page = await browser.new_page(f"{base}/?channel=lab1")
        assert (
            await page.evaluate("document.title")
            == "rawrt protocol lab: four ways to be real-time, byte by byte"
        )
        await page.wait_for(LAB_READY)
        event_id = await publish(base, "lab1", "hello lanes ✓")
        lanes = ("poll", "longpoll", "sse", "ws")
        for lane in lanes:
            # Short polling waits for its next tick (1 s).
            await page.wait_for(f"{lane_texts(lane)}.length >= 1", timeout=TIMEOUT)
        await asyncio.sleep(0.3)
        for lane in lanes:
            assert await page.evaluate(lane_texts(lane)) == ["hello lanes ✓"], lane
            ids = await page.evaluate(f"[...rawrtLab.lanes.{lane}.seen]")
            assert ids == [event_id], lane
            # The wire view: this lane's request head, its answer, with the server's counters.
            titles = await page.evaluate(
                f"[...document.querySelectorAll('#lane-{lane} .rec .title')].map((e) => e.textContent)"
            )
            path = {"poll": "/poll", "longpoll": "/longpoll", "sse": "/events", "ws": "/ws/chat"}[lane]
            assert any(t.startswith(f"GET {path}?channel=lab1&lab=") for t in titles), (lane, titles)
            stats = await page.evaluate(f"rawrtLab.lanes.{lane}.wire")
            assert stats["requests"] >= 1 and stats["in"] > 0 and stats["out"] > 0, (lane, stats)
            shown = await page.evaluate(
                f"document.querySelector('#lane-{lane} [data-k=requests]').textContent"
            )
            assert int(shown) >= 1
        sse_titles = await page.evaluate(
            "[...document.querySelectorAll('#lane-sse .rec .title')].map((e) => e.textContent)"
        )
        assert f"SSE event id={event_id}: hello lanes ✓" in sse_titles
        # Keyboard and screen readers: every control has a name, every scrolling region takes the focus.
        unnamed = await page.evaluate(
            """[...document.querySelectorAll('input, select, button, summary')].filter((e) =>
                !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()
            ).map((e) => e.outerHTML)"""
        )
        assert unnamed == []
        unfocusable = await page.evaluate(
            "[...document.querySelectorAll('.messages, .wirelog')].filter((e) => e.tabIndex < 0).length"
        )
        assert unfocusable == 0
        # No 404 for an icon: the page declares its own, and /favicon.ico is served for the others.
        icon = await page.evaluate(
            "fetch('/favicon.ico').then((r) => [r.status, r.headers.get('content-type')])"
        )
        assert icon == [200, "image/x-icon"]
    assert server_errors(caplog) == []


@pytest.mark.asyncio
async def test_lab_wire_view_shows_the_frame_the_page_sent(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """A message typed in the lab goes out as a WebSocket frame; the WebSocket lane's wire view shows that
    frame's header as rawrt read it (FIN=1, opcode=1, MASK=1, the masking key, masked and unmasked bytes)
    and the 101 with Sec-WebSocket-Accept worked out; the message then shows up in all four lanes."""
    app = create_app()
    async with serve(app, browser) as server:
        base = url(server)
        page = await browser.new_page(f"{base}/?channel=lab2")
        await page.wait_for(LAB_READY)
        await page.evaluate(
            """
            document.getElementById('text').value = 'typed once';
            document.getElementById('send').requestSubmit();
            """
        )
        sent_frame = (
            "[...document.querySelectorAll('#lane-ws .rec.in.frame')].map((rec) => "
            "[rec.querySelector('.title').textContent, "
            "[...rec.querySelectorAll('.row')].map((row) => [row.querySelector('.raw').textContent, "
            "row.querySelector('.note').textContent])])"
        )
        await page.wait_for(f"{sent_frame}.length >= 1")
        title, rows = (await page.evaluate(sent_frame))[0]
        assert title.startswith("text frame,") and title.endswith(", masked")
        notes = [note for _, note in rows]
        assert notes[0].startswith("FIN=1 RSV1=1 RSV2=0 RSV3=0 opcode=1 (text)")  # Chromium compresses
        assert notes[1].startswith("MASK=1, payload length")
        key = rows[2]
        assert notes[2].startswith("masking key") and len(key[0].split()) == 4
        assert any(note.startswith("unmasked") for note in notes)
        assert json.loads(rows[-1][0])["text"] == "typed once" and rows[-1][1].startswith("inflated")
        handshake = await page.evaluate(
            "[...document.querySelectorAll('#lane-ws .rec.out.response .note')].map((e) => e.textContent)"
        )
        assert "in base64 = Sec-WebSocket-Accept ✓" in handshake
        for lane in ("poll", "longpoll", "sse", "ws"):
            await page.wait_for(f"{lane_texts(lane)}.includes('typed once')")
        # This page's own message carries its publish time: a latency is shown for it.
        assert await page.evaluate("rawrtLab.lanes.ws.latencies.length") == 1
    assert server_errors(caplog) == []
