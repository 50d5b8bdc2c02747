"""The project's own files in the working directory, and the build steps that run over them.

A project without [build-system] runs from its directory (`COPY . /app` in a Dockerfile).
Its files are chosen as `docker build` chooses a context: the directory's .dockerignore,
after defaults that are never shipped (VCS data, environments, caches, build output,
secrets; a `!pattern` in .dockerignore re-includes). Build steps then run on this host in
the staged environment, over a copy of those files laid out at their final paths; what they
write ships with the files, in one layer cached under the hash of everything that made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from .. import _proc
from .._glob import IgnoreFile
from ..cache import cached_dir, key_of, tempdir
from ..errors import CommandError, InputError
from ..project.command import Layout, resolve, split_assignments
from ..project.plan import Plan

_FORMAT = 1
# Never shipped unless .dockerignore re-includes them with `!`.
NEVER_SHIPPED = (
    # version control, environments, caches and build output
    ".git", ".hg", ".svn", "**/.venv", "**/__pycache__", "**/*.py[cod]", "**/.pytest_cache",
    "**/.mypy_cache", "**/.ruff_cache", "**/.tox", "**/.nox", "**/node_modules", ".coverage",
    "htmlcov", "build", "dist", "**/*.egg-info", "**/.DS_Store",
)
# Secrets: never shipped either, and named when left out.
SECRETS = ("**/.env", "**/.env.*", "**/.netrc", "**/.pypirc", "**/.npmrc", "**/id_rsa*",
           "**/id_dsa*", "**/id_ecdsa*", "**/id_ed25519*", "**/credentials.json")
_DEFAULTS = IgnoreFile.of((*NEVER_SHIPPED, *SECRETS))
_SECRETS = IgnoreFile.of(SECRETS)
# Files that say what a project is without being any of its code.
_METADATA = {"pyproject.toml", "uv.lock", ".python-version", ".dockerignore", "README.md",
             "README.rst", "README", "README.txt", "LICENSE", "LICENSE.txt", "LICENSE.md"}


@dataclass(frozen=True)
class Selection:
    """The files of ``root`` that ship: relative path -> content identity."""

    root: Path
    files: dict[str, str]  # "sha256:<hex>:<x or ->", or "->TARGET" for a symlink
    left_out: tuple[str, ...]  # secrets that were present and left out

    @property
    def has_code(self) -> bool:
        """Whether anything but metadata ships (pyproject.toml, uv.lock, README, ...)."""
        return any(rel not in _METADATA for rel in self.files)


def select(root: Path) -> Selection:
    """The files of ``root`` that ship, as .dockerignore and the defaults decide."""
    own = root / ".dockerignore"
    rules = _DEFAULTS + IgnoreFile.read(own) if own.is_file() else _DEFAULTS
    files: dict[str, str] = {}
    left_out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        rel_dir = "" if d == root else str(d.relative_to(root))
        keep_dirs = []
        for n in sorted(dirnames):
            rel = f"{rel_dir}/{n}" if rel_dir else n
            p = d / n
            if p.is_symlink():
                filenames.append(n)  # a link is shipped as a link, never followed
                continue
            if _special_dir(p):
                continue
            if rules.excludes(rel):
                if _SECRETS.excludes(rel):
                    left_out.append(rel)
                if not rules.reincludes:
                    continue
            keep_dirs.append(n)
        dirnames[:] = keep_dirs
        for n in sorted(filenames):
            rel = f"{rel_dir}/{n}" if rel_dir else n
            if rules.excludes(rel):
                if _SECRETS.excludes(rel) and not any(rel.startswith(x + "/") for x in left_out):
                    left_out.append(rel)
                continue
            p = d / n
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                files[rel] = "->" + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                files[rel] = f"sha256:{_file_hash(p)}:{'x' if st.st_mode & 0o111 else '-'}"
    return Selection(root, files, tuple(sorted(left_out)))


def _special_dir(p: Path) -> bool:
    """A directory that is never a project's own: a venv, or uvship's own output (an OCI
    layout, a bundle) written inside the project."""
    return any((p / marker).is_file() for marker in ("pyvenv.cfg", "oci-layout",
                                                    "uvship-bundle.json"))


def _file_hash(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class AppFiles:
    """The staged project files at their final paths (``root`` is the target's /)."""

    root: Path
    key: str
    app_dir: str
    count: int  # files shipped from the project
    outputs: tuple[str, ...]  # files the build steps wrote (target paths)
    left_out: tuple[str, ...]
    sources: tuple[tuple[str, str], ...] = ()  # the project's files and their identities


def stage(plan: Plan, sel: Selection, *, env_copy: Callable[[Path], None], env_key: str,
          python: Path,
          interp, layout: Layout, image_env: dict[str, str],
          progress=None) -> AppFiles:
    """The project files (and what the build steps make of them), cached by every input."""
    steps = plan.build_steps
    key = key_of("files", _FORMAT, plan.app_dir, sorted(sel.files.items()), plan.compile,
                 interp.key, list(steps),
                 # what the steps see: the environment, the image's env, the layout
                 [env_key, sorted(image_env.items()), plan.env_path, plan.workdir]
                 if steps else None)

    def build(out: Path) -> None:
        root = out / "root"
        wd = root / plan.app_dir.strip("/")
        wd.mkdir(parents=True)
        for rel in sorted(sel.files):
            src, dst = sel.root / rel, wd / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
        outputs: list[str] = []
        made_secrets: list[str] = []
        if steps:
            outputs = _run_steps(plan, root, env_copy, layout, image_env, progress)
            made_secrets = _drop_secrets(wd, plan.app_dir)
        if plan.compile:
            from ..python.bytecode import compile_files, python_files

            compile_files(python, python_files([root]), strip=root, prefix="/",
                          emulator=interp.emulator(), minor=interp.minor)
        (out / "files.json").write_text(json.dumps(
            {"count": len(sel.files), "outputs": outputs, "left_out": made_secrets},
            sort_keys=True))

    d = cached_dir("files", key, build)
    meta = json.loads((d / "files.json").read_text())
    return AppFiles(d / "root", key, plan.app_dir, meta["count"], tuple(meta["outputs"]),
                    tuple(sorted({*sel.left_out, *meta.get("left_out", ())})),
                    tuple(sorted(sel.files.items())))


def _drop_secrets(wd: Path, app_dir: str) -> list[str]:
    """Remove the secrets a build step left in the project's files (a `.env` it wrote for
    itself): they never ship, whoever made them. Returns their paths (relative)."""
    gone = []
    for dirpath, _, names in os.walk(wd):
        for n in names:
            p = Path(dirpath, n)
            rel = str(p.relative_to(wd))
            if _SECRETS.excludes(rel):
                p.unlink()
                gone.append(rel)
    return sorted(gone)


# ---------------------------------------------------------------------- build steps
def _run_steps(plan: Plan, root: Path, env_copy: Callable[[Path], None], layout: Layout,
               image_env: dict[str, str], progress) -> list[str]:
    """Run each build step with a copy of the environment at its final path; return the
    files they added to it (target paths). A copy, not links: a tier's files are hard links
    into uvship's cache and uv's, which a step must never be able to write into; a step
    that changes one of the environment's files in place is an error."""
    env_dir = root / plan.env_path.strip("/")
    env_copy(env_dir)
    before = _snapshot(env_dir)
    home = tempdir("step-home")
    try:
        for n, step in enumerate(plan.build_steps, 1):
            what = f"build step {n} {step!r}"
            with progress.step(f"build step {n}: {step}") if progress else nullcontext():
                _run_step(step, what, root, env_dir, layout, image_env, home)
    except BaseException:
        _check_untouched(env_dir, before)  # a failed step may have written into the cache
        raise
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return _keep_outputs(env_dir, before, plan)


def _run_step(step: str, what: str, root: Path, env_dir: Path, layout: Layout,
              image_env: dict[str, str], home: Path) -> None:
    from ..project.plan import command_words

    env_vars, words = split_assignments(command_words(step, what))
    if not words:
        raise InputError(f"{what}: expected a command after the NAME=value words")
    # resolved as in the image, then mapped onto this host's copy of it
    argv = resolve(tuple(words), layout, what)
    host = [_on_host(a, root) for a in argv]
    bin_dir = env_dir / "bin"
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"),
        **({"VIRTUAL_ENV": str(env_dir)} if layout.python.startswith(layout.bin_dir) else {}),
        **{k: v for k, v in os.environ.items() if k.lower() in _PASSED},
        **image_env, **env_vars,
    }
    try:
        cwd = root / layout.workdir.strip("/")
        cwd.mkdir(parents=True, exist_ok=True)
        _proc.run(host, cwd=cwd, env=env, inherit_env=False,
                  merge_output=True, what=what)
    except CommandError as exc:
        tail = "\n".join(exc.stderr.splitlines()[-40:])
        raise InputError(
            f"{what} failed (exit {exc.returncode}); nothing was written\n{tail}".rstrip(),
            hint="it ran on this host in the staged environment, in a copy of the project's "
                 f"files at their final paths ({layout.workdir})") from exc


