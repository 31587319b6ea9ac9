"""The bytes of one HTTP/2 conversation with rawrt, for docs/http2.md: ``python docs/tools/capture_h2.py``.

Starts rawrt's demo app in this process (``Server``, port 0) and talks to it over a socket with frames built
by rawrt's own serialisers (``rawrt.sansio.h2.frames``) and HPACK encoder, so every byte is known:

1. the client preface and the client's SETTINGS; the server's SETTINGS and WINDOW_UPDATE;
2. ``GET /hello`` twice on streams 1 and 3 (the second block refers to the first's dynamic-table entries);
3. ``GET /events?channel=docs`` on stream 5, and at the same time the same stream over HTTP/1.1 on a second
   connection; one ``POST /publish`` (HTTP/1.1, a third connection) gives the event both carry;
4. ``POST /echo`` with a 600,000-octet body on stream 7, sent as the windows allow (the WINDOW_UPDATEs);
5. the server's shutdown: GOAWAY.

It prints every frame in each direction with its 9-octet header in hex, and each header block field by
field: the representation (RFC 7541 §6), its octets, the index, whether each string is Huffman-coded, and
what the dynamic table gains. Nothing here is part of rawrt; the output goes into the docs by hand.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rawrt.demo import create_app  # noqa: E402
from rawrt.limits import Limits  # noqa: E402
from rawrt.sansio.h2.frames import (  # noqa: E402
    PREFACE,
    DataFrame,
    FrameType,
    HeadersFrame,
    SettingCode,
    SettingsFrame,
    WindowUpdateFrame,
)
from rawrt.sansio.h2.hpack import STATIC_TABLE, Encoder, HeaderTable, decode_integer, decode_string  # noqa: E402
from rawrt.server import Server  # noqa: E402
from rawrt.server.h2trace import describe_frame  # noqa: E402


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes, bytes]]:
    """(type, flags, stream, header octets, payload) of each whole frame in ``data``."""
    out = []
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        frame_type, flags = data[pos + 3], data[pos + 4]
        stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        out.append((frame_type, flags, stream_id, data[pos : pos + 9], data[pos + 9 : pos + 9 + length]))
        pos += 9 + length
    return out


def explain_block(block: bytes, table: HeaderTable) -> list[str]:
    """Each representation of an HPACK block (RFC 7541 §6), with its octets; ``table`` follows along."""
    lines = []
    pos = 0
    while pos < len(block):
        start = pos
        octet = block[pos]
        if octet & 0x80:
            index, pos = decode_integer(block, pos, 7)
            name, value = table.get(index)
            where = "static" if index <= len(STATIC_TABLE) - 1 else "dynamic"
            lines.append(
                f"{block[start:pos].hex(' ')}  indexed field, {where} index {index}: {_f(name, value)}"
            )
            continue
        if octet & 0x20 and not octet & 0x40:
            size, pos = decode_integer(block, pos, 5)
            table.resize(size)
            lines.append(f"{block[start:pos].hex(' ')}  dynamic table size update: {size}")
            continue
        if octet & 0x40:
            kind, prefix, add = "literal with incremental indexing", 6, True
        elif octet & 0x10:
            kind, prefix, add = "literal never indexed", 4, False
        else:
            kind, prefix, add = "literal without indexing", 4, False
        index, pos = decode_integer(block, pos, prefix)
        head = block[start:pos].hex(" ")
        parts = []
        if index:
            name = table.get(index)[0]
            parts.append(f"name from index {index}")
        else:
            huff = bool(block[pos] & 0x80)
            name_start = pos
            name, pos = decode_string(block, pos)
            parts.append(
                f"name {block[name_start:pos].hex(' ')} ({'Huffman' if huff else 'raw'}, {len(name)} chars)"
            )
        huff = bool(block[pos] & 0x80)
        value_start = pos
        value, pos = decode_string(block, pos)
        n = pos - value_start
        value_hex = (
            block[value_start:pos].hex(" ")
            if n <= 24
            else block[value_start : value_start + 24].hex(" ") + " ..."
        )
        parts.append(
            f"value {value_hex} ({'Huffman' if huff else 'raw'}: {n - 1} octets for {len(value)} chars)"
        )
        lines.append(f"{head}  {kind}, " + ", ".join(parts) + f": {_f(name, value)}")
        if add:
            table.add(name, value)
            lines.append(f"      -> dynamic table index 62: {_f(name, value)}")
    return lines


def _f(name: bytes, value: bytes) -> str:
    return f"{name.decode()}: {value.decode()}"


def show(title: str, arrow: str, data: bytes, table: HeaderTable) -> None:
    print(f"\n### {title}\n")
    for frame_type, flags, stream_id, header, payload in frames_of(data):
        text = describe_frame(frame_type, flags, stream_id, len(payload), payload)
        print(f"{arrow} {header.hex(' ')}  {text}")
        if frame_type == FrameType.HEADERS:
            print(f"   block: {payload.hex(' ')}")
            for line in explain_block(payload, table):
                print(f"     {line}")
        elif frame_type == FrameType.DATA and len(payload) <= 64:
            print(f"   payload: {payload!r}")


async def read_for(reader: asyncio.StreamReader, seconds: float) -> bytes:
    out = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except (TimeoutError, asyncio.TimeoutError):
            break
        if not chunk:
            break
        out += chunk
    return out


async def main() -> None:
    limits = Limits()
    server = Server(create_app(limits), limits)
    await server.start("127.0.0.1", 0)
    port = server.port
    authority = f"127.0.0.1:{port}".encode()
    requests_table, responses_table = HeaderTable(), HeaderTable()
    encoder = Encoder()

    def request(
        stream_id: int, method: bytes, path: bytes, end: bool, extra: list[tuple[bytes, bytes]]
    ) -> bytes:
        fields = [(b":method", method), (b":scheme", b"http"), (b":authority", authority), (b":path", path)]
        block = encoder.encode(fields + [(b"user-agent", b"capture_h2/1"), *extra])
        return HeadersFrame(stream_id, block, end_stream=end, end_headers=True).serialize()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # RFC 9113 §3.4: the preface, then our SETTINGS (a 1 MiB stream window, so the echo is never held back).
    hello = (
        PREFACE
        + SettingsFrame(
            ((SettingCode.ENABLE_PUSH, 0), (SettingCode.INITIAL_WINDOW_SIZE, 1 << 20))
        ).serialize()
    )
    hello += WindowUpdateFrame(0, (1 << 24)).serialize()
    writer.write(hello)
    print(f"## client preface + SETTINGS + WINDOW_UPDATE\n\n{PREFACE!r}\n{PREFACE.hex(' ')}")
    show("client -> server: SETTINGS, WINDOW_UPDATE", "<<", hello[len(PREFACE) :], requests_table)
    first = await read_for(reader, 0.3)
    show("server -> client: SETTINGS, WINDOW_UPDATE", ">>", first, responses_table)
    ack = SettingsFrame(ack=True).serialize()
    writer.write(ack)

    out = request(1, b"GET", b"/hello", True, [])
    writer.write(out)
    show("client -> server: GET /hello (stream 1)", "<<", ack + out, requests_table)
    show("server -> client: the answer", ">>", await read_for(reader, 0.3), responses_table)
    out = request(3, b"GET", b"/hello", True, [])
    writer.write(out)
    show("client -> server: GET /hello again (stream 3)", "<<", out, requests_table)
    show("server -> client: the answer", ">>", await read_for(reader, 0.3), responses_table)

    out = request(5, b"GET", b"/events?channel=docs", True, [(b"accept", b"text/event-stream")])
    writer.write(out)
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    w1.write(
        b"GET /events?channel=docs HTTP/1.1\r\nHost: " + authority + b"\r\nAccept: text/event-stream\r\n\r\n"
    )
    show("client -> server: GET /events (stream 5)", "<<", out, requests_table)
    show("server -> client: the stream opens", ">>", await read_for(reader, 0.3), responses_table)
    print("\n### HTTP/1.1: the same stream opens\n")
    print(repr(await read_for(r1, 0.3)))
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    w2.write(
        b"POST /publish?channel=docs HTTP/1.1\r\nHost: " + authority + b"\r\nContent-Length: 5\r\n\r\nhello"
    )
    await read_for(r2, 0.2)
    show("server -> client: one event, as a DATA frame", ">>", await read_for(reader, 0.3), responses_table)
    print("\n### HTTP/1.1: the same event as a chunk\n")
    print(repr(await read_for(r1, 0.3)))

    # 600,000 octets against a stream window of 256 KiB (Limits.h2_stream_window): the client sends what
    # the window allows, then waits for the WINDOW_UPDATEs the server sends as the handler reads (§6.9).
    print("\n### POST /echo with 600,000 octets (stream 7)")
    out = request(7, b"POST", b"/echo", False, [(b"content-length", b"600000")])
    writer.write(out)
    show("client -> server: its HEADERS", "<<", out, requests_table)
    body = os.urandom(600_000)
    window, sent = 262_144, 0
    while sent < len(body):
        size = min(window, len(body) - sent)
        out = b""
        for i in range(sent, sent + size, 16384):
            piece = body[i : min(i + 16384, sent + size)]
            out += DataFrame(7, piece, end_stream=i + len(piece) == len(body)).serialize()
        writer.write(out)
        frames = len(frames_of(out))
        print(f"\n<< {frames} DATA frames, {size:,} octets (body octets {sent:,} to {sent + size:,})")
        sent += size
        window -= size
        for frame_type, flags, stream_id, header, payload in frames_of(await read_for(reader, 0.5)):
            if frame_type == FrameType.WINDOW_UPDATE and stream_id == 7:
                window += int.from_bytes(payload, "big")
            if frame_type != FrameType.DATA:
                text = describe_frame(frame_type, flags, stream_id, len(payload), payload)
                print(f">> {header.hex(' ')}  {text}")
            elif flags & 0x1:
                print(f">> ... the echo's DATA frames, the last: {header.hex(' ')} (END_STREAM)")

    shutdown = asyncio.ensure_future(server.shutdown(timeout=2.0))
    show("server -> client: shutdown", ">>", await read_for(reader, 1.0), responses_table)
    print("\n### HTTP/1.1 at shutdown\n")
    print(repr(await read_for(r1, 0.5)))
    for w in (writer, w1, w2):
        w.close()
    await shutdown


if __name__ == "__main__":
    asyncio.run(main())
