"""The demo's protocol lab (``GET /``): its wire tap and the annotated wire view it streams to the page.

* :mod:`.annotate` -- bytes in, annotated records out (no I/O): HTTP heads field by field, chunks, SSE
  lines, WebSocket frames with their masks and compression, the ``101`` handshake worked out.
* :mod:`.tap` -- :class:`Lab`: which connections a lab page opened, their records in a bounded ring buffer
  per page, and the ``/lab/wire`` stream that delivers them.

Nothing here runs unless an app sets :attr:`rawrt.app.App.tap` (the demo does: docs/demo.md).
"""

from __future__ import annotations

from .annotate import Annotator, Record, Row
from .tap import LAB_ID_RE, LANES, ExchangeTap, Lab, Page

__all__ = ["Annotator", "Record", "Row", "Lab", "Page", "ExchangeTap", "LANES", "LAB_ID_RE"]
