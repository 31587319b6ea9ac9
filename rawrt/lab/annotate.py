"""The lab's wire view, sans I/O: the bytes of one tapped exchange in, annotated records out.

Contract
--------
One :class:`Annotator` per exchange that a lab page's lane made: its request head
(:meth:`Annotator.request`), then the bytes rawrt wrote for it (:meth:`Annotator.sent`, in order, cut
anywhere) and, after a ``101``, the WebSocket's bytes in both directions (:meth:`Annotator.received` for the
client's). Each call returns the :class:`Record` s that the given bytes completed: a head, a chunk, a body, a
frame. Nothing here raises on odd bytes: the server has already answered or refused them, this only explains
them, and what it cannot decode it shows raw, marked "not decoded".

Strategy
--------
The parsing is the server's own, not a second implementation: request heads through
:func:`rawrt.sansio.http11.readers.parse_head`, response heads and their framing through the client-side
:class:`~rawrt.sansio.http11.client.ResponseReader` (RFC 9112 §6.3, decided as a client decides it),
chunk-size lines through ``abnf.CHUNK_LINE_RE`` (§7.1), event streams through
:class:`~rawrt.sansio.sse.SSEParser`, frame headers through :func:`~rawrt.sansio.ws.frames.parse_header`
(RFC 6455 §5.2), masks through :func:`~rawrt.sansio.ws.frames.apply_mask` (§5.3), compressed messages through
:class:`~rawrt.sansio.ws.deflate.PerMessageDeflate` (RFC 7692) and the handshake's proof through
:func:`~rawrt.sansio.ws.handshake.accept_key` (§4.2.2). This module walks the bytes and writes the notes.

Bounded: a response head is buffered up to ``max_header_bytes``, a chunk-size line up to the chunk limits;
bodies, chunks and frames keep at most :data:`PREVIEW` bytes for display, except a compressed frame, which is
kept whole because inflating needs all of it (the connection has already bounded it by
``ws_max_frame_size``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from ..errors import ProtocolError
from ..limits import DEFAULT_LIMITS, MAX_CHUNK_SIZE_DIGITS
from ..sansio import abnf
from ..sansio.http11.client import Framing, ResponseReader
from ..sansio.http11.readers import parse_head
from ..sansio.sse import MessageEvent, SSEParser
from ..sansio.ws.deflate import PerMessageDeflate
from ..sansio.ws.frames import FrameHeader, Opcode, apply_mask, parse_close, parse_header
from ..sansio.ws.handshake import GUID, accept_key

__all__ = ["Annotator", "Record", "Row", "PREVIEW", "show", "hexdump"]

#: Payload bytes a record shows (as text, or as hex for frames); the rest is counted, not kept.
PREVIEW = 512
#: Bytes of a frame payload shown in hex: a frame's bytes are the lesson, but a page of hex is not.
HEX_PREVIEW = 48
#: The most a compressed frame may inflate to here (the connection itself enforced its message limit).
_MAX_INFLATE = 16 * 1024 * 1024
# RFC 6455 §5.2: a frame header is at most 14 bytes (2, an 8-byte length, a 4-byte masking key).
_MAX_FRAME_HEADER = 14
# A chunk-size line: the digits, the extensions rawrt allows, CRLF (RFC 9112 §7.1.1).
_MAX_CHUNK_LINE = MAX_CHUNK_SIZE_DIGITS + DEFAULT_LIMITS.max_chunk_ext + 2

# C0 controls and DEL, shown as escapes so that a row is one line of visible characters.
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
_ESCAPES.update({0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t"})


def show(data: bytes, limit: int = PREVIEW) -> str:
    """``data`` as one line of text: UTF-8 where valid, ``\\r``/``\\n``/``\\xNN`` escapes for the rest, and
    a count of what is past ``limit``."""
    text = data[:limit].decode("utf-8", "backslashreplace").translate(_ESCAPES)
    if len(data) > limit:
        text += f" … ({len(data) - limit} more bytes)"
    return text


def _preview(kept: bytes, total: int) -> str:
    """The first bytes of a piece of ``total`` bytes, of which only ``kept`` were kept (:data:`PREVIEW`)."""
    text = show(kept)
    if total > len(kept):
        text += f" … ({total - len(kept)} more bytes)"
    return text


def _clip(text: str, limit: int = 40) -> str:
    """A title's excerpt: one line, at most ``limit`` characters."""
    text = show(text.encode("utf-8"), 4 * limit)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hexdump(data: bytes, limit: int = HEX_PREVIEW) -> str:
    """``data`` as space-separated hex pairs, with a count of what is past ``limit``."""
    text = data[:limit].hex(" ")
    if len(data) > limit:
        text += f" … ({len(data) - limit} more bytes)"
    return text


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a record: some bytes and what they mean.

    Attributes:
        raw: the bytes as shown (:func:`show`, or :func:`hexdump` when ``hex``).
        note: what they mean, with the RFC section that says so.
        hex: ``raw`` is hex pairs.
        derived: not bytes on the wire but worked out from them (an unmasked payload, an accept key).
    """

    raw: str
    note: str
    hex: bool = False
    derived: bool = False


@dataclass(frozen=True, slots=True)
class Record:
    """One annotated unit of the wire: a head, a chunk, a body, a WebSocket frame.

    Attributes:
        direction: ``"in"`` (rawrt read it from the client) or ``"out"`` (rawrt wrote it).
        kind: ``request``, ``response``, ``chunk``, ``body``, ``frame``, ``raw`` (not decoded) or ``closed``.
        title: a one-line summary.
        size: the bytes on the wire it covers.
        rows: the bytes, piece by piece, with notes.
    """

    direction: str
    kind: str
    title: str
    size: int
    rows: tuple[Row, ...]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready values; rows are ``[raw, note, flags]``, flags ``"h"`` hex and ``"d"`` derived."""
        return {
            "dir": self.direction,
            "kind": self.kind,
            "title": self.title,
            "size": self.size,
            "rows": [[r.raw, r.note, ("h" if r.hex else "") + ("d" if r.derived else "")] for r in self.rows],
        }


