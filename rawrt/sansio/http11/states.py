"""The HTTP/1.1 connection's states and every legal transition, in one table (h11's "Rule 1").

:class:`~rawrt.sansio.http11.HTTPConnection` tracks two halves, as h11 does: what the client sends
(:attr:`Role.CLIENT`) and what the server sends (:attr:`Role.SERVER`). Anything not in :data:`TRANSITIONS`
is a protocol violation by whoever caused it. ``ERROR`` is entered directly, from any state, on any error,
and is terminal. The diagrams in ``docs/topics/state-diagrams.md`` are generated from this table
(``docs/tools/make_state_diagrams.py``), so they cannot drift from the code.
"""

from __future__ import annotations

import enum

__all__ = ["Role", "State", "TRANSITIONS"]


class Role(enum.Enum):
    """Which half of the exchange a state belongs to."""

    # Enum members are singletons, so identity hashing is correct; Enum.__hash__ is a Python-level call, and
    # the table is looked up a few times per request (docs/topics/performance.md).
    __hash__ = object.__hash__

    CLIENT = "client"  #: what the peer sends (request head and body)
    SERVER = "server"  #: what we send (interim responses, the response head and body)


class State(enum.Enum):
    """The state of one half of the connection."""

    __hash__ = object.__hash__  # see Role

    IDLE = "idle"  #: waiting for a request (client) / for a request to answer (server)
    SEND_RESPONSE = "send_response"  #: server only: a request arrived; 1xx or the final head may go out
    SEND_BODY = "send_body"  #: the message body is in progress
    DONE = "done"  #: this half finished the current exchange
    MUST_CLOSE = "must_close"  #: done, and the connection will not be reused
    SWITCHED = "switched"  #: 101 sent: the bytes now belong to another protocol (WebSocket)
    CLOSED = "closed"  #: terminal: the connection is over
    ERROR = "error"  #: terminal: a protocol error ended the connection


_ = State
#: Every legal transition. Keys: (role, state, what happened) -> new state.
TRANSITIONS: dict[tuple[Role, State, str], State] = {
    # The client's half.
    (Role.CLIENT, _.IDLE, "request"): _.SEND_BODY,
    (Role.CLIENT, _.IDLE, "eof"): _.CLOSED,
    (Role.CLIENT, _.SEND_BODY, "data"): _.SEND_BODY,
    (Role.CLIENT, _.SEND_BODY, "end"): _.DONE,
    (Role.CLIENT, _.DONE, "eof"): _.DONE,  # a half-close after a full request still gets its answer
    (Role.CLIENT, _.DONE, "cycle"): _.IDLE,
    (Role.CLIENT, _.DONE, "close"): _.CLOSED,
    (Role.CLIENT, _.DONE, "switch"): _.SWITCHED,
    # Our half.
    (Role.SERVER, _.IDLE, "request"): _.SEND_RESPONSE,
    (Role.SERVER, _.SEND_RESPONSE, "informational"): _.SEND_RESPONSE,
    (Role.SERVER, _.SEND_RESPONSE, "response"): _.SEND_BODY,
    (Role.SERVER, _.SEND_RESPONSE, "switch"): _.SWITCHED,
    (Role.SERVER, _.SEND_BODY, "data"): _.SEND_BODY,
    (Role.SERVER, _.SEND_BODY, "end"): _.DONE,
    (Role.SERVER, _.DONE, "cycle"): _.IDLE,
    (Role.SERVER, _.DONE, "close"): _.MUST_CLOSE,
}
del _
