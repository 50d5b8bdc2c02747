"""Checks that fail a build before anything is staged: a lock out of date with the
pyproject files, and a locked package with no wheel for the target."""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import cache, uv
from ..cache import key_of
from ..errors import CommandError, InputError
from ..project.plan import Plan
from ..project.workspace import Workspace
from ..python.interpreter import Interpreter
from .keys import third_party
from .platforms import ARCH_TAGS, glibc_fits, native_stager

# uv's words (0.13) for a lock that no longer matches pyproject.toml
STALE = "needs to be updated"


def stale_lock_error(ws: Workspace) -> InputError:
    """The error for a lock uv finds out of date (STALE in its message)."""
    return InputError(
        f"{ws.lock_path}: the lock file is out of date with pyproject.toml "
        "(expected a lock that matches the project's requirements)",
        hint="run `uv lock` in the workspace and commit uv.lock",
    )


def check_lock(ws: Workspace, interp: Interpreter) -> None:
    """Fail before staging when uv.lock no longer matches the workspace's pyproject files.

    uv checks with the build's interpreter (the native Python that stages for one this
    host cannot run): given none, it would look for a Python of its own and report a
    missing one. A passed check is remembered under the hash of the lock and every
    member's pyproject.toml, so an unchanged workspace is not checked twice.
    """
    h = hashlib.sha256(ws.lock_path.read_bytes())
    for p in sorted([ws.root / "pyproject.toml", *(m.path / "pyproject.toml"
                                                   for m in ws.members.values())]):
        if p.is_file():
            h.update(str(p.relative_to(ws.root)).encode() + b"\0" + p.read_bytes())
    if cache.read_record("lock-checks", h.hexdigest()) is not None:
        return
    try:
        python = native_stager(interp) or interp.exe
        uv.run(["lock", "--check", "--project", str(ws.root), "--no-python-downloads",
                "--python", str(python)], cwd=ws.root, env=interp.run_env(),
               what="uv lock --check")
    except CommandError as exc:
        if STALE in exc.stderr:
            raise stale_lock_error(ws) from None
        raise
    cache.write_record("lock-checks", h.hexdigest(), True)


def check_wheels_for(ws: Workspace, plan: Plan, libc: str = "glibc", *,
                     host: bool = False) -> None:
    """Refuse, before any work, a locked package that has no wheel for another platform or
    C library: building it there would need that target's compilers (and emulation).

    A package locked with no wheel at all is built by uv from its source: for this host's
    platform and C library (``host``) always, a base's glibc notwithstanding; for another
    one only when it builds a pure-Python wheel, which is found by building it here.
    """
    arches = ARCH_TAGS.get(plan.platform, ())
    musl = libc == "musl"
    missing = []
    too_new = False  # wheels for the machine, but for a newer glibc than the base's
    for name in third_party(ws, plan):
        entry = next(iter(ws.lock_entries(name)), {})  # a forked lock's first version
        wheels = [w.get("url", w.get("path", w.get("filename", ""))) for w in
                  entry.get("wheels", [])]
        tags = [str(w).rsplit("/", 1)[-1].removesuffix(".whl").split("-")[-1] for w in wheels]
        fitting = [t for plat in tags for t in plat.split(".")
                   if t == "any" or (t.startswith(("manylinux", "musllinux", "linux_"))
                                     and ("musllinux" in t) == musl and t.endswith(arches))]
        if any(t == "any" or musl or glibc_fits(t, plan.glibc) for t in fitting):
            continue
        version = entry.get("version", "?")
        if not wheels:
            if host:
                continue
            built = sdist_wheel_tags(ws, name, entry)
            if built and all(t.endswith("-any") for t in built):
                continue
            what = f"its source builds {', '.join(built)} here" if built else \
                "its source could not be built here to tell whether it is pure Python"
            missing.append(f"{name} {version} (only an sdist is locked; {what})")
            continue
        too_new = too_new or bool(fitting)
        missing.append(f"{name} {version}")
    if missing:
        target = f"{plan.platform} ({libc})" if musl else plan.platform
        kind = "musllinux" if musl else "manylinux"
        if too_new:
            target, kind = f"{target} with glibc {plan.glibc} (the base's)", \
                f"manylinux (glibc {plan.glibc} or older)"
        raise InputError(
            f"{ws.lock_path}: no wheel for {target} of {', '.join(missing)} (expected "
            f"a {kind} wheel for {arches[0]} or a pure-Python one)",
            hint="pin a version that publishes such wheels, or build this package for the "
                 "target elsewhere and serve the wheel from an index uv can reach")


def sdist_wheel_tags(ws: Workspace, name: str, entry: dict[str, Any]) -> list[str]:
    """The tags of the wheel the locked source of ``name`` builds on this host, e.g.
    ["py3-none-any"]; [] when it cannot be built here. Built once by uv, with the Python
    uvship runs on, and remembered by the source's identity."""
    req = _source_requirement(ws, name, entry)
    if req is None:
        return []
    key = key_of("sdist-tags", uv.uv_version(), req)
    known = cache.read_record("sdist-tags", key)
    if known is not None:
        return known
    with tempfile.TemporaryDirectory(prefix="uvship-sdist-") as tmp:
        reqs = Path(tmp, "requirements.txt")
        reqs.write_text(req + "\n")
        target = Path(tmp, "target")
        try:
            # the project's directory: its uv settings (indexes, find-links) serve the build
            uv.run(["pip", "install", "--no-deps", "--no-python-downloads", "--target",
                    str(target), "--python", sys.executable, "-r", str(reqs)],
                   cwd=ws.project_dir, what=f"uv pip install (building {name} to see its tags)")
        except CommandError:
            return []
        wheel = next(target.glob("*.dist-info/WHEEL"), None)
        tags = sorted(line.split(":", 1)[1].strip() for line in
                      (wheel.read_text().splitlines() if wheel else ())
                      if line.startswith("Tag:"))
    cache.write_record("sdist-tags", key, tags)
    return tags


def _source_requirement(ws: Workspace, name: str, entry: dict[str, Any]) -> str | None:
    """A requirement line for exactly the locked source of ``name`` (its hash checked)."""
    sdist = entry.get("sdist") or {}
    source = entry.get("source") or {}
    if "url" in sdist:
        url = sdist["url"]
    elif "path" in sdist:
        url = (ws.root / sdist["path"]).resolve().as_uri()
    elif "url" in source:
        url = source["url"]
    elif "git" in source:  # https://host/repo?rev=...#<commit>
        repo, _, commit = source["git"].partition("#")
        url = f"git+{repo.split('?', 1)[0]}@{commit}" if commit else None
    else:
        url = None
    if url is None:
        return None
    hashed = sdist.get("hash")
    return f"{name} @ {url}" + (f" --hash={hashed}" if hashed and "git" not in source else "")
