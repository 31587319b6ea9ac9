"""rawrt's import graph, read statically from the source with :mod:`ast`, and the layering rules it must obey.

Shared by ``tests/test_layering.py`` (which fails on any violation) and ``docs/tools/make_import_graph.py``
(which draws the graph into ``docs/topics/design.md``). Nothing here imports rawrt: the files are parsed,
not executed, so the check is fast and sees every import, not only the ones a test run happens to reach.

What counts as an import of module A (a file under the package) by module M:

* every ``import`` and ``from ... import`` statement anywhere in M's file: at module level, inside a
  function (a lazy import) and under ``if TYPE_CHECKING:``. Relative imports are resolved against M's
  package. ``from P import name`` imports the submodule ``P.name`` when there is one, and reads an
  attribute of ``P`` (so depends on ``P/__init__.py``) when there is not.
* the package ``__init__`` modules Python runs on the way to A (``import rawrt.sansio.ws.frames`` runs
  ``rawrt/sansio/__init__.py`` and ``rawrt/sansio/ws/__init__.py`` first), marked *implicit*, EXCEPT the
  packages that contain M itself. Those are already being imported when M runs (Python imports a
  package before any module in it), so they are not a new dependency. This is what lets a package's
  ``__init__`` re-export its own children (``rawrt/sse/__init__.py`` imports ``.stream``) without every
  child looking like it imports its parent back. A child that *reads a name* from its own package
  (``from rawrt.sse import EventStream`` inside ``rawrt/sse/hub.py``) does depend on the ``__init__``
  having run, and that edge is counted, so the re-export cycle it makes is reported.

Not seen: ``importlib.import_module()`` with a computed name. rawrt uses it in two places, both at the top
layer: ``rawrt/__init__.py``'s lazy exports (PEP 562), whose targets its ``if TYPE_CHECKING:`` block
imports statically, and ``rawrt/cli.py`` loading the user's app.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

ROOT = Path(__file__).resolve().parent.parent

#: The dependency layers, lowest first (docs/topics/design.md, "Layers"). A module may import from its own
#: layer or a lower one. ``NAME.*`` is the package NAME and everything under it; a bare name is exactly
#: that module. A module that matches no pattern is reported, so a new top-level module gets a layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("errors and limits", ("rawrt.errors", "rawrt.limits")),
    ("sans-IO protocols", ("rawrt.sansio.*",)),
    ("hub", ("rawrt.hub.*",)),
    ("application API", ("rawrt.app",)),
    ("asyncio adapters", ("rawrt.websocket.*", "rawrt.sse.*", "rawrt.polling", "rawrt.lab.*")),
    ("server", ("rawrt.server.*",)),
    (
        "entry points",
        (
            "rawrt",
            "rawrt.__main__",
            "rawrt.cli",
            "rawrt.compare.*",
            "rawrt.config",
            "rawrt.demo",
            "rawrt.experiment",
            "rawrt.testee",
            "rawrt.workers",
        ),
    ),
)

#: I/O, the clock and global randomness: what the sans-IO core must not import (STYLE.md §1).
IO_MODULES = ("asyncio", "socket", "selectors", "ssl", "time", "random", "secrets")


@dataclass(frozen=True)
class Confinement:
    """Modules matching ``pattern`` may import only the standard library (minus ``forbidden``) and
    the package modules matching ``allowed``."""

    pattern: str
    allowed: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    why: str = ""
    #: ``(module, distribution)`` pairs: that module (only) may also import that third-party package, an
    #: opt-in extra (``rawrt.hub.backends.redis`` and redis-py).
    extras: tuple[tuple[str, str], ...] = ()


CONFINED = (
    Confinement(
        "rawrt.sansio.*",
        ("rawrt.errors", "rawrt.limits", "rawrt.sansio.*"),
        IO_MODULES,
        "the sans-IO core does no I/O and sits on errors and limits only",
    ),
    Confinement(
        "rawrt.hub.*",
        ("rawrt.errors", "rawrt.limits", "rawrt.hub.*"),
        (),
        "the hub is transport-neutral: no wire format, no HTTP",
        (("rawrt.hub.backends.redis", "redis"),),
    ),
    Confinement(
        "rawrt.lab.annotate",
        ("rawrt.errors", "rawrt.limits", "rawrt.sansio.*"),
        IO_MODULES,
        "the lab's annotator is sans-IO too: bytes in, records out, with the core's own parsers",
    ),
)


def matches(module: str, pattern: str) -> bool:
    """``pattern`` is ``NAME`` (that module) or ``NAME.*`` (NAME and every module under it)."""
    if pattern.endswith(".*"):
        package = pattern[:-2]
        return module == package or module.startswith(package + ".")
    return module == pattern


def layer_of(module: str, layers: Sequence[tuple[str, tuple[str, ...]]] = LAYERS) -> int | None:
    """The layer number (1 = lowest) of ``module``, or None when no layer lists it."""
    for number, (_title, patterns) in enumerate(layers, start=1):
        if any(matches(module, p) for p in patterns):
            return number
    return None


def ancestors(module: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``: the packages Python imports before ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@dataclass(frozen=True)
class Module:
    name: str
    path: str  #: relative to the root, with forward slashes
    is_package: bool
    lines: int


@dataclass(frozen=True)
class Import:
    """One dependency of ``source`` on ``target``, from one statement."""

    source: str
    target: str
    path: str
    line: int
    where: str  #: "" (module level), "inside a function", "under TYPE_CHECKING", or both
    implicit: bool = False  #: the target is a package whose ``__init__`` runs on the way to the named module

    @property
    def lazy(self) -> bool:
        return bool(self.where)

    def describe(self) -> str:
        notes = [self.where] if self.where else []
        if self.implicit:
            notes.append(f"runs {self.target}'s __init__")
        return f"{self.path}:{self.line}" + (f" ({', '.join(notes)})" if notes else "")


@dataclass
class Graph:
    package: str
    modules: dict[str, Module] = field(default_factory=dict)
    #: imports of the package's own modules, every statement (so a pair may appear several times)
    imports: list[Import] = field(default_factory=list)
    #: imports of anything else (the standard library, uvloop...); ``target`` is the full dotted name
    external: list[Import] = field(default_factory=list)

    def edges(self) -> dict[str, dict[str, Import]]:
        """``{source: {target: the import that shows it}}``, one per pair, preferring an explicit,
        module-level statement (the most telling one to point at)."""
        out: dict[str, dict[str, Import]] = {name: {} for name in self.modules}
        for imp in sorted(self.imports, key=lambda i: (i.implicit, i.lazy, i.line)):
            out[imp.source].setdefault(imp.target, imp)
        return out


# ------------------------------------------------------------------------------------------------- building


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


Statement: TypeAlias = ast.Import | ast.ImportFrom


def _statements(tree: ast.AST) -> Iterator[tuple[Statement, str]]:
    """Every import statement in ``tree`` with where it sits (see :attr:`Import.where`)."""

    def visit(node: ast.AST, function: bool, type_checking: bool) -> Iterator[tuple[Statement, str]]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            where = ["inside a function"] * function + ["under TYPE_CHECKING"] * type_checking
            yield node, ", ".join(where)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            function = True
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                yield from visit(statement, function, True)
            for statement in node.orelse:  # the else branch runs
                yield from visit(statement, function, type_checking)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, function, type_checking)

    yield from visit(tree, False, False)


def _resolve_base(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` statement names (PEP 328 relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    package = importer if is_package else importer.rpartition(".")[0]
    parts = package.split(".")
    if node.level - 1 >= len(parts):
        raise ValueError(f"{importer}: relative import beyond the top-level package")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def build(root: Path = ROOT, package: str = "rawrt") -> Graph:
    """Parse every ``*.py`` under ``root/package`` and collect its imports."""
    graph = Graph(package)
    files = sorted((root / package).rglob("*.py"))
    for path in files:
        name, is_package = module_name(path, root)
        text = path.read_text("utf-8")
        rel = path.relative_to(root).as_posix()
        graph.modules[name] = Module(name, rel, is_package, len(text.splitlines()))
    for module in graph.modules.values():
        tree = ast.parse((root / module.path).read_text("utf-8"), module.path)
        for node, where in _statements(tree):
            for target, implicit in _targets(graph, module, node):
                inside = target == package or target.startswith(package + ".")
                imp = Import(module.name, target, module.path, node.lineno, where, implicit)
                if not inside:
                    graph.external.append(imp)
                elif target != module.name:
                    graph.imports.append(imp)
    return graph


def _targets(graph: Graph, module: Module, node: Statement) -> Iterator[tuple[str, bool]]:
    """``(module name, implicit)`` for each module the statement depends on."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = _resolve_base(module.name, module.is_package, node)
        named = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in graph.modules]
        if len(named) < len(node.names):  # a name that is no submodule (or "*") is read from base itself
            named.insert(0, base)
        # else: only submodules; base's __init__ still runs on the way, as an ancestor (below)
    own = {*ancestors(module.name), module.name}
    seen: set[str] = set()
    for name in named:
        target = _known(graph, name)
        if target not in seen:
            seen.add(target)
            yield target, False
        for parent in ancestors(name):
            if parent not in own and parent not in seen and parent in graph.modules:
                seen.add(parent)
                yield parent, True


