"""The lab's wire tap: the bytes of the connections a lab page opened, annotated, kept for that page alone.

Mechanism
---------
* A lab page picks a random id and opens its wire stream first: ``/lab/wire?lab=ID`` (a WebSocket, or
  Server-Sent Events for ``curl``). That registers the page (:meth:`Lab.open`); at most
  ``Limits.lab_max_pages`` at once.
* Each lane then tags its requests with the same ``?lab=ID``. The demo sets :attr:`rawrt.app.App.tap` to
  :meth:`Lab.tapper`, which the server calls with each request and its head's exact bytes: a request for a
  lane path (``/poll``, ``/longpoll``, ``/events``, ``/ws/chat``, ``/publish``) of a registered page gets an
  :class:`ExchangeTap`; anything else gets ``None`` and is not tapped. The tap sees what the server writes
  for that exchange and, after a ``101``, the WebSocket's bytes both ways (docs/demo.md).
* Each tap feeds its exchange's bytes to an :class:`~rawrt.lab.annotate.Annotator` and appends the records,
  as JSON, to its page's ring buffer (:class:`Page`): bounded by ``lab_max_entries`` and ``lab_max_bytes``,
  the oldest dropped first (and counted, so the page knows). The wire stream takes them as they come.
* When the wire stream ends (the page closed or reloaded), the page is dropped at once: its buffer, and
  every tap still pointing at it stops recording. A page only ever sees records of requests that carried
  its own id: isolation is by id, and the ids are random (64 bits from the page's ``crypto``).

Cost: a server whose app sets no tap pays one ``None`` check per write and per request; the demo's untagged
requests pay a substring test of their target (docs/demo.md gives the benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from ..app import Request, StreamingResponse
from ..limits import DEFAULT_LIMITS, Limits
from ..sansio.ws.frames import CloseCode
from ..websocket import WebSocket
from .annotate import Annotator, Record

__all__ = ["Lab", "Page", "ExchangeTap", "LANES", "LAB_ID_RE"]

error_log = logging.getLogger("rawrt.error")

#: The paths a lab page's lanes use, and the lane each one is shown in.
LANES = {
    "/poll": "poll",
    "/longpoll": "longpoll",
    "/events": "sse",
    "/ws/chat": "ws",
    "/publish": "publish",
    # The SSE drop-and-resume experiment's stream: its reconnect's Last-Event-ID shows in the SSE lane.
    "/lab/experiments/sse-resume": "sse",
}
#: What a lab page id may be: long enough to be unguessable, safe in a URL and a log line.
LAB_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
#: Seconds without a record before an idle wire stream gets a heartbeat (proxies close silent streams).
HEARTBEAT = 15.0


class LaneStats:
    """What one lane of a page cost on the wire, counted by the tap (exact: heads and framing included)."""

    __slots__ = ("requests", "bytes_in", "bytes_out", "conns")

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        #: The client ports of this lane's connections that are open and last carried one of its requests.
        self.conns: set[int] = set()

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "in": self.bytes_in,
            "out": self.bytes_out,
            "open": len(self.conns),
        }


class Page:
    """One lab page: its lanes' counters and the ring buffer of records its wire stream has not taken."""

    def __init__(self, page_id: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.id = page_id
        self.limits = limits
        self.entries: deque[str] = deque()
        #: UTF-8 bytes of the JSON in :attr:`entries`.
        self.bytes = 0
        #: Records dropped since the stream last took some (the buffer was full).
        self.dropped = 0
        self.seq = 0
        self.lanes: dict[str, LaneStats] = {}
        self.closed = False
        self.changed = asyncio.Event()

    def lane(self, name: str) -> LaneStats:
        stats = self.lanes.get(name)
        if stats is None:
            stats = self.lanes[name] = LaneStats()
        return stats

    def add(self, lane: str, conn: int, record: Record) -> None:
        """Append one record, then drop the oldest until the buffer is within its bounds."""
        if self.closed:
            return
        self.seq += 1
        value = {
            "seq": self.seq,
            "t": round(time.time() * 1000, 1),  # the server's wall clock, ms (the page shows it as is)
            "lane": lane,
            "conn": conn,
            **record.as_dict(),
            "stats": self.lane(lane).as_dict(),
        }
        entry = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        self.entries.append(entry)
        self.bytes += len(entry.encode("utf-8"))
        limits = self.limits
        while self.entries and (
            len(self.entries) > limits.lab_max_entries or self.bytes > limits.lab_max_bytes
        ):
            self.bytes -= len(self.entries.popleft().encode("utf-8"))
            self.dropped += 1
        self.changed.set()

    def take(self) -> tuple[list[str], int]:
        """Everything buffered (oldest first) and how many records were dropped before it; empties both."""
        entries, dropped = list(self.entries), self.dropped
        self.entries.clear()
        self.bytes = self.dropped = 0
        self.changed.clear()
        return entries, dropped

    def close(self) -> None:
        """The page went: free the buffer; its taps record nothing more."""
        self.closed = True
        self.entries.clear()
        self.bytes = 0
        self.lanes.clear()
        self.changed.set()


class ExchangeTap:
    """The :class:`rawrt.app.Tap` of one exchange of a lab page's lane (and of the WebSocket it becomes)."""

    __slots__ = ("page", "lane", "conn", "stats", "annotator")

    def __init__(self, page: Page, lane: str, conn: int, head: bytes) -> None:
        self.page = page
        self.lane = lane
        self.conn = conn
        self.stats = stats = page.lane(lane)
        self.annotator = Annotator()
        stats.requests += 1
        stats.bytes_in += len(head)
        stats.conns.add(conn)
        self._record(self.annotator.request, head)

    def received(self, data: bytes) -> None:
        if not self.page.closed:
            self.stats.bytes_in += len(data)
            self._record(self.annotator.received, data)

    def sent(self, data: bytes) -> None:
        if not self.page.closed:
            self.stats.bytes_out += len(data)
            self._record(self.annotator.sent, data)

    def done(self, closed: bool) -> None:
        self.stats.conns.discard(self.conn)
        if closed and not self.page.closed:
            self.page.add(self.lane, self.conn, Record("in", "closed", "connection closed", 0, ()))

    def _record(self, annotate: Callable[[bytes], list[Record]], data: bytes) -> None:
        try:
            records = annotate(data)
        except Exception:  # a bug in the annotator must not break the connection it watches
            error_log.exception("lab annotator failed on %r", data[:64])
            return
        for record in records:
            self.page.add(self.lane, self.conn, record)


class Lab:
    """The lab pages of one demo app and their taps (see the module docstring)."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.pages: dict[str, Page] = {}

    # ------------------------------------------------------------------------------------ the tap hook

    def tapper(self, request: Request, head: bytes) -> ExchangeTap | None:
        """:attr:`rawrt.app.App.tap`: a tap for a lane request of a registered page, else ``None``."""
        if "lab=" not in request.target:
            return None  # the untagged request's whole cost: one substring test
        page = self.pages.get(request.query_param("lab") or "")
        lane = LANES.get(request.path)
        if page is None or lane is None:
            return None
        return ExchangeTap(page, lane, request.client[1] if request.client else 0, head)

    # ------------------------------------------------------------------------------------ pages

    def open(self, page_id: str) -> Page | None:
        """Register a page (replacing one with the same id), or ``None`` when ``lab_max_pages`` are open."""
        old = self.pages.pop(page_id, None)
        if old is not None:
            old.close()
        if len(self.pages) >= self.limits.lab_max_pages:
            return None
        page = self.pages[page_id] = Page(page_id, self.limits)
        return page

    def close(self, page: Page) -> None:
        """Drop a page (its wire stream ended)."""
        if self.pages.get(page.id) is page:
            del self.pages[page.id]
        page.close()

    # ------------------------------------------------------------------------------------ wire streams

    @staticmethod
    def hello(page: Page) -> str:
        """The wire stream's first message."""
        limits = page.limits
        return json.dumps(
            {
                "type": "hello",
                "lab": page.id,
                "max_entries": limits.lab_max_entries,
                "max_bytes": limits.lab_max_bytes,
            }
        )

    @staticmethod
    def batch(entries: list[str], dropped: int) -> str:
        """One wire stream message: records (already JSON), and how many were dropped before them."""
        return f'{{"type":"records","dropped":{dropped},"records":[{",".join(entries)}]}}'

    async def serve_websocket(self, ws: WebSocket) -> None:
        """``/lab/wire`` over WebSocket: the page's records as they come, one JSON message per batch."""
        assert ws.request is not None
        page = self.open(ws.request.query_param("lab") or "")
        if page is None:
            await ws.close(CloseCode.TRY_AGAIN_LATER, "too many lab pages open: try again later")
            return
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            await ws.send(self.hello(page))
            while not page.closed:
                entries, dropped = page.take()
                if entries or dropped:
                    await ws.send(self.batch(entries, dropped))
                    continue
                waiter = asyncio.ensure_future(page.changed.wait())
                try:
                    await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if closed.done():
                    return
        finally:
            closed.cancel()
            self.close(page)

    def serve_events(self, request: Request) -> StreamingResponse | None:
        """``GET /lab/wire`` as Server-Sent Events (``curl``-able), or ``None`` when the lab is full."""
        page = self.open(request.query_param("lab") or "")
        if page is None:
            return None

        async def stream() -> AsyncIterator[str]:
            yield f"event: hello\ndata: {self.hello(page)}\n\n"
            while not page.closed:
                entries, dropped = page.take()
                if entries or dropped:
                    yield f"data: {self.batch(entries, dropped)}\n\n"
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(page.changed.wait(), HEARTBEAT)
                    continue
                yield ": heartbeat\n\n"

        return StreamingResponse(
            stream(),
            content_type="text/event-stream; charset=utf-8",
            headers=[("cache-control", "no-cache"), ("x-accel-buffering", "no")],
            on_close=lambda: self.close(page),
        )
