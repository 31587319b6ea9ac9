"""Server-Sent Events: the ``text/event-stream`` format, both ways, without I/O.

Spec: WHATWG HTML Living Standard §9.2 "Server-sent events", in particular §9.2.5 "Parsing an event stream"
(the ABNF) and §9.2.6 "Interpreting an event stream" (the algorithm a browser runs). Section numbers below
refer to it.

Contract
--------
Encoding (the server side). The application builds a :class:`ServerSentEvent`; it is validated when it is
built, never when it is sent, so a bad id fails in the handler that made it, with a stack trace pointing at
it (h11's "validate what the app builds, trust what the parser builds"). :meth:`ServerSentEvent.encode`
then returns the exact wire bytes. :func:`encode_comment` makes the heartbeat comment that keeps proxies
from timing out an idle stream.

Decoding (the client side, the tests and the fuzzers). :class:`SSEParser` runs the §9.2.6 algorithm
incrementally: bytes go in through ``receive_data``/``receive_eof`` in chunks cut anywhere (inside a UTF-8
sequence, between the CR and the LF of a CRLF); ``events_received`` gives the :class:`MessageEvent` and
:class:`RetryChanged` events parsed so far, in stream order. Feeding a stream whole or one byte at a time
gives the same events: the tests and ``fuzz/fuzz_sse.py`` check exactly that.

Strategy
--------
The spec defines the stream as *text* (UTF-8 decoded with replacement), and every line terminator is ASCII,
so the parser decodes first, with a codecs incremental decoder that holds back an incomplete sequence, and
splits lines on the decoded text. A line still waiting for its terminator is kept as a list of pieces, so a
long line arriving in many small chunks costs O(total length), not O(length squared).

Deliberate limits and deviations (each one is tested):

* A browser buffers without bound; this parser raises :class:`~rawrt.errors.LimitExceeded` when one line,
  or the data of one event plus the line being read, exceeds ``max_event_size`` characters, so a hostile
  or broken server cannot make a client buffer forever.
* ``retry`` with an empty value is ignored (the WPT test ``format-field-retry-empty`` expects that, and
  browsers do it), and so is a value above 2**64 - 1 ms, as in Chromium, which parses it into a 64-bit
  unsigned integer and ignores it on overflow. Both also keep ``int()`` away from a 1 MB digit string.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from rawrt.errors import InvalidEventError, LimitExceeded, LocalProtocolError, printable
from rawrt.limits import DEFAULT_LIMITS

__all__ = [
    "ServerSentEvent",
    "encode_comment",
    "MessageEvent",
    "RetryChanged",
    "SSEEvent",
    "SSEParser",
    "CONTENT_TYPE",
]

#: The media type of an event stream (§9.2.5). UTF-8 is the only encoding the format allows; the charset
#: parameter is there for proxies and tools that look for one, browsers ignore it.
CONTENT_TYPE = "text/event-stream; charset=utf-8"

# §9.2.5: end-of-line = ( cr lf / cr / lf ). Used to split data on the encoding side and lines on the
# decoding side. CRLF is tried first so it counts as one terminator, not two.
_EOL = re.compile(r"\r\n|\r|\n")

# What an app-supplied event name, id or comment may not contain: any line terminator would end the field
# early and let the rest be read as another field (header-injection, SSE flavour).
_NEWLINE = re.compile(r"[\r\n]")

# Chromium parses ``retry`` into a uint64 and drops it on overflow; 20 digits hold 2**64 - 1.
_MAX_RETRY = 2**64 - 1


def _check_line(what: str, value: str) -> None:
    """Refuse a field value that would not stay on one line (§9.2.5: ``any-char`` excludes CR and LF)."""
    if _NEWLINE.search(value):
        raise InvalidEventError(
            f"SSE {what} must not contain CR or LF (it would end the line early): {value!r}"
        )


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event to send on an event stream, validated when it is built.

    The fields are written in the order comment, ``event``, ``id``, ``retry``, ``data``, then the blank line
    that dispatches the event (§9.2.6: fields only take effect on the blank line, so their order does not
    matter to the browser; this one is the one the spec's examples use).

    ``data`` is split on CR, LF and CRLF into one ``data:`` line per line. The format cannot carry a bare CR
    (every CR is a line terminator, §9.2.5), so a client receives every CR and CRLF of ``data`` as LF: send
    JSON, or normalise line ends yourself, when the exact bytes matter. ``data=""`` sends one ``data:`` line,
    which a browser dispatches as a message whose data is the empty string (the data buffer is "\\n" before
    the trailing LF is removed, so it is not empty, §9.2.6). ``data=None`` sends no ``data`` line at all: the
    browser then dispatches nothing, but ``id`` and ``retry`` still take effect, which is how to set the
    reconnection time or the last event id without firing ``onmessage``.

    Args:
        data: the message text, or ``None`` for no ``data`` field.
        event: the event type (``addEventListener(type)``); ``None`` or ``""`` give "message".
        id: the last event id the browser stores and sends back as ``Last-Event-ID`` on reconnection;
            ``""`` resets it; ``None`` leaves it as it was.
        retry: the reconnection time in milliseconds, a non-negative integer.
        comment: a comment line sent before the fields; browsers ignore it.

    Raises:
        InvalidEventError: ``event``, ``id`` or ``comment`` contains CR or LF, ``id`` contains NUL (the
            browser would ignore the whole id, §9.2.6), ``retry`` is not a non-negative ``int``, a field is
            not a ``str``, or a field contains a lone surrogate (it cannot be encoded in UTF-8).
    """

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None
    # The wire form, computed once at construction: encoding is where a lone surrogate is found, and an event
    # sent to many clients is then encoded only once.
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lines: list[str] = []
        for name in ("data", "event", "id", "comment"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidEventError(f"SSE {name} must be a str or None, not {type(value).__name__}")
        if self.comment is not None:
            _check_line("comment", self.comment)
            lines.append(f": {self.comment}" if self.comment else ":")
        if self.event:
            _check_line("event name", self.event)
            lines.append(f"event: {self.event}")
        if self.id is not None:
            _check_line("id", self.id)
            if "\0" in self.id:
                # §9.2.6: "If the field value does not contain U+0000 NULL, then set the last event ID
                # buffer": a browser would silently drop the id, so refuse it here instead.
                raise InvalidEventError(f"SSE id must not contain NUL (browsers ignore it): {self.id!r}")
            lines.append(f"id: {self.id}" if self.id else "id:")
        if self.retry is not None:
            # bool is an int subclass; retry=True is a bug, not one millisecond.
            if not isinstance(self.retry, int) or isinstance(self.retry, bool) or self.retry < 0:
                raise InvalidEventError(
                    f"SSE retry must be a non-negative int (milliseconds), not {self.retry!r}"
                )
            lines.append(f"retry: {self.retry}")
        if self.data is not None:
            # "data:" rather than "data: " for an empty line: no trailing space for a proxy to trim (both
            # parse to the same empty value).
            lines.extend(f"data: {line}" if line else "data:" for line in _EOL.split(self.data))
        lines.append("\n")
        try:
            wire = "\n".join(lines).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEventError(f"SSE event is not encodable as UTF-8 (lone surrogate?): {exc}") from None
        object.__setattr__(self, "_wire", wire)

    def encode(self) -> bytes:
        """Return the event's wire bytes (UTF-8), ending with the blank line that dispatches it."""
        return self._wire


def encode_comment(text: str = "") -> bytes:
    """Return a comment line followed by a blank line, e.g. ``b": heartbeat\\n\\n"``.

    Browsers ignore comments (§9.2.6: a line starting with a colon). Sent every ~15 s on an idle stream,
    one keeps proxies from closing it and reveals dead clients when the write fails (§9.2.7 "Authoring
    notes" suggests exactly this). The blank line dispatches nothing (the data buffer is empty) but flushes
    the comment through proxies that buffer by event. Send it between events only.

    Raises:
        InvalidEventError: ``text`` contains CR or LF, or cannot be encoded in UTF-8.
    """
    return ServerSentEvent(comment=text).encode()


# --- decoding ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """An event the browser would dispatch (§9.2.6 "dispatch the event").

    Attributes:
        type: the event type: the last ``event`` field's value, or "message" when it was absent or empty.
        data: the ``data`` fields' values joined with LF.
        last_event_id: the stream's last event id when the event was dispatched (it persists across events
            until an ``id`` field changes it).
    """

    type: str
    data: str
    last_event_id: str


@dataclass(frozen=True, slots=True)
class RetryChanged:
    """A valid ``retry`` field: the reconnection time is now ``milliseconds`` (§9.2.6: at once)."""

    milliseconds: int


#: What :meth:`SSEParser.events_received` returns.
SSEEvent = MessageEvent | RetryChanged


class SSEParser:
    """Incremental parser for ``text/event-stream`` (WHATWG HTML §9.2.6), as a browser's EventSource runs it.

    Args:
        max_event_size: most characters (after UTF-8 decoding) buffered for one event: the data received
            so far plus the line being read. Bounds any single line too.
        last_event_id: the last event ID string to start from: a reconnecting EventSource keeps the one it
            had (§9.2.3 "reestablish the connection" does not reset it), so events without an ``id`` field
            on the new connection still report it.

    Attributes:
        last_event_id: the "last event ID string": what a reconnecting client sends as ``Last-Event-ID``.
            Set from the ``id`` fields at each blank line, even one that dispatches no message.
        retry: the last reconnection time a ``retry`` field set, in milliseconds, or ``None``.
    """

    def __init__(
        self, *, max_event_size: int = DEFAULT_LIMITS.sse_max_event_size, last_event_id: str = ""
    ) -> None:
        self._max = max_event_size
        # §9.2.6: "decoded using the UTF-8 decode algorithm": replacement, never an error. The incremental
        # decoder keeps an incomplete sequence cut by a chunk boundary for the next chunk.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False  # has any text been decoded yet (is a BOM still possible)?
        self._skip_lf = False  # the last chunk ended with CR: an LF at the start of the next one is its pair
        self._pending: list[str] = []  # pieces of the line being read
        self._pending_len = 0
        self._data: list[str] = []  # the data buffer, as the values of the data fields (LFs implied)
        self._data_size = 0  # characters in the data buffer, counting one LF per data field
        self._type = ""  # the event type buffer
        self._id_buffer = last_event_id  # the last event ID buffer
        self._events: list[SSEEvent] = []
        self._closed = False
        self.last_event_id = last_event_id
        self.retry: int | None = None

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the stream, cut anywhere.

        Raises:
            LimitExceeded: a line, or one event's data plus the current line, is longer than
                ``max_event_size``. The parser cannot go on after it.
            LocalProtocolError: called after :meth:`receive_eof` or after a ``LimitExceeded``.
        """
        if self._closed:
            raise LocalProtocolError("SSEParser: receive_data() after end of stream or after an error")
        text = self._decoder.decode(data)
        if not self._started and text:
            self._started = True
            # §9.2.5: stream = [ bom ] *event; the UTF-8 decode algorithm strips one leading BOM. Only one:
            # a second U+FEFF is content. Checked on decoded text so a BOM split across chunks is found.
            if text[0] == "\ufeff":
                text = text[1:]
        self._feed(text)

    def receive_eof(self) -> None:
        """Signal the end of the stream; idempotent.

        §9.2.6: "Once the end of the file is reached, any pending data must be discarded": an event (or a
        line) without its terminating blank line is not dispatched. A truncated UTF-8 sequence at the end
        becomes U+FFFD on that discarded line, so it changes nothing.
        """
        self._closed = True
        self._pending.clear()
        self._data.clear()

    def events_received(self) -> list[SSEEvent]:
        """Return the events parsed since the last call, oldest first, and forget them."""
        events, self._events = self._events, []
        return events

    def _feed(self, text: str) -> None:
        pos = 0
        if self._skip_lf and text:
            # The previous chunk ended with CR; §9.2.5 end-of-line = cr lf / cr / lf, so an LF right after
            # it belongs to the same terminator and must not end a second (empty) line, which would
            # dispatch the event early.
            self._skip_lf = False
            if text[0] == "\n":
                pos = 1
        end_of_text = len(text)
        while (match := _EOL.search(text, pos)) is not None:
            line = text[pos : match.start()]
            if self._pending:
                self._pending.append(line)
                line = "".join(self._pending)
                self._pending.clear()
                self._pending_len = 0
            self._check_size(len(line), line)
            pos = match.end()
            if pos == end_of_text and match.group() == "\r":
                self._skip_lf = True
            self._process_line(line)
        if pos < end_of_text:
            rest = text[pos:]
            self._pending.append(rest)
            self._pending_len += len(rest)
            self._check_size(self._pending_len, rest)

    def _check_size(self, line_len: int, sample: str) -> None:
        # One bound for all the memory an event can hold: data buffer + current line. A data line that
        # passes it leaves the data buffer within it too (the line is at least its value plus "data").
        if self._data_size + line_len > self._max:
            self._closed = True
            raise LimitExceeded(
                f"SSE event larger than max_event_size={self._max} characters "
                f"(data so far: {self._data_size}, current line: {line_len}, "
                f"ending in {printable(sample[-40:].encode('utf-8', 'backslashreplace'))})"
            )

    def _process_line(self, line: str) -> None:
        # §9.2.6, the steps for one line.
        if not line:
            # "If the line is empty (a blank line): Dispatch the event."
            self._dispatch()
            return
        if line[0] == ":":
            # "If the line starts with a U+003A COLON character (:): Ignore the line."
            return
        # "If the line contains a colon: field name = before the first colon, value = after it; if value
        # starts with a U+0020 SPACE, remove it. Otherwise: the whole line is the field name, value is
        # the empty string." partition() does both: no colon gives (line, "", "").
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            # "Append the field value to the data buffer, then append a single U+000A LINE FEED."
            self._data.append(value)
            self._data_size += len(value) + 1
        elif name == "event":
            self._type = value
        elif name == "id":
            # "If the field value does not contain U+0000 NULL, set the last event ID buffer to it.
            # Otherwise, ignore the field."
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry":
            # "If the field value consists of only ASCII digits, interpret it as an integer in base ten
            # and set the reconnection time." isascii() first: str.isdigit() also accepts "²" or "٣".
            # Empty and > 2**64 - 1 are ignored (module docstring).
            if value and value.isascii() and value.isdigit():
                significant = value.lstrip("0")
                if len(significant) <= 20 and (ms := int(value)) <= _MAX_RETRY:
                    self.retry = ms
                    self._events.append(RetryChanged(ms))
        # "Otherwise: the field is ignored."

    def _dispatch(self) -> None:
        # §9.2.6 "dispatch the event", steps 1-7.
        # 1. The last event ID string takes the buffer's value even if nothing is dispatched.
        self.last_event_id = self._id_buffer
        # 2. "If the data buffer is an empty string, set the data buffer and the event type buffer to the
        # empty string and return." The buffer is empty exactly when no data field was seen ("data:" alone
        # makes it "\n").
        if not self._data:
            self._type = ""
            return
        # 3. "If the data buffer's last character is a U+000A LINE FEED, remove it": joining with LF
        # instead of appending one after each value does exactly that.
        data = "\n".join(self._data)
        # 5. The type is the event type buffer, or "message" when it is empty.
        self._events.append(MessageEvent(self._type or "message", data, self.last_event_id))
        # 7. Reset the data and event type buffers (the last event ID buffer persists).
        self._data.clear()
        self._data_size = 0
        self._type = ""
