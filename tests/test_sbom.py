"""SBOMs: what the example's environment really holds, reproducibly; in layouts and registries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from uvship import Image, MultiPlatformImage, Uv, layers, oci
from uvship.image import image as images
from uvship.image import runtime
from uvship.publish import bundle as bundle_out
from uvship.registry import Registry
from uvship.sbom import artifact, cyclonedx, layout, referrers
from uvship.sbom.cyclonedx import CDX_MEDIA_TYPE

from .conftest import run
from .registry_fixtures import registry_fixture  # noqa: F401


def cli(*args: str):
    return run([sys.executable, "-m", "uvship", *args], check=False)


def installed(env) -> dict[str, str]:
    """canonical name -> version of every dist-info in the staged venv."""
    site = env.root / f"lib/python{env.interpreter.minor}/site-packages"
    out = {}
    for d in site.glob("*.dist-info"):
        meta = dict(line.split(": ", 1) for line in (d / "METADATA").read_text().splitlines()
                    if line.startswith(("Name: ", "Version: ")))
        out[canonicalize_name(meta["Name"])] = meta["Version"]
    return out


def python_components(doc) -> dict[str, dict]:
    return {canonicalize_name(c["name"]): c for c in doc["components"]
            if c["bom-ref"].startswith("python:")}


@pytest.fixture
def example(project, managed_python):
    """The example project, staged (env) with the components of its scratch runtime."""
    src = project("hello-web")
    b = Uv(src).workspace().build()
    env = b.stage()
    rt = runtime.scratch_runtime([env.interpreter.root], machine=env.interpreter.machine)
    return b, env, rt.components


def test_lists_exactly_the_venv_and_is_reproducible(example, project, tmp_path, monkeypatch):
    b, env, comps = example
    data = cyclonedx.sbom_for(env, runtime_components=comps)
    doc = json.loads(data)
    assert (doc["bomFormat"], doc["specVersion"]) == ("CycloneDX", "1.5")
    assert "timestamp" not in doc["metadata"]
    got = python_components(doc)
    assert {n: c["version"] for n, c in got.items()} == installed(env)
    assert len(got) > 10  # FastAPI and its dependencies

    lock = {p["name"]: p for p in b.ws.lock["package"]}
    for name, c in got.items():
        props = {p["name"]: p["value"] for p in c["properties"]}
        if name == "hello-web":  # the project: local, so no PyPI purl and no hashes
            assert props["uvship:local"] == "true" and "purl" not in c and "hashes" not in c
            continue
        assert c["purl"] == f"pkg:pypi/{name}@{c['version']}"
        # the one hash of the wheel that was installed, as uv.lock has it
        wheel = next(w for w in lock[name]["wheels"]
                     if w["url"].endswith("/" + props["uvship:installed-from"]))
        assert c["hashes"] == [{"alg": "SHA-256",
                                "content": wheel["hash"].removeprefix("sha256:")}]
    assert got["fastapi"]["licenses"] and got["pydantic-core"]["hashes"]
    others = {c["bom-ref"]: c for c in doc["components"] if "python:" not in c["bom-ref"]}
    assert others["interpreter:cpython"]["version"] == env.interpreter.version_str
    assert any(c["name"] == "libc6" and c["purl"].startswith("pkg:deb/")
               for c in others.values())
    assert any(c["name"] == "certifi" for c in others.values())

    # A second checkout staged into an empty cache (uv syncs and compiles again): same bytes.
    monkeypatch.setenv("UVSHIP_CACHE_DIR", str(tmp_path / "other-cache"))
    other = Uv(project("hello-web", tmp_path / "elsewhere")).workspace().build().stage()
    assert other.root != env.root
    assert cyclonedx.sbom_for(other, runtime_components=comps) == data

    # a time only when asked: SOURCE_DATE_EPOCH, or the clock
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = json.loads(cyclonedx.sbom_for(env, runtime_components=comps))
    assert dated["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    assert dated["serialNumber"] != doc["serialNumber"]  # derived from the content
    now = json.loads(cyclonedx.sbom_for(env, timestamp=True))["metadata"]["timestamp"]
    assert now.startswith("20") and now != dated["metadata"]["timestamp"]


def test_metadata_that_is_not_ascii(project, managed_python):
    """pandas' shape: its License field is the whole license text, with accented names in
    it; parsed from bytes, such a value was a Header object and the build crashed."""
    env = Uv(project("license-text")).workspace().build().stage()
    comp = python_components(json.loads(cyclonedx.sbom_for(env)))["license-text"]
    # more than a line of text is no license name: the classifier names it
    assert comp["licenses"] == [{"license": {"name": "BSD License"}}]


def test_valid_cyclonedx_1_5(example):
    cdx = pytest.importorskip("cyclonedx.validation.json",
                              reason="cyclonedx-python-lib (dev) not installed")
    from cyclonedx.schema import SchemaVersion

    _, env, comps = example
    data = cyclonedx.sbom_for(env, runtime_components=comps, timestamp=True)
    assert cdx.JsonStrictValidator(SchemaVersion.V1_5).validate_str(data.decode()) is None


def test_in_an_oci_layout(example, tmp_path):
    b, env, comps = example
    image = b.image("scratch")
    lay = tmp_path / "lay"
    image.export(f"oci:{lay}")
    data = cyclonedx.sbom_for(env, runtime_components=comps)
    layout.add_to_layout(lay, data)

    # index.json lists the image only; its entry names the SBOM artifact, kept in blobs/
    (entry,) = json.loads((lay / "index.json").read_text())["manifests"]
    assert entry["digest"] == image.digest and "artifactType" not in entry
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    art = entry["annotations"][layout.LAYOUT_ANNOTATION]
    manifest = json.loads((lay / "blobs/sha256" / art[7:]).read_text())
    assert manifest["artifactType"] == CDX_MEDIA_TYPE
    assert manifest["subject"]["digest"] == image.digest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    # other tools still read the image, with or without its tag
    for ref in (f"oci:{lay}", f"oci:{lay}:latest"):
        assert json.loads(run(["skopeo", "inspect", ref]).stdout)["Digest"] == image.digest

    assert layout.read_from_layout(lay) == data == layout.read_from_layout(lay, "latest")
    for ref in (f"oci:{lay}", f"oci:{lay}:latest"):
        proc = cli("sbom", ref)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, data.decode(), "")

    # a newer SBOM of the same image takes the older one's place in the annotation
    again = cyclonedx.sbom_for(env, runtime_components=comps, timestamp=True)
    new = layout.add_to_layout(lay, again)
    (entry,) = json.loads((lay / "index.json").read_text())["manifests"]
    assert entry["annotations"][layout.LAYOUT_ANNOTATION] == new != art
    assert layout.read_from_layout(lay) == again

    # written again under other tags: they join `latest`, each entry naming its own SBOM;
    # the same tags give the same bytes each time
    image.export(f"oci:{lay}", tags=["app:1.0", "app:stable"])
    image.export(f"oci:{tmp_path / 'twin'}", tags=["app:1.0", "app:stable"])
    entries = json.loads((lay / "index.json").read_bytes())["manifests"]
    twin = json.loads((tmp_path / "twin" / "index.json").read_bytes())["manifests"]
    ref = "org.opencontainers.image.ref.name"
    assert [e["annotations"][ref] for e in entries] == ["1.0", "latest", "stable"]
    assert [e for e in entries if e["annotations"][ref] != "latest"] == twin
    assert [e["digest"] for e in entries] == [image.digest] * 3
    assert [e["annotations"][layout.LAYOUT_ANNOTATION] for e in entries] == [art, new, art]
    assert layout.read_from_layout(lay, "stable") == image.sbom == data
    assert layout.read_from_layout(lay, "latest") == again


def test_older_layouts_that_list_the_sbom_in_index_json(tmp_path):
    """As oras and earlier uvship versions write them: the artifact listed untagged."""
    lay = tmp_path / "old"
    image = tiny_image(tmp_path, "linux/amd64")
    oci.write_layout(image.oci, lay, tags=["latest"])
    manifest = artifact.artifact_manifest(image.sbom, image.oci.descriptor().to_json())
    for blob in (artifact.EMPTY, image.sbom, manifest):
        (lay / "blobs/sha256" / oci.sha256_digest(blob)[7:]).write_bytes(blob)
    index = json.loads((lay / "index.json").read_text())
    index["manifests"].append(artifact.referrer_descriptor(manifest))
    (lay / "index.json").write_text(json.dumps(index))

    assert layout.read_from_layout(lay) == image.sbom == layout.read_from_layout(lay, "latest")
    for ref in (f"oci:{lay}", f"oci:{lay}:latest"):
        proc = cli("sbom", ref)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, image.sbom.decode(), "")
    # a new SBOM moves the layout to the annotation: index.json lists the image only
    newer = b'{"bomFormat": "CycloneDX", "version": 2}\n'
    layout.add_to_layout(lay, newer)
    (entry,) = json.loads((lay / "index.json").read_text())["manifests"]
    assert entry["digest"] == image.digest
    assert layout.read_from_layout(lay) == newer

    # an annotation whose artifact is gone (a blob cleaner ran): said so, not a traceback
    (lay / "blobs/sha256" / entry["annotations"][layout.LAYOUT_ANNOTATION][7:]).unlink()
    proc = cli("sbom", f"oci:{lay}")
    assert proc.returncode == 1 and "whose blob is missing" in proc.stderr, proc.stderr
    assert "hint: " in proc.stderr


def test_an_index_layout_names_one_sbom_per_platform(tmp_path):
    amd64, arm64 = tiny_image(tmp_path, "linux/amd64"), tiny_image(tmp_path, "linux/arm64")
    multi = MultiPlatformImage((amd64, arm64))
    lay = tmp_path / "multi"
    multi.export(f"oci:{lay}")
    # one entry, the index (its digest as without SBOMs); it names both platforms' SBOMs
    (entry,) = json.loads((lay / "index.json").read_text())["manifests"]
    assert (entry["mediaType"], entry["digest"]) == (oci.OCI_INDEX, multi.digest)
    named = entry["annotations"][layout.LAYOUT_ANNOTATION].split(",")
    subjects = [json.loads((lay / "blobs/sha256" / d[7:]).read_bytes())["subject"]["digest"]
                for d in named]
    assert subjects == [amd64.digest, arm64.digest]
    raw = run(["skopeo", "inspect", "--raw", f"oci:{lay}"]).stdout.encode()
    assert raw == multi.index.index_bytes()

    assert layout.read_from_layout(lay, platform="linux/arm64") == arm64.sbom
    proc = cli("sbom", f"oci:{lay}:latest", "--platform", "linux/amd64")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, amd64.sbom.decode(), "")
    proc = cli("sbom", f"oci:{lay}")
    assert proc.returncode == 1 and "several platforms" in proc.stderr, proc.stderr
    proc = cli("sbom", "registry.example/app:1", "--platform", "linux/arm64")
    assert proc.returncode == 1 and "expected oci:DIR[:TAG]" in proc.stderr, proc.stderr


def tiny_image(work: Path, platform: str) -> Image:
    """A one-file image for ``platform`` with a stand-in SBOM that names it."""
    blob = work / f"layer-{platform.replace('/', '-')}.tar"
    with blob.open("wb") as f:
        info = layers.write_tar([layers.Entry("hello", "file", data=b"hi\n")], f,
                                compression="none")
    img = oci.Image.scratch(platform).with_layer(oci.Layer.from_archive(info, blob))
    doc = {"bomFormat": "CycloneDX", "metadata": {"component": {"name": platform}}}
    return Image(img, images.Base(images.SCRATCH, None),
                        sbom=(json.dumps(doc) + "\n").encode())


def test_beside_bundles(tmp_path):
    tarball = tmp_path / "app.tar.gz"
    tarball.write_bytes(b"stand-in")
    assert bundle_out.write_sbom(tarball, b"{}\n") == tmp_path / "app.tar.gz.cdx.json"
    proc = cli("sbom", str(tarball))
    assert (proc.returncode, proc.stdout) == (0, "{}\n")
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    (bundle_dir / "uvship-bundle.json").write_text("{}")
    assert bundle_out.write_sbom(bundle_dir, b"{}\n") == bundle_dir / bundle_out.BUNDLE_DIR_SBOM
    proc = cli("sbom", str(tmp_path / "nothing-here.tar.gz"))
    assert proc.returncode == 1 and "nothing-here.tar.gz" in proc.stderr


def test_attached_to_a_pushed_image_found_through_the_tag_fallback(example, registry):
    b, env, comps = example
    image = b.image("scratch")
    ref = registry.ref("sbom-app", "1.0")
    image.publish(ref)
    data = cyclonedx.sbom_for(env, runtime_components=comps)
    mark = registry.mark()
    with Registry(registry.host) as reg:
        attached = referrers.attach_to_registry(reg, ref, image.digest, data)
        # distribution 2.8 has no referrers API: the sha256-<hex> tag lists the SBOM
        assert registry.count("GET", rf"/referrers/{image.digest}$", since=mark, status=404)
        assert attached.via == "tag" and attached.tag == "sha256-" + image.digest[7:]
        again = referrers.attach_to_registry(reg, ref, image.digest, data)
        assert again == attached
    fallback = registry.ref("sbom-app", attached.tag)
    raw = json.loads(run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{fallback}"]).stdout)
    assert [(d["digest"], d["artifactType"]) for d in raw["manifests"]] == [
        (attached.digest, CDX_MEDIA_TYPE)]  # listed once, though attached twice

    assert referrers.find_sbom(ref) == data
    proc = cli("sbom", ref)
    assert (proc.returncode, proc.stdout) == (0, data.decode())
    # the image itself is untouched
    info = json.loads(run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"]).stdout)
    assert info["Digest"] == image.digest

    proc = cli("sbom", registry.ref("sbom-app", "missing"))
    assert proc.returncode == 1 and "missing" in proc.stderr


def test_non_ascii_metadata_fields_are_text(tmp_path):
    """pandas 2.3.3's License field is not ASCII: read as installers read METADATA (UTF-8
    text), every field is a str, never an email Header that has no .strip()."""
    from uvship.sbom.cyclonedx import _licenses, _read_metadata

    meta = tmp_path / "METADATA"
    meta.write_bytes("Metadata-Version: 2.1\nName: pandas\nVersion: 2.3.3\n"
                     "License: BSD 3-Clause — Copyright © 2008 AQR, Lambda Foundry\n"
                     "Classifier: License :: OSI Approved :: BSD License\n\n"
                     "long description\n".encode())
    msg = _read_metadata(meta)
    assert isinstance(msg["License"], str)
    assert _licenses(msg) == [
        {"license": {"name": "BSD 3-Clause — Copyright © 2008 AQR, Lambda Foundry"}}]


def test_license_with_non_ascii_bytes(tmp_path):
    """pandas 2.3.2's License field is its whole license text, "©" included: read as
    bytes, it is an email Header object, not a str. The classifiers name it then."""
    from uvship.sbom.cyclonedx import _licenses, _read_metadata

    meta = tmp_path / "METADATA"
    meta.write_bytes("Metadata-Version: 2.1\nName: pandas\nVersion: 2.3.2\n"
                     "License: BSD 3-Clause License\n         \n         Copyright (c) "
                     "2011-2023, Open source contributors \u00a9\n"
                     "Classifier: License :: OSI Approved :: BSD License\n\n".encode())
    assert _licenses(_read_metadata(meta)) == [{"license": {"name": "BSD License"}}]
