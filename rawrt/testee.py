"""The Autobahn *client* testee: ``python -m rawrt testee-client ws://HOST:PORT [--agent NAME]``.

It drives a fuzzing server (``kosoku -m fuzzingserver``, or Autobahn's own) the way every Autobahn client
testee does (autobahn-testsuite's ``testee`` clients, websockets' ``compliance/test_client.py``):

1. ``GET /getCaseCount``: a WebSocket on which the server sends one text message, the number of cases;
2. for each case N, ``GET /runCase?case=N&agent=NAME``: echo every message back with its opcode (text as
   text, binary as binary) until the server closes;
3. ``GET /updateReports?agent=NAME``: the server writes its reports, and (kosoku) ends the run.

Every connection uses :func:`rawrt.websocket.connect` with permessage-deflate offered, so sections 12 and 13
exercise the client's compression; messages up to 16 MiB are accepted (section 9 goes that far), and
keepalive pings are off (the fuzzing server would take a ping for the testee's answer and end the case).
A case that cannot connect or fails is logged and the run goes on: the fuzzing server's report judges it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Sequence
from urllib.parse import quote

from .errors import ConnectionClosed, RawrtError
from .limits import DEFAULT_LIMITS, Limits, MiB
from .sansio.ws.deflate import CLIENT_DEFAULTS, DeflateOptions
from .websocket import WebSocket, connect

__all__ = [
    "TESTEE_LIMITS",
    "DEFAULT_AGENT",
    "OFFER_NO_CONTEXT_TAKEOVER",
    "get_case_count",
    "run_case",
    "update_reports",
    "run",
    "main",
]

log = logging.getLogger("rawrt.testee")

#: Autobahn's section 9 sends messages and frames up to 16 MiB; no keepalive pings (see the module note).
TESTEE_LIMITS: Limits = dataclasses.replace(
    DEFAULT_LIMITS,
    ws_max_message_size=16 * MiB,
    ws_max_frame_size=16 * MiB,
    ws_ping_interval=None,
    ws_ping_timeout=None,
)

#: The offer Autobahn's own testee makes: ``client_no_context_takeover`` too. RFC 7692 §7.1.1.2 reads it as a
#: promise (the client resets its compressor after every message, whatever the server answers); Autobahn's
#: fuzzing server reads it as "the client accepts being asked to", and asks (cases 13.2, 13.5, 13.6) only
#: when it is there. With rawrt's default offer those cases find no extension: UNIMPLEMENTED.
OFFER_NO_CONTEXT_TAKEOVER = DeflateOptions(
    server_max_window_bits=None, client_max_window_bits=None, client_no_context_takeover=True
)

#: The agent name the reports are filed under.
DEFAULT_AGENT = "rawrt"

#: Bound on one case, from connecting to the server's close. The slowest cases (9.x with 16 MiB messages,
#: 12.x/13.x with 1,000 compressed messages) take seconds; a case stuck past this is a bug, not slowness.
CASE_TIMEOUT = 120.0


async def _open(base: str, target: str, limits: Limits, deflate: DeflateOptions, trace: bool) -> WebSocket:
    return await connect(base.rstrip("/") + target, limits=limits, compression=deflate, trace=trace)


async def get_case_count(
    base: str, *, limits: Limits = TESTEE_LIMITS, deflate: DeflateOptions = CLIENT_DEFAULTS
) -> int:
    """Ask the fuzzing server how many cases it has (``/getCaseCount``).

    Raises:
        ValueError: the server's message is not a number.
        ConnectionClosed: it closed without sending one.
    """
    ws = await _open(base, "/getCaseCount", limits, deflate, False)
    try:
        message = await ws.recv()
    finally:
        await ws.close()
    text = message if isinstance(message, str) else message.decode("ascii")
    return int(text)


async def run_case(
    base: str,
    case: int,
    agent: str = DEFAULT_AGENT,
    *,
    limits: Limits = TESTEE_LIMITS,
    deflate: DeflateOptions = CLIENT_DEFAULTS,
    trace: bool = False,
) -> int | None:
    """Run case number ``case``: echo every message with its opcode until the server closes.

    Returns:
        How the connection closed: the server's close code (1006 without one), or None when it could not
        be opened.
    """
    target = f"/runCase?case={case}&agent={quote(agent)}"
    try:
        ws = await _open(base, target, limits, deflate, trace)
    except (OSError, asyncio.TimeoutError, RawrtError) as exc:
        log.warning("case %d: could not connect: %s", case, exc)
        return None
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass  # the server closed (or the client failed the connection) while an echo was going out
    await ws.close()  # returns at once when already closed; bounded by ws_close_timeout otherwise
    return ws.close_code


async def update_reports(
    base: str,
    agent: str = DEFAULT_AGENT,
    *,
    limits: Limits = TESTEE_LIMITS,
    deflate: DeflateOptions = CLIENT_DEFAULTS,
) -> None:
    """Tell the fuzzing server to write its reports (``/updateReports``); it closes the connection."""
    ws = await _open(base, f"/updateReports?agent={quote(agent)}", limits, deflate, False)
    async for _ in ws:
        pass
    await ws.close()


async def run(
    base: str,
    agent: str = DEFAULT_AGENT,
    *,
    limits: Limits = TESTEE_LIMITS,
    deflate: DeflateOptions = CLIENT_DEFAULTS,
    parallel: int = 1,
    case_timeout: float = CASE_TIMEOUT,
    trace: bool = False,
) -> int:
    """Run every case the server has, then ask for the reports.

    Args:
        base: the fuzzing server, ``ws://host:port``.
        agent: the name reports are filed under.
        limits: the client's limits (``TESTEE_LIMITS``: 16 MiB messages, no keepalive).
        deflate: the permessage-deflate offer (``CLIENT_DEFAULTS``, what :func:`connect` offers by default,
            or ``OFFER_NO_CONTEXT_TAKEOVER``).
        parallel: how many cases run at once (each case is its own connection; the fuzzing server
            judges them independently).
        case_timeout: bound on one case.
        trace: log every frame on ``rawrt.trace``.

    Returns:
        The number of cases run.
    """
    count = await asyncio.wait_for(get_case_count(base, limits=limits, deflate=deflate), case_timeout)
    log.info("%d cases", count)
    cases = iter(range(1, count + 1))

    async def worker() -> None:
        for case in cases:  # a shared iterator: each worker takes the next case number
            try:
                code = await asyncio.wait_for(
                    run_case(base, case, agent, limits=limits, deflate=deflate, trace=trace), case_timeout
                )
            except asyncio.TimeoutError:
                log.error("case %d: no close within %.0f s", case, case_timeout)
                continue
            log.debug("case %d: closed with %s", case, code)

    await asyncio.gather(*(worker() for _ in range(max(1, parallel))))
    await asyncio.wait_for(update_reports(base, agent, limits=limits, deflate=deflate), case_timeout)
    return count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The testee's command-line arguments (shared with ``rawrt testee-client``)."""
    parser.add_argument("uri", help="the fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument(
        "--agent", default=DEFAULT_AGENT, help=f"name in the reports (default {DEFAULT_AGENT})"
    )
    parser.add_argument(
        "--offer-no-context-takeover",
        action="store_true",
        help="offer client_no_context_takeover as Autobahn's own testee does (needed for 13.2, 13.5, 13.6)",
    )
    parser.add_argument("-p", "--parallel", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--trace", action="store_true", help="print every WebSocket frame (rawrt.trace)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def run_from_args(args: argparse.Namespace) -> int:
    """Run the testee as the parsed ``args`` say; returns the exit status."""
    if args.trace:
        logging.getLogger("rawrt.trace").setLevel(logging.DEBUG)
    deflate = OFFER_NO_CONTEXT_TAKEOVER if args.offer_no_context_takeover else CLIENT_DEFAULTS
    try:
        count = asyncio.run(
            run(args.uri, args.agent, deflate=deflate, parallel=args.parallel, trace=args.trace)
        )
    except KeyboardInterrupt:
        return 130
    except (OSError, asyncio.TimeoutError, RawrtError, ValueError) as exc:
        print(f"testee-client: {exc}", file=sys.stderr)
        return 1
    print(f"testee-client: ran {count} cases as {args.agent!r}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rawrt.testee`` (the same as ``python -m rawrt testee-client``)."""
    parser = argparse.ArgumentParser(prog="rawrt testee-client", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
