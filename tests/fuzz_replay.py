"""Loads a fuzz target and its corpus for the pytest replays (``tests/test_fuzz_*.py``).

``fuzz/`` is not a package (OSS-Fuzz builds each ``fuzz_*.py`` as a script), so a target is loaded from its
path. Each replay module adds its own Hypothesis strategy, shaped by the format it fuzzes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"


def load_target(name: str) -> Callable[[bytes], None]:
    """The ``test_one_input`` of ``fuzz/<name>.py``."""
    spec = importlib.util.spec_from_file_location(name, FUZZ_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target: Callable[[bytes], None] = module.test_one_input
    return target


def corpus(directory: str) -> list[Path]:
    """The seed files of ``fuzz/corpus/<directory>``, in a stable order."""
    return sorted((FUZZ_DIR / "corpus" / directory).iterdir())
