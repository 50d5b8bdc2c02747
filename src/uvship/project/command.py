"""What runs: a command line's first word resolved in the environment, in exec form.

One meaning everywhere: `build` (the image's Entrypoint), `bundle` (its manifest),
`dockerfile` (ENTRYPOINT) and build steps (run on this host in the staged environment).
No shell is involved: `python` is the environment's interpreter, a name is a program in the
environment's bin/ (a Python console script runs as `[python, script]`, so an image needs
no /bin/sh for uv's script trampoline), a relative path is a file of the project in the
working directory, an absolute path is taken as it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import InputError

_PYTHON = re.compile(r"python(?:3(?:\.\d+)?)?$")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
# bin/ entries that are the environment's plumbing, not programs to suggest
_PLUMBING = re.compile(r"(activate.*|deactivate.*|python[0-9.]*|pydoc.*|pip[0-9.]*"
                       r"|.*\.(ps1|bat|csh|fish|nu))$")


@dataclass(frozen=True)
class Layout:
    """Where the environment lives in the target, and what this host can see of it."""

    python: str  # the environment's python in the target
    bin_dir: str  # the environment's bin/ in the target
    interpreter_dir: str  # the interpreter's prefix in the target
    workdir: str  # where the command starts
    app_dir: str  # where the project's files are
    staged_bin: Path | None = None  # the staged bin/ on this host (None: not staged yet)
    known_scripts: frozenset[str] = frozenset()  # console scripts known before staging
    files: frozenset[str] | None = None  # the project's files (relative to app_dir)
    scratch: bool = True  # nothing but uvship's layers: other absolute paths do not exist
    source_dir: Path | None = None  # the project's directory on this host (its app_dir)


def split_assignments(words: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Leading NAME=value words (as a shell reads them) and the rest of the command."""
    env: dict[str, str] = {}
    rest = list(words)
    while rest and (m := _ASSIGNMENT.match(rest[0])):
        env[m[1]] = m[2]
        rest.pop(0)
    return env, rest


def check_form(words: tuple[str, ...], what: str) -> None:
    """Refuse what no environment could make runnable: no program, or NAME=value first."""
    if not words:
        raise InputError(f"{what}: expected a command, found an empty one")
    if _ASSIGNMENT.match(words[0]):
        raise InputError(
            f"{what} {_show(words)}: starts with an environment assignment ({words[0]}), "
            "expected a program (the image's command runs with no shell)",
            hint=f"set it in the image with --env {words[0]}, and give the command without it")


def resolve(words: tuple[str, ...], layout: Layout, what: str,
            examples: list[str] | None = None) -> list[str]:
    """The exec form of ``words`` in the target, or an InputError naming what is missing.

    Names that only the staged environment can confirm are accepted while it is not staged
    (``layout.staged_bin`` None) if they are known console scripts, else checked later.
    """
    check_form(words, what)
    first, rest = words[0], list(words[1:])
    _check_paths(rest, layout, what, words)
    if _PYTHON.match(first):
        return [layout.python, *rest]
    if first.startswith("/"):
        return [*_absolute(first, layout, what, words), *rest]
    if "/" in first:
        return [*_project_file(first, layout, what, words, examples), *rest]
    return [*_program(first, layout, what, words, examples), *rest]


def _check_paths(args: list[str], layout: Layout, what: str, words: tuple[str, ...]) -> None:
    """An argument naming a path of the project's source that the image does not hold
    (`fastapi run src/app` where the project ships as a wheel) would fail only when the
    image runs: refuse it now."""
    if layout.source_dir is None:
        return
    for arg in args:
        if arg.startswith(("-", "/")) or "=" in arg or ":" in arg or not (
                "/" in arg or arg.endswith(".py")):
            continue
        rel = os.path.relpath(os.path.normpath(os.path.join(layout.workdir, arg)),
                              layout.app_dir)
        if rel.startswith("..") or not (layout.source_dir / rel).exists():
            continue
        files = layout.files or frozenset()
        if rel in files or any(f.startswith(rel + "/") for f in files):
            continue
        how = ("the project ships as the wheel its build backend makes, not as its "
               "source tree") if layout.files is None else \
            "it is left out of the project's files (.dockerignore or the defaults)"
        raise InputError(
            f"{what} {_show(words)}: {arg} is a path of the project's source, which the image "
            f"does not hold ({how}; expected a path of the image)",
            hint="ship the project's directory too with --project-files, or name the module "
                 "the command takes instead of a path")


