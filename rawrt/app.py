"""The application API: routes, requests and responses.

An :class:`App` maps (method, path) to async handlers::

    app = App()

    @app.get("/hello")
    async def hello(request: Request) -> Response:
        return Response.text("Hello, world!")

    @app.post("/items/{item_id}", max_body_size=10 * MiB)
    async def upload(request: Request) -> Response:
        size = 0
        async for chunk in request.stream():   # the body streams; nothing forces it into memory
            size += len(chunk)
        return Response.json({"id": request.path_params["item_id"], "size": size})

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

Routing answers 404 for an unknown path and 405 with ``Allow`` for a known path and another method (RFC 9110
§15.5.6). This module does no I/O itself: :mod:`rawrt.server` drives it.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import LocalProtocolError
from .sansio.abnf import FIELD_VALUE_RE, TOKEN_RE
from .sansio.headers import HeaderList, Headers

__all__ = [
    "App",
    "Request",
    "Response",
    "StreamingResponse",
    "Handler",
    "WebSocketHandler",
    "Route",
    "Resolution",
    "HeadersLike",
    "Push",
    "Tap",
    "Tapper",
]

HeadersLike = Iterable[tuple[str | bytes, str | bytes]]


class Push(Protocol):
    """The synchronous writer a :class:`StreamingResponse`'s ``on_push`` callback receives (see there)."""

    def __call__(self, piece: bytes, /) -> bool: ...


class Tap(Protocol):
    """A copy of one exchange's bytes, as the server read and wrote them (the demo's wire view, rawrt.lab).

    :attr:`App.tap` hands one out per request it wants to see. The server then calls it with every byte it
    writes for that exchange and, after a ``101``, with every byte of the WebSocket that follows, both ways.
    It must not raise and must not keep the server waiting: it runs inline, in the write path.
    """

    def received(self, data: bytes, /) -> None: ...  # bytes read from the client (a WebSocket's frames)

    def sent(self, data: bytes, /) -> None: ...  # bytes written to the client, exactly as written

    def done(self, closed: bool, /) -> None: ...  # the exchange is over: the connection closed (True) or

    # carries another request now (False)


#: :attr:`App.tap`: called with each request and its head's exact bytes; returns the :class:`Tap` for that
#: exchange, or ``None`` to leave it untapped.
Tapper = Callable[["Request", bytes], "Tap | None"]


class BodySource(Protocol):
    """What a :class:`Request` pulls its body from (the server's connection)."""

    trailers: HeaderList  # the trailer fields, once the body has been read to its end

    async def read_body_chunk(self) -> bytes | None: ...  # None at the end of the body

    async def wait_disconnected(self) -> None: ...

    def is_disconnected(self) -> bool: ...


