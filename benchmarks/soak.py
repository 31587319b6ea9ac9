"""The soak benchmark (issue 10): many mixed connections for minutes, with churn, abuse and a restart.

rawrt's demo (``soak_server.py``: this checkout's ``rawrt.demo``, ``max_connections`` raised) runs in its
own process pinned to core 0; the load (every client, the publisher, the probes) runs in this process on
uvloop, pinned to core 1. Loopback only. Usage::

    python benchmarks/soak.py [--clients 10000] [--seconds 300] [--write]
    python benchmarks/soak.py --clients 300 --seconds 40          # a small check

What it does, in order:

1. **Ramp.** Opens ``--clients`` subscribers split over ``--mix`` (WebSocket ``/ws/chat``, SSE ``/events``,
   long poll ``/longpoll``, short poll ``/poll`` every ``--poll-interval``), each on one of ``--channels``
   channels, each starting from cursor 0 (so every client must receive every event of its channel). Cursor
   0 stands for the channel's start, which is not id 0: the memory hub's ids count on from a number derived
   from the run's start time (rawrt.hub.ids), so the load generator first asks each run where each channel
   starts (``learn_origins``: ``GET /poll?since=0``) and checks the first event against that.
2. **Soak** for ``--seconds``. A publisher posts ``--rate`` events a second over the channels
   (``POST /publish``, one keep-alive connection); an event's data is ``"<run> <monotonic> <padding>"``:
   the server run it was published on and the publisher's CLOCK_MONOTONIC (system-wide, so every client
   computes its publish-to-receive latency). Every client checks every id it receives against its cursor
   (docs/demo.md's contract): an id at or below the cursor is a **duplicate**, an id past cursor + 1 is a
   **silent gap** (lost events), a reset signal (``{"reset": true}``, ``event: reset``, ``"reset": true``)
   is **honest**: the events it skips are counted apart and are not losses.

   * **Churn**: each second ``--churn`` of the connected clients (a fraction) get one of: a reset (RST,
     ``SO_LINGER`` 0), a half-close (FIN; the server must close within ``HALF_CLOSE_WAIT``), a slow read
     (reading paused 2 to 15 s), a reconnect (a WebSocket close handshake or a FIN). Every client
     reconnects after a connection ends, resuming from its cursor (``since``, ``Last-Event-ID``).
   * **Abuse**, twice each, in the first and the second half (each bounded in count, bytes and time): a
     ping flood on ``/ws`` (never reading the pongs), slowloris heads (one byte a second), a pipelined
     burst of ``GET /hello`` then RST, a 16 MiB ``POST /echo`` that stalls after 2 MiB, an 8 MiB
     ``/echo`` whose answer is never read, and TLS ClientHellos sent to the plaintext port. Each records
     how the server answered and how long it took to let go.
   * **A graceful restart** half-way: SIGTERM, and once the old server has closed its listening socket a
     new one is started on the same port (the old one drains meanwhile). The in-memory hub starts its ids
     afresh, above the old run's (rawrt.hub.ids), so resuming clients must get a reset signal; a client
     whose old cursor is silently honoured by the new run counts as lost ("unsignalled"). The old server's
     shutdown is timed from the SIGTERM to its process's exit.
3. **Drain**: publishing, churn and abuse stop; every client has a bounded time (``_drain_seconds``, at
   least 10 s) to catch up with the last id of its channel. What it still misses then is lost ("tail").

Every second it samples the server's RSS (``/proc/PID/status`` VmRSS) and open fds (``/proc/PID/fd``), its
event-loop lag (the worst lateness of a 50 ms sleep in the server process, from ``soak_server.py``), the
latency of a ``GET /hello`` on a probe connection, the p50/p99 publish-to-receive latency of the last
second's deliveries per transport, and the running counts. Latency counts live deliveries only: events
published after the connection was made, on a connection that was never paused (a replay after a
reconnect, or an event held up by the client's own paused reading, would measure the client).

It writes the samples as JSON (``--json``), an SVG chart (RSS, fds, loop lag, p99 over time, the restart
marked) and prints a summary. ``--write`` puts the summary into docs/benchmarks.md (section ``soak``)
and the chart into docs/soak.svg. ``--rawrt PATH`` serves another checkout's rawrt (a before/after).

Every loop is bounded in count and in time; the run stops by itself (ramp + seconds + drain + shutdown).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import random
import re
import resource
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from _common import (
    CLIENT_CPU,
    ROOT,
    SERVER_CPU,
    free_port,
    machine,
    pinned,
    raise_nofile,
    wait_port,
    write_section,
)
from transport_clients import HTTPReader, cpu_seconds, percentile, request

HERE = Path(__file__).resolve().parent
CHART = ROOT / "docs" / "soak.svg"
HOST = "127.0.0.1"
KINDS = ("ws", "sse", "longpoll", "poll")
LABELS = {"ws": "WebSocket", "sse": "SSE", "longpoll": "long poll", "poll": "short poll"}

#: Seconds a half-closed client waits for the server to close before it aborts (and counts it).
HALF_CLOSE_WAIT = 10.0
#: Seconds a WebSocket close handshake started by the client may take before it aborts.
CLOSE_WAIT = 10.0
#: Longest wait for one connect (SYN retransmits on a full backlog are 1 s, 3 s...).
CONNECT_TIMEOUT = 10.0
#: At most this many connects in flight during the ramp.
RAMP_CONCURRENCY = 200
#: Reconnect delay after a connection ends (uniform), and the backoff cap after failed connects.
RECONNECT = (0.1, 1.5)
BACKOFF_CAP = 2.0
#: Slow readers stop reading for this long (uniform).
SLOW = (2.0, 15.0)
#: Churn actions and their weights.
ACTIONS = {"rst": 3, "half_close": 2, "slow": 2, "reconnect": 3}
#: The note counting connects that timed out after connection_made (Sub._connect).
UNFINISHED_CONNECT = "connect timed out after connection_made (no connection_lost from the loop)"
#: TCP states (include/net/tcp_states.h) read from TCP_INFO's first byte.
TCP_ESTABLISHED = 1


def _drain_seconds(args: argparse.Namespace) -> float:
    """The catch-up allowance at the end: long enough for a backoff, a reconnect and a short poll."""
    return max(10.0, 2 * args.poll_interval + 2 * BACKOFF_CAP + 2)


# ------------------------------------------------------------------------------------------ bookkeeping


@dataclass
class Stats:
    """What the clients of one transport saw over the whole run."""

    delivered: int = 0
    duplicates: int = 0
    #: Ids skipped with no reset signal (silent loss).
    gaps: int = 0
    #: Events of an earlier server run never received, when the next run gave no reset signal.
    unsignalled: int = 0
    #: Events missing at the end of the drain.
    tail: int = 0
    #: Reset signals received, and the events they honestly skipped.
    resets: int = 0
    skipped_under_reset: int = 0
    connects: int = 0
    failed_connects: int = 0
    #: This second's delivery latencies (the sampler empties it).
    latencies: list[float] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.gaps + self.unsignalled + self.tail


class Soak:
    """The run's shared state."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.args = args
        self.port = port
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(args.seed)
        self.stats = {kind: Stats() for kind in KINDS}
        self.subs: list[Sub] = []
        #: The server run (1, then 2 after the restart): publishers label events with it.
        self.gen = 1
        #: Last id the publisher got back, per (channel, run).
        self.last_ids: dict[tuple[str, int], int] = {}
        #: First id the publisher got back, per (channel, run).
        self.first_ids: dict[tuple[str, int], int] = {}
        #: Where each channel's ids start on each run, per (channel, run): what cursor 0 stands for. The
        #: memory hub counts on from a number derived from its start time (rawrt.hub.ids), not from 0, so
        #: that an earlier run's cursor is always below the next run's history (see learn_origins()).
        self.origins: dict[tuple[str, int], int] = {}
        self.published = 0
        self.publish_failures = 0
        self.stopping = False
        self.churning = False
        self.ready = 0
        self.actions: Counter[str] = Counter()
        #: Things that looked wrong (or are worth counting): "what" -> count.
        self.notes: Counter[str] = Counter()
        self.close_codes: Counter[int] = Counter()
        self.statuses: Counter[str] = Counter()
        self.hello_ms: float | None = None
        #: When the probe's request in flight was sent (None: none in flight).
        self.hello_started: float | None = None
        self.abuse: list[dict[str, Any]] = []
        self.marks: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.server_pid = 0
        #: Server runs that were sent SIGTERM.
        self.terminated: set[int] = set()

    def t(self) -> float:
        return time.monotonic() - self.t0

    def last_id(self, channel: str, gen: int) -> int:
        return self.last_ids.get((channel, gen), 0)

    def origin(self, channel: str, gen: int) -> int:
        """The id ``channel`` counts on from on run ``gen`` (its first event is one above)."""
        origin = self.origins.get((channel, gen))
        if origin is None:
            # Not learnt (the poll failed): the first id the publisher got back is the next best thing.
            first = self.first_ids.get((channel, gen))
            origin = 0 if first is None else first - 1
        return origin

    def after(self, channel: str, gen: int, cursor: int) -> int:
        """How many events of run ``gen`` on ``channel`` come after ``cursor`` (0: the run's start)."""
        last = self.last_ids.get((channel, gen))
        if last is None:
            return 0
        return max(0, last - max(cursor, self.origin(channel, gen)))


