"""The Redis backend: each channel is a Redis stream, so every node (and every restart) shares one numbering.

``pip install '.[redis]'`` in rawrt's checkout (redis-py's asyncio client). docs/topics/hub-redis.md tells
the whole design; in short:

Ids. A channel's events are the entries of the stream ``rawrt:{C}``, and an event's id is its entry id
``<ms>-<seq>`` mapped to ``ms * 1024 + seq`` (:mod:`rawrt.hub.ids`): every node hands out the same id for
the same event, and Redis never reuses one, even after it lost its data (the ids come from its clock).
(The braces are a Redis Cluster hash tag: a channel's two keys land on one shard, as the scripts need.)

Publish is one ``XADD rawrt:{C} NOMKSTREAM MAXLEN ~ <hub_history_count> * d <data>``, and the id is
answered only once Redis answered it. The first publish on a channel (``NOMKSTREAM`` found no stream) runs
a script that creates the stream with an *origin*: one entry added and deleted at once, its id kept in
``rawrt:{C}:origin``. The origin is what a client's cursor 0 ("nothing yet") stands for, and it tells
apart a stream from one that replaced it: a Redis restarted without persistence starts the stream again
at a later origin, so every cursor from before it gets the reset signal, never a silent skip.

Reading. A node keeps a copy of each channel it serves in its :class:`~rawrt.hub.Hub` (the "cache"), so
replay and fan-out are the hub core's, unchanged. :meth:`RedisBackend.prepare` starts following a channel
with one script: ``XINFO STREAM`` and the newest ``hub_history_count`` entries (``XREVRANGE``), loaded with
:meth:`Hub.load`. From then on **one** ``XREAD BLOCK`` loop per node reads every followed channel's new
entries and hands each to :meth:`Hub.publish_at`, which fans it out locally: 10,000 local subscribers of a
channel cost one Redis read per batch. A cursor ahead of the copy (the client saw an event on another node
before this node's loop read it) is caught up with ``XRANGE key (<cursor's position>`` before the
transport reads, so it is never mistaken for a cursor from the future. A channel nobody here subscribed to
or polled for ``_LINGER`` seconds is no longer followed, and its copy is dropped.

Gaps. A cursor older than the copy gets the reset signal as in memory. The copy holds what the stream
holds (``MAXLEN ~`` trims to about the same count), except when the stream was trimmed, where the
copy's first event bounds it: a client exactly at the trimmed boundary then gets a reset it could have
been spared, never a silent gap.

Faults. Redis unreachable: :meth:`publish` raises :class:`~rawrt.errors.HubUnavailableError` (HTTP 503,
no id for an event that was not stored); subscribers stay connected; the loop reconnects with backoff
(0.1 s doubling to 5 s) and logs the outage once, and its end. Back, it re-reads each followed channel:
the entries after its position are fanned out (nothing acknowledged is lost if Redis kept them); if the
stream was replaced (new origin) or trimmed past its position, the copy is reloaded and its subscribers
overflowed, so each resumes and gets the reset signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from rawrt.errors import HubUnavailableError, InvalidEventError
from rawrt.limits import DEFAULT_LIMITS, Limits

from ..core import Event, Hub
from ..ids import SEQ_PER_MS, from_stream_id, start_id, to_stream_id

__all__ = ["RedisBackend"]

logger = logging.getLogger("rawrt.hub")

#: Seconds a channel stays followed after its last subscriber left or its last poll (a polling client
#: comes back every few seconds: following costs one XREAD key, re-following one script call).
_LINGER = 60.0
#: Milliseconds an XREAD blocks: a bound on how late a newly followed channel is seen if the wake-up
#: (CLIENT UNBLOCK) raced the XREAD being sent. Idle, a node sends one XREAD a second.
_BLOCK_MS = 1000
#: Entries one XREAD returns at most per stream: a burst is fanned out in batches of this size.
_READ_COUNT = 1000
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0

# Why Lua: the stream's state and its entries must be read at one instant, or an entry added between
# XINFO and XREVRANGE would be counted as a gap (or missed). A script runs atomically.
#
# FOLLOW: KEYS stream, origin key; ARGV count. Returns {exists, origin, last-generated-id, removed, tail,
# redis_time}, where removed counts the entries trimmed or deleted (the origin's own deletion included).
_FOLLOW = """
local t = redis.call('TIME')
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, '0-0', '0-0', 0, {}, t}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local f = {}
for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
local origin = redis.call('GET', KEYS[2]) or '0-0'
local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])
return {1, origin, f['last-generated-id'], f['entries-added'] - f['length'], tail, t}
"""
# CREATE: KEYS stream, origin key; ARGV maxlen, data. The first publish on a channel: make the stream with
# its origin (an entry added and deleted: the stream then exists, empty, and its ids start after it), then
# add the event. If another node created it in between, only the event is added.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local o = redis.call('XADD', KEYS[1], '*', 'o', '')
  redis.call('XDEL', KEYS[1], o)
  redis.call('SET', KEYS[2], o)
end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'd', ARGV[2])
"""


