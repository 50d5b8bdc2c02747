"""Third-party packages in layers of their own: a lock change rebuilds and sends only the
layers of what it changed, and the tier uv updates in place is the tier a fresh one is."""

from __future__ import annotations

import json
import re
import sys
import tarfile
from pathlib import Path

import pytest

from uvship import oci

from .conftest import one_dependency_project, podman, run, uvship

MORE = ("idna==3.7", "h11==0.14.0", "certifi==2024.8.30")


def build(src: Path, out: Path, cache: Path) -> dict:
    proc = uvship("build", str(src), "-o", f"oci:{out}", "--json",
                  env={"UVSHIP_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def dependency_layers(layout: Path) -> dict[str, set[str]]:
    """Each third-party layer of the image: digest -> the distributions it holds."""
    img = oci.read_layout(layout)
    history = [h for h in img.config_dict()["history"] if not h.get("empty_layer")]
    out = {}
    for layer, h in zip(img.layers, history, strict=True):
        if not h.get("created_by", "").startswith("uvship: dependencies"):
            continue
        with tarfile.open(layer.path) as tar:
            out[layer.digest] = {m.group(1).lower() for n in tar.getnames()
                                 if (m := re.search(r"site-packages/([^/]+)-[^-/]+\.dist-info$",
                                                    n))}
    return out


def bump(proj: Path, uv: str, old: str, new: str) -> None:
    py = proj / "pyproject.toml"
    py.write_text(py.read_text().replace(old, new))
    run([uv, "lock", "-q", "--python", sys.executable], cwd=proj)


def run_image(layout: Path) -> str:
    image_id = podman("pull", "-q", f"oci:{layout}").stdout.strip()
    try:
        return podman("run", "--rm", "--network=none", image_id).stdout
    finally:
        podman("rmi", "-f", image_id, check=False)


@pytest.fixture
def proj(tmp_path, uv_bin, managed_python):
    return one_dependency_project(tmp_path, uv_bin, "split-app", "six==1.16.0", "six",
                                  more=MORE)


def test_each_distribution_in_one_layer_and_the_image_runs(proj, tmp_path):
    build(proj, tmp_path / "lay", tmp_path / "cache")
    layers = dependency_layers(tmp_path / "lay")
    held = [d for dists in layers.values() for d in dists]
    assert sorted(held) == sorted({"six", "idna", "h11", "certifi"}), layers
    assert len(layers) > 1, "the third-party tier is one layer"
    out = run_image(tmp_path / "lay")
    assert "six 1.16.0" in out and "idna 3.7" in out and "h11 0.14.0" in out, out


def test_a_bump_changes_only_its_layer_and_equals_a_fresh_build(proj, tmp_path, uv_bin):
    warm = tmp_path / "warm-cache"
    build(proj, tmp_path / "v1", warm)
    before = dependency_layers(tmp_path / "v1")
    bump(proj, uv_bin, "six==1.16.0", "six==1.17.0")
    # uv updates a copy of the tier it staged last (only six is installed and compiled)
    build(proj, tmp_path / "v2", warm)
    after = dependency_layers(tmp_path / "v2")
    gone = {d: before[d] for d in set(before) - set(after)}
    new = {d: after[d] for d in set(after) - set(before)}
    assert len(gone) == 1 and "six" in next(iter(gone.values())), (gone, new)
    assert len(new) == 1 and "six" in next(iter(new.values())), (gone, new)
    # ... and gives the bytes a build from nothing gives
    build(proj, tmp_path / "fresh", tmp_path / "cold-cache")
    assert oci.read_layout(tmp_path / "v2").digest == oci.read_layout(tmp_path / "fresh").digest
    assert "six 1.17.0" in run_image(tmp_path / "v2")


def test_removing_a_package_leaves_none_of_its_files(proj, tmp_path, uv_bin):
    """uv removes what RECORD lists; the bytecode uvship compiled for it must go too."""
    warm = tmp_path / "warm-cache"
    build(proj, tmp_path / "v1", warm)
    bump(proj, uv_bin, ', "h11==0.14.0"', "")
    (proj / "src" / "split_app" / "__init__.py").write_text(
        (proj / "src" / "split_app" / "__init__.py").read_text().replace(", h11", "")
        .replace("    print('h11', getattr(h11, 'answer', lambda: h11.__version__)())\n", ""))
    build(proj, tmp_path / "v2", warm)
    build(proj, tmp_path / "fresh", tmp_path / "cold-cache")
    assert oci.read_layout(tmp_path / "v2").digest == oci.read_layout(tmp_path / "fresh").digest
    names = [n for layer in oci.read_layout(tmp_path / "v2").layers
             for n in tarfile.open(layer.path).getnames()]
    assert not [n for n in names if "/h11" in n], "h11's files are left in the image"


def test_another_project_links_the_bytecode_of_shared_distributions(proj, tmp_path, uv_bin):
    """A distribution's bytecode is compiled once per machine: a second project with the
    same distributions links it from the cache, and its image is the one a build from
    nothing gives; a damaged copy in the cache is compiled again, not shipped."""
    from uvship import cache as uvship_cache

    shared = tmp_path / "shared-cache"
    build(proj, tmp_path / "first", shared)
    other = one_dependency_project(tmp_path, uv_bin, "other-app", "six==1.16.0", "six",
                                   more=MORE)
    # the first project's own records gone, as on a machine that built it long ago
    uvship_cache.prune_to_distributions(shared)
    build(other, tmp_path / "linked", shared)
    build(other, tmp_path / "fresh", tmp_path / "cold-cache")
    linked = oci.read_layout(tmp_path / "linked").digest
    assert linked == oci.read_layout(tmp_path / "fresh").digest
    kept = sorted((shared / "dist-work").glob("*/files/**/six.cpython-*.pyc"))
    assert len(kept) == 1, kept
    # the cache's copy and the other project's tier are one file (the first project's
    # tier went with its records): linked, not compiled again
    assert kept[0].stat().st_nlink == 2, kept[0].stat()
    out = run_image(tmp_path / "linked")
    assert "six 1.16.0" in out and "idna 3.7" in out, out

    for files in (shared / "dist-work").glob("*/files"):  # damaged: the bytecode is gone
        for pyc in files.rglob("*.pyc"):
            pyc.unlink()
    uvship_cache.prune_to_distributions(shared)
    build(other, tmp_path / "again", shared)
    assert oci.read_layout(tmp_path / "again").digest == linked
    assert len(list((shared / "dist-work").glob("*/files/**/six.cpython-*.pyc"))) == 1, \
        "the damaged copy was not kept again"


def _wheel(dest: Path, name: str, version: str, files: dict[str, str]) -> None:
    """A pure-Python wheel holding ``files`` (path -> text), with its RECORD."""
    import base64
    import hashlib
    import zipfile

    info = f"{name}-{version}.dist-info"
    files = {**files,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    rows = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        rows.append(f"{path},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}")
    with zipfile.ZipFile(dest / f"{name}-{version}-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
        z.writestr(f"{info}/RECORD", "\n".join([*rows, f"{info}/RECORD,,"]) + "\n")


def test_a_module_two_distributions_install_is_the_same_however_they_were_compiled(
        tmp_path, uv_bin, managed_python):
    """Two distributions that both install shared_ns/__init__.py (an old-style namespace
    package): the module belongs to neither's kept bytecode, and the image is the one a
    build from nothing gives whether both, one or none of them were compiled before."""
    from uvship import cache as uvship_cache

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # the shapes whose bytecode depends on what was compiled before (tests/test_bytecode.py):
    # a set constant used twice, after modules that intern one of its names
    shared = ("SOLVERS = [{'arpack', 'lobpcg', 'amg'}]\n\n\ndef known(x):\n"
              "    return x in {'arpack', 'lobpcg', 'amg'}\n")
    for name, version in (("nsa", "1.0"), ("nsb", "1.0"), ("nsb", "1.1")):
        _wheel(wheels, name, version, {
            "shared_ns/__init__.py": shared,
            f"{name}/__init__.py": f"import shared_ns\n__version__ = {version!r}\n\n"
                                   f"def answer(arpack='arpack'):\n    return (__version__, "
                                   f"shared_ns.known(arpack), sorted({{'x', {name!r}}}))\n"})
    links = f"find-links = [{str(wheels)!r}]"
    first = one_dependency_project(tmp_path, uv_bin, "ns-first", "nsa==1.0", "nsa",
                                   more=("nsb==1.0",), uv_config=links)
    other = one_dependency_project(tmp_path, uv_bin, "ns-other", "nsa==1.0", "nsa",
                                   more=("nsb==1.0",), uv_config=links)
    kept = tmp_path / "kept-cache"
    build(first, tmp_path / "first", kept)
    for step, change in enumerate([None, ("nsb==1.0", "nsb==1.1")]):
        if change:  # nsa's bytecode is linked, nsb 1.1's compiled
            bump(other, uv_bin, *change)
        uvship_cache.prune_to_distributions(kept)
        build(other, tmp_path / f"linked-{step}", kept)
        build(other, tmp_path / f"fresh-{step}", tmp_path / f"empty-cache-{step}")
        assert (oci.read_layout(tmp_path / f"linked-{step}").digest
                == oci.read_layout(tmp_path / f"fresh-{step}").digest), change
    out = run_image(tmp_path / "linked-1")
    assert "nsa ('1.0', True, ['nsa', 'x'])" in out and "nsb ('1.1', True" in out, out


def test_a_pure_python_bump_reuses_what_the_native_files_need(tmp_path, uv_bin,
                                                               managed_python):
    """What the environment's ELF files need from the host is remembered by their ELF
    facts: a bump that changes only Python files asks nothing of the host again, and the
    image still loads its native module."""
    proj = one_dependency_project(tmp_path, uv_bin, "native-bump", "markupsafe==2.1.5",
                                  "markupsafe", more=("six==1.16.0",))
    cache = tmp_path / "cache"

    def records() -> list[str]:
        return sorted(p.name for p in (cache / "native-libraries").glob("*.json"))

    build(proj, tmp_path / "v1", cache)
    first = records()
    assert len(first) == 1, first
    bump(proj, uv_bin, "six==1.16.0", "six==1.17.0")
    build(proj, tmp_path / "v2", cache)
    assert records() == first
    out = run_image(tmp_path / "v2")
    assert "markupsafe 2.1.5" in out and "six 1.17.0" in out, out
