"""From a staged environment to image layers: runtime, interpreter, tiers; cached by inputs."""

from __future__ import annotations

import functools
import os
import shlex
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import cache, layers, oci
from ..cache import blob_checked, blob_ok, key_of
from ..errors import InputError
from ..layers import Compression
from ..progress import NullProgress, Progress
from ..python.interpreter import BUILD_ONLY, Interpreter
from ..stage.files import AppFiles
from ..stage.venv import StagedEnv, Tier
from . import split
from .image import Image

# Bumped when the bytes a layer holds change for the same inputs.
_LAYER_FORMAT = 4
# Bumped when what native_libraries finds changes for the same inputs.
_NATIVE_FORMAT = 2
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class BuiltLayer:
    """A layer in the cache with what uvship knows about it (for history and inspect)."""

    layer: oci.Layer
    role: str  # runtime | interpreter | dependencies | local | project
    key: str
    created_by: str
    contents: dict[str, int]  # what it holds: package or directory -> bytes
    inputs: dict[str, Any]  # what decided it, for "why did it change"


def cached_layer(role: str, key: str, make_entries: Callable[[], list[layers.Entry]],
                 compression: Compression, describe: Callable[[], tuple[str, dict, dict]]
                 ) -> BuiltLayer:
    """The layer cached under ``key``, or made from ``make_entries()`` and cached.

    The blob is written to a temporary file and renamed to its digest, and the record
    after it: a build interrupted anywhere leaves no record pointing at a missing blob.
    """
    known = _recorded(key)
    if known is not None:
        return known
    entries = layers.normalize(make_entries())
    created_by, contents, inputs = describe()
    if not contents:
        contents = layer_contents(entries)
    blobs = cache.blob_dir()
    fd, tmp = tempfile.mkstemp(prefix=f".layer-{os.getpid()}-", dir=blobs)
    try:
        with os.fdopen(fd, "wb") as f:
            info = layers.write_tar(entries, f, compression=compression)
        blob = blobs / info.digest.split(":", 1)[1]
        os.chmod(tmp, 0o444)
        os.replace(tmp, blob)
    except BaseException:
        os.unlink(tmp)
        raise
    blob_checked(blob, info.digest)  # hashed as it was written
    d = {"role": role, "digest": info.digest, "diff_id": info.diff_id, "size": info.size,
         "media_type": oci.types.MEDIA_TYPE_OF_COMPRESSION[compression],
         "created_by": created_by, "contents": contents, "inputs": inputs}
    cache.write_record("layers", key, d)
    cache.write_record("layers-by-digest", info.digest.split(":", 1)[1], {**d, "key": key})
    return _from_record(d, blob, key)


def _from_record(d: dict[str, Any], blob: Path, key: str) -> BuiltLayer:
    layer = oci.Layer(d["digest"], d["diff_id"], d["size"], d["media_type"], path=blob)
    return BuiltLayer(layer, d["role"], key, d["created_by"], d["contents"], d["inputs"])


def layer_contents(entries: list[layers.Entry], top: int = 8) -> dict[str, int]:
    """The biggest things a layer holds: packages in site-packages, else directories."""
    sizes: dict[str, int] = {}
    for e in layers.iter_files(entries):
        parts = e.path.split("/")
        if "site-packages" in parts:
            i = parts.index("site-packages")
            name = parts[i + 1] if len(parts) > i + 1 else "site-packages"
            if name.endswith(".dist-info"):
                name = name[: -len(".dist-info")].rsplit("-", 1)[0]
            name = name.lower().replace("-", "_").removesuffix(".py")
        else:
            name = "/" + "/".join(parts[:3] if len(parts) > 3 else parts[:-1])
        sizes[name] = sizes.get(name, 0) + e.size()
    best = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return dict(best)


# ---------------------------------------------------------------------- the layers
def interpreter_layer(i: Interpreter, python_path: str, compression: Compression) -> BuiltLayer:
    key = key_of("interpreter", _LAYER_FORMAT, i.key, python_path, compression)

    def describe():
        return (f"uvship: CPython {i.version_str} ({i.source}) at {python_path}",
                {f"cpython {i.version_str}": _tree_size(i.root)},
                {"version": i.version_str, "source": i.source, "libc": i.libc,
                 "min_glibc": i.min_glibc})

    return cached_layer("interpreter", key, lambda: layers.scan(i.root, python_path,
                                                                skip=BUILD_ONLY),
                        compression, describe)


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def tier_layer_key(tier_key: str, compression_or_media_type: str) -> str:
    """The cache key of a tier's layer (a media type names its compression)."""
    compression = oci.types.LAYER_COMPRESSION.get(compression_or_media_type,
                                                  compression_or_media_type)
    return key_of("tier-layer", _LAYER_FORMAT, tier_key, compression)


