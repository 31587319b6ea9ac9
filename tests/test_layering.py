"""Layering (STYLE.md §1, docs/topics/design.md "Layers"): dependencies point one way.

Two checks, one static and one live:

* The import graph, read from the source by ``tests/import_graph.py`` (every ``import`` statement, at
  module level, inside functions and under ``TYPE_CHECKING``), has no cycle and no upward import across
  the layers listed there; the sans-IO core imports only the standard library (no I/O, clock or global
  randomness), ``rawrt.errors``, ``rawrt.limits`` and itself; the hub imports no wire format. The second
  half of this file feeds the checker small packages written to a temporary directory, to show that it
  does report each kind of violation, naming the modules, files and lines.
* Importing ``rawrt.sansio`` in a fresh interpreter imports no I/O module. Checked against a baseline
  interpreter that imports nothing, because ``-X dev`` and site hooks may import some of these at startup
  (this process has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from import_graph import (
    IO_MODULES,
    Graph,
    build,
    confinement,
    find_cycles,
    layer_of,
    unlayered,
    upward_imports,
    violations,
)

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = list(IO_MODULES)
SANSIO_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "rawrt" / "sansio").rglob("*.py")
)
GRAPH = build(ROOT)


def failure(messages: list[str]) -> str:
    return "\n" + "\n".join(messages)


# ------------------------------------------------------------------------------------ the static import graph


def test_graph_sees_the_package() -> None:
    assert {"rawrt", "rawrt.errors", "rawrt.sansio.http11", "rawrt.server"} <= GRAPH.modules.keys()
    assert GRAPH.modules.keys() == {m.removesuffix(".__init__") for m in all_module_names()}
    assert len(GRAPH.imports) > len(GRAPH.modules)


def all_module_names() -> set[str]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "rawrt").rglob("*.py")}


def test_every_module_has_a_layer() -> None:
    problems = unlayered(GRAPH)
    assert not problems, failure(problems)


def test_no_import_cycle() -> None:
    problems = find_cycles(GRAPH)
    assert not problems, failure(problems)


def test_no_upward_import() -> None:
    problems = upward_imports(GRAPH)
    assert not problems, failure(problems)


def test_sansio_and_hub_import_only_what_they_may() -> None:
    problems = confinement(GRAPH)
    assert not problems, failure(problems)


# ---------------------------------------------------------------------- the checker reports what it should


def package(tmp_path: Path, files: dict[str, str]) -> Graph:
    """Write ``files`` (paths under ``rawrt/``) to ``tmp_path``, with an empty ``__init__.py`` for every
    package that has none, and build their graph."""
    for name, source in files.items():
        path = tmp_path / "rawrt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), "utf-8")
    for directory in [tmp_path / "rawrt", *(tmp_path / "rawrt").rglob("*/")]:
        if directory.is_dir() and not (directory / "__init__.py").exists():
            (directory / "__init__.py").write_text("", "utf-8")
    return build(tmp_path)


def test_check_fails_on_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    graph = package(
        tmp_path,
        {
            "sansio/frames.py": """\
                import re


                def parse() -> None:
                    from .connection import State
            """,
            "sansio/connection.py": "from . import frames\n",
        },
    )
    assert find_cycles(graph) == [
        "import cycle: rawrt.sansio.connection -> rawrt.sansio.frames -> rawrt.sansio.connection\n"
        "    rawrt.sansio.connection -> rawrt.sansio.frames: rawrt/sansio/connection.py:1\n"
        "    rawrt.sansio.frames -> rawrt.sansio.connection: rawrt/sansio/frames.py:5 (inside a function)"
    ]
    assert upward_imports(graph) == []


def test_check_fails_on_an_upward_import_under_type_checking(tmp_path: Path) -> None:
    graph = package(
        tmp_path,
        {
            "hub/core.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from rawrt.server import Server
                else:
                    from rawrt.errors import RawrtError
            """,
            "server/__init__.py": "from rawrt.hub.core import Hub\n",
            "errors.py": "",
        },
    )
    assert upward_imports(graph) == [
        "upward import: rawrt.hub.core (layer 3, hub) imports rawrt.server (layer 6, server): "
        "rawrt/hub/core.py:4 (under TYPE_CHECKING)"
    ]
    cycles = find_cycles(graph)
    assert len(cycles) == 1 and cycles[0].startswith("import cycle: rawrt.hub.core -> rawrt.server -> ")
    # the else branch of `if TYPE_CHECKING:` runs: it is an ordinary import
    assert [i.where for i in graph.imports if i.target == "rawrt.errors"] == [""]


