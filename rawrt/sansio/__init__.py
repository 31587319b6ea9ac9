"""rawrt's sans-IO core: bytes in, events out.

Nothing in this package does I/O: no asyncio, no sockets, no clock, no global randomness. Whatever must be
random (WebSocket mask keys) is passed in as a callable. The asyncio server, the client, the tests and the
fuzzers all drive the same objects through the same surface::

    conn.receive_data(data)      # bytes from the peer
    conn.receive_eof()           # the peer half-closed
    conn.events_received()       # -> list of events parsed so far
    conn.data_to_send()          # -> list of bytes to write; b"" means: close the write side
"""
