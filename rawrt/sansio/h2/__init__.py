"""HTTP/2, sans I/O (RFC 9113).

Rooms, in the order the bytes meet them:

* :mod:`.frames` -- the frame layer: the connection preface, every frame type as a value, an incremental
  reader that checks each frame before its payload is waited for, and the serialisers.
"""
