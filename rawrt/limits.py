"""Every size and time limit rawrt enforces, in one place.

Each field says what it bounds, what happens when it is crossed, and why the default is what it is (with the
precedent where there is one). ``docs/topics/limits.md`` is the same table for readers. Pass a modified copy
to the server (``Limits(max_body_size=10 * MiB)``, or ``dataclasses.replace(DEFAULT_LIMITS, ...)``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "DEFAULT_LIMITS", "KiB", "MiB", "MAX_RECV", "MAX_CHUNK_SIZE_DIGITS"]

KiB = 1024
MiB = 1024 * KiB

#: Bytes asked of the transport per read. 64 KiB is the stdlib's stream limit and hypercorn's MAX_RECV: big
#: enough that a large body costs few system calls, small enough that one read never hogs the loop.
MAX_RECV = 64 * KiB

#: Hex digits allowed in a chunk-size (RFC 9112 §7.1 puts no bound on ``1*HEXDIG``). 16 digits already
#: cover 2**64; h11 allows 20. Leading zeros beyond that are a smuggling trick, not a real client.
MAX_CHUNK_SIZE_DIGITS = 16


@dataclass(frozen=True, slots=True)
class Limits:
    """Size and time limits. Sizes are in bytes, times in seconds; ``None`` disables a timeout."""

    # --- HTTP/1.1 (RFC 9112) -------------------------------------------------------------------------------
    #: Request line, without CRLF. Crossing it: 414 URI Too Long. 8 KiB is what nginx, websockets and most
    #: servers allow; RFC 9112 §3 recommends supporting at least 8000 octets.
    max_request_line: int = 8 * KiB
    #: The whole header section (field lines and their CRLFs). Crossing it: 431. 64 KiB matches the stdlib
    #: stream limit; h11 uses 16 KiB, node 16 KiB, tomcat 8 KiB, IIS 16 KiB: we are generous, not unbounded.
    max_header_bytes: int = 64 * KiB
    #: Number of header (and trailer) fields. Crossing it: 431. 100 is http.client's and Go's default.
    max_header_count: int = 100
    #: Request body, after dechunking. Crossing it: 413 (checked against Content-Length before reading any
    #: of the body). 1 MiB is nginx's ``client_max_body_size``; routes may raise it.
    max_body_size: int = 1 * MiB
    #: Chunk extensions on one chunk-size line (the whole line may be MAX_CHUNK_SIZE_DIGITS + this). Crossing
    #: it: 400. Extensions carry nothing rawrt uses, and an
    #: endless one is a known resource attack on chunked parsers, so 4 KiB is plenty.
    max_chunk_ext: int = 4 * KiB
    #: From the first byte of a request head until the head is complete (idle time before that byte is
    #: ``keep_alive_timeout``'s, or this one's for a new connection). Crossing it: 408 then close. Slowloris
    #: protection; 10 s is Apache's ``RequestReadTimeout header=10``.
    header_timeout: float | None = 10.0
    #: Longest pause between two reads of a body in progress. Crossing it: the connection is closed (408 when
    #: no response has started). 30 s is Apache's body read timeout order of magnitude.
    body_timeout: float | None = 30.0
    #: Slowest body a client may send, in bytes per second, once ``body_timeout`` has gone by: a body's
    #: reads may wait ``body_timeout`` in all, plus one second for every ``body_min_rate`` bytes it has sent
    #: (Apache's ``RequestReadTimeout body=...,MinRate=500``). Without it, a byte sent just inside each
    #: ``body_timeout`` would hold a connection (and its handler) for days. Crossing it: as ``body_timeout``.
    #: Needs ``body_timeout`` (with ``body_timeout=None`` no body read is bounded).
    body_min_rate: int | None = 500
    #: Idle time allowed between keep-alive requests. Crossing it: close without a response. 5 s is
    #: hypercorn's and uvicorn's ``keep_alive_timeout``.
    keep_alive_timeout: float | None = 5.0
    #: Concurrent connections (every open socket, WebSockets and streams included). At it, the oldest idle
    #: keep-alive connection is closed to make room; with none idle, the new one gets 503 and close. None
    #: (the default): sized at start from RLIMIT_NOFILE, raised to its hard limit, as 90% of it minus 64
    #: (nginx's worker_connections must likewise fit worker_rlimit_nofile).
    max_connections: int | None = None
    #: Graceful shutdown: how long in-flight requests may run after SIGINT/SIGTERM before they are cut.
    shutdown_timeout: float = 10.0
    #: Writer buffer above which ``drain()`` waits (backpressure). 64 KiB is asyncio's default high water.
    write_high_water: int = 64 * KiB
    #: How long a write may wait for a peer that stopped reading (an HTTP response, a streaming body, a
    #: WebSocket send) before the connection is aborted and its buffers freed. 30 s is nginx's
    #: ``send_timeout`` default (60 s) halved, and ``sse_send_timeout``'s value.
    send_timeout: float | None = 30.0

    # --- WebSocket (RFC 6455, RFC 7692) ---------------------------------------------------------------------
    #: One message after reassembly (and after decompression). Crossing it: close 1009. 1 MiB is the
    #: websockets library's ``max_size``.
    ws_max_message_size: int = 1 * MiB
    #: One frame's declared payload length, checked before any payload is read. Crossing it: close 1009.
    ws_max_frame_size: int = 1 * MiB
    #: Complete messages queued for the app before rawrt stops reading the socket (backpressure on the peer).
    #: 16 is websockets' ``max_queue``.
    ws_max_queue: int = 16
    #: Keepalive ping interval (``None``: off). 20 s is the ecosystem default (websockets, browsers' proxies
    #: close idle TCP after ~30-60 s).
    ws_ping_interval: float | None = 20.0
    #: How long a keepalive ping waits for its pong before the peer is declared dead (close 1011).
    ws_ping_timeout: float | None = 20.0
    #: How long the close handshake may take before TCP is closed anyway (RFC 6455 §7.1.1).
    ws_close_timeout: float = 10.0
    #: Writer buffer above which ``send()`` waits for the peer to read (websockets: 32 KiB).
    ws_write_high_water: int = 32 * KiB

    # --- HTTP/2 (RFC 9113, RFC 7541) ----------------------------------------------------------------------
    #: A decoded header list (RFC 9113 §6.5.2: each field's name and value lengths plus 32), counted while
    #: the block is decoded; announced as SETTINGS_MAX_HEADER_LIST_SIZE. Crossing it: 431 (or
    #: REFUSED_STREAM), the connection goes on. 64 KiB is ``max_header_bytes``, so that a request head that
    #: fits HTTP/1.1 fits HTTP/2 too (the 32 per field covers ~100 fields' worth of ": " and CRLF).
    h2_max_header_list_size: int = 64 * KiB
    #: The HPACK dynamic table we let the peer's encoder use (SETTINGS_HEADER_TABLE_SIZE). A size update
    #: above it: COMPRESSION_ERROR (RFC 7541 §6.3). 4096 is the protocol's initial value (RFC 9113 §6.5.2),
    #: which every peer assumes until our SETTINGS arrive, so announcing it changes nothing.
    h2_header_table_size: int = 4 * KiB
    #: The SETTINGS_MAX_FRAME_SIZE rawrt advertises: the largest frame payload it accepts, checked on the
    #: 9-octet frame header before any payload is read. Crossing it: a connection error FRAME_SIZE_ERROR
    #: (§4.2), i.e. GOAWAY and close. 16 KiB is the initial value every peer must accept anyway (§6.5.2)
    #: and hypercorn's ``h2_max_inbound_frame_size``; the protocol allows 16 KiB to 16 MiB - 1.
    h2_max_frame_size: int = 16 * KiB
    #: SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open at once (§5.1.2). One past it is
    #: refused with REFUSED_STREAM, which a client may retry (§8.7). 100 is the value RFC 9113 recommends
    #: as the least (§6.5.2), and what browsers meet at nginx and h2o.
    h2_max_concurrent_streams: int = 100
    #: SETTINGS_INITIAL_WINDOW_SIZE: the request body octets a stream may send ahead of what the application
    #: consumed (§6.9.2). Past it: FLOW_CONTROL_ERROR on the stream. Never below the protocol's 65,535.
    h2_stream_window: int = 256 * KiB
    #: The connection's receive window (§6.9.1, granted with WINDOW_UPDATE at the start): the body octets of
    #: all streams together that may wait unconsumed. It bounds a connection's buffered request bodies.
    h2_connection_window: int = 1 * MiB
    #: Frames one header block may span (HEADERS and its CONTINUATIONs). A real client needs more than one
    #: only for a block over 16 KiB; past it: ENHANCE_YOUR_CALM (the CONTINUATION floods of 2024,
    #: CVE-2024-27316).
    h2_max_continuation_frames: int = 32
    #: Streams a client may reset before they are answered, beyond those it let finish: past it,
    #: ENHANCE_YOUR_CALM ("rapid reset", CVE-2023-44487: open and cancel streams so the server does the work
    #: while the concurrency limit never bites).
    h2_max_reset_streams: int = 200
    #: Streams one connection may open per second (counted by the server, which has the clock). Past it:
    #: REFUSED_STREAM, which a client may retry (§8.7). The concurrency limit bounds what is open at once,
    #: not how fast a client opens and finishes short streams; this keeps one connection from taking the
    #: whole event loop. h2load at 20 streams per connection stays well under it.
    h2_max_streams_per_second: int = 5000

    # --- Server-Sent Events, polling, hub -------------------------------------------------------------------
    #: Comment line sent on an idle event stream so proxies keep it open and dead clients are found.
    #: 15 s: the WHATWG spec suggests "every 15 seconds or so".
    sse_heartbeat: float = 15.0
    #: How long one SSE write may wait for a client that stopped reading before the stream is dropped.
    sse_send_timeout: float = 30.0
    #: Characters an SSE *parser* (client side, tests) buffers for one event: its data so far plus the line
    #: being read. Crossing it: ``LimitExceeded``. Browsers buffer without bound; 1 MiB matches
    #: ``ws_max_message_size`` so a payload that fits one transport fits the other.
    sse_max_event_size: int = 1 * MiB
    #: Events queued per live subscriber before it counts as too slow and is disconnected to resume from its
    #: cursor (never silently skipped).
    hub_queue_size: int = 1024
    #: Events kept per channel for replay (count). The demo contract keeps 10,000.
    hub_history_count: int = 10_000
    #: Bytes of event data kept per channel for replay; the oldest go first past it.
    hub_history_bytes: int = 16 * MiB
    #: Bytes of memory the history holds across ALL channels (anyone may publish, so the sum needs its own
    #: bound): each event counts its text, its UTF-8 copy and ~200 bytes of objects, each channel holding
    #: events ~1 KiB plus its name. Past it the oldest events of any channel are evicted (a later replay
    #: reports ``reset``), and channels left with no event and no subscriber are forgotten. 64 MiB: two
    #: channels full to ``hub_history_bytes`` of ASCII text, or about 50,000 one-event channels.
    hub_total_history_bytes: int = 64 * MiB
    #: Long-poll hold time when the client asks for none, and the most it may ask for.
    longpoll_default_timeout: float = 30.0
    longpoll_max_timeout: float = 60.0
    #: Events in one poll / long-poll answer; the client continues from the returned cursor.
    poll_max_batch: int = 1000

    # --- The demo's protocol lab (rawrt.lab) -------------------------------------------------------------
    #: Lab pages whose wire view is open at once (each holds a ring buffer below). Past it, a new page's
    #: ``/lab/wire`` is refused (503, or close 1013) and its lanes run untapped. 64 pages of 1 MiB bound the
    #: lab's memory at 64 MiB, the hub's own total.
    lab_max_pages: int = 64
    #: Annotated records a lab page's ring buffer holds while its wire stream has not taken them. Past it,
    #: the oldest go first (the page is told how many it missed). 2,000 is minutes of a busy page's lanes.
    lab_max_entries: int = 2000
    #: Bytes (UTF-8 JSON) those records may hold, the same way. 1 MiB: the WebSocket message limit.
    lab_max_bytes: int = 1 * MiB


#: The limits used when none are given.
DEFAULT_LIMITS = Limits()
