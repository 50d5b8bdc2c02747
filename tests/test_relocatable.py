"""Relocatable bundles: unpacked at any directory, by any user, they run from there."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from .conftest import MINBASE, needs_test_python, podman, run, uvship

pytestmark = [needs_test_python]


def bundle_ok(*args, **kw) -> dict:
    proc = uvship("bundle", *args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_layout_is_a_python_prefix_with_no_absolute_paths(project, managed_python, tmp_path,
                                                          extracted):
    src = project("hello-web")
    out = tmp_path / "env.tar.gz"
    res = bundle_ok(str(src), "--relocatable", "-o", str(out))
    m = res["manifest"]
    assert m["relocatable"] is True
    assert m["python"] == "bin/python"
    assert m["interpreter"]["executable"] == "bin/python3.12"
    assert "hello-web" in m["scripts"]
    with tarfile.open(out) as tar:
        names = tar.getnames()
        members = {t.name: t for t in tar.getmembers()}
    # the archive's root is the prefix: nothing at fixed paths, no venv
    assert "bin/python3.12" in names and "bin/python" in names
    assert "lib/python3.12/site-packages/pydantic_core/__init__.py" in names
    assert not [n for n in names if n.startswith(("app/", "opt/"))]
    assert "pyvenv.cfg" not in names
    for t in members.values():  # every link stays inside the bundle
        if t.issym():
            assert not t.linkname.startswith("/"), (t.name, t.linkname)
    root = extracted(out)
    script = (root / "bin/hello-web").read_bytes()
    head = script.split(b"\n", 3)[:3]
    assert head == [b"#!/bin/sh",
                    b"'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")\"/'python' \"$0\" \"$@\"",
                    b"' '''"], script[:200]
    # no file names the build machine's paths (checkout, uvship's cache, uv's Pythons)
    leaks = [str(src), os.environ["UVSHIP_CACHE_DIR"], os.environ["UV_PYTHON_INSTALL_DIR"]]
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            for leak in leaks:
                assert leak.encode() not in data, (p, leak)


# Run in the Debian minbase image (a shell, coreutils, no Python) as an unprivileged user:
# the bundle is unpacked at a fresh random directory and at a path with spaces, and used
# from other working directories, as a Spark executor or a batch job would.
_IN_MINBASE = r"""
set -eu
if command -v python3 || command -v python || [ -e /usr/bin/python3 ]; then
  echo 'minbase unexpectedly has a python' >&2; exit 99
fi
D=$(mktemp -d /tmp/reloc.XXXXXXXX)
mkdir -p "$D/env" "$D/dir with spaces/env"
tar -xzf /bundle.tar.gz -C "$D/env"
tar -xzf /bundle.tar.gz -C "$D/dir with spaces/env"
echo "D=$D uid=$(id -u)"
touch "$D/unpacked"
cd /
echo "A $("$D/env/bin/hello-web" --check)"
cd "$D/dir with spaces"
echo "B $(env/bin/hello-web --check)"
cd /tmp
echo "C $(PATH="$D/env/bin:$PATH" hello-web --check)"
ln -s "$D/env/bin/hello-web" "$D/linked"
echo "L $("$D/linked" --check)"
echo "E $("$D/dir with spaces/env/bin/python" -c 'import sys, sysconfig, pydantic_core
print(sys.prefix, sys.base_prefix, sysconfig.get_paths()["purelib"],
      pydantic_core._pydantic_core.__file__)')"
