"""WebSocket, sans I/O (RFC 6455, RFC 7692).

Rooms, in the order the bytes meet them:

* :mod:`.handshake` -- the opening handshake: validate an upgrade request, compute ``Sec-WebSocket-Accept``,
  negotiate subprotocols and extensions (server), build and check one (client).
* :mod:`.frames` -- the frame format: parse and encode frames, masking, close payloads.
* :mod:`.deflate` -- permessage-deflate (RFC 7692): parameter negotiation, bounded compress and inflate.
* :mod:`.connection` -- :class:`~.connection.WebSocketConnection`, the state machine: fragments, UTF-8,
  ping/pong/close, and every error mapped to its close code. Its states and the one ``TRANSITIONS`` table
  are in :mod:`.states`, the events it hands out in :mod:`.events`; both are re-exported by
  :mod:`.connection`.
"""
