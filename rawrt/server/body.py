"""The request body, read on demand: what :meth:`rawrt.app.Request.stream` and ``body()`` pull from
(``rawrt.app.BodySource``), and the end of an exchange, which drops what the handler left unread."""

from __future__ import annotations

import asyncio

from ..errors import ProtocolError, RemoteProtocolError
from ..limits import Limits
from ..sansio import http11
from ..sansio.headers import HeaderList
from .watcher import DisconnectWatch

__all__ = ["BodyPace", "RequestBody"]


class BodyPace:
    """How long the next read of one request body may wait (HTTP/1.1 and HTTP/2 alike).

    Any one pause is bounded by ``Limits.body_timeout``; with ``body_min_rate``, the body's reads may also
    wait no longer *in all* than ``body_timeout`` plus one second for every ``body_min_rate`` bytes received
    (Apache's ``RequestReadTimeout body=...,MinRate=...``). Only the time spent waiting for the client
    counts: a handler that is slow to read does not use up its client's allowance.
    """

    __slots__ = ("waited", "received", "by_rate")

    def __init__(self) -> None:
        self.waited = 0.0
        self.received = 0
        #: The last wait handed out was cut short by the rate, not by ``body_timeout``.
        self.by_rate = False

    def next_wait(self, limits: Limits) -> float | None:
        """The longest the next read may wait, or None for no bound."""
        timeout, rate = limits.body_timeout, limits.body_min_rate
        if timeout is None or rate is None:
            return timeout
        left = timeout + self.received / rate - self.waited
        self.by_rate = left < timeout
        return max(0.0, left) if self.by_rate else timeout

    def account(self, waited: float, received: int) -> None:
        self.waited += waited
        self.received += received

    def error(self, limits: Limits, make: type[ProtocolError]) -> ProtocolError:
        """The 408 for the wait that ran out: a stalled body, or one slower than the minimum rate."""
        if not self.by_rate:
            return make("request body stalled", status_hint=408)
        return make(
            f"request body too slow: {self.received:,} bytes while waiting {self.waited:.1f} s "
            f"(after {limits.body_timeout:g} s, at least {limits.body_min_rate:,} bytes/s: body_min_rate)",
            status_hint=408,
        )


class RequestBody(DisconnectWatch):
    """The body source of the request being handled (a mixin of :class:`~rawrt.server.ServerConnection`)."""

    #: The trailer fields of the last chunked body read (RFC 9112 §7.1.2).
    trailers: HeaderList
    #: The current request body's waiting account (set for each request that has a body).
    pace: BodyPace

    async def next_event(self) -> http11.Event:
        """The next event of the current exchange's body, reading as needed (each read bounded by
        :class:`BodyPace`; ``TimeoutError`` when it runs out)."""
        while not self.events:
            self.events.extend(self.conn.events_received())
            if self.events:
                break
            if self._watcher is not None:
                await self.stop_watching()
                continue
            pace = self.pace
            wait = pace.next_wait(self.limits)
            loop = asyncio.get_running_loop()
            began = loop.time()
            data = b""
            try:
                data = await self.read(wait)
            finally:
                pace.account(loop.time() - began, len(data))
            self.feed(data)
        return self.events.popleft()

    async def read_body_chunk(self) -> bytes | None:
        """The next piece of the request body, or ``None`` at its end. Sends ``100 Continue`` if awaited.

        Raises:
            RemoteProtocolError: the body is malformed, too large (413), or stalled (408).
        """
        conn = self.conn
        if conn.client_state is http11.State.ERROR and not self.events:
            # The parser hands out the Data parsed before a bad chunk first and raises on the next call:
            # surface that error here. A body cut short by a protocol error must never look complete.
            conn.events_received()
            raise RemoteProtocolError("the request body is unreadable after a protocol error")
        if conn.client_state is not http11.State.SEND_BODY and not self.events:
            return None
        if conn.expects_continue:
            conn.send_informational(100)  # RFC 9110 §10.1.1: the handler wants the body now
            self.flush()
        try:
            event = await self.next_event()
        except TimeoutError:
            raise self.pace.error(self.limits, RemoteProtocolError) from None
        if type(event) is http11.Data:
            return event.data
        assert type(event) is http11.EndOfMessage
        self.trailers = event.trailers
        return None

    async def finish_exchange(self) -> bool:
        """End the exchange whose response was sent: consume what is left of its request, so the next request
        can be parsed. Returns whether the connection may carry another request.

        The request's ``EndOfMessage`` may be parsed already (the read loop must not take it for the next
        request), and a body the handler did not read is read and dropped, its reads bounded by ``BodyPace``;
        a body that fails to arrive or to parse ends the connection.
        """
        events = self.events
        if events and type(events[0]) is http11.EndOfMessage:
            events.popleft()
        conn = self.conn
        if conn.client_state is not http11.State.SEND_BODY:
            return conn.server_state is not http11.State.MUST_CLOSE
        try:
            while True:
                event = await self.next_event()
                if type(event) is http11.EndOfMessage:
                    return self.flush() and conn.server_state is http11.State.IDLE
        except (ProtocolError, TimeoutError):
            return False
