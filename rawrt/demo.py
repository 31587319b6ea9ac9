"""The demo server: a fixed endpoint contract that learners, benchmarks and conformance runs point at.

=============================  ========================================================================
``GET /``                      the protocol lab: the four transports side by side, with their wire bytes
``GET /chat``                  the chat room: one transport per tab
``GET /favicon.ico``           the icon
``GET /lab/wire``              a lab page's wire view, ``?lab=ID``: annotated records of the bytes of the
                               requests tagged ``?lab=ID`` (WebSocket, or Server-Sent Events without
                               ``Upgrade``; :mod:`rawrt.lab`)
``POST /lab/experiments/...``  the lab's experiments: ``expect-continue`` (the same ``Expect: 100-continue``
                               POST as HTTP/1.0 and 1.1 to the server's own address, both exchanges' bytes),
                               ``burst?n=N`` (N held long polls, one publish: the re-request burst);
                               ``GET /lab/experiments/sse-resume``: ``/events`` ending after 1.5 s, so
                               that the browser resumes with ``Last-Event-ID`` (:mod:`rawrt.lab.experiments`)
``GET /hello``                 200 ``text/plain`` ``Hello, world!``
``POST /echo``                 200, the request body echoed verbatim
``ANY /inspect``               200 JSON: how rawrt parsed the request (method, target, version, headers and
                               trailers in received order and case, the body in base64)
``POST /publish``              the UTF-8 body becomes one event on ``?channel=C``; 200 JSON ``{"id": N}``
                               (400 when the body is not UTF-8)
``GET /events``                Server-Sent Events of ``?channel=C``: ``id: N`` + ``data:`` lines; resumes
                               after ``Last-Event-ID`` (or ``?last_event_id=``; the header wins)
``GET /poll``                  short poll ``?channel=C&since=N``: 200 JSON ``{"cursor": M, "events": [...]}``
                               at once, with an ETag (304 on a matching ``If-None-Match``)
``GET /longpoll``              long poll ``?channel=C&since=N&timeout=S``: the same JSON, held until an event
                               exists or ``S`` seconds pass (default 30, at most 60)
``GET /ws``                    WebSocket echo, every message sent back as it came (the Autobahn testee)
``GET /ws/chat``               WebSocket chat on ``?channel=C&since=N``: each event as its JSON text message,
                               text sent is published (:mod:`rawrt.websocket.chat`)
=============================  ========================================================================

Channels: ``channel`` defaults to ``default`` and must match ``[A-Za-z0-9_.-]{1,64}`` (else 400). One
:class:`~rawrt.hub.Hub`, ``app.hub``, feeds every transport and keeps the last 10,000 events per channel;
``docs/sse.md`` and ``docs/polling.md`` describe the SSE and polling contracts in full. The hub's backend,
``app.backend`` (:mod:`rawrt.hub.backends`), keeps the events in this process (``memory``, ids from the
start time) or in Redis Streams shared by every node (``--hub redis://...``); then an endpoint answers
``503`` while Redis is unreachable.

``docs/demo.md`` lists the whole contract. Everything here is served from the installed package.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import ssl
from importlib import resources

from .app import App, Request, Response, StreamingResponse
from .errors import HubUnavailableError
from .hub import parse_cursor
from .hub.backends import Backend, open_backend
from .lab import LAB_ID_RE, Lab
from .lab.experiments import ExperimentError, Throttle, expect_continue
from .limits import DEFAULT_LIMITS, Limits, MiB
from .polling import (
    PollParameterError,
    long_poll,
    longpoll_response,
    parse_since,
    parse_timeout,
    poll_response,
    short_poll,
)
from .sansio.ws.frames import CloseCode
from .sse import hub_stream, resume_id
from .websocket import WebSocket, chat_session

__all__ = ["create_app", "DemoApp", "DEFAULT_CHANNEL", "CHANNEL_RE", "channel_param"]

#: /ws echoes messages up to 16 MiB (Autobahn's section 9 goes that far).
WS_ECHO_MAX_MESSAGE = 16 * MiB

#: /echo and /inspect accept larger bodies than the server default, so learners can try big uploads.
DEMO_MAX_BODY = 16 * MiB


#: The most long polls the lab's burst experiment holds (issue 13: "N up to 1,000").
MAX_BURST = 1000

#: The channel used when a request names none.
DEFAULT_CHANNEL = "default"
#: What a channel name may be: short, and safe in a URL, a log line and an ETag without escaping.
CHANNEL_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class DemoApp(App):
    """The demo :class:`App`, with the :class:`~rawrt.hub.Hub` every transport shares.

    Args:
        limits: the limits the endpoints use.
        hub: the hub's backend, or a URL for :func:`~rawrt.hub.backends.open_backend` (``None``: the
            ``RAWRT_HUB`` environment variable, else ``memory``). Started and closed with the app.

    Attributes:
        backend: where the events are kept (rawrt.hub.backends).
        lab: the protocol lab's pages and wire tap (:mod:`rawrt.lab`); the app's :attr:`~App.tap` is its
            :meth:`~rawrt.lab.Lab.tapper`.
        hub: the hub behind ``/publish``, ``/events``, ``/poll``, ``/longpoll`` (and the WebSocket routes):
            ``backend.hub``.
        limits: the limits the endpoints use (heartbeat, long-poll timeouts, batch size, history).
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS, hub: Backend | str | None = None) -> None:
        super().__init__()
        self.limits = limits
        self.backend = hub if hub is not None and not isinstance(hub, str) else open_backend(hub, limits)
        self.hub = self.backend.hub
        self.on_startup.append(self.backend.start)
        self.on_shutdown.append(self.backend.close)
        self.lab = Lab(limits)
        self.tap = self.lab.tapper


