"""The HTTP/1.1 grammar, as compiled regular expressions built from the RFCs' ABNF.

Each pattern cites the rule it implements. Every repetition that the ABNF leaves unbounded is capped here or
by a limit in :mod:`rawrt.limits`, so no input can make a match scan without end. All patterns work on
``bytes``: the wire is bytes, and a header value may legally carry obs-text (0x80-0xFF) that is not text in
any particular encoding.
"""

from __future__ import annotations

import re

from ..limits import MAX_CHUNK_SIZE_DIGITS

__all__ = [
    "TOKEN",
    "TOKEN_RE",
    "TCHARS_RE",
    "REQUEST_LINE_RE",
    "FIELD_LINE_RE",
    "FIELD_VALUE_RE",
    "FIELD_SECTION_RE",
    "FIELD_PAIRS_RE",
    "HOST_RE",
    "CHUNK_LINE_RE",
    "CONTENT_LENGTH_RE",
    "ORIGIN_FORM_RE",
    "FAST_REQUEST_LINE_RE",
    "FAST_HEAD_RE",
    "ABSOLUTE_FORM_RE",
    "AUTHORITY_FORM_RE",
]

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|"
#                          / "~" / DIGIT / ALPHA ;  token = 1*tchar
TCHAR = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
TOKEN = TCHAR + rb"+"
TOKEN_RE = re.compile(TOKEN)
# ``*tchar``: how far a method (a token, RFC 9110 §9.1) reaches at the start of a request line still being
# received. No cap needed: the request line itself is capped by ``max_request_line``.
TCHARS_RE = re.compile(TCHAR + rb"*")

# RFC 9112 §3: request-line = method SP request-target SP HTTP-version
#   method = token; HTTP-version = HTTP-name "/" DIGIT "." DIGIT (§2.3).
# The target is any run of visible ASCII here; its form is checked separately (§3.2) so the error can say
# which form was expected. The version is captured loosely (any non-space run) so that "HTTP/2.0" can get
# 505 and "HTP/1.1" a 400 with a message saying what was received.
REQUEST_LINE_RE = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) ([^ ]+)")

# RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT ; HTTP-name = %s"HTTP" (case-sensitive).
HTTP_VERSION_RE = re.compile(rb"HTTP/([0-9])\.([0-9])")

# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS
#   field-name = token (RFC 9110 §5.1). No whitespace is allowed between the name and the colon (§5.1:
#   "a server MUST reject ... with a response status code of 400"), which the pattern enforces by
#   requiring the colon right after the token.
# Group 2 is the value *with* its trailing OWS: strip it with ``.rstrip(b" \t")``. A lazy ``(.*?)[ \t]*``
# would strip it in the pattern, but backtracks quadratically on a value with a long run of inner
# whitespace (64 KiB of spaces took seconds). DOTALL makes ``.*`` always reach the end, so there is no
# backtracking at all; a CR, LF or other control byte is then refused by FIELD_VALUE_RE.
FIELD_LINE_RE = re.compile(rb"(" + TOKEN + rb"):[ \t]*(.*)", re.DOTALL)

# RFC 9110 §5.5: field-value = *field-content ; field-vchar = VCHAR / obs-text
#   field-content = field-vchar [ 1*( SP / HTAB / field-vchar ) field-vchar ]
# CR, LF and NUL are forbidden outright (§5.5: "MUST either reject the message or replace ..."); rawrt
# rejects every other control character too (0x00-0x08, 0x0A-0x1F, 0x7F), as h11 does.
FIELD_VALUE_RE = re.compile(rb"[\x20-\x7e\x80-\xff\t]*")

# A whole field section at once: *( field-line CRLF ), checked in one regex pass instead of one regex call
# per line (docs/topics/performance.md). The value part is a single character class that excludes CR, so the
# pattern cannot backtrack; the OWS after the colon is part of that class and stripped afterwards.
FIELD_SECTION_RE = re.compile(rb"(?:" + TOKEN + rb":[\x20-\x7e\x80-\xff\t]*\r\n)*")
# Splits a section that FIELD_SECTION_RE accepted into (name, value-with-trailing-OWS) pairs.
FIELD_PAIRS_RE = re.compile(rb"(" + TOKEN + rb"):[ \t]*([^\r]*)\r\n")

