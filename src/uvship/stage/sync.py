"""uv at work on a tier: the first tier's fresh environment (a relocatable venv, or a copy of
the interpreter's prefix), each later tier's hard-linked copy of the one below, and the
`uv sync` that installs the tier into it."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
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


@contextlib.contextmanager
def stable_place(env: Path, ident: str) -> Iterator[Path]:
    """A path for uv to sync ``env`` at that is the same from one build to the next for
    the same interpreter (``ident``): uv keeps what it learnt of an environment's
    interpreter by the interpreter's path, so at a new temporary path every sync would
    start a Python to ask again (~25 ms). The path is a symbolic link to ``env``, which
    stays where it is (a cancelled build's temporaries are removed as before); one build
    holds it at a time (a lock file), a concurrent build takes the next one."""
    import fcntl

    from ..cache import cache_root

    base = cache_root() / "stage"
    base.mkdir(parents=True, exist_ok=True)
    for n in range(64):
        place = base / f"{ident[:16]}-{n}"
        lock = open(f"{place}.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        try:
            if place.is_dir() and not place.is_symlink():  # what a killed build left
                shutil.rmtree(place)
            elif place.is_symlink() or place.exists():
                place.unlink()
            os.symlink(env, place)
            try:
                yield place
            finally:
                place.unlink()
        finally:
            lock.close()
        return
    yield env  # 64 builds at once: a temporary path does


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
              run_env: dict[str, str], python_platform: str | None = None, *,
              source_key: str = "", reinstall: bool = False) -> None:
    """`uv sync` of one tier into ``env_root`` with ``python``: the third-party packages,
    the local ones the selection needs, or the selected projects.

    ``source_key`` names the local sources' contents (the tier's key). uv keeps the wheels
    it built of local sources by pyproject.toml's and src/'s times, not by content, so an
    edited module would be installed from a stale wheel: the key is handed to their
    builds as a config setting, which uv keeps built wheels apart by (their backends
    ignore it), so a changed source is built again and an unchanged one taken from uv's
    cache. ``--reinstall-package`` would do the same, but it makes uv query the
    environment's interpreter again (~25 ms a tier); it remains for a backend not known to
    ignore settings it does not know, and as ``reinstall``'s fallback (tidy_build_records).
    """
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
        if reinstall or not source_key or build_backend(ws, p) not in SETTING_SAFE_BACKENDS:
            args += ["--reinstall-package", p]
        else:
            args += ["--config-settings-package", f"{p}:{SOURCE_SETTING}={source_key}"]
    env = {"UV_PROJECT_ENVIRONMENT": str(env_root), "UV_PYTHON": str(python),
           # uv would compile for the staging path: uvship compiles for the final one.
           "UV_COMPILE_BYTECODE": "", **run_env}
    uv.run(args, cwd=ws.project_dir, env=env, what="uv sync")


# The config setting that names a local package's sources (sync_tier), and the backends
# that ignore a setting they do not know (each checked building a package with it). Not
# here: scikit-build-core and meson-python, which refuse unknown settings.
SOURCE_SETTING = "uvship-source"
SETTING_SAFE_BACKENDS = frozenset({
    "uv_build", "hatchling.build", "setuptools.build_meta", "setuptools.build_meta:__legacy__",
    "flit_core.buildapi", "pdm.backend", "poetry.core.masonry.api", None})


def build_backend(ws: Workspace, name: str) -> str | bool | None:
    """The build backend of the local package ``name`` (None: it has no [build-system],
    False: its pyproject.toml was not found)."""
    from ..project.workspace import read_toml
    from .keys import source_root

    if name not in ws.packages:
        return False
    pyproject = source_root(ws, name) / "pyproject.toml"
    if not pyproject.is_file():
        return False
    system = read_toml(pyproject).get("build-system")
    if not isinstance(system, dict):
        return None  # uv's default: setuptools' legacy backend, or no build at all
    return system.get("build-backend", "setuptools.build_meta:__legacy__")


def tidy_build_records(env: Path, site: str, source_key: str) -> bool:
    """uv keeps a locally built package's config settings in its dist-info (uv_build.json):
    ``source_key``'s setting, uvship's bookkeeping, is taken out again, so the file and its
    RECORD row are what a build without it writes. False when a file holds other settings
    too (the user's own): the tier is then synced again with --reinstall-package."""
    import json

    from .tidy import record_rewritten, replace_text

    ours = {"config_settings": {SOURCE_SETTING: source_key}}
    for dist_info in sorted((env / site).glob("*.dist-info")):
        f = dist_info / "uv_build.json"
        try:
            data = json.loads(f.read_bytes())
        except (OSError, ValueError):
            continue
        if data == ours:
            replace_text(f, "{}")  # what uv writes for a build without settings
            record_rewritten(env, site, [f"{site}/{dist_info.name}/uv_build.json"])
        elif SOURCE_SETTING in (data.get("config_settings") or {}):
            return False
    return True


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