# -------------------------------------------------------------------------------------------- clients


class Sub:
    """One logical subscriber: a channel, a cursor, the server run the cursor belongs to; it outlives its
    connections and reconnects with its cursor."""

    def __init__(self, soak: Soak, kind: str, channel: str) -> None:
        self.soak = soak
        self.kind = kind
        self.channel = channel
        self.stats = soak.stats[kind]
        self.cursor = 0
        self.gen = 1
        #: (run, cursor) before a reset signal, until the next event says what the reset skipped.
        self.reset_from: tuple[int, int] | None = None
        self.proto: Proto | None = None
        self.connecting = False
        self.failures = 0
        self.ready = False
        #: The last few things that happened to this subscriber (t, what): printed for a client still
        #: behind at the end, so that an anomaly comes with its story.
        self.trail: deque[tuple[float, str]] = deque(maxlen=16)
        #: (t, id, run) of the last event received.
        self.last_event: tuple[float, int, int] | None = None

    def log(self, what: str) -> None:
        self.trail.append((round(self.soak.t(), 2), what))

    def story(self) -> str:
        """The state and the trail of a client still behind at the end."""
        proto = self.proto
        if proto is None:
            state = "no connection"
        else:
            closing = proto.transport is not None and proto.transport.is_closing()
            state = (
                f"connection to run {proto.run}: paused {proto.paused}, half-closed {proto.half_closed}, "
                f"gone {proto.gone}, closing {closing}"
            )
        lines = [
            f"behind: {self.kind} {self.channel} missing {self.missing()}, cursor {self.cursor} of run "
            f"{self.gen}, reset_from {self.reset_from}, connecting {self.connecting}, last event "
            f"{self.last_event}; {state}"
        ]
        lines += [f"    t={t}: {what}" for t, what in self.trail]
        return "\n".join(lines)

    # ------------------------------------------------------------------ the checks (docs/demo.md)

    def event(self, event_id: int, data: str, now: float, live_since: float | None) -> None:
        """One event received at ``now``; its latency counts if it was published after ``live_since``
        (the connection's start, None once it was paused): a replay after a reconnect, or an event held
        up by the client's own paused reading, measures the client, not the server."""
        st = self.stats
        gen_text, _, rest = data.partition(" ")
        gen = int(gen_text)
        self.last_event = (round(self.soak.t(), 2), event_id, gen)
        published = float(rest.partition(" ")[0])
        if live_since is not None and published >= live_since:
            st.latencies.append(now - published)
        if gen != self.gen:
            if gen < self.gen:
                self.soak.notes["an event of an earlier server run after a later one"] += 1
                st.duplicates += 1
                return
            if self.reset_from is not None:
                old_gen, old_cursor = self.reset_from
                st.skipped_under_reset += self.soak.after(self.channel, old_gen, old_cursor)
            else:
                # The new run took the old cursor as its own: the rest of the old run is lost silently, and
                # the new run's events before this one are counted as a gap below.
                st.unsignalled += self.soak.after(self.channel, self.gen, self.cursor)
                self.soak.notes["old cursor honoured by the new server run (no reset signal)"] += 1
                self.cursor = 0
            self.gen = gen
        elif self.reset_from is not None:
            skipped_from = max(self.reset_from[1], self.soak.origin(self.channel, gen))
            st.skipped_under_reset += max(0, self.cursor - skipped_from)
        self.reset_from = None
        # Cursor 0 ("nothing yet") stands for the run's first id (Soak.origins), not for id 0.
        cursor = self.cursor or self.soak.origin(self.channel, gen)
        if event_id <= cursor:
            st.duplicates += 1
            return
        if event_id != cursor + 1:
            st.gaps += event_id - cursor - 1
        self.cursor = event_id
        st.delivered += 1

    def reset(self, cursor: int) -> None:
        """A reset signal: the server could not honour the cursor and continues from ``cursor``."""
        self.log(f"reset to {cursor}")
        self.stats.resets += 1
        if self.reset_from is None:
            self.reset_from = (self.gen, self.cursor)
        self.cursor = cursor

    # ------------------------------------------------------------------ connections

    def connect(self) -> None:
        if self.connecting or self.proto is not None or self.soak.stopping:
            return
        self.connecting = True
        self.log("connect")
        self.soak.loop.create_task(self._connect())

    async def _connect(self) -> None:
        soak = self.soak
        cls = PROTOCOLS[self.kind]
        made: list[Proto] = []

        def factory() -> Proto:
            made.append(cls(self))
            return made[-1]

        try:
            await asyncio.wait_for(soak.loop.create_connection(factory, HOST, soak.port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            self.log(f"connect failed: {exc!r}")
            for proto in made:
                if proto.transport is not None and not proto.gone:
                    # The timeout cancelled create_connection after the connection was made and its
                    # connection_made() ran (both in one turn of a busy loop). uvloop then closes the
                    # transport without ever calling connection_lost() (loop.pyx, create_connection: `except
                    # BaseException: tr._close()`; asyncio does call it), and is_closing() stays False, so
                    # neither churn nor the drain could end it: the Sub kept that dead connection as its own
                    # and never reconnected. The first soak's 4 SSE clients that never resumed after the
                    # restart were this (docs/benchmarks.md). Finish what uvloop did not.
                    soak.notes[UNFINISHED_CONNECT] += 1
                    proto.transport.abort()
                    proto.connection_lost(None)
            self.stats.failed_connects += 1
            self.failures += 1
            self.connecting = False
            delay = min(BACKOFF_CAP, 0.1 * 2**self.failures) * soak.rng.uniform(0.5, 1.0)
            soak.loop.call_later(delay, self.connect)
            return
        self.connecting = False
        self.failures = 0
        self.stats.connects += 1

    def attached(self, proto: Proto) -> None:
        self.log(f"connected to run {proto.run} (cursor {self.cursor}, run {self.gen})")
        self.proto = proto

    def detached(self, proto: Proto, exc: Exception | None = None) -> None:
        self.log(f"connection lost ({exc!r})")
        if self.proto is proto:
            self.proto = None
        if not self.soak.stopping:
            self.soak.loop.call_later(self.soak.rng.uniform(*RECONNECT), self.connect)

    def missing(self) -> int:
        """Events of the current server run this client has not received (plus, if it never reached that
        run, what it missed of its own)."""
        soak = self.soak
        if self.reset_from is not None or self.gen == soak.gen:
            # A pending reset's cursor belongs to the run that sent it: the current one.
            return soak.after(self.channel, soak.gen, self.cursor)
        return soak.after(self.channel, self.gen, self.cursor) + soak.after(self.channel, soak.gen, 0)


class Proto(asyncio.Protocol):
    """One connection of a :class:`Sub`."""

    def __init__(self, sub: Sub) -> None:
        self.sub = sub
        self.transport: asyncio.Transport | None = None
        self.now = 0.0
        self.half_closed = False
        self.paused = False
        self.gone = False
        #: Events published since then count for latency (None: this connection was paused once).
        self.live_since: float | None = time.monotonic()
        #: The server run this connection was made to.
        self.run = sub.soak.gen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.sub.attached(self)
        self.start()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.gone:
            return  # Sub._connect may have called it already (a connect cancelled after connection_made)
        self.gone = True
        self.sub.detached(self, exc)

    def data_received(self, data: bytes) -> None:
        self.now = time.monotonic()
        self.feed(data)

    def start(self) -> None:
        raise NotImplementedError

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def mark_ready(self) -> None:
        if not self.sub.ready:
            self.sub.ready = True
            self.sub.soak.ready += 1

    def note(self, what: str) -> None:
        """Count something worth reporting (on the server run that is going away: said so)."""
        old = self.run < self.sub.soak.gen or self.run in self.sub.soak.terminated
        self.sub.soak.notes[what + (" (the old run, at the restart)" if old else "")] += 1

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing() and not self.half_closed:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ churn

    def rst(self) -> None:
        """Close with a reset: SO_LINGER on, 0 s (RFC 9293 §3.6: the abort sends RST)."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def half_close(self) -> None:
        """Send FIN and keep reading: the server should close its side soon (a gone client)."""
        assert self.transport is not None
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.half_closed = True
        self.transport.write_eof()
        self.sub.soak.loop.call_later(HALF_CLOSE_WAIT, self._half_close_check)

    def _half_close_check(self) -> None:
        if not self.gone:
            self.note(f"{self.sub.kind}: half-closed client still open after {HALF_CLOSE_WAIT:g} s")
            self.abort()

    def slow(self, seconds: float) -> None:
        assert self.transport is not None
        self.paused = True
        self.live_since = None
        self.transport.pause_reading()
        self.sub.soak.loop.call_later(seconds, self.unpause)

    def unpause(self) -> None:
        if self.paused and not self.gone and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def reconnect(self) -> None:
        assert self.transport is not None
        self.transport.close()


class SSEProto(Proto):
    """``GET /events`` with ``Last-Event-ID: <cursor>``."""

    def start(self) -> None:
        self.reader = HTTPReader(self._head, self._body, self._end)
        self.pending = b""
        sub = self.sub
        self.write(
            request(
                "GET",
                f"/events?channel={sub.channel}",
                sub.soak.port,
                f"Accept: text/event-stream\r\nLast-Event-ID: {sub.cursor}\r\n",
            )
        )

    def feed(self, data: bytes) -> None:
        self.reader.feed(data)

    def _head(self, status: int) -> None:
        self.sub.log(f"sse {status}")
        if status != 200:
            self.sub.soak.statuses[f"sse {status}"] += 1
            self.abort()
            return
        self.mark_ready()

    def _end(self) -> None:
        # The server ended the stream (e.g. an overflowing subscriber): resume from the cursor.
        self.note("sse: stream ended by the server")
        self.sub.log("sse: stream ended by the server")
        if self.transport is not None:
            self.transport.close()

    def _body(self, data: bytes) -> None:
        pending = self.pending + data
        while True:
            end = pending.find(b"\n\n")
            if end < 0:
                break
            self._block(pending[:end])
            pending = pending[end + 2 :]
        self.pending = pending

    def _block(self, block: bytes) -> None:
        event_id: int | None = None
        kind = b""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"id":
                event_id = int(value)
            elif name == b"data":
                data.append(value)
            elif name == b"event":
                kind = value
        if kind == b"reset":
            assert event_id is not None
            self.sub.reset(event_id)
        elif data and event_id is not None:
            self.sub.event(event_id, b"\n".join(data).decode(), self.now, self.live_since)


class WSProto(Proto):
    """``/ws/chat?since=<cursor>``: the upgrade, then one text message per event."""

    def start(self) -> None:
        self.upgraded = False
        self.buf = bytearray()
        self.closing = False
        sub = self.sub
        key = base64.b64encode(os.urandom(16)).decode()
        self.write(
            request(
                "GET",
                f"/ws/chat?channel={sub.channel}&since={sub.cursor}",
                sub.soak.port,
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            )
        )

    def feed(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.sub.soak.statuses[f"ws {bytes(buf[9:12]).decode('latin-1')}"] += 1
                self.abort()
                return
            self.upgraded = True
            del buf[: i + 4]
            self.mark_ready()
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < header + length:
                break
            payload = bytes(buf[pos + header : pos + header + length])
            pos += header + length
            if opcode == 1:
                message = json.loads(payload)
                if message.get("reset"):
                    self.sub.reset(int(message["cursor"]))
                elif "id" in message:
                    self.sub.event(int(message["id"]), message["data"], self.now, self.live_since)
            elif opcode == 9:
                self._frame(0xA, payload)
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.sub.soak.close_codes[code] += 1
                if not self.closing:
                    self._frame(0x8, payload[:2])
                self.closing = True
                # RFC 6455 §7.1.1: the server closes TCP first; the client waits, within reason.
                self.sub.soak.loop.call_later(CLOSE_WAIT, self._close_check)
        if pos:
            del buf[:pos]

    def _frame(self, opcode: int, payload: bytes) -> None:
        # Client frames must be masked (RFC 6455 §5.3); a zero key leaves the payload as it is.
        self.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    def reconnect(self) -> None:
        if not self.upgraded:
            super().reconnect()
            return
        self.closing = True
        self._frame(0x8, (1000).to_bytes(2, "big"))
        self.sub.soak.loop.call_later(CLOSE_WAIT, self._close_check)

    def _close_check(self) -> None:
        if not self.gone:
            self.note(f"ws: TCP still open {CLOSE_WAIT:g} s into the close handshake")
            self.abort()


class PollProto(Proto):
    """Short (``/poll`` every ``--poll-interval``) or long (``/longpoll``) polling on a keep-alive
    connection, one request at a time."""

    def start(self) -> None:
        self.reader = HTTPReader(self._head, self._body, self._end)
        self.status = 0
        self.body = bytearray()
        self.in_flight = False
        self.timer: asyncio.TimerHandle | None = None
        self.mark_ready()
        self.request()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        super().connection_lost(exc)

    def request(self) -> None:
        self.timer = None
        if self.gone or self.half_closed or self.in_flight:
            return
        sub = self.sub
        if sub.kind == "poll":
            target = f"/poll?channel={sub.channel}&since={sub.cursor}"
        else:
            timeout = sub.soak.args.longpoll_timeout
            target = f"/longpoll?channel={sub.channel}&since={sub.cursor}&timeout={timeout:g}"
        self.in_flight = True
        self.write(request("GET", target, sub.soak.port))

    def feed(self, data: bytes) -> None:
        self.reader.feed(data)

    def _head(self, status: int) -> None:
        self.status = status

    def _body(self, data: bytes) -> None:
        self.body += data

    def _end(self) -> None:
        self.in_flight = False
        sub, soak = self.sub, self.sub.soak
        body = bytes(self.body)
        self.body.clear()
        if self.status != 200:
            soak.statuses[f"{sub.kind} {self.status}"] += 1
            self.abort()
            return
        answer = json.loads(body)
        events = answer["events"]
        if answer.get("reset"):
            sub.reset(events[0]["id"] - 1 if events else int(answer["cursor"]))
        for event in events:
            sub.event(int(event["id"]), event["data"], self.now, self.live_since)
        if not events and not answer.get("reset"):
            # An empty answer moves the cursor only to where the client already is (or the channel's
            # start, on a first request): nothing to check.
            pass
        if self.half_closed:
            return
        if sub.kind == "longpoll" or len(events) >= 1000:
            self.request()
        else:
            self.timer = soak.loop.call_later(soak.args.poll_interval, self.request)


PROTOCOLS: dict[str, type[Proto]] = {"ws": WSProto, "sse": SSEProto, "longpoll": PollProto, "poll": PollProto}


# ------------------------------------------------------------------------------ publisher and probes


class HTTPConn:
    """A small keep-alive HTTP client on asyncio streams, for the publisher and the /hello probe."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.gen = 0

    async def call(self, soak: Soak, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.gen = soak.gen  # the run this connection talks to (see Soak.restart)
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(request(method, target, self.port, "", body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def publisher(soak: Soak, until: float) -> None:
    """``--rate`` events a second, round-robin over the channels, on an absolute schedule, until ``until``
    (monotonic). A failed publish is retried on a new connection (a new event, a new timestamp)."""
    args = soak.args
    conn = HTTPConn(soak.port)
    channels = [f"soak-{c}" for c in range(args.channels)]
    pad = "x" * max(0, args.payload - 24)
    interval = 1.0 / args.rate
    start = time.monotonic()
    k = 0
    while time.monotonic() < until:
        delay = start + k * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        channel = channels[k % len(channels)]
        k += 1
        try:
            # The run label comes from the connection: it was made to that run's server.
            if conn.writer is None or conn.writer.is_closing():
                conn.gen = soak.gen
                conn.reader, conn.writer = await asyncio.wait_for(asyncio.open_connection(HOST, conn.port), 5)
            body = f"{conn.gen} {time.monotonic():.6f} {pad}".encode()
            status, answer = await asyncio.wait_for(
                conn.call(soak, "POST", f"/publish?channel={channel}", body), 5
            )
            if status != 200:
                raise ConnectionError(f"HTTP {status}")
            event_id = int(json.loads(answer)["id"])
            key = (channel, conn.gen)
            soak.last_ids[key] = max(soak.last_ids.get(key, 0), event_id)
            soak.first_ids.setdefault(key, event_id)
            soak.published += 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            soak.publish_failures += 1
            conn.close()
            start += 0.1  # do not spin through the schedule while the server is away
            await asyncio.sleep(0.1)
    conn.close()


#: What a failed request of HTTPConn raises.
HTTP_FAILURES = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError)


async def learn_origins(soak: Soak, gen: int, bound: float = 15.0) -> None:
    """Ask the server run ``gen`` (the one listening now) where each channel's ids start: ``GET /poll``
    with ``since=0``, which answers from the channel's start. With no event yet the answer's cursor is the
    start; otherwise the first event is one above it (the history keeps every event of a soak's channel, and
    the memory hub's ids are contiguous). Each poll is retried until ``bound`` seconds have passed."""
    conn = HTTPConn(soak.port)
    deadline = time.monotonic() + bound
    try:
        for c in range(soak.args.channels):
            channel = f"soak-{c}"
            while time.monotonic() < deadline:
                try:
                    status, body = await asyncio.wait_for(
                        conn.call(soak, "GET", f"/poll?channel={channel}&since=0"), 5
                    )
                    if status != 200:
                        raise ConnectionError(f"HTTP {status}")
                    answer = json.loads(body)
                except HTTP_FAILURES:
                    conn.close()
                    await asyncio.sleep(0.1)
                    continue
                if answer.get("reset"):
                    soak.notes["since=0 answered with a reset: the channel's start is not known"] += 1
                    break
                events = answer["events"]
                origin = int(events[0]["id"]) - 1 if events else int(answer["cursor"])
                soak.origins[(channel, gen)] = origin
                break
            else:
                soak.notes[f"the start of the ids of run {gen} could not be learnt"] += 1
                return
    finally:
        conn.close()


async def hello_probe(soak: Soak, until: float) -> None:
    """Once a second, time a ``GET /hello`` on a keep-alive connection (None while it fails)."""
    conn = HTTPConn(soak.port)
    while time.monotonic() < until:
        t = soak.hello_started = time.monotonic()
        try:
            status, _ = await asyncio.wait_for(conn.call(soak, "GET", "/hello"), 5)
            soak.hello_ms = 1000 * (time.monotonic() - t) if status == 200 else None
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            soak.hello_ms = None
            conn.close()
        soak.hello_started = None
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
    conn.close()


# ---------------------------------------------------------------------------------------- churn


async def churn(soak: Soak, until: float) -> None:
    """Each second, ``--churn`` of the connected clients get one random action."""
    names = list(ACTIONS)
    weights = [ACTIONS[n] for n in names]
    owed = 0.0
    while time.monotonic() < until and soak.churning:
        await asyncio.sleep(1.0)
        owed += soak.args.churn * len(soak.subs)
        count, owed = int(owed), owed - int(owed)
        live = [s for s in soak.subs if s.proto is not None and not s.proto.half_closed]
        for sub in soak.rng.sample(live, min(count, len(live))):
            proto = sub.proto
            assert proto is not None and proto.transport is not None
            if proto.transport.is_closing() or proto.paused:
                continue
            action = soak.rng.choices(names, weights)[0]
            soak.actions[f"{sub.kind} {action}"] += 1
            sub.log(f"churn: {action}")
            if action == "rst":
                proto.rst()
            elif action == "half_close":
                proto.half_close()
            elif action == "slow":
                proto.slow(soak.rng.uniform(*SLOW))
            else:
                proto.reconnect()


# ---------------------------------------------------------------------------------------- abuse


def _tcp_state(sock: socket.socket) -> int:
    """The socket's TCP state (TCP_INFO's first byte; 1 is ESTABLISHED)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def _server_holds(sock: socket.socket, server_port: int) -> bool:
    """Whether the server process still holds its end of ``sock``'s connection: the server-side socket in
    /proc/net/tcp has an inode (an fd refers to it). Closing or aborting a socket whose send buffer the
    peer does not drain leaves it orphaned (inode 0) in FIN_WAIT1 behind a zero window: the client sees
    no FIN, so its own TCP state cannot tell that the server let go."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{sock.getsockname()[1]:04X}"
    with open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 9 and fields[1] == local and fields[2] == remote:
                return fields[9] != "0"
    return False


async def _watch_close(soak: Soak, sock: socket.socket, bound: float) -> float | None:
    """Seconds until the server let go of the connection (closed it, or no longer holds its socket),
    polled every second without reading (/proc/net/tcp is megabytes with 10,000 connections); None if it
    still held it after ``bound``."""
    start = time.monotonic()
    while time.monotonic() - start < bound:
        if _tcp_state(sock) != TCP_ESTABLISHED or not _server_holds(sock, soak.port):
            return time.monotonic() - start
        await asyncio.sleep(1.0)
    return None


async def _open(soak: Soak, rcvbuf: int | None = None) -> socket.socket:
    """A non-blocking socket connected to the server (``rcvbuf``: a small receive buffer, set first)."""
    loop = soak.loop
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, soak.port)), CONNECT_TIMEOUT)
    except BaseException:
        sock.close()
        raise
    return sock


def _server_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _rst_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def abuse_ping_flood(soak: Soak, bound: float) -> dict[str, Any]:
    """Upgrade on ``/ws`` (no keepalive, 16 MiB frames), then send pings and never read the pongs: does
    the server stop reading (backpressure) or close (1008), or does its memory grow?"""
    loop = soak.loop
    sock = await _open(soak, rcvbuf=64 * 1024)
    key = base64.b64encode(os.urandom(16)).decode()
    head = request(
        "GET",
        "/ws",
        soak.port,
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
    )
    rss0 = _server_rss_kib(soak.server_pid)
    await loop.sock_sendall(sock, head)
    answer = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
    if not answer.startswith(b"HTTP/1.1 101"):
        sock.close()
        return {"outcome": f"no upgrade: {answer[:40]!r}"}
    ping = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125
    batch = ping * 500  # 65.5 KB
    cap = soak.args.flood_mib * 1024 * 1024
    sent = 0
    outcome = f"sent all {soak.args.flood_mib} MiB"
    start = time.monotonic()
    rss_peak = rss0 or 0
    while sent < cap and time.monotonic() - start < bound:
        try:
            await asyncio.wait_for(loop.sock_sendall(sock, batch), 3)
        except asyncio.TimeoutError:
            outcome = "server stopped reading (backpressure)"
            break
        except OSError as exc:
            outcome = f"server closed ({exc.__class__.__name__})"
            break
        sent += len(batch)
        rss_peak = max(rss_peak, _server_rss_kib(soak.server_pid) or 0)
    if outcome.startswith("sent all") and _tcp_state(sock) != TCP_ESTABLISHED:
        outcome = "server closed"
    seconds = time.monotonic() - start
    rss1 = _server_rss_kib(soak.server_pid)
    pongs, close_code = await _read_frames(soak, sock, 3.0)
    _rst_close(sock)
    return {
        "outcome": outcome,
        "sent_mib": round(sent / 2**20, 1),
        "pings": sent // len(ping),
        "seconds": round(seconds, 1),
        "pongs_read_after": pongs,
        "close_code": close_code,
        "server_rss_growth_mib": round((rss_peak - (rss0 or 0)) / 1024, 1),
        "server_rss_after_mib": round((rss1 or 0) / 1024, 1),
    }


async def _read_frames(soak: Soak, sock: socket.socket, bound: float) -> tuple[int, int | None]:
    """Read the server's frames for at most ``bound`` seconds: (pongs, close code or None)."""
    buf = bytearray()
    pongs = 0
    start = time.monotonic()
    while time.monotonic() - start < bound:
        try:
            data = await asyncio.wait_for(soak.loop.sock_recv(sock, 1 << 16), bound)
        except (OSError, asyncio.TimeoutError):
            break
        if not data:
            break
        buf += data
        pos = 0
        while len(buf) - pos >= 2:
            opcode, length, header = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, 2
            if length == 126:
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if len(buf) - pos < header + length:
                break
            if opcode == 0xA:
                pongs += 1
            elif opcode == 0x8:
                payload = buf[pos + header : pos + header + length]
                return pongs, int.from_bytes(payload[:2], "big") if length >= 2 else 1005
            pos += header + length
        del buf[:pos]
    return pongs, None


async def abuse_slowloris(soak: Soak, bound: float) -> dict[str, Any]:
    """``--slowloris`` connections sending a request head one byte a second: how long until the server
    lets each go (the header timeout), and with what answer."""
    count = soak.args.slowloris
    socks = []
    for _ in range(count):
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            socks.append(await _open(soak))
    head = f"GET /hello HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ".encode() + b"a" * 10_000
    start = time.monotonic()
    closed: dict[int, float] = {}
    answers: Counter[str] = Counter()
    pos = 0
    while len(closed) < len(socks) and time.monotonic() - start < bound:
        for i, sock in enumerate(socks):
            if i in closed:
                continue
            if _tcp_state(sock) != TCP_ESTABLISHED:
                closed[i] = time.monotonic() - start
                try:
                    data = sock.recv(200)
                except OSError as exc:
                    data = exc.__class__.__name__.encode()
                answers[data.split(b"\r\n", 1)[0].decode("latin-1") or "(no answer)"] += 1
                continue
            with contextlib.suppress(OSError):
                sock.send(head[pos : pos + 1])
        pos += 1
        await asyncio.sleep(1.0)
    for sock in socks:
        sock.close()
    times = sorted(closed.values())
    return {
        "connections": len(socks),
        "let_go": len(closed),
        "median_s": round(statistics.median(times), 1) if times else None,
        "max_s": round(times[-1], 1) if times else None,
        "answers": dict(answers),
    }


async def abuse_pipeline(soak: Soak, bound: float) -> dict[str, Any]:
    """``--pipeline`` pipelined ``GET /hello`` in one burst, then RST: the server should stop working for
    the gone client; its CPU over the next seconds is measured."""
    loop = soak.loop
    sock = await _open(soak)
    burst = request("GET", "/hello", soak.port) * soak.args.pipeline
    pid = soak.server_pid
    cpu0 = cpu_seconds(pid)
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await asyncio.wait_for(loop.sock_sendall(sock, burst), min(bound, 10))
    _rst_close(sock)
    t0 = time.monotonic()
    await asyncio.sleep(min(bound, 5.0))
    try:
        cpu = cpu_seconds(pid) - cpu0
    except OSError:
        cpu = math.nan
    return {
        "requests": soak.args.pipeline,
        "burst_kib": len(burst) // 1024,
        "server_cpu_s": round(cpu, 2),
        "over_s": round(time.monotonic() - t0, 1),
    }


async def abuse_huge_post(soak: Soak, bound: float) -> dict[str, Any]:
    """``POST /echo`` declaring 16 MiB, 2 MiB sent, then nothing: how long until the server lets go (the
    body timeout)."""
    loop = soak.loop
    sock = await _open(soak)
    head = (
        f"POST /echo HTTP/1.1\r\nHost: {HOST}:{soak.port}\r\nContent-Length: {16 * 2**20}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    try:
        await asyncio.wait_for(loop.sock_sendall(sock, head + b"\0" * (2 * 2**20)), 10)
    except (OSError, asyncio.TimeoutError) as exc:
        sock.close()
        return {"outcome": f"send failed: {exc.__class__.__name__}"}
    seconds = await _watch_close(soak, sock, bound)
    try:
        first = sock.recv(200).split(b"\r\n", 1)[0].decode("latin-1") if seconds is not None else ""
    except OSError as exc:
        first = exc.__class__.__name__
    sock.close()
    return {"let_go_after_s": None if seconds is None else round(seconds, 1), "answer": first or None}


async def abuse_echo_no_read(soak: Soak, bound: float) -> dict[str, Any]:
    """``POST /echo`` of 8 MiB whose answer is never read (a 64 KiB receive buffer): how long until the
    server gives up on the write (the send timeout)."""
    loop = soak.loop
    sock = await _open(soak, rcvbuf=64 * 1024)
    body = b"e" * (8 * 2**20)
    head = f"POST /echo HTTP/1.1\r\nHost: {HOST}:{soak.port}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    rss0 = _server_rss_kib(soak.server_pid)
    try:
        await asyncio.wait_for(loop.sock_sendall(sock, head + body), 20)
    except (OSError, asyncio.TimeoutError) as exc:
        sock.close()
        return {"outcome": f"send failed: {exc.__class__.__name__}"}
    await asyncio.sleep(0.5)
    rss1 = _server_rss_kib(soak.server_pid)
    seconds = await _watch_close(soak, sock, bound)
    _rst_close(sock)
    return {
        "let_go_after_s": None if seconds is None else round(seconds, 1),
        "server_rss_growth_mib": round(((rss1 or 0) - (rss0 or 0)) / 1024, 1),
    }


def _client_hello() -> bytes:
    """A real TLS ClientHello, from the ssl module over memory BIOs."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def abuse_tls_hello(soak: Soak, bound: float) -> dict[str, Any]:
    """``--tls`` TLS ClientHellos sent to the plaintext port: how fast is each turned away, and how."""
    loop = soak.loop
    hello = _client_hello()
    times: list[float] = []
    answers: Counter[str] = Counter()
    for _ in range(soak.args.tls):
        try:
            sock = await _open(soak)
        except (OSError, asyncio.TimeoutError):
            answers["connect failed"] += 1
            continue
        start = time.monotonic()
        await loop.sock_sendall(sock, hello)
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 200), bound)
            times.append(time.monotonic() - start)
            answers[data.split(b"\r\n", 1)[0].decode("latin-1") or "(closed, no answer)"] += 1
        except asyncio.TimeoutError:
            answers[f"(nothing after {bound:g} s)"] += 1
        except OSError as exc:
            times.append(time.monotonic() - start)
            answers[exc.__class__.__name__] += 1
        sock.close()
    return {
        "hellos": soak.args.tls,
        "max_s": round(max(times), 2) if times else None,
        "answers": dict(answers),
    }


#: Abuse patterns: (name, function, bound in seconds, when, as fractions of the soak).
ABUSE = (
    ("ping flood", abuse_ping_flood, 10.0, (0.08, 0.58)),
    ("slowloris", abuse_slowloris, 30.0, (0.12, 0.62)),
    ("pipelined burst + RST", abuse_pipeline, 5.0, (0.16, 0.66)),
    ("huge POST, stalled", abuse_huge_post, 45.0, (0.20, 0.70)),
    ("echo never read", abuse_echo_no_read, 45.0, (0.24, 0.74)),
    ("TLS ClientHello", abuse_tls_hello, 15.0, (0.28, 0.78)),
)


async def run_abuse(soak: Soak, start: float, until: float) -> None:
    """Run each pattern at its times (monotonic ``start`` + fraction of the soak), each bounded by its own
    limit and by the end of the soak (``until``)."""
    plan = sorted(
        (start + frac * soak.args.seconds, name, fn, bound)
        for name, fn, bound, fracs in ABUSE
        for frac in fracs
    )
    tasks = []

    async def one(at: float, name: str, fn: Any, bound: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        left = until - time.monotonic()
        if left < 2:
            soak.abuse.append({"pattern": name, "t": round(soak.t(), 1), "outcome": "skipped (run over)"})
            return
        gen, t = soak.gen, soak.t()
        record: dict[str, Any] = {"pattern": name, "t": round(t, 1)}
        if left - 1 < bound:
            record["cut_to_s"] = round(left - 1, 1)  # the run ends before the pattern's own bound
        try:
            record.update(await asyncio.wait_for(fn(soak, min(bound, left - 1)), min(bound, left - 1) + 25))
        except Exception as exc:  # noqa: BLE001 (an abuse that breaks is recorded, not fatal)
            record["outcome"] = f"error: {exc!r}"
        record["end"] = round(soak.t(), 1)
        if soak.gen != gen:
            record["note"] = "overlapped the restart"
        soak.abuse.append(record)

    for at, name, fn, bound in plan:
        tasks.append(soak.loop.create_task(one(at, name, fn, bound)))
    await asyncio.gather(*tasks)


# --------------------------------------------------------------------------------- server processes


class ServerProc:
    """The soak server process(es): start, restart, stop; stderr kept in a log file."""

    def __init__(self, args: argparse.Namespace, port: int, workdir: Path) -> None:
        self.args = args
        self.port = port
        self.workdir = workdir
        self.runs = 0
        self.log_path = workdir / "server.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.proc: subprocess.Popen[bytes] | None = None
        self.old: list[subprocess.Popen[bytes]] = []

    @property
    def lag_file(self) -> Path:
        """The current run's lag file (each run has its own: the old one drains while the new one runs)."""
        return self.workdir / f"lag-{self.runs}.txt"

    def start(self) -> subprocess.Popen[bytes]:
        self.runs += 1
        argv = [
            sys.executable,
            str(HERE / "soak_server.py"),
            str(self.port),
            "--loop",
            self.args.loop,
            "--max-connections",
            str(self.args.max_connections),
            "--lag-file",
            str(self.lag_file),
            "--root",
            str(self.args.rawrt),
        ]
        self.proc = subprocess.Popen(pinned(SERVER_CPU, argv), stdout=self.log, stderr=self.log)
        return self.proc

    @property
    def pid(self) -> int:
        assert self.proc is not None
        # Under taskset, the Popen's pid is the server itself (taskset execs it).
        return self.proc.pid

    def stop(
        self, proc: subprocess.Popen[bytes], timeout: float = 30.0, signalled: bool = False
    ) -> float | None:
        """SIGTERM (unless ``signalled`` already: a second one would cut the graceful shutdown short) and
        wait for the exit: the seconds it took (None: killed after ``timeout``)."""
        start = time.monotonic()
        if proc.poll() is None and not signalled:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
            return time.monotonic() - start
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None

    def errors(self) -> dict[str, int]:
        """The server's ERROR/CRITICAL log records, counted by message and exception (the last line of a
        traceback)."""
        found: Counter[str] = Counter()
        record: str | None = None
        for line in self.log_path.read_text("utf-8", "replace").splitlines() + ["2 end"]:
            starts = line[:1].isdigit()
            if starts and record is not None:
                found[record] += 1
                record = None
            if starts and (" ERROR " in line or " CRITICAL " in line):
                # "date time logger LEVEL message": the message without the peer's port.
                message = line.split(" ", 4)[-1]
                record = message.split(" from ('127.0.0.1'")[0]
                record = re.sub(r" at 0x[0-9a-f]+| 0x[0-9a-f]+", "", record)
            elif record is not None and line and not line.startswith((" ", "Traceback")):
                record = record.split(" | ")[0] + " | " + re.sub(r" 0x[0-9a-f]+", "", line.strip())
        return dict(found)


async def _refused(port: int, bound: float) -> float | None:
    """Seconds until a connect to ``port`` is refused (nobody listens), polled every 20 ms."""
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    while time.monotonic() - start < bound:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), 1)
        except ConnectionRefusedError:
            return time.monotonic() - start
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            sock.close()
        await asyncio.sleep(0.02)
    return None