def _to_bytes(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


def encode_headers(headers: HeadersLike | None) -> HeaderList:
    """Validate app-supplied headers and turn them into wire bytes.

    Raises:
        LocalProtocolError: a name that is not a token, or a value with CR, LF, NUL or another control
            character (RFC 9110 §5.5): header injection is a bug in the app, never sent.
    """
    out: HeaderList = []
    for name, value in headers or ():
        bname, bvalue = _to_bytes(name), _to_bytes(value)
        if TOKEN_RE.fullmatch(bname) is None:
            raise LocalProtocolError(f"invalid header name {bname!r}")
        if FIELD_VALUE_RE.fullmatch(bvalue) is None:
            raise LocalProtocolError(f"invalid value for header {bname!r}: {bvalue!r}")
        out.append((bname, bvalue))
    return out


class Request:
    """An HTTP request as the handler sees it.

    Attributes:
        method: the method token (``"GET"``), case preserved.
        target: the request-target exactly as received (``"/search?q=a%20b"``).
        path: the target's path, percent-decoded (``"/search"``).
        query_string: the raw query, without ``?``.
        http_version: ``"1.1"`` or ``"1.0"``.
        headers: the header fields in received order; case-insensitive lookups (:class:`Headers`).
        server: the ``(host, port)`` this connection was accepted on (the server's own socket address, ASGI's
            ``scope["server"]``), or ``None`` (a Unix domain socket, or unknown); never taken from headers.
        client: the peer's ``(host, port)``, or ``None``; behind a trusted proxy
            (``Server(proxy_headers=True)``) the address the proxy reports (``X-Forwarded-For`` /
            ``Forwarded``), with port 0 when unknown.
        scheme: ``"http"`` or ``"https"`` (behind a trusted proxy, what it reports).
        root_path: the prefix the app is mounted under (``Server(root_path=...)``, ASGI's ``root_path``),
            stripped from :attr:`path` when the target starts with it; ``""`` for none.
        path_params: values captured by ``{name}`` segments of the route.
        trailers: a chunked body's trailer fields, once the body has been read to the end.
    """

    __slots__ = (
        "method",
        "target",
        "path",
        "query_string",
        "http_version",
        "headers",
        "client",
        "server",
        "scheme",
        "root_path",
        "path_params",
        "trailers",
        "_source",
        "_query",
        "_body",
        "_consumed",
    )

    def __init__(
        self,
        method: str,
        target: str,
        http_version: str,
        headers: Headers,
        *,
        client: tuple[str, int] | None = None,
        server: tuple[str, int] | None = None,
        source: BodySource | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.client = client
        self.server = server
        self.scheme = "http"
        self.root_path = ""
        self.path_params: dict[str, str] = {}
        self.trailers = Headers()
        self._source = source
        self._query: dict[str, list[str]] | None = None
        self._body: bytes | None = None
        self._consumed = False
        if target.startswith("/"):
            raw_path, _, self.query_string = target.partition("?")
        elif target == "*":
            raw_path, self.query_string = "*", ""
        else:  # absolute-form (RFC 9112 §3.2.2) or authority-form (CONNECT)
            parts = urlsplit(target)
            raw_path, self.query_string = parts.path or "/", parts.query
        self.path = unquote(raw_path) if "%" in raw_path else raw_path

    def mount(self, root_path: str) -> None:
        """Set :attr:`root_path` (ASGI's): the app routes the path below its mount point, so a path under
        the prefix loses it; a path outside it (a proxy that strips the prefix already) stays as it is.
        Called by the server before routing, when it has a ``root_path``."""
        self.root_path = root_path
        path = self.path
        if path.startswith(root_path) and (len(path) == len(root_path) or path[len(root_path)] == "/"):
            self.path = path[len(root_path) :] or "/"

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters: every value of each name, in order (``?a=1&a=2`` gives ``{"a": ["1", "2"]}``)."""
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True)
        return self._query

    def query_param(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``, or ``default``."""
        values = self.query.get(name)
        return values[0] if values else default

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as it arrives (dechunked).

        The first read sends ``100 Continue`` when the client asked for it (RFC 9110 §10.1.1): a client that
        waits is only told to send once the handler wants the body.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._consumed:
            raise RuntimeError("the request body has already been read")
        self._consumed = True
        if self._source is None:
            return
        while True:
            chunk = await self._source.read_body_chunk()
            if chunk is None:
                if self._source.trailers:
                    self.trailers = Headers(self._source.trailers)
                return
            yield chunk

    async def body(self) -> bytes:
        """The whole body (bounded by the route's ``max_body_size``, 413 past it)."""
        if self._body is None:
            # What stream() does, without its async generator: most bodies are small, and the generator
            # would cost more than reading one (docs/topics/performance.md).
            if self._consumed:
                raise RuntimeError("the request body has already been read")
            self._consumed = True
            pieces: list[bytes] = []
            source = self._source
            if source is not None:
                while (chunk := await source.read_body_chunk()) is not None:
                    pieces.append(chunk)
                if source.trailers:
                    self.trailers = Headers(source.trailers)
            self._body = b"".join(pieces)
        return self._body

    async def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text (strict: invalid bytes raise ``UnicodeDecodeError``)."""
        return (await self.body()).decode(encoding)

    async def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(await self.body())

    async def wait_disconnected(self) -> None:
        """Return once the client has gone away (EOF or reset).

        Meant for handlers that hold a request open (long polling): race it against the wait. Only valid once
        the body has been read.
        """
        if self._source is not None:
            await self._source.wait_disconnected()

    def is_disconnected(self) -> bool:
        """Whether the client is known to have gone away."""
        return self._source is not None and self._source.is_disconnected()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"


_CONTENT_TYPES: dict[str, tuple[bytes, bytes]] = {}


def _content_type(value: str) -> tuple[bytes, bytes]:
    """The validated ``content-type`` field for ``value``, memoised: apps use a handful of types."""
    field = _CONTENT_TYPES.get(value)
    if field is None:
        field = encode_headers([("content-type", value)])[0]
        if len(_CONTENT_TYPES) < 64:
            _CONTENT_TYPES[value] = field
    return field


class Response:
    """A complete response with a body of known length.

    Args:
        body: bytes, or text encoded as UTF-8.
        status: the status code.
        headers: extra header fields (validated: no CR/LF injection).
        content_type: the ``Content-Type``; ``None`` sends none.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: HeadersLike | None = None,
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        fields = encode_headers(headers) if headers else []
        if content_type is not None:
            fields.insert(0, _content_type(content_type))
        #: Validated here, once; a tuple, so it stays valid (the writer trusts it).
        self.headers: tuple[tuple[bytes, bytes], ...] = tuple(fields)

    @classmethod
    def text(cls, text: str, status: int = 200, headers: HeadersLike | None = None) -> Response:
        """A ``text/plain; charset=utf-8`` response."""
        return cls(text, status, headers, "text/plain; charset=utf-8")

    @classmethod
    def html(cls, html: str, status: int = 200, headers: HeadersLike | None = None) -> Response:
        """A ``text/html; charset=utf-8`` response."""
        return cls(html, status, headers, "text/html; charset=utf-8")

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: HeadersLike | None = None) -> Response:
        """A JSON response (compact, UTF-8, ``application/json``)."""
        body = _json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return cls(body, status, headers, "application/json")

    @classmethod
    def redirect(cls, location: str, status: int = 307, headers: HeadersLike | None = None) -> Response:
        """A redirect (307 keeps the method and body, RFC 9110 §15.4.8; pass 301/302/303/308 as needed)."""
        return cls(b"", status, [("location", location), *(headers or ())])

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"


class StreamingResponse:
    """A response whose body is produced while it is sent: chunked on HTTP/1.1, close-delimited on 1.0.

    Each item of ``body`` is written and flushed as soon as it is produced (Server-Sent Events rely on it).
    The server stops iterating (and calls ``aclose()`` on an async generator) when the client goes away.

    Args:
        body: the pieces of the body, bytes or text (UTF-8).
        status: the status code.
        headers: extra header fields.
        content_type: the ``Content-Type``.
        send_timeout: longest wait for the client to take one piece (a reader that stopped reading is cut
            off); ``None`` waits forever.
        on_close: called once when the response ends, however it ends (finished, client gone, error).
        on_push: called with a *push* function once the head is sent, and with ``None`` when the response
            ends. ``push(piece)`` writes a piece at once, synchronously, in order with the iterated ones,
            and returns whether the transport has room for more; after ``False`` the producer should go back
            to yielding (the server then waits for the client, bounded by ``send_timeout``). A push after
            the body ended, or on a closed connection, writes nothing and returns ``False``. The server
            frames the piece as the response requires: a chunk on HTTP/1.1 (RFC 9112 §7.1), as is on a
            close-delimited HTTP/1.0 body. A fan-out that pushes the *same* bytes object to many clients
            gets it framed once for all of them (the server remembers the last piece it framed), so it
            should build one bytes object per event, not one per client. It lets a fan-out write from a
            publish callback without waking a task per client (rawrt.sse uses it).
    """

    __slots__ = ("status", "headers", "body", "send_timeout", "on_close", "on_push")

    def __init__(
        self,
        body: AsyncIterable[bytes | str],
        status: int = 200,
        headers: HeadersLike | None = None,
        content_type: str | None = None,
        *,
        send_timeout: float | None = None,
        on_close: Callable[[], None] | None = None,
        on_push: Callable[[Push | None], None] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.on_push = on_push
        self.headers = encode_headers(headers)
        if content_type is not None:
            self.headers.insert(0, _content_type(content_type))
        self.send_timeout = send_timeout
        self.on_close = on_close


Handler = Callable[[Request], Awaitable["Response | StreamingResponse"]]


class WebSocketHandler(Protocol):
    """An ``@app.websocket`` handler: an async function of the accepted WebSocket.

    The server passes a :class:`rawrt.websocket.WebSocket`, which this module (below the adapters) cannot
    name: typed ``Any``, a handler annotated ``ws: WebSocket`` fits, keeping its type (:meth:`App.websocket`).
    """

    def __call__(self, ws: Any, /) -> Awaitable[None]: ...


_WebSocketHandlerT = TypeVar("_WebSocketHandlerT", bound=WebSocketHandler)

_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


class Route:
    """One path with its handlers by method (and maybe a WebSocket handler).

    Built by :class:`App`'s decorators. :meth:`App.resolve` remembers its decisions for the route in
    :attr:`resolved`, which the decorators empty when they change the route; code that changes a route's
    fields by hand after requests were served must empty it too.
    """

    __slots__ = (
        "path",
        "pattern",
        "handlers",
        "any_method",
        "websocket",
        "max_body_size",
        "ws_options",
        "resolved",
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self.pattern: re.Pattern[str] | None = None
        if "{" in path:
            regex = ""
            pos = 0
            for m in _PARAM_RE.finditer(path):
                regex += re.escape(path[pos : m.start()])
                regex += f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)"
                pos = m.end()
            self.pattern = re.compile(regex + re.escape(path[pos:]))
        self.handlers: dict[str, Handler] = {}
        self.any_method: Handler | None = None
        self.websocket: WebSocketHandler | None = None
        self.max_body_size: dict[str, int] = {}
        self.ws_options: dict[str, Any] = {}
        #: :meth:`App.resolve`'s decisions by method, at most :data:`_MAX_RESOLVED` of them.
        self.resolved: dict[str, Resolution] = {}

    def allowed(self) -> list[str]:
        """The methods this path answers, for ``Allow`` (RFC 9110 §10.2.1)."""
        methods = set(self.handlers)
        if "GET" in methods:
            methods.add("HEAD")
        if self.websocket is not None:
            methods.add("GET")
        return sorted(methods)

    def decide(self, method: str) -> Resolution:
        """The decision for ``method`` on this route, short of a WebSocket upgrade (:meth:`App.resolve`)."""
        handler = self.handlers.get(method)
        if handler is None and method == "HEAD":
            handler = self.handlers.get("GET")  # RFC 9110 §9.3.2: HEAD is GET without the body
        if handler is None:
            handler = self.any_method
        if handler is not None:
            limits = self.max_body_size
            return Resolution(200, self, handler=handler, max_body_size=limits.get(method, limits.get("*")))
        if self.websocket is not None and method == "GET":
            # RFC 6455 §4.2.2 / RFC 9110 §15.5.22: this resource speaks WebSocket only.
            response = Response.text(
                "Upgrade Required: this endpoint speaks WebSocket\n",
                426,
                [("upgrade", "websocket"), ("connection", "upgrade")],
            )
            return Resolution(426, self, response=response)
        allow = ", ".join(self.allowed())
        return Resolution(405, self, response=Response.text("Method Not Allowed\n", 405, [("allow", allow)]))


class Resolution:
    """What :meth:`App.resolve` decided for a request. Shared between requests: read it, never change it.

    Exactly one of three outcomes:

    * ``handler`` is set (``status`` 200): run it; the request body may be at most ``max_body_size`` bytes
      (``None``: the server's ``Limits.max_body_size``).
    * ``websocket`` is set (``status`` 101): a WebSocket opening handshake for ``route`` (its options are
      ``route.ws_options``).
    * ``response`` is set: the answer itself, 404 (no route for the path), 405 with ``Allow`` (RFC 9110
      §15.5.6) or 426 (a WebSocket-only resource asked without an upgrade, RFC 6455 §4.2.2).

    ``params`` holds the values a ``{name}`` route captured (``None`` for a literal path).
    """

    __slots__ = ("status", "route", "handler", "max_body_size", "websocket", "response", "params")

    def __init__(
        self,
        status: int,
        route: Route | None,
        handler: Handler | None = None,
        max_body_size: int | None = None,
        websocket: WebSocketHandler | None = None,
        response: Response | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.route = route
        self.handler = handler
        self.max_body_size = max_body_size
        self.websocket = websocket
        self.response = response
        self.params = params

    def with_params(self, params: dict[str, str]) -> Resolution:
        """This decision for one request to a ``{name}`` route, with what the path captured."""
        r = self
        return Resolution(r.status, r.route, r.handler, r.max_body_size, r.websocket, r.response, params)


#: How many methods' decisions a route remembers: method tokens come from the client, and a client
#: that sends a thousand different ones must not grow the memo (past the cap, decisions are recomputed).
_MAX_RESOLVED = 16

_NOT_FOUND = Resolution(404, None, response=Response.text("Not Found\n", 404))


class App:
    """Routes requests to handlers. Routes without their own ``max_body_size`` use the server's
    ``Limits.max_body_size``."""

    def __init__(self) -> None:
        self._exact: dict[str, Route] = {}
        self._patterns: list[Route] = []
        #: Coroutine functions (no arguments) awaited once the server listens, and after it shut down.
        self.on_startup: list[Callable[[], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        #: The wire tap (:data:`Tapper`), off (``None``) unless set, as the demo sets it for its lab page.
        #: Read when a connection opens: a server whose app has none pays one ``None`` check per connection
        #: and per write, nothing else (docs/topics/performance.md).
        self.tap: Tapper | None = None

    def _route(self, path: str) -> Route:
        if not path.startswith("/"):
            raise ValueError(f"route paths start with '/': {path!r}")
        route = self._exact.get(path)
        if route is None:
            for candidate in self._patterns:
                if candidate.path == path:
                    return candidate
            route = Route(path)
            if route.pattern is None:
                self._exact[path] = route
            else:
                self._patterns.append(route)
        return route

    def route(
        self,
        path: str,
        methods: Iterable[str] | None = ("GET",),
        *,
        max_body_size: int | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler for ``path`` and ``methods`` (``None``: any method token).

        Args:
            path: ``/literal`` or with ``{name}`` segments (``{name:path}`` matches across slashes).
            methods: method tokens, case-sensitive (RFC 9110 §9.1).
            max_body_size: this route's body limit (413 past it).
        """

        def register(handler: Handler) -> Handler:
            route = self._route(path)
            route.resolved.clear()
            if methods is None:
                route.any_method = handler
                if max_body_size is not None:
                    route.max_body_size["*"] = max_body_size
            else:
                for method in methods:
                    route.handlers[method] = handler
                    if max_body_size is not None:
                        route.max_body_size[method] = max_body_size
            return handler

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        """Shorthand for ``route(path, ["GET"])`` (HEAD is answered by the GET handler, body omitted)."""
        return self.route(path, ("GET",), **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Handler], Handler]:
        """Shorthand for ``route(path, ["POST"])``."""
        return self.route(path, ("POST",), **kwargs)

    def websocket(self, path: str, **options: Any) -> Callable[[_WebSocketHandlerT], _WebSocketHandlerT]:
        """Register a WebSocket handler for ``path``.

        Options (all optional): ``subprotocols`` (list, in order of preference), ``origins`` (allowlist;
        403 otherwise), ``compression`` (``"permessage-deflate"``, a ``DeflateOptions``, or ``None``),
        ``limits`` (a :class:`rawrt.limits.Limits` for this endpoint: message size, ping interval, ...),
        ``check`` (called with the :class:`Request` before the handshake; a :class:`Response` it returns
        is sent instead of the 101, e.g. a 400 for a bad query parameter).
        """

        def register(handler: _WebSocketHandlerT) -> _WebSocketHandlerT:
            route = self._route(path)
            route.resolved.clear()
            route.websocket = handler
            route.ws_options = options
            return handler

        return register

    def resolve(self, method: str, path: str, upgrade: bool) -> Resolution:
        """Route a request: what to run, or how to answer (see :class:`Resolution`).

        Args:
            method: the request's method token (case-sensitive, RFC 9110 §9.1).
            path: the target's path, percent-decoded (:attr:`Request.path`).
            upgrade: whether the request asks to switch protocols (it has an ``Upgrade`` field). A ``GET``
                with one on a WebSocket route is a handshake; elsewhere the field is ignored.
        """
        route = self._exact.get(path)
        params = None
        if route is None:
            for candidate in self._patterns:
                assert candidate.pattern is not None
                m = candidate.pattern.fullmatch(path)
                if m is not None:
                    route, params = candidate, m.groupdict()
                    break
            else:
                return _NOT_FOUND
        if upgrade and route.websocket is not None and method == "GET":
            # Once per WebSocket connection: not worth remembering.
            return Resolution(101, route, websocket=route.websocket, params=params)
        resolved = route.resolved.get(method)
        if resolved is None:
            resolved = route.decide(method)
            if len(route.resolved) < _MAX_RESOLVED:
                route.resolved[method] = resolved
        return resolved if params is None else resolved.with_params(params)

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """Find the route for ``path`` and its captured parameters."""
        route = self._exact.get(path)
        if route is not None:
            return route, {}
        for route in self._patterns:
            assert route.pattern is not None
            m = route.pattern.fullmatch(path)
            if m is not None:
                return route, m.groupdict()
        return None
