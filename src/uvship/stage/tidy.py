"""What uvship takes out of, or corrects in, what uv installed in a tier before it is kept:
uv's bookkeeping files, the files of local packages the exclude patterns (and the secrets
rule) refuse with their RECORD rows, and the shebangs of scripts in an interpreter's own
prefix.

Every file it changes is written as a new inode: the old one may be a hard link into a
cached tier underneath."""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

from .._glob import IgnoreFile
from .files import SECRETS

# Files uv leaves that are bookkeeping for uv on this machine (times, build-host paths).
_VENV_ROOT_JUNK = (".gitignore", ".lock", "CACHEDIR.TAG")
_DIST_INFO_JUNK = ("uv_cache.json", "direct_url.json")
# Never shipped from a local package's files (a build backend takes whatever its directory
# holds): VCS data and secrets; `!pattern` in the exclude option re-includes.
NEVER_IN_PACKAGES = ("**/.git", "**/.hg", "**/.svn", "**/.venv", *SECRETS)


def remove_junk(root: Path, site: str, mode: str, before: set[str]) -> None:
    """Remove uv's bookkeeping: the venv root's files (``mode`` venv) and, in the
    dist-info directories new since ``before``, the files that name the build machine."""
    if mode == "venv":
        for name in _VENV_ROOT_JUNK:
            (root / name).unlink(missing_ok=True)
    for dist_info in sorted((root / site).glob("*.dist-info")):
        # new in this tier (uv writes them when it installs): they name the build
        # machine's source paths, which must never reach a layer
        removed = [n for n in _DIST_INFO_JUNK if (dist_info / n).is_file()
                   and f"{site}/{dist_info.name}/{n}" not in before]
        if not removed:
            continue
        for n in removed:
            (dist_info / n).unlink()
        _rewrite_record(dist_info, lambda rel, gone=tuple(removed): rel.rsplit("/", 1)[-1]
                        not in gone)


def _rewrite_record(dist_info: Path, keep: Callable[[str], bool]) -> None:
    """RECORD without the rows whose path ``keep`` refuses (written as a new inode: the old
    one may be a hard link into a cached tier)."""
    record = dist_info / "RECORD"
    if not record.is_file():
        return
    rows = [r for r in csv.reader(io.StringIO(record.read_text())) if r and keep(r[0])]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    replace_text(record, buf.getvalue())


def replace_text(path: Path, text: str) -> None:
    """``path`` with ``text``, written as a new inode: the old one may be a hard link into a
    cached tier or uv's cache."""
    tmp = path.with_name(path.name + ".uvship-tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def fix_shebangs(env: Path, site: str, scripts: list[str], python: Path,
                 python_path: str) -> None:
    """Scripts installed into the interpreter's own bin/ name its final path, not staging."""
    staged = str(python.parent).encode()
    final_bin = f"{python_path.rstrip('/')}/bin"
    changed = []
    for name in scripts:
        p = env / "bin" / name
        data = p.read_bytes()
        if data.startswith(b"#!" + staged):
            first, _, rest = data.partition(b"\n")
            exe_name = first[2:].decode().strip().rsplit("/", 1)[-1]
            tmp = p.with_name(p.name + ".uvship-tmp")
            tmp.write_bytes(f"#!{final_bin}/{exe_name}\n".encode() + rest)
            os.chmod(tmp, 0o755)
            os.replace(tmp, p)
            changed.append(name)
    record_scripts(env, site, changed)


def record_scripts(env: Path, site: str, scripts: list[str]) -> None:
    """The RECORD rows of rewritten ``scripts`` (names in bin/) given their new hash and
    size: uv recorded the bytes it wrote, which named the staging directory, so RECORD
    would differ between two checkouts (and fail a check of the installed files)."""
    record_rewritten(env, site, [f"bin/{n}" for n in scripts])


def record_rewritten(env: Path, site: str, paths: list[str]) -> None:
    """The RECORD rows of files uvship rewrote after uv installed them (``paths``,
    relative to ``env``) given their new hash and size."""
    if not paths:
        return
    wanted = set(paths)
    for dist_info in sorted((env / site).glob("*.dist-info")):
        record = dist_info / "RECORD"
        if not record.is_file():
            continue
        rows = [r for r in csv.reader(io.StringIO(record.read_text())) if r]
        hit = False
        for r in rows:
            rel = os.path.normpath(os.path.join(site, r[0]))
            if rel in wanted and len(r) >= 3:
                data = (env / rel).read_bytes()
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                r[1:3] = [f"sha256={digest.decode()}", str(len(data))]
                hit = True
        if hit:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(rows)
            replace_text(record, buf.getvalue())


