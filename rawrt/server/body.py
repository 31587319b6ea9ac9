"""The request body, read on demand: what :meth:`rawrt.app.Request.stream` and ``body()`` pull from
(``rawrt.app.BodySource``), and the end of an exchange, which drops what the handler left unread."""

from __future__ import annotations

from ..errors import ProtocolError, RemoteProtocolError
from ..sansio import http11
from ..sansio.headers import HeaderList
from .watcher import DisconnectWatch

__all__ = ["RequestBody"]


class RequestBody(DisconnectWatch):
    """The body source of the request being handled (a mixin of :class:`~rawrt.server.ServerConnection`)."""

    #: The trailer fields of the last chunked body read (RFC 9112 §7.1.2).
    trailers: HeaderList

    async def next_event(self, timeout: float | None) -> http11.Event:
        """The next event of the current exchange, reading as needed (each read bounded by ``timeout``)."""
        while not self.events:
            self.events.extend(self.conn.events_received())
            if self.events:
                break
            if self._watcher is not None:
                await self.stop_watching()
                continue
            self.feed(await self.read(timeout))
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
            event = await self.next_event(self.limits.body_timeout)
        except TimeoutError:
            raise RemoteProtocolError("request body stalled", status_hint=408) from None
        if type(event) is http11.Data:
            return event.data
        assert type(event) is http11.EndOfMessage
        self.trailers = event.trailers
        return None

    async def finish_exchange(self) -> bool:
        """End the exchange whose response was sent: consume what is left of its request, so the next request
        can be parsed. Returns whether the connection may carry another request.

        The request's ``EndOfMessage`` may be parsed already (the read loop must not take it for the next
        request), and a body the handler did not read is read and dropped, bounded by ``body_timeout``; a
        body that fails to arrive or to parse ends the connection.
        """
        events = self.events
        if events and type(events[0]) is http11.EndOfMessage:
            events.popleft()
        conn = self.conn
        if conn.client_state is not http11.State.SEND_BODY:
            return conn.server_state is not http11.State.MUST_CLOSE
        try:
            while True:
                event = await self.next_event(self.limits.body_timeout)
                if type(event) is http11.EndOfMessage:
                    return self.flush() and conn.server_state is http11.State.IDLE
        except (ProtocolError, TimeoutError):
            return False