async def _listening(port: int, bound: float) -> float | None:
    """Seconds until a connect to ``port`` succeeds, polled every 20 ms (None: not within ``bound``)."""
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    while time.monotonic() - start < bound:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), 1)
            return time.monotonic() - start
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            sock.close()
        await asyncio.sleep(0.02)
    return None


async def restart(soak: Soak, server: ServerProc) -> None:
    """The graceful restart: SIGTERM; once the old server stopped listening, label the next run and
    start the new server on the same port; the old one drains in the background."""
    old = server.proc
    assert old is not None
    t_term = soak.t()
    mark: dict[str, Any] = {"what": "restart", "t": round(t_term, 2)}
    soak.marks.append(mark)
    soak.terminated.add(soak.gen)
    old.send_signal(signal.SIGTERM)
    closed = await _refused(soak.port, 10)
    mark["listener_closed_after_s"] = None if closed is None else round(closed, 3)
    # Connections made from now on reach the new server: the publisher labels them with the new run.
    soak.gen += 1
    server.start()
    soak.server_pid = server.pid
    mark["listening_after_s"] = await _listening(soak.port, 15)
    if mark["listening_after_s"] is not None:
        mark["listening_after_s"] = round(soak.t() - t_term, 3)
    # In the background: the watch below starts at once.
    learning = asyncio.ensure_future(learn_origins(soak, soak.gen))
    waiting_from = soak.t()
    old_stopped = asyncio.ensure_future(asyncio.to_thread(server.stop, old, 60.0, True))
    # How long until every client has heard of the new run (a reset signal or one of its events), while
    # the old server drains (bounded by the soak's own end).
    while soak.t() - t_term < 60 and not soak.stopping:
        resumed = sum(1 for s in soak.subs if s.gen == soak.gen or s.reset_from is not None)
        if resumed >= 0.99 * len(soak.subs) and "p99_resumed_after_s" not in mark:
            mark["p99_resumed_after_s"] = round(soak.t() - t_term, 2)
        if resumed == len(soak.subs):
            mark["all_resumed_after_s"] = round(soak.t() - t_term, 2)
            break
        await asyncio.sleep(0.1)
    shutdown = await old_stopped
    await learning
    # From the SIGTERM to the exit: stop() measured the exit from when it started waiting. (Not the time
    # this line runs: the watch above can outlast the exit by up to its 60 s bound, which the first soak
    # reported as a 60 s shutdown.)
    mark["old_shutdown_s"] = None if shutdown is None else round(waiting_from - t_term + shutdown, 2)


