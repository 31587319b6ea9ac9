"""The commands the docs name inside their prose (``code spans``, not blocks) are real commands.

The blocks are run (tests/docrun.py, tests/test_doc_commands.py); a command a sentence names in passing
("start it with `python -m rawrt demo --trace`") is checked without running it:

* ``rawrt ...`` and ``python -m rawrt ...``: parsed by the CLI's own parser (``rawrt.cli.build_parser``) and,
  for ``serve`` and ``demo``, turned into a ``Config`` (the checks a run makes before it binds), so a renamed
  or removed flag, a bad ``--limit`` or ``--hub`` cannot stay in a page;
* ``python PATH.py``: the script exists in the repository (or is one of the tutorial's own files);
* ``pip install ...`` of this checkout: ``docrun.check_pip_install`` (the extras exist and are installed).

A span with a placeholder (``...``, ``[URL]``, ``MODULE:APP``, ``PORT``, ``a|b``) is a synopsis, not a
command, and is left out; so is a span that is output (a banner, an error line).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import docrun
import pytest

from rawrt.cli import build_parser
from rawrt.config import Config

SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
RAWRT = re.compile(r"^(?:python -m )?rawrt (serve|demo|testee-client|compare|experiment|--version)\b")
PLACEHOLDER = re.compile(r"\.\.\.|\[[A-Z]+\]|\b[A-Z]{3,}\b|\|")
OUTPUT = re.compile(r"listening on|error:|\bX\.Y\.Z\b")


def spans() -> list[tuple[str, str]]:
    """``(where, span)`` for every inline code span in README.md and docs/, outside fenced blocks."""
    found: list[tuple[str, str]] = []
    for page in docrun.pages():
        text = re.sub(r"```.*?```", "", page.read_text("utf-8"), flags=re.S)
        for match in SPAN.finditer(text):
            found.append((str(page.relative_to(docrun.ROOT)), match.group(1).strip()))
    return found


def commands(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return [
        (where, span)
        for where, span in spans()
        if pattern.search(span) and not PLACEHOLDER.search(span) and not OUTPUT.search(span)
    ]


def tutorial_files() -> set[str]:
    text = "\n".join(page.read_text("utf-8") for page in (docrun.DOCS / "tutorial").glob("*.md"))
    return set(re.findall(r"# file: (\S+\.py)", text))


#: ``rawrt serve`` alone is the name of a subcommand that needs an argument, not a command to run.
NAMES = re.compile(r"^(?:python -m )?rawrt (serve|testee-client|experiment)$")
RAWRT_COMMANDS = [(where, span) for where, span in commands(RAWRT) if not NAMES.match(span)]
SCRIPTS = commands(re.compile(r"^python (?!-)\S+\.py\b"))
INSTALLS = commands(re.compile(r"^pip install [-'.]"))


def test_the_docs_name_commands_in_prose() -> None:
    # The scan finds what it is meant to find: the pages do name these in passing.
    assert len(RAWRT_COMMANDS) >= 10 and len(SCRIPTS) >= 5 and len(INSTALLS) >= 3


@pytest.mark.parametrize(("where", "span"), RAWRT_COMMANDS, ids=[f"{w}:{s}" for w, s in RAWRT_COMMANDS])
def test_rawrt_command_parses(where: str, span: str) -> None:
    argv = shlex.split(span)
    argv = argv[3:] if argv[0] == "python" else argv[1:]
    if argv == ["--version"]:
        return  # argparse's own action: it prints and exits 0
    args = build_parser().parse_args(argv)  # a usage error exits 2 with the page's mistake
    if args.command in ("serve", "demo"):
        Config.from_args(args)


@pytest.mark.parametrize(("where", "span"), SCRIPTS, ids=[f"{w}:{s}" for w, s in SCRIPTS])
def test_script_exists(where: str, span: str) -> None:
    script = shlex.split(span)[1]
    assert (docrun.ROOT / script).is_file() or Path(script).name in tutorial_files(), f"{where}: {span}"


@pytest.mark.parametrize(("where", "span"), INSTALLS, ids=[f"{w}:{s}" for w, s in INSTALLS])
def test_install_names_this_checkout(where: str, span: str) -> None:
    docrun.check_pip_install(span)