def _known(graph: Graph, name: str) -> str:
    """``name`` if it is one of the package's modules, else its longest prefix that is (``rawrt.x.attr``
    written as a module path); outside the package, ``name`` as it is."""
    if name in graph.modules or not (name == graph.package or name.startswith(graph.package + ".")):
        return name
    for parent in reversed(ancestors(name)):
        if parent in graph.modules:
            return parent
    return name


# --------------------------------------------------------------------------------------------------- checks


def find_cycles(graph: Graph) -> list[str]:
    """One message per strongly connected component of more than one module: its members, and one
    shortest cycle through it with the file and line of each import."""
    edges = graph.edges()
    messages = []
    for component in _components({s: set(t) for s, t in edges.items()}):
        start = min(component)
        path = _shortest_cycle(edges, component, start)
        shown = list(zip(path, path[1:], strict=False))
        steps = [f"    {a} -> {b}: {edges[a][b].describe()}" for a, b in shown]
        more = [
            f"    {a} -> {b}: {imp.describe()}"
            for a in sorted(component)
            for b, imp in sorted(edges[a].items())
            if b in component and (a, b) not in shown
        ]
        also = ["  other imports among the modules of this cycle:", *more] if more else []
        messages.append("\n".join([f"import cycle: {' -> '.join(path)}", *steps, *also]))
    return messages