# Passed from uvship's environment to build steps: how to reach the network, nothing else.
_PASSED = {"http_proxy", "https_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir"}


def _on_host(arg: str, root: Path) -> str:
    """A target path of the command mapped to this host's staged copy of the target."""
    if arg.startswith("/") and os.path.lexists(root / arg.lstrip("/")):
        return str(root / arg.lstrip("/"))
    return arg


def _snapshot(tree: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for dirpath, _, files in os.walk(tree):
        for n in files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, tree)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _check_untouched(env_dir: Path, before: dict[str, tuple[int, int, int]]
                     ) -> dict[str, tuple[int, int, int]]:
    """The environment's files now; an error (and the cached tiers dropped) when a step
    changed one in place or removed one."""
    after = _snapshot(env_dir)
    changed_in_place = sorted(r for r, (ino, size, mtime) in after.items()
                              if r in before and before[r][0] == ino
                              and before[r][1:] != (size, mtime))
    removed = sorted(set(before) - set(after))
    if changed_in_place or removed:
        what = changed_in_place or removed
        raise InputError(
            f"build steps {'changed' if changed_in_place else 'removed'} files of the "
            f"environment ({', '.join(what[:3])}{' ...' if len(what) > 3 else ''}); expected "
            "them to write only new files (e.g. in the project's directory)",
            hint="write outputs elsewhere (Django's STATIC_ROOT in the project's directory)")
    return after