# ------------------------------------------------------------------------------------------- sampler


class LagReader:
    """Reads the lines ``soak_server.py`` appends to the lag file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.last_line: float | None = None

    def read(self) -> float | None:
        """The worst lag (seconds) of the lines appended since the last call. With no new line, a loop
        that has not written for over 1.5 s is stalled right now: that stall is the lag (None: no data)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return None
        end = data.rfind(b"\n") + 1
        self.offset += end
        worst: float | None = None
        for line in data[:end].splitlines():
            parts = line.split()
            if len(parts) >= 2:
                self.last_line = float(parts[0])
                worst = max(worst or 0.0, float(parts[1]))
        if worst is None and self.last_line is not None:
            stalled = time.monotonic() - self.last_line - 1.0
            if stalled > 0.5:
                return stalled
        return worst


async def sampler(soak: Soak, server: ServerProc, until: float, samples: list[dict[str, Any]]) -> None:
    """One sample a second until ``until`` (monotonic), on an absolute schedule."""
    lag = LagReader(server.lag_file)
    start = time.monotonic()
    k = 0
    cpu_pid, cpu_last = soak.server_pid, cpu_seconds(soak.server_pid)
    own_last = sum(os.times()[:2])
    while time.monotonic() < until:
        k += 1
        if lag.path != server.lag_file:
            lag = LagReader(server.lag_file)
        target = start + k
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        client_lag = time.monotonic() - target
        pid = soak.server_pid
        sample: dict[str, Any] = {"t": round(soak.t(), 2), "run": soak.gen}
        sample["rss_mib"] = None if (rss := _server_rss_kib(pid)) is None else round(rss / 1024, 1)
        sample["fds"] = _fd_count(pid)
        worst = lag.read()
        sample["loop_lag_ms"] = None if worst is None else round(1000 * worst, 2)
        hello = soak.hello_ms
        if soak.hello_started is not None and time.monotonic() - soak.hello_started > 0.5:
            hello = 1000 * (time.monotonic() - soak.hello_started)  # still waiting: at least that long
        sample["hello_ms"] = None if hello is None else round(hello, 2)
        try:
            cpu_now = cpu_seconds(pid)
            if pid == cpu_pid:
                sample["server_cpu_pct"] = round(100 * (cpu_now - cpu_last), 1)
            cpu_pid, cpu_last = pid, cpu_now
        except OSError:
            pass
        own = sum(os.times()[:2])
        sample["client_cpu_pct"] = round(100 * (own - own_last), 1)
        own_last = own
        sample["client_lag_ms"] = round(1000 * client_lag, 1)
        total_delivered = 0
        for kind, st in soak.stats.items():
            lat = sorted(st.latencies)
            st.latencies = []
            total_delivered += len(lat)
            sample[f"{kind}_n"] = len(lat)
            sample[f"{kind}_p50_ms"] = round(1000 * percentile(lat, 0.5), 2) if lat else None
            sample[f"{kind}_p99_ms"] = round(1000 * percentile(lat, 0.99), 2) if lat else None
        sample["deliveries"] = total_delivered
        sample["connected"] = sum(1 for s in soak.subs if s.proto is not None)
        sample["lost"] = sum(st.gaps + st.unsignalled for st in soak.stats.values())
        sample["duplicates"] = sum(st.duplicates for st in soak.stats.values())
        sample["honest_resets"] = sum(st.resets for st in soak.stats.values())
        sample["published"] = soak.published
        samples.append(sample)
        if soak.args.verbose or k % 10 == 0:
            p99 = " ".join(f"{kind} {sample[f'{kind}_p99_ms']}" for kind in KINDS)
            print(
                f"t={sample['t']:6.1f} run {soak.gen} RSS {sample['rss_mib']} MiB fds {sample['fds']} "
                f"lag {sample['loop_lag_ms']} ms hello {sample['hello_ms']} ms p99 [{p99}] "
                f"connected {sample['connected']} lost {sample['lost']} dup {sample['duplicates']} "
                f"resets {sample['honest_resets']} client CPU {sample['client_cpu_pct']}%",
                flush=True,
            )