def _components(adjacency: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one member (self-imports are dropped)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(adjacency.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(component)

    for node in sorted(adjacency):
        if node not in index:
            connect(node)
    return sorted(out, key=min)


def _shortest_cycle(edges: dict[str, dict[str, Import]], component: set[str], start: str) -> list[str]:
    """Breadth-first from ``start`` back to itself, inside ``component``: ``[start, ..., start]``."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(edges[node]):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if succ in component and succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"{start} is in a cycle but no path leads back to it")  # pragma: no cover


def upward_imports(graph: Graph, layers: Sequence[tuple[str, tuple[str, ...]]] = LAYERS) -> list[str]:
    """One message per import of a module in a higher layer than the importer's."""
    messages = []
    for source, targets in graph.edges().items():
        low = layer_of(source, layers)
        for target, imp in targets.items():
            high = layer_of(target, layers)
            if low is not None and high is not None and high > low:
                messages.append(
                    f"upward import: {source} (layer {low}, {layers[low - 1][0]}) imports {target} "
                    f"(layer {high}, {layers[high - 1][0]}): {imp.describe()}"
                )
    return messages


def unlayered(graph: Graph, layers: Sequence[tuple[str, tuple[str, ...]]] = LAYERS) -> list[str]:
    """One message per module that no layer lists."""
    return [
        f"{m.path}: module {m.name} is in no layer: add it to LAYERS in tests/import_graph.py"
        for m in graph.modules.values()
        if layer_of(m.name, layers) is None
    ]


def confinement(graph: Graph, rules: Iterable[Confinement] = CONFINED) -> list[str]:
    """One message per import that a :class:`Confinement` rule does not allow."""
    messages = []
    for rule in rules:
        tagged = [(imp, True) for imp in graph.imports] + [(imp, False) for imp in graph.external]
        for imp, inside in tagged:
            if imp.implicit or not matches(imp.source, rule.pattern):
                continue  # an implicit __init__ comes with an explicit import, which is reported
            top = imp.target.split(".")[0]
            if inside:
                ok = any(matches(imp.target, p) for p in rule.allowed)
            else:
                ok = (top in sys.stdlib_module_names and top not in rule.forbidden) or (
                    imp.source,
                    top,
                ) in rule.extras
            if not ok:
                what = (
                    imp.target if inside or top in sys.stdlib_module_names else f"{imp.target} (not stdlib)"
                )
                not_ = f" (not {', '.join(rule.forbidden)})" if rule.forbidden else ""
                messages.append(
                    f"{imp.source} imports {what}: {imp.describe()}; {rule.pattern} may import only "
                    f"{', '.join(rule.allowed)} and the standard library{not_}: {rule.why}"
                )
    return messages


def violations(graph: Graph) -> list[str]:
    """Everything wrong with ``graph``, one message each."""
    return unlayered(graph) + find_cycles(graph) + upward_imports(graph) + confinement(graph)


if __name__ == "__main__":  # python tests/import_graph.py: list the violations in the working tree
    found = violations(build())
    print("\n".join(found) or "no violations")
    sys.exit(1 if found else 0)
