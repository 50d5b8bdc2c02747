"""Benchmark: uvship against the standard way (BuildKit and podman building the
best-practice uv Dockerfile).

    .venv/bin/python benchmarks/run.py [--repeat N] [--only bundle|build|podman|buildkit]
                                       [--out PATH]

Same project (a fresh copy of examples/hello-web per tool), same machine, same run; each
scenario's repeats are interleaved across the tools. Raw timings, medians, ratios and
machine facts go to PATH (JSON) and a Markdown table beside it (PATH with .md); the table
is also printed on stdout, progress on stderr. What is measured and how: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
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
import uuid
from pathlib import Path
from typing import Any

from uvship import cache as uvship_cache

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hello-web"
STANDARD = ROOT / "benchmarks" / "standard"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "latest.json"

SCENARIOS = {
    "cold": "cold build, warm uv cache (base kept)",
    "cold_empty": "cold build, warm uv cache, empty uvship cache",
    "nochange": "no-change rebuild",
    "edit": "one source file edited",
    "edit_podman": "one source file edited, then runnable in podman",
    "edit_docker": "one source file edited, then runnable in Docker",
    "dep": "one dependency added (six)",
}
TOOLS = ("podman", "buildkit", "build", "bundle")
LABELS = {"podman": "podman build", "buildkit": "BuildKit (docker build)",
          "build": "uvship build", "bundle": "uvship bundle"}
# Debian's docker.io client: a newer one elsewhere on PATH wants the buildx plugin
DOCKER = "/usr/bin/docker"
BUILDKIT_TAG = "uvship-bench/standard:buildkit"
ENGINE_TAG = "uvship-bench/uvship:engine"
ADDED_DEP = "six"
EDITED_FILE = "src/hello_web/__init__.py"
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
    """A private copy of the example, with the edits the scenarios make and undo."""

    def __init__(self, dest: Path, dep_files: dict[str, bytes], src: Path = EXAMPLE) -> None:
        shutil.copytree(src, dest, symlinks=True,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__"))
        self.dir = dest
        self.dep_files = dep_files  # pyproject.toml and uv.lock with the dependency added
        self.original = {n: (dest / n).read_bytes()
                         for n in ("pyproject.toml", "uv.lock", EDITED_FILE)}

    def edit(self) -> None:
        """Change one source file, differently every time (so no cache has seen it)."""
        with open(self.dir / EDITED_FILE, "a") as f:
            f.write(f"# benchmark edit {uuid.uuid4().hex}\n")

    def add_dependency(self) -> None:
        for name, data in self.dep_files.items():
            (self.dir / name).write_bytes(data)

    def restore(self) -> None:
        for name, data in self.original.items():
            (self.dir / name).write_bytes(data)


def locked_with_dependency(work: Path, uv: str, env: dict[str, str]) -> dict[str, bytes]:
    """pyproject.toml and uv.lock of the example with ADDED_DEP added, locked once by uv."""
    d = work / "lock-with-dep"
    shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    py = d / "pyproject.toml"
    text, n = re.subn(r"(?m)^dependencies = \[\n", f'dependencies = [\n    "{ADDED_DEP}",\n',
                      py.read_text(), count=1)
    if n != 1:
        raise Failed(f"{py}: expected a multi-line `dependencies = [` list to add {ADDED_DEP} to")
    py.write_text(text)
    run([uv, "lock", "--quiet"], cwd=d, env=env)
    if f'name = "{ADDED_DEP}"' not in (d / "uv.lock").read_text():
        raise Failed(f"uv lock did not add {ADDED_DEP} to {d / 'uv.lock'}")
    return {"pyproject.toml": py.read_bytes(), "uv.lock": (d / "uv.lock").read_bytes()}


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


def layout_has_file(layout: Path, basename: str) -> bool:
    """Whether any layer of the OCI layout holds a file called ``basename``."""
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
                if any(ti.name.rsplit("/", 1)[-1] == basename for ti in tar):
                    return True
    return False


# ---------------------------------------------------------------------------- the tools

class Tool:
    """One way of building the example: build() is timed, everything else is not."""

    name = ""

    def __init__(self, work: Path, dep_files: dict[str, bytes]) -> None:
        self.work = work
        self.project = Project(work / "hello-web", dep_files)

    def build(self) -> dict: ...
    def go_cold(self, keep_base: bool = False) -> None: ...
    def checkpoint(self) -> None: ...
    def rollback(self) -> None: ...
    def has_added_dependency(self) -> bool | None: ...
    def size(self) -> dict: ...
    def smoke(self) -> dict: ...


class PodmanTool(Tool):
    name = "podman"

    def __init__(self, work: Path, dep_files: dict[str, bytes], store: Store) -> None:
        super().__init__(work, dep_files)
        self.store = store
        shutil.copy2(STANDARD / "Dockerfile", self.project.dir / "Dockerfile")
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

    def has_added_dependency(self) -> bool:
        proc = run(self.store.cmd("run", "--rm", "--network=none", PODMAN_TAG,
                                  "python", "-c", f"import {ADDED_DEP}"), check=False)
        return proc.returncode == 0

    def size(self) -> dict:
        out = self.work / "pushed-oci"
        shutil.rmtree(out, ignore_errors=True)
        run(self.store.cmd("push", "-q", PODMAN_TAG, f"oci:{out}"))
        return {"image_bytes": self.store.inspect_size(PODMAN_TAG),
                "how": "podman image inspect {{.Size}}; compressed: podman push oci: (gzip)",
                **layout_sizes(out)}

    def smoke(self) -> dict:
        proc = run(self.store.cmd("run", "--rm", "--network=none", PODMAN_TAG,
                                  "hello-web", "--check"), check=False, timeout=120)
        return {"ok": proc.returncode == 0, "output": proc.stdout.strip()[-500:]}


class BuildKitTool(Tool):
    """Docker Engine's BuildKit building the same Dockerfile (DOCKER_BUILDKIT=1, the
    built-in frontend). "Cold" removes the image and BuildKit's layer cache but keeps its
    cache mounts (the uv cache), as podman keeps buildah's."""

    name = "buildkit"

    def __init__(self, work: Path, dep_files: dict[str, bytes]) -> None:
        super().__init__(work, dep_files)
        shutil.copy2(STANDARD / "Dockerfile", self.project.dir / "Dockerfile")
        shutil.copy2(STANDARD / ".dockerignore", self.project.dir / ".dockerignore")
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1"}

    def build(self) -> dict:
        secs, proc = timed([DOCKER, "build", "--progress=plain", "-t", BUILDKIT_TAG,
                            self.project.dir], env=self.env)
        steps = parse_buildkit_steps(proc.stdout)
        dep = [s for s in steps if "--no-install-project" in s["text"]]
        return sample(secs, proc, steps=len(steps), cached_steps=sum(s["cached"] for s in steps),
                      dependency_layer_cached=dep[0]["cached"] if dep else None)

    def go_cold(self, keep_base: bool = False) -> None:
        run([DOCKER, "rmi", "-f", BUILDKIT_TAG], check=False)
        run([DOCKER, "builder", "prune", "-af", "--filter", "type=regular"], check=False)

    def checkpoint(self) -> None:
        pass

    def rollback(self) -> None:
        # forget the dependency: the next repeat must build that layer again
        self.go_cold()
        self.project.restore()
        self.build()

    def has_added_dependency(self) -> bool:
        proc = run([DOCKER, "run", "--rm", "--network=none", BUILDKIT_TAG, "python", "-c",
                    f"import {ADDED_DEP}"], check=False)
        return proc.returncode == 0

    def size(self) -> dict:
        size = int(run([DOCKER, "image", "inspect", "--format", "{{.Size}}",
                        BUILDKIT_TAG]).stdout)
        return {"image_bytes": size, "how": "docker image inspect {{.Size}}"}

    def smoke(self) -> dict:
        proc = run([DOCKER, "run", "--rm", "--network=none", BUILDKIT_TAG, "hello-web",
                    "--check"], check=False, timeout=120)
        return {"ok": proc.returncode == 0, "output": proc.stdout.strip()[-500:]}


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


