"""Server-Sent Events over asyncio, the server's side: :class:`EventStream`, and the hub's events on it.

Spec: WHATWG HTML Living Standard §9.2 "Server-sent events" (section numbers below refer to it); the wire
format itself lives in :mod:`rawrt.sansio.sse`.

Contract
--------
A handler builds an :class:`EventStream` (in the spirit of Spring's ``SseEmitter``) and returns
``stream.response()``, a :class:`~rawrt.app.StreamingResponse` with ``Content-Type: text/event-stream;
charset=utf-8``, ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (nginx would otherwise buffer
the stream). The server frames it chunked on HTTP/1.1 and close-delimited on HTTP/1.0 (RFC 9112 §6.3), and
flushes each piece as soon as it is produced. The app then calls :meth:`EventStream.send` from anywhere
(another task, a hub callback) and :meth:`EventStream.complete` to end the stream; sending is refused with
:class:`~rawrt.errors.ConnectionClosed` once the stream is over.

* Heartbeat: after ``heartbeat`` seconds (``Limits.sse_heartbeat``, 15 s) without a write, a comment
  ``: heartbeat`` goes out (§9.2.7 suggests one "every 15 seconds or so"): proxies see traffic and keep the
  stream open, and a client that vanished without a FIN is found when the write fails.
* A client that disconnects is noticed at once by the server's disconnect watcher, which cancels the stream;
  the stream's ``finally`` then frees its hub subscription and runs the ``on_close`` callbacks.
* ``send_timeout`` (``Limits.sse_send_timeout``) bounds how long one write may wait for a client that stopped
  reading (the server's write is bounded by it; the stream then ends), so a stalled reader costs at most one
  write buffer, never an unbounded queue. :meth:`EventStream.send` itself waits while ``max_queue`` pieces
  are pending: backpressure reaches the producer instead of memory.
* ``timeout``: the stream completes on its own after that many seconds (the browser then reconnects, with
  ``Last-Event-ID``): a bound on how long one request may live, e.g. to rebalance behind a load balancer.

:func:`hub_stream` streams a :class:`~rawrt.hub.Hub` channel (with :meth:`EventStream.subscribe`): the replay
after the client's resume id (``Last-Event-ID``, or ``?last_event_id=`` for clients that cannot set headers;
the header wins), then live events, each once and in order, as ``id: N`` plus its ``data:`` lines. Without a
resume id only live events are sent. Every hub stream begins with an ``id: <cursor>`` line and a blank line
(no data, so nothing is dispatched): the client learns its position at once, so even a live-only client that
drops before the first event resumes from where it joined. A resume id the hub cannot honour (older than the
history, ahead of the channel, or not a number) gets an ``event: reset`` event whose data (JSON) explains why
and whose ``id`` is the cursor the stream continues from: never a silent gap. A subscriber that falls behind
(overflow) has its stream ended; the browser reconnects with ``Last-Event-ID`` and gets the rest from the
history. Each event is encoded once for every stream (:func:`event_bytes`), and the server frames that one
bytes object once as an HTTP/1.1 chunk for every connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

from ..app import HeadersLike, Push, Request, StreamingResponse
from ..errors import ConnectionClosed
from ..hub import Event, EventMemo, Hub, Subscription
from ..limits import DEFAULT_LIMITS, Limits
from ..sansio.sse import CONTENT_TYPE, ServerSentEvent, encode_comment

__all__ = [
    "EventStream",
    "event_bytes",
    "resume_id",
    "SSE_HEADERS",
    "HEARTBEAT",
]

logger = logging.getLogger("rawrt.sse")

#: The fields every event stream response carries besides its Content-Type. ``no-cache``: an event stream
#: must not be served from a cache (§9.2.3 fetches with cache mode "no-store"). ``X-Accel-Buffering: no``
#: turns off nginx's response buffering for this response, which would otherwise hold events back.
SSE_HEADERS: list[tuple[str, str]] = [("cache-control", "no-cache"), ("x-accel-buffering", "no")]

#: The heartbeat: a comment line and the blank line that flushes it through event-buffering proxies.
HEARTBEAT = encode_comment("heartbeat")

# asyncio may run a timer up to its clock resolution early; this keeps that from re-arming it in a loop.
_TIMER_SLACK = 0.001

#: Pieces an EventStream holds for the writer before ``send()`` waits (backpressure on the producer).
DEFAULT_MAX_QUEUE = 64


def _encode_event(event: Event) -> bytes:
    # §9.2.6: the id field sets the client's last event ID (sent back as Last-Event-ID on reconnection);
    # with no event field the client dispatches it as a "message" event.
    return ServerSentEvent(data=event.data, id=str(event.id)).encode()


#: ``event_bytes(event) -> bytes``: a hub event as SSE wire bytes, ``id: <id>`` then its ``data:`` lines
#: and a blank line. Encoded once per event: every stream gets the same bytes object
#: (:class:`~rawrt.hub.EventMemo`), which the server's push in turn frames once as an HTTP/1.1 chunk.
event_bytes: Callable[[Event], bytes] = EventMemo(_encode_event).get


def resume_id(request: Request) -> str | None:
    """The client's resume id: the ``Last-Event-ID`` header, else the ``last_event_id`` query parameter.

    The header wins when both are present: it is what a browser's EventSource sends on reconnection
    (§9.2.3), while the query parameter is the fallback for the first connection of a client that cannot
    set headers (a browser's ``new EventSource(url)`` cannot), whose URL then stays the same on every
    reconnection. An empty value counts as absent (a browser never sends an empty ``Last-Event-ID``).
    """
    header = request.headers.get("last-event-id")
    if header:
        return header
    return request.query_param("last_event_id") or None


class EventStream:
    """An event stream response that the application feeds (cf. Spring's ``SseEmitter``).

    Args:
        request: the request being answered (its method and version decide nothing here; HEAD gets the
            head only).
        heartbeat: seconds of silence before a heartbeat comment; ``None``: ``limits.sse_heartbeat``.
        timeout: seconds after which the stream completes on its own; ``None``: never.
        send_timeout: how long one write may wait for the client; ``None``: ``limits.sse_send_timeout``.
        retry: if given, a ``retry`` field (milliseconds) is sent first: the client's reconnection time.
        limits: where the defaults come from.
        max_queue: pieces pending for the writer before :meth:`send` waits.
        headers: extra response header fields.
    """

    # Slots, the fields of the direct-delivery path first: _deliver reads or writes each of them once per
    # event per client (docs/topics/performance.md).
    __slots__ = (
        "_push",
        "_congested",
        "_pending",
        "_loop",
        "_last_write",
        "_ready",
        "_subscription",
        "_completed",
        "_closed",
        "request",
        "heartbeat",
        "timeout",
        "send_timeout",
        "_headers",
        "_max_queue",
        "_space",
        "_callbacks",
        "_response",
    )

    def __init__(
        self,
        request: Request,
        *,
        heartbeat: float | None = None,
        timeout: float | None = None,
        send_timeout: float | None = None,
        retry: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
        max_queue: int = DEFAULT_MAX_QUEUE,
        headers: HeadersLike | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, not {max_queue}")
        self.request = request
        self.heartbeat = limits.sse_heartbeat if heartbeat is None else heartbeat
        if self.heartbeat <= 0:
            raise ValueError(f"heartbeat must be > 0, not {self.heartbeat}")
        self.timeout = timeout
        self.send_timeout = limits.sse_send_timeout if send_timeout is None else send_timeout
        self._headers = [*SSE_HEADERS, *(headers or ())]
        self._max_queue = max_queue
        self._pending: list[bytes] = []
        if retry is not None:
            self._pending.append(ServerSentEvent(retry=retry).encode())
        # Set whenever there is something for the writer (a send, a hub wake, complete()); the body clears
        # it *before* taking, so a wake between the two is never lost (rawrt.hub's driving contract).
        self._ready = asyncio.Event()
        # The running loop, looked up once rather than on every write of the push path, which runs once per
        # event per client in a fan-out (docs/topics/performance.md).
        self._loop = asyncio.get_running_loop()
        self._space = asyncio.Event()  # set when the writer took the pending pieces, or the stream ended
        self._completed = False
        self._closed = False
        self._callbacks: list[Callable[[], object]] = []
        self._subscription: Subscription | None = None
        self._response: StreamingResponse | None = None
        # The server's synchronous writer while the stream is live (StreamingResponse.on_push), and whether
        # the last push found the transport full: then the body task takes over and waits for the client.
        self._push: Push | None = None
        self._congested = False
        self._last_write = 0.0

    @property
    def closed(self) -> bool:
        """The stream is over (completed and flushed, timed out, or the client went away)."""
        return self._closed

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once when the stream ends, however it ends (at once if it already has)."""
        if self._closed:
            callback()
        else:
            self._callbacks.append(callback)

    async def send(
        self,
        data: str | ServerSentEvent | None = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        """Queue one event for the client; waits while ``max_queue`` pieces are already pending.

        Args:
            data: the message text (CR, LF and CRLF become separate ``data:`` lines: the client gets LF), or
                a ready :class:`~rawrt.sansio.sse.ServerSentEvent` (then the other arguments must be None).
            event: the event type; ``id``: the id the client sends back as ``Last-Event-ID``; ``retry``:
                the reconnection time in milliseconds.

        Raises:
            ConnectionClosed: the stream is over (client gone, completed, timed out).
            InvalidEventError: the event cannot be encoded (a newline in ``id`` or ``event``, ...).
        """
        if isinstance(data, ServerSentEvent):
            if event is not None or id is not None or retry is not None:
                raise TypeError("pass either a ServerSentEvent or fields, not both")
            wire = data.encode()
        else:
            wire = ServerSentEvent(data=data, event=event, id=id, retry=retry).encode()
        await self.send_bytes(wire)

    async def send_bytes(self, wire: bytes) -> None:
        """Queue ready-made event-stream bytes (whole events) for the client. See :meth:`send`."""
        while len(self._pending) >= self._max_queue and not self._closed and not self._completed:
            self._space.clear()
            await self._space.wait()
        self.send_bytes_nowait(wire)

    def send_bytes_nowait(self, wire: bytes) -> None:
        """Queue ready-made event-stream bytes (whole events) at once, without waiting for room.

        ``max_queue`` does not apply: this is for a bounded number of pieces that must be in place before
        anything else, e.g. written from the handler before it returns :meth:`response` (as
        :func:`~rawrt.sse.hub_stream` writes the client's position before the replay).

        Raises:
            ConnectionClosed: the stream is over (client gone, completed, timed out).
        """
        if self._closed:
            raise ConnectionClosed(1006, "event stream closed: the client went away or the stream ended")
        if self._completed:
            raise ConnectionClosed(1000, "event stream already completed")
        self._pending.append(wire)
        self._wake()

    def subscribe(self, hub: Hub, channel: str, *, cursor: int | None) -> Subscription:
        """Stream ``channel`` of ``hub``: the retained events after ``cursor`` first, then live ones.

        Each event goes out as :func:`event_bytes` (``id: N`` and its ``data:`` lines), after whatever was
        queued before it. Live events are written from inside ``hub.publish`` while the client keeps up
        (rawrt.hub "Direct delivery"), queued in the subscription while it does not; a subscriber that
        falls behind (rawrt.hub "Overflow") has its stream ended, so the client resumes from the history.
        The subscription is closed the moment the stream ends.

        Args:
            hub: the hub; ``channel``: the channel's name.
            cursor: as for :meth:`~rawrt.hub.Hub.subscribe`: the last id the client has, or ``None`` for
                live events only.

        Returns:
            The subscription: its ``reset`` and ``cursor`` say where the replay starts.

        Raises:
            RuntimeError: the stream already follows a channel (one per stream).
        """
        if self._subscription is not None:
            raise RuntimeError("an EventStream follows at most one hub channel")
        sub = hub.subscribe(channel, cursor=cursor, wake=self._wake, deliver=self._deliver)
        self._subscription = sub
        if self._closed:
            sub.close()  # nothing will drain it: free it now, as _finish would have
        return sub

    def _wake(self) -> None:
        """Something is ready (a send, a queued hub event, complete()): write it now if the client keeps up.

        This is also the hub's ``wake`` callback, for the events it queued rather than handed to
        :meth:`_deliver` (what arrived before the head went out, or while the client was congested): those
        too are written from the publish call when they can be, with no task switch per client.
        Everything else (heartbeats, the timeout, completion, overflow, a congested client) is the body
        task's: it is woken instead.
        """
        push = self._push
        if push is not None and not self._congested and not self._closed:
            piece = self._take()
            if piece:
                self._last_write = self._loop.time()
                if not push(piece):
                    self._congested = True  # the body task waits for the client, bounded by send_timeout
                    self._ready.set()
            sub = self._subscription
            if self._completed or (sub is not None and sub.overflowed):
                self._ready.set()
            return
        self._ready.set()

    def _deliver(self, event: Event) -> bool:
        """The hub's direct delivery (rawrt.hub "Direct delivery"): write a live event from inside publish.

        The event is encoded once for every subscriber (:func:`event_bytes` hands each the same bytes, which
        the server frames once), and nothing is queued, woken or allocated per client. Declined (the hub
        then queues the event and wakes the stream, as without it) before the head is out and while the
        client is congested: then pieces the app sent may be waiting too, and the order on the wire stays
        the order of the sends and publishes.
        """
        push = self._push
        # Nothing the app sent can be waiting here: with a push and no congestion, _wake writes a piece the
        # moment it is queued, and the body takes them in the same step as it clears _congested.
        if push is None or self._congested:
            return False
        self._last_write = self._loop.time()
        if not push(event_bytes(event)):
            self._congested = True  # the body task waits for the client, bounded by send_timeout
            self._ready.set()
        return True

    def _attach(self, push: Push | None) -> None:
        self._push = push
        if push is not None:
            self._wake()  # what was queued before the head went out (the replay, the cursor line)

    def complete(self) -> None:
        """End the stream once what was sent has been written (cf. ``SseEmitter.complete()``). Idempotent."""
        self._completed = True
        self._ready.set()

    def response(self) -> StreamingResponse:
        """The response for the handler to return (always the same object)."""
        if self._response is None:
            if self.request.method == "HEAD":
                # The server sends no body to HEAD; an endless body would only hold the connection.
                self.complete()
            self._response = StreamingResponse(
                self._body(),
                200,
                self._headers,
                CONTENT_TYPE,
                send_timeout=self.send_timeout,
                on_close=self._finish,
                on_push=self._attach,
            )
        return self._response

    # ------------------------------------------------------------------------------------------ internals

    def _take(self) -> bytes:
        """Everything ready to write, coalesced into one piece (one chunk, one write system call)."""
        parts = self._pending
        if parts:
            self._pending = []
            self._space.set()
        sub = self._subscription
        if sub is not None:
            batch = sub.drain()
            if batch:
                parts = [*parts, *map(event_bytes, batch)]  # each encoded once for every stream
        return b"".join(parts)

    async def _body(self) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        ready = self._ready
        self._last_write = loop.time()
        # The timer that wakes the body for a heartbeat or the timeout, and the loop time it is set for.
        timer: asyncio.TimerHandle | None = None
        timer_at = 0.0
        try:
            while True:
                ready.clear()
                if self._congested:
                    # A push found the transport full: yielding nothing makes the server wait until the
                    # client has taken what is buffered (bounded by send_timeout), then pushes resume.
                    yield b""
                    self._congested = False
                    continue
                piece = self._take()
                if piece:
                    yield piece
                    self._last_write = loop.time()
                    continue
                sub = self._subscription
                if self._completed or (sub is not None and sub.overflowed):
                    # Overflow: the subscriber fell behind; ending the stream makes the browser reconnect
                    # with Last-Event-ID and replay the rest from the history (rawrt.hub "Overflow").
                    return
                now = loop.time()
                if deadline is not None and now >= deadline - _TIMER_SLACK:
                    return
                if now - self._last_write >= self.heartbeat - _TIMER_SLACK:
                    yield HEARTBEAT
                    self._last_write = loop.time()
                    continue
                wake_at = self._last_write + self.heartbeat
                if deadline is not None:
                    wake_at = min(wake_at, deadline)
                # A timer that sets the same event, rather than asyncio.wait_for(): on Python 3.11
                # wait_for() can swallow a cancellation that arrives as the inner wait completes (CPython
                # gh-86296), and the server's disconnect handling is exactly such a cancellation: the
                # stream would then outlive its client until the next heartbeat.
                # One timer at a time, not one per wait (a timer per event is measurable in a fan-out:
                # docs/topics/performance.md). wake_at only moves later (_last_write grows, the deadline
                # is fixed), so a pending timer fires at or before it; an early fire finds nothing due and
                # arms the next timer here.
                if timer is None or timer_at <= now:
                    timer = loop.call_at(wake_at, ready.set)
                    timer_at = wake_at
                await ready.wait()
        finally:
            if timer is not None:
                timer.cancel()
            self._finish()

    def _finish(self) -> None:
        """Free everything at once; runs from the body's ``finally`` and the response's ``on_close``."""
        if self._closed:
            return
        self._closed = True
        if self._subscription is not None:
            self._subscription.close()
        self._pending = []
        self._space.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("EventStream on_close callback failed")