# ------------------------------------------------------------------------------------------- the run


async def soak_run(args: argparse.Namespace, port: int, server: ServerProc) -> dict[str, Any]:
    soak = Soak(args, port)
    soak.server_pid = server.pid
    samples: list[dict[str, Any]] = []
    channels = [f"soak-{c}" for c in range(args.channels)]
    weights = dict(part.split("=") for part in args.mix.split(","))
    total_weight = sum(float(w) for w in weights.values())
    for kind in KINDS:
        share = round(args.clients * float(weights.get(kind, 0)) / total_weight)
        for _ in range(share):
            soak.subs.append(Sub(soak, kind, channels[len(soak.subs) % len(channels)]))
    soak.rng.shuffle(soak.subs)

    await learn_origins(soak, soak.gen)
    ramp_end = time.monotonic() + args.ramp_timeout
    bound = args.ramp_timeout + args.seconds + _drain_seconds(args) + 120
    sampling = asyncio.ensure_future(sampler(soak, server, time.monotonic() + bound, samples))
    # The ramp: at most RAMP_CONCURRENCY connects waiting to be ready.
    started = 0
    while time.monotonic() < ramp_end and soak.ready < len(soak.subs):
        while started < len(soak.subs) and started - soak.ready < RAMP_CONCURRENCY:
            soak.subs[started].connect()
            started += 1
        await asyncio.sleep(0.01)
    soak.marks.append({"what": "ramp done", "t": round(soak.t(), 2), "ready": soak.ready})
    print(f"ramp: {soak.ready} of {len(soak.subs)} clients ready at t={soak.t():.1f} s", flush=True)
    await asyncio.sleep(1.0)  # held long polls and fresh streams reach the hub

    soak_start = time.monotonic()
    soak_end = soak_start + args.seconds
    soak.marks.append({"what": "soak start", "t": round(soak.t(), 2)})
    soak.churning = args.churn > 0
    tasks = [
        asyncio.ensure_future(publisher(soak, soak_end)),
        asyncio.ensure_future(hello_probe(soak, soak_end + _drain_seconds(args))),
        asyncio.ensure_future(churn(soak, soak_end)),
    ]
    if not args.no_abuse:
        tasks.append(asyncio.ensure_future(run_abuse(soak, soak_start, soak_end)))
    restarting = None
    if not args.no_restart:
        await asyncio.sleep(args.seconds / 2)
        print(f"restart at t={soak.t():.1f} s", flush=True)
        restarting = asyncio.ensure_future(restart(soak, server))
    await asyncio.sleep(max(0.0, soak_end - time.monotonic()))

    # The drain: no more churn or publishing; paused readers resume; everybody catches up.
    soak.churning = False
    soak.marks.append({"what": "drain", "t": round(soak.t(), 2)})
    for sub in soak.subs:
        if sub.proto is not None:
            sub.proto.unpause()
    drain_end = time.monotonic() + _drain_seconds(args)
    await asyncio.wait(tasks[:1] + tasks[2:], timeout=max(0.0, drain_end - time.monotonic()))
    while time.monotonic() < drain_end and any(s.missing() for s in soak.subs):
        await asyncio.sleep(0.2)
    drained_after = soak.t()
    if restarting is not None:
        await asyncio.wait([restarting], timeout=max(0.0, drain_end + 30 - time.monotonic()))
    behind = [s for s in soak.subs if s.missing()]
    for sub in behind:
        sub.stats.tail += sub.missing()
        print(sub.story(), flush=True)
    soak.marks.append({"what": "end", "t": round(drained_after, 2), "behind": len(behind)})
    if behind:
        soak.notes[f"clients still behind at the end of the drain ({_drain_seconds(args):g} s)"] = len(behind)
    soak.stopping = True
    for task in tasks:
        task.cancel()
    sampling.cancel()
    for outcome in await asyncio.gather(*tasks, sampling, return_exceptions=True):
        if isinstance(outcome, Exception):
            # A load generator's own failure must not pass for a quiet server.
            soak.notes[f"the load generator failed: {outcome!r}"] += 1
            print(f"load generator task failed: {outcome!r}", file=sys.stderr)
    if restarting is not None and not restarting.done():
        restarting.cancel()
        await asyncio.gather(restarting, return_exceptions=True)
    for sub in soak.subs:
        if sub.proto is not None:
            sub.proto.abort()
    await asyncio.sleep(0.2)
    return {
        "soak": soak,
        "samples": samples,
    }


