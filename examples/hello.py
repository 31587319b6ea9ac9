"""The smallest rawrt app: two routes, one with a path parameter.

Run it from the repository root::

    python -m rawrt serve examples.hello:app --port 8000

then ``curl http://127.0.0.1:8000/hello`` (``Hello, world!``) or ``curl http://127.0.0.1:8000/hello/Ada``
(``Hello, Ada!``). A POST to either gets 405 with ``Allow: GET, HEAD``; any other path gets 404.
"""

from __future__ import annotations

from rawrt import App, Request, Response

app = App()


@app.get("/hello")
async def hello(request: Request) -> Response:
    """A fixed text body: ``text/plain; charset=utf-8``, with Content-Length."""
    return Response.text("Hello, world!")


@app.get("/hello/{name}")
async def hello_name(request: Request) -> Response:
    """``{name}`` matches one path segment, percent-decoded (``/hello/J%C3%BCrgen`` greets Jürgen)."""
    return Response.text(f"Hello, {request.path_params['name']}!")