def channel_param(request: Request) -> str | None:
    """The request's ``channel`` query parameter (``default`` when absent), or ``None`` when invalid."""
    channel = request.query_param("channel", DEFAULT_CHANNEL)
    assert channel is not None
    return channel if CHANNEL_RE.fullmatch(channel) else None


def _bad_request(message: str) -> Response:
    return Response.text(message + "\n", 400)


_BAD_CHANNEL = "channel must match [A-Za-z0-9_.-]{1,64}"
_BAD_LAB = "lab must match [A-Za-z0-9_-]{8,64}"
_LAB_FULL = "too many lab pages open: try again later"


def _static(name: str) -> bytes:
    return resources.files("rawrt").joinpath("static").joinpath(name).read_bytes()


def _unavailable(exc: HubUnavailableError, consequence: str = "try again") -> Response:
    return Response.text(f"{exc}: {consequence}\n", 503, headers=[("retry-after", "1")])


def _reconnect_later(exc: HubUnavailableError) -> Response:
    """``/events`` while the hub's store is unreachable: an event stream that only says "reconnect in 1 s".

    Not a 503: an ``EventSource`` fails for good on any status but 200 (WHATWG HTML §9.2.3, "fail the
    connection") and would never come back. A 200 stream that ends makes it reconnect after ``retry``, with
    its ``Last-Event-ID`` unchanged (no ``id`` field here), so it resumes exactly once Redis is back.
    """
    reason = " ".join(str(exc).split())  # one comment line: no CR or LF inside
    body = f": {reason}\nretry: 1000\n\n".encode()
    return Response(body, 200, [("cache-control", "no-store")], "text/event-stream; charset=utf-8")


