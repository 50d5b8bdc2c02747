"""Benchmark: uvship against the standard way (BuildKit and podman building the
best-practice uv Dockerfile).

    .venv/bin/python benchmarks/run.py [--project example|data-app|PATH] [--repeat N]
                                       [--only bundle|build|podman|buildkit] [--out PATH]

Same project (a fresh copy of examples/hello-web, benchmarks/projects/data-app or PATH per
tool), same machine, same run; each scenario's repeats are interleaved across the tools.
After each dependency change the images are pushed to a local registry (Debian's
docker-registry on 127.0.0.1) to count the bytes the change uploads. Raw timings,
medians, ratios and machine facts go to PATH (JSON) and a Markdown table beside it (PATH
with .md); the table is also printed on stdout, progress on stderr. What is measured and
how: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uvship import cache as uvship_cache

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hello-web"
STANDARD = ROOT / "benchmarks" / "standard"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "latest.json"

DATA_APP = ROOT / "benchmarks" / "projects" / "data-app"
SCENARIOS = {
    "cold": "cold build, warm uv cache (base kept)",
    "cold_empty": "cold build, warm uv cache, empty uvship cache",
    "cold_shared": "cold build, warm uv cache (base and per-distribution work kept)",
    "nochange": "no-change rebuild",
    "edit": "one source file edited",
    "edit_podman": "one source file edited, then runnable in podman",
    "edit_docker": "one source file edited, then runnable in Docker",
    "dep": "one dependency added (six)",
    "bump": "one small dependency bumped",
    "bump_large": "one large dependency bumped",
}
# the scenarios that change the locked dependencies (pyproject.toml and uv.lock replaced)
CHANGES = ("dep", "bump", "bump_large")
TOOLS = ("podman", "buildkit", "build", "bundle")
LABELS = {"podman": "podman build", "buildkit": "BuildKit (docker build)",
          "build": "uvship build", "bundle": "uvship bundle"}
# Debian's docker.io client: a newer one elsewhere on PATH wants the buildx plugin
DOCKER = "/usr/bin/docker"
BUILDKIT_TAG = "uvship-bench/standard:buildkit"
ENGINE_TAG = "uvship-bench/uvship:engine"
ADDED_DEP = "six"
EDITED_FILE = "src/hello_web/__init__.py"


@dataclass(frozen=True)
class Spec:
    """A project the benchmark runs on, and the changes its scenarios make."""

    name: str
    path: Path
    script: str  # the console script: the image's command, and `SCRIPT --check`
    edited_file: str  # the source file the edit scenarios append a line to
    added: str = ADDED_DEP  # the dependency "one dependency added" adds
    # scenario -> the locked package it moves to its previous release
    bumps: dict[str, str] = field(default_factory=dict)


PROJECTS = {
    "example": Spec("example", EXAMPLE, "hello-web", EDITED_FILE, ADDED_DEP,
                    {"bump": "idna"}),
    # six is already in the data app's lock (python-dateutil needs it): it adds tabulate
    "data-app": Spec("data-app", DATA_APP, "data-app", "src/data_app/__init__.py",
                     "tabulate", {"bump": "idna", "bump_large": "scipy"}),
}


def project_spec(arg: str) -> Spec:
    """A named project, or a uv project directory (its first console script, the
    __init__.py of the package named after it, six added, nothing bumped)."""
    if arg in PROJECTS:
        return PROJECTS[arg]
    path = Path(arg).resolve()
    try:
        meta = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        script = next(iter(meta["scripts"]))
    except (OSError, KeyError, StopIteration, tomllib.TOMLDecodeError) as exc:
        raise Failed(f"--project {arg}: expected a uv project with a [project.scripts] "
                     f"entry ({exc!r})") from exc
    module = meta["name"].replace("-", "_").replace(".", "_").lower()
    return Spec(path.name, path, script, f"src/{module}/__init__.py")
PODMAN_TAG = "localhost/uvship-bench/standard:latest"
UVSHIP_TAG = "localhost/uvship-bench/uvship:latest"
TIMEOUT = 900
# From issue 15, against BuildKit (the engine users have): speed-ups are BuildKit/uvship,
# the size target is uvship/BuildKit.
TARGETS = {
    "nochange": {"max_seconds": 0.1, "min_speedup": 5.0},
    "edit": {"max_seconds": 0.2, "min_speedup": 7.0},
    "edit_docker": {"max_seconds": None, "min_speedup": 3.0},
    "cold": {"max_seconds": None, "min_speedup": 3.0},
    "dep": {"max_seconds": None, "min_speedup": 5.0},
    "size": {"max_fraction": 0.40},
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Failed(Exception):
    """A command the benchmark needs (not one it measures) failed."""


def run(cmd: list[Any], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a command with stdout and stderr captured together; on failure raise with both."""
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise Failed(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    return proc


def timed(cmd: list[Any], **kw: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = run(cmd, check=False, **kw)
    return time.perf_counter() - t0, proc


def sample(seconds: float, proc: subprocess.CompletedProcess[str], **extra: Any) -> dict:
    s = {"seconds": round(seconds, 4), "ok": proc.returncode == 0, **extra}
    if proc.returncode != 0:
        s["exit_code"] = proc.returncode
        s["output_tail"] = proc.stdout[-2000:]
    return s


# ---------------------------------------------------------------------------- the project

class Project:
    """A private copy of the project, with the edits the scenarios make and undo."""

    def __init__(self, dest: Path, dep_files: dict[str, Any], src: Path = EXAMPLE,
                 edited_file: str = EDITED_FILE) -> None:
        shutil.copytree(src, dest, symlinks=True,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        self.dir = dest
        self.edited_file = edited_file
        # the changed pyproject.toml and uv.lock: {scenario: {file: bytes}}; a flat
        # {file: bytes} is the "dep" scenario's (arm64.py passes {})
        if dep_files and all(isinstance(v, bytes) for v in dep_files.values()):
            dep_files = {"dep": dep_files}
        self.variants: dict[str, dict[str, bytes]] = dep_files
        self.original = {n: (dest / n).read_bytes()
                         for n in ("pyproject.toml", "uv.lock", edited_file)}

    @property
    def dep_files(self) -> dict[str, bytes]:
        return self.variants.get("dep", {})

    def edit(self) -> None:
        """Change one source file, differently every time (so no cache has seen it)."""
        with open(self.dir / self.edited_file, "a") as f:
            f.write(f"# benchmark edit {uuid.uuid4().hex}\n")

    def add_dependency(self) -> None:
        self.change("dep")

    def change(self, scen: str) -> None:
        """Write the pyproject.toml and uv.lock of a dependency change."""
        for name, data in self.variants[scen].items():
            (self.dir / name).write_bytes(data)

    def restore(self) -> None:
        for name, data in self.original.items():
            (self.dir / name).write_bytes(data)


def locked_with_dependency(work: Path, uv: str, env: dict[str, str], src: Path = EXAMPLE,
                           dep: str = ADDED_DEP) -> dict[str, bytes]:
    """pyproject.toml and uv.lock of the project with ``dep`` added, locked once by uv."""
    d = work / "lock-with-dep"
    shutil.copytree(src, d, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    py = d / "pyproject.toml"
    text, n = re.subn(r"(?m)^dependencies = \[\n", f'dependencies = [\n    "{dep}",\n',
                      py.read_text(), count=1)
    if n != 1:
        raise Failed(f"{py}: expected a multi-line `dependencies = [` list to add {dep} to")
    py.write_text(text)
    run([uv, "lock", "--quiet"], cwd=d, env=env)
    if f'name = "{dep}"' not in (d / "uv.lock").read_text():
        raise Failed(f"uv lock did not add {dep} to {d / 'uv.lock'}")
    return {"pyproject.toml": py.read_bytes(), "uv.lock": (d / "uv.lock").read_bytes()}


def locked_packages(lock: bytes) -> dict[str, list[str]]:
    """name -> the versions uv.lock holds (a package may be locked at one version per
    Python range)."""
    out: dict[str, list[str]] = {}
    for p in tomllib.loads(lock.decode()).get("package", []):
        if "version" in p:
            out.setdefault(p["name"], []).append(p["version"])
    return out


def locked_with_bump(work: Path, uv: str, env: dict[str, str], src: Path, pkg: str
                     ) -> dict[str, bytes]:
    """pyproject.toml (unchanged) and uv.lock with ``pkg`` moved to its previous release:
    `uv lock --upgrade-package 'PKG<LOWEST LOCKED VERSION'`, once, on a scratch copy."""
    d = work / f"lock-bump-{pkg}"
    shutil.copytree(src, d, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    before = (d / "uv.lock").read_bytes()
    versions = locked_packages(before).get(pkg)
    if not versions:
        raise Failed(f"{pkg} is not in {src / 'uv.lock'}: pick a locked package to bump")
    low = min(versions, key=version_key)
    run([uv, "lock", "--quiet", "--upgrade-package", f"{pkg}<{low}"], cwd=d, env=env)
    after = (d / "uv.lock").read_bytes()
    if locked_packages(after).get(pkg) == versions:
        raise Failed(f"uv lock did not move {pkg} below {low}")
    return {"pyproject.toml": (d / "pyproject.toml").read_bytes(), "uv.lock": after}


def version_key(v: str) -> tuple:
    """A sort key good enough for release versions (1.16.3 < 1.17.1 < 1.18.0rc1)."""
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.+-]", v))


def changed_distributions(before: bytes, after: bytes) -> dict[str, list[str]]:
    """What a lock change installs anew: name -> versions in ``after`` not in ``before``."""
    b, a = locked_packages(before), locked_packages(after)
    return {n: [v for v in vs if v not in b.get(n, [])] for n, vs in a.items()
            if any(v not in b.get(n, []) for v in vs)}


def wheel_bytes(lock: bytes, changed: dict[str, list[str]], py: str) -> dict[str, int]:
    """The size uv.lock records for the wheel of each changed distribution that uv would
    install on CPython ``py`` (e.g. "3.12") for x86_64 manylinux: a cpXY, abi3 or
    py3-none-any wheel. A version with no such wheel (locked for another Python) counts 0."""
    tag = "cp" + py.replace(".", "")
    out: dict[str, int] = {}
    for p in tomllib.loads(lock.decode()).get("package", []):
        if p.get("version") not in changed.get(p["name"], []):
            continue
        sizes = []
        for w in p.get("wheels", []):
            fname = w["url"].rsplit("/", 1)[-1]
            parts = fname[:-4].split("-")
            pytag, abi, plat = parts[-3], parts[-2], parts[-1]
            plat_ok = plat == "any" or ("manylinux" in plat and "x86_64" in plat)
            py_ok = tag in pytag.split(".") or "py3" in pytag.split(".") or (
                abi == "abi3" and pytag.startswith("cp3")
                and int(pytag[3:] or 0) <= int(tag[3:]))
            if plat_ok and py_ok and w.get("size"):
                sizes.append(w["size"])
        out[f"{p['name']}=={p['version']}"] = max(sizes, default=0)
    return out


# ---------------------------------------------------------------------------- podman store

class Store:
    """A private podman image store holding copies of the base images.

    Builds, cold-state removals and loads happen here, so they neither see nor touch the
    images of anyone else on the machine. buildah keeps RUN cache mounts outside image
    storage (/var/tmp/buildah-cache), so the uv cache mount stays warm across resets.
    """

    def __init__(self, work: Path, base_refs: list[str], runtime_base: str) -> None:
        info = run(["podman", "info", "--format",
                    "{{.Store.GraphDriverName}}|{{.Store.GraphRoot}}|{{.Store.RunRoot}}"])
        driver, graph, runroot = info.stdout.strip().split("|")
        self.driver = driver
        self.args = ["--root", work / "root", "--runroot", work / "run",
                     "--tmpdir", work / "tmp", "--storage-driver", driver]
        for ref in base_refs:
            run(self.cmd("pull", "-q", f"containers-storage:[{driver}@{graph}+{runroot}]{ref}"))
        self.base_ids = self.image_ids()
        self.runtime_base = runtime_base  # the standard image's final base

    def cmd(self, *args: Any) -> list[Any]:
        return ["podman", *self.args, *args]

    def image_ids(self) -> set[str]:
        return set(run(self.cmd("images", "-a", "-q", "--no-trunc")).stdout.split())

    def remove_images(self, ids: set[str]) -> None:
        if ids:
            run(self.cmd("rmi", "-f", *sorted(ids)), check=False)

    def reset(self) -> None:
        """Remove every image but the bases: built images and all intermediate layers."""
        self.remove_images(self.image_ids() - self.base_ids)
        left = self.image_ids() - self.base_ids
        if left:
            raise Failed(f"podman store: could not remove images {sorted(left)}")

    def inspect_size(self, ref: str) -> int:
        return int(run(self.cmd("image", "inspect", "--format", "{{.Size}}", ref)).stdout)

    def destroy(self) -> None:
        run(self.cmd("rmi", "-a", "-f"), check=False)


def oci_blob(layout: Path, digest: str) -> dict:
    """A JSON blob (manifest, index, config) of an OCI layout."""
    return json.loads((layout / "blobs" / digest.replace(":", "/")).read_text())


def oci_manifest(layout: Path, arch: str = "amd64") -> dict:
    """The image manifest of an OCI layout (the linux/``arch`` one if it holds an index)."""
    desc = json.loads((layout / "index.json").read_text())["manifests"][0]
    doc = oci_blob(layout, desc["digest"])
    while "manifests" in doc:  # an image index: pick our platform
        ms = doc["manifests"]
        pick = [m for m in ms if m.get("platform", {}).get("architecture") in (arch, None)]
        doc = oci_blob(layout, (pick or ms)[0]["digest"])
    return doc


def layout_sizes(layout: Path) -> dict:
    m = oci_manifest(layout)
    layers = [{"mediaType": ly["mediaType"], "size": ly["size"]} for ly in m["layers"]]
    return {"layers": layers, "compressed_layers_bytes": sum(ly["size"] for ly in layers)}


def layout_names(layout: Path) -> list[str]:
    """The paths of every entry of every layer of the OCI layout."""
    names: list[str] = []
    for ly in oci_manifest(layout)["layers"]:
        path = layout / "blobs" / ly["digest"].replace(":", "/")
        with open(path, "rb") as raw:
            if ly["mediaType"].endswith("+zstd"):
                import zstandard

                stream: Any = zstandard.ZstdDecompressor().stream_reader(raw)
                mode = "r|"
            else:
                stream, mode = raw, ("r|gz" if ly["mediaType"].endswith("gzip") else "r|")
            with tarfile.open(fileobj=stream, mode=mode) as tar:
                names += [ti.name for ti in tar]
    return names


def layout_has_file(layout: Path, basename: str) -> bool:
    """Whether any layer of the OCI layout holds a file called ``basename``."""
    return any(n.rsplit("/", 1)[-1] == basename for n in layout_names(layout))


def layout_layers(layout: Path) -> list[dict]:
    """Each layer of the OCI layout: its role (uvship names it in the config's history,
    "uvship: dependencies: ..."; read here, so any number of dependency layers counts),
    digest, compressed size and history line."""
    m = oci_manifest(layout)
    hist = [h for h in oci_blob(layout, m["config"]["digest"]).get("history", [])
            if not h.get("empty_layer")]
    out = []
    for n, ly in enumerate(m["layers"]):
        by = hist[n].get("created_by", "") if n < len(hist) else ""
        out.append({"role": layer_role(by), "digest": ly["digest"], "size": ly["size"],
                    "created_by": by})
    return out


def layer_role(created_by: str) -> str:
    """The role a uvship layer's history line names ("uvship: ROLE: ..."); a CPython
    line is the interpreter's; anything else came with a base."""
    if not created_by.startswith("uvship: "):
        return "base"
    word = created_by[len("uvship: "):].split(":", 1)[0].split(" ", 1)[0]
    return "interpreter" if word == "CPython" else word


def dist_infos(names: list[str]) -> set[str]:
    """"name-version" (normalised: lower case, _ for - and .) of every .dist-info dir."""
    out = set()
    for n in names:
        for part in n.split("/"):
            if part.endswith(".dist-info"):
                out.add(part[: -len(".dist-info")].lower())
    return out


def norm_dist(name: str, version: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower() + "-" + version.lower()


def has_distributions(found: set[str], changed: dict[str, list[str]]) -> bool:
    """Whether every changed distribution is there at one of its new versions."""
    return all(any(norm_dist(n, v) in found for v in vs) for n, vs in changed.items())


# ---------------------------------------------------------------------------- the tools

class Tool:
    """One way of building the project: build() is timed, everything else is not."""

    name = ""

    def __init__(self, work: Path, dep_files: dict[str, Any], spec: Spec | None = None
                 ) -> None:
        self.work = work
        self.spec = spec or PROJECTS["example"]
        self.project = Project(work / self.spec.path.name, dep_files, self.spec.path,
                               self.spec.edited_file)

    def build(self) -> dict: ...
    def go_cold(self, keep_base: bool = False) -> None: ...
    def checkpoint(self) -> None: ...
    def rollback(self) -> None: ...
    def has_change(self, changed: dict[str, list[str]]) -> bool | None: ...
    def size(self) -> dict: ...
    def smoke(self) -> dict: ...
    def push(self, ref: str, insecure: str) -> dict: ...

    def changed(self, scen: str) -> dict[str, list[str]]:
        """The distributions a dependency change installs anew (name -> versions)."""
        return changed_distributions(self.project.original["uv.lock"],
                                     self.project.variants[scen]["uv.lock"])


def standard_dockerfile(spec: Spec) -> str:
    """benchmarks/standard/Dockerfile, its CMD naming the project's console script."""
    text = (STANDARD / "Dockerfile").read_text()
    text, n = re.subn(r'(?m)^CMD \["hello-web"\]$', f'CMD ["{spec.script}"]', text)
    if n != 1:
        raise Failed(f"{STANDARD / 'Dockerfile'}: expected one line CMD [\"hello-web\"]")
    return text


VERSIONS_PY = ("import importlib.metadata as m, sys\n"
               "for n in sys.argv[1:]: print(n, m.version(n))\n")


def versions_ok(out: str, changed: dict[str, list[str]]) -> bool:
    """Whether `python -c VERSIONS_PY NAME...` printed a new version of every name."""
    got = dict(ln.split(" ", 1) for ln in out.splitlines() if " " in ln)
    return all(got.get(n, "").strip() in vs for n, vs in changed.items())


class PodmanTool(Tool):
    name = "podman"

    def __init__(self, work: Path, dep_files: dict[str, Any], store: Store,
                 spec: Spec | None = None) -> None:
        super().__init__(work, dep_files, spec)
        self.store = store
        (self.project.dir / "Dockerfile").write_text(standard_dockerfile(self.spec))
        shutil.copy2(STANDARD / ".dockerignore", self.project.dir / ".dockerignore")
        self.saved: set[str] = set()

    def build(self) -> dict:
        secs, proc = timed(self.store.cmd("build", "--pull=never", "--layers=true",
                                          "-t", PODMAN_TAG, self.project.dir))
        steps = parse_steps(proc.stdout)
        dep = [s for s in steps if "--no-install-project" in s["text"]]
        return sample(secs, proc, steps=len(steps), cached_steps=sum(s["cached"] for s in steps),
                      dependency_layer_cached=dep[0]["cached"] if dep else None)

    def go_cold(self, keep_base: bool = False) -> None:
        # podman keeps its base images either way: they are not built by the build
        self.store.reset()

    def checkpoint(self) -> None:
        self.saved = self.store.image_ids()

    def rollback(self) -> None:
        self.store.remove_images(self.store.image_ids() - self.saved)

    def has_change(self, changed: dict[str, list[str]]) -> bool:
        proc = run(self.store.cmd("run", "--rm", "--network=none", PODMAN_TAG, "python", "-c",
                                  VERSIONS_PY, *changed), check=False)
        return proc.returncode == 0 and versions_ok(proc.stdout, changed)

    def size(self) -> dict:
        out = self.work / "pushed-oci"
        shutil.rmtree(out, ignore_errors=True)
        run(self.store.cmd("push", "-q", PODMAN_TAG, f"oci:{out}"))
        return {"image_bytes": self.store.inspect_size(PODMAN_TAG),
                "how": "podman image inspect {{.Size}}; compressed: podman push oci: (gzip)",
                **layout_sizes(out)}

    def smoke(self) -> dict:
        script = self.spec.script
        proc = run(self.store.cmd("run", "--rm", "--network=none", PODMAN_TAG,
                                  script, "--check"), check=False, timeout=180)
        return {"ok": proc.returncode == 0 and f"{script} ok" in proc.stdout,
                "output": proc.stdout.strip()[-500:]}

    def push(self, ref: str, insecure: str) -> dict:
        secs, proc = timed(self.store.cmd("push", "--tls-verify=false", PODMAN_TAG,
                                          f"docker://{ref}"))
        return sample(secs, proc, how="podman push --tls-verify=false")


class BuildKitTool(Tool):
    """Docker Engine's BuildKit building the same Dockerfile (DOCKER_BUILDKIT=1, the
    built-in frontend). "Cold" removes the image and BuildKit's layer cache but keeps its
    cache mounts (the uv cache), as podman keeps buildah's."""

    name = "buildkit"

    def __init__(self, work: Path, dep_files: dict[str, Any], spec: Spec | None = None
                 ) -> None:
        super().__init__(work, dep_files, spec)
        (self.project.dir / "Dockerfile").write_text(standard_dockerfile(self.spec))
        shutil.copy2(STANDARD / ".dockerignore", self.project.dir / ".dockerignore")
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        # a tag of this run: Docker's image names are shared with everyone on the machine
        self.tag = f"{BUILDKIT_TAG}-{os.getpid()}"

    def build(self) -> dict:
        ensure_docker_engine()
        secs, proc = timed([DOCKER, "build", "--progress=plain", "-t", self.tag,
                            self.project.dir], env=self.env)
        retried = proc.returncode != 0 and not docker_answers()
        if retried:  # the engine was stopped under the build: start it, build again
            ensure_docker_engine()
            secs, proc = timed([DOCKER, "build", "--progress=plain", "-t", self.tag,
                                self.project.dir], env=self.env)
        steps = parse_buildkit_steps(proc.stdout)
        dep = [s for s in steps if "--no-install-project" in s["text"]]
        extra = {"retried_after_engine_stop": True} if retried else {}
        return sample(secs, proc, steps=len(steps), cached_steps=sum(s["cached"] for s in steps),
                      dependency_layer_cached=dep[0]["cached"] if dep else None, **extra)

    def go_cold(self, keep_base: bool = False) -> None:
        ensure_docker_engine()
        run([DOCKER, "rmi", "-f", self.tag], check=False)
        run([DOCKER, "builder", "prune", "-af", "--filter", "type=regular"], check=False)

    def checkpoint(self) -> None:
        pass

    def rollback(self) -> None:
        # forget the dependency: the next repeat must build that layer again
        self.go_cold()
        self.project.restore()
        self.build()

    def has_change(self, changed: dict[str, list[str]]) -> bool:
        proc = run([DOCKER, "run", "--rm", "--network=none", self.tag, "python", "-c",
                    VERSIONS_PY, *changed], check=False)
        return proc.returncode == 0 and versions_ok(proc.stdout, changed)

    def size(self) -> dict:
        size = int(run([DOCKER, "image", "inspect", "--format", "{{.Size}}",
                        self.tag]).stdout)
        return {"image_bytes": size, "how": "docker image inspect {{.Size}}"}

    def smoke(self) -> dict:
        script = self.spec.script
        proc = run([DOCKER, "run", "--rm", "--network=none", self.tag, script,
                    "--check"], check=False, timeout=180)
        return {"ok": proc.returncode == 0 and f"{script} ok" in proc.stdout,
                "output": proc.stdout.strip()[-500:]}

    def push(self, ref: str, insecure: str) -> dict:
        # Docker reaches a registry on 127.0.0.0/8 over plain HTTP without configuration
        ensure_docker_engine()
        run([DOCKER, "tag", self.tag, ref])
        secs, proc = timed([DOCKER, "push", ref])
        run([DOCKER, "rmi", ref], check=False)  # only the tag: the image keeps self.tag
        return sample(secs, proc, how="docker tag + docker push")

    def remove(self) -> None:
        run([DOCKER, "rmi", "-f", self.tag], check=False)


def docker_answers() -> bool:
    return run([DOCKER, "version", "--format", "{{.Server.Version}}"], check=False,
               timeout=60).returncode == 0


def ensure_docker_engine(tries: int = 4) -> None:
    """Start the Docker Engine again if someone stopped it (test suites on this machine
    start and stop it; a start racing their stop can time out, so try a few times;
    untimed)."""
    for n in range(tries):
        if docker_answers():
            return
        log("  (the Docker Engine was not answering: scripts/docker-engine start)")
        proc = run([ROOT / "scripts" / "docker-engine", "start"], check=n == tries - 1)
        if proc.returncode != 0:
            time.sleep(5)


def parse_buildkit_steps(output: str) -> list[dict]:
    """BuildKit's plain-progress steps (#N [stage k/n] TEXT, then #N CACHED)."""
    steps: dict[str, dict] = {}
    for line in output.splitlines():
        m = re.match(r"^#(\d+) \[[^\]]*\d+/\d+\] (.*)$", line)
        if m and not m[2].startswith("FROM "):
            steps.setdefault(m[1], {"text": " ".join(m[2].split()), "cached": False})
        elif (m := re.match(r"^#(\d+) CACHED$", line)) and m[1] in steps:
            steps[m[1]]["cached"] = True
    return list(steps.values())


STEP_RE = re.compile(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+: (.*)$")


def parse_steps(output: str) -> list[dict]:
    """buildah's steps (FROM excluded) and whether each was taken from the layer cache."""
    steps: list[dict] = []
    for line in output.splitlines():
        m = STEP_RE.match(line)
        if m:
            steps.append({"text": m.group(1), "cached": False})
        elif line.startswith("--> Using cache") and steps:
            steps[-1]["cached"] = True
    return [s for s in steps if not s["text"].startswith("FROM ")]


def reset_uvship_cache(cache: Path, keep_base: bool = False,
                       keep_distributions: bool = False) -> None:
    """Empty a uvship cache. With keep_base, keep what depends only on the Python and the
    host - the prepared interpreter and its interpreter and runtime layers, the analogue of
    the base image podman keeps - and nothing of the project (uvship.cache decides what
    that is: it alone knows the cache's layout). With keep_distributions as well, keep
    what depends only on single distributions (their bytecode, ELF facts and layers), as
    a machine that built another project with them has it."""
    if keep_base and keep_distributions:
        uvship_cache.prune_to_distributions(cache)
    elif keep_base:
        uvship_cache.prune_to_host(cache)
    else:
        shutil.rmtree(cache, ignore_errors=True)


class UvshipTool(Tool):
    """uvship with a cache of its own ($UVSHIP_CACHE_DIR); the uv cache is the user's, warm."""

    def __init__(self, work: Path, dep_files: dict[str, Any], uvship: str,
                 env: dict[str, str], spec: Spec | None = None) -> None:
        super().__init__(work, dep_files, spec)
        self.uvship = uvship
        self.cache = work / "uvship-cache"
        self.snapshot = work / "uvship-cache-snapshot"
        self.env = {**env, "UVSHIP_CACHE_DIR": str(self.cache)}
        self.serial = 0
        self.output = self.new_output()

    def new_output(self) -> Path:
        self.serial += 1
        (self.work / "out").mkdir(exist_ok=True)
        return self.work / "out" / f"{self.serial}"

    def go_cold(self, keep_base: bool = False, keep_distributions: bool = False) -> None:
        """Forget every build (see reset_uvship_cache)."""
        reset_uvship_cache(self.cache, keep_base, keep_distributions)
        shutil.rmtree(self.work / "out", ignore_errors=True)
        self.output = self.new_output()

    def checkpoint(self) -> None:
        shutil.rmtree(self.snapshot, ignore_errors=True)
        if self.cache.exists():
            shutil.copytree(self.cache, self.snapshot, symlinks=True)

    def rollback(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)
        if self.snapshot.exists():
            shutil.copytree(self.snapshot, self.cache, symlinks=True)


class BundleTool(UvshipTool):
    name = "bundle"

    def __init__(self, *a: Any, store: Store | None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.store = store

    def new_output(self) -> Path:
        return super().new_output().with_suffix(".tar.gz")

    def build(self) -> dict:
        secs, proc = timed([self.uvship, "bundle", self.project.dir, "-o", self.output],
                           env=self.env)
        return sample(secs, proc)

    def has_change(self, changed: dict[str, list[str]]) -> bool:
        with tarfile.open(self.output) as tar:
            return has_distributions(dist_infos(tar.getnames()), changed)

    def size(self) -> dict:
        return {"bundle_targz_bytes": self.output.stat().st_size,
                "how": "size of the .tar.gz (venv + interpreter; no OS, not an image)"}

    def smoke(self) -> dict:
        """Unpack the bundle at / in the standard's base image and run the self-check."""
        if not self.store:
            return {"ok": None, "output": "no podman store"}
        script = self.spec.script
        proc = run(self.store.cmd(
            "run", "--rm", "--network=none", "-v", f"{self.output}:/bundle.tar.gz:ro",
            self.store.runtime_base, "sh", "-c",
            f"tar -xzf /bundle.tar.gz -C / && /app/.venv/bin/{script} --check"),
            check=False, timeout=180)
        return {"ok": proc.returncode == 0 and f"{script} ok" in proc.stdout,
                "how": "unpacked at / in the standard's base image",
                "output": proc.stdout.strip()[-500:]}


class BuildTool(UvshipTool):
    name = "build"

    def __init__(self, *a: Any, store: Store | None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.store = store
        self.loaded: str | None = None
        self.layers_before: list[dict] = []

    def build(self) -> dict:
        secs, proc = timed([self.uvship, "build", self.project.dir, "--output",
                            f"oci:{self.output}", "--tag", UVSHIP_TAG], env=self.env)
        return sample(secs, proc, output="oci")

    def checkpoint(self) -> None:
        super().checkpoint()
        self.layers_before = layout_layers(self.output)

    def changed_layers(self) -> dict:
        """The layers of the current output that were not in it at the checkpoint, by role,
        and the layer count by role (read from the layout: any number of each role)."""
        now = layout_layers(self.output)
        old = {ly["digest"] for ly in self.layers_before}
        new = [ly for ly in now if ly["digest"] not in old]
        roles: dict[str, int] = {}
        for ly in now:
            roles[ly["role"]] = roles.get(ly["role"], 0) + 1
        return {"layers_by_role": roles,
                "new_layers": [{k: ly[k] for k in ("role", "size", "created_by")} for ly in new],
                "new_layers_bytes": sum(ly["size"] for ly in new)}

    def has_change(self, changed: dict[str, list[str]]) -> bool:
        return has_distributions(dist_infos(layout_names(self.output)), changed)

    def build_to(self, kind: str) -> dict:
        """The image straight into a local engine (docker-daemon or containers-storage)."""
        secs, proc = timed([self.uvship, "build", self.project.dir, "--output",
                            f"{kind}:{ENGINE_TAG}"], env=self.env)
        return sample(secs, proc, output=kind)

    def push(self, ref: str, insecure: str) -> dict:
        """`uvship build --push` (an untimed no-change rebuild, then the push)."""
        secs, proc = timed([self.uvship, "build", self.project.dir, "--push", ref,
                            "--insecure-registry", insecure], env=self.env)
        return sample(secs, proc, how="uvship build --push (a no-change rebuild + the push)")

    def size(self) -> dict:
        res: dict[str, Any] = {"how": "compressed: sum of the OCI layout's layer sizes; "
                               "image_bytes: podman image inspect {{.Size}} after podman load "
                               "of --output docker-archive:"}
        res.update(layout_sizes(self.output))
        res["layer_roles"] = [ly["role"] for ly in layout_layers(self.output)]
        archive = self.work / "image.docker.tar"
        secs, proc = timed([self.uvship, "build", self.project.dir, "--output",
                            f"docker-archive:{archive}", "--tag", UVSHIP_TAG], env=self.env)
        res["docker_archive"] = sample(secs, proc)
        if proc.returncode == 0:
            res["docker_archive_bytes"] = archive.stat().st_size
            if self.store:
                secs, proc = timed(self.store.cmd("load", "-q", "-i", archive))
                res["podman_load"] = sample(secs, proc, output=proc.stdout.strip()[-300:])
                if proc.returncode == 0:
                    m = re.search(r"Loaded image(?:\(s\))?: (\S+)", proc.stdout)
                    self.loaded = m.group(1).split(",")[0] if m else UVSHIP_TAG
                    res["image_bytes"] = self.store.inspect_size(self.loaded)
            archive.unlink(missing_ok=True)
        return res

    def smoke(self) -> dict:
        if not (self.store and self.loaded):
            return {"ok": None, "output": "image not loaded"}
        return smoke_uvship_image(self.store, self.loaded, script=self.spec.script)


def smoke_uvship_image(store: Store, img: str, *run_opts: str, timeout: float = 180,
                       script: str = "hello-web") -> dict:
    """Run a uvship image's self-check; the entrypoint layout is uvship's to choose."""
    py, path = "/app/.venv/bin/python", f"/app/.venv/bin/{script}"
    tries = [[img, "--check"], [img, script, "--check"],
             ["--entrypoint", py, img, path, "--check"]]
    out = ""
    for args in tries:
        proc = run(store.cmd("run", "--rm", "--network=none", *run_opts, *args),
                   check=False, timeout=timeout)
        if proc.returncode == 0 and f"{script} ok" in proc.stdout:
            return {"ok": True, "how": " ".join(args), "output": proc.stdout.strip()[-500:]}
        out = proc.stdout.strip()[-500:]
    return {"ok": False, "output": out}


def uvship_has_build(uvship: str) -> tuple[bool, str]:
    proc = run([uvship, "build", "--help"], check=False, timeout=60)
    if proc.returncode == 0:
        return True, ""
    return False, f"`uvship build --help` exited {proc.returncode}: the command does not exist yet"


# ---------------------------------------------------------------------------- the run

def machine_info(uv: str, uvship: str) -> dict:
    def out(cmd: list[str]) -> str:
        try:
            return run(cmd, check=False, timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable ({exc})"

    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                    if ln.startswith("model name")), "")
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(next(ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal")))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    src = uvship_source(uvship)
    commit = out(["git", "-C", str(src), "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "-C", str(src), "status", "--porcelain", "--", "."])
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": int(out(["nproc"]) or 0),
        "cpu": cpu, "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uv": out([uv, "--version"]),
        "podman": out(["podman", "version", "--format", "{{.Client.Version}}"]),
        "buildah": out(["buildah", "--version"]),
        "runc": out(["runc", "--version"]).splitlines()[0] if shutil.which("runc") else "",
        "docker": out([DOCKER, "version", "--format", "{{.Server.Version}}"]),
        "uvship": out([uvship, "--version"]),
        "uvship_commit": commit + ("+dirty src" if dirty else ""),
        "uvship_source": str(src),
        "loadavg_start": list(os.getloadavg()),
    }


def uvship_source(uvship: str) -> Path:
    """The directory the measured uvship imports its package from (PYTHONPATH, an editable
    install...), asked of the Python in the command's #! line; else this checkout's src."""
    try:
        first = Path(shutil.which(uvship) or uvship).read_text(errors="replace").split("\n")[0]
        python = first[2:].strip().split()[0] if first.startswith("#!") else sys.executable
        proc = run([python, "-c", "import uvship, os; print(os.path.dirname(uvship.__file__))"],
                   check=False, timeout=60)
        if proc.returncode == 0:
            return Path(proc.stdout.strip().splitlines()[-1])
    except (OSError, IndexError, subprocess.TimeoutExpired):
        pass
    return ROOT / "src"


def base_images() -> tuple[list[str], str]:
    """The images the standard Dockerfile starts from or copies from, and its final base."""
    text = (STANDARD / "Dockerfile").read_text()
    stages = set(re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", text))
    froms = re.findall(r"(?im)^FROM\s+(\S+)", text)
    refs = froms + re.findall(r"--from=(\S+)", text)
    return sorted({r for r in refs if r not in stages}), froms[-1]


def summarize(samples: list[dict]) -> dict:
    ok = [s["seconds"] for s in samples if s["ok"]]
    res: dict[str, Any] = {"samples": samples, "ok": len(ok) == len(samples)}
    if ok:
        res.update(median=round(statistics.median(ok), 4), min=min(ok), max=max(ok))
    return res


def rotated(tools: list[Any], i: int) -> list[Any]:
    """The tools in repeat ``i``'s order: rotated, so no tool always runs first (or right
    after another)."""
    return tools[i % len(tools):] + tools[: i % len(tools)]


def record(results: dict, tool: Any, scen: str, i: int, repeat: int, s: dict) -> None:
    """Keep one timed run and log it."""
    results[tool.name]["scenarios"].setdefault(scen, []).append(s)
    extra = ""
    if "steps" in s:
        extra = f" ({s['cached_steps']}/{s['steps']} steps cached)"
    status = "" if s["ok"] else f"  FAILED (exit {s.get('exit_code')})"
    log(f"  [{tool.name:6}] {scen:8} {i + 1}/{repeat}: {s['seconds']:7.2f} s{extra}{status}")
    if not s["ok"]:
        log("    " + s.get("output_tail", "").strip().replace("\n", "\n    ")[-1500:])


def measure_rebuilds(tools: list[Any], repeat: int, results: dict) -> None:
    """The scenarios every benchmark here measures: cold_empty, cold (base kept),
    nochange, edit; each repeat runs every tool once, in rotated order."""
    log("scenario: cold build, warm uv cache, empty uvship cache")
    for i in range(repeat):
        for t in rotated(tools, i):
            t.go_cold()
            record(results, t, "cold_empty", i, repeat, t.build())

    log("scenario: cold build, warm uv cache, base kept")
    for i in range(repeat):
        for t in rotated(tools, i):
            t.go_cold(keep_base=True)
            record(results, t, "cold", i, repeat, t.build())

    # uvship only: BuildKit and podman keep nothing per distribution but uv's cache, so
    # their build here would be their "cold" again (the report compares with that)
    shared = [t for t in tools if isinstance(t, UvshipTool)]
    if shared:
        log("scenario: cold build of a project whose distributions were built before")
    for i in range(repeat):
        for t in rotated(shared, i):
            t.go_cold(keep_base=True, keep_distributions=True)
            record(results, t, "cold_shared", i, repeat, t.build())

    log("scenario: no-change rebuild")
    for i in range(repeat):
        for t in rotated(tools, i):
            record(results, t, "nochange", i, repeat, t.build())

    log(f"scenario: one source file edited ({tools[0].project.edited_file if tools else ''}, "
        "a new line each time)")
    for i in range(repeat):
        for t in rotated(tools, i):
            t.project.edit()
            record(results, t, "edit", i, repeat, t.build())


def measure_engines(tools: list[Any], repeat: int, results: dict) -> None:
    """An edit, then the image runnable in the local engine: a Dockerfile build puts it
    there itself (podman into its store, BuildKit into Docker's); uvship build sends it
    with -o containers-storage: and -o docker-daemon: (warmed once, untimed)."""
    engine_of = {"podman": "edit_podman", "buildkit": "edit_docker"}
    kinds = {"edit_podman": "containers-storage", "edit_docker": "docker-daemon"}
    for scen, kind in kinds.items():
        takers = [t for t in tools if engine_of.get(t.name) == scen or t.name == "build"]
        if not any(t.name == "build" for t in takers) or len(takers) < 2:
            continue
        log(f"scenario: {SCENARIOS[scen]}")
        for t in takers:  # the engine holds the current image before the first edit
            if t.name == "build":
                t.build_to(kind)
        for i in range(repeat):
            for t in rotated(takers, i):
                t.project.edit()
                s = t.build_to(kind) if t.name == "build" else t.build()
                record(results, t, scen, i, repeat, s)


def measure(tools: list[Tool], repeat: int, results: dict,
            registry: Any | None = None) -> None:
    changes = [c for c in CHANGES if c in tools[0].project.variants]
    log("warm-up (untimed): a build of the project as it is and one per dependency change "
        f"({', '.join(changes)}), so uv's caches hold every wheel")
    for t in tools:
        for change in (None, *changes):
            if change:
                t.project.change(change)
            s = t.build()
            t.project.restore()
            if not s["ok"]:
                raise Failed(f"{t.name}: warm-up build ({change or 'as is'}) failed:\n"
                             f"{s.get('output_tail', '')}")

    measure_rebuilds(tools, repeat, results)
    measure_engines(tools, repeat, results)
    for t in tools:
        t.project.restore()
        t.build()

    for scen in changes:
        measure_change(tools, scen, repeat, results, registry)

    log("image size and a run of each output (the project as it is)")
    for t in tools:
        t.build()
        results[t.name]["size"] = t.size()
        results[t.name]["smoke"] = t.smoke()


PUSHERS = ("build", "buildkit", "podman")


def measure_change(tools: list[Tool], scen: str, repeat: int, results: dict,
                   registry: Any | None) -> None:
    """A dependency change (pyproject.toml and uv.lock replaced by a pre-made variant):
    each run rebuilds with it, then the files are restored and the tool's cache rolled
    back, so every run really makes the change. Around the first run each image is pushed
    to the local registry, before and after, to count the bytes the change uploads."""
    log(f"scenario: {SCENARIOS[scen]}")
    changed = tools[0].changed(scen)
    pushers = [t for t in tools if registry and t.name in PUSHERS]
    for t in tools:
        # the unchanged project's image again (untimed): the previous change's rollback
        # removed podman's tagged image, and uvship's output holds that change's image
        t.project.restore()
        t.build()
        t.checkpoint()
    first = {}
    for t in pushers:  # the image as it is, in a repository of its own
        first[t.name] = push_and_count(registry, t, f"{t.name}-{scen.replace('_', '-')}")
        log(f"  [{t.name:6}] push before the change: {fmt_mb(first[t.name].get('bytes'))}")
    for i in range(repeat):
        for t in rotated(tools, i):
            t.project.change(scen)
            s = t.build()
            if i == 0 and s["ok"]:
                s["change_in_output"] = t.has_change(changed)
                if isinstance(t, BuildTool):
                    s.update(t.changed_layers())
                if t in pushers:
                    second = push_and_count(registry, t, f"{t.name}-{scen.replace('_', '-')}")
                    s["push"] = {"before": first[t.name], "after": second}
                    log(f"  [{t.name:6}] push after the change: "
                        f"{second.get('bytes', 0) / 1e3:.1f} kB in {second.get('blobs')} blob(s)")
            record(results, t, scen, i, repeat, s)
            t.project.restore()
            t.rollback()  # forget the change, so the next repeat makes it again


def push_and_count(registry: Any, tool: Tool, repo: str) -> dict:
    """Push the tool's current image to ``repo`` and count what the registry stored."""
    ref = f"{registry.host}/{repo}:latest"
    mark = registry.mark()
    s = tool.push(ref, registry.host)
    time.sleep(0.2)  # the access log line of the last request
    s.update(uploaded(registry, repo, mark))
    with contextlib.suppress(Exception):
        s["image_compressed_bytes"] = pushed_image_bytes(registry, repo)
    return s


def uploaded(registry: Any, repo: str, mark: int) -> dict:
    """The blobs the registry stored for ``repo`` since ``mark`` (PUTs that completed an
    upload, from its access log) and their sizes in its storage: the bytes uploaded."""
    total, blobs = 0, 0
    for r in registry.requests(since=mark):
        if r.method == "PUT" and r.status == 201 and f"/v2/{repo}/blobs/uploads/" in r.uri:
            m = re.search(r"digest=sha256(?:%3A|:)([0-9a-f]{64})", r.uri)
            if m:
                blobs += 1
                total += (registry.root / "storage/docker/registry/v2/blobs/sha256" /
                          m[1][:2] / m[1] / "data").stat().st_size
    return {"bytes": total, "blobs": blobs}


MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json"])


def pushed_image_bytes(registry: Any, repo: str) -> int:
    """The compressed size of the pushed image: its manifest's layer sizes (the amd64 one
    of an index)."""
    import urllib.request

    def get(ref: str) -> dict:
        req = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/{ref}",
                                     headers={"Accept": MANIFEST_TYPES})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    doc = get("latest")
    while "manifests" in doc:
        ms = doc["manifests"]
        pick = [m for m in ms if m.get("platform", {}).get("architecture") == "amd64"]
        doc = get((pick or ms)[0]["digest"])
    return sum(ly["size"] for ly in doc["layers"])


def ratios(results: dict) -> dict:
    """Speed-ups (other engine's median / uvship's) and size fractions (uvship / other),
    of `uvship build` and `uvship bundle` against podman and against BuildKit."""
    out: dict[str, dict] = {}
    for name in ("build", "bundle"):
        r = results.get(name, {})
        if not r.get("available"):
            continue
        out[name] = {}
        for ref in ("podman", "buildkit"):
            o = results.get(ref, {})
            if not o.get("available"):
                continue
            for scen in SCENARIOS:
                a = o["scenarios"].get(scen, {}).get("median")
                b = r["scenarios"].get(scen, {}).get("median")
                if a and b:
                    out[name][f"{scen}_speedup_{ref}"] = round(a / b, 2)
            ob, ub = o.get("size", {}).get("image_bytes"), r.get("size", {}).get("image_bytes")
            if ob and ub:
                out[name][f"size_fraction_{ref}"] = round(ub / ob, 3)
        pc = results.get("podman", {}).get("size", {}).get("compressed_layers_bytes")
        uc = r.get("size", {}).get("compressed_layers_bytes")
        if pc and uc:
            out[name]["compressed_size_fraction_podman"] = round(uc / pc, 3)
    return out


def buildah_version(machine: dict) -> str:
    words = machine.get("buildah", "").split()  # "buildah version 1.28.2 (image-spec ...)"
    return words[2] if len(words) > 2 else "?"


def observations(results: dict) -> list[str]:
    """Odd things seen in this run, worth a line in the table's notes."""
    notes = []
    for scen in CHANGES:
        dep = results.get("podman", {}).get("scenarios", {}).get(scen, {}).get("samples", [])
        reused = [s for s in dep if s.get("dependency_layer_cached")]
        if not reused:
            continue
        seen = dep[0].get("change_in_output")
        notes.append(
            f"podman, {SCENARIOS[scen]}: in {len(reused)} of {len(dep)} builds buildah took "
            "the dependency layer (`RUN --mount=type=bind,source=uv.lock ... uv sync "
            "--no-install-project`) from its cache although uv.lock had changed: buildah "
            f"{buildah_version(results['_machine'])} leaves bind-mount "
            "contents out of the cache key. "
            + ("The change still reached the image, installed by the project layer's "
               "`uv sync`, so the image is right but its layering is not, and this row "
               "is faster than a correct rebuild of the dependency layer would be."
               if seen else "The change is NOT in the resulting image."))
    for name, r in results.items():
        if name.startswith("_") or not r.get("available"):
            continue
        for scen, sc in r.get("scenarios", {}).items():
            bad = failed_runs_note(f"{LABELS[name]}, {SCENARIOS[scen]}", sc)
            if bad:
                notes.append(bad)
            first = sc.get("samples", [{}])[0]
            if first.get("change_in_output") is False:
                notes.append(f"{LABELS[name]}, {SCENARIOS[scen]}: the new versions are "
                             "missing from the output.")
        if r.get("smoke", {}).get("ok") is False:
            notes.append(f"{LABELS[name]}: the built image did not pass its `--check`.")
    busy = busy_note(results["_machine"])
    if busy:
        notes.append(busy)
    return notes


def failed_runs_note(what: str, sc: dict) -> str | None:
    """A note on the failed runs of one cell (a summarize() result), if any failed."""
    bad = [s for s in sc.get("samples", []) if not s["ok"]]
    if not bad:
        return None
    return (f"{what}: {len(bad)} of {len(sc['samples'])} runs failed (exit "
            f"{bad[0].get('exit_code')}); see output_tail in the JSON.")


def busy_note(machine: dict) -> str | None:
    """A note when other processes used more than a quarter of a core during the run."""
    others = machine.get("other_cpu_cores")
    if others is None or others <= 0.25:
        return None
    return (f"the machine was not quiet: other processes used about {others:.2f} of "
            f"its {machine.get('nproc')} cores on average during the run, so timings are "
            "noisier than on a quiet machine.")


def cpu_busy_seconds() -> float | None:
    """CPU time the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and the commands it ran (and waited for)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------------------- the report

def fmt_s(x: float | None) -> str:
    return "—" if x is None else (f"{x:.2f} s" if x >= 0.1 else f"{x * 1000:.0f} ms")


def fmt_mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.1f} MB"


def cell(r: dict, scen: str) -> str:
    if not r:
        return "not run"
    if not r.get("available"):
        return "not available"
    sc = r["scenarios"].get(scen)
    if not sc:
        return "—"  # not a scenario of this tool
    if "median" not in sc:
        return "failed"
    return fmt_s(sc["median"]) + ("" if sc["ok"] else " (some runs failed)")


def speedup(res: dict, name: str, scen: str, ref: str | None = None) -> str:
    v = res["ratios"].get(name, {}).get(f"{scen}_speedup" + (f"_{ref}" if ref else ""))
    return "—" if v is None else f"{v:.1f}x"


def size_cell(r: dict, name: str) -> str:
    if not r:
        return "not run"
    if not r.get("available"):
        return "not available"
    s = r.get("size", {})
    if name == "bundle":
        return f"{fmt_mb(s.get('bundle_targz_bytes'))} .tar.gz (no OS; not an image)"
    img = s.get("image_bytes")
    comp = s.get("compressed_layers_bytes")
    return f"{fmt_mb(img)} ({fmt_mb(comp)} compressed layers)"


# ---------------------------------------------------------------------------- issue 15's table

def med(res: dict, tool: str, scen: str) -> float | None:
    return res["tools"].get(tool, {}).get("scenarios", {}).get(scen, {}).get("median")


def ratio_cell(a: float | None, b: float | None) -> str:
    return "—" if not (a and b) else f"{a / b:.1f}x"


def push_of(res: dict, tool: str, scen: str) -> dict | None:
    """The pushes around a dependency change's first run: {"before", "after"}."""
    samples = res["tools"].get(tool, {}).get("scenarios", {}).get(scen, {}).get("samples", [])
    return samples[0].get("push") if samples else None


def pushed_cell(p: dict | None) -> str:
    if not p or "bytes" not in p.get("after", {}):
        return "—"
    a = p["after"]
    img = a.get("image_compressed_bytes")
    share = f", {a['bytes'] / img:.1%} of {fmt_mb(img)}" if img else ""
    return f"{fmt_kb(a['bytes'])} pushed ({a['blobs']} blobs{share})"


def fmt_kb(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1e3:.1f} kB" if n < 1e6 else fmt_mb(n)


def issue_rows(res: dict) -> list[dict]:
    """Every row of issue 15's table for one project: uvship build, BuildKit and podman
    side by side, uvship's ratios, the target and whether it is met."""
    rows = []

    def timing(title: str, u: str, bk: str, pd: str, max_s: float | None, min_x: float,
               ukey: str | None = None) -> None:
        ut = med(res, "build", u)
        bt, pt = med(res, "buildkit", bk), med(res, "podman", pd)
        want = ([f"<= {max_s:g} s"] if max_s else []) + [f">= {min_x:g}x faster than BuildKit"]
        if ut is None or bt is None:
            ok = None
        else:
            ok = bt / ut >= min_x and (max_s is None or ut <= max_s)
        rows.append({"key": ukey or u, "scenario": title, "uvship": fmt_s(ut),
                     "buildkit": fmt_s(bt), "podman": fmt_s(pt),
                     "vs_buildkit": ratio_cell(bt, ut), "vs_podman": ratio_cell(pt, ut),
                     "target": " and ".join(want), "met": ok,
                     "seconds": {"uvship": ut, "buildkit": bt, "podman": pt}})

    timing("no-change rebuild", "nochange", "nochange", "nochange", 0.1, 5)
    timing("one source file edited", "edit", "edit", "edit", 0.2, 7)
    timing("edit, then runnable in Docker (uvship -o docker-daemon:)", "edit_docker",
           "edit_docker", "edit_podman", None, 3)
    timing("edit, then runnable in podman (uvship -o containers-storage:)", "edit_podman",
           "edit_docker", "edit_podman", None, 3)
    timing("cold build, warm uv cache, interpreter and runtime kept", "cold", "cold", "cold",
           None, 3)
    timing("cold build of a project whose distributions this machine built before (uvship "
           "keeps their bytecode and layers; BuildKit and podman: their cold build above, "
           "they keep nothing per distribution but uv's cache)", "cold_shared", "cold", "cold",
           None, 3, ukey="cold_shared")
    for scen in CHANGES:
        if scen not in res.get("changes", {}):
            continue
        timing(title_of(res, scen) + ": rebuild", scen, scen, scen, None, 5)
        ch = res["changes"][scen]
        up = push_of(res, "build", scen)
        limit = ok = None
        if up and "bytes" in up.get("after", {}) and up["after"].get("image_compressed_bytes"):
            limit = ch["wheel_bytes_cp312"] + 0.01 * up["after"]["image_compressed_bytes"]
            ok = up["after"]["bytes"] <= limit
        rows.append({"key": f"{scen}_push", "scenario": title_of(res, scen)
                     + f": bytes pushed (changed wheels {fmt_kb(ch['wheel_bytes_cp312'])}"
                     f" cp312 / {fmt_kb(ch['wheel_bytes_cp311'])} cp311)",
                     "uvship": pushed_cell(up),
                     "buildkit": pushed_cell(push_of(res, "buildkit", scen)),
                     "podman": pushed_cell(push_of(res, "podman", scen)),
                     "vs_buildkit": "—", "vs_podman": "—",
                     "target": "<= the changed wheels + 1% of the image"
                     + (f" ({fmt_kb(int(limit))})" if limit else ""), "met": ok})
    sizes = {t: res["tools"].get(t, {}).get("size", {}) for t in ("build", "buildkit", "podman")}
    ub, bb, pb = (sizes[t].get("image_bytes") for t in ("build", "buildkit", "podman"))
    frac = ub / bb if ub and bb else None
    rows.append({"key": "size", "scenario": "image size (uncompressed, as the engine reports)",
                 "uvship": fmt_mb(ub), "buildkit": fmt_mb(bb), "podman": fmt_mb(pb),
                 "vs_buildkit": "—" if frac is None else f"{frac:.0%}",
                 "vs_podman": "—" if not (ub and pb) else f"{ub / pb:.0%}",
                 "target": "<= 40% of BuildKit's image",
                 "met": None if frac is None else frac <= TARGETS["size"]["max_fraction"]})
    return rows


def title_of(res: dict, scen: str) -> str:
    """A scenario's title as the run that made ``res`` named it."""
    return res.get("titles", {}).get(scen) or SCENARIOS[scen]


def issue_table(res: dict) -> list[str]:
    out = ["| scenario | uvship build | BuildKit | podman build | uvship vs BuildKit | "
           "uvship vs podman | target | met |", "|" + "---|" * 8]
    for r in issue_rows(res):
        met = {True: "met", False: "missed", None: "not measured"}[r["met"]]
        out.append(f"| {r['scenario']} | {r['uvship']} | {r['buildkit']} | {r['podman']} | "
                   f"{r['vs_buildkit']} | {r['vs_podman']} | {r['target']} | {met} |")
    return out


def render_md(res: dict) -> str:
    m = res["machine"]
    tools = res["tools"]
    hdr = ("| scenario | podman build | BuildKit | uvship build | speed-up vs podman | "
           "speed-up vs BuildKit | uvship bundle |")
    rows = [hdr, "|" + "---|" * 7]
    for scen in SCENARIOS:
        if not any(scen in r.get("scenarios", {}) for r in tools.values()):
            continue
        rows.append(f"| {title_of(res, scen)} | {cell(tools.get('podman', {}), scen)} | "
                    f"{cell(tools.get('buildkit', {}), scen)} | "
                    f"{cell(tools.get('build', {}), scen)} | "
                    f"{speedup(res, 'build', scen, 'podman')} | "
                    f"{speedup(res, 'build', scen, 'buildkit')} | "
                    f"{cell(tools.get('bundle', {}), scen)} |")
    rat = res["ratios"].get("build", {})

    def frac(ref: str) -> str:
        f = rat.get(f"size_fraction_{ref}")
        return "—" if f is None else f"{f:.0%} of {ref}'s"

    rows.append(f"| final image size | {size_cell(tools.get('podman', {}), 'podman')} | "
                f"{size_cell(tools.get('buildkit', {}), 'buildkit')} | "
                f"{size_cell(tools.get('build', {}), 'build')} | {frac('podman')} | "
                f"{frac('buildkit')} | {size_cell(tools.get('bundle', {}), 'bundle')} |")
    st = res["settings"]
    out = [
        f"# uvship benchmark — {st.get('project', 'example')} — {m['date']}",
        "",
        f"{st.get('project_path', 'examples/hello-web')}; {st['repeat']} run(s) per cell, "
        "median shown; "
        f"total runtime {res['duration_seconds'] / 60:.1f} min. Machine: {m['nproc']} cores "
        f"({m['cpu']}), {m['memory']}, Linux {m['kernel']}; podman {m['podman']} (buildah "
        f"{buildah_version(m)}, {m['runc']}), Docker Engine {m.get('docker', '?')} "
        f"(BuildKit built in), {m['uv'].split(' (')[0]}, "
        f"uvship {m['uvship'].split()[-1]} at {m['uvship_commit']}; other processes used "
        f"{m.get('other_cpu_cores', '?')} cores on average during the run. "
        "How: benchmarks/README.md.",
        "",
        "Issue 15's table (`uvship build` against BuildKit and podman; speed-ups are the "
        "other's median / uvship's):",
        "",
        *issue_table(res),
        "",
        "Every tool and scenario:",
        "",
        *rows,
        "",
        *changes_md(res),
        "Notes:",
        "",
        "- The standard image is built on the Debian base's Python 3.11 (`UV_PYTHON=python3.11` "
        "in benchmarks/standard/Dockerfile: the build cannot download the 3.12 that "
        ".python-version asks for); uvship uses the uv-managed CPython 3.12 from this "
        "machine's offline download list.",
        "- uvship times stop when its output is written (OCI layout for `build`, .tar.gz for "
        "`bundle`, the engine's store for the two \"then runnable\" rows); podman's and "
        "BuildKit's when the image is in their engine's store.",
        *[f"- {n}" for n in res["notes"]],
    ]
    unavailable = [f"- {LABELS[n]}: {r['reason']}" for n, r in tools.items()
                   if r and not r.get("available")]
    if unavailable:
        out += ["", "Not available in this run:", "", *unavailable]
    out += ["", "Raw runs (seconds):", "", "| tool | scenario | runs |", "|---|---|---|"]
    for name, r in tools.items():
        for scen, sc in r.get("scenarios", {}).items():
            runs = ", ".join(f"{s['seconds']:.2f}" + ("" if s["ok"] else " (failed)")
                             for s in sc["samples"])
            out.append(f"| {LABELS[name]} | {title_of(res, scen)} | {runs} |")
    return "\n".join(out) + "\n"


def changes_md(res: dict) -> list[str]:
    """What each dependency change installs anew, and what uvship's layers did about it."""
    out = []
    for scen, ch in res.get("changes", {}).items():
        dists = ", ".join(f"{n} {'/'.join(v)}" for n, v in ch["changed"].items())
        out.append(f"- {ch['title']}: new {dists}; wheels {fmt_kb(ch['wheel_bytes_cp312'])} "
                   f"(cp312, uvship) / {fmt_kb(ch['wheel_bytes_cp311'])} (cp311, standard).")
        s0 = (res["tools"].get("build", {}).get("scenarios", {}).get(scen, {})
              .get("samples") or [{}])[0]
        if "new_layers" in s0:
            new = ", ".join(f"{ly['role']} {fmt_kb(ly['size'])}" for ly in s0["new_layers"])
            roles = ", ".join(f"{n} {r}" for r, n in s0["layers_by_role"].items())
            out.append(f"  uvship build: new layers {new or 'none'} (image: {roles}).")
    return (["Dependency changes (sizes are uv.lock's wheel sizes):", "", *out, ""]
            if out else [])


def rel(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(out: Path, res: dict, md: str) -> None:
    """The JSON at ``out``, the Markdown beside it (.md), and the Markdown on stdout."""
    write_atomic(out, json.dumps(res, indent=2) + "\n")
    write_atomic(out.with_suffix(".md"), md)
    log(f"wrote {out} and {out.with_suffix('.md')} ({res['duration_seconds'] / 60:.1f} min)")
    print(md, end="")


def default_uvship(given: str | None) -> str:
    """The uvship command to measure: ``given``, else the one beside this Python."""
    bindir = Path(sys.executable).parent
    return given or (str(bindir / "uvship") if (bindir / "uvship").exists()
                     else str(ROOT / ".venv" / "bin" / "uvship"))


def clean_up(store: Store | None, work: Path, keep: bool) -> None:
    """Remove the private podman store and the work directory (unless ``keep``)."""
    if store and not keep:
        store.destroy()
    if keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def finish_machine(machine: dict, busy0: float | None, own0: float, t_start: float) -> None:
    """The machine facts known only at the end: load average, other processes' CPU."""
    machine["loadavg_end"] = list(os.getloadavg())
    busy1 = cpu_busy_seconds()
    if busy0 is not None and busy1 is not None:
        # everything busy minus what this run's own commands used; containers started by
        # `podman run` are not our children, so this slightly overstates other work
        other = (busy1 - busy0) - (own_cpu_seconds() - own0)
        machine["other_cpu_cores"] = round(max(other, 0.0) / (time.perf_counter() - t_start), 2)


def cli(main: Any) -> None:
    """Run ``main`` as the script: exit 1 on Failed, 130 on Ctrl-C."""
    try:
        sys.exit(main())
    except Failed as exc:
        log(f"error: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("error: cancelled")
        sys.exit(130)


def parse_args(doc: str, argv: list[str] | None, repeat: int, out: Path | None,
               only: tuple[str, ...] = (), projects: bool = False) -> argparse.Namespace:
    """The benchmarks' common command line (--only when ``only`` names tools, --project
    with ``projects``; ``out`` None: the default depends on the project)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    if projects:
        ap.add_argument("--project", default="example",
                        help=f"{' | '.join(PROJECTS)} | PATH of a uv project [example]")
        ap.add_argument("--no-push", action="store_true",
                        help="skip the pushes to a local registry after dependency changes")
    ap.add_argument("--repeat", type=int, default=repeat,
                    help=f"runs per scenario and tool [{repeat}]")
    if only:
        ap.add_argument("--only", action="append", choices=only,
                        help="measure only this tool (repeatable) [all]")
    ap.add_argument("--out", type=Path, default=out,
                    help="results JSON; the Markdown table goes beside it as .md "
                         f"[{out.relative_to(ROOT) if out else default_out_help()}]")
    ap.add_argument("--uvship", help="the uvship command to measure [the one beside this Python]")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat: expected a number >= 1")
    return args


def default_out_help() -> str:
    return ("benchmarks/results/latest.json for the example, "
            "benchmarks/results/<project>.json for another")


def default_out(spec: Spec) -> Path:
    return DEFAULT_OUT if spec.name == "example" else DEFAULT_OUT.with_name(f"{spec.name}.json")


def prepared_project(work: Path, spec: Spec, uv: str, env: dict[str, str]) -> Spec:
    """A copy of the project with a uv.lock (its own, or one made here by uv lock: the
    data app's lock is not committed; `exclude-newer` keeps the resolution stable)."""
    d = work / "src" / spec.path.name
    shutil.copytree(spec.path, d, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    if not (d / "uv.lock").is_file():
        log(f"{spec.path} has no uv.lock: uv lock (a copy)")
        run([uv, "lock", "--quiet"], cwd=d, env=env)
    return dataclasses.replace(spec, path=d)


def change_variants(work: Path, spec: Spec, uv: str, env: dict[str, str]) -> dict:
    """{scenario: {file: bytes}} for each dependency change, locked once by uv, and the
    titles of those scenarios."""
    variants = {"dep": locked_with_dependency(work, uv, env, spec.path, spec.added)}
    SCENARIOS["dep"] = f"one dependency added ({spec.added})"
    base = (spec.path / "uv.lock").read_bytes()
    for scen, pkg in spec.bumps.items():
        variants[scen] = locked_with_bump(work, uv, env, spec.path, pkg)
        old = ", ".join(locked_packages(base)[pkg])
        new = ", ".join(locked_packages(variants[scen]["uv.lock"])[pkg])
        size = "small" if scen == "bump" else "large"
        SCENARIOS[scen] = f"one {size} dependency bumped ({pkg} {old} -> {new})"
    return variants


def describe_changes(variants: dict, base: bytes) -> dict:
    """Per change: what it installs anew and the sizes of those wheels (uv.lock's sizes)."""
    out = {}
    for scen, files in variants.items():
        changed = changed_distributions(base, files["uv.lock"])
        w12 = wheel_bytes(files["uv.lock"], changed, "3.12")
        w11 = wheel_bytes(files["uv.lock"], changed, "3.11")
        out[scen] = {"title": SCENARIOS[scen], "changed": changed,
                     "wheels_cp312": w12, "wheel_bytes_cp312": sum(w12.values()),
                     "wheels_cp311": w11, "wheel_bytes_cp311": sum(w11.values()),
                     "how": "uv.lock's recorded size of the wheel uv installs for each new "
                            "version (x86_64 manylinux or pure Python): cp312 for uvship's "
                            "image, cp311 for the standard images"}
    return out


def start_registry(work: Path) -> Any | None:
    """Debian's docker-registry on 127.0.0.1 (tests/registry_fixtures.RegistryServer)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from tests.registry_fixtures import REGISTRY_BIN, RegistryServer
    except ImportError as exc:
        log(f"no registry: {exc}")
        return None
    if REGISTRY_BIN is None:
        log("no registry: docker-registry is not installed (scripts/setup-host)")
        return None
    server = RegistryServer(work / "registry")
    server.start()
    log(f"registry: docker-registry on {server.host}")
    return server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, 5, None, TOOLS, projects=True)
    wanted = [t for t in TOOLS if t in (args.only or TOOLS)]
    t_start = time.perf_counter()
    busy0, own0 = cpu_busy_seconds(), own_cpu_seconds()

    uvship = default_uvship(args.uvship)
    from uv import find_uv_bin

    uv = find_uv_bin()
    spec0 = project_spec(args.project)
    args.out = args.out or default_out(spec0)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="uvship-bench-", dir="/var/tmp"))
    log(f"work directory: {work}")
    # uv-managed Pythons go to a directory of this run (installed during the warm-up),
    # not to the user's; the uv cache stays the user's and warm.
    env = {**os.environ, "UV_PYTHON_INSTALL_DIR": str(work / "uv-python"),
           "UV_PYTHON_BIN_DIR": str(work / "uv-python-bin"), "NO_COLOR": "1"}
    env.pop("UVSHIP_CACHE_DIR", None)
    results: dict[str, Any] = {"_machine": machine_info(uv, uvship)}
    store: Store | None = None
    registry: Any | None = None
    tools: list[Tool] = []
    try:
        spec = prepared_project(work, spec0, uv, env)
        dep_files = change_variants(work, spec, uv, env)
        changes = describe_changes(dep_files, (spec.path / "uv.lock").read_bytes())
        if not args.no_push and any(t in wanted for t in PUSHERS):
            registry = start_registry(work)
        has_build, why_not = uvship_has_build(uvship) if "build" in wanted else (False, "")
        if "podman" in wanted or has_build or "bundle" in wanted:
            log("copying the base images into a private podman store")
            store = Store(work / "store", *base_images())
        for name in wanted:
            d = work / name
            d.mkdir()
            results[name] = {"available": True, "label": LABELS[name], "scenarios": {}}
            if name == "podman":
                tools.append(PodmanTool(d, dep_files, store, spec))
            elif name == "buildkit":
                log("starting the Docker Engine (scripts/docker-engine start)")
                run([ROOT / "scripts" / "docker-engine", "start"])
                tools.append(BuildKitTool(d, dep_files, spec))
            elif name == "bundle":
                tools.append(BundleTool(d, dep_files, uvship, env, spec, store=store))
            else:
                if has_build:
                    tools.append(BuildTool(d, dep_files, uvship, env, spec, store=store))
                else:
                    results[name].update(available=False, reason=why_not)
                    log(f"uvship build: not available ({why_not})")
        measure(tools, args.repeat, results, registry)
    finally:
        for t in tools:
            if isinstance(t, BuildKitTool):
                t.remove()
        if registry:
            registry.stop()
        clean_up(store, work, args.keep)

    machine = results.pop("_machine")
    finish_machine(machine, busy0, own0, t_start)
    for name in wanted:
        r = results[name]
        r["scenarios"] = {k: summarize(v) for k, v in r.get("scenarios", {}).items()}
    res = {
        "schema": 1,
        "machine": machine,
        "settings": {"repeat": args.repeat, "tools": wanted, "project": spec0.name,
                     "project_path": rel(spec0.path), "script": spec0.script,
                     "added_dependency": spec0.added, "bumped": spec0.bumps,
                     "edited_file": spec0.edited_file, "pushed": registry is not None,
                     "standard_dockerfile": "benchmarks/standard/Dockerfile",
                     "podman_build": "podman build --pull=never --layers=true -t TAG <copy>",
                     "buildkit": "DOCKER_BUILDKIT=1 docker build --progress=plain -t TAG "
                                 "<copy>",
                     "uvship_build": "uvship build <copy> --output oci:<dir> --tag TAG",
                     "uvship_bundle": "uvship bundle <copy> -o <file>.tar.gz"},
        "tools": results,
        "changes": changes,
        "titles": dict(SCENARIOS),
        "targets": TARGETS,
    }
    res["ratios"] = ratios(results)
    res["notes"] = observations({**results, "_machine": machine})
    res["duration_seconds"] = round(time.perf_counter() - t_start, 1)
    write_atomic(args.out, json.dumps(res, indent=2) + "\n")  # kept if the report fails
    write_results(args.out, res, render_md(res))
    return 0


if __name__ == "__main__":
    cli(main)