def reset_uvship_cache(cache: Path, keep_base: bool = False) -> None:
    """Empty a uvship cache. With keep_base, keep what depends only on the Python and the
    host - the prepared interpreter and its interpreter and runtime layers, the analogue of
    the base image podman keeps - and nothing of the project (uvship.cache decides what
    that is: it alone knows the cache's layout)."""
    if keep_base:
        uvship_cache.prune_to_host(cache)
    else:
        shutil.rmtree(cache, ignore_errors=True)


class UvshipTool(Tool):
    """uvship with a cache of its own ($UVSHIP_CACHE_DIR); the uv cache is the user's, warm."""

    def __init__(self, work: Path, dep_files: dict[str, bytes], uvship: str,
                 env: dict[str, str]) -> None:
        super().__init__(work, dep_files)
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

    def go_cold(self, keep_base: bool = False) -> None:
        """Forget every build (see reset_uvship_cache)."""
        reset_uvship_cache(self.cache, keep_base)
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

    def has_added_dependency(self) -> bool:
        with tarfile.open(self.output) as tar:
            return any(n.rsplit("/", 1)[-1] == f"{ADDED_DEP}.py" for n in tar.getnames())

    def size(self) -> dict:
        return {"bundle_targz_bytes": self.output.stat().st_size,
                "how": "size of the .tar.gz (venv + interpreter; no OS, not an image)"}

    def smoke(self) -> dict:
        """Unpack the bundle at / in the standard's base image and run the self-check."""
        if not self.store:
            return {"ok": None, "output": "no podman store"}
        proc = run(self.store.cmd(
            "run", "--rm", "--network=none", "-v", f"{self.output}:/bundle.tar.gz:ro",
            self.store.runtime_base, "sh", "-c",
            "tar -xzf /bundle.tar.gz -C / && /app/.venv/bin/hello-web --check"),
            check=False, timeout=120)
        return {"ok": proc.returncode == 0 and "hello-web ok" in proc.stdout,
                "how": "unpacked at / in the standard's base image",
                "output": proc.stdout.strip()[-500:]}