def create_app(limits: Limits = DEFAULT_LIMITS, hub: Backend | str | None = None) -> DemoApp:
    """Build the demo :class:`App` (``limits`` sets its hub's history and the transports' timings; ``hub``
    its backend, as for :class:`DemoApp`)."""
    app = DemoApp(limits, hub)
    backend = app.backend
    core = app.hub
    lab_page = _static("index.html").decode("utf-8")
    chat_page = _static("chat.html").decode("utf-8")
    icon = _static("favicon.ico")

    async def event_stream(
        request: Request, *, timeout: float | None = None, retry: int | None = None
    ) -> Response | StreamingResponse:
        """``/events`` (and the lab's resume experiment, with ``timeout`` and ``retry``): the channel's
        Server-Sent Events from the client's resume id, once the backend has the channel."""
        channel = channel_param(request)
        if channel is None:
            return _bad_request(_BAD_CHANNEL)
        claimed = resume_id(request)
        try:
            await backend.prepare(channel, None if claimed is None else parse_cursor(claimed))
        except HubUnavailableError as exc:
            return _reconnect_later(exc)
        return hub_stream(request, core, channel, limits=limits, timeout=timeout, retry=retry)

    @app.get("/")
    async def index(request: Request) -> Response:
        return Response.html(lab_page)

    @app.get("/chat")
    async def chat(request: Request) -> Response:
        return Response.html(chat_page)

    @app.get("/favicon.ico")
    async def favicon(request: Request) -> Response:
        return Response(icon, 200, [("cache-control", "max-age=86400")], "image/x-icon")

    # --- the lab's wire view (rawrt.lab): the bytes of a lab page's own requests ------------------------

    lab = app.lab

    def lab_check(request: Request) -> Response | None:
        if not LAB_ID_RE.fullmatch(request.query_param("lab") or ""):
            return _bad_request(_BAD_LAB)
        return None

    @app.get("/lab/wire")
    async def lab_events(request: Request) -> Response | StreamingResponse:
        refusal = lab_check(request)
        if refusal is not None:
            return refusal
        stream = lab.serve_events(request)
        if stream is None:
            return Response.text(_LAB_FULL + "\n", 503, headers=[("retry-after", "5")])
        return stream

    @app.websocket("/lab/wire", check=lab_check)
    async def lab_wire(ws: WebSocket) -> None:
        await lab.serve_websocket(ws)

    # --- the lab's experiments (docs/howto/experiments.md) -----------------------------------------------

    # One run at a time and a few a minute, all pages together: each run opens loopback connections.
    throttle = Throttle()

    def busy() -> Response:
        return Response.json({"error": "an experiment is running or too many ran this minute: retry"}, 429)

    @app.post("/lab/experiments/expect-continue")
    async def experiment_expect_continue(request: Request) -> Response:
        # Only the socket this request arrived on, never an address from a header: the server talks to
        # itself, with two fixed requests, so the endpoint cannot reach anything else (no SSRF).
        if request.server is None:
            return Response.json({"error": "needs a TCP listening socket (not a Unix domain socket)"}, 409)
        if not throttle.acquire():
            return busy()
        host, port = request.server
        context = None
        if request.scheme == "https":
            # The server's own certificate (self-signed in the lab): identity is not in question here.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            old, new = await expect_continue(
                host, port, path=request.root_path + "/echo", ssl_context=context
            )
        except ExperimentError as exc:
            return Response.json({"error": str(exc)}, 502)
        finally:
            throttle.release()
        return Response.json(
            {
                "target": f"{host}:{port}",
                "exchanges": [old.as_dict(), new.as_dict()],
                "ok": new.interim and not old.interim,
            }
        )

    @app.get("/lab/experiments/sse-resume")
    async def experiment_sse_resume(request: Request) -> Response | StreamingResponse:
        # /events, except that the stream completes after 1.5 s and asks for a reconnect 1 s later: the
        # browser's EventSource then reconnects by itself and sends Last-Event-ID (WHATWG HTML §9.2.4),
        # which a page cannot set, so this is how a page gets to watch the resume.
        return await event_stream(request, timeout=1.5, retry=1000)

    @app.post("/lab/experiments/burst")
    async def experiment_burst(request: Request) -> Response:
        n = request.query_param("n") or "100"
        if not n.isdigit() or not 1 <= int(n) <= MAX_BURST:
            return _bad_request(f"n must be 1 to {MAX_BURST}")
        if request.server is None or request.scheme != "http":
            return Response.json(
                {"error": "needs a plain-HTTP TCP listening socket (the clients speak TCP)"}, 409
            )
        if not throttle.acquire():
            return busy()
        # rawrt compare's burst, run in this process against this server's own socket: the clients share
        # the event loop with the server, so the times include the clients' work (compare --burst runs them
        # in another process).
        from .compare import Target, run_burst

        try:
            outcome = await run_burst(Target(*request.server), int(n))
        finally:
            throttle.release()
        answered = outcome.answered_ms
        return Response.json(
            {
                "clients": outcome.clients,
                "answered": len(answered),
                "answered_p50_ms": round(answered[len(answered) // 2], 1) if answered else None,
                "answered_last_ms": round(answered[-1], 1) if answered else None,
                "rerequested_ms": None
                if outcome.rerequested_ms != outcome.rerequested_ms
                else round(outcome.rerequested_ms, 1),
                "requests": outcome.requests,
                "bytes": outcome.bytes,
                "lost": outcome.lost,
                "duplicates": outcome.duplicates,
                "errors": list(outcome.errors[:5]),
            }
        )

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text("Hello, world!")

    @app.post("/echo", max_body_size=DEMO_MAX_BODY)
    async def echo(request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type") or "application/octet-stream"
        return Response(body, 200, content_type=content_type)

    @app.route("/inspect", methods=None, max_body_size=DEMO_MAX_BODY)
    async def inspect(request: Request) -> Response:
        body = await request.body()
        return Response.json(
            {
                "method": request.method,
                "target": request.target,
                "http_version": f"HTTP/{request.http_version}",
                "headers": [[name, value] for name, value in request.headers.items()],
                "trailers": [[name, value] for name, value in request.trailers.items()],
                "body_base64": base64.b64encode(body).decode("ascii"),
            }
        )

    # --- WebSocket echo: the Autobahn testee (docs/websocket.md, docs/conformance.md) ----------------------

    # Autobahn's section 9 sends messages up to 16 MiB; the testee must not ping on its own (the runner ends a
    # case when the server pings), so keepalive is off here and tested elsewhere.
    echo_limits = dataclasses.replace(
        limits,
        ws_max_message_size=WS_ECHO_MAX_MESSAGE,
        ws_max_frame_size=WS_ECHO_MAX_MESSAGE,
        ws_ping_interval=None,
        ws_ping_timeout=None,
    )

    @app.websocket("/ws", limits=echo_limits)
    async def ws_echo(ws: WebSocket) -> None:
        # Each message goes back with its opcode: text as text, binary as binary.
        async for message in ws:
            await ws.send(message)

    # --- the chat room over WebSocket: the hub's fourth transport -------------------------------------------

    def chat_check(request: Request) -> Response | None:
        # The contract's 400s come before the upgrade, as plain HTTP, like the other endpoints' answers.
        if channel_param(request) is None:
            return _bad_request(_BAD_CHANNEL)
        try:
            parse_since(request.query_param("since"))
        except PollParameterError as exc:
            return _bad_request(str(exc))
        return None

    @app.websocket("/ws/chat", check=chat_check)
    async def ws_chat(ws: WebSocket) -> None:
        assert ws.request is not None
        channel = channel_param(ws.request)
        assert channel is not None
        since = parse_since(ws.request.query_param("since"))
        try:
            await backend.prepare(channel, since)
        except HubUnavailableError as exc:
            await ws.close(CloseCode.TRY_AGAIN_LATER, str(exc)[:120])
            return
        await chat_session(ws, core, channel, since, publish=backend.publish)

    # --- the hub's HTTP transports (docs/sse.md, docs/polling.md) -----------------------------------------

    @app.post("/publish")
    async def publish(request: Request) -> Response:
        channel = channel_param(request)
        if channel is None:
            return _bad_request(_BAD_CHANNEL)
        try:
            data = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            return _bad_request(f"the body must be UTF-8 text: {exc}")
        try:
            event = await backend.publish(channel, data)
        except HubUnavailableError as exc:
            return _unavailable(exc, "the event was not acknowledged (it may or may not be stored); retry")
        return Response.json({"id": event.id})

    @app.get("/events")
    async def events(request: Request) -> Response | StreamingResponse:
        return await event_stream(request)

    @app.get("/poll")
    async def poll(request: Request) -> Response:
        channel = channel_param(request)
        if channel is None:
            return _bad_request(_BAD_CHANNEL)
        try:
            since = parse_since(request.query_param("since"))
        except PollParameterError as exc:
            return _bad_request(str(exc))
        try:
            await backend.prepare(channel, since)
        except HubUnavailableError as exc:
            return _unavailable(exc)
        return poll_response(request, core, channel, short_poll(core, channel, since))

    @app.get("/longpoll")
    async def longpoll(request: Request) -> Response:
        channel = channel_param(request)
        if channel is None:
            return _bad_request(_BAD_CHANNEL)
        try:
            since = parse_since(request.query_param("since"))
            timeout = parse_timeout(request.query_param("timeout"), limits)
        except PollParameterError as exc:
            return _bad_request(str(exc))
        try:
            await backend.prepare(channel, since)
        except HubUnavailableError as exc:
            return _unavailable(exc)
        return longpoll_response(await long_poll(request, core, channel, since, timeout))

    return app