# --- notes on header fields ----------------------------------------------------------------------------

_FIELD_NOTES = {
    b"host": "the authority the request is for (RFC 9110 §7.2); required in HTTP/1.1",
    b"connection": "options for this hop only (RFC 9110 §7.6.1): keep-alive, close, upgrade",
    b"upgrade": "the protocol to switch to (RFC 9110 §7.8)",
    b"sec-websocket-key": "16 random bytes in base64: the server must prove it read them (RFC 6455 §4.1)",
    b"sec-websocket-version": "13, the only version (RFC 6455 §4.1)",
    b"sec-websocket-extensions": "extensions: permessage-deflate compresses each message (RFC 7692)",
    b"last-event-id": "the browser resumes the event stream after this id (WHATWG HTML §9.2.4)",
    b"if-none-match": "the last answer's ETag: if nothing changed the answer is 304 (RFC 9110 §13.1.2)",
    b"etag": "names this answer's version; sent back as If-None-Match (RFC 9110 §8.8.3)",
    b"content-length": "the body's size in bytes: where it ends (RFC 9112 §6.2)",
    b"transfer-encoding": "chunked: the body comes as size-prefixed chunks, length unknown (RFC 9112 §7.1)",
    b"content-type": "the body's media type (RFC 9110 §8.3)",
    b"cache-control": "caching rules (RFC 9111 §5.2)",
    b"date": "when the answer was made (RFC 9110 §6.6.1)",
    b"server": "the server software (RFC 9110 §10.2.4)",
    b"x-accel-buffering": "no: asks nginx not to buffer this stream",
    b"origin": "the page's origin (RFC 6454); a WebSocket server may refuse others",
    b"accept": "media types the client takes (RFC 9110 §12.5.1)",
    b"user-agent": "the client software (RFC 9110 §10.1.5)",
    b"retry-after": "how long to wait before retrying (RFC 9110 §10.2.3)",
    b"sec-websocket-accept": "base64(SHA-1(key + GUID)): the key was read (RFC 6455 §4.2.2), see below",
}