@dataclass
class _Followed:
    """A channel this node follows: where its loop reads from, and when a client last needed it."""

    position: int  # the id after which the loop reads (the copy's last id)
    origin: int | None  # the stream's origin; None while the stream did not exist (read once it does)
    used: float  # monotonic time of the last prepare()


@dataclass(frozen=True)
class _StreamState:
    exists: bool
    origin: int
    last_id: int
    base: int
    events: list[tuple[int, str]]


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _entries(raw: Sequence[Any]) -> list[tuple[int, str]]:
    """``[(id, data)]`` of stream entries as redis-py returns them, skipping what is not a rawrt event."""
    out = []
    for entry_id, fields in raw:
        event_id = from_stream_id(entry_id)
        # Field names are bytes (the clients do not decode replies). Looked up by their text, never with a
        # str key in a bytes-keyed dict: b"d" and "d" hash alike, so the lookup would compare bytes with
        # str (a BytesWarning, an error under python -bb).
        pairs = fields.items() if isinstance(fields, dict) else zip(fields[::2], fields[1::2], strict=False)
        data = next((value for name, value in pairs if _text(name) == "d"), None)
        if event_id is None or data is None:
            # Not from rawrt (another writer's entry, or an id past 1,023 in a millisecond, which rawrt's
            # publish deletes at once): it has no place in the numbering.
            logger.warning("ignoring stream entry %s: not a rawrt event", _text(entry_id))
            continue
        out.append((event_id, _text(data)))
    return out


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class RedisBackend:
    """A hub whose channels are Redis streams (module docstring).

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` or ``unix:///path?db=N``.
        limits: the local copy's limits (``hub_*``); ``hub_history_count`` is also the streams' ``MAXLEN ~``.
        hub: the local copy, by default a new :class:`Hub` with ``limits``.
    """

    def __init__(self, url: str, *, limits: Limits = DEFAULT_LIMITS, hub: Hub | None = None) -> None:
        self.url = _redact(url)
        self._raw_url = url
        self.limits = limits
        self.hub = hub if hub is not None else Hub(limits)
        self._followed: dict[str, _Followed] = {}
        self._following: dict[str, asyncio.Future[None]] = {}
        self._cmd: Redis | None = None
        self._reader: Redis | None = None
        self._reader_id: int | None = None
        self._connected_once = False  # the read loop connected before (so a new connection is a comeback)
        self._changed = asyncio.Event()  # the set of followed channels changed: the loop re-reads it
        self._tasks: list[asyncio.Task[None]] = []
        # The CLIENT UNBLOCK calls in flight: the loop keeps only weak references to tasks, so an
        # unreferenced one could be collected before it ran (asyncio.create_task's documentation).
        self._unblocks: set[asyncio.Task[None]] = set()
        self._down_since: float | None = None
        self._create: Callable[..., Awaitable[Any]] | None = None
        self._follow: Callable[..., Awaitable[Any]] | None = None
        #: Redis commands this node sent, by name (benchmarks: commands per publish and per delivery).
        self.commands: dict[str, int] = {}

    # --- lifecycle -------------------------------------------------------------------------------------

    def _client(self, **options: Any) -> Redis:
        # No retries. A retried XADD whose first try Redis applied (the reply lost with the connection)
        # would store the event twice; a retried XREAD on a new connection would hide that Redis restarted,
        # and the resync (which notices a stream that lost its data) would not run. An unreachable Redis
        # also fails fast (503) rather than after redis-py's default retries with backoff.
        return Redis.from_url(
            self._raw_url, socket_connect_timeout=2.0, retry=Retry(NoBackoff(), 0), **options
        )

    async def start(self) -> None:
        """Start the read loop. Does not wait for Redis: a node may start while Redis is down (503s)."""
        self._cmd = self._client(socket_timeout=5.0)
        self._create = self._cmd.register_script(_CREATE)
        self._follow = self._cmd.register_script(_FOLLOW)
        self._tasks = [
            asyncio.ensure_future(self._read_loop()),
            asyncio.ensure_future(self._sweep_loop()),
        ]

    async def close(self) -> None:
        """Stop the loops and close the connections."""
        tasks = [*self._tasks, *self._unblocks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for client in (self._cmd, self._reader):
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
        self._cmd = self._reader = None

    # --- outage bookkeeping: logged once each way --------------------------------------------------------

    def _down(self, exc: BaseException) -> HubUnavailableError:
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning("hub: Redis at %s is unreachable (%s); retrying with backoff", self.url, exc)
        return HubUnavailableError(f"the hub's Redis is unreachable ({exc})")

    def _up(self) -> None:
        if self._down_since is not None:
            down_for = time.monotonic() - self._down_since
            logger.warning("hub: Redis at %s is back after %.1f s", self.url, down_for)
            self._down_since = None

    def _count(self, name: str, n: int = 1) -> None:
        self.commands[name] = self.commands.get(name, 0) + n

    @staticmethod
    def _keys(channel: str) -> list[str]:
        return [f"rawrt:{{{channel}}}", f"rawrt:{{{channel}}}:origin"]

    # --- publishing ----------------------------------------------------------------------------------------

    async def publish(self, channel: str, data: str) -> Event:
        """``XADD`` the event; its id once Redis stored it. Local subscribers get it from the read loop.

        Raises:
            HubUnavailableError: Redis did not answer (the event may not have been stored: no id is given).
            InvalidEventError: ``data`` is not encodable as UTF-8.
        """
        if self._cmd is None or self._create is None:
            raise HubUnavailableError("the hub is not started")
        try:
            # Checked before Redis is asked: an event that cannot be encoded must not be stored.
            data_bytes = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEventError(f"event data is not encodable as UTF-8: {exc}") from None
        key, origin_key = self._keys(channel)
        maxlen = max(1, self.limits.hub_history_count)
        try:
            self._count("XADD")
            entry = await self._cmd.xadd(key, {"d": data}, maxlen=maxlen, approximate=True, nomkstream=True)
            if entry is None:
                self._count("EVALSHA")
                entry = await self._create(keys=[key, origin_key], args=[maxlen, data])
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        self._up()
        event_id = from_stream_id(entry)
        if event_id is None:
            # 1,024 entries in one millisecond on one stream (rawrt.hub.ids): unnumberable, so not kept.
            with contextlib.suppress(RedisError, OSError):
                await self._cmd.xdel(key, entry)
            raise HubUnavailableError(
                f"too many events on channel {channel!r} within one millisecond ({SEQ_PER_MS}): not stored"
            )
        return Event(channel, event_id, data, data_bytes)

    # --- reading -----------------------------------------------------------------------------------------

    async def prepare(self, channel: str, cursor: int | None) -> None:
        """Make the local copy of ``channel`` current for a reader at ``cursor`` (module docstring).

        Raises:
            HubUnavailableError: Redis did not answer.
        """
        followed = self._followed.get(channel)
        if followed is None or not self.hub.has_channel(channel):
            await self._start_following(channel)
            followed = self._followed[channel]
        followed.used = time.monotonic()
        if cursor is not None and cursor > self.hub.last_id(channel):
            await self._catch_up(channel, followed)

    async def _start_following(self, channel: str) -> None:
        # Concurrent first readers of a channel share one script call.
        pending = self._following.get(channel)
        if pending is None:
            pending = self._following[channel] = asyncio.ensure_future(self._load(channel))
            pending.add_done_callback(lambda _: self._following.pop(channel, None))
        await asyncio.shield(pending)

    async def _read_state(self, channel: str) -> _StreamState:
        if self._follow is None:
            raise HubUnavailableError("the hub is not started")
        count = max(1, self.limits.hub_history_count)
        try:
            self._count("EVALSHA")
            reply = await self._follow(keys=self._keys(channel), args=[count])
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        self._up()
        exists, origin_raw, last_raw, removed, tail, now = reply
        if not exists:
            # No stream: nothing was ever published, or Redis lost it. Nothing before Redis's "now" can be
            # honoured; the stream a publish creates later starts after it.
            seconds, micros = int(now[0]), int(now[1])
            here = start_id(seconds * 1000 + micros // 1000)
            return _StreamState(False, here, here, here, [])
        origin = from_stream_id(origin_raw) or 0
        last_id = from_stream_id(last_raw) or 0
        events = _entries(tail)[::-1]
        removed = int(removed) - (1 if origin else 0)  # the origin's own deletion is not a lost event
        if events and (removed > 0 or len(tail) >= count):
            base = events[0][0] - 1  # trimmed, or more than the copy holds: the copy's first event bounds it
        elif events:
            base = origin
        else:
            base = last_id  # an empty stream: every event up to its last id is gone (or there were none)
        last_id = max(last_id, events[-1][0] if events else 0, base)
        return _StreamState(True, origin, last_id, base, events)

    async def _load(self, channel: str) -> None:
        state = await self._read_state(channel)
        self._load_state(channel, state)
        self._followed[channel] = _Followed(
            state.last_id, state.origin if state.exists else None, time.monotonic()
        )
        self._wake_loop()

    def _load_state(self, channel: str, state: _StreamState) -> None:
        self.hub.load(channel, state.events, base=state.base, origin=state.origin, last_id=state.last_id)

    async def _catch_up(self, channel: str, followed: _Followed) -> None:
        """Read what the loop has not yet: a client saw an event elsewhere that this copy lacks."""
        if self._cmd is None:
            raise HubUnavailableError("the hub is not started")
        key = self._keys(channel)[0]
        try:
            self._count("XRANGE")
            raw: Any = await self._cmd.xrange(
                key, min="(" + to_stream_id(self.hub.last_id(channel)), max="+", count=_READ_COUNT
            )
        except (RedisError, OSError) as exc:
            raise self._down(exc) from None
        self._up()
        self._apply(channel, followed, _entries(raw))

    def _apply(self, channel: str, followed: _Followed, events: list[tuple[int, str]]) -> None:
        for event_id, data in events:
            self.hub.publish_at(channel, event_id, data)
            if event_id > followed.position:
                followed.position = event_id

    # --- the loop: one XREAD for every followed channel ------------------------------------------------

    def _wake_loop(self) -> None:
        self._changed.set()
        if self._reader_id is not None and self._cmd is not None:
            # The loop may be blocked in XREAD on the old set of streams: unblock it so the new channel's
            # events are read now, not after _BLOCK_MS. Fire and forget; the block bounds a lost wake.
            reader_id = self._reader_id
            cmd = self._cmd

            async def unblock() -> None:
                with contextlib.suppress(RedisError, OSError):
                    self._count("CLIENT UNBLOCK")
                    await cmd.client_unblock(reader_id)

            task = asyncio.ensure_future(unblock())
            self._unblocks.add(task)
            task.add_done_callback(self._unblocks.discard)

    async def _read_loop(self) -> None:
        backoff = _BACKOFF_FIRST
        while True:
            try:
                await self._read_until_error()
            except (RedisError, OSError, HubUnavailableError) as exc:
                if not isinstance(exc, HubUnavailableError):
                    self._down(exc)
                self._reader_id = None
                if self._reader is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._reader.aclose()
                    self._reader = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            else:
                backoff = _BACKOFF_FIRST

    async def _read_until_error(self) -> None:
        if self._reader is None:
            self._reader = self._client(single_connection_client=True, socket_timeout=_BLOCK_MS / 1000 + 5)
            self._reader_id = await self._reader.client_id()
            if self._cmd is not None and self._connected_once:
                # Redis may have restarted: the command pool's idle connections are dead, and with no
                # retries (see _client) the next publish on one would fail with a 503 and log a second
                # outage. Drop them; the next command opens a fresh one.
                await self._cmd.connection_pool.disconnect(inuse_connections=False)
            self._connected_once = True
            self._up()
            # A new reader connection (the first, or after an outage that may have been seen only by
            # publish): carry on from each followed channel's position, or reload it.
            await self._resync()
        reader = self._reader
        while True:
            self._changed.clear()
            streams: Any = {self._keys(ch)[0]: to_stream_id(f.position) for ch, f in self._followed.items()}
            if not streams:
                await self._changed.wait()
                continue
            self._count("XREAD")
            reply: Any = await reader.xread(streams, count=_READ_COUNT, block=_BLOCK_MS)
            for key, raw in reply or ():
                name = _text(key)
                channel = name[len("rawrt:{") : -1]
                followed = self._followed.get(channel)
                if followed is not None:
                    if followed.origin is None:
                        # The stream was created after this node began to follow it: learn its origin
                        # (once), so that a later resync can tell it from a stream that replaced it. Before
                        # the events are applied: if Redis goes away in between, the position has not moved
                        # past the origin, and the resync sees the same stream, not a replaced one.
                        self._count("GET")
                        origin = await reader.get(self._keys(channel)[1])
                        followed.origin = from_stream_id(origin) if origin is not None else None
                    self._apply(channel, followed, _entries(raw))

    async def _resync(self) -> None:
        """After an outage: carry on from each channel's position, or reload it if the stream changed."""
        for channel, followed in list(self._followed.items()):
            state = await self._read_state(channel)
            if followed.origin is None:
                # Followed before the stream existed: it is the same stream if it began after this node's
                # position and lost nothing since (or still does not exist).
                continuous = not state.exists or (
                    state.origin >= followed.position and state.base == state.origin
                )
            else:
                continuous = (
                    state.origin == followed.origin and state.base <= followed.position <= state.last_id
                )
            if continuous:
                if followed.origin is None and state.exists:
                    followed.origin = state.origin
                self._apply(channel, followed, [(i, d) for i, d in state.events if i > followed.position])
            else:
                logger.warning(
                    "hub: channel %r changed in Redis during the outage (lost or trimmed): its subscribers "
                    "resume with a reset",
                    channel,
                )
                self._load_state(channel, state)
                origin = state.origin if state.exists else None
                self._followed[channel] = _Followed(state.last_id, origin, time.monotonic())

    async def _sweep_loop(self) -> None:
        """Stop following channels nobody here read for _LINGER seconds, and drop their copies."""
        while True:
            await asyncio.sleep(_LINGER / 4)
            now = time.monotonic()
            for channel, followed in list(self._followed.items()):
                if self.hub.subscriber_count(channel):
                    followed.used = now
                elif not self.hub.has_channel(channel):
                    del self._followed[channel]  # the hub forgot it (its budget): re-read when needed
                elif not self.hub.subscriber_count(channel) and now - followed.used > _LINGER:
                    self.hub.drop(channel)
                    del self._followed[channel]
