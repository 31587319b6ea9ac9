"""Long polling and short polling over the hub: plain HTTP requests that read a channel from a cursor.

Contract
--------
Both answer with the same JSON document (``application/json``, compact, UTF-8)::

    {"cursor": M, "events": [{"channel": "C", "id": N, "data": "..."}, ...]}       (+ "reset": true)

* ``events`` are the channel's events after the client's cursor ``since``, in id order, at most
  ``Limits.poll_max_batch`` (1,000) of them; each is :func:`event_json`, encoded once per event for every
  client that receives it (the WebSocket chat, :mod:`rawrt.websocket.chat`, sends the same text).
* ``cursor`` is the id of the last event in the answer, or ``since`` when there is none: the client sends
  it back as ``since`` next time, and gets each event exactly once. An answer that holds a full batch means
  more may be waiting: poll again at once.
* ``"reset": true`` appears only when ``since`` could not be honoured (older than the history, or ahead of
  the channel, e.g. from before a server restart): the events then start at the oldest retained one and
  the client must reload its state. Never a silent gap (``rawrt.hub`` "Gap signal").
* Without ``since`` the answer has no events and the channel's current last id as ``cursor``: the client
  starts from "now" with a cursor, so nothing published after that can be missed.

:func:`short_poll` answers at once. Its answer carries a strong ``ETag`` naming the answer (see
:func:`etag`); a request whose ``If-None-Match`` matches gets ``304 Not Modified`` with no body
(RFC 9110 §13.1.2, §15.4.5).

:func:`long_poll` (in the spirit of Spring's ``DeferredResult``) holds the request until an event after
``since`` exists, then answers with everything available (up to the batch cap); or until the timeout,
capped at ``Limits.longpoll_max_timeout``, then answers with no events and the same cursor. A held request
is one hub subscription with a one-shot wake: a publish releases it with no per-request encoding. A client
that disconnects while held frees its subscription at once (the wait races ``request.wait_disconnected()``).
When the server shuts down, held requests are answered with what they have.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from .app import Request, Response
from .hub import Event, EventMemo, Hub, parse_cursor
from .limits import DEFAULT_LIMITS, Limits

__all__ = [
    "event_json",
    "PollAnswer",
    "PollParameterError",
    "parse_since",
    "parse_timeout",
    "short_poll",
    "long_poll",
    "etag",
    "etag_matches",
    "poll_response",
    "longpoll_response",
]


def _encode_event(event: Event) -> str:
    # ensure_ascii=False: the document is sent as UTF-8 (RFC 8259 §8.1), so only what JSON must escape is.
    return json.dumps(
        {"channel": event.channel, "id": event.id, "data": event.data},
        ensure_ascii=False,
        separators=(",", ":"),
    )


#: ``event_json(event) -> str``: a hub event as compact JSON text, ``{"channel":...,"id":...,"data":...}``,
#: what a poll answer lists and the WebSocket chat sends. Encoded once per event: every client gets the same
#: string (:class:`~rawrt.hub.EventMemo`); a batch is ``"[" + ",".join(map(event_json, events)) + "]"``.
event_json: Callable[[Event], str] = EventMemo(_encode_event).get


class PollParameterError(ValueError):
    """A poll request's parameter is invalid (answered with 400)."""


@dataclass(frozen=True, slots=True)
class PollAnswer:
    """What a poll answers.

    Attributes:
        events: the events after the client's cursor, in id order.
        cursor: where the client continues from (module docstring).
        reset: the client's cursor could not be honoured.
    """

    events: tuple[Event, ...]
    cursor: int
    reset: bool = False

    def body(self) -> bytes:
        """The JSON document, built around each event's :func:`event_json` (no per-client encoding)."""
        events = ",".join(map(event_json, self.events))
        reset = ',"reset":true' if self.reset else ""
        return f'{{"cursor":{self.cursor},"events":[{events}]{reset}}}'.encode()


def parse_since(text: str | None) -> int | None:
    """Parse the ``since`` parameter: ``None`` when absent, else a cursor.

    Raises:
        PollParameterError: present but not 1 to 19 ASCII digits.
    """
    if text is None:
        return None
    cursor = parse_cursor(text)
    if cursor is None:
        raise PollParameterError(f"since must be an event id (a non-negative integer), not {text[:40]!r}")
    return cursor


def parse_timeout(text: str | None, limits: Limits = DEFAULT_LIMITS) -> float:
    """Parse the long-poll ``timeout`` parameter (seconds): the default when absent, capped server-side.

    The cap (``Limits.longpoll_max_timeout``) is applied silently: a client asking for more simply gets
    the longest hold the server allows, which is still a correct long poll.

    Raises:
        PollParameterError: not a finite, non-negative number.
    """
    if text is None:
        return limits.longpoll_default_timeout
    try:
        value = float(text) if len(text) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise PollParameterError(f"timeout must be a non-negative number of seconds, not {text[:40]!r}")
    return min(value, limits.longpoll_max_timeout)


def short_poll(hub: Hub, channel: str, since: int | None, *, max_batch: int | None = None) -> PollAnswer:
    """Answer at once with the events after ``since`` (module docstring)."""
    if since is None:
        return PollAnswer((), hub.public_cursor(channel, hub.last_id(channel)))
    replay = hub.since(channel, since, max_batch)
    return PollAnswer(replay.events, hub.public_cursor(channel, replay.cursor), replay.reset)