class BuildTool(UvshipTool):
    name = "build"

    def __init__(self, *a: Any, store: Store | None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.store = store
        self.loaded: str | None = None

    def build(self) -> dict:
        secs, proc = timed([self.uvship, "build", self.project.dir, "--output",
                            f"oci:{self.output}", "--tag", UVSHIP_TAG], env=self.env)
        return sample(secs, proc, output="oci")

    def has_added_dependency(self) -> bool:
        return layout_has_file(self.output, f"{ADDED_DEP}.py")

    def build_to(self, kind: str) -> dict:
        """The image straight into a local engine (docker-daemon or containers-storage)."""
        secs, proc = timed([self.uvship, "build", self.project.dir, "--output",
                            f"{kind}:{ENGINE_TAG}"], env=self.env)
        return sample(secs, proc, output=kind)

    def size(self) -> dict:
        res: dict[str, Any] = {"how": "compressed: sum of the OCI layout's layer sizes; "
                               "image_bytes: podman image inspect {{.Size}} after podman load "
                               "of --output docker-archive:"}
        res.update(layout_sizes(self.output))
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
        return res

    def smoke(self) -> dict:
        if not (self.store and self.loaded):
            return {"ok": None, "output": "image not loaded"}
        return smoke_uvship_image(self.store, self.loaded)


def smoke_uvship_image(store: Store, img: str, *run_opts: str, timeout: float = 120) -> dict:
    """Run a uvship image's self-check; the entrypoint layout is uvship's to choose."""
    py, script = "/app/.venv/bin/python", "/app/.venv/bin/hello-web"
    tries = [[img, "--check"], [img, "hello-web", "--check"],
             ["--entrypoint", py, img, script, "--check"]]
    out = ""
    for args in tries:
        proc = run(store.cmd("run", "--rm", "--network=none", *run_opts, *args),
                   check=False, timeout=timeout)
        if proc.returncode == 0 and "hello-web ok" in proc.stdout:
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
    commit = out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
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
        "loadavg_start": list(os.getloadavg()),
    }


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

    log("scenario: no-change rebuild")
    for i in range(repeat):
        for t in rotated(tools, i):
            record(results, t, "nochange", i, repeat, t.build())

    log(f"scenario: one source file edited ({EDITED_FILE}, a new line each time)")
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