def test_check_counts_a_package_init_on_the_way(tmp_path: Path) -> None:
    """Importing rawrt.sansio.ws.frames runs rawrt/sansio/__init__.py, which here imports the app lazily."""
    graph = package(
        tmp_path,
        {
            "app.py": "from rawrt.sansio.ws.frames import Frame\n",
            "sansio/__init__.py": "def app() -> object:\n    from rawrt import app\n    return app\n",
            "sansio/ws/frames.py": "",
        },
    )
    assert upward_imports(graph) == [
        "upward import: rawrt.sansio (layer 2, sans-IO protocols) imports rawrt.app "
        "(layer 4, application API): rawrt/sansio/__init__.py:2 (inside a function)"
    ]
    assert find_cycles(graph) == [
        "import cycle: rawrt.app -> rawrt.sansio -> rawrt.app\n"
        "    rawrt.app -> rawrt.sansio: rawrt/app.py:1 (runs rawrt.sansio's __init__)\n"
        "    rawrt.sansio -> rawrt.app: rawrt/sansio/__init__.py:2 (inside a function)"
    ]


def test_a_package_may_reexport_its_children(tmp_path: Path) -> None:
    """rawrt/sse/__init__.py importing its own modules is no cycle, though each child's import runs it."""
    files = {
        "sse/__init__.py": "from .hub import hub_stream\nfrom .stream import EventStream\n",
        "sse/hub.py": "from .stream import EventStream\nfrom rawrt.sse import stream\n",
        "sse/stream.py": "from ..errors import ConnectionClosed\n",
        "errors.py": "",
        "polling.py": "from rawrt.sse.hub import hub_stream\n",
    }
    graph = package(tmp_path, files)
    assert violations(graph) == []
    edges = graph.edges()
    assert set(edges["rawrt.sse.hub"]) == {"rawrt.sse.stream"}
    assert set(edges["rawrt.polling"]) == {"rawrt.sse", "rawrt.sse.hub"}
    assert edges["rawrt.polling"]["rawrt.sse"].implicit


def test_a_child_reading_from_its_own_package_is_a_cycle(tmp_path: Path) -> None:
    graph = package(
        tmp_path,
        {
            "sse/__init__.py": "from .hub import hub_stream\nfrom .stream import EventStream\n",
            "sse/hub.py": "from rawrt.sse import EventStream\n",
            "sse/stream.py": "",
        },
    )
    assert find_cycles(graph) == [
        "import cycle: rawrt.sse -> rawrt.sse.hub -> rawrt.sse\n"
        "    rawrt.sse -> rawrt.sse.hub: rawrt/sse/__init__.py:1\n"
        "    rawrt.sse.hub -> rawrt.sse: rawrt/sse/hub.py:1"
    ]


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    graph = package(
        tmp_path,
        {
            "sansio/ws/__init__.py": "from . import frames\n",
            "sansio/ws/frames.py": """\
                from .. import abnf
                from ...errors import RawrtError
                import rawrt.limits
            """,
            "sansio/abnf.py": "",
            "errors.py": "",
            "limits.py": "",
        },
    )
    edges = graph.edges()
    assert set(edges["rawrt.sansio.ws"]) == {"rawrt.sansio.ws.frames"}
    assert set(edges["rawrt.sansio.ws.frames"]) == {"rawrt.sansio.abnf", "rawrt.errors", "rawrt.limits"}


def test_check_fails_on_io_and_wire_formats_where_they_do_not_belong(tmp_path: Path) -> None:
    graph = package(
        tmp_path,
        {
            "sansio/frames.py": """\
                import struct


                def now() -> float:
                    import time
                    return time.time()
            """,
            "sansio/deflate.py": "import uvloop\n",
            "sansio/sse.py": "",
            "hub/core.py": "from rawrt.sansio.sse import encode\nimport json\n",
        },
    )
    sansio_rule = (
        "rawrt.sansio.* may import only rawrt.errors, rawrt.limits, rawrt.sansio.* and the standard library "
        "(not asyncio, socket, selectors, ssl, time, random, secrets): the sans-IO core does no I/O and sits "
        "on errors and limits only"
    )
    hub_rule = (
        "rawrt.hub.* may import only rawrt.errors, rawrt.limits, rawrt.hub.* and the standard library: "
        "the hub is transport-neutral: no wire format, no HTTP"
    )
    assert confinement(graph) == [
        f"rawrt.sansio.deflate imports uvloop (not stdlib): rawrt/sansio/deflate.py:1; {sansio_rule}",
        f"rawrt.sansio.frames imports time: rawrt/sansio/frames.py:5 (inside a function); {sansio_rule}",
        f"rawrt.hub.core imports rawrt.sansio.sse: rawrt/hub/core.py:1; {hub_rule}",
    ]


def test_check_fails_on_a_module_without_a_layer(tmp_path: Path) -> None:
    graph = package(tmp_path, {"errors.py": "", "plugins/extra.py": ""})
    assert layer_of("rawrt.errors") == 1 and layer_of("rawrt.plugins.extra") is None
    assert unlayered(graph) == [
        f"rawrt/plugins/{file}: module {name} is in no layer: add it to LAYERS in tests/import_graph.py"
        for file, name in [("__init__.py", "rawrt.plugins"), ("extra.py", "rawrt.plugins.extra")]
    ]


# ------------------------------------------------------------------------------------ no I/O, checked live


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
