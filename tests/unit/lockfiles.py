"""Small uv workspaces written by hand: a pyproject.toml per project and a uv.lock."""

from __future__ import annotations

import textwrap
from pathlib import Path

from uvship.project.workspace import Workspace


def package(name: str, version: str = "1.0", *, source: str = 'registry = "https://index.invalid/simple"',
            dependencies: str = "", optional: dict[str, str] | None = None,
            groups: dict[str, str] | None = None, wheels: tuple[str, ...] = (),
            sdist: str | None = None) -> str:
    """One `[[package]]` of uv.lock; dependency lists are given as TOML array items."""
    out = [f'[[package]]\nname = "{name}"\nversion = "{version}"\nsource = {{ {source} }}']
    if dependencies:
        out.append(f"dependencies = [{dependencies}]")
    if sdist:
        out.append(f'sdist = {{ url = "https://files.example/{sdist}", hash = "sha256:00" }}')
    if wheels:
        out.append("wheels = [" + ", ".join(
            f'{{ url = "https://files.example/{w}", hash = "sha256:{i:02}" }}'
            for i, w in enumerate(wheels)) + "]")
    for table, lists in (("optional-dependencies", optional), ("dev-dependencies", groups)):
        if lists:
            out.append(f"\n[package.{table}]")
            out += [f"{k} = [{v}]" for k, v in lists.items()]
    return "\n".join(out) + "\n"


def project(path: Path, name: str, *, version: str = "1.0", body: str = "") -> Path:
    """A project directory with a pyproject.toml and one module."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\n{textwrap.dedent(body)}')
    mod = path / "src" / name.replace("-", "_")
    mod.mkdir(parents=True, exist_ok=True)
    (mod / "__init__.py").write_text(f"NAME = {name!r}\n")
    return path


def workspace(root: Path, packages: list[str], *, manifest: str = "",
              pyproject: str | None = None) -> Workspace:
    """A workspace at ``root``: uv.lock from ``packages`` (package() texts), the root's
    pyproject.toml (default: a project named app)."""
    root.mkdir(parents=True, exist_ok=True)
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    elif not (root / "pyproject.toml").is_file():
        project(root, "app")
    (root / "uv.lock").write_text('version = 1\nrevision = 3\nrequires-python = ">=3.11"\n\n'
                                  + manifest + "\n" + "\n".join(packages))
    return Workspace.open(root)
