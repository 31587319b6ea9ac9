"""The Server-Sent Events client: :func:`connect` returns an :class:`EventSource` that reconnects by itself.

Spec: WHATWG HTML Living Standard §9.2 "Server-sent events"; the wire format is :mod:`rawrt.sansio.sse`'s.

Contract
--------
:func:`connect` returns an :class:`EventSource`, an async iterator of
:class:`~rawrt.sansio.sse.MessageEvent` that behaves like a browser's ``EventSource`` (§9.2.3): it sends
``GET`` with ``Accept: text/event-stream`` (and ``Last-Event-ID`` once it has one), reconnects by itself
when the stream ends or the connection fails, waiting the reconnection time (3 s, or what ``retry`` set;
with exponential backoff after failed attempts), stops cleanly on ``204 No Content``, and fails (raises
:class:`EventSourceError`) on any other status than 200 or on a ``Content-Type`` other than
``text/event-stream``. The HTTP response is read by the strict sans-IO
:class:`~rawrt.sansio.http11.client.ResponseReader` (chunked, Content-Length or close-delimited).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as _ssl
import struct
from collections.abc import AsyncGenerator
from types import TracebackType
from urllib.parse import urlsplit

from ..errors import RawrtError, RemoteProtocolError
from ..limits import DEFAULT_LIMITS, MAX_RECV, Limits
from ..sansio.http11 import Data, EndOfMessage
from ..sansio.http11.client import Response as ResponseHead
from ..sansio.http11.client import ResponseReader, encode_request
from ..sansio.sse import MessageEvent, RetryChanged, SSEParser

__all__ = ["EventSource", "EventSourceError", "connect"]


class EventSourceError(RawrtError):
    """The event source failed for good (§9.2.3 "fail the connection"), or ran out of reconnection attempts.

    Attributes:
        status: the response's status code, when a response was received.
        content_type: its ``Content-Type`` value, when there was one.
    """

    def __init__(self, msg: str, *, status: int | None = None, content_type: str | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.content_type = content_type


class _Retry(Exception):
    """Internal: this connection is over; reconnect (``failed``: it never delivered a stream)."""

    def __init__(self, failed: bool, cause: BaseException | None = None) -> None:
        super().__init__(repr(cause))
        self.failed = failed
        self.cause = cause


class EventSource:
    """A reconnecting Server-Sent Events client (WHATWG §9.2.3). Make one with :func:`connect`.

    Iterate it for :class:`~rawrt.sansio.sse.MessageEvent` objects; use it as an async context manager (or
    call :meth:`aclose`) so its connection is closed when you stop.

    Attributes:
        url: the event stream's URL.
        last_event_id: sent as ``Last-Event-ID`` on each (re)connection when not empty.
        reconnection_time: seconds to wait before reconnecting (a ``retry`` field changes it).
        connections: how many responses with a stream were received (1 + the successful reconnections).
    """

    def __init__(
        self,
        url: str,
        *,
        last_event_id: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        reconnection_time: float = 3.0,
        max_reconnect_delay: float = 30.0,
        max_retries: int | None = 10,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 60.0,
        ssl: _ssl.SSLContext | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an event source URL is http:// or https:// with a host, not {url!r}")
        if any(ch in parts.netloc for ch in " \r\n"):
            raise ValueError(f"invalid URL {url!r}")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = parts.port is None or parts.port == (443 if parts.scheme == "https" else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl: _ssl.SSLContext | None = ssl
        if parts.scheme == "https" and ssl is None:
            self._ssl = _ssl.create_default_context()
        self.last_event_id = last_event_id or ""
        self._headers = list(headers or [])
        self.reconnection_time = reconnection_time
        self.max_reconnect_delay = max_reconnect_delay
        self.max_retries = max_retries
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.limits = limits
        self.connections = 0
        self._writer: asyncio.StreamWriter | None = None
        self._closed = False
        self._gen = self._events()

    # --- the async iterator and context manager ------------------------------------------------------

    def __aiter__(self) -> EventSource:
        return self

    async def __anext__(self) -> MessageEvent:
        return await self._gen.__anext__()

    async def __aenter__(self) -> EventSource:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection and stop (§9.2.3 ``close()``). Idempotent."""
        self._closed = True
        await self._gen.aclose()
        await self._close_writer()

    def drop(self, *, reset: bool = False) -> None:
        """Close the current connection now (the source then reconnects): for tests and demos.

        Args:
            reset: send a TCP RST instead of a FIN (``SO_LINGER`` 0), as a crashed peer would.
        """
        writer = self._writer
        if writer is None or writer.transport.is_closing():
            return  # already gone (the server ended the stream): the source reconnects anyway
        if reset:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):  # closed under us between the check and now
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if reset:
            writer.transport.abort()
        else:
            writer.close()

    # --- the connection loop ---------------------------------------------------------------------------

    async def _events(self) -> AsyncGenerator[MessageEvent, None]:
        failures = 0
        try:
            while not self._closed:
                connection = self._one_connection()
                try:
                    async for event in connection:
                        yield event
                    return  # 204: the server asked us to stop (§9.2.3)
                except _Retry as retry:
                    await self._close_writer()
                    failures = failures + 1 if retry.failed else 0
                    if self.max_retries is not None and failures > self.max_retries:
                        raise EventSourceError(
                            f"{self.url}: gave up after {failures} failed attempts: {retry.cause!r}"
                        ) from retry.cause
                    # §9.2.3 "reestablish the connection": wait the reconnection time; "optionally, wait some
                    # more", an exponential backoff after a failed attempt, capped.
                    delay = self.reconnection_time * (2 ** max(0, failures - 1))
                    await asyncio.sleep(min(delay, self.max_reconnect_delay))
                finally:
                    # Closed here, not left to the garbage collector, when the consumer stops mid-stream.
                    await connection.aclose()
        finally:
            await self._close_writer()

    async def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _request(self) -> bytes:
        headers = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache")]
        if self.last_event_id:
            # §9.2.3: "If the EventSource object's last event ID string is not the empty string, set
            # `Last-Event-ID` to the last event ID string, encoded as UTF-8" (header values are bytes;
            # encode_request writes Latin-1, so go through UTF-8 first).
            headers.append(("Last-Event-ID", self.last_event_id.encode("utf-8").decode("latin-1")))
        return encode_request("GET", self._target, self._host_header, [*headers, *self._headers])

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        if self.read_timeout is None:
            return await reader.read(MAX_RECV)
        return await asyncio.wait_for(reader.read(MAX_RECV), self.read_timeout)

    async def _one_connection(self) -> AsyncGenerator[MessageEvent, None]:
        """One request and its stream. Returns on 204; raises _Retry (reconnect) or EventSourceError."""
        streaming = False
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port, ssl=self._ssl, limit=MAX_RECV),
                self.connect_timeout,
            )
            self._writer = writer
            writer.write(self._request())
            await asyncio.wait_for(writer.drain(), self.connect_timeout)
            response = ResponseReader(self.limits)
            # Browsers (Chromium's EventSourceParser, Firefox) seed a new stream's "last event ID buffer" with
            # the source's last event ID, so a blank line before the first id (a heartbeat) keeps it; the
            # spec text re-initialises it to "". Seed it, so a resumed stream cannot lose the resume id.
            parser = SSEParser(
                max_event_size=self.limits.sse_max_event_size, last_event_id=self.last_event_id
            )
            while True:
                data = await self._read(reader)
                if data:
                    response.receive_data(data)
                else:
                    response.receive_eof()
                for item in response.events_received():
                    if isinstance(item, ResponseHead):
                        if self._check(item):
                            return  # 204
                        streaming = True
                        self.connections += 1
                    elif isinstance(item, Data):
                        parser.receive_data(item.data)
                        for event in parser.events_received():
                            if isinstance(event, RetryChanged):
                                # §9.2.6: "set the event stream's reconnection time to that integer".
                                self.reconnection_time = event.milliseconds / 1000
                            else:
                                self.last_event_id = event.last_event_id
                                yield event
                        self.last_event_id = parser.last_event_id
                    elif isinstance(item, EndOfMessage):
                        # §9.2.3: the stream ended normally: reestablish the connection.
                        raise _Retry(failed=not streaming)
                if not data:
                    raise _Retry(failed=not streaming, cause=RemoteProtocolError("connection closed"))
        except EventSourceError:
            raise
        except (OSError, asyncio.TimeoutError, RawrtError, asyncio.IncompleteReadError) as exc:
            # Network errors and malformed responses: §9.2.3 reestablishes the connection.
            raise _Retry(failed=not streaming, cause=exc) from exc

    def _check(self, head: ResponseHead) -> bool:
        """Apply §9.2.3 to the response head. Returns True on 204 (stop); raises EventSourceError to fail."""
        content_type = head.header(b"content-type")
        ctype = None if content_type is None else content_type.decode("latin-1")
        if head.status == 204:
            # "Clients will reconnect if the connection is closed; a client can be told to stop reconnecting
            # using the HTTP 204 No Content response code."
            self._closed = True
            return True
        if head.status != 200:
            raise EventSourceError(
                f"{self.url}: HTTP {head.status}, expected 200", status=head.status, content_type=ctype
            )
        essence = (ctype or "").split(";", 1)[0].strip(" \t").lower()
        if essence != "text/event-stream":
            # "if res's ... Content-Type is not `text/event-stream`, fail the connection".
            raise EventSourceError(
                f"{self.url}: Content-Type {ctype!r}, expected text/event-stream",
                status=200,
                content_type=ctype,
            )
        return False