def _keep_outputs(env_dir: Path, before: dict[str, tuple[int, int, int]],
                  plan: Plan) -> list[str]:
    """Remove the linked environment, keeping what the steps added or replaced."""
    after = _check_untouched(env_dir, before)
    kept = []
    for rel in sorted(after):
        if rel in before and before[rel][0] == after[rel][0]:
            os.unlink(env_dir / rel)
        else:
            kept.append(f"{plan.env_path}/{rel}")
    for dirpath, _, _ in sorted(os.walk(env_dir), key=lambda t: -len(t[0])):
        if not os.listdir(dirpath):
            os.rmdir(dirpath)
    return kept


def layout_of(plan: Plan, interp, *, staged_bin: Path | None, known_scripts=frozenset(),
              files: frozenset[str] | None, scratch: bool) -> Layout:
    """Where the environment lives in ``plan``'s target."""
    if plan.mode == "system":
        python = f"{plan.python_path}/{interp.executable if interp else 'bin/python3'}"
        bin_dir = f"{plan.python_path}/bin"
    else:
        python, bin_dir = f"{plan.venv_path}/bin/python", f"{plan.venv_path}/bin"
    return Layout(python=python, bin_dir=bin_dir, interpreter_dir=plan.python_path,
                  workdir=plan.workdir, app_dir=plan.app_dir, staged_bin=staged_bin,
                  known_scripts=frozenset(known_scripts), files=files, scratch=scratch,
                  source_dir=plan.files_dir or _source_dir(plan))


def _source_dir(plan: Plan) -> Path | None:
    """The directory a packaged project's source lives in (one selected package)."""
    return plan.project_dir if len(plan.selected) == 1 else None


def check_steps_possible(plan: Plan, interp) -> None:
    """Build steps run the environment's interpreter on this host."""
    if plan.build_steps and (not interp.native or interp.sysroot):
        raise InputError(
            f"build steps: they run on this host, which cannot run the interpreter for "
            f"{plan.target} ({interp.origin}) (expected a target this host runs natively)",
            hint="run them in a build for this host's platform, or ship their outputs with "
                 "the project's files")
