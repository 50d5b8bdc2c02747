"""uv at work on a tier: the first tier's fresh environment (a relocatable venv, or a copy of
the interpreter's prefix), each later tier's hard-linked copy of the one below, and the
`uv sync` that installs the tier into it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import uv
from ..errors import InputError
from ..project.plan import Plan, selection_args
from ..project.workspace import Workspace
from ..python.interpreter import Interpreter
from .platforms import native_stager


def new_env(ws: Workspace, plan: Plan, interp: Interpreter, env: Path) -> None:
    """The environment the first tier is installed into, at ``env``."""
    if plan.mode == "system":
        if not interp.native:
            what = "relocatable" if plan.relocatable else "--mode system"
            raise InputError(
                f"{what}: the interpreter ({interp.origin}) is for {interp.machine} "
                f"({interp.libc}) and this host cannot run it, so it cannot install into "
                "its own prefix", hint=(
                    "build the relocatable bundle on a host of that platform, or "
                    if plan.relocatable else "use --mode venv (the default), or ")
                + "give --python PATH of an interpreter inside a sysroot that qemu-user can "
                "run it from")
        shutil.copytree(interp.root, env, symlinks=True)
        return
    # a venv made with the native stager Python points at it; the layout points it at the
    # target's interpreter (pyvenv.cfg home and version, bin/python)
    python = native_stager(interp) or interp.exe
    uv.run(["venv", "--relocatable", "--quiet", "--no-config", "--python", str(python),
            str(env)], cwd=ws.project_dir, what="uv venv", env=interp.run_env())


def shadow_tree(src: Path, dst: Path, site: str) -> None:
    """What uv reads of the venv at ``src`` to know what is installed, hard-linked at
    ``dst``: the venv's own files, bin/ and every dist-info directory, without the packages'
    files. A later tier is synced over this, not over a copy of the whole environment, so
    its cost follows the tier (a data-science venv holds tens of thousands of files)."""
    dst.mkdir(parents=True)
    for entry in os.scandir(src):
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), dst / entry.name)
        elif entry.is_file():
            os.link(entry.path, dst / entry.name)
    if (src / "bin").is_dir():
        link_tree(src / "bin", dst / "bin")
    (dst / site).mkdir(parents=True)
    for entry in os.scandir(src / site):
        if entry.name.endswith(".dist-info") and entry.is_dir(follow_symlinks=False):
            link_tree(Path(entry.path), dst / site / entry.name)


def link_tree(src: Path, dst: Path) -> None:
    """A copy of ``src`` made of hard links: uv and the compiler only ever add new files
    (or replace through a rename), so the cached tier underneath is never written."""
    shutil.copytree(src, dst, symlinks=True, copy_function=os.link)


# Hard links from uv's cache (uv falls back to copying across filesystems): a tier is
# never written in place (tidying and byte-compiling replace files through a rename, as
# link_tree requires already), so sharing inodes with uv's cache is safe, and installing a
# large environment costs links instead of copies (numpy, pandas, pyarrow: hundreds of MB).
LINK_MODE = "hardlink"


def sync_tier(ws: Workspace, plan: Plan, python: Path, env_root: Path, tier: str,
              run_env: dict[str, str], python_platform: str | None = None) -> None:
    """`uv sync` of one tier into ``env_root`` with ``python``: the third-party packages,
    the local ones the selection needs, or the selected projects."""
    # --frozen: the lock was checked against the workspace before staging (checks.
    # check_lock, remembered by content), so uv need not resolve it again on every rebuild
    args = ["sync", "--frozen", "--no-editable", "--link-mode", LINK_MODE, "--python", str(python),
            "--no-python-downloads", *selection_args(plan), "--project", str(ws.project_dir)]
    if python_platform:
        args += ["--python-platform", python_platform]
    if tier == "dependencies":
        args.append("--no-install-local")
    elif tier == "local":
        for p in plan.selected:
            args += ["--no-install-package", p]
    elif tier == "project" and plan.local_members:
        # the local members are the tier below, installed from the same lock: left as they
        # are (their dist-info lost uv's records of their source, so uv would reinstall)
        args.append("--inexact")
        for p in plan.local_members:
            args += ["--no-install-package", p]
    # uv keys its wheels of local sources by pyproject.toml and directory times, not by
    # content: an edited module would be installed from the stale wheel. This tier only
    # runs when the sources changed, so rebuild them.
    local = plan.local_members if tier == "local" else plan.selected if tier == "project" else ()
    for p in local:
        args += ["--reinstall-package", p]
    env = {"UV_PROJECT_ENVIRONMENT": str(env_root), "UV_PYTHON": str(python),
           # uv would compile for the staging path: uvship compiles for the final one.
           "UV_COMPILE_BYTECODE": "", **run_env}
    uv.run(args, cwd=ws.project_dir, env=env, what="uv sync")


def check_venv(root: Path, interp: Interpreter) -> None:
    """Refuse a venv uv made that is not relocatable, or not of ``interp``'s version."""
    cfg = {}
    for line in (root / "pyvenv.cfg").read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            cfg[k.strip()] = v.strip()
    if cfg.get("relocatable") != "true":
        raise InputError(f"{root}: uv made a venv that is not relocatable (pyvenv.cfg)")
    if not cfg.get("version_info", "").startswith(interp.minor):
        raise InputError(
            f"{root}: uv replaced the venv's interpreter (expected Python {interp.version_str}, "
            f"found {cfg.get('version_info')})")