# The first lines of a script that runs the python beside it, wherever its directory is:
# /bin/sh execs that python on the script, to which the second line is a string and the
# third closes it (the form of uv's --relocatable scripts). realpath: through a symlink to
# the script (from a PATH directory elsewhere) it still finds the bundle's python.
TRAMPOLINE = ("#!/bin/sh\n"
              "'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")\"/'{python}' \"$0\" \"$@\"\n"
              "' '''\n")


def relocatable_shebangs(env: Path, site: str, scripts: list[str], python: Path) -> list[str]:
    """Scripts in the interpreter's own bin/ whose shebang names ``python``'s directory
    (the staging copy) made to run the python beside them; returns those changed."""
    staged = str(python.parent).encode()
    changed = []
    for name in scripts:
        p = env / "bin" / name
        if p.is_symlink() or not p.is_file():
            continue
        data = p.read_bytes()
        first, _, rest = data.partition(b"\n")
        if first.startswith(b"#!" + staged + b"/"):
            exe_name = first[2:].decode().strip().rsplit("/", 1)[-1]
        elif first == b"#!/bin/sh" and rest.startswith(b"'''exec' '" + staged + b"/"):
            # uv's form for a python path too long (or spaced) for a shebang line
            second, _, rest = rest.partition(b"\n")
            third, _, rest = rest.partition(b"\n")
            if third != b"' '''":
                continue
            exe_name = second[len(b"'''exec' '" + staged + b"/"):].split(b"'")[0].decode()
        else:
            continue
        tmp = p.with_name(p.name + ".uvship-tmp")
        tmp.write_bytes(TRAMPOLINE.format(python=exe_name).encode() + rest)
        os.chmod(tmp, 0o755)
        os.replace(tmp, p)
        changed.append(name)
    record_scripts(env, site, changed)
    return changed


def excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``rel`` (a path in site-packages) is excluded by .dockerignore-style
    ``patterns``; a later `!pattern` re-includes."""
    return _ignore(patterns).excludes(rel)


@functools.lru_cache(maxsize=8)
def _ignore(patterns: tuple[str, ...]) -> IgnoreFile:
    return IgnoreFile.of(patterns)


def exclude_data_files(env: Path, site: str, before: set[str],
                       patterns: tuple[str, ...]) -> list[str]:
    """Remove the files of the newly installed local packages that ``patterns`` exclude
    (never their metadata), and their RECORD lines; the secrets among them (paths in
    site-packages)."""
    site_root = env / site
    left_out: list[str] = []

    def keep(row_path: str, meta: str) -> bool:
        rel = os.path.normpath(row_path)
        # the metadata and the scripts outside site-packages always stay
        if rel.startswith(("..", meta + "/")) or not excluded(rel, patterns):
            return True
        if excluded(rel, SECRETS):
            left_out.append(rel)
        target = site_root / rel
        target.unlink(missing_ok=True)
        for parent in target.parents:  # directories the exclusion emptied go too
            if parent == site_root or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
        return False

    for dist_info in sorted(site_root.glob("*.dist-info")):
        if f"{site}/{dist_info.name}" not in before:
            _rewrite_record(dist_info, lambda rel, meta=dist_info.name: keep(rel, meta))
    return sorted(left_out)


def remove_orphans(root: Path, site: str, before: set[str]) -> None:
    """After uv synced over a copy of an older tier: the bytecode whose module uv removed
    (uv removes what RECORD lists; uvship compiled the bytecode after), and the directories
    that held only such files. A directory that was empty already (a wheel's own) stays,
    as it would in a fresh install."""
    site_dir = root / site
    for dirpath, _dirs, filenames in os.walk(site_dir, topdown=False):
        d = Path(dirpath)
        if d.name == "__pycache__":
            for name in filenames:
                stem = name.split(".", 1)[0]
                if name.endswith(".pyc") and not (d.parent / f"{stem}.py").exists():
                    (d / name).unlink()
        if d != site_dir and not any(d.iterdir()):
            rel = str(d.relative_to(root))
            if any(p.startswith(rel + "/") for p in before):
                d.rmdir()


def forget_bytecode(modules: list[Path], minor: str) -> None:
    """Remove the bytecode of ``modules``: uv replaced them (a new version), and the
    compiler keeps a hash-based pyc it finds."""
    tag = f"cpython-{minor.replace('.', '')}"
    for py in modules:
        (py.parent / "__pycache__" / f"{py.stem}.{tag}.pyc").unlink(missing_ok=True)