def tier_layer(env: StagedEnv, tier: Tier, compression: Compression) -> BuiltLayer:
    key = tier_layer_key(tier.key, compression)
    dists = sorted(tier.distributions, key=lambda d: d.name)

    def describe():
        if tier.name == "dependencies":
            what = f"{len(dists)} third-party package{'' if len(dists) == 1 else 's'}"
        else:
            what = ", ".join(f"{d.name} {d.version}" for d in dists) or "nothing"
        inputs = {"packages": {d.name: d.version for d in dists}}
        if tier.name != "dependencies":
            inputs["sources"] = tier_sources(env, tier)
        return (f"uvship: {tier.name}: {what}", {}, inputs)

    return cached_layer(tier.name, key, lambda: env.tier_entries(tier), compression, describe)


def tier_layer_jobs(env: StagedEnv, tier: Tier,
                    compression: Compression) -> list[Callable[[], BuiltLayer]]:
    """What makes a tier's layers, one job per layer, for the layer pool: the third-party
    tier split by distribution (image.split), any other tier whole. Known splits are
    remembered under the tier, so a rebuild reads one record per layer."""
    if tier.name != "dependencies" or not tier.distributions:
        return [functools.partial(tier_layer, env, tier, compression)]
    key = key_of("dependency-layers", _LAYER_FORMAT, split.RULE, tier.key, compression)
    known = cache.read_record("dependency-layers", key)
    if known is not None:
        ready = [_recorded(k) for k in known]
        if all(r is not None for r in ready):
            return [lambda r=r: r for r in ready]
    parts = split.groups(env, tier)
    keys = [split.group_key(env, g, compression, _LAYER_FORMAT) for g in parts]
    cache.write_record("dependency-layers", key, keys)  # each layer is checked when read
    return [functools.partial(_group_layer, env, tier, g, k, compression)
            for g, k in zip(parts, keys, strict=True)]


def _recorded(key: str) -> BuiltLayer | None:
    """The layer cached under ``key``, if its record and blob are intact (a changed blob
    is made again)."""
    d = cache.read_record("layers", key)
    if d is None:
        return None
    blob = cache.blob_path(d["digest"])
    return _from_record(d, blob, key) if blob_ok(blob, d["digest"], d["size"]) else None


def _group_layer(env: StagedEnv, tier: Tier, group: split.Group, key: str,
                 compression: Compression) -> BuiltLayer:
    def describe():
        dists = group.distributions
        what = ", ".join(f"{d.name} {d.version}" for d in dists) or "the environment's own files"
        return (f"uvship: dependencies: {group.label}: {what}", {},
                {"group": group.label, "packages": {d.name: d.version for d in dists}})

    return cached_layer("dependencies", key, lambda: env.tier_entries(tier, group.files),
                        compression, describe)


def tier_sources(env: StagedEnv, tier: Tier) -> dict[str, str]:
    """Per-file hashes of the local sources a tier was built from (for `inspect`)."""
    from ..project.workspace import Workspace
    from ..stage.keys import source_files

    ws = Workspace.open(env.plan.project_dir)
    out = {}
    for d in tier.distributions:
        if d.name in ws.packages and ws.packages[d.name].is_local:
            for rel, h in source_files(ws, d.name).items():
                out[f"{d.name}:{rel}"] = h
    return out


def files_layer(app: AppFiles, compression: Compression) -> BuiltLayer:
    """The project's files in the working directory, with what the build steps made."""
    key = key_of("files-layer", _LAYER_FORMAT, app.key, compression)

    def describe():
        made = f", {len(app.outputs)} made by build steps" if app.outputs else ""
        return (f"uvship: files: {app.count} project files at {app.app_dir}{made}", {},
                {"sources": dict(app.sources), "outputs": list(app.outputs)})

    return cached_layer("files", key, lambda: layers.scan(app.root, ""), compression, describe)


