"""The layout of the house (docs/architecture.md): imports point one way, down the pipeline.

A module may import its own package and any package of a lower level, never a higher one,
wherever the import sits (at the top, or inside a function to dodge a cycle). oci/ and
registry/ are given a blob directory or store: they never import the cache. Within a level
too imports point one way: no two modules import each other, directly or round a loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# Lowest first. A package (or top-level module) of uvship -> its level.
LEVELS = {
    # base: errors, progress, files and processes, patterns, the tar writer, findings (SARIF)
    "errors": 0, "progress": 0, "_fs": 0, "_paths": 0, "_proc": 0, "_glob": 0, "layers": 0,
    "_version": 0,
    "sarif": 0,
    # where bytes live and how targets are named
    "oci": 1, "registry": 1, "cache": 1, "targets": 1,
    # the project and the uv runner
    "project": 2, "uv": 2, "_nochange": 2,
    "python": 3,
    "stage": 4,
    "image": 5,
    "sbom": 6,
    "publish": 7, "remote_cache": 7,
    "pipeline": 8, "dockerfile": 8, "doctor": 8, "audit": 8, "inspect": 8,
    "api": 9,
    "cli": 10,
    "__init__": 11, "__main__": 11, "_entry": 11,
}
NEVER = {("oci", "cache"), ("registry", "cache")}
# Import cycles that exist and are another change's to break, each as its set of modules.
# A cycle not listed fails, and so does a listed one once it is gone: the list only shrinks.
KNOWN_CYCLES: list[set[str]] = []


def _module(path: Path, src: Path = SRC) -> tuple[str, bool]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(src: Path, dotted: str) -> bool:
    p = src.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def imports_of(path: Path, src: Path = SRC) -> list[str]:
    """Every uvship module ``path`` imports, wherever the import statement is."""
    mod, is_pkg = _module(path, src)
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                # `from .. import x`: the module x, or a name of the package itself
                out += [f"{target}.{a.name}" if _is_module(src, f"{target}.{a.name}")
                        else target for a in node.names] if not node.module else [target]
            elif (node.module or "").startswith("uvship"):
                out.append(node.module or "")
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("uvship")]
    return out


def violations(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted((src / "uvship").rglob("*.py")):
        mod, _ = _module(path, src)
        me = _top(mod) if mod != "uvship" else "__init__"
        assert me in LEVELS, f"{path}: a package with no level in LEVELS (and the docs)"
        for target in imports_of(path, src):
            other = _top(target)
            if other == me:
                continue
            if LEVELS[other] > LEVELS[me] or (me, other) in NEVER:
                bad.append(f"{path.relative_to(src)} ({me}) imports {target} ({other})")
    return bad


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Each uvship module -> the uvship modules (or packages) it imports, anywhere in it."""
    graph = {}
    for path in sorted((src / "uvship").rglob("*.py")):
        mod, _ = _module(path, src)
        graph[mod] = {t for t in imports_of(path, src) if t != mod}
    return graph


def cycles(src: Path = SRC) -> list[list[str]]:
    """Every set of modules that import each other round a loop (the strongly connected
    components of the import graph with more than one module), each sorted."""
    graph = import_graph(src)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(m: str) -> None:  # Tarjan's algorithm
        index[m] = low[m] = len(index)
        stack.append(m)
        for t in graph[m] & graph.keys():
            if t not in index:
                visit(t)
                low[m] = min(low[m], low[t])
            elif t in stack:
                low[m] = min(low[m], index[t])
        if low[m] == index[m]:
            component = []
            while not component or component[-1] != m:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for m in graph:
        if m not in index:
            visit(m)
    return sorted(found)


def _planted(tmp_path: Path, source: str, text: str) -> Path:
    """A copy of the source tree with ``text`` appended to the module ``source``."""
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(SRC / "uvship", copy / "uvship",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / source).write_text((copy / source).read_text() + "\n" + text + "\n")
    return copy


def test_imports_point_down_the_pipeline():
    assert violations() == []


@pytest.mark.parametrize("source,target", [
    ("uvship/oci/layout.py", "from ..cache import blob_dir"),
    ("uvship/project/plan.py", "from ..stage.venv import stage"),
    ("uvship/image/assemble.py", "def f():\n    from ..publish import export"),
])
def test_the_rule_sees_an_upward_import(tmp_path, source, target):
    """The check itself can fail: an upward (or forbidden) import planted in a copy of the
    tree is reported, wherever it sits."""
    copy = _planted(tmp_path, source, target)
    assert [v for v in violations(copy) if v.startswith(source)], violations(copy)


def test_no_import_cycle_between_modules():
    """No two modules of a package (nor of one level) import each other, directly or round
    a loop, wherever the imports sit: under TYPE_CHECKING, inside a function or at the top."""
    found = cycles()
    assert [c for c in found if set(c) not in KNOWN_CYCLES] == []
    assert [sorted(k) for k in KNOWN_CYCLES if sorted(k) not in found] == [], \
        "a known cycle is gone: remove it from KNOWN_CYCLES"


@pytest.mark.parametrize("source,text,loop", [
    # rules imports parse at its top: parse importing rules back, even in a function
    ("uvship/doctor/parse.py", "def f():\n    from .rules import RULES",
     ["uvship.doctor.parse", "uvship.doctor.rules"]),
    # round three modules: report -> rules -> parse -> report (`from . import` a module)
    ("uvship/doctor/parse.py", "from . import report",
     ["uvship.doctor.parse", "uvship.doctor.report", "uvship.doctor.rules"]),
    # assemble imports runtime (in a function) and basecheck, which imports runtime: a
    # runtime naming assemble only for types closes a loop through both
    ("uvship/image/runtime.py", "if TYPE_CHECKING:\n    from .assemble import Tier",
     ["uvship.image.assemble", "uvship.image.basecheck", "uvship.image.runtime"]),
])
def test_the_cycle_check_sees_a_planted_cycle(tmp_path, source, text, loop):
    """The cycle check itself can fail: a loop planted in a copy of the tree is reported
    with exactly the modules on it, and the tree as it is has no such loop."""
    assert loop not in cycles()
    assert loop in cycles(_planted(tmp_path, source, text))


def test_the_documented_layout_is_this_one():
    """docs/architecture.md names every package of LEVELS."""
    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    missing = [p for p in LEVELS if p not in ("__init__", "__main__") and f"`{p}" not in doc]
    assert missing == [], missing
