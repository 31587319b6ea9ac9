"""HTTP/2, sans I/O (RFC 9113, RFC 7541).

Rooms, in the order the bytes meet them:

* :mod:`.frames` -- the frame layer: the connection preface, every frame type as a value, an incremental
  reader that checks each frame before its payload is waited for, and the serialisers.
* :mod:`.hpack` -- HPACK header compression (RFC 7541): the static and dynamic tables, integer and string
  coding, :class:`~.hpack.Decoder` (with the header-list limit counted while decoding) and
  :class:`~.hpack.Encoder`.
* :mod:`.huffman` -- the static Huffman code of RFC 7541 Appendix B, encoding and strict decoding.
"""
