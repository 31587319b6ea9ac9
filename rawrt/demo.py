"""The demo server: a fixed endpoint contract that learners, benchmarks and conformance runs point at.

=============================  ========================================================================
``GET /``                      a page (the chat room, once the transports are in)
``GET /hello``                 200 ``text/plain`` ``Hello, world!``
``POST /echo``                 200, the request body echoed verbatim
``ANY /inspect``               200 JSON: how rawrt parsed the request (method, target, version, headers and
                               trailers in received order and case, the body in base64)
=============================  ========================================================================

``docs/demo.md`` lists the whole contract. Everything here is served from the installed package.
"""

from __future__ import annotations

import base64
from importlib import resources

from .app import App, Request, Response
from .limits import MiB

__all__ = ["create_app"]

#: /echo and /inspect accept larger bodies than the server default, so learners can try big uploads.
DEMO_MAX_BODY = 16 * MiB


def _page() -> str:
    return resources.files("rawrt").joinpath("static/index.html").read_text("utf-8")


def create_app() -> App:
    """Build the demo :class:`App`."""
    app = App()
    page = _page()

    @app.get("/")
    async def index(request: Request) -> Response:
        return Response.html(page)

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

    return app
