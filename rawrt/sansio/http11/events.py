"""The HTTP/1.1 events (RFC 9112): what :class:`~rawrt.sansio.http11.HTTPConnection` hands out.

A request is one :class:`Request` (the head), zero or more :class:`Data` (the body, dechunked) and one
:class:`EndOfMessage`; :class:`ConnectionEnded` says the client closed between two requests. The client-side
:class:`~rawrt.sansio.http11.client.ResponseReader` reuses :class:`Data` and :class:`EndOfMessage` for the
response body.

The parser builds these events after checking every field, so they are trusted as they are (h11's
``_parsed`` idea): nothing is validated again downstream. They are plain (not frozen) slotted dataclasses so
that building one per request stays cheap (docs/topics/performance.md); treat them as read-only all the
same: the parser hands them out and never looks at them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..headers import HeaderList

__all__ = ["Request", "Data", "EndOfMessage", "ConnectionEnded", "Event"]


@dataclass(slots=True)
class Request:
    """A request head, as received.

    Attributes:
        method: the method token, case preserved (RFC 9110 §9.1: methods are case-sensitive).
        target: the request-target exactly as received.
        http_version: ``b"1.1"`` or ``b"1.0"`` (a higher 1.x minor version is treated as 1.1, RFC 9112 §2.3).
        headers: ``(name, value)`` pairs in received order, names in received case, OWS stripped.
        content_length: the declared Content-Length, or ``None``.
        chunked: whether the body is chunked (RFC 9112 §6.3 rule 4).
        keep_alive: whether the client allows the connection to be reused after this exchange.
        expect_continue: the client sent ``Expect: 100-continue`` on HTTP/1.1 and waits for ``100`` before
            sending its body (RFC 9110 §10.1.1).
        upgrade: the lower-cased ``Upgrade`` value when ``Connection: upgrade`` was sent too, else ``None``.
    """

    method: bytes
    target: bytes
    http_version: bytes
    headers: HeaderList
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    expect_continue: bool = False
    upgrade: bytes | None = None


@dataclass(slots=True)
class Data:
    """A piece of a message body (dechunked)."""

    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    """The message body is complete. ``trailers`` holds a chunked body's trailer fields (RFC 9112 §7.1.2)."""

    trailers: HeaderList = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ConnectionEnded:
    """The client closed its side between two requests: the normal end of a keep-alive connection."""


#: Everything :meth:`~rawrt.sansio.http11.HTTPConnection.events_received` may return.
Event = Request | Data | EndOfMessage | ConnectionEnded
