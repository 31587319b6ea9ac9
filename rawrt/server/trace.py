"""``--trace`` (``Server(trace=True)``): every exchange's bytes on the ``rawrt.trace`` logger, annotated.

The four techniques, not only WebSocket: request and response heads field by field, chunk-size lines and
chunk data, SSE ``id:``/``data:`` lines and heartbeats, and the ``101`` handshake with its accept key worked
out; after it, the WebSocket's frames are logged one line each by the WebSocket itself
(:mod:`rawrt.websocket.trace`). The annotations are the protocol lab's (:mod:`rawrt.lab.annotate`): one
explanation of the wire, two places to read it (the demo page, and the log).

Mechanism: a :data:`rawrt.app.Tapper` for every request (:func:`tapper`), combined with the app's own tap
when it has one (the demo's lab). A server without ``trace`` and without an app tap pays nothing; with
``trace``, each write also goes through the annotator, which is for learning and debugging, not for load.
"""

from __future__ import annotations

import logging

from ..app import Request, Tap, Tapper
from ..lab.annotate import Annotator, Record

__all__ = ["TraceTap", "tapper", "trace_log"]

trace_log = logging.getLogger("rawrt.trace")

_ARROWS = {"in": "<-", "out": "->"}


class TraceTap:
    """The :class:`rawrt.app.Tap` that logs one exchange (and the WebSocket it may become)."""

    __slots__ = ("peer", "annotator")

    def __init__(self, peer: str, head: bytes) -> None:
        self.peer = peer
        self.annotator = Annotator()
        self._log(self.annotator.request(head))

    # After a 101 the WebSocket logs its own frames on rawrt.trace, one compact line each
    # (rawrt.websocket.trace): this tap's part ends with the handshake.

    def received(self, data: bytes) -> None:
        if not self.annotator.upgraded:
            self._log(self.annotator.received(data))

    def sent(self, data: bytes) -> None:
        if not self.annotator.upgraded:
            self._log(self.annotator.sent(data))

    def done(self, closed: bool) -> None:
        if closed:
            trace_log.debug("%s connection closed", self.peer)

    def _log(self, records: list[Record]) -> None:
        for record in records:
            # One log entry per unit (a head, a chunk, a frame), its bytes a line each with what they mean:
            # the lab's view, as text.
            lines = [
                f"{self.peer} {_ARROWS.get(record.direction, '  ')} {record.title} ({record.size} bytes)"
            ]
            for row in record.rows:
                marker = "=" if row.derived else " "
                lines.append(f"  {marker} {row.raw:<44} {row.note}".rstrip())
            trace_log.debug("\n".join(lines))


class _Both:
    """Two taps of one exchange (the app's and the trace), fed the same bytes."""

    __slots__ = ("first", "second")

    def __init__(self, first: Tap, second: Tap) -> None:
        self.first, self.second = first, second

    def received(self, data: bytes) -> None:
        self.first.received(data)
        self.second.received(data)

    def sent(self, data: bytes) -> None:
        self.first.sent(data)
        self.second.sent(data)

    def done(self, closed: bool) -> None:
        self.first.done(closed)
        self.second.done(closed)


def _trace(request: Request, head: bytes) -> Tap:
    client = request.client
    return TraceTap(f"{client[0]}:{client[1]}" if client else "-", head)


def tapper(app_tap: Tapper | None, trace: bool) -> Tapper | None:
    """The tapper a connection uses: the app's, the trace's, both, or none (then nothing is kept)."""
    if not trace:
        return app_tap
    if app_tap is None:
        return _trace

    def both(request: Request, head: bytes) -> Tap | None:
        tap = app_tap(request, head)
        traced = _trace(request, head)
        return traced if tap is None else _Both(tap, traced)

    return both