def runtime_layer(i: Interpreter, compression: Compression) -> BuiltLayer:
    """The scratch runtime of the interpreter: its glibc closure, CAs, zoneinfo, passwd.

    It depends on the interpreter and this host only, so it is made while uv syncs;
    what extension modules need beyond it goes into ``extra_runtime_layer``.
    """
    key = key_of("runtime", _LAYER_FORMAT, i.key, i.machine, _host_id(), compression,
                 _version("certifi"), _version("tzdata"))
    made: dict[str, Any] = {}

    def make() -> list[layers.Entry]:
        from . import runtime

        rt = runtime.scratch_runtime([i.root], machine=i.machine or "x86_64")
        made["rt"] = rt
        return rt.entries

    def describe():
        rt = made["rt"]
        comps = rt.components
        libc = next((f"{c['name']} {c['version']}" for c in comps
                     if c["name"] in ("glibc", "musl")), "?")
        return (f"uvship: runtime: {libc}, CA certificates, time zones, passwd",
                {}, {"components": {c["name"]: c.get("version") for c in comps},
                     "paths": sorted(e.path for e in rt.entries), "sbom": comps})

    return cached_layer("runtime", key, make, compression, describe)


def native_libraries(env: StagedEnv) -> dict[str, str]:
    """The host libraries the environment's ELF files load on the scratch base (soname ->
    host path); InputError, before any of its layers is written, for one the image would
    not have (runtime.env_libraries). Remembered under the tiers that hold ELF files, the
    interpreter and this host's libraries: a rebuild reads one small file.

    Remembered by the ELF facts of each tier's files (which tier, where, what each needs
    and where it looks), not by the tiers' keys: a new lock whose changes are pure Python
    (most bumps) needs what the last one needed, without reading the host's libraries."""
    i = env.interpreter
    with_elf = [t for t in env.tiers if t.elf is None or t.elf]
    key = key_of("native-libraries", _NATIVE_FORMAT,
                 [[t.name, sorted(t.elf.items()) if t.elf is not None else t.key]
                  for t in with_elf], i.key, _host_id())
    if key in _NATIVE_SEEN:
        return _NATIVE_SEEN[key]
    known = cache.read_record("native-libraries", key)
    if known is not None:
        return _NATIVE_SEEN.setdefault(key, known)
    from . import runtime

    # each tier's files are in the root of the tier that staged them
    roots = {t.name: t.root.resolve() for t in env.tiers}
    files = {roots[t.name] / rel: info for t in with_elf for rel, info in t.elf_files().items()}
    owners = {str(roots[t.name] / rel): f"{d.name} {d.version}"
              for t in env.tiers for d in t.distributions for rel in d.files}

    def owner(path: Path) -> str | None:
        return owners.get(str(path))

    libs = runtime.env_libraries(files, [i.root, *dict.fromkeys(roots.values())], i.exe, owner)
    got = {s: str(p) for s, p in libs.items()}
    cache.write_record("native-libraries", key, got)
    return _NATIVE_SEEN.setdefault(key, got)


_NATIVE_SEEN: dict[str, dict[str, str]] = {}  # native_libraries' answers in this process


def extra_runtime_layer(env: StagedEnv, compression: Compression,
                        have: frozenset[str]) -> BuiltLayer | None:
    """What the environment's ELF files load from this host beyond ``have``, or None."""
    libs = {s: p for s, p in native_libraries(env).items() if p.lstrip("/") not in have}
    if not libs:
        return None
    i = env.interpreter
    key = key_of("runtime-extra", _LAYER_FORMAT, i.key, sorted(libs.items()), _host_id(),
                 sorted(have), compression)
    made: dict[str, Any] = {}

    def make() -> list[layers.Entry]:
        from . import runtime

        rt = runtime.library_runtime({s: Path(p) for s, p in libs.items()}, i.exe)
        made["extra"] = [e for e in rt.entries if e.path not in have]
        made["sbom"] = rt.components
        return made["extra"]

    def describe():
        return (f"uvship: runtime for extension modules: {', '.join(sorted(libs))}", {},
                {"paths": sorted(e.path for e in made["extra"]), "sbom": made["sbom"]})

    return cached_layer("runtime", key, make, compression, describe)


def runtime_paths(built: BuiltLayer) -> frozenset[str]:
    """The paths a runtime layer holds (kept in its cache record)."""
    return frozenset(built.inputs.get("paths", ()))


def _host_id() -> list[Any]:
    """What identifies this host's system libraries, cheaply (the runtime layer's source)."""
    out = []
    for p in ("/var/lib/dpkg/status", "/lib/x86_64-linux-gnu/libc.so.6",
              "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6"):
        try:
            st = os.stat(p)
            out.append((p, st.st_size, st.st_mtime_ns))
        except OSError:
            pass
    return out


