"""The build, in pipeline order: the plan's interpreter (checked against the target and the
lock), the staged environment with what runs and the project's files, then an image or a
bundle. api.py is a thin facade over these functions; nothing here prints."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import InputError, Option
from .image import assemble
from .image.image import Image
from .progress import Progress
from .project import command as _command
from .project.plan import Options, Plan, env_pairs, host_platform, machine_of
from .project.workspace import Workspace
from .publish import bundle as _bundle
from .python import interpreter as _interpreter
from .stage import checks as _checks
from .stage import files as projectfiles
from .stage import venv as _venv
from .stage.platforms import native_stager


# ---------------------------------------------------------------------- the interpreter
def interpreter(ws: Workspace, plan: Plan, progress: Progress) -> _interpreter.Interpreter:
    """The plan's interpreter: a local CPython for --python PATH; else the one uv-managed
    CPython for the target that the request (--python, .python-version, requires-python)
    chooses from uv's download list. InputError when it cannot run the target's machine
    or links another C library than the target's."""
    from .python.managed import wanted_by

    python = plan.python
    source = Path(python) if python and _interpreter.is_path_request(python) else \
        wanted_by(ws, plan)
    interp = _interpreter.resolve(
        source, project_dir=ws.project_dir, requires_python=ws.requires_python,
        python_path=plan.python_path, compile_bytecode=plan.compile, strip=plan.strip,
        progress=progress)
    want = machine_of(plan.platform)
    if interp.machine != want:
        raise InputError.of(Option("platform", plan.platform),
                            f"the interpreter ({interp.origin}) is built for {interp.machine}, "
                            f"expected {want}",
                            hint=f"give an {want} CPython with --python PATH (for another "
                            "machine, one inside a sysroot that holds its loader and glibc, "
                            "run here through qemu-user)")
    if plan.libc and interp.libc and interp.libc != plan.libc:
        raise InputError.of(Option("libc", plan.libc),
                            f"the interpreter ({interp.origin}) links {interp.libc}, expected "
                            f"{plan.libc} for {plan.target}",
                            hint=f"give a {plan.libc} CPython with --python PATH, or a "
                            f"uv-managed one: uv python install cpython-{interp.minor}-linux-"
                            f"{want}-{'gnu' if plan.libc == 'glibc' else 'musl'}")
    return interp


def checked_interpreter(ws: Workspace, plan: Plan,
                        progress: Progress) -> _interpreter.Interpreter:
    """Every locked package checked for a wheel for the target, the interpreter (found,
    or installed by uv), then the lock checked with it: the checks that can fail a build
    before its environment is staged. The lock check needs the interpreter: without
    one, uv would report a missing Python where the lock is fine."""
    _check_target_wheels(ws, plan, plan.libc or "glibc")
    interp = interpreter(ws, plan, progress)
    _checks.check_lock(ws, interp)
    if interp.libc and interp.libc != (plan.libc or "glibc"):
        # the interpreter decided the C library (a musl --python PATH): check again
        _check_target_wheels(ws, plan, interp.libc)
    return interp


def _check_target_wheels(ws: Workspace, plan: Plan, libc: str) -> None:
    """For another platform or C library than this host's, or a base's glibc: every
    locked package needs a wheel for it, or a source that builds a pure-Python one
    (nothing can be compiled for another target here)."""
    from .python.managed import host_glibc

    if plan.platform != host_platform() or libc != "glibc" or plan.glibc:
        host = plan.platform == host_platform() and libc == "glibc" and host_glibc()
        _checks.check_wheels_for(ws, plan, libc, host=host)


# ---------------------------------------------------------------------- staging
def project_files(plan: Plan) -> projectfiles.Selection | None:
    """The selection of the project's files that ship (None: a packaged project)."""
    return projectfiles.select(plan.files_dir) if plan.files_dir else None


def stage(ws: Workspace, plan: Plan, options: Options, progress: Progress) -> _venv.StagedEnv:
    """The environment staged (tiers cached by their inputs) with what runs and the
    project's files; nothing is laid out yet."""
    files = project_files(plan)
    words = plan.command or None
    if words:
        _command.check_form(words, "command")
    return stage_with(ws, plan, checked_interpreter(ws, plan, progress), words, files,
                      progress, image_env=env_pairs(options.env, "--env"))


