"""Staging the environment: uv syncs the lock, then uvship lays it out for its final path."""

from __future__ import annotations

import csv
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from . import uv
from .errors import CommandError, InputError
from .plan import Plan
from .progress import NullProgress, Progress
from .python.interpreter import Interpreter, compile_tree
from .workspace import Workspace

# Files uv leaves behind that are bookkeeping for uv on this machine: they hold
# timestamps or build-host paths and would make every build differ.
_VENV_ROOT_JUNK = (".gitignore", ".lock", "CACHEDIR.TAG")
_DIST_INFO_JUNK = ("uv_cache.json", "direct_url.json")


@dataclass(frozen=True)
class Distribution:
    """An installed distribution: name, version, which tier it belongs to, and its files."""

    name: str
    version: str
    tier: str  # "dependencies" | "local" | "project"
    dist_info: str  # path of its .dist-info, relative to the environment root
    files: tuple[str, ...]  # paths relative to the environment root (RECORD)


@dataclass(frozen=True)
class StagedEnv:
    """A synced environment in a staging directory, laid out for ``final_path``."""

    root: Path  # on this host
    final_path: str  # where it will live (/app/.venv, or the interpreter's path in system mode)
    site_packages: str  # relative to root
    distributions: tuple[Distribution, ...]
    scripts: tuple[str, ...]  # console scripts in bin/


def sync_args(plan: Plan) -> list[str]:
    """The `uv sync` selection flags for a plan."""
    args: list[str] = []
    if plan.all_packages:
        args.append("--all-packages")
    for p in plan.packages:
        args += ["--package", p]
    for e in plan.extras:
        args += ["--extra", e]
    if plan.all_extras:
        args.append("--all-extras")
    for g in plan.groups:
        args += ["--group", g]
    if "dev" not in plan.groups:
        args.append("--no-dev")
    return args


def stage(
    ws: Workspace,
    plan: Plan,
    interp: Interpreter,
    work: Path,
    *,
    progress: Progress | None = None,
) -> StagedEnv:
    """Create the environment of ``plan`` under ``work`` and lay it out for its final path."""
    progress = progress or NullProgress()
    if plan.mode == "system":
        root = work / "python"
        shutil.copytree(interp.root, root, symlinks=True)
        python = root / interp.executable
        final = plan.python_path
    else:
        root = work / "venv"
        python = interp.exe
        final = plan.venv_path
        uv.run(["venv", "--relocatable", "--quiet", "--no-config", "--python", str(python),
                str(root)], cwd=ws.project_dir, what="uv venv")
    before = _bin_listing(root)
    with progress.step("syncing the locked packages with uv"):
        _sync(ws, plan, python, root)
    if plan.mode == "venv":
        _check_venv(root, interp)
    site = _site_packages(root, interp)
    _remove_junk(root, site, plan.mode)
    if plan.mode == "venv":
        _point_at_interpreter(root, interp, plan.python_path)
    else:
        _fix_shebangs(root, set(_bin_listing(root)) - set(before), python, plan.python_path,
                      interp)
    dists = _distributions(ws, plan, root, site)
    if plan.compile:
        with progress.step("byte-compiling for the final paths"):
            targets = [root / site] if plan.mode == "venv" else _dist_dirs(root, dists)
            if targets:
                compile_tree(python, targets, strip=root, prefix=final)
    scripts = tuple(sorted(set(_bin_listing(root)) - set(before))) if plan.mode == "system" \
        else tuple(sorted(_console_scripts(root)))
    return StagedEnv(root, final, site, dists, scripts)


def _sync(ws: Workspace, plan: Plan, python: Path, env_root: Path) -> None:
    args = ["sync", "--locked", "--no-editable", "--link-mode", "copy", "--python", str(python),
            "--no-python-downloads", *sync_args(plan), "--project", str(ws.project_dir)]
    env = {"UV_PROJECT_ENVIRONMENT": str(env_root), "UV_PYTHON": str(python),
           # uv byte-compiles for the staging path: uvship compiles for the final one.
           "UV_COMPILE_BYTECODE": ""}
    try:
        uv.run(args, cwd=ws.project_dir, env=env, what="uv sync")
    except CommandError as exc:
        if _STALE in exc.stderr:
            raise _stale_lock(ws) from None
        raise


# uv's words (0.13) for a lock that no longer matches pyproject.toml
_STALE = "needs to be updated"


def _stale_lock(ws: Workspace) -> InputError:
    return InputError(
        f"{ws.lock_path}: the lock file is out of date with pyproject.toml "
        "(expected a lock that matches the project's requirements)",
        hint="run `uv lock` in the workspace and commit uv.lock",
    )


def check_lock(ws: Workspace) -> None:
    """Fail before any work when uv.lock no longer matches the workspace's pyproject files."""
    try:
        uv.run(["lock", "--check", "--project", str(ws.root), "--no-python-downloads"],
               cwd=ws.root, what="uv lock --check")
    except CommandError as exc:
        if _STALE in exc.stderr:
            raise _stale_lock(ws) from None
        raise