async def long_poll(
    request: Request,
    hub: Hub,
    channel: str,
    since: int | None,
    timeout: float,
    *,
    max_batch: int | None = None,
) -> PollAnswer:
    """Hold the request until an event after ``since`` exists or ``timeout`` seconds pass.

    Args:
        request: the held request (for disconnect detection).
        hub, channel: what to read.
        since: the client's cursor; ``None`` answers at once (module docstring).
        timeout: seconds to hold at most (already capped, see :func:`parse_timeout`).
        max_batch: events per answer; ``None``: ``Limits.poll_max_batch`` of the hub.

    Returns:
        The answer. After a disconnect the answer is empty (nobody will read it).
    """
    if since is None:
        return PollAnswer((), hub.public_cursor(channel, hub.last_id(channel)))
    loop = asyncio.get_running_loop()
    released = loop.create_future()

    def wake() -> None:
        # Called synchronously from hub.publish: cheap, never blocks, one-shot.
        if not released.done():
            released.set_result(None)

    sub = hub.subscribe(channel, cursor=since, wake=wake)
    try:
        batch = sub.drain(max_batch)
        if not batch and not sub.reset and not sub.overflowed and timeout > 0:
            # Three things end the hold, and each just resolves the one future: the hub's wake, a timer,
            # and the client leaving (or the server shutting down). A client that goes away frees its
            # subscription now, not at the timeout. Callbacks rather than asyncio.wait(): no extra
            # futures or sets per held request, which matters at 10,000 of them.
            gone = loop.create_task(request.wait_disconnected())
            gone.add_done_callback(lambda _: wake())
            timer = loop.call_later(timeout, wake)
            try:
                await released
            finally:
                timer.cancel()
                gone.cancel()
            if request.is_disconnected():
                return PollAnswer((), hub.public_cursor(channel, sub.cursor))
            # A wake, the timeout, or shutdown (wait_disconnected returned while still connected): answer
            # with what there is.
            batch = sub.drain(max_batch)
        # After an overflow the batch is empty and the cursor unchanged: the next poll replays from history.
        return PollAnswer(tuple(batch), hub.public_cursor(channel, sub.cursor), sub.reset)
    finally:
        sub.close()
        if not released.done():
            released.cancel()


_epochs: weakref.WeakKeyDictionary[Hub, str] = weakref.WeakKeyDictionary()


def _epoch(hub: Hub) -> str:
    # Ids restart at 1 with a new hub (server restart), so "channel-7" could name different events in two
    # runs; a random per-hub token keeps an ETag from one run from ever matching an answer of another.
    token = _epochs.get(hub)
    if token is None:
        token = _epochs[hub] = secrets.token_hex(4)
    return token


def etag(hub: Hub, channel: str, answer: PollAnswer) -> str:
    """The ``ETag`` of a short-poll answer: ``"<channel>-<cursor>.<epoch>"``, ``-reset`` appended if reset.

    Strong, not weak (RFC 9110 §8.8.3): within one hub (the epoch), the answer to a given request URL
    (channel, ``since``) is fully determined by its cursor, because ids are contiguous and events immutable,
    and it is serialised deterministically, so equal tags mean byte-identical bodies. (``If-None-Match`` uses
    the weak comparison anyway, §13.1.2, so a weak tag would work for 304 too; a strong one is simply true.)
    """
    suffix = "-reset" if answer.reset else ""
    return f'"{channel}-{answer.cursor}.{_epoch(hub)}{suffix}"'


# RFC 9110 §8.8.3: entity-tag = [ weak ] opaque-tag ; weak = %s"W/" ; opaque-tag = DQUOTE *etagc DQUOTE.
# The group is the opaque-tag, quotes included: what the weak comparison compares.
_ENTITY_TAG_RE = re.compile(r'(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")')


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` field value matches ``tag`` (RFC 9110 §13.1.2, weak comparison).

    ``*`` matches any current representation; otherwise the value is a comma-separated list of
    entity-tags, each maybe ``W/``-prefixed, and weak comparison ignores that prefix.
    """
    if if_none_match is None:
        return False
    value = if_none_match.strip(" \t")
    if value == "*":
        return True
    opaque = tag[2:] if tag.startswith("W/") else tag
    # Not value.split(","): etagc (%x21 / %x23-7E / obs-text) includes the comma.
    return opaque in _ENTITY_TAG_RE.findall(value)


def poll_response(request: Request, hub: Hub, channel: str, answer: PollAnswer) -> Response:
    """The short-poll response: 200 with the JSON and its ETag, or 304 when ``If-None-Match`` matches.

    ``Cache-Control: no-cache``: a cache may keep the answer but must revalidate it every time (which is
    what the ETag makes cheap); the 304 repeats the ETag and Cache-Control as RFC 9110 §15.4.5 requires.
    """
    tag = etag(hub, channel, answer)
    headers = [("etag", tag), ("cache-control", "no-cache")]
    if etag_matches(request.headers.get("if-none-match"), tag):
        return Response(b"", 304, headers)
    return Response(answer.body(), 200, headers, "application/json")


def longpoll_response(answer: PollAnswer) -> Response:
    """The long-poll response: 200 with the JSON. ``no-store``: a held answer is never worth caching."""
    return Response(answer.body(), 200, [("cache-control", "no-store")], "application/json")
