"""Layering (STYLE.md §1): ``rawrt.sansio`` does no I/O, so importing it must not import I/O modules.

Checked in a fresh interpreter (this process has imported everything already), against a baseline
interpreter that imports nothing, because ``-X dev`` and site hooks may import some of these at startup.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ["asyncio", "socket", "selectors", "ssl", "time", "random", "secrets"]
SANSIO_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "rawrt" / "sansio").rglob("*.py")
)


def interpreter_flags() -> list[str]:
    """The flags this interpreter runs with that change what is imported at startup (-X dev, -bb)."""
    flags = ["-X", "dev"] if sys.flags.dev_mode else []
    return flags + ["-b"] * sys.flags.bytes_warning


def loaded_after(modules: list[str]) -> set[str]:
    """The forbidden modules present in sys.modules after importing ``modules`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, *interpreter_flags(), "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(result.stdout))


def test_sansio_modules_found() -> None:
    assert "rawrt.sansio.http11" in SANSIO_MODULES and "rawrt.sansio.abnf" in SANSIO_MODULES


def test_sansio_imports_no_io() -> None:
    baseline = loaded_after([])
    assert loaded_after(["rawrt.sansio", *SANSIO_MODULES]) - baseline == set()


def test_the_check_can_fail() -> None:
    """Guard against a vacuous test: importing asyncio is seen."""
    assert "asyncio" in loaded_after(["asyncio"]) - loaded_after([])
