"""Summarise Autobahn reports (kosoku's, or the original suite's): a table per section, and what did not pass.

Usage: ``python fuzz/autobahn/summary.py REPORT_DIR [REPORT_DIR ...]`` prints the table and exits 1 when a
case did not pass. ``run_server.py`` and ``run_client.py`` import it.

A report directory holds ``index.json``: ``{agent: {case_id: {"behavior", "behaviorClose",
"remoteCloseCode", "duration", "reportfile"}}}`` (Autobahn's layout, which kosoku writes too). A case
*passes* when its message exchange (``behavior``) is OK, NON-STRICT or INFORMATIONAL and its closing
handshake (``behaviorClose``) is OK or INFORMATIONAL: the same rule as kosoku's ``CaseResult.passed`` and
hypercorn's Autobahn check.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = [
    "ACCEPTED",
    "ACCEPTED_CLOSE",
    "SECTIONS",
    "CaseOutcome",
    "SectionRow",
    "load",
    "summarise",
    "format_table",
    "format_failures",
    "case_sort_key",
    "main",
]

#: Verdicts on the message exchange that count as a pass.
ACCEPTED = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
#: Verdicts on the closing handshake that count as a pass.
ACCEPTED_CLOSE = frozenset({"OK", "INFORMATIONAL"})
#: The columns of the table, in Autobahn's order; any other verdict is counted under FAILED.
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR")

#: Autobahn's names for its sections (section 8 does not exist; 11 is empty in the released suite).
SECTIONS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Misc",
    "12": "Compression: payloads",
    "13": "Compression: parameters",
}


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """One case's verdicts, as ``index.json`` records them."""

    case_id: str
    behavior: str
    behavior_close: str
    remote_close_code: int | None
    duration_ms: int

    @property
    def passed(self) -> bool:
        """OK / NON-STRICT / INFORMATIONAL, with an OK or INFORMATIONAL closing handshake."""
        return self.behavior in ACCEPTED and self.behavior_close in ACCEPTED_CLOSE

    @property
    def section(self) -> str:
        """The case's top-level section: ``"6"`` for 6.4.1."""
        return self.case_id.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class SectionRow:
    """One line of the table."""

    section: str
    cases: int
    counts: dict[str, int]
    bad_close: int
    failed: int
    seconds: float


def case_sort_key(case_id: str) -> tuple[int, ...]:
    """Numeric order: 1.2.10 after 1.2.9."""
    return tuple(int(part) if part.isdigit() else 0 for part in case_id.split("."))


def load(report_dir: Path | str, agent: str | None = None) -> list[CaseOutcome]:
    """Read ``index.json`` from ``report_dir`` (or the file itself), for every agent or just ``agent``.

    Raises:
        FileNotFoundError: there is no index.json (the run did not get as far as writing reports).
        ValueError: the file is not an Autobahn index.
    """
    path = Path(report_dir)
    if path.is_dir():
        path = path / "index.json"
    index = json.loads(path.read_text("utf-8"))
    if not isinstance(index, dict):
        raise ValueError(f"{path}: expected an object of agents, got {type(index).__name__}")
    outcomes = []
    for name, cases in index.items():
        if agent is not None and name != agent:
            continue
        for case_id, entry in cases.items():
            outcomes.append(
                CaseOutcome(
                    case_id=case_id,
                    behavior=str(entry["behavior"]),
                    behavior_close=str(entry["behaviorClose"]),
                    remote_close_code=entry.get("remoteCloseCode"),
                    duration_ms=int(entry.get("duration") or 0),
                )
            )
    outcomes.sort(key=lambda outcome: case_sort_key(outcome.case_id))
    return outcomes


def summarise(outcomes: Iterable[CaseOutcome]) -> list[SectionRow]:
    """Group outcomes by section; the last row is the total (section ``"all"``)."""
    by_section: dict[str, list[CaseOutcome]] = {}
    everything = []
    for outcome in outcomes:
        by_section.setdefault(outcome.section, []).append(outcome)
        everything.append(outcome)
    rows = [_row(name, by_section[name]) for name in sorted(by_section, key=case_sort_key)]
    rows.append(_row("all", everything))
    return rows


def _row(section: str, outcomes: list[CaseOutcome]) -> SectionRow:
    counts = dict.fromkeys(BEHAVIORS, 0)
    for outcome in outcomes:
        key = outcome.behavior if outcome.behavior in counts else "FAILED"
        counts[key] += 1
    return SectionRow(
        section=section,
        cases=len(outcomes),
        counts=counts,
        bad_close=sum(1 for o in outcomes if o.behavior_close not in ACCEPTED_CLOSE),
        failed=sum(1 for o in outcomes if not o.passed),
        seconds=sum(o.duration_ms for o in outcomes) / 1000,
    )


def format_table(rows: Sequence[SectionRow], *, markdown: bool = False) -> str:
    """Render the rows as an aligned text table, or as a Markdown table.

    Columns: the section, its case count, one per verdict on the message exchange, ``BAD CLOSE`` (cases
    whose closing handshake was not OK/INFORMATIONAL), ``NOT PASSED`` (cases failing either), and the sum
    of the cases' durations in seconds (cases run in parallel overlap, so this exceeds the wall time).
    """
    header = ["section", "name", "cases", *BEHAVIORS, "BAD CLOSE", "NOT PASSED", "case time (s)"]
    body = [
        [
            row.section,
            SECTIONS.get(row.section, "total" if row.section == "all" else ""),
            str(row.cases),
            *(str(row.counts[b]) for b in BEHAVIORS),
            str(row.bad_close),
            str(row.failed),
            f"{row.seconds:.1f}",
        ]
        for row in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for n, cells in enumerate([header, *body]):
        if n == len(body):  # a rule above the total
            lines.append("  ".join("-" * w for w in widths))
        lines.append(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    return "\n".join(lines)


def format_failures(outcomes: Iterable[CaseOutcome]) -> list[str]:
    """One line per case that did not pass: its id and verdicts (empty when everything passed)."""
    return [
        f"{o.case_id}: behavior={o.behavior} behaviorClose={o.behavior_close} "
        f"remoteCloseCode={o.remote_close_code}"
        for o in outcomes
        if not o.passed
    ]


def report(outcomes: Sequence[CaseOutcome], title: str, *, out: TextIO | None = None) -> bool:
    """Print the title, the table and the cases that did not pass; return whether all passed."""
    stream = sys.stdout if out is None else out
    print(f"\n{title}", file=stream)
    print(format_table(summarise(outcomes)), file=stream)
    failures = format_failures(outcomes)
    if failures:
        print(f"\n{len(failures)} case(s) not OK / NON-STRICT / INFORMATIONAL:", file=stream)
        for line in failures:
            print("  " + line, file=stream)
    return not failures


def main(argv: Sequence[str] | None = None) -> int:
    """``python fuzz/autobahn/summary.py [--markdown] [--agent NAME] REPORT_DIR...``: 0 if all passed."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="report directories (or index.json files), merged")
    parser.add_argument("--agent", help="only this agent's cases")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    outcomes = sorted(
        (o for d in args.reports for o in load(d, args.agent)), key=lambda o: case_sort_key(o.case_id)
    )
    if args.markdown:
        print(format_table(summarise(outcomes), markdown=True))
        return 0 if all(o.passed for o in outcomes) else 1
    return 0 if report(outcomes, ", ".join(args.reports)) else 1


if __name__ == "__main__":
    sys.exit(main())