echo "F $("$D/env/bin/python" -m hello_web --check)"
echo "G $("$D/env/bin/python" -c 'import sys; print(sys.executable, len(sys.path))')"
echo "T $("$D/env/bin/python" -c 'import hello_web.__main__ as m
print(m.main.__code__.co_filename)')"
# the shipped bytecode was valid where it landed: Python wrote none of its own
echo "W $(find "$D/env" "$D/dir with spaces/env" -newer "$D/unpacked" -name '*.pyc' | wc -l)"
"""


@pytest.mark.podman
def test_unpacked_anywhere_by_anyone_runs_in_an_image_without_python(
        project, managed_python, base_images, tmp_path):
    src = project("hello-web")
    out = tmp_path / "env.tar.gz"
    bundle_ok(str(src), "--relocatable", "-o", str(out))
    proc = podman("run", "--rm", "--pull=never", "--network=none", "--user", "65532:65532",
                  "-v", f"{out}:/bundle.tar.gz:ro", MINBASE, "sh", "-c", _IN_MINBASE)
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    d = proc.stdout.split("D=", 1)[1].split()[0]
    assert d.startswith("/tmp/reloc.") and "uid=65532" in proc.stdout, proc.stdout
    spaced = f"{d}/dir with spaces/env"
    site = "lib/python3.12/site-packages"
    for key, prefix in (("A", f"{d}/env"), ("B", spaced), ("C", f"{d}/env"),
                        ("L", f"{d}/env"), ("F", f"{d}/env")):
        line = lines[key]
        assert line.startswith("hello-web ok python=3.12 pydantic_core="), (key, line)
        assert f"prefix={prefix} " in line, (key, line)
        assert f"module={prefix}/{site}/hello_web/__init__.py" in line, (key, line)
    # the interpreter, sysconfig and the compiled dependency all at the unpacked path
    assert lines["E"].startswith(f"{spaced} {spaced} {spaced}/{site} {spaced}/{site}/"
                                 "pydantic_core/_pydantic_core."), lines["E"]
    assert lines["G"].startswith(f"{d}/env/bin/python "), lines["G"]
    # tracebacks name where the module is now, not where it was compiled
    assert lines["T"] == f"{d}/env/{site}/hello_web/__main__.py", lines["T"]
    assert lines["W"] == "0", lines["W"]


def test_two_checkouts_give_the_same_bytes(project, managed_python, tmp_path, monkeypatch):
    a = project("hello-web", tmp_path / "one" / "checkout")
    b = project("hello-web", tmp_path / "elsewhere" / "deeper" / "checkout2")
    later = time.time() + 3600  # a later checkout: every file has another mtime
    for p in b.rglob("*"):
        os.utime(p, (later, later))
    digests = []
    for name, src in (("a", a), ("b", b)):
        monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / f"cache-{name}"))
        out = tmp_path / f"{name}.tar.gz"
        res = bundle_ok(str(src), "--relocatable", "-o", str(out))
        assert Path(f"{out}.cdx.json").is_file()  # the SBOM beside it, as for any bundle
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        assert res["sha256"] == digests[-1]
    assert digests[0] == digests[1]


def test_fixed_paths_are_refused_with_relocatable(project, managed_python, tmp_path):
    src = project("hello-web")
    out = tmp_path / "env.tar.gz"
    proc = uvship("bundle", str(src), "--relocatable", "--venv-path", "/srv/venv",
                  "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: --venv-path /srv/venv: expected no venv-path for a "
                                  "relocatable bundle"), proc.stderr
    assert not out.exists()
    # in [tool.uvship] as on the command line
    (src / "pyproject.toml").write_text((src / "pyproject.toml").read_text()
                                        + "\n[tool.uvship]\nrelocatable = true\n"
                                          "build-steps = [\"python -c pass\"]\n")
    proc = uvship("bundle", str(src), "-o", str(out))
    assert proc.stderr.startswith("error: --build-step python -c pass: expected no "), proc.stderr
    assert proc.returncode == 1
    assert not out.exists()


def test_relocatable_from_the_api(project, managed_python, tmp_path):
    from uvship import Uv

    src = project("hello-web")
    b = Uv(src).workspace().build().with_relocatable()
    res = b.bundle(tmp_path / "env.tar.gz")
    assert res.manifest["relocatable"] is True and res.manifest["python"] == "bin/python"
    with b.venv() as v:  # laid out with the interpreter's prefix as its root
        assert (v.root / "bin/python3.12").is_file()
        assert (v.root / "lib/python3.12/site-packages/hello_web/__init__.py").is_file()
        out = run([v.root / "bin/hello-web", "--check"], cwd=tmp_path).stdout
        assert f"prefix={v.root} " in out, out


# The job: a UDF, run by the executors' Python workers, imports pydantic_core (compiled
# code the driver's Python lacks) and says which interpreter runs it, and where.
_SPARK_JOB = r'''
import os, sys
from pyspark.sql import SparkSession
from pyspark.sql.functions import udf

try:
    import pydantic_core  # noqa: F401
    print("driver has pydantic_core")
except ImportError:
    print("driver lacks pydantic_core")
spark = SparkSession.builder.appName("uvship-relocatable").getOrCreate()


@udf("string")
def where(i):
    import pydantic_core
    return "|".join([os.getcwd(), sys.executable, os.path.realpath(sys.executable),
                     sys.prefix, pydantic_core._pydantic_core.__file__])

for row in spark.range(8).repartition(8).select(where("id").alias("w")).collect():
    print("executor", row.w)
spark.stop()
'''


@pytest.mark.slow
def test_spark_executors_run_the_unpacked_bundle(project, managed_python, pyspark_driver,
                                                 tmp_path):
    """spark-submit --archives app.tar.gz#env in local-cluster mode: two executors, each a
    process of its own with the archive unpacked in its working directory, run the UDF
    with ./env/bin/python."""
    src = project("hello-web")
    app = tmp_path / "app.tar.gz"
    bundle_ok(str(src), "--relocatable", "-o", str(app))
    job = tmp_path / "job.py"
    job.write_text(_SPARK_JOB)
    proc = run([pyspark_driver["submit"], "--master", "local-cluster[2,1,1024]",
                "--archives", f"{app}#env",
                "--conf", "spark.pyspark.python=./env/bin/python",
                "--conf", f"spark.pyspark.driver.python={pyspark_driver['python']}",
                # both executors registered before the first task: each runs some
                "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0",
                job], cwd=tmp_path,
               env={**os.environ, "SPARK_HOME": str(pyspark_driver["spark_home"])})
    assert "driver lacks pydantic_core" in proc.stdout, proc.stdout
    rows = [line.split(" ", 1)[1].split("|") for line in proc.stdout.splitlines()
            if line.startswith("executor ")]
    assert len(rows) == 8, proc.stdout
    work = pyspark_driver["spark_home"] / "work"
    executors = set()
    for cwd, exe, real, prefix, so in rows:
        here = Path(cwd)
        assert here.parent.parent == work and here.parent.name.startswith("app-"), cwd
        executors.add(here.name)
        assert exe == f"{cwd}/env/bin/python", (cwd, exe)
        assert real == f"{cwd}/env/bin/python3.12" and prefix == f"{cwd}/env", (real, prefix)
        assert so.startswith(f"{cwd}/env/lib/python3.12/site-packages/pydantic_core/"), so
    assert executors == {"0", "1"}, executors  # two executor processes, each its own copy
