"""Streaming uploads: read a request body piece by piece, with a per-route size limit.

Run it from the repository root::

    python -m rawrt serve examples.upload:app --port 8000

and upload something::

    curl --data-binary @some-file http://127.0.0.1:8000/upload
    curl -H 'Transfer-Encoding: chunked' --data-binary @some-file http://127.0.0.1:8000/upload

The answer is JSON: ``{"size": <bytes>, "sha256": "<hex>", "chunks": <pieces received>}``.

What it shows:

* ``request.stream()`` yields the body as it arrives (dechunked); nothing forces it into memory.
* ``max_body_size=`` raises this route's limit above the server default (1 MiB): a declared
  Content-Length over 64 MiB gets 413 before any of the body is read, and a chunked body that grows past it
  gets 413 the moment it does.
* A client that sends ``Expect: 100-continue`` (curl does for big bodies) gets ``100 Continue`` only when
  the handler starts reading, so ``/reject`` answers 403 without the client ever sending its body.
"""

from __future__ import annotations

import hashlib

from rawrt import App, Request, Response
from rawrt.limits import MiB

app = App()


@app.post("/upload", max_body_size=64 * MiB)
async def upload(request: Request) -> Response:
    """Hash the body while it streams in."""
    digest = hashlib.sha256()
    size = chunks = 0
    async for piece in request.stream():
        digest.update(piece)
        size += len(piece)
        chunks += 1
    return Response.json({"size": size, "sha256": digest.hexdigest(), "chunks": chunks})


@app.post("/reject")
async def reject(request: Request) -> Response:
    """Refuse without reading: the body is never asked for (and, with 100-continue, never sent)."""
    return Response.text("uploads are closed\n", 403)