# ---------------------------------------------------------------------------------------- reporting


def _series(samples: list[dict[str, Any]], key: str) -> list[float]:
    return [s[key] for s in samples if s.get(key) is not None]


def summarize(soak: Soak, samples: list[dict[str, Any]], final_shutdown: float | None) -> dict[str, Any]:
    st = soak.stats
    soak_samples = [s for s in samples if s["t"] >= _mark(soak, "soak start")]
    rss = _series(soak_samples, "rss_mib")
    fds = _series(soak_samples, "fds")
    lag = _series(soak_samples, "loop_lag_ms")
    hello = _series(soak_samples, "hello_ms")
    per_kind = {}
    for kind in KINDS:
        p99s = _series(soak_samples, f"{kind}_p99_ms")
        per_kind[kind] = {
            "clients": sum(1 for s in soak.subs if s.kind == kind),
            "delivered": st[kind].delivered,
            "lost": st[kind].lost,
            "lost_gaps": st[kind].gaps,
            "lost_unsignalled": st[kind].unsignalled,
            "lost_tail": st[kind].tail,
            "duplicates": st[kind].duplicates,
            "honest_resets": st[kind].resets,
            "skipped_under_reset": st[kind].skipped_under_reset,
            "connects": st[kind].connects,
            "failed_connects": st[kind].failed_connects,
            "p99_ms_median": round(statistics.median(p99s), 1) if p99s else None,
            "p99_ms_max": round(max(p99s), 1) if p99s else None,
        }
    return {
        "clients": len(soak.subs),
        "published": soak.published,
        "publish_failures": soak.publish_failures,
        "per_kind": per_kind,
        "rss_mib": _stats(rss),
        "rss_first_last_mib": [rss[0], rss[-1]] if rss else None,
        "fds": _stats(fds),
        "loop_lag_ms": _stats(lag),
        "hello_ms": _stats(hello),
        "client_cpu_pct_median": statistics.median(_series(soak_samples, "client_cpu_pct") or [0]),
        "server_cpu_pct_median": statistics.median(_series(soak_samples, "server_cpu_pct") or [0]),
        "churn": dict(soak.actions),
        "close_codes": {str(k): v for k, v in soak.close_codes.items()},
        "statuses": dict(soak.statuses),
        "notes": dict(soak.notes),
        "abuse": soak.abuse,
        "marks": soak.marks,
        "final_shutdown_s": None if final_shutdown is None else round(final_shutdown, 2),
    }


