"""Autobahn TestSuite against rawrt's client: `kosoku -m fuzzingserver` and `python -m rawrt testee-client`.

Usage (from the repository root)::

    python fuzz/autobahn/run_client.py                       # all 517 cases
    python fuzz/autobahn/run_client.py -x '12.*' -x '13.*'   # sections 1-11 (seconds)
    python fuzz/autobahn/run_client.py -i '13.2.*' -o /tmp/reports

It starts ``kosoku -m fuzzingserver 127.0.0.1:0`` (the port it prints), runs the testee against it
(``/getCaseCount``, ``/runCase`` for each case, ``/updateReports``), waits for kosoku to write its reports,
prints a table per section (``summary.py``) and exits with 0 when every case is OK, NON-STRICT or
INFORMATIONAL, 1 when one is not, 2 when the run itself broke.

Two offers, two runs. rawrt's client offers ``permessage-deflate; client_max_window_bits`` by default.
Autobahn's fuzzing server asks the client for ``client_no_context_takeover`` in cases 13.2, 13.5 and 13.6
only when the offer carries that parameter (Autobahn's own testee always sends it), and otherwise declines
compression, which the case reports as UNIMPLEMENTED. So those three subsections run in a second kosoku
session with ``--offer-no-context-takeover``, and everything else with the default offer, so the client's
compressor is exercised both with and without context takeover. The reports go to ``OUTDIR/default`` and
``OUTDIR/no-context-takeover``; the table merges them.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import summary
from run_server import REPO, all_cases, clean_reports, kosoku_command, python_env, select_cases, stop

__all__ = ["NO_CONTEXT_TAKEOVER_CASES", "run_session", "main"]

#: The subsections whose server accept needs ``client_no_context_takeover`` in the offer (see above).
NO_CONTEXT_TAKEOVER_CASES = ("13.2.*", "13.5.*", "13.6.*")

#: How long kosoku may take to print the port it listens on.
START_TIMEOUT = 30.0

_LISTENING_RE = re.compile(rb"listening on ws://(\S+):(\d+)")


async def run_session(
    cases: Sequence[str],
    outdir: Path,
    *,
    agent: str,
    parallel: int,
    no_context_takeover: bool,
    timeout: float,
) -> int:
    """One fuzzing server session: kosoku serves ``cases``, the testee runs them. Returns kosoku's status."""
    args = [*kosoku_command(), "-m", "fuzzingserver", "127.0.0.1:0", "-o", str(outdir)]
    args += [a for case in cases for a in ("-i", case)]
    kosoku = await asyncio.create_subprocess_exec(*args, cwd=REPO, stderr=asyncio.subprocess.PIPE)
    assert kosoku.stderr is not None
    try:
        line = await asyncio.wait_for(kosoku.stderr.readline(), START_TIMEOUT)
        match = _LISTENING_RE.search(line)
        if match is None:
            raise RuntimeError(f"unexpected first line from kosoku: {line!r}")
        relay = asyncio.create_task(_relay(kosoku.stderr))  # its list of failed cases, if any
        testee_args = [
            sys.executable,
            "-m",
            "rawrt",
            "testee-client",
            f"ws://127.0.0.1:{match.group(2).decode()}",
        ]
        testee_args += ["--agent", agent, "--parallel", str(parallel)]
        if no_context_takeover:
            testee_args.append("--offer-no-context-takeover")
        testee = await asyncio.create_subprocess_exec(*testee_args, cwd=REPO, env=python_env())
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(testee.wait(), timeout)
        except asyncio.TimeoutError:
            print(f"run_client: the testee still runs after {timeout:.0f} s: stopped", file=sys.stderr)
            await stop(testee, 2.0)
            return 124
        # /updateReports ends kosoku's run: it writes the reports and exits.
        status = await asyncio.wait_for(kosoku.wait(), max(10.0, deadline - time.monotonic()))
        await relay
        return status
    except asyncio.TimeoutError:
        print("run_client: kosoku did not start or finish in time", file=sys.stderr)
        return 124
    finally:
        await stop(kosoku, 2.0)


async def _relay(stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        sys.stderr.buffer.write(line)
        sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-i", "--include", action="append", default=[], metavar="CASE", help="case id or glob"
    )
    parser.add_argument(
        "-x", "--exclude", action="append", default=[], metavar="CASE", help="case id or glob"
    )
    parser.add_argument(
        "-p", "--parallel", type=int, default=2, help="cases the testee runs at once (default 2)"
    )
    parser.add_argument("-o", "--outdir", type=Path, default=REPO / "reports" / "autobahn" / "client")
    parser.add_argument("--agent", default="rawrt", help="the testee's agent name (default rawrt)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound on each session, seconds")
    args = parser.parse_args(argv)

    selected = select_cases(all_cases(), args.include, args.exclude)
    if not selected:
        print("run_client: no case matches the selection", file=sys.stderr)
        return 2
    nct = select_cases(selected, NO_CONTEXT_TAKEOVER_CASES, [])
    sessions = [
        ("default", [c for c in selected if c not in set(nct)], False),
        ("no-context-takeover", nct, True),
    ]
    outdir: Path = args.outdir.resolve()
    started = time.monotonic()
    outcomes: list[summary.CaseOutcome] = []
    broken = False
    for name, cases, no_context_takeover in sessions:
        directory = outdir / name
        clean_reports(directory)
        if not cases:
            continue
        try:
            status = asyncio.run(
                run_session(
                    cases,
                    directory,
                    agent=args.agent,
                    parallel=args.parallel,
                    no_context_takeover=no_context_takeover,
                    timeout=args.timeout,
                )
            )
        except RuntimeError as exc:
            print(f"run_client: {exc}", file=sys.stderr)
            return 2
        try:
            found = summary.load(directory, args.agent)
        except FileNotFoundError:
            print(
                f"run_client: kosoku exited with {status} and wrote no {directory}/index.json",
                file=sys.stderr,
            )
            return 2
        if status not in (0, 1) or len(found) != len(cases):
            print(
                f"run_client: session {name!r}: kosoku exited with {status}, {len(found)} of {len(cases)} "
                "cases reported",
                file=sys.stderr,
            )
            broken = True
        outcomes += found
    elapsed = time.monotonic() - started
    outcomes.sort(key=lambda o: summary.case_sort_key(o.case_id))
    passed = summary.report(
        outcomes, f"rawrt client (testee-client), {len(outcomes)} cases in {elapsed:.1f} s"
    )
    print(f"reports: {outdir}/*/index.html")
    if broken:
        return 2
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
