"""Benchmark: an arm64 image from this x86_64 host, uvship against podman build under QEMU.

    .venv/bin/python benchmarks/arm64.py [--repeat N] [--out PATH] [--keep]

Prerequisites: benchmarks/arm64-setup (the arm64 base images of the standard Dockerfile)
and scripts/make-arm64-python (the arm64 CPython uvship ships). Same project (a fresh copy
of examples/hello-web per tool), same machine, same run; each scenario's repeats are
interleaved across the tools. podman runs `podman build --platform linux/arm64` of
benchmarks/standard/Dockerfile (its FROM names swapped for the arm64 bases), every RUN step
emulated by qemu-user. uvship runs `uvship build --platform linux/arm64` two ways: with
--python PATH of the arm64 interpreter (run here through qemu-user), and with that
interpreter packed as a uv-managed download (`uvship pack-python`, untimed) that uv
installs and uvship never runs. Raw timings, medians, ratios and machine facts go to PATH
(JSON) and a Markdown table beside it (.md); the table is also printed on stdout, progress
on stderr. A benchmark, not a test: nothing fails because something is slow.
benchmarks/README.md ("arm64 from this x86_64 host") says what is measured and how.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as amd64
from run import (
    Failed,
    Project,
    Store,
    busy_note,
    cell,
    clean_up,
    cli,
    cpu_busy_seconds,
    default_uvship,
    failed_runs_note,
    finish_machine,
    fmt_mb,
    log,
    machine_info,
    measure_rebuilds,
    oci_blob,
    oci_manifest,
    own_cpu_seconds,
    parse_args,
    parse_steps,
    reset_uvship_cache,
    sample,
    smoke_uvship_image,
    speedup,
    summarize,
    timed,
    write_results,
)

run = amd64.run
ROOT = amd64.ROOT
EXAMPLE = amd64.EXAMPLE
STANDARD = amd64.STANDARD
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "arm64.json"
HOST_DIR = Path(os.environ.get("UVSHIP_HOST_DIR", "/var/tmp/uvship-host"))
ARM_ROOT = HOST_DIR / "arm64" / "root"
ARM_PYTHON = ARM_ROOT / "usr" / "bin" / "python3.11"
ARM_DEBS = HOST_DIR / "arm64" / "debs"
TOOLS_UV = HOST_DIR / "tools" / "bin" / "uv"
TOOLS_PYTHON = HOST_DIR / "tools" / "bin" / "python3"

# the standard Dockerfile's bases -> their arm64 twins made by benchmarks/arm64-setup
ARM_BASES = {
    "localhost/uvship/python:3.11-bookworm": "localhost/uvship-bench/python:3.11-bookworm-arm64",
    "localhost/uvship/uv:0.13.9": "localhost/uvship-bench/uv:0.13.9-arm64",
}
PLATFORM = "linux/arm64"
# the keys are run.py's (measure_rebuilds), the titles say what each means here
SCENARIOS = {
    "cold_empty": "cold build, warm uv cache, empty uvship cache",
    "cold": "cold build, warm uv cache, uvship base kept",
    "nochange": "no-change rebuild",
    "edit": "one source file edited",
}
TOOLS = ("podman", "uvship", "managed")
UVSHIP_VARIANTS = ("uvship", "managed")
LABELS = {"podman": "podman build (QEMU)", "uvship": "uvship build (--python PATH)",
          "managed": "uvship build (uv-managed arm64 Python)"}
EDITED_FILE = amd64.EDITED_FILE
PODMAN_TAG = "localhost/uvship-bench/standard-arm64:latest"
UVSHIP_TAGS = {"uvship": "localhost/uvship-bench/uvship-arm64:latest",
               "managed": "localhost/uvship-bench/uvship-arm64-managed:latest"}
TARGET_SPEEDUP = 20.0  # from the issue: the arm64 image at least 20x faster than podman+QEMU


# ---------------------------------------------------------------------------- the project

def locked_example(work: Path) -> Path:
    """A copy of the example with a uv.lock: the example's own, or one made here by uv lock
    (never written back into the repository)."""
    d = work / "example"
    shutil.copytree(EXAMPLE, d, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    if not (d / "uv.lock").is_file():
        log(f"{EXAMPLE} has no uv.lock: locking a copy with {TOOLS_UV}")
        run([TOOLS_UV, "lock", "--quiet", "--python", TOOLS_PYTHON], cwd=d)
    return d


def pinned_version(project: Path) -> str | None:
    """The version the project's .python-version pins (its first line), if any."""
    pin = project / ".python-version"
    if not pin.is_file():
        return None
    lines = [ln.strip() for ln in pin.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    return lines[0] if lines else None


# ---------------------------------------------------------------------------- images

def layout_image(layout: Path) -> tuple[dict, dict]:
    """(manifest, config) of the arm64 image in an OCI layout."""
    manifest = oci_manifest(layout, "arm64")
    return manifest, oci_blob(layout, manifest["config"]["digest"])


def make_uvship_base(dest: Path) -> dict:
    """A glibc-only arm64 base (libc6 + libgcc-s1 from the arm64 sysroot's .debs) as an OCI
    layout, written with uvship's own API. Made once per run, untimed."""
    from uvship import layers
    from uvship.oci import Image, Layer, write_layout

    root = dest.parent / "base-root"
    root.mkdir(parents=True)
    debs = []
    for name in ("libc6", "libgcc-s1"):
        found = sorted(ARM_DEBS.glob(f"{name}_*_arm64.deb"))
        if not found:
            raise Failed(f"no {name} arm64 .deb in {ARM_DEBS}; run scripts/make-arm64-python")
        run(["dpkg-deb", "-x", found[-1], root])
        debs.append(found[-1].name)
    shutil.rmtree(root / "usr" / "share", ignore_errors=True)
    tar = dest.parent / "base-layer.tar.gz"
    with tar.open("wb") as f:
        info = layers.write_tar(layers.normalize(layers.scan(root)), f)
    img = Image.scratch(PLATFORM).with_layer(Layer.from_archive(info, tar))
    write_layout(img, dest, tags=["glibc"])
    shutil.rmtree(root)
    tar.unlink()
    _, cfg = layout_image(dest)
    if cfg.get("architecture") != "arm64":
        raise Failed(f"{dest}: the base's config says architecture {cfg.get('architecture')!r}")
    return {"ref": f"oci:{dest}:glibc", "debs": debs}


def pack_arm64_python(uvship: str, dest: Path, env: dict[str, str]) -> dict:
    """The arm64 CPython packed as a uv-managed download (uvship pack-python, run through
    qemu-user with the sysroot as its library prefix). Once per run, untimed."""
    cmd = [uvship, "pack-python", ARM_PYTHON, "-o", dest, "--strip"]
    secs, proc = timed(cmd, env={**env, "QEMU_LD_PREFIX": str(ARM_ROOT)})
    if proc.returncode != 0:
        raise Failed(f"uvship pack-python failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    downloads = dest / "downloads.json"
    entries = json.loads(downloads.read_text())
    if len(entries) != 1:
        raise Failed(f"{downloads}: expected one Python, found {sorted(entries)}")
    (key, entry), = entries.items()
    archive = dest / entry["url"].rsplit("/", 1)[-1]
    return {"downloads_json": str(downloads), "key": key,
            "version": f"{entry['major']}.{entry['minor']}.{entry['patch']}",
            "minor": f"{entry['major']}.{entry['minor']}",
            "archive_bytes": archive.stat().st_size if archive.is_file() else None,
            "seconds": round(secs, 2),
            "command": f"QEMU_LD_PREFIX={ARM_ROOT} uvship pack-python {ARM_PYTHON} "
                       "-o <work>/arm64-downloads --strip"}


class PrivateStore(Store):
    """run.py's private podman store, with the arm64 bases copied in as arm64 images."""

    def __init__(self, work: Path, base_refs: list[str], runtime_base: str) -> None:
        super().__init__(work, [], runtime_base)
        info = run(["podman", "info", "--format", "{{.Store.GraphRoot}}+{{.Store.RunRoot}}"])
        src = f"[{self.driver}@{info.stdout.strip()}]"
        for ref in base_refs:
            run(self.cmd("pull", "-q", "--arch", "arm64", f"containers-storage:{src}{ref}"))
        self.base_ids = self.image_ids()

    def arch(self, ref: str) -> str:
        return run(self.cmd("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}",
                            ref)).stdout.strip()


# ---------------------------------------------------------------------------- the tools

class PodmanTool:
    name = "podman"

    def __init__(self, work: Path, src: Path, store: PrivateStore) -> None:
        self.work = work
        self.project = Project(work / "hello-web", {}, src)
        self.store = store
        text = (STANDARD / "Dockerfile").read_text()
        for amd, arm in ARM_BASES.items():
            text, n = re.subn(rf"(?m)((?:^FROM\s+|--from=)){re.escape(amd)}(?=\s)", rf"\g<1>{arm}",
                              text)
            if n == 0:
                raise Failed(f"{STANDARD / 'Dockerfile'} no longer uses {amd}")
        (self.project.dir / "Dockerfile").write_text(text)
        shutil.copy2(STANDARD / ".dockerignore", self.project.dir / ".dockerignore")

    def build(self) -> dict:
        secs, proc = timed(self.store.cmd("build", "--platform", PLATFORM, "--pull=never",
                                          "--layers=true", "-t", PODMAN_TAG, self.project.dir))
        steps = parse_steps(proc.stdout)
        return sample(secs, proc, steps=len(steps), cached_steps=sum(s["cached"] for s in steps))

    def go_cold(self, keep_base: bool = False) -> None:
        self.store.reset()  # every built image and layer; the bases and the uv cache mount stay

    def image(self) -> dict:
        return {"ref": PODMAN_TAG, "platform": self.store.arch(PODMAN_TAG),
                "image_bytes": self.store.inspect_size(PODMAN_TAG),
                "how": "podman image inspect {{.Os}}/{{.Architecture}} and {{.Size}}"}

    def smoke(self) -> dict:
        proc = run(self.store.cmd("run", "--rm", "--network=none", "--platform", PLATFORM,
                                  PODMAN_TAG, "hello-web", "--check"), check=False, timeout=180)
        return {"ok": proc.returncode == 0 and "hello-web ok" in proc.stdout,
                "how": "hello-web --check", "output": proc.stdout.strip()[-500:]}


class UvshipTool:
    """uvship with --python PATH of the arm64 interpreter (run here through qemu-user), and
    a cache of its own ($UVSHIP_CACHE_DIR); the uv cache is the user's, warm."""

    name = "uvship"

    def __init__(self, work: Path, src: Path, uvship: str, base: str, env: dict[str, str],
                 store: PrivateStore) -> None:
        self.work = work
        self.project = Project(work / "hello-web", {}, src)
        self.uvship = uvship
        self.base = base
        self.store = store
        self.cache = work / "uvship-cache"
        self.output = work / "out"
        self.env = {**env, "UVSHIP_CACHE_DIR": str(self.cache)}
        self.loaded: str | None = None

    def python_args(self) -> list[Any]:
        return ["--python", ARM_PYTHON]

    def command(self) -> list[Any]:
        return [self.uvship, "build", self.project.dir, "--platform", PLATFORM,
                *self.python_args(), "--base", self.base, "-o", f"oci:{self.output}:latest"]

    def build(self) -> dict:
        secs, proc = timed(self.command(), env=self.env)
        return sample(secs, proc)

    def go_cold(self, keep_base: bool = False) -> None:
        """Forget every build; with keep_base keep what depends only on the interpreter,
        as run.py's "base kept" cold row does (run.reset_uvship_cache)."""
        reset_uvship_cache(self.cache, keep_base)
        shutil.rmtree(self.output, ignore_errors=True)

    def image(self) -> dict:
        manifest, cfg = layout_image(self.output)
        tag = UVSHIP_TAGS[self.name]
        res: dict[str, Any] = {
            "ref": f"oci:{self.output}:latest",
            "config_platform": f"{cfg.get('os')}/{cfg.get('architecture')}",
            "compressed_layers_bytes": sum(ly["size"] for ly in manifest["layers"]),
            "layer_digests": [ly["digest"] for ly in manifest["layers"]],
            "how": "the OCI layout's config os/architecture; podman pull --arch arm64 oci:DIR, "
                   "then podman image inspect {{.Os}}/{{.Architecture}} and {{.Size}}"}
        secs, proc = timed(self.store.cmd("pull", "-q", "--arch", "arm64",
                                          f"oci:{self.output}:latest"))
        res["podman_pull"] = sample(secs, proc)
        if proc.returncode == 0:
            run(self.store.cmd("tag", proc.stdout.split()[-1], tag))
            self.loaded = tag
            res["platform"] = self.store.arch(tag)
            res["image_bytes"] = self.store.inspect_size(tag)
        return res

    def smoke(self) -> dict:
        if not self.loaded:
            return {"ok": None, "output": "image not loaded into podman"}
        return smoke_uvship_image(self.store, self.loaded, "--platform", PLATFORM, timeout=180)


class ManagedTool(UvshipTool):
    """uvship with the arm64 interpreter as a uv-managed Python: uv installs it from the
    packed download (during the warm-up) into a directory of the run, which cold builds
    keep (like the uv cache); uvship never runs it."""

    name = "managed"

    def __init__(self, *a: Any, packed: dict, install_dir: Path, request: str | None,
                 **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.request = request
        self.env.update(UV_PYTHON_DOWNLOADS_JSON_URL=packed["downloads_json"],
                        UV_PYTHON_INSTALL_DIR=str(install_dir))

    def python_args(self) -> list[Any]:
        return ["--python", self.request] if self.request else []


# ---------------------------------------------------------------------------- the run

def measure(tools: list[Any], repeat: int, results: dict) -> None:
    log("warm-up (untimed): one build each, so the uv caches hold the aarch64 wheels "
        "(and uv installs the packed arm64 Python)")
    for t in tools:
        s = t.build()
        log(f"  [{t.name:6}] warm-up: {s['seconds']:7.2f} s")
        if not s["ok"]:
            raise Failed(f"{t.name}: warm-up build failed:\n{s.get('output_tail', '')}")
        results[t.name]["warmup_seconds"] = s["seconds"]

    measure_rebuilds(tools, repeat, results)

    log("the images (the example as it is): platform, size, and one run of each under qemu")
    for t in tools:
        t.project.restore()
        s = t.build()
        if not s["ok"]:
            results[t.name]["image"] = {"error": s.get("output_tail", "")}
            results[t.name]["smoke"] = {"ok": False, "output": "final build failed"}
            continue
        results[t.name]["image"] = t.image()
        results[t.name]["smoke"] = t.smoke()
        log(f"  [{t.name:6}] {results[t.name]['image'].get('platform')}, smoke "
            f"{'ok' if results[t.name]['smoke']['ok'] else 'FAILED'}: "
            f"{results[t.name]['smoke']['output'][-200:]}")


def ratios(results: dict) -> dict:
    """podman's median / each uvship variant's, per scenario."""
    out: dict[str, dict] = {}
    for name in UVSHIP_VARIANTS:
        out[name] = {}
        for scen in SCENARIOS:
            a = results.get("podman", {}).get("scenarios", {}).get(scen, {}).get("median")
            b = results.get(name, {}).get("scenarios", {}).get(scen, {}).get("median")
            if a and b:
                out[name][f"{scen}_speedup"] = round(a / b, 2)
    return out


def arm64_facts(uvship: str) -> dict:
    def out(cmd: list[Any]) -> str:
        try:
            return run(cmd, check=False, timeout=120).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unavailable ({exc})"

    binfmt = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    lines = binfmt.read_text().splitlines() if binfmt.exists() else []
    facts: dict[str, Any] = {
        "host_arch": os.uname().machine,
        "qemu_user_static": out(["dpkg-query", "-W", "-f", "${Version}", "qemu-user-static"]),
        "binfmt_qemu_aarch64": {k.rstrip(":"): v.strip() for k, v in
                                (ln.split(" ", 1) for ln in lines if " " in ln)
                                if k.rstrip(":") in ("interpreter", "flags")},
        "arm64_python": str(ARM_PYTHON),
        # through qemu-user with the sysroot as its library prefix, as make-arm64-python does
        "arm64_python_version": out(["qemu-aarch64-static", "-L", ARM_ROOT, ARM_PYTHON, "-c",
                                     "import platform; print(platform.machine(), "
                                     "platform.python_version())"]),
        # the Python running uvship: the native 3.11 the uv-managed variant stages and
        # compiles with (uvship's native_compiler takes it when its minor matches)
        "uvship_python": out([Path(uvship).parent / "python", "-c",
                              "import sys, platform; print(platform.python_version(), 'at', "
                              "sys.executable)"]),
        "git_head": out(["git", "-C", ROOT, "log", "-1", "--format=%h"]),
        "bases": {},
    }
    for amd, arm in ARM_BASES.items():
        fmt = ('{{.Id}}|{{.Os}}/{{.Architecture}}|{{.Size}}|'
               '{{index .Labels "io.uvship.bench-arm64.build-seconds"}}')
        got = out(["podman", "image", "inspect", "--format", fmt, arm]).split("|")
        if len(got) == 4:
            facts["bases"][arm] = {"replaces": amd, "id": got[0][:12], "platform": got[1],
                                   "bytes": int(got[2]), "setup_build_seconds": got[3] or None}
    return facts


def check_prerequisites() -> None:
    if not ARM_PYTHON.exists():
        raise Failed(f"{ARM_PYTHON} is missing; run scripts/make-arm64-python")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        raise Failed("qemu-aarch64 is not registered with binfmt_misc")
    for arm in ARM_BASES.values():
        proc = run(["podman", "image", "inspect", "--format", "{{.Architecture}}", arm],
                   check=False)
        if proc.returncode != 0 or proc.stdout.strip() != "arm64":
            raise Failed(f"no arm64 image {arm} in podman's store; run benchmarks/arm64-setup")


# ---------------------------------------------------------------------------- the report

def notes(res: dict) -> list[str]:
    out: list[str | None] = []
    for name, r in res["tools"].items():
        for scen, sc in r.get("scenarios", {}).items():
            out.append(failed_runs_note(f"{LABELS[name]}, {SCENARIOS[scen]}", sc))
        img = r.get("image", {})
        plat = img.get("platform")
        if plat != "linux/arm64" or img.get("config_platform", "linux/arm64") != "linux/arm64":
            out.append(f"{LABELS[name]}: the image is not linux/arm64 ({plat}, config "
                       f"{img.get('config_platform', '—')}).")
        if r.get("smoke", {}).get("ok") is not True:
            out.append(f"{LABELS[name]}: the image did not pass `hello-web --check` under "
                       f"qemu: {r.get('smoke', {}).get('output', '')[-300:]}")
    a, b = (res["tools"].get(n, {}).get("image", {}).get("layer_digests")
            for n in UVSHIP_VARIANTS)
    if a and b:
        same = sum(x == y for x, y in zip(a, b, strict=False))
        out.append(f"the two uvship images have {'the same' if a == b else 'different'} "
                   f"layers ({same} of {len(a)} layer digests equal"
                   f"{'' if len(a) == len(b) else f', against {len(b)} layers'}).")
    out.append(busy_note(res["machine"]))
    return [n for n in out if n]


def render_md(res: dict) -> str:
    m, a, tools, st = res["machine"], res["arm64"], res["tools"], res["settings"]
    pod = tools.get("podman", {})
    rows = [f"| scenario | {LABELS['podman']} | {LABELS['uvship']} | speed-up | "
            f"{LABELS['managed']} | speed-up |", "|" + "---|" * 6]
    for scen, title in SCENARIOS.items():
        rows.append(f"| {title} | {cell(pod, scen)} | "
                    + " | ".join(f"{cell(tools.get(n, {}), scen)} | {speedup(res, n, scen)}"
                                 for n in UVSHIP_VARIANTS) + " |")
    verdict = []
    for name in UVSHIP_VARIANTS:
        for scen, title in SCENARIOS.items():
            sp = res["ratios"].get(name, {}).get(f"{scen}_speedup")
            got = "not measured" if sp is None else \
                f"{'met' if sp >= TARGET_SPEEDUP else 'missed'} ({sp:.1f}x)"
            verdict.append(f"- {LABELS[name]}, {title}: {got}")

    def smoke(r: dict) -> str:
        s = r.get("smoke", {})
        return ("ok: `" + s.get("output", "").splitlines()[-1][:150] + "`") if s.get("ok") \
            else f"FAILED: {s.get('output', '')[-200:]}"

    def uvship_image(name: str) -> str:
        i = tools.get(name, {}).get("image", {})
        return (f"- {LABELS[name]}: {i.get('platform', '?')} (config "
                f"{i.get('config_platform', '?')}), {fmt_mb(i.get('image_bytes'))} "
                f"({fmt_mb(i.get('compressed_layers_bytes'))} compressed layers); under qemu: "
                f"{smoke(tools.get(name, {}))}")

    bases = "; ".join(f"{ref} ({b['platform']}, {fmt_mb(b['bytes'])}, made by "
                      f"benchmarks/arm64-setup in {b['setup_build_seconds']} s)"
                      for ref, b in a["bases"].items())
    packed = st["managed_python"]
    req = st["managed_python_request"]
    why_req = (f"`--python {req}`: the example's `.python-version` pins "
               f"{st['python_version_pin']}, for which uvship would ask uv for "
               f"cpython-{st['python_version_pin']}-linux-aarch64-gnu, and the packed Python "
               f"is {packed['minor']}" if req else "no `--python` (the pin matches)")
    pi = pod.get("image", {})
    out = [
        f"# uvship benchmark: an arm64 image from an x86_64 host — {m['date']}",
        "",
        f"examples/hello-web; {st['repeat']} run(s) per cell, median shown; "
        f"total runtime {res['duration_seconds'] / 60:.1f} min. Machine: {m['nproc']} cores "
        f"({m['cpu']}), {m['memory']}, Linux {m['kernel']} {a['host_arch']}; qemu-user-static "
        f"{a['qemu_user_static']} (binfmt_misc flags "
        f"{a['binfmt_qemu_aarch64'].get('flags', '?')}); "
        f"podman {m['podman']} (buildah {amd64.buildah_version(m)}, {m['runc']}); "
        f"uvship {m['uvship'].split()[-1]} at {m['uvship_commit']} (git HEAD {a['git_head']}); "
        f"other processes used {m.get('other_cpu_cores', '?')} cores on average during the run. "
        "How: benchmarks/README.md, \"arm64 from this x86_64 host\".",
        "",
        *rows,
        "",
        f"Target from the issue: the arm64 image at least {TARGET_SPEEDUP:g}x faster than "
        "`podman build --platform linux/arm64` under QEMU (informational; nothing fails):",
        "",
        *verdict,
        "",
        "The images (the unchanged example, built once more after the scenarios):",
        "",
        f"- {LABELS['podman']}: {pi.get('platform', '?')}, {fmt_mb(pi.get('image_bytes'))}; "
        f"`hello-web --check` under qemu: {smoke(pod)}",
        *[uvship_image(n) for n in UVSHIP_VARIANTS],
        "",
        "Notes:",
        "",
        "- podman: `podman build --platform linux/arm64 --pull=never --layers=true` of "
        "benchmarks/standard/Dockerfile with its bases swapped for arm64 twins made from "
        f"Debian packages: {bases}. Every RUN step (uv, useradd, Python's byte-compilation) "
        "runs aarch64 code under qemu-user. Cold = every image in the private store except "
        "the bases removed; the `--mount=type=cache` uv cache (aarch64 wheels) stays warm.",
        f"- {LABELS['uvship']}: `uvship build --platform linux/arm64 --python {ARM_PYTHON} "
        "--base oci:<glibc base> -o oci:<dir>:latest`; the base holds only "
        f"{', '.join(st['uvship_base_debs'])} "
        "(made once per run, untimed). Cold = empty `UVSHIP_CACHE_DIR` (the interpreter "
        "is made relocatable and its layers written again); the user's uv cache stays warm. "
        f"The interpreter is Debian's arm64 CPython ({a['arm64_python_version']}), the same "
        "3.11 the podman image gets from apt; uvship runs it through qemu-user (to "
        "byte-compile, and to ask it about itself when its cache has no answer yet).",
        f"- {LABELS['managed']}: `uvship build --platform linux/arm64 "
        f"{'--python ' + req + ' ' if req else ''}--base oci:<glibc base> -o oci:<dir>:latest` "
        "with `UV_PYTHON_DOWNLOADS_JSON_URL=<work>/arm64-downloads/downloads.json` and "
        "`UV_PYTHON_INSTALL_DIR=<work>/arm64-pythons`; " + why_req + ". The same arm64 "
        f"CPython, packed once per run, untimed, by `{packed['command']}` ({packed['key']}, "
        f"{fmt_mb(packed['archive_bytes'])}, {packed['seconds']:.1f} s); uv installs it during "
        "the warm-up. uvship never runs the aarch64 interpreter: uv stages with a native "
        f"{packed['minor']} (the Python running uvship, {a['uvship_python']}) and "
        "`--python-platform`, and that native Python byte-compiles. Cold = empty "
        "`UVSHIP_CACHE_DIR`; the uv-installed Python is kept, like the uv cache.",
        "- uvship's times stop when its OCI layout is written; podman's when the image is in "
        "its store.",
        *[f"- {n}" for n in res["notes"]],
        "",
        "Raw runs (seconds):",
        "",
        "| tool | scenario | runs |",
        "|---|---|---|",
    ]
    for name, r in tools.items():
        out.append(f"| {LABELS[name]} | warm-up (untimed in the table) | "
                   f"{r.get('warmup_seconds', 0):.2f} |")
        for scen, sc in r.get("scenarios", {}).items():
            runs = ", ".join(f"{s['seconds']:.2f}" + ("" if s["ok"] else " (failed)")
                             for s in sc["samples"])
            out.append(f"| {LABELS[name]} | {SCENARIOS[scen]} | {runs} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, 3, DEFAULT_OUT)
    t_start = time.perf_counter()
    busy0, own0 = cpu_busy_seconds(), own_cpu_seconds()

    uvship = default_uvship(args.uvship)
    try:
        from uv import find_uv_bin

        uv = find_uv_bin()
    except ImportError:
        uv = str(TOOLS_UV)
    check_prerequisites()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="uvship-bench-arm64-", dir="/var/tmp"))
    log(f"work directory: {work}")
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("UVSHIP_CACHE_DIR", None)
    machine = machine_info(uv, uvship)
    facts = arm64_facts(uvship)
    results: dict[str, Any] = {n: {"available": True, "label": LABELS[n], "scenarios": {}}
                               for n in TOOLS}
    store: PrivateStore | None = None
    try:
        src = locked_example(work)
        base = make_uvship_base(work / "uvship-base")
        log("packing the arm64 CPython as a uv-managed download (uvship pack-python)")
        packed = pack_arm64_python(uvship, work / "arm64-downloads", env)
        pin = pinned_version(src)
        # uvship asks uv for cpython-<pin>-linux-aarch64-gnu: name the packed minor when the
        # pin names another
        request = packed["minor"] if pin and not f"{pin}.".startswith(
            f"{packed['minor']}.") else None
        log("copying the arm64 base images into a private podman store")
        store = PrivateStore(work / "store", list(ARM_BASES.values()),
                             ARM_BASES["localhost/uvship/python:3.11-bookworm"])
        for n in TOOLS:
            (work / n).mkdir()
        tools = [PodmanTool(work / "podman", src, store),
                 UvshipTool(work / "uvship", src, uvship, base["ref"], env, store),
                 ManagedTool(work / "managed", src, uvship, base["ref"], env, store,
                             packed=packed, install_dir=work / "arm64-pythons",
                             request=request)]
        measure(tools, args.repeat, results)
    finally:
        clean_up(store, work, args.keep)

    finish_machine(machine, busy0, own0, t_start)
    for r in results.values():
        r["scenarios"] = {k: summarize(v) for k, v in r["scenarios"].items()}
    res: dict[str, Any] = {
        "schema": 2,
        "machine": machine,
        "arm64": facts,
        "settings": {
            "repeat": args.repeat, "platform": PLATFORM, "example": "examples/hello-web",
            "edited_file": EDITED_FILE, "standard_dockerfile": "benchmarks/standard/Dockerfile",
            "dockerfile_bases": ARM_BASES,
            "podman_build": "podman build --platform linux/arm64 --pull=never --layers=true "
                            "-t TAG <copy>",
            "uvship_build": f"uvship build <copy> --platform linux/arm64 --python {ARM_PYTHON} "
                            "--base oci:<dir>:glibc -o oci:<dir>:latest",
            "managed_build": "UV_PYTHON_DOWNLOADS_JSON_URL=<work>/arm64-downloads/downloads.json "
                             "UV_PYTHON_INSTALL_DIR=<work>/arm64-pythons uvship build <copy> "
                             "--platform linux/arm64 "
                             f"{'--python ' + request + ' ' if request else ''}"
                             "--base oci:<dir>:glibc -o oci:<dir>:latest",
            "managed_python": packed,
            "managed_python_request": request,
            "python_version_pin": pin,
            "uvship_base_debs": base["debs"],
            "uv_cache": "warm for all: buildah's RUN cache mount for podman, the user's uv "
                        "cache for uvship; the managed variant's uv-installed Python is kept "
                        "across cold builds too",
        },
        "tools": results,
        "target_min_speedup": TARGET_SPEEDUP,
    }
    res["ratios"] = ratios(results)
    res["duration_seconds"] = round(time.perf_counter() - t_start, 1)
    res["notes"] = notes(res)
    write_results(args.out, res, render_md(res))
    return 0


if __name__ == "__main__":
    cli(main)