def _check_venv(root: Path, interp: Interpreter) -> None:
    cfg = _read_cfg(root / "pyvenv.cfg")
    if cfg.get("relocatable") != "true":
        raise InputError(f"{root}: uv made a venv that is not relocatable (pyvenv.cfg)")
    if not cfg.get("version_info", "").startswith(interp.minor):
        raise InputError(
            f"{root}: uv replaced the venv's interpreter (expected Python {interp.version_str}, "
            f"found {cfg.get('version_info')})"
        )


def _read_cfg(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def _site_packages(root: Path, interp: Interpreter) -> str:
    return f"lib/python{interp.minor}/site-packages"


def _remove_junk(root: Path, site: str, mode: str) -> None:
    if mode == "venv":
        for name in _VENV_ROOT_JUNK:
            (root / name).unlink(missing_ok=True)
    for dist_info in sorted((root / site).glob("*.dist-info")):
        removed = [n for n in _DIST_INFO_JUNK if (dist_info / n).is_file()]
        if not removed:
            continue
        for n in removed:
            (dist_info / n).unlink()
        record = dist_info / "RECORD"
        if record.is_file():
            rows = [r for r in csv.reader(io.StringIO(record.read_text()))
                    if r and r[0].rsplit("/", 1)[-1] not in removed]
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(rows)
            record.write_text(buf.getvalue())


def _point_at_interpreter(root: Path, interp: Interpreter, python_path: str) -> None:
    """Make pyvenv.cfg `home` and the bin/python link name the interpreter's final path."""
    final_exe = f"{python_path.rstrip('/')}/{interp.executable}"
    cfg = root / "pyvenv.cfg"
    lines = []
    for line in cfg.read_text().splitlines():
        if line.split("=", 1)[0].strip() == "home":
            line = f"home = {os.path.dirname(final_exe)}"
        lines.append(line)
    cfg.write_text("\n".join(lines) + "\n")
    link = root / "bin" / "python"
    link.unlink()
    # Absolute: the venv and the interpreter are placed independently (another venv
    # path, the same interpreter layer), and an absolute link survives either move.
    os.symlink(final_exe, link)


def _bin_listing(root: Path) -> list[str]:
    b = root / "bin"
    return sorted(p.name for p in b.iterdir()) if b.is_dir() else []


def _console_scripts(root: Path) -> list[str]:
    out = []
    for p in (root / "bin").iterdir():
        if p.is_file() and not p.is_symlink() and os.access(p, os.X_OK):
            head = p.read_bytes()[:200]
            if head.startswith(b"#!") and b"python" in head:
                out.append(p.name)
    return out


def _fix_shebangs(root: Path, new: set[str], python: Path, python_path: str,
                  interp: Interpreter) -> None:
    """Scripts installed into the interpreter's own bin/ name its final path, not staging."""
    staged = str(python.parent)
    final_bin = f"{python_path.rstrip('/')}/bin"
    for name in sorted(new):
        p = root / "bin" / name
        if p.is_symlink() or not p.is_file():
            continue
        data = p.read_bytes()
        if data.startswith(b"#!" + staged.encode()):
            first, _, rest = data.partition(b"\n")
            interp_name = first[2:].decode().strip().rsplit("/", 1)[-1]
            p.write_bytes(f"#!{final_bin}/{interp_name}\n".encode() + rest)


def _distributions(ws: Workspace, plan: Plan, root: Path, site: str) -> tuple[Distribution, ...]:
    projects = set(plan.selected)
    local = set(plan.local_members)
    out = []
    for dist_info in sorted((root / site).glob("*.dist-info")):
        meta = _metadata(dist_info / "METADATA")
        name = canonicalize_name(meta.get("Name", dist_info.name.split("-")[0]))
        tier = "project" if name in projects else "local" if name in local else "dependencies"
        files = []
        record = dist_info / "RECORD"
        if record.is_file():
            for row in csv.reader(io.StringIO(record.read_text())):
                if row:
                    rel = os.path.normpath(os.path.join(site, row[0]))
                    files.append(rel)
        out.append(Distribution(name, meta.get("Version", "?"), tier,
                                os.path.relpath(dist_info, root), tuple(sorted(set(files)))))
    return tuple(out)


def _metadata(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        k, sep, v = line.partition(":")
        if sep and k not in out:
            out[k] = v.strip()
    return out


def _dist_dirs(root: Path, dists: tuple[Distribution, ...]) -> list[Path]:
    """Top-level directories and modules the installed distributions own (system mode)."""
    tops: set[Path] = set()
    for d in dists:
        for f in d.files:
            parts = Path(f).parts
            site_parts = 4  # lib/python3.X/site-packages/<top>
            if len(parts) > site_parts - 1 and parts[2] == "site-packages":
                tops.add(root.joinpath(*parts[:site_parts]))
    return sorted(p for p in tops if p.exists() and (p.is_dir() or p.suffix == ".py"))
