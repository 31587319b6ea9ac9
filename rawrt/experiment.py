"""``rawrt experiment NAME [URL]``: the protocol lab's experiments from the command line.

* ``expect-continue``: the same ``Expect: 100-continue`` POST as HTTP/1.0 and as HTTP/1.1, both exchanges
  printed byte for byte; only the 1.1 one may get ``100 Continue`` (RFC 9110 §15.2, §10.1.1).
* ``sse-resume``: an SSE stream dropped while events are published, resumed with ``Last-Event-ID``; the
  exchange printed and checked (every event once, ids increasing).

Without a URL the command starts its own demo server on ``127.0.0.1`` and stops it after (as ``rawrt
compare`` does). Exit status: 0 when the check holds, 1 when it does not, 2 for a mistake in the command
or its target (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets

from .compare.target import CompareError, DemoProcess, Target, parse_url
from .lab.experiments import Exchange, ExperimentError, SSEResume, expect_continue, sse_resume

__all__ = ["add_arguments", "main", "format_expect_continue", "format_sse_resume"]

NAMES = ("expect-continue", "sse-resume")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=NAMES, help="the experiment to run")
    parser.add_argument(
        "url", nargs="?", help="a rawrt demo's base URL, http://HOST:PORT/ (default: start one on 127.0.0.1)"
    )


def _lines(prefix: str, data: bytes) -> list[str]:
    """``data`` one line per CRLF, each shown with ``prefix`` and its line end made visible."""
    if not data:
        return [f"{prefix}(nothing)"]
    text = data.decode("latin-1")
    parts = text.split("\r\n")
    out = [f"{prefix}{part}\\r\\n" for part in parts[:-1]]
    if parts[-1]:
        out.append(f"{prefix}{parts[-1]}")
    return out


def format_expect_continue(old: Exchange, new: Exchange) -> tuple[bool, str]:
    """Both exchanges as text, and whether they behaved as RFC 9110 says."""
    out: list[str] = []
    for ex in (old, new):
        out.append(f"HTTP/{ex.version} with Expect: 100-continue")
        out += _lines("  > ", ex.head)
        if ex.before_body:
            out.append(f"  (the server answered within {ex.waited_ms:.0f} ms, before the body was sent)")
            out += _lines("  < ", ex.before_body)
        else:
            out.append(f"  (nothing came back in {ex.waited_ms:.0f} ms: the client sends the body anyway)")
        out += _lines("  > ", ex.body)
        out += _lines("  < ", ex.after_body)
        out.append("")
    ok = new.interim and not old.interim
    out.append(
        f"check: HTTP/1.1 got 100 Continue: {'yes' if new.interim else 'NO'}; "
        f"HTTP/1.0 got a 1xx: {'YES' if old.interim else 'no'} (RFC 9110 §15.2: no 1xx to an HTTP/1.0 client)"
        f" -> {'ok' if ok else 'FAILED'}"
    )
    return ok, "\n".join(out)


def format_sse_resume(r: SSEResume) -> tuple[bool, str]:
    """The drop-and-resume exchange as text, and whether nothing was lost or repeated."""
    out = [f"1. connect (channel {r.channel})"]
    out += _lines("  > ", r.first_request)
    out += _lines("  < ", r.first_response)
    out.append(f"  published {len(r.published_before)} events; received:")
    out += [f"  < id: {e.id}  data: {e.data}" for e in r.before]
    out.append(f"2. drop: the client closes the connection after id {r.last_event_id}")
    ids = ", ".join(map(str, r.published_while_dropped))
    out.append(f"  published {len(r.published_while_dropped)} events while disconnected: ids {ids}")
    out.append(f"3. resume with Last-Event-ID: {r.last_event_id}")
    out += _lines("  > ", r.second_request)
    out += _lines("  < ", r.second_response)
    out.append("  replayed:")
    out += [f"  < id: {e.id}  data: {e.data}" for e in r.after]
    ok, line = r.check()
    out.append("")
    out.append(f"check: {line} -> {'ok' if ok else 'FAILED'}")
    return ok, "\n".join(out)


async def _run(name: str, target: Target) -> tuple[bool, str]:
    if name == "expect-continue":
        old, new = await expect_continue(target.host, target.port, path=target.path("/echo"))
        return format_expect_continue(old, new)
    channel = f"sse-resume-{secrets.token_hex(4)}"
    result = await sse_resume(target.host, target.port, prefix=target.prefix, channel=channel)
    return format_sse_resume(result)


def main(args: argparse.Namespace) -> tuple[bool, str]:
    """Run the experiment ``args.name`` against ``args.url`` (or a demo of its own): ``(ok, report)``.

    Raises:
        ExperimentError: the target cannot be reached, or is not a rawrt demo.
    """
    demo: DemoProcess | None = None
    try:
        if args.url:
            target = parse_url(args.url)
        else:
            demo = DemoProcess.start()
            target = demo.target
    except CompareError as exc:
        raise ExperimentError(str(exc)) from None
    try:
        return asyncio.run(_run(args.name, target))
    finally:
        if demo is not None:
            demo.stop()