def measure(tools: list[Tool], repeat: int, results: dict) -> None:
    log("warm-up (untimed): a build of the example and one with the dependency added, "
        "so uv's caches hold every wheel")
    for t in tools:
        for add in (False, True):
            if add:
                t.project.add_dependency()
            s = t.build()
            t.project.restore()
            if not s["ok"]:
                raise Failed(f"{t.name}: warm-up build failed:\n{s.get('output_tail', '')}")

    measure_rebuilds(tools, repeat, results)
    measure_engines(tools, repeat, results)
    for t in tools:
        t.project.restore()
        t.build()

    log(f"scenario: one dependency added ({ADDED_DEP}; pyproject.toml and uv.lock from uv lock)")
    for t in tools:
        t.checkpoint()
    for i in range(repeat):
        for t in rotated(tools, i):
            t.project.add_dependency()
            s = t.build()
            if i == 0 and s["ok"]:
                s["added_dependency_in_output"] = t.has_added_dependency()
            record(results, t, "dep", i, repeat, s)
            t.project.restore()
            t.rollback()  # forget the dependency, so the next repeat builds it again

    log("image size and a run of each output (the example as it is)")
    for t in tools:
        t.build()
        results[t.name]["size"] = t.size()
        results[t.name]["smoke"] = t.smoke()


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
    dep = results.get("podman", {}).get("scenarios", {}).get("dep", {}).get("samples", [])
    reused = [s for s in dep if s.get("dependency_layer_cached")]
    if reused:
        seen = dep[0].get("added_dependency_in_output")
        notes.append(
            f"podman, one dependency added: in {len(reused)} of {len(dep)} builds buildah took "
            "the dependency layer (`RUN --mount=type=bind,source=uv.lock ... uv sync "
            "--no-install-project`) from its cache although uv.lock had changed: buildah "
            f"{buildah_version(results['_machine'])} leaves bind-mount "
            "contents out of the cache key. "
            + (f"`{ADDED_DEP}` still reached the image, installed by the project layer's "
               "`uv sync`, so the image is right but its layering is not, and this row "
               "is faster than a correct rebuild of the dependency layer would be."
               if seen else f"`{ADDED_DEP}` is NOT importable in the resulting image."))
    for name, r in results.items():
        if name.startswith("_") or not r.get("available"):
            continue
        for scen, sc in r.get("scenarios", {}).items():
            bad = failed_runs_note(f"{LABELS[name]}, {SCENARIOS[scen]}", sc)
            if bad:
                notes.append(bad)
            first = sc.get("samples", [{}])[0]
            if first.get("added_dependency_in_output") is False:
                notes.append(f"{LABELS[name]}: `{ADDED_DEP}` is missing from the output "
                             "after the dependency was added.")
        if r.get("smoke", {}).get("ok") is False:
            notes.append(f"{LABELS[name]}: the built image did not pass `hello-web --check`.")
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


def verdict(res: dict) -> list[str]:
    """The targets (issue 15), judged on `uvship build` against BuildKit."""
    b = res["tools"].get("build", {})
    rat = res["ratios"].get("build", {})
    lines = []
    for scen in ("nochange", "edit", "edit_docker", "cold", "dep"):
        t = TARGETS[scen]
        want = ([f"<= {t['max_seconds']} s"] if t["max_seconds"] else []) + \
               [f">= {t['min_speedup']:g}x faster than BuildKit"]
        med = b.get("scenarios", {}).get(scen, {}).get("median")
        sp = rat.get(f"{scen}_speedup_buildkit")
        if not b.get("available") or med is None or sp is None:
            got = "not measured"
        else:
            ok = sp >= t["min_speedup"] and (t["max_seconds"] is None or med <= t["max_seconds"])
            got = f"{'met' if ok else 'missed'} ({fmt_s(med)}, {sp:.1f}x)"
        lines.append(f"{SCENARIOS[scen]}: {' and '.join(want)} — {got}")
    frac = rat.get("size_fraction_buildkit")
    got = "not measured" if frac is None else \
        f"{'met' if frac <= TARGETS['size']['max_fraction'] else 'missed'} ({frac:.0%})"
    lines.append(f"final image size: <= {TARGETS['size']['max_fraction']:.0%} of BuildKit's "
                 f"image — {got}")
    return lines