def connect(
    url: str,
    *,
    last_event_id: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    reconnection_time: float = 3.0,
    max_reconnect_delay: float = 30.0,
    max_retries: int | None = 10,
    connect_timeout: float = 10.0,
    read_timeout: float | None = 60.0,
    ssl: _ssl.SSLContext | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> EventSource:
    """Open an event source: an async iterator of messages that reconnects by itself (WHATWG §9.2.3).

    ::

        async with rawrt.sse.connect("http://127.0.0.1:8000/events?channel=news") as source:
            async for message in source:
                print(message.last_event_id, message.data)

    Args:
        url: ``http://`` (or ``https://``) URL of the event stream.
        last_event_id: resume from this id (sent as ``Last-Event-ID`` from the first request).
        headers: extra request header fields.
        reconnection_time: seconds before reconnecting, until a ``retry`` field says otherwise (browsers use
            a few seconds).
        max_reconnect_delay: cap of the exponential backoff after failed attempts.
        max_retries: consecutive failed attempts (no stream received) before :class:`EventSourceError` is
            raised; ``None``: retry forever. A stream that was received resets the count.
        connect_timeout: bound on opening the connection and sending the request.
        read_timeout: silence after which the connection is presumed dead and reestablished (a rawrt
            server sends a heartbeat every 15 s); ``None``: wait forever.
        ssl: an SSL context for ``https://`` (the default context if omitted).
        limits: ``sse_max_event_size`` and the response-head limits.

    Returns:
        The :class:`EventSource`. Iterating it raises :class:`EventSourceError` when the connection fails
        for good (a status other than 200 and 204, a wrong Content-Type, too many failed attempts).
    """
    return EventSource(
        url,
        last_event_id=last_event_id,
        headers=headers,
        reconnection_time=reconnection_time,
        max_reconnect_delay=max_reconnect_delay,
        max_retries=max_retries,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        ssl=ssl,
        limits=limits,
    )