def _field_note(name: bytes, value: bytes) -> str:
    lname = name.lower()
    note = _FIELD_NOTES.get(lname, "")
    if lname == b"connection" and value.lower() == b"close":
        note = "close: the connection ends after this answer (RFC 9112 §9.6)"
    return (
        f"{name.decode('ascii', 'replace')}: {note}" if note else f"field {name.decode('ascii', 'replace')}"
    )


def _head_rows(head: bytes, first_note: str) -> list[Row]:
    """A head line by line: the start line, each field line, the empty line (RFC 9112 §2.1)."""
    lines = head.split(b"\r\n")[:-2]  # the head ends with CRLF CRLF: two empty pieces after the split
    rows = [Row(show(lines[0] + b"\r\n"), first_note)]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        rows.append(Row(show(line + b"\r\n"), _field_note(name, value.strip(b" \t"))))
    return rows


# --- the annotator -------------------------------------------------------------------------------------


class Annotator:
    """The wire view of one exchange, and of the WebSocket it may become (see the module docstring)."""

    def __init__(self) -> None:
        self._method = b"GET"
        self._upgrade = False
        self._key = b""
        # The response side: bytes written and not explained yet, and what is expected next.
        self._out = bytearray()
        self._state = _HEAD
        self._sse = False
        self._json = False
        self._left = 0  # bytes of the current body or chunk still to come
        self._piece = bytearray()  # their first bytes, for display
        self._chunk_line = b""
        self._size = 0  # the current unit's wire bytes so far
        # After a 101: a frame walker per direction.
        self._frames_in: _Frames | None = None
        self._frames_out: _Frames | None = None

    # ------------------------------------------------------------------------------------ the surface

    @property
    def upgraded(self) -> bool:
        """Whether a ``101`` went out: the bytes from here on are WebSocket frames."""
        return self._frames_out is not None

    def request(self, head: bytes) -> list[Record]:
        """Explain a request head, exactly as received (request-line to empty line)."""
        end = head.find(b"\r\n\r\n")
        try:
            request = parse_head(head, end, DEFAULT_LIMITS)
        except (ProtocolError, ValueError):
            return [_raw("in", head, "request head (not decoded)")]
        self._method = request.method
        self._upgrade = request.upgrade is not None
        for name, value in request.headers:
            if name.lower() == b"sec-websocket-key":
                self._key = value
        version = request.http_version.decode()
        first = (
            f"request-line: method {request.method.decode()}, target, HTTP/{version} (RFC 9112 §3);"
            " then one field per line"
        )
        rows = _head_rows(head, first)
        rows.append(Row("\\r\\n", "empty line: the head ends (RFC 9112 §2.1)"))
        title = f"{request.method.decode()} {_clip(request.target.decode('latin-1'), 90)} HTTP/{version}"
        return [Record("in", "request", title, len(head), tuple(rows))]

    def received(self, data: bytes) -> list[Record]:
        """Explain bytes read from the client after the head: WebSocket frames once upgraded."""
        if self._frames_in is None:
            return [_raw("in", data, "bytes after the head (not decoded)")] if data else []
        return self._frames_in.feed(data)

    def sent(self, data: bytes) -> list[Record]:
        """Explain bytes written to the client, in order."""
        if self._frames_out is not None:
            return self._frames_out.feed(data)
        self._out += data
        records: list[Record] = []
        while self._out and self._frames_out is None:
            record = self._step()
            if record is _MORE:
                break
            if record is not None:
                records.append(record)
        if self._frames_out is not None and self._out:
            rest, self._out = bytes(self._out), bytearray()
            records += self._frames_out.feed(rest)
        return records

    # ------------------------------------------------------------------------------ the response side

    def _step(self) -> Record | None:
        """Explain the next unit of the response, if it is all there: a record, None (progress but no
        record yet), or _MORE (nothing to do until more bytes come)."""
        state = self._state
        out = self._out
        if state is _HEAD:
            end = out.find(b"\r\n\r\n")
            if end < 0:
                if len(out) > DEFAULT_LIMITS.max_header_bytes:
                    return self._give_up("response head too long")
                return _MORE
            head = bytes(out[: end + 4])
            del out[: end + 4]
            return self._response_head(head)
        if state is _CHUNK_LINE:
            end = out.find(b"\r\n")
            if end < 0:
                return self._give_up("chunk-size line too long") if len(out) > _MAX_CHUNK_LINE else _MORE
            line = bytes(out[:end])
            del out[: end + 2]
            match = abnf.CHUNK_LINE_RE.fullmatch(line)
            if match is None:
                return self._give_up(f"invalid chunk-size line {show(line, 40)}")
            self._chunk_line = line + b"\r\n"
            self._left = int(match.group(1), 16)
            self._piece = bytearray()
            self._state = _CHUNK_DATA if self._left else _TRAILERS
            return None
        if state is _CHUNK_DATA or state is _BODY:
            take = min(self._left, len(out))
            if len(self._piece) < PREVIEW:
                self._piece += out[: min(take, PREVIEW - len(self._piece))]
            self._size += take
            self._left -= take
            del out[:take]
            if self._left:
                return _MORE
            if state is _BODY:
                self._state = _DONE
                return self._body_record()
            self._state = _CHUNK_END
            return None
        if state is _CHUNK_END:
            if len(out) < 2:
                return _MORE
            end_bytes = bytes(out[:2])
            del out[:2]
            self._state = _CHUNK_LINE
            return self._chunk_record(end_bytes)
        if state is _TRAILERS:
            if out[:2] == b"\r\n":
                del out[:2]
                self._state = _DONE
                rows = (
                    Row(show(self._chunk_line), "last-chunk: size 0, the body is complete (RFC 9112 §7.1)"),
                    Row("\\r\\n", "empty line: no trailer fields; the next request may follow"),
                )
                return Record("out", "chunk", "last chunk: end of the body", len(self._chunk_line) + 2, rows)
            end = out.find(b"\r\n\r\n")
            if end < 0:
                return self._give_up("trailer section too long") if len(out) > 65536 else _MORE
            trailers = bytes(out[: end + 4])
            del out[: end + 4]
            self._state = _DONE
            rows = (
                Row(show(self._chunk_line), "last-chunk: size 0 (RFC 9112 §7.1)"),
                Row(show(trailers), "trailer fields, then the empty line (RFC 9112 §7.1.2)"),
            )
            return Record(
                "out", "chunk", "last chunk, with trailers", len(self._chunk_line) + len(trailers), rows
            )
        if state is _CLOSE:
            piece = bytes(out)
            out.clear()
            note = "body bytes: it runs until the server closes the connection (RFC 9112 §6.3 rule 8)"
            if self._sse:
                return Record(
                    "out", "body", _sse_title(piece), len(piece), (Row(show(piece), note), *_sse_rows(piece))
                )
            return Record("out", "body", f"body, {len(piece)} bytes", len(piece), (Row(show(piece), note),))
        # _DONE or _RAW: bytes nothing explains (the response was over, or undecodable).
        piece = bytes(out)
        out.clear()
        return _raw("out", piece, "bytes after the response (not decoded)")

    def _give_up(self, why: str) -> Record:
        self._state = _RAW
        piece = bytes(self._out)
        self._out.clear()
        return _raw("out", piece, f"not decoded: {why}")

    def _response_head(self, head: bytes) -> Record:
        reader = ResponseReader(DEFAULT_LIMITS, method=self._method, upgrade=self._upgrade)
        reader.receive_data(head)
        try:
            events = reader.events_received()
        except ProtocolError as exc:
            self._state = _RAW
            return _raw("out", head, f"response head (not decoded: {exc})")
        status_line = head[: head.find(b"\r\n")]
        if not events:
            # RFC 9110 §15.2: an interim (1xx) response; the final one follows.
            rows = _head_rows(head, "status-line of an interim response (RFC 9110 §15.2)")
            rows.append(Row("\\r\\n", "empty line: the final response follows"))
            return Record("out", "response", show(status_line), len(head), tuple(rows))
        response = reader.response
        assert response is not None
        content_type = (response.header(b"content-type") or b"").lower()
        self._sse = content_type.startswith(b"text/event-stream")
        self._json = content_type.startswith(b"application/json")
        first = f"status-line: HTTP/{response.http_version.decode()}, status {response.status} (RFC 9112 §4)"
        rows = _head_rows(head, first)
        framing = reader.framing
        self._size = 0
        self._piece = bytearray()
        if response.status == 101:
            # The proof goes right under the field it explains.
            at = next(
                (i for i, row in enumerate(rows) if row.raw.lower().startswith("sec-websocket-accept")), 0
            )
            rows[at + 1 : at + 1] = self._accept_rows(response.header(b"sec-websocket-accept"))
            extensions = response.header(b"sec-websocket-extensions") or b""
            end = "empty line: from here on the connection speaks WebSocket frames (RFC 6455 §4.2.2)"
            if b"permessage-deflate" in extensions:
                end += "; messages sent with RSV1=1 are compressed (RFC 7692 §6)"
            self._frames_in = _Frames("in")
            self._frames_out = _Frames("out")
        elif framing is Framing.CHUNKED:
            end = "empty line: the body follows as chunks (RFC 9112 §7.1)"
            self._state = _CHUNK_LINE
        elif framing is Framing.LENGTH:
            self._left = int(response.header(b"content-length") or b"0")
            end = f"empty line: the body follows, {self._left} bytes (Content-Length)"
            self._state = _BODY if self._left else _DONE
        elif framing is Framing.CLOSE:
            end = "empty line: the body follows until the connection closes (RFC 9112 §6.3)"
            self._state = _CLOSE
        else:
            end = "empty line: no body (RFC 9112 §6.3: a response to HEAD, 204 or 304)"
            self._state = _DONE
        rows.append(Row("\\r\\n", end))
        return Record("out", "response", show(status_line), len(head), tuple(rows))

    def _accept_rows(self, accept: bytes | None) -> list[Row]:
        """How ``Sec-WebSocket-Accept`` is worked out from the request's key (RFC 6455 §4.2.2 item 5.4)."""
        if not self._key:
            return []
        digest = hashlib.sha1(self._key + GUID, usedforsecurity=False).digest()
        expected = accept_key(self._key)
        verdict = "= Sec-WebSocket-Accept ✓" if accept == expected else "≠ Sec-WebSocket-Accept ✗"
        return [
            Row(show(self._key + GUID), "Sec-WebSocket-Key + the GUID of RFC 6455 §1.3", derived=True),
            Row(digest.hex(" "), "SHA-1 of that: 20 bytes", hex=True, derived=True),
            Row(show(base64.b64encode(digest)), f"in base64 {verdict}", derived=True),
        ]

    def _chunk_record(self, end_bytes: bytes) -> Record:
        data = bytes(self._piece)
        size = len(self._chunk_line) + self._size + len(end_bytes)
        n = self._size
        self._size = 0
        rows = [
            Row(show(self._chunk_line), f"chunk-size: 0x{n:x} = {n} bytes of data follow (RFC 9112 §7.1)")
        ]
        if self._sse:
            rows += _sse_rows(data)
            if n > len(data):
                rows.append(Row(f"… ({n - len(data)} more bytes)", "the rest of the chunk's data, not kept"))
            title = _sse_title(data)
        else:
            rows.append(Row(_preview(data, n), f"chunk data, {n} bytes"))
            title = f"chunk, {n} bytes"
        rows.append(Row(show(end_bytes), "CRLF: the chunk's data ends"))
        return Record("out", "chunk", title, size, tuple(rows))

    def _body_record(self) -> Record:
        data = bytes(self._piece)
        n = self._size
        self._size = 0
        note = f"body: {n} bytes, as Content-Length said"
        if self._json and n == len(data):
            try:
                value = json.loads(data)
            except ValueError:
                value = None
            if isinstance(value, dict) and "events" in value:
                events = value["events"]
                count = len(events) if isinstance(events, list) else 0
                note += f"; JSON: {count} event{'s' if count != 1 else ''}, cursor {value.get('cursor')}"
        return Record("out", "body", f"body, {n} bytes", n, (Row(_preview(data, n), note),))