def _mark(soak: Soak, what: str) -> float:
    for mark in soak.marks:
        if mark["what"] == what:
            return float(mark["t"])
    return 0.0


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": round(statistics.median(ordered), 2),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
    }


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| transport | clients | delivered | lost | duplicates | honest resets (events skipped) "
        "| connects (failed) | p99 latency, median of seconds (worst second) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = Counter[str]()
    for kind in KINDS:
        k = summary["per_kind"][kind]
        for key in ("clients", "delivered", "lost", "duplicates", "honest_resets", "skipped_under_reset"):
            total[key] += k[key]
        lost = f"{k['lost']:,}"
        if k["lost"]:
            lost += f" (gaps {k['lost_gaps']}, unsignalled {k['lost_unsignalled']}, tail {k['lost_tail']})"
        lines.append(
            f"| {LABELS[kind]} | {k['clients']:,} | {k['delivered']:,} | {lost} | {k['duplicates']:,} "
            f"| {k['honest_resets']:,} ({k['skipped_under_reset']:,}) "
            f"| {k['connects']:,} ({k['failed_connects']:,}) "
            f"| {_ms(k['p99_ms_median'])} ({_ms(k['p99_ms_max'])}) |"
        )
    lines.append(
        f"| **all** | {total['clients']:,} | {total['delivered']:,} | **{total['lost']:,}** "
        f"| **{total['duplicates']:,}** | {total['honest_resets']:,} ({total['skipped_under_reset']:,}) | | |"
    )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


def _fmt_stats(s: dict[str, float] | None, unit: str) -> str:
    if not s:
        return "–"
    return f"median {s['median']:g}{unit}, p99 {s['p99']:g}{unit}, max {s['max']:g}{unit}"


