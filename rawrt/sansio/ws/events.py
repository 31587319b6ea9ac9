# The events a WebSocket connection hands out (RFC 6455 §5.5, §5.6): complete messages, pings, pongs and the
# peer's close. Frozen slotted dataclasses, built by the connection after every check (STYLE §3).

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TextMessage", "BinaryMessage", "Ping", "Pong", "CloseReceived", "Event"]


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A complete text message, decoded (RFC 6455 §5.6)."""

    data: str


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A complete binary message (RFC 6455 §5.6)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping arrived (RFC 6455 §5.5.2). The connection has already queued the matching pong."""

    payload: bytes = b""

    def response(self) -> Pong:
        """The pong that answers this ping (§5.5.3: "identical Application data")."""
        return Pong(self.payload)


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong arrived (RFC 6455 §5.5.3): an answer to our ping, or an unsolicited heartbeat."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's close frame (RFC 6455 §5.5.1). ``code`` is 1005 when the frame had no payload."""

    code: int
    reason: str = ""


#: Everything ``WebSocketConnection.events_received()`` may return.
Event = TextMessage | BinaryMessage | Ping | Pong | CloseReceived