def render_md(res: dict) -> str:
    m = res["machine"]
    tools = res["tools"]
    hdr = ("| scenario | podman build | BuildKit | uvship build | speed-up vs podman | "
           "speed-up vs BuildKit | uvship bundle |")
    rows = [hdr, "|" + "---|" * 7]
    for scen, title in SCENARIOS.items():
        rows.append(f"| {title} | {cell(tools.get('podman', {}), scen)} | "
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
    out = [
        f"# uvship benchmark — {m['date']}",
        "",
        f"examples/hello-web; {res['settings']['repeat']} run(s) per cell, median shown; "
        f"total runtime {res['duration_seconds'] / 60:.1f} min. Machine: {m['nproc']} cores "
        f"({m['cpu']}), {m['memory']}, Linux {m['kernel']}; podman {m['podman']} (buildah "
        f"{buildah_version(m)}, {m['runc']}), Docker Engine {m.get('docker', '?')} "
        f"(BuildKit built in), {m['uv'].split(' (')[0]}, "
        f"uvship {m['uvship'].split()[-1]} at {m['uvship_commit']}; other processes used "
        f"{m.get('other_cpu_cores', '?')} cores on average during the run. "
        "How: benchmarks/README.md.",
        "",
        *rows,
        "",
        "Targets (issue 15, judged on `uvship build` against BuildKit):",
        "",
        *[f"- {ln}" for ln in verdict(res)],
        "",
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
            out.append(f"| {LABELS[name]} | {SCENARIOS[scen]} | {runs} |")
    return "\n".join(out) + "\n"


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


def parse_args(doc: str, argv: list[str] | None, repeat: int, out: Path,
               only: tuple[str, ...] = ()) -> argparse.Namespace:
    """The benchmarks' common command line (--only when ``only`` names tools)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=repeat,
                    help=f"runs per scenario and tool [{repeat}]")
    if only:
        ap.add_argument("--only", action="append", choices=only,
                        help="measure only this tool (repeatable) [all]")
    ap.add_argument("--out", type=Path, default=out,
                    help="results JSON; the Markdown table goes beside it as .md "
                         f"[{out.relative_to(ROOT)}]")
    ap.add_argument("--uvship", help="the uvship command to measure [the one beside this Python]")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat: expected a number >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, 5, DEFAULT_OUT, TOOLS)
    wanted = [t for t in TOOLS if t in (args.only or TOOLS)]
    t_start = time.perf_counter()
    busy0, own0 = cpu_busy_seconds(), own_cpu_seconds()

    uvship = default_uvship(args.uvship)
    from uv import find_uv_bin

    uv = find_uv_bin()
    if not (EXAMPLE / "uv.lock").is_file():
        log(f"error: {EXAMPLE / 'uv.lock'} is missing; run scripts/bootstrap first")
        return 1
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
    tools: list[Tool] = []
    try:
        dep_files = locked_with_dependency(work, uv, env)
        has_build, why_not = uvship_has_build(uvship) if "build" in wanted else (False, "")
        if "podman" in wanted or has_build or "bundle" in wanted:
            log("copying the base images into a private podman store")
            store = Store(work / "store", *base_images())
        for name in wanted:
            d = work / name
            d.mkdir()
            results[name] = {"available": True, "label": LABELS[name], "scenarios": {}}
            if name == "podman":
                tools.append(PodmanTool(d, dep_files, store))
            elif name == "buildkit":
                log("starting the Docker Engine (scripts/docker-engine start)")
                run([ROOT / "scripts" / "docker-engine", "start"])
                tools.append(BuildKitTool(d, dep_files))
            elif name == "bundle":
                tools.append(BundleTool(d, dep_files, uvship, env, store=store))
            else:
                if has_build:
                    tools.append(BuildTool(d, dep_files, uvship, env, store=store))
                else:
                    results[name].update(available=False, reason=why_not)
                    log(f"uvship build: not available ({why_not})")
        measure(tools, args.repeat, results)
    finally:
        clean_up(store, work, args.keep)

    machine = results.pop("_machine")
    finish_machine(machine, busy0, own0, t_start)
    for name in wanted:
        r = results[name]
        r["scenarios"] = {k: summarize(v) for k, v in r.get("scenarios", {}).items()}
    res = {
        "schema": 1,
        "machine": machine,
        "settings": {"repeat": args.repeat, "tools": wanted, "example": "examples/hello-web",
                     "added_dependency": ADDED_DEP, "edited_file": EDITED_FILE,
                     "standard_dockerfile": "benchmarks/standard/Dockerfile",
                     "podman_build": "podman build --pull=never --layers=true -t TAG <copy>",
                     "buildkit": "DOCKER_BUILDKIT=1 docker build --progress=plain -t TAG "
                                 "<copy>",
                     "uvship_build": "uvship build <copy> --output oci:<dir> --tag TAG",
                     "uvship_bundle": "uvship bundle <copy> -o <file>.tar.gz"},
        "tools": results,
        "targets": TARGETS,
    }
    res["ratios"] = ratios(results)
    res["notes"] = observations({**results, "_machine": machine})
    res["duration_seconds"] = round(time.perf_counter() - t_start, 1)
    write_results(args.out, res, render_md(res))
    return 0


if __name__ == "__main__":
    cli(main)