# Response-side states.
_HEAD = "head"
_CHUNK_LINE = "chunk-line"
_CHUNK_DATA = "chunk-data"
_CHUNK_END = "chunk-end"
_TRAILERS = "trailers"
_BODY = "body"
_CLOSE = "close"
_DONE = "done"
_RAW = "raw"
#: What a step returns when it needs more bytes.
_MORE = Record("out", "raw", "", 0, ())


def _raw(direction: str, data: bytes, why: str) -> Record:
    return Record(direction, "raw", why, len(data), (Row(show(data), why),))


# --- Server-Sent Events (WHATWG HTML §9.2.6) -------------------------------------------------------------


def _sse_rows(data: bytes) -> list[Row]:
    """An event stream's lines, each with what the browser does with it."""
    rows = []
    for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        if not line:
            note = "blank line: dispatch the event (if it has data)"
        elif line.startswith(b":"):
            note = "comment: ignored; a heartbeat keeps the stream and proxies awake (§9.2.7)"
        else:
            name = line.partition(b":")[0]
            note = {
                b"id": "id field: becomes lastEventId, sent back as Last-Event-ID on reconnection",
                b"data": "data field: one line of the event's data",
                b"event": "event field: the event's type (message when absent)",
                b"retry": "retry field: the reconnection delay in milliseconds",
            }.get(name, "unknown field: ignored")
        rows.append(Row(show(line + b"\n"), note))
    return rows


