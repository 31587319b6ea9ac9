# The WebSocket connection's states and every legal transition, in one table (RFC 6455 §4.1, §5.5.1, §7).
#
# ``WebSocketConnection`` moves only along ``TRANSITIONS``; ``docs/topics/state-diagrams.md`` is generated
# from it (``docs/tools/make_state_diagrams.py`` through ``state_diagram()``), so the docs cannot drift from
# the code. The connection's hot path (a data frame in OPEN or CLOSING) does not look the table up: the
# table says data frames never change the state, and the parser only runs in those two states.

from __future__ import annotations

from enum import Enum

__all__ = ["Role", "State", "Input", "TRANSITIONS", "state_diagram"]


class Role(Enum):
    """Which end of the connection we are; it decides masking (RFC 6455 §5.1) and who closes TCP."""

    #: We accepted the connection: we expect masked frames and send unmasked ones.
    SERVER = "server"
    #: We opened the connection: we mask every frame we send.
    CLIENT = "client"


class State(Enum):
    """Connection states (RFC 6455 §4.1 and §7), after the opening handshake."""

    #: Messages flow both ways (§4.1 "_The WebSocket Connection is Established_").
    OPEN = "open"
    #: We sent a close frame and wait for the peer's; we may still receive messages (§5.5.1).
    CLOSING = "closing"
    #: Terminal: the close handshake is complete, the connection failed, or TCP was closed.
    CLOSED = "closed"


class Input(Enum):
    """What can happen to a connection; the columns of ``TRANSITIONS``."""

    #: A data, ping or pong frame arrived.
    RECV_FRAME = "recv_frame"
    #: A close frame arrived.
    RECV_CLOSE = "recv_close"
    #: The peer closed TCP (``receive_eof``).
    RECV_EOF = "recv_eof"
    #: The app sends a data frame (message or fragment).
    SEND_DATA = "send_data"
    #: A ping or pong is sent (by the app, or automatically in answer to a ping).
    SEND_CONTROL = "send_control"
    #: The app starts the closing handshake (``send_close``).
    SEND_CLOSE = "send_close"
    #: The connection is failed (§7.1.7), by a protocol error or by the app (``fail``).
    FAIL = "fail"


#: Every legal (state, input) pair and the state it leads to. A pair that is absent is illegal: for a
#: local input (SEND_*), the call raises ``ConnectionClosed`` and the state does not change; remote
#: inputs cannot be absent (CLOSED discards frames; EOF and FAIL are legal everywhere).
TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.OPEN, Input.RECV_FRAME): State.OPEN,
    # §5.5.1: the close is echoed at once, which completes the handshake.
    (State.OPEN, Input.RECV_CLOSE): State.CLOSED,
    (State.OPEN, Input.RECV_EOF): State.CLOSED,  # abnormal closure, 1006
    (State.OPEN, Input.SEND_DATA): State.OPEN,
    (State.OPEN, Input.SEND_CONTROL): State.OPEN,
    (State.OPEN, Input.SEND_CLOSE): State.CLOSING,
    (State.OPEN, Input.FAIL): State.CLOSED,
    # §5.5.1: after sending a close, the peer's messages may still arrive until its close does.
    (State.CLOSING, Input.RECV_FRAME): State.CLOSING,
    (State.CLOSING, Input.RECV_CLOSE): State.CLOSED,
    (State.CLOSING, Input.RECV_EOF): State.CLOSED,
    # §5.5.1 forbids only *data* frames after a close: a ping is still answered.
    (State.CLOSING, Input.SEND_CONTROL): State.CLOSING,
    (State.CLOSING, Input.FAIL): State.CLOSED,
    (State.CLOSED, Input.RECV_EOF): State.CLOSED,
    (State.CLOSED, Input.FAIL): State.CLOSED,
}


def state_diagram() -> str:
    """Render ``TRANSITIONS`` as a Mermaid state diagram, so the docs cannot drift from the code."""
    lines = ["stateDiagram-v2", "    [*] --> OPEN"]
    for (before, event), after in TRANSITIONS.items():
        lines.append(f"    {before.name} --> {after.name}: {event.name}")
    lines.append("    CLOSED --> [*]")
    return "\n".join(lines)
