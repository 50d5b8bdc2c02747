"""Environment bundles: the staged environment and its interpreter, at their final paths."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import layers
from .._fs import check_writable_parent, is_stream, output_file, output_place, temp_prefix
from ..errors import InputError, Option
from ..project.plan import Plan
from ..python.interpreter import BUILD_ONLY, Interpreter
from ..stage.tidy import TRAMPOLINE
from ..stage.venv import StagedEnv

MANIFEST_NAME = "uvship-bundle.json"


@dataclass(frozen=True)
class UvVenv:
    """A built environment: the venv tree, the interpreter tree and where each must live.

    ``root`` holds both at their final paths (``root/app/.venv``, ``root/opt/python``);
    in system mode there is no venv and the packages are inside the interpreter's tree.
    """

    plan: Plan
    interpreter: Interpreter
    env: StagedEnv
    work: Path  # owned by this object; ``cleanup()`` removes it

    @property
    def root(self) -> Path:
        return self.work / "root"

    @property
    def venv_dir(self) -> Path | None:
        return None if self.plan.mode == "system" else self.root / self.plan.venv_path.strip("/")

    @property
    def interpreter_dir(self) -> Path:
        return self.root / self.plan.python_path.strip("/")

    @property
    def interpreter_path(self) -> str:
        """The path the interpreter's executable must have in the target (relative to
        where the bundle is unpacked, for a relocatable one)."""
        return _under(self.plan.python_path, self.interpreter.executable)

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

    def manifest(self) -> dict[str, Any]:
        return manifest(self.env)


def _under(root: str, rel: str) -> str:
    """``rel`` in the directory ``root`` of the target; "/" is a relocatable bundle's own
    root, wherever it is unpacked, so paths there stay relative (bin/python3.12)."""
    return rel if root == "/" else f"{root.rstrip('/')}/{rel}"


def manifest(env: StagedEnv) -> dict[str, Any]:
    """A small description of an environment: interpreter, platform, paths, packages.

    A relocatable bundle's paths are relative to where it is unpacked."""
    from .._version import version

    plan, i = env.plan, env.interpreter
    exe = _under(plan.python_path, i.executable)
    command = list(env.command) if env.command else None
    if plan.relocatable and command:
        # the words that name the bundle's own programs (/bin/python3.12, /bin/NAME)
        command = [w[1:] if w.startswith("/bin/") else w for w in command]
    return {
        "uvship": version(),
        "mode": plan.mode,
        "relocatable": plan.relocatable,
        "platform": plan.platform,
        "interpreter": {
            "implementation": "cpython",
            "version": i.version_str,
            "source": i.source,
            "path": "." if plan.relocatable else plan.python_path,
            "executable": exe,
            "libc": i.libc,
            "min_glibc": i.min_glibc,
            "machine": i.machine,
        },
        "venv_path": None if plan.mode == "system" else plan.venv_path,
        "workdir": "." if plan.relocatable else plan.workdir,
        "command": command,
        "project_files": env.app.count if env.app else 0,
        "python": "bin/python" if plan.relocatable else exe if plan.mode == "system"
        else f"{plan.venv_path}/bin/python",
        "packages": [
            {"name": d.name, "version": d.version, "tier": d.tier}
            for d in sorted(env.distributions, key=lambda d: d.name)
        ],
        "scripts": list(env.scripts),
    }


def interpreter_entries(env: StagedEnv) -> list[layers.Entry]:
    found = layers.scan(env.interpreter.root, env.plan.python_path, skip=BUILD_ONLY)
    return [_relocated_script(e) for e in found] if env.plan.relocatable else found


def _relocated_script(e: layers.Entry) -> layers.Entry:
    """A script of the interpreter's own bin/ (pip3 in a python-build-standalone tree) that
    names its python by an absolute path, made to run the python beside it."""
    if e.kind != "file" or not e.path.startswith("bin/") or e.source is None:
        return e
    with open(e.source, "rb") as f:
        first = f.readline(256)
    if not first.startswith(b"#!/") or not first.rstrip().rsplit(b"/", 1)[-1].startswith(
            b"python"):
        return e
    first, _, rest = e.source.read_bytes().partition(b"\n")
    exe = first.rstrip().rsplit(b"/", 1)[-1].decode()
    return replace(e, source=None, data=TRAMPOLINE.format(python=exe).encode() + rest)


def app_entries(env: StagedEnv) -> list[layers.Entry]:
    """The project's files at the working directory (none for a packaged project)."""
    return layers.scan(env.app.root, "") if env.app else []