# RFC 9110 §7.2: Host = uri-host [ ":" port ] ; RFC 3986 §3.2.2:
#   uri-host = IP-literal / IPv4address / reg-name
#   reg-name = *( unreserved / pct-encoded / sub-delims )
# The port is at most 5 digits. An empty Host is allowed by the grammar (reg-name may be empty).
_UNRESERVED_SUBDELIMS = rb"A-Za-z0-9\-._~!$&'()*+,;=%"
HOST_RE = re.compile(
    rb"(?:\[[0-9A-Fa-f:.vV"
    + _UNRESERVED_SUBDELIMS
    + rb"]{1,128}\]|["
    + _UNRESERVED_SUBDELIMS
    + rb"]{0,255})(?::[0-9]{0,5})?"
)

# RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ]; absolute-path = 1*( "/" segment )
# RFC 3986 §3.3/§3.4: segments and the query use pchar / "/" / "?"; pchar = unreserved / pct-encoded /
# sub-delims / ":" / "@". Fragments ("#") never appear in a request-target.
_PCHAR = rb"A-Za-z0-9\-._~!$&'()*+,;=:@%"
# Deliberate leniency: browsers send some characters RFC 3986 excludes without percent-encoding them (the
# WHATWG URL Standard's path and query percent-encode sets leave ``[ ] { } | \ ^ ` `` alone), so a strict
# server would answer real page loads with 400. They are accepted in origin-form, as h11 and nginx do;
# SP, ``"``, ``#``, ``<``, ``>``, controls and non-ASCII bytes (which browsers always encode) stay refused.
_BROWSER_CHARS = rb"\[\]{}|\\^`"
ORIGIN_FORM_RE = re.compile(
    rb"/[" + _PCHAR + _BROWSER_CHARS + rb"/]*(?:\?[" + _PCHAR + _BROWSER_CHARS + rb"/?]*)?"
)

# The common request line in one pattern: any method, an origin-form target, HTTP/1.1 (the parser's fast
# path; anything else goes through REQUEST_LINE_RE and the per-form checks, which explain what is wrong).
FAST_REQUEST_LINE_RE = re.compile(rb"(" + TOKEN + rb") (" + ORIGIN_FORM_RE.pattern + rb") HTTP/1\.1")

# The common head in one pattern: that request line, CRLF, then a field section FIELD_SECTION_RE accepts.
# Matched against the head up to and including the CRLF of its last field line, it validates the whole head
# in one C-level pass; a head it refuses is parsed again step by step, which says what is wrong.
FAST_HEAD_RE = re.compile(FAST_REQUEST_LINE_RE.pattern + rb"\r\n" + FIELD_SECTION_RE.pattern)

# RFC 9112 §3.2.2: absolute-form = absolute-URI
# RFC 3986 §4.3: absolute-URI = scheme ":" hier-part [ "?" query ]
#   scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
ABSOLUTE_FORM_RE = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*:[" + _PCHAR + rb"/?\[\]]*")

# RFC 9112 §3.2.3: authority-form = uri-host ":" port (only for CONNECT)
AUTHORITY_FORM_RE = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]{2,128}\]|[" + _UNRESERVED_SUBDELIMS + rb"]{1,255}):[0-9]{1,5}"
)

# RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF ; chunk-size = 1*HEXDIG
# RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-name = token ; chunk-ext-val = token / quoted-string
# The digit count is capped (MAX_CHUNK_SIZE_DIGITS) and the extension length is capped by Limits.max_chunk_ext
# before this pattern runs.
_QUOTED_STRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_EXT = (
    rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + _QUOTED_STRING + rb"))?)*"
)
CHUNK_LINE_RE = re.compile(
    rb"([0-9A-Fa-f]{1," + str(MAX_CHUNK_SIZE_DIGITS).encode() + rb"})(" + _CHUNK_EXT + rb")"
)

# RFC 9110 §8.6: Content-Length = 1*DIGIT. 19 digits keep the value below 2**63; a bigger body could never
# fit any limit anyway, and the cap keeps int() on hostile input cheap.
CONTENT_LENGTH_RE = re.compile(rb"[0-9]{1,19}")