def _version(dist: str) -> str | None:
    """The version of certifi or tzdata, whose files the runtime layer holds.

    Read from the module's source, not by importing it (certifi's import costs ~10 ms,
    importlib.metadata's ~40 ms, on every rebuild).
    """
    import importlib.util
    import re

    spec = importlib.util.find_spec(dist)
    if spec is None or spec.origin is None:
        return None
    name = "__version__" if dist == "certifi" else "IANA_VERSION"
    try:
        text = Path(spec.origin).read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(rf"^{name}\s*=\s*[\"']([^\"']+)[\"']", text, re.M)
    return m.group(1) if m else None


# ---------------------------------------------------------------------- copy_venv
def copy_venv(image: Image, env: StagedEnv, *, set_env_vars: bool = True,
              compression: Compression = "gzip", progress: Progress | None = None,
              started: StartedLayers | None = None) -> Image:
    """``image`` with the environment's runtime (scratch only), interpreter and tier layers."""
    progress = progress or NullProgress()
    plan = env.plan
    if not image.is_scratch:
        check_base(image, env.interpreter)
    if image.is_scratch:  # what no image layer can fix is refused before any is written
        native_libraries(env)
    own = started is None
    started = started or start_layers(image, env.interpreter, plan.python_path, compression)
    built: list[BuiltLayer] = []
    try:
        tiers = [f for t in env.tiers if t.files
                 for f in started.tiers.get(t.key) or started.submit(env, t)]
        with progress.step("writing layers"):
            have = set(image.runtime_paths)
            if started.runtime is not None:
                rt = started.runtime.result()
                built.append(rt)
                have |= runtime_paths(rt)
            if image.is_scratch:
                extra = extra_runtime_layer(env, compression, frozenset(have))
                if extra is not None:
                    built.append(extra)
                    have |= runtime_paths(extra)
            ib = started.interpreter.result()
            if ib.layer.digest not in {layer.digest for layer in image.oci.layers}:
                built.append(ib)
            built.extend(f.result() for f in tiers)
            if env.app is not None:
                built.append(files_layer(env.app, compression))
    finally:
        if own:
            started.pool.shutdown(wait=True, cancel_futures=True)
    img = image.oci
    for b in built:
        img = img.with_layer(b.layer, created_by=b.created_by)
    out = replace(image, oci=img, runtime_paths=frozenset(have),
                  runtime_components=(*image.runtime_components, *runtime_components(built)),
                  venvs=(*image.venvs, plan.env_path),
                  layer_info=(*image.layer_info, *({"digest": b.layer.digest, "role": b.role,
                                                     "key": b.key, "created_by": b.created_by,
                                                     "contents": b.contents,
                                                     "inputs": _public_inputs(b.inputs)}
                                                    for b in built)))
    if set_env_vars:
        out = _with_env_vars(out, env)
    return out


def _public_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if k not in ("paths", "sbom")}


def runtime_components(built: list[BuiltLayer]) -> list[dict[str, Any]]:
    """What the runtime layers added, as the SBOM lists it."""
    return [c for b in built if b.role == "runtime" for c in b.inputs.get("sbom", [])]


@dataclass
class StartedLayers:
    """Layers that depend only on the interpreter and the host, started before uv runs."""

    pool: ThreadPoolExecutor
    interpreter: Future[BuiltLayer]
    runtime: Future[BuiltLayer] | None
    compression: Compression = "gzip"
    tiers: dict[str, list[Future[BuiltLayer]]] = field(default_factory=dict)
    scratch: bool = False  # the image's base: its libraries are checked before a tier's layer

    def submit(self, env: StagedEnv, tier: Tier) -> list[Future[BuiltLayer]]:
        """The tier's layers, being written by the pool."""
        return [self.pool.submit(job) for job in tier_layer_jobs(env, tier, self.compression)]

    def tier_ready(self, env: StagedEnv, tier: Tier) -> None:
        """Write a tier's layers while the next tier is staged (``venv.stage``'s on_tier)."""
        if self.scratch and tier.elf != {}:
            native_libraries(env)
        if tier.files:
            self.tiers[tier.key] = self.submit(env, tier)


def start_layers(image: Image, interp: Interpreter, python_path: str,
                 compression: Compression) -> StartedLayers:
    pool = ThreadPoolExecutor(2, thread_name_prefix="uvship-layer")
    runtime = (pool.submit(runtime_layer, interp, compression)
               if image.is_scratch and not image.runtime_paths else None)
    return StartedLayers(pool, pool.submit(interpreter_layer, interp, python_path,
                                           compression), runtime, compression,
                         scratch=image.is_scratch)


