"""Environment bundles: the staged environment and its interpreter, at their final paths."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, layers
from .errors import InputError
from .plan import Plan
from .python.interpreter import Interpreter
from .venv import StagedEnv

MANIFEST_NAME = "uvship-bundle.json"


@dataclass(frozen=True)
class UvVenv:
    """A built environment: the venv tree, the interpreter tree and where each must live.

    In system mode ``venv_dir`` is None and the packages are inside ``interpreter_dir``.
    """

    plan: Plan
    interpreter: Interpreter
    env: StagedEnv
    work: Path  # staging directory owned by this object; ``cleanup()`` removes it

    @property
    def venv_dir(self) -> Path | None:
        return None if self.plan.mode == "system" else self.env.root

    @property
    def interpreter_dir(self) -> Path:
        return self.env.root if self.plan.mode == "system" else self.interpreter.root

    @property
    def interpreter_path(self) -> str:
        """The path the interpreter's executable must have in the target."""
        return f"{self.plan.python_path}/{self.interpreter.executable}"

    @property
    def python(self) -> str:
        """The path of the environment's python in the target (what entrypoints run)."""
        if self.plan.mode == "system":
            return self.interpreter_path
        return f"{self.plan.venv_path}/bin/python"

    def cleanup(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> UvVenv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ contents
    def interpreter_entries(self) -> list[layers.Entry]:
        if self.plan.mode == "system":
            return []
        return layers.scan(self.interpreter.root, self.plan.python_path)

    def env_entries(self) -> list[layers.Entry]:
        return layers.scan(self.env.root, self.plan.env_path)

    def manifest(self) -> dict[str, Any]:
        """A small description of the bundle: interpreter, platform, paths, packages."""
        i = self.interpreter
        return {
            "uvship": __version__,
            "mode": self.plan.mode,
            "platform": self.plan.platform,
            "interpreter": {
                "implementation": "cpython",
                "version": i.version_str,
                "source": i.source,
                "path": self.plan.python_path,
                "executable": self.interpreter_path,
                "libc": i.libc,
                "min_glibc": i.min_glibc,
                "machine": i.machine,
            },
            "venv_path": None if self.plan.mode == "system" else self.plan.venv_path,
            "python": self.python,
            "packages": [
                {"name": d.name, "version": d.version, "tier": d.tier}
                for d in sorted(self.env.distributions, key=lambda d: d.name)
            ],
            "scripts": list(self.env.scripts),
        }

    def entries(self) -> list[layers.Entry]:
        manifest = json.dumps(self.manifest(), indent=2, sort_keys=True).encode() + b"\n"
        return layers.normalize([
            *self.interpreter_entries(),
            *self.env_entries(),
            layers.Entry(MANIFEST_NAME, "file", layers.FILE_MODE, data=manifest),
        ])


def output_kind(output: Path) -> str:
    return "tar.gz" if output.name.endswith((".tar.gz", ".tgz")) else "dir"


def check_output(output: Path) -> None:
    """Fail before any work if ``output`` cannot be written or must not be replaced."""
    parent = output.absolute().parent
    if not parent.is_dir():
        raise InputError(f"--output {output}: the directory {parent} does not exist",
                         hint="create it first, or choose another output path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".uvship-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"--output {output}: cannot write in {parent} ({exc.strerror})") from None
    if output.is_dir() and not output.is_symlink():
        if any(output.iterdir()) and not (output / MANIFEST_NAME).is_file():
            raise InputError(
                f"--output {output}: the directory exists and is not a uvship bundle "
                "(expected a new path or an earlier bundle to replace)",
                hint="choose a new directory; uvship only replaces its own bundles",
            )
    elif output.exists() and output_kind(output) == "dir":
        raise InputError(f"--output {output}: exists and is not a directory")


@dataclass(frozen=True)
class BundleResult:
    output: Path
    kind: str
    sha256: str | None  # of the tarball
    size: int
    files: int


def write_bundle(venv: UvVenv, output: Path) -> BundleResult:
    """Write the bundle to ``output`` (a directory or a .tar.gz) atomically."""
    check_output(output)
    entries = venv.entries()
    output = output.absolute()
    files = sum(1 for _ in layers.iter_files(entries))
    if output_kind(output) == "tar.gz":
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                info = layers.write_tar(entries, f, compression="gzip")
            os.chmod(tmp, 0o644)
            os.replace(tmp, output)
        except BaseException:
            os.unlink(tmp)
            raise
        return BundleResult(output, "tar.gz", info.digest.split(":", 1)[1], info.size, files)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    old = None
    try:
        layers.materialize(entries, tmpdir)
        os.chmod(tmpdir, 0o755)
        if output.exists():
            old = output.with_name(f".{output.name}.old-{os.getpid()}")
            os.rename(output, old)
        os.rename(tmpdir, output)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        if old is not None and not output.exists():
            os.rename(old, output)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    size = sum(e.size() for e in layers.iter_files(entries))
    return BundleResult(output, "dir", None, size, files)
