"""The layout of the house (docs/architecture.md): imports point one way, down the pipeline.

A module may import its own package and any package of a lower level, never a higher one,
wherever the import sits (at the top, or inside a function to dodge a cycle). oci/ and
registry/ are given a blob directory or store: they never import the cache."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# Lowest first. A package (or top-level module) of uvship -> its level.
LEVELS = {
    # base: errors, progress, files and processes, patterns, the tar writer
    "errors": 0, "progress": 0, "_fs": 0, "_proc": 0, "_glob": 0, "layers": 0, "_version": 0,
    # where bytes live and how targets are named
    "oci": 1, "registry": 1, "cache": 1, "targets": 1,
    # the project and the uv runner
    "project": 2, "uv": 2,
    "python": 3,
    "stage": 4,
    "image": 5,
    "sbom": 6,
    "publish": 7, "remote_cache": 7,
    "pipeline": 8, "dockerfile": 8, "doctor": 8, "audit": 8, "inspect": 8,
    "api": 9,
    "cli": 10,
    "__init__": 11, "__main__": 11,
}
NEVER = {("oci", "cache"), ("registry", "cache")}


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
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(SRC / "uvship", copy / "uvship",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / source).write_text((copy / source).read_text() + "\n" + target + "\n")
    assert [v for v in violations(copy) if v.startswith(source)], violations(copy)


def test_the_documented_layout_is_this_one():
    """docs/architecture.md names every package of LEVELS."""
    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    missing = [p for p in LEVELS if p not in ("__init__", "__main__") and f"`{p}" not in doc]
    assert missing == [], missing