def _with_env_vars(image: Image, env: StagedEnv) -> Image:
    plan = env.plan
    bin_dir = f"{plan.env_path}/bin"
    current = image.env().get("PATH", DEFAULT_PATH)
    parts = [p for p in current.split(":") if p and p != bin_dir]
    image = image.with_env_variable("PATH", ":".join([bin_dir, *parts]))
    if plan.mode == "venv":
        image = image.with_env_variable("VIRTUAL_ENV", plan.venv_path)
    image = image.with_env_variable("PYTHONUNBUFFERED", "1")
    if image.is_scratch:
        image = image.with_env_variable("SSL_CERT_FILE", CA_BUNDLE)
    return image


def check_base(image: Image, interp) -> None:
    """Refuse a base the interpreter cannot run on (architecture, libc, glibc floor).

    The facts of a base are kept by its digest: reading its layers costs a few tenths of
    a second, too much for every rebuild.
    """
    if image.is_scratch:
        return
    from .basecheck import check_base as _check

    facts = base_facts_of(image)
    _check(facts, machine=interp.machine or "x86_64", libc=interp.libc,
           min_glibc=interp.min_glibc, base_name=image.base.name)


def base_facts_of(image: Image):
    """The base's architecture, C library and shell, read once per base digest."""
    from .basecheck import BaseFacts, base_facts

    key = image.digest.split(":", 1)[1]
    known = cache.read_record("base-facts", key)
    if known is not None:
        return BaseFacts(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in known.items()})
    facts = base_facts(image.oci)
    cache.write_record("base-facts", key, facts.__dict__)
    return facts


# ---------------------------------------------------------------------- whole images
@dataclass(frozen=True)
class ImageSpec:
    """What `uvship build` adds around the environment: entrypoint, config, labels."""

    entrypoint: str | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    user: str = "65532:65532"
    compression: Compression = "gzip"

    def __post_init__(self) -> None:
        from ..project.plan import check_user, env_pairs

        check_user(self.user)  # never a shell line in the config
        env_pairs(tuple(f"{k}={v}" for k, v in self.env), "--env")


def run_words(ws, plan, spec: ImageSpec, files=None) -> tuple[str, ...] | None:
    """What the image runs, as words to resolve in the environment: the command, else
    --entrypoint, else the package's one console script; None when only --cmd is given (the
    environment's python runs it). Refused before any work when nothing says what runs.

    ``files`` is the selection of the project's files (for the error's examples).
    """
    if plan.command and spec.entrypoint:
        raise InputError(f"command {shlex.join(plan.command)!r} and entrypoint "
                         f"{spec.entrypoint!r}: expected one of them",
                         hint="give the whole command with --command")
    if plan.command:
        return plan.command
    if spec.entrypoint:
        return (spec.entrypoint,)
    scripts = sorted(project_scripts(ws, plan.selected))
    if len(scripts) == 1:
        return (scripts[0],)
    if spec.cmd:
        return None  # the command line names what to run with the environment's python
    names = ", ".join(plan.selected) or str(ws.project_dir)
    hint = command_hint(ws, plan, files)
    if files is not None and not files.has_code:
        raise InputError(
            f"{names}: nothing to ship: the project has no [build-system], so its code ships "
            f"as the files of {files.root}, and none is there ({len(files.files)} files, "
            "metadata only, after .dockerignore and the defaults that are never shipped)",
            hint="add the code, check .dockerignore, or " + hint)
    if not scripts:
        raise InputError(f"{names}: no console script in [project.scripts] (expected one, or "
                         "a command that says what the image runs)", hint=hint)
    raise InputError(
        f"{names}: several console scripts ({', '.join(scripts)}), expected one",
        hint=f"choose one with --command, e.g. --command {scripts[0]}")


def project_scripts(ws, names) -> set[str]:
    """Console scripts that local packages ``names`` declare ([project.scripts])."""
    return {s for name in names if name in ws.members for s in ws.members[name].scripts}


def resolve_run(ws, plan, words: tuple[str, ...], layout, what: str, files=None) -> list[str]:
    """``words`` resolved in ``layout`` (command.resolve), errors hinting at the project's
    own modules."""
    from ..project.command import resolve

    try:
        return resolve(words, layout, what)
    except InputError as exc:
        if exc.hint and not exc.hint.startswith("write the whole command"):
            raise  # a hint of its own, about this command
        raise InputError(exc.message, hint=command_hint(ws, plan, files)) from exc