def resources_table(summary: dict[str, Any]) -> str:
    marks = {m["what"]: m for m in summary["marks"]}
    restart = marks.get("restart", {})
    first_last = summary["rss_first_last_mib"]
    rows = [
        ("server RSS (MiB, per second)", _fmt_stats(summary["rss_mib"], "")),
        (
            "server RSS, first and last second",
            f"{first_last[0]:g} → {first_last[1]:g} MiB" if first_last else "–",
        ),
        ("server open fds", _fmt_stats(summary["fds"], "")),
        ("server event-loop lag (worst per second)", _fmt_stats(summary["loop_lag_ms"], " ms")),
        ("GET /hello on a probe connection", _fmt_stats(summary["hello_ms"], " ms")),
        (
            "server CPU / client CPU (median second)",
            f"{summary['server_cpu_pct_median']:g}% / {summary['client_cpu_pct_median']:g}% of a core",
        ),
        (
            "events published (failed publishes, retried)",
            f"{summary['published']:,} ({summary['publish_failures']:,})",
        ),
        (
            "restart: old listener closed / new one listening",
            f"{restart.get('listener_closed_after_s')} s / {restart.get('listening_after_s')} s after SIGTERM"
            if restart
            else "–",
        ),
        (
            "restart: old server's graceful shutdown (SIGTERM to exit)",
            f"{restart.get('old_shutdown_s')} s" if restart else "–",
        ),
        (
            "restart: 99% / every client resumed on the new run (reset signal or new event)",
            f"{restart.get('p99_resumed_after_s')} s / {restart.get('all_resumed_after_s')} s after SIGTERM"
            if restart
            else "–",
        ),
        ("final shutdown (SIGTERM to exit)", f"{summary['final_shutdown_s']} s"),
        ("churn actions", ", ".join(f"{k} {v}" for k, v in sorted(summary["churn"].items())) or "–"),
        (
            "WebSocket close codes received",
            ", ".join(f"{k}: {v}" for k, v in sorted(summary["close_codes"].items())) or "–",
        ),
        (
            "HTTP errors seen by clients",
            ", ".join(f"{k}: {v}" for k, v in sorted(summary["statuses"].items())) or "none",
        ),
    ]
    lines = ["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def abuse_table(summary: dict[str, Any]) -> str:
    lines = ["| t (s) | pattern | outcome |", "|---|---|---|"]
    for record in sorted(summary["abuse"], key=lambda r: r["t"]):
        rest = {k: v for k, v in record.items() if k not in ("pattern", "t")}
        text = ", ".join(f"{k}: {v}" for k, v in rest.items())
        lines.append(f"| {record['t']:g} | {record['pattern']} | {text} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the chart

_COLORS = {"ws": "#2b6cb0", "sse": "#38a169", "longpoll": "#d69e2e", "poll": "#805ad5"}


def chart(samples: list[dict[str, Any]], summary: dict[str, Any], title: str) -> str:
    """A hand-written SVG: four panels sharing the time axis (RSS, fds, loop lag, p99 latency)."""
    width, left, right = 960, 70, 20
    panel_h, gap, top = 130, 42, 50
    plot_w = width - left - right
    ts = [s["t"] for s in samples]
    t_lo, t_hi = (min(ts), max(ts)) if ts else (0.0, 1.0)
    t_hi = max(t_hi, t_lo + 1)

    def x(t: float) -> float:
        return left + plot_w * (t - t_lo) / (t_hi - t_lo)

    panels: list[tuple[str, list[tuple[str, str, str]], bool]] = [
        ("server RSS (MiB)", [("rss_mib", "#2b6cb0", "RSS")], False),
        ("server open file descriptors", [("fds", "#2f855a", "fds")], False),
        (
            "event-loop lag (ms, worst per second) and GET /hello (ms)",
            [("loop_lag_ms", "#c53030", "server loop lag"), ("hello_ms", "#718096", "/hello latency")],
            True,
        ),
        (
            "p99 publish-to-receive latency per second (ms)",
            [(f"{k}_p99_ms", _COLORS[k], LABELS[k]) for k in KINDS],
            True,
        ),
    ]
    height = top + len(panels) * (panel_h + gap) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>',
    ]
    marks = [m for m in summary["marks"] if m["what"] in ("soak start", "restart", "drain")]
    for i, (name, series, log) in enumerate(panels):
        y0 = top + i * (panel_h + gap)
        out.append(f'<text x="{left}" y="{y0 - 8}" font-weight="bold">{name}</text>')
        values = [s[key] for key, _, _ in series for s in samples if s.get(key) is not None]
        positive = [v for v in values if v > 0]
        if log and positive:
            lo = 10 ** math.floor(math.log10(min(positive)))
            hi = 10 ** math.ceil(math.log10(max(positive) * 1.01))
            hi = max(hi, lo * 10)

            def y(v: float, y0: float = y0, lo: float = lo, hi: float = hi) -> float:
                v = max(v, lo)
                return (
                    y0
                    + panel_h
                    - panel_h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
                )

            ticks = [10.0**k for k in range(round(math.log10(lo)), round(math.log10(hi)) + 1)]
        else:
            hi = max(values, default=1.0) * 1.1 or 1.0

            def y(v: float, y0: float = y0, hi: float = hi) -> float:
                return y0 + panel_h - panel_h * v / hi

            step = 10 ** math.floor(math.log10(hi / 2)) if hi > 0 else 1
            for factor in (1, 2, 5, 10):  # at most about 6 grid lines
                if hi / (step * factor) <= 6:
                    break
            step *= factor
            ticks = [k * step for k in range(int(hi / step) + 1)]
        out.append(
            f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#cbd5e0"/>'
        )
        for tick in ticks:
            ty = y(tick)
            out.append(
                f'<line x1="{left}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}" stroke="#edf2f7"/>'
            )
            out.append(f'<text x="{left - 4}" y="{ty + 4:.1f}" text-anchor="end" fill="#555">{tick:g}</text>')
        for mark in marks:
            mx = x(mark["t"])
            color = "#e53e3e" if mark["what"] == "restart" else "#a0aec0"
            out.append(
                f'<line x1="{mx:.1f}" y1="{y0}" x2="{mx:.1f}" y2="{y0 + panel_h}" stroke="{color}" '
                'stroke-dasharray="4 3"/>'
            )
            if i == 0:
                out.append(f'<text x="{mx + 3:.1f}" y="{y0 + 11}" fill="{color}">{mark["what"]}</text>')
        if i == 0:
            for record in summary["abuse"]:
                ax = x(record["t"])
                out.append(
                    f'<path d="M{ax:.1f},{y0 + panel_h} l-3,6 h6 z" fill="#dd6b20">'
                    f"<title>{record['pattern']} at {record['t']} s</title></path>"
                )
        for key, color, label in series:
            points = [(s["t"], s[key]) for s in samples if s.get(key) is not None]
            if log:
                points = [(t, v) for t, v in points if v > 0]
            if points:
                path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
                out.append(
                    f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.3">'
                    f"<title>{label}</title></polyline>"
                )
        lx = left + plot_w - 10
        for j, (_, color, label) in enumerate(reversed(series)):
            out.append(
                f'<text x="{lx}" y="{y0 - 8}" text-anchor="end" fill="{color}">{label}</text>'
                if j == 0
                else f'<text x="{lx - 110 * j}" y="{y0 - 8}" text-anchor="end" fill="{color}">{label}</text>'
            )
        # The time axis under each panel.
        step = 10 ** math.floor(math.log10(max(1.0, (t_hi - t_lo) / 4)))
        tick_t = math.ceil(t_lo / step) * step
        while tick_t <= t_hi:
            out.append(
                f'<text x="{x(tick_t):.1f}" y="{y0 + panel_h + 13}" text-anchor="middle" fill="#555">'
                f"{tick_t:g}</text>"
            )
            tick_t += step
    out.append(
        f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle" fill="#555">seconds since start '
        "(orange triangles: abuse patterns; red dashes: the graceful restart)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--mix", default="ws=4,sse=4,longpoll=1,poll=1", help="weights per transport")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rate", type=float, default=16.0, help="events published per second (all channels)")
    parser.add_argument("--payload", type=int, default=64, help="event data size in bytes (at least ~24)")
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--longpoll-timeout", type=float, default=20.0)
    parser.add_argument("--churn", type=float, default=0.005, help="fraction of clients churned per second")
    parser.add_argument("--flood-mib", type=int, default=16, help="ping flood cap (MiB)")
    parser.add_argument("--slowloris", type=int, default=20, help="slowloris connections per round")
    parser.add_argument("--pipeline", type=int, default=20_000, help="pipelined requests per burst")
    parser.add_argument("--tls", type=int, default=3, help="ClientHellos per round")
    parser.add_argument("--no-abuse", action="store_true")
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--ramp-timeout", type=float, default=120.0)
    parser.add_argument("--max-connections", type=int, default=19_000, help="the server's cap")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument(
        "--rawrt", type=Path, default=ROOT, help="the checkout whose rawrt is served (default: this one)"
    )
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--json", type=Path, help="where to write the samples (default: a temp file)")
    parser.add_argument("--svg", type=Path, help="where to draw the chart (default: next to the JSON)")
    parser.add_argument("--verbose", action="store_true", help="print every sample (default: every 10th)")
    parser.add_argument(
        "--write", action="store_true", help="write docs/benchmarks.md (soak) and docs/soak.svg"
    )
    args = parser.parse_args()

    raise_nofile()
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if args.clients + 200 > soft:
        parser.error(
            f"--clients {args.clients} needs more file descriptors than RLIMIT_NOFILE allows ({soft})"
        )
    workdir = Path(tempfile.mkdtemp(prefix="rawrt-soak-"))
    json_path = args.json or workdir / "soak.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    svg_path = CHART if args.write else (args.svg or json_path.with_suffix(".svg"))
    port = free_port()
    server = ServerProc(args, port, workdir)
    server.start()
    wait_port(port)
    final_shutdown: float | None = None
    load_before = os.getloadavg()[0]
    try:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {int(CLIENT_CPU)})
        if args.loop == "uvloop":
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        result = asyncio.run(soak_run(args, port, server))
    finally:
        if server.proc is not None:
            final_shutdown = server.stop(server.proc)
        server.log.close()
    load_after = os.getloadavg()[0]
    soak, samples = result["soak"], result["samples"]
    summary = summarize(soak, samples, final_shutdown)
    summary["server_log_errors"] = server.errors()
    summary["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    summary["machine"] = machine()
    summary["load"] = [load_before, load_after]
    json_path.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1), "utf-8")
    title = f"rawrt soak: {len(soak.subs):,} mixed clients, {args.seconds:g} s, churn, abuse, a restart"
    svg_path.write_text(chart(samples, summary, title), "utf-8")

    events_text = table(summary)
    resources = resources_table(summary)
    abuse = abuse_table(summary)
    print()
    print(events_text)
    print()
    print(resources)
    print()
    print(abuse)
    if summary["notes"]:
        print("\nnotes:")
        for note, count in summary["notes"].items():
            print(f"  {count:6d}  {note}")
    if summary["server_log_errors"]:
        print("\nserver log errors:")
        for line, count in summary["server_log_errors"].items():
            print(f"  {count:6d}  {line}")
    print(f"\nsamples: {json_path}\nchart: {svg_path}\nserver log: {server.log_path}")
    if args.write:
        notes = "\n".join(f"- {count:,} × {note}" for note, count in summary["notes"].items()) or "- none"
        errors = (
            "\n".join(f"- {count:,} × {line}" for line, count in summary["server_log_errors"].items())
            or "- none"
        )
        abuse_text = (
            "No abuse patterns (`--no-abuse`)."
            if args.no_abuse
            else f"Abuse, twice each: a ping flood ({args.flood_mib} MiB cap), {args.slowloris} slowloris "
            f"heads, {args.pipeline:,} pipelined requests then RST, a stalled 16 MiB POST, an 8 MiB echo "
            f"never read, {args.tls} TLS ClientHellos on the plaintext port."
        )
        restart_text = (
            "No restart (`--no-restart`)."
            if args.no_restart
            else "A graceful restart (SIGTERM, a new server on the same port) half-way: the in-memory hub "
            "starts its ids afresh (above the old run's), so resuming clients get a reset signal (\"honest "
            'resets"; the events they skip are not losses).'
        )
        write_section(
            "soak",
            f"""## Soak: {len(soak.subs):,} mixed connections for {args.seconds:g} s (`benchmarks/soak.py`)

rawrt's demo (`benchmarks/soak_server.py`, {args.loop}, `max_connections={args.max_connections}`) pinned
to core 0; every client, the publisher and the probes in one process on {args.loop}, pinned to core 1.
{len(soak.subs):,} subscribers (mix {args.mix}) over {args.channels} channels, each starting from cursor 0;
{args.rate:g} events/s published for {args.seconds:g} s ({args.payload} B each); short polls every
{args.poll_interval:g} s. Churn: {args.churn:.2%} of the clients per second get a reset (RST), a
half-close, a slow read (2 to 15 s) or a reconnect, and resume from their cursor. {abuse_text}
{restart_text} Lost = ids skipped with no reset signal + events still missing after the drain; latency
counts live deliveries (published after the connection was made, on a connection never paused). Machine:
{machine()}; 1-minute load average {load_before:.1f} before the run, {load_after:.1f} after.

{events_text}

{resources}

Abuse patterns (times in seconds since the start):

{abuse}

Notes (counted by the clients):

{notes}

ERROR records in the server's log:

{errors}

![soak: RSS, fds, loop lag and p99 latency over time](soak.svg)
""",
        )


if __name__ == "__main__":
    main()
