"""Only what was asked for goes into an image, and every image carries its SBOM."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from uvship import oci
from uvship.oci._blobs import open_decompressed

from .conftest import uvship
from .registry_fixtures import registry_fixture  # noqa: F401

pytestmark = [pytest.mark.podman]


def layer_files(layout: Path):
    img = oci.read_layout(layout, "latest")
    for layer in img.layers:
        with open_decompressed(layer.path, layer.compression) as f, \
                tarfile.open(fileobj=f, mode="r|") as tar:
            for m in tar:
                data = tar.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
                yield m.name, data


def test_nothing_of_the_checkout_or_the_build_machine(project, managed_python, tmp_path):
    src = project("hello-web")
    # what a real checkout has beside the code
    (src / ".git").mkdir()
    (src / ".git" / "config").write_text("[remote]\n\turl = https://user:tok@example.invalid\n")
    (src / ".env").write_text("SECRET_KEY=do-not-ship-me\n")
    (src / "tests").mkdir()
    (src / "tests" / "test_app.py").write_text("def test_x():\n    assert True\n")
    for cache in (".pytest_cache", ".mypy_cache", ".venv"):
        (src / cache).mkdir()
        (src / cache / "junk").write_text("junk\n")
    cache_dir = Path(os.environ["UVSHIP_CACHE_DIR"])
    proc = uvship("build", str(src), "-o", f"oci:{tmp_path / 'lay'}")
    assert proc.returncode == 0, proc.stderr

    forbidden_paths = [str(src), str(tmp_path), str(cache_dir), os.environ["UV_PYTHON_INSTALL_DIR"],
                       str(Path.home() / ".cache" / "uv")]
    host_cas = [p.read_bytes().split(b"\n")[1] for p in
                Path("/usr/local/share/ca-certificates").glob("*.crt")]
    names = []
    for name, data in layer_files(tmp_path / "lay"):
        names.append(name)
        parts = name.rstrip("/").split("/")
        assert not {".git", ".env", ".pytest_cache", ".mypy_cache", ".ruff_cache"} & set(parts)
        assert "test_app.py" not in parts and "do-not-ship-me" not in data.decode("latin-1")
        for p in forbidden_paths:
            assert p.encode() not in data, (name, p)
        for ca in host_cas:
            assert ca not in data, name
    assert any(n.endswith("hello_web/__init__.py") for n in names)
    # the config and history hold no path of this machine either
    cfg = oci.read_layout(tmp_path / "lay", "latest").config_bytes()
    for p in forbidden_paths:
        assert p.encode() not in cfg


def test_sbom_lists_exactly_the_installed_distributions(project, managed_python, tmp_path,
                                                       monkeypatch):
    src = project("hello-web")
    outs = []
    for n in (1, 2):
        monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / f"cache{n}"))
        proc = uvship("build", str(src), "-o", f"oci:{tmp_path / f'lay{n}'}")
        assert proc.returncode == 0, proc.stderr
        proc = uvship("sbom", f"oci:{tmp_path / f'lay{n}'}:latest")
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]  # two builds, byte-identical SBOMs
    bom = json.loads(outs[0])
    # Python distributions are the `python:` components (certifi and tzdata also appear,
    # as the runtime's CA bundle and zoneinfo files: `runtime:` components)
    python = {(c["name"].lower(), c["version"]) for c in bom["components"]
              if c.get("bom-ref", "").startswith("python:")}
    runtime = {c["name"] for c in bom["components"] if c.get("bom-ref", "").startswith("runtime:")}
    assert {"certifi", "tzdata"} <= runtime
    installed = set()
    for name, data in layer_files(tmp_path / "lay1"):
        if name.startswith("app/.venv/") and name.endswith(".dist-info/METADATA"):
            meta = dict(line.split(": ", 1) for line in data.decode().splitlines()[:3]
                        if ": " in line)
            installed.add((meta["Name"].lower().replace("_", "-"), meta["Version"]))
    python = {(n.replace("_", "-"), v) for n, v in python}
    assert installed and python >= installed
    assert {n for n, _ in python - installed} <= {"pip"}  # the interpreter's own, if any
    assert any(c["name"] == "cpython" for c in bom["components"])


def test_pushed_image_has_its_sbom(project, managed_python, registry):
    src = project("hello-web")
    ref = registry.ref("with-sbom", "1")
    proc = uvship("build", str(src), "--push", ref)
    assert proc.returncode == 0, proc.stderr
    proc = uvship("sbom", ref)
    assert proc.returncode == 0, proc.stderr
    bom = json.loads(proc.stdout)
    assert any(c["name"] == "fastapi" for c in bom["components"])


@pytest.mark.parametrize("path, patterns, expected", [
    ("app/fixtures/big.json", ("app/fixtures/**",), True),
    ("app/fixtures", ("app/fixtures",), True),
    ("app/data/x.md", ("**/*.md",), True),
    ("app/data/keep.md", ("**/*.md", "!app/data/keep.md"), False),
    ("app/core.py", ("**/*.md",), False),
    ("app/fixtures2/x", ("app/fixtures",), False),
])
def test_exclude_patterns(path, patterns, expected):
    from uvship.stage.tidy import excluded

    assert excluded(path, patterns) is expected


def test_excluded_data_files_stay_out(project, managed_python, tmp_path):
    src = project("hello-web")
    data = src / "src/hello_web/fixtures"
    data.mkdir()
    (data / "sample.json").write_text('{"big": true}\n')
    (src / "src/hello_web/NOTES.md").write_text("notes\n")
    pp = src / "pyproject.toml"
    pp.write_text(pp.read_text() + '\n[tool.uvship]\nexclude = ["hello_web/fixtures/**"]\n')
    proc = uvship("build", str(src), "--exclude", "**/*.md", "--exclude",
                  "hello_web/fixtures/**", "-o", f"oci:{tmp_path / 'lay'}")
    assert proc.returncode == 0, proc.stderr
    names = [n for n, _ in layer_files(tmp_path / "lay")]
    site = "app/.venv/lib/python3.12/site-packages/"
    assert site + "hello_web/__init__.py" in names
    assert not [n for n in names if "fixtures" in n or n.endswith("NOTES.md")]
    record = next(d for n, d in layer_files(tmp_path / "lay")
                  if n.startswith(site + "hello_web-") and n.endswith("RECORD"))
    assert b"fixtures" not in record and b"NOTES.md" not in record