def runnable_modules(root: Path, depth: int = 4) -> list[str]:
    """The import names in a package's source that `python -m` runs (a package with a
    __main__.py, a module with a main block), as its build backend installs them: src/
    layout or flat, namespaces included; else its top-level packages."""
    base = root / "src" if (root / "src").is_dir() else root
    skip = {"tests", "test", "docs", "build", "dist", "node_modules"}
    out, top = [], []
    for dirpath, dirnames, filenames in os.walk(base):
        rel = Path(dirpath).relative_to(base).parts
        dirnames[:] = sorted(d for d in dirnames if d.isidentifier() and d not in skip
                             and len(rel) < depth)
        if not rel:
            continue
        if len(rel) == 1 and "__init__.py" in filenames:
            top.append(rel[0])
        if "__main__.py" in filenames:
            out.append(".".join(rel))
        for n in sorted(filenames):
            if n.endswith(".py") and n not in ("__init__.py", "__main__.py") and \
                    n[:-3].isidentifier() and _has_main_block(Path(dirpath, n)):
                out.append(".".join((*rel, n[:-3])))
    return out or top


def _has_main_block(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return b"__main__" in f.read(200_000)
    except OSError:
        return False


def command_hint(ws, plan, files=None) -> str:
    """'say what runs with --command ...', with the project's own modules as examples."""
    from ..project.command import examples_from

    modules = [m for n in plan.selected if n in ws.members
               and "virtual" not in ws.packages[n].source
               for m in runnable_modules(ws.members[n].path)]
    examples = examples_from(files.root if files else None, files.files if files else (),
                             modules)
    shown = " or ".join(f"--command {shlex.join(e.split())!r}" for e in examples[:3]) or \
        "--command 'python -m yourpackage'"
    return f"say what runs with the whole command, e.g. {shown}"


def finish_image(image: Image, env: StagedEnv, ws, spec: ImageSpec) -> Image:
    """Entrypoint, user, workdir, env and the org.opencontainers labels."""
    plan = env.plan
    python = (f"{plan.python_path}/{env.interpreter.executable}" if plan.mode == "system"
              else f"{plan.venv_path}/bin/python")
    # the command as resolved in the environment: `podman run IMAGE ARGS` appends ARGS
    image = image.with_entrypoint(list(env.command) if env.command else [python])
    image = image.with_cmd(list(spec.cmd) if spec.cmd else None)
    image = image.with_user(spec.user)
    image = image.with_workdir(plan.workdir)
    for k, v in spec.env:
        image = image.with_env_variable(k, v)
    labels = _oci_labels(ws, env, image)
    labels.update(dict(spec.labels))
    image = image.with_labels(labels)
    return replace(image, oci=image.oci.with_created(oci.default_created()))


def _oci_labels(ws, env: StagedEnv, image: Image) -> dict[str, str]:
    plan = env.plan
    labels = {"org.opencontainers.image.created": oci.default_created()}
    if len(plan.selected) == 1 and plan.selected[0] in ws.members:
        project = ws.members[plan.selected[0]].pyproject.get("project", {})
        labels["org.opencontainers.image.title"] = project.get("name", plan.selected[0])
        # the built distribution's: a dynamic version (hatch-vcs, setuptools-scm) is
        # known only once the backend has run
        built = [d.version for d in env.distributions if d.name == plan.selected[0]]
        version = built[0] if built else project.get("version")
        if version:
            labels["org.opencontainers.image.version"] = str(version)
        if project.get("description"):
            labels["org.opencontainers.image.description"] = project["description"]
        urls = {k.lower(): v for k, v in (project.get("urls") or {}).items()}
        for k in ("source", "repository", "homepage"):
            if k in urls:
                labels["org.opencontainers.image.source"] = urls[k]
                break
    revision = _git_revision(ws.root)
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    if not image.is_scratch:
        labels["org.opencontainers.image.base.name"] = image.base.name
        labels["org.opencontainers.image.base.digest"] = image.base.digest or ""
    return labels


def _git_revision(root: Path) -> str | None:
    from .. import _proc
    from ..errors import CommandError

    try:
        out = _proc.run(["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
                        what="git rev-parse")
    except CommandError:
        return None
    rev = out.stdout.strip()
    return rev if len(rev) in (40, 64) else None