def stage_with(ws: Workspace, plan: Plan, interp: _interpreter.Interpreter,
               words: tuple[str, ...] | None, files: projectfiles.Selection | None,
               progress: Progress, *, scratch: bool = True,
               image_env: tuple[tuple[str, str], ...] = (), what: str = "command",
               on_tier=None, fetch=None, on_built=None) -> _venv.StagedEnv:
    """The tiers, then what runs (resolved in them), then the project's files and the
    build steps. The command is checked as soon as the dependencies are staged, before
    their layer is written; programs of the project itself are known from its
    pyproject.toml."""
    projectfiles.check_steps_possible(plan, interp)
    known = assemble.project_scripts(ws, (*plan.selected, *plan.local_members))
    names = frozenset(files.files) if files is not None else None

    def resolve(bin_dir: Path) -> list[str]:
        layout = projectfiles.layout_of(plan, interp, staged_bin=bin_dir,
                                        known_scripts=known, files=names, scratch=scratch)
        return assemble.resolve_run(ws, plan, words or (), layout, what, files)

    def checked(env: _venv.StagedEnv, tier: _venv.Tier) -> None:
        if words and tier.name == "dependencies" and words[0] not in known:
            resolve(tier.root / "bin")
        if on_tier is not None:
            on_tier(env, tier)

    env = _venv.stage(ws, plan, interp, progress=progress, on_tier=checked, fetch=fetch,
                      on_built=on_built)
    command = tuple(resolve(env.root / "bin")) if words else None
    app = None
    if files is not None:
        layout = projectfiles.layout_of(plan, interp, staged_bin=env.root / "bin",
                                        files=names, scratch=scratch)
        app = projectfiles.stage(
            plan, files, env_copy=env.copy_to, env_key=env.tiers[-1].key,
            python=native_stager(interp) or interp.exe, interp=interp,
            layout=layout, image_env=dict(image_env), progress=progress)
        if app.left_out:
            progress.note(f"left out of the project's files (secrets are never shipped, "
                          f"even when a build step wrote them): {', '.join(app.left_out)}")
    return replace(env, app=app, command=command)


# ---------------------------------------------------------------------- images
def build_image(ws: Workspace, plan: Plan, options: Options, progress: Progress,
                base: Image, spec: assemble.ImageSpec) -> Image:
    """The whole image `uvship build` makes on ``base``: the base checked, the layers that
    need no uv (interpreter, runtime) made while uv syncs, the tiers (shared through
    ``options.cache_repo`` when set), the project's files, config, labels and SBOM."""
    from .sbom.cyclonedx import cached_sbom

    files = project_files(plan)
    words = assemble.run_words(ws, plan, spec, files)
    what = "command" if plan.command else "entrypoint"
    if words:
        _command.check_form(words, what)
    if not base.is_scratch:
        facts = assemble.base_facts_of(base)
        plan = replace(plan, glibc=facts.glibc_version)
        # the target's C library is the base's: a musl base gets a musl interpreter
        if plan.libc is None and facts.libc == "musl" and not (
                plan.python and _interpreter.is_path_request(plan.python)):
            plan = replace(plan, libc="musl")
    interp = checked_interpreter(ws, plan, progress)  # before any layer is started
    host = os.uname().machine
    if base.is_scratch and interp.machine != host:
        raise InputError.of(
            Option("base", "scratch"), f"the scratch runtime is made of this host's "
            f"libraries, which are {host}; expected {interp.machine} for {plan.platform}",
            hint=f"give a base image for {plan.platform} (an OCI layout, a docker-archive "
            "or a registry reference)")
    assemble.check_base(base, interp)
    # the interpreter and runtime layers need no uv: they are made while uv syncs
    started = assemble.start_layers(base, interp, plan.python_path, spec.compression)
    fetch = on_built = None
    if options.cache_repo:
        fetch, on_built = _shared_cache(options, progress, plan, interp, spec.compression)
    try:
        env = stage_with(ws, plan, interp, words, files, progress, scratch=base.is_scratch,
                         image_env=spec.env, what=what, on_tier=started.tier_ready,
                         fetch=fetch, on_built=on_built)
        image = assemble.copy_venv(base, env, compression=spec.compression,
                                   progress=progress, started=started)
    finally:
        started.pool.shutdown(wait=True, cancel_futures=True)
    image = assemble.finish_image(image, env, ws, spec)
    return replace(image, sbom=cached_sbom(env, ws, image.runtime_components))


def _shared_cache(options: Options, progress: Progress, plan: Plan, interp: Any,
                  compression: Any):
    """Hooks that fetch missing tiers from the cache repository and share the ones uv
    made there."""
    from .remote_cache import RemoteCache

    remote = RemoteCache(options.cache_repo or "", options.insecure_registry)

    def fetch(name: str, key: str, prev: Any):
        with progress.step(f"looking for the {name} tier in {remote.ref}"):
            tier = remote.fetch(name, key, plan, interp, prev)
        if tier is not None:
            progress.note(f"{name}: reused from {remote.ref} (uv not run)")
        return tier

    def on_built(env: Any, tier: Any) -> None:
        if tier.files:
            with progress.step(f"sharing the {tier.name} tier in {remote.ref}"):
                remote.store(tier, assemble.tier_layer(env, tier, compression))

    return fetch, on_built


# ---------------------------------------------------------------------- bundles
def write_bundle(ws: Workspace, env: _venv.StagedEnv, output: Path,
                 progress: Progress) -> _bundle.BundleResult:
    """The staged environment written as a bundle at ``output``, its SBOM beside it."""
    from .sbom.cyclonedx import sbom_for

    sbom = sbom_for(env, ws=ws)  # first: a bundle is never written without it
    with progress.step(f"writing {output}"):
        res = _bundle.write_bundle(env, output)
    if not res.streamed:  # a stream has no "beside"
        _bundle.write_sbom(res.output, sbom)
    return res