def _sse_title(data: bytes) -> str:
    parser = SSEParser()
    parser.receive_data(data)
    events = [e for e in parser.events_received() if isinstance(e, MessageEvent)]
    if events:
        event = events[0]
        kind = "" if event.type == "message" else f" ({event.type})"
        more = f" +{len(events) - 1}" if len(events) > 1 else ""
        return f"SSE event id={event.last_event_id}{kind}: {_clip(event.data)}{more}"
    if data.startswith(b":"):
        return "SSE comment (heartbeat)"
    if parser.last_event_id:
        return f"SSE id={parser.last_event_id}: a position, no data (nothing dispatched)"
    return "SSE lines"


# --- WebSocket frames (RFC 6455 §5) ---------------------------------------------------------------------

_OPCODE_NAMES = {
    Opcode.CONT: "continuation",
    Opcode.TEXT: "text",
    Opcode.BINARY: "binary",
    Opcode.CLOSE: "close",
    Opcode.PING: "ping",
    Opcode.PONG: "pong",
}


class _Frames:
    """The frames of one direction: a header arriving, then its payload, then the record."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self._head = bytearray()
        self._header: FrameHeader | None = None
        self._payload = bytearray()
        self._left = 0
        self._keep_all = False
        # RFC 7692 §6.1: RSV1 on a message's first frame marks the whole message compressed.
        self._compressed = False
        self._inflater = PerMessageDeflate()

    def feed(self, data: bytes) -> list[Record]:
        records: list[Record] = []
        pos, end = 0, len(data)
        while pos < end:
            header = self._header
            if header is None:
                take = min(_MAX_FRAME_HEADER - len(self._head), end - pos)
                self._head += data[pos : pos + take]
                pos += take
                header = parse_header(self._head)
                if header is None:
                    return records
                pos -= len(self._head) - header.size  # what followed the header is payload
                del self._head[header.size :]
                self._header, self._left = header, header.length
                self._payload = bytearray()
                opcode = header.opcode
                if opcode in (Opcode.TEXT, Opcode.BINARY):
                    self._compressed = header.rsv1
                # A compressed message is inflated whole; a control frame is at most 125 bytes (§5.5).
                self._keep_all = (opcode < 8 and self._compressed) or opcode >= 8
            n = min(self._left, end - pos)
            if self._keep_all or len(self._payload) < PREVIEW:
                keep = n if self._keep_all else min(n, PREVIEW - len(self._payload))
                self._payload += data[pos : pos + keep]
            pos += n
            self._left -= n
            if self._left:
                return records
            records.append(self._record(header, bytes(self._head), bytes(self._payload)))
            self._header = None
            self._head.clear()
        return records

    def _record(self, header: FrameHeader, head: bytes, payload: bytes) -> Record:
        opcode = header.opcode
        name = _OPCODE_NAMES.get(opcode, "reserved")  # type: ignore[call-overload]
        b0 = head[0]
        rows = [
            Row(
                f"{b0:02x}",
                f"FIN={int(header.fin)} RSV1={int(header.rsv1)} RSV2={b0 >> 5 & 1} RSV3={b0 >> 4 & 1}"
                f" opcode={opcode} ({name}) (RFC 6455 §5.2)",
                hex=True,
            )
        ]
        masked = bool(header.mask_key)
        b1 = head[1] & 0x7F
        if b1 < 126:
            length_note = f"payload length {b1} (7-bit form: up to 125)"
        elif b1 == 126:
            length_note = "126: the length is in the next 2 bytes (16-bit form)"
        else:
            length_note = "127: the length is in the next 8 bytes (64-bit form)"
        rows.append(Row(f"{head[1]:02x}", f"MASK={int(masked)}, {length_note}", hex=True))
        extended = head[2 : header.size - (4 if masked else 0)]
        if extended:
            rows.append(Row(extended.hex(" "), f"payload length {header.length}", hex=True))
        if masked:
            who = "a client masks every frame (RFC 6455 §5.3)"
            rows.append(Row(header.mask_key.hex(" "), f"masking key: {who}", hex=True))
        length = header.length
        plain = apply_mask(payload, header.mask_key) if masked else payload
        compressed = self._compressed and opcode < 8
        if length:
            shown = "masked" if masked else "as sent"
            what = f"payload, {length} bytes, {shown}"
            if compressed:
                what += " (compressed: RSV1 on the message's first frame, RFC 7692 §6)"
            rows.append(Row(hexdump(payload), what, hex=True))
            if masked:
                rows.append(Row(hexdump(plain), "unmasked: each byte XOR key[i % 4]", hex=True, derived=True))
        title = f"{name} frame, {length} B"
        if compressed:
            try:
                text = self._inflater.decompress(plain, fin=header.fin, max_length=_MAX_INFLATE)
            except ProtocolError as exc:
                rows.append(Row("", f"could not inflate: {exc}", derived=True))
            else:
                rows.append(Row(show(text), f"inflated: {len(text)} bytes", derived=True))
                title = f"{name} frame, {length} B compressed → {len(text)} B"
            if header.fin:
                self._compressed = False
        elif opcode == Opcode.CLOSE:
            try:
                code, reason = parse_close(plain)
            except ProtocolError as exc:
                rows.append(Row("", f"invalid close payload: {exc}", derived=True))
            else:
                rows.append(
                    Row(f"{code} {show(reason.encode())}", "close code and reason (§5.5.1)", derived=True)
                )
                title = f"close frame: {code}"
        elif length and opcode != Opcode.BINARY:
            rows.append(Row(_preview(plain, length), "the payload as text", derived=True))
        if not header.fin and opcode < 8:
            title += " (more frames follow)"
        if masked:
            title += ", masked"
        size = header.size + length
        return Record(self.direction, "frame", title, size, tuple(rows))
