"""A clock over Server-Sent Events: one ``EventStream`` per client, ticking every second.

Run it, then watch the stream with curl or the bundled client::

    python examples/sse_clock.py                 # serves http://127.0.0.1:8000/clock
    curl -N http://127.0.0.1:8000/clock
    python examples/sse_clock.py --client        # rawrt.sse.connect, reconnecting by itself

Each tick carries ``id: <seconds since the epoch>``, so a client that reconnects sends it back as
``Last-Event-ID`` and the server says how many ticks it missed. The stream completes after ``--timeout``
seconds (the client then reconnects, as a browser would, after the ``retry`` time the server sent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from rawrt.app import App, Request, StreamingResponse
from rawrt.errors import ConnectionClosed
from rawrt.server import serve
from rawrt.sse import EventStream, connect, resume_id


def create_app(timeout: float) -> App:
    app = App()

    @app.get("/clock")
    async def clock(request: Request) -> StreamingResponse:
        # retry: the browser's reconnection time after the stream ends (WHATWG §9.2.6), here 1 s.
        stream = EventStream(request, timeout=timeout, retry=1000)
        last = resume_id(request)

        async def tick() -> None:
            try:
                if last is not None and last.isdigit():
                    missed = max(0, int(time.time()) - int(last) - 1)
                    await stream.send(f"welcome back: you missed {missed} tick(s)", event="resumed")
                while True:
                    now = int(time.time())
                    await stream.send(time.strftime("%H:%M:%S", time.localtime(now)), id=str(now))
                    await asyncio.sleep(1 - time.time() % 1)  # on the second
            except ConnectionClosed:
                pass  # the client left, or the timeout completed the stream

        task = asyncio.get_running_loop().create_task(tick())
        stream.on_close(task.cancel)  # stop producing the moment the stream ends, however it ends
        return stream.response()

    return app


async def watch(url: str) -> None:
    async with connect(url, reconnection_time=1.0) as source:
        async for message in source:
            print(f"[{message.type}] id={message.last_event_id} {message.data}")


def main() -> None:
    parser = argparse.ArgumentParser(description="A Server-Sent Events clock.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a stream completes")
    parser.add_argument("--client", action="store_true", help="watch the clock instead of serving it")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.client:
            asyncio.run(watch(f"http://127.0.0.1:{args.port}/clock"))
        else:
            print(f"serving http://127.0.0.1:{args.port}/clock")
            asyncio.run(serve(create_app(args.timeout), "127.0.0.1", args.port))


if __name__ == "__main__":
    main()