def entries(env: StagedEnv) -> list[layers.Entry]:
    """Everything a bundle holds, at final paths, plus its manifest."""
    data = json.dumps(manifest(env), indent=2, sort_keys=True).encode() + b"\n"
    return layers.normalize([
        *interpreter_entries(env),
        *env.entries(),
        *app_entries(env),
        layers.Entry(MANIFEST_NAME, "file", layers.FILE_MODE, data=data),
    ])


def materialize(env: StagedEnv, work: Path) -> UvVenv:
    """Lay the environment out at its final paths under ``work/root`` (a real copy)."""
    root = work / "root"
    root.mkdir(parents=True)
    layers.materialize(layers.normalize([*interpreter_entries(env), *env.entries(),
                                         *app_entries(env)]), root)
    return UvVenv(env.plan, env.interpreter, env, work)


def output_kind(output: Path) -> str:
    """``tar.gz`` for a FILE.tar.gz (or .tgz) and for a stream (stdout, a FIFO, a character
    device), else ``dir``."""
    if output.name.endswith((".tar.gz", ".tgz")) or is_stream(output):
        return "tar.gz"
    return "dir"


def check_output(output: Path) -> None:
    """Fail before any work if ``output`` cannot be written or must not be replaced."""
    label = Option("output", str(output))
    if output_kind(output) == "tar.gz":
        output_place(output, label)  # a file, through a symlink, or a stream
        return
    check_writable_parent(output, label)
    if output.is_symlink():
        raise InputError.of(label, "is a symlink; a bundle directory is replaced whole "
                            "(expected a directory or a new path)",
                            hint="give the directory it points to")
    if output.is_dir():
        if any(output.iterdir()) and not (output / MANIFEST_NAME).is_file():
            raise InputError.of(Option("output", str(output)),
                                "the directory exists and is not a uvship bundle "
                                "(expected a new path or an earlier bundle to replace)",
                                hint="choose a new directory; uvship only replaces its own bundles",
                )
    elif output.exists():
        if not output.is_file():
            output_place(output, label)  # says what it is: a socket, a block device
        raise InputError.of(Option("output", str(output)), "exists and is not a directory",
                            hint="name a FILE.tar.gz to write the bundle as one file")


@dataclass(frozen=True)
class BundleResult:
    output: Path
    kind: str
    sha256: str | None  # of the tarball
    size: int
    files: int
    manifest: dict[str, Any]  # what uvship-bundle.json holds
    streamed: bool = False  # written through a stream (stdout, a FIFO): nothing beside it


def write_bundle(env: StagedEnv, output: Path) -> BundleResult:
    """Write the bundle to ``output``: a directory or a .tar.gz, replaced atomically; or a
    stream (``-`` for stdout, a FIFO, a character device), written through.

    A symlink to a .tar.gz is written through to its target (the link stays), and the
    result names that target: the file that holds the bundle.
    """
    check_output(output)
    entries_ = entries(env)
    files = sum(1 for _ in layers.iter_files(entries_))
    if output_kind(output) == "tar.gz":
        stream = is_stream(output)
        with output_file(output, Option("output", str(output)), what="bundle") as f:
            info = layers.write_tar(entries_, f, compression="gzip")
        where = output if stream else Path(os.path.realpath(output))
        return BundleResult(where, "tar.gz", info.digest.split(":", 1)[1], info.size, files,
                            manifest(env), streamed=stream)
    output = output.absolute()
    tmpdir = Path(tempfile.mkdtemp(prefix=temp_prefix(output), suffix=".tmp",
                                   dir=output.parent))
    old = None
    try:
        layers.materialize(entries_, tmpdir)
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
    size = sum(e.size() for e in layers.iter_files(entries_))
    return BundleResult(output, "dir", None, size, files, manifest(env))


BUNDLE_DIR_SBOM = "uvship-bundle.cdx.json"


def write_sbom(output: Path, sbom: bytes) -> Path:
    """Keep a bundle's SBOM with it: ``X.tar.gz.cdx.json`` beside a tarball,
    ``uvship-bundle.cdx.json`` inside a bundle directory, beside its manifest."""
    from .._fs import atomic_file

    if output.is_dir() and (output / MANIFEST_NAME).is_file():
        dest = output / BUNDLE_DIR_SBOM
    elif output.is_file():
        dest = output.with_name(output.name + ".cdx.json")
    else:
        raise InputError(f"{output}: expected a bundle directory or a bundle file to write "
                         "the SBOM beside, found none")
    with atomic_file(dest) as f:
        f.write(sbom)
    return dest