def _absolute(path: str, layout: Layout, what: str, words: tuple[str, ...]) -> list[str]:
    p = PurePosixPath(os.path.normpath(path))
    if str(p) == layout.python:
        return [layout.python]
    if p.parent == PurePosixPath(layout.bin_dir):
        return _program(p.name, layout, what, words, None)
    if p.is_relative_to(layout.app_dir) and layout.files is not None:
        return _project_file(str(p), layout, what, words, None)
    if p.is_relative_to(layout.interpreter_dir) or not layout.scratch:
        return [str(p)]  # the interpreter's own files, or the base image's
    raise InputError(
        f"{what} {_show(words)}: {path} is not in the image (expected a program of the "
        f"environment, the interpreter under {layout.interpreter_dir} or the project's files "
        f"under {layout.app_dir}; the scratch base holds nothing else)",
        hint="name the program as the environment has it (e.g. `python`, or a console script)"
             ", or build on a base image that has it (--base)")


def _project_file(path: str, layout: Layout, what: str, words: tuple[str, ...],
                  examples: list[str] | None) -> list[str]:
    """A file of the project: ``path`` absolute, or relative to the working directory."""
    final = os.path.normpath(os.path.join(layout.workdir, path))
    rel = os.path.relpath(final, layout.app_dir)
    if layout.files is None or rel not in layout.files:
        shipped = "no project files are shipped" if layout.files is None else \
            f"no file {final} among the project's files shipped to {layout.app_dir}"
        raise InputError(f"{what} {_show(words)}: {shipped} (expected a file of the project)",
                         hint=_hint(examples))
    if rel.endswith(".py"):
        return [layout.python, final]  # no shebang needed, nor /usr/bin/env
    return [final]


def _program(name: str, layout: Layout, what: str, words: tuple[str, ...],
             examples: list[str] | None) -> list[str]:
    final = f"{layout.bin_dir}/{name}"
    if layout.staged_bin is None:
        if name in layout.known_scripts:
            return [layout.python, final]
        return [final]  # checked once the environment is staged
    staged = layout.staged_bin / name
    if name in layout.known_scripts and not staged.is_file():
        return [layout.python, final]  # the project's own, installed in a later tier
    if not staged.is_file():
        staged_names = [p.name for p in layout.staged_bin.iterdir()] \
            if layout.staged_bin.is_dir() else []
        found = sorted({n for n in [*staged_names, *layout.known_scripts]
                        if not _PLUMBING.match(n)})
        raise InputError(
            f"{what} {_show(words)}: no program {name!r} in the environment's bin/ (found: "
            f"{', '.join(found) or 'none'}; expected `python`, one of those, or a file of "
            "the project)", hint=_hint(examples))
    if is_python_script(staged):
        return [layout.python, final]
    return [final]


def is_python_script(path: Path) -> bool:
    """A console script uv wrote: a Python shebang or uv's relocatable sh trampoline."""
    try:
        with path.open("rb") as f:
            head = f.read(256)
    except OSError:
        return False
    first_two = b"\n".join(head.split(b"\n")[:2])
    return head.startswith(b"#!") and b"python" in first_two


def _hint(examples: list[str] | None) -> str:
    shown = examples[:3] if examples else ["python -m yourpackage"]
    return ("write the whole command, e.g. " + " or ".join(f"--command {_show(tuple(e.split()))}"
                                                           for e in shown))


def _show(words: tuple[str, ...]) -> str:
    return repr(" ".join(words))


def examples_from(files_root: Path | None, files: Iterable[str] = (),
                  packages: Iterable[str] = ()) -> list[str]:
    """Commands that would run the project's own code: `python -m pkg` for a package with a
    __main__.py, `python FILE.py` for a script with a main block, `python -m pkg` for an
    installed package's import name."""
    out: list[str] = []
    for rel in sorted(files, key=lambda r: (r.count("/"), r)):
        if rel.count("/") > 2 or not rel.endswith(".py"):
            continue
        if rel.endswith("/__main__.py"):
            out.append("python -m " + rel.removesuffix("/__main__.py").replace("/", "."))
        elif files_root is not None and rel.count("/") <= 1:
            try:
                text = (files_root / rel).read_text(errors="replace")
            except OSError:
                continue
            if "__main__" in text:
                out.append(f"python {rel}")
    out.extend(f"python -m {p}" for p in packages)
    return list(dict.fromkeys(out))
