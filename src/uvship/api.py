"""The fluent Python API: Uv(path).workspace(...).build(...).with_*(...).venv() / .bundle(...)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .cache import tempdir
from .errors import InputError
from .image import image as _image
from .progress import NullProgress, Progress
from .project import command as _command
from .project.plan import Options, Plan, env_pairs, make_plan
from .project.workspace import Workspace, find_workspaces
from .publish import bundle as _bundle
from .python import interpreter as _interpreter
from .stage import checks as _checks
from .stage import venv as _venv
from .stage.platforms import native_stager


class Image(_image.Image):
    """An image under construction (see image.image.Image), which can also be written to
    outputs and pushed: the API's convenience over uvship.publish."""

    def export(self, output: str, tags: list[str] | tuple[str, ...] = ()) -> str:
        """Write the image to ``oci:DIR[:TAG]``, ``docker-archive:FILE`` or a local engine
        (``docker-daemon:NAME``); returns the digest."""
        from . import publish

        return publish.export(self, output, tags)

    def publish(self, *refs: str, insecure: tuple[str, ...] = (),
                progress: Progress | None = None) -> list:
        """Push the image to registry references, its SBOM attached after it; returns what
        each reference got (a failed SBOM is in ``Pushed.sbom_error``, never raised)."""
        from . import publish

        return publish.push(self, refs, insecure=insecure, progress=progress)


class MultiPlatformImage(_image.MultiPlatformImage):
    """One image per platform, written and pushed as one OCI image index."""

    def export(self, output: str, tags: list[str] | tuple[str, ...] = ()) -> str:
        """Write the index to ``oci:DIR[:TAG]``; returns its digest."""
        from . import publish

        return publish.export(self, output, tags)

    def publish(self, *refs: str, insecure: tuple[str, ...] = (),
                progress: Progress | None = None) -> list:
        """Push the index and every platform's image, each image's SBOM attached."""
        from . import publish

        return publish.push(self, refs, insecure=insecure, progress=progress)


class Uv:
    """A source tree holding one or more uv workspaces."""

    def __init__(self, path: str | Path = ".") -> None:
        self.path = Path(path)

    def get_workspaces(self) -> list[UvWorkspace]:
        """Every uv workspace (every uv.lock) under the tree."""
        return [UvWorkspace(Workspace.open(p)) for p in find_workspaces(self.path)]

    def workspace(self, path: str | Path = ".") -> UvWorkspace:
        """The workspace at ``path`` (relative to the tree): a project or member directory."""
        return UvWorkspace(Workspace.open(self.path / path))


@dataclass(frozen=True)
class UvWorkspace:
    ws: Workspace

    @property
    def root(self) -> Path:
        return self.ws.root

    def build(
        self,
        package: list[str] | tuple[str, ...] | str | None = None,
        *,
        all_packages: bool | None = None,
        extras: list[str] | tuple[str, ...] = (),
        all_extras: bool | None = None,
        groups: list[str] | tuple[str, ...] = (),
        no_editable: bool = True,
        **options: Any,
    ) -> UvBuild:
        """A build of ``package`` (default: what `uv sync` installs); nothing runs yet.

        ``options`` are the other build options (``python``, ``venv_path``, ...); they
        override `[tool.uvship]` in pyproject.toml.
        """
        if not no_editable:
            raise InputError("no_editable=False: uvship ships non-editable installs only",
                             hint="an editable install points at a source tree the target lacks")
        if isinstance(package, str):
            package = [package]
        base = Options.from_config(self.ws.config(), str(self.ws.project_dir / "pyproject.toml"))
        opts = base.override(package=package, all_packages=all_packages, extra=extras,
                             all_extras=all_extras, group=groups, **options)
        return UvBuild(self.ws, opts)


@dataclass(frozen=True)
class UvBuild:
    """A planned, staged build. Immutable: every ``with_*`` returns a new build."""

    ws: Workspace
    options: Options
    tiers: tuple[str, ...] = ()
    progress: Progress = field(default_factory=NullProgress, compare=False, repr=False)

    def with_python_pin(self, python: str) -> UvBuild:
        """A Python version request ("3.12") or the path of a local CPython."""
        return replace(self, options=replace(self.options, python=python))

    def with_venv(self, relocatable: bool = True, path: str | None = None) -> UvBuild:
        if not relocatable:
            raise InputError("with_venv(relocatable=False): uvship only ships relocatable venvs")
        opts = replace(self.options, mode="venv")
        return replace(self, options=replace(opts, venv_path=path) if path else opts)

    def with_system_python(self) -> UvBuild:
        """Install into the interpreter's own prefix instead of a venv."""
        return replace(self, options=replace(self.options, mode="system"))

    def with_remote_dependencies(self) -> UvBuild:
        """Stage third-party dependencies as their own tier (their own image layer)."""
        return replace(self, tiers=(*self.tiers, "dependencies"))

    def with_local_dependencies(self) -> UvBuild:
        """Stage the local workspace members the package needs as their own tier."""
        return replace(self, tiers=(*self.tiers, "local"))

    def with_options(self, **options: Any) -> UvBuild:
        return replace(self, options=self.options.override(**options))

    def with_progress(self, progress: Progress) -> UvBuild:
        return replace(self, progress=progress)

    @property
    def plan(self) -> Plan:
        return make_plan(self.ws, self.options)

    def interpreter(self, plan: Plan | None = None) -> _interpreter.Interpreter:
        plan = plan or self.plan
        interp = self._resolve_interpreter(plan)
        from .project.plan import MACHINE_OF

        want = MACHINE_OF[plan.platform]
        if interp.machine != want:
            raise InputError(
                f"--platform {plan.platform}: the interpreter ({interp.origin}) is built for "
                f"{interp.machine}, expected {want}",
                hint=f"give an {want} CPython with --python PATH (for another machine, one "
                "inside a sysroot that holds its loader and glibc, run here through qemu-user)")
        if plan.libc and interp.libc and interp.libc != plan.libc:
            raise InputError(
                f"--libc {plan.libc}: the interpreter ({interp.origin}) links {interp.libc}, "
                f"expected {plan.libc} for {plan.target}",
                hint=f"give a {plan.libc} CPython with --python PATH, or a uv-managed one: "
                f"uv python install cpython-{interp.minor}-linux-{want}-"
                f"{'gnu' if plan.libc == 'glibc' else 'musl'}")
        return interp

    def _resolve_interpreter(self, plan: Plan) -> _interpreter.Interpreter:
        """A local CPython for --python PATH; else the one uv-managed CPython for the
        target that the request (--python, .python-version, requires-python) chooses from
        uv's download list, whatever is installed (README: Which Python)."""
        from .python.managed import wanted_by

        python = plan.python
        source = Path(python) if python and _interpreter.is_path_request(python) else \
            wanted_by(self.ws, plan)
        return _interpreter.resolve(
            source, project_dir=self.ws.project_dir,
            requires_python=self.ws.requires_python, python_path=plan.python_path,
            compile_bytecode=plan.compile, strip=plan.strip, progress=self.progress)

    def stage(self) -> _venv.StagedEnv:
        """Stage the environment (tiers cached by their inputs) and the project's files;
        nothing is laid out yet."""
        plan = self.plan
        files = self._files(plan)
        words = plan.command or None
        if words:
            _command.check_form(words, "command")
        return self._stage(plan, self._checked_interpreter(plan), words, files,
                           image_env=env_pairs(self.options.env, "--env"))

    def _files(self, plan: Plan):
        """The selection of the project's files that ship (None: a packaged project)."""
        from .stage import files as projectfiles

        return projectfiles.select(plan.files_dir) if plan.files_dir else None

    def _stage(self, plan: Plan, interp: _interpreter.Interpreter,
               words: tuple[str, ...] | None, files, *, scratch: bool = True,
               image_env: tuple[tuple[str, str], ...] = (), what: str = "command",
               on_tier=None, fetch=None, on_built=None) -> _venv.StagedEnv:
        """The tiers, then what runs (resolved in them), then the project's files and the
        build steps. The command is checked as soon as the dependencies are staged, before
        their layer is written; programs of the project itself are known from its
        pyproject.toml."""
        from .image import assemble as _build
        from .stage import files as projectfiles

        projectfiles.check_steps_possible(plan, interp)
        known = _build.project_scripts(self.ws, (*plan.selected, *plan.local_members))
        names = frozenset(files.files) if files is not None else None

        def resolve(bin_dir: Path) -> list[str]:
            layout = projectfiles.layout_of(plan, interp, staged_bin=bin_dir,
                                            known_scripts=known, files=names, scratch=scratch)
            return _build.resolve_run(self.ws, plan, words or (), layout, what, files)

        def checked(env: _venv.StagedEnv, tier: _venv.Tier) -> None:
            if words and tier.name == "dependencies" and words[0] not in known:
                resolve(tier.root / "bin")
            if on_tier is not None:
                on_tier(env, tier)

        env = _venv.stage(self.ws, plan, interp, progress=self.progress, on_tier=checked,
                          fetch=fetch, on_built=on_built)
        command = tuple(resolve(env.root / "bin")) if words else None
        app = None
        if files is not None:
            layout = projectfiles.layout_of(plan, interp, staged_bin=env.root / "bin",
                                            files=names, scratch=scratch)
            app = projectfiles.stage(
                plan, files, env_root=env.root, env_key=env.tiers[-1].key,
                python=native_stager(interp) or interp.exe, interp=interp,
                layout=layout, image_env=dict(image_env), progress=self.progress)
            if app.left_out:
                self.progress.note(f"left out of the project's files (secrets are never "
                                   f"shipped, even when a build step wrote them): "
                                   f"{', '.join(app.left_out)}")
        return replace(env, app=app, command=command)

    def _checked_interpreter(self, plan: Plan) -> _interpreter.Interpreter:
        """Every locked package checked for a wheel for the target, the interpreter (found,
        or installed by uv), then the lock checked with it: the checks that can fail a build
        before its environment is staged. The lock check needs the interpreter: without
        one, uv would report a missing Python where the lock is fine."""
        self._check_target_wheels(plan, plan.libc or "glibc")
        interp = self.interpreter(plan)
        _checks.check_lock(self.ws, interp)
        if interp.libc and interp.libc != (plan.libc or "glibc"):
            # the interpreter decided the C library (a musl --python PATH): check again
            self._check_target_wheels(plan, interp.libc)
        return interp

    def _check_target_wheels(self, plan: Plan, libc: str) -> None:
        """For another platform or C library than this host's, or a base's glibc: every
        locked package needs a wheel for it, or a source that builds a pure-Python one
        (nothing can be compiled for another target here)."""
        from .project.plan import host_platform
        from .python.managed import host_glibc

        if plan.platform != host_platform() or libc != "glibc" or plan.glibc:
            host = plan.platform == host_platform() and libc == "glibc" and host_glibc()
            _checks.check_wheels_for(self.ws, plan, libc, host=host)

    def venv(self) -> _bundle.UvVenv:
        """Build the environment now, laid out at its final paths in a directory of its own.

        The result owns that directory: use it as a context manager or call ``cleanup()``.
        """
        env = self.stage()
        work = tempdir("venv")
        try:
            return _bundle.materialize(env, work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def copy_venv(self, image: Image, path: str | None = None, *, set_env_vars: bool = True,
                  compression: str = "gzip") -> Image:
        """``image`` plus this build's environment at ``path`` (default: the plan's venv path).

        On the scratch base the runtime the interpreter needs is added too; an interpreter
        layer the image already has is not added twice, so two venvs can share one.
        """
        from .image import assemble as _build

        b = self.with_venv(path=path) if path else self
        env = b.stage()
        return _build.copy_venv(image, env, set_env_vars=set_env_vars,
                                compression=compression,  # type: ignore[arg-type]
                                progress=self.progress)

    def image(self, base: Image | str = "scratch", spec: Any = None) -> Image:
        """The whole image `uvship build` makes: base, layers, entrypoint, config, labels."""
        from .image import assemble as _build

        spec = spec or _build.ImageSpec()
        plan = self.plan
        files = self._files(plan)
        words = _build.run_words(self.ws, plan, spec, files)
        what = "command" if plan.command else "entrypoint"
        if words:
            _command.check_form(words, what)
        if isinstance(base, str):
            base = Image.from_reference(base, plan.platform, self.options.insecure_registry)
        if not base.is_scratch:
            facts = _build.base_facts_of(base)
            plan = replace(plan, glibc=facts.glibc_version)
            # the target's C library is the base's: a musl base gets a musl interpreter
            if plan.libc is None and facts.libc == "musl" and not (
                    plan.python and _interpreter.is_path_request(plan.python)):
                plan = replace(plan, libc="musl")
        interp = self._checked_interpreter(plan)  # before any layer is started
        if base.is_scratch and interp.machine != _host_machine():
            raise InputError(
                f"--base scratch: the scratch runtime is made of this host's libraries, which "
                f"are {_host_machine()}; expected {interp.machine} for --platform {plan.platform}",
                hint=f"give a base image for {plan.platform} with --base (an OCI layout, a "
                "docker-archive or a registry reference)")
        _build.check_base(base, interp)
        # the interpreter and runtime layers need no uv: they are made while uv syncs
        started = _build.start_layers(base, interp, plan.python_path, spec.compression)
        fetch = on_built = None
        if self.options.cache_repo:
            fetch, on_built = self._shared_cache(plan, interp, spec.compression)
        try:
            env = self._stage(plan, interp, words, files, scratch=base.is_scratch,
                              image_env=spec.env, what=what, on_tier=started.tier_ready,
                              fetch=fetch, on_built=on_built)
            image = _build.copy_venv(base, env, compression=spec.compression,
                                     progress=self.progress, started=started)
        finally:
            started.pool.shutdown(wait=True, cancel_futures=True)
        image = _build.finish_image(image, env, self.ws, spec)
        from dataclasses import replace as _replace

        from .sbom.cyclonedx import cached_sbom

        return _replace(image, sbom=cached_sbom(env, self.ws, image.runtime_components))

    def images(self, platforms: list[str] | tuple[str, ...], spec: Any = None
               ) -> MultiPlatformImage:
        """One image per platform (``["linux/amd64", "linux/arm64"]``), as one index.

        Each platform's ``python`` and ``base`` come from ``PLATFORM=VALUE,...`` options
        (or the one value for all); the default base is scratch.
        """
        from .project.plan import platform_of

        images = []
        for p in dict.fromkeys(platform_of(p) for p in platforms):
            b = self.for_platform(p)
            with self.progress.step(f"building for {p}"):
                images.append(b.image(b.options.base or "scratch", spec))
        return MultiPlatformImage(tuple(images))

    def _shared_cache(self, plan: Plan, interp: Any, compression: str):
        """Hooks that fetch missing tiers from --cache-repo and publish the ones uv made."""
        from .image import assemble as _build
        from .remote_cache import RemoteCache

        remote = RemoteCache(self.options.cache_repo or "", self.options.insecure_registry)

        def fetch(name: str, key: str, prev: Any):
            with self.progress.step(f"looking for the {name} tier in {remote.ref}"):
                tier = remote.fetch(name, key, plan, interp, prev)
            if tier is not None:
                self.progress.note(f"{name}: reused from {remote.ref} (uv not run)")
            return tier

        def on_built(env: Any, tier: Any) -> None:
            if tier.files:
                with self.progress.step(f"sharing the {tier.name} tier in {remote.ref}"):
                    remote.store(tier, _build.tier_layer(env, tier, compression))  # type: ignore[arg-type]

        return fetch, on_built

    def bundle(self, output: str | Path) -> _bundle.BundleResult:
        """Build the environment and write it as a directory or a reproducible .tar.gz."""
        output = Path(output)
        _bundle.check_output(output)
        return self._write_bundle(self.stage(), output)

    def _write_bundle(self, env: _venv.StagedEnv, output: Path) -> _bundle.BundleResult:
        from .sbom.cyclonedx import sbom_for

        sbom = sbom_for(env, ws=self.ws)  # first: a bundle is never written without it
        with self.progress.step(f"writing {output}"):
            res = _bundle.write_bundle(env, output)
        if not res.streamed:  # a stream has no "beside"
            _bundle.write_sbom(res.output, sbom)
        return res

    def bundles(self, outputs: dict[str, str | Path]) -> dict[str, _bundle.BundleResult]:
        """One bundle per platform (``{"linux/arm64": "app-arm64.tar.gz", ...}``).

        Every platform is staged before any bundle is written: a platform that cannot be
        built (no interpreter, a package with no wheel for it) leaves nothing behind.
        Per-platform options (``python``, ``base``) may be ``PLATFORM=VALUE,...`` lists.
        """
        builds = {p: self.for_platform(p) for p in outputs}
        for out in outputs.values():
            _bundle.check_output(Path(out))
        envs = {p: b.stage() for p, b in builds.items()}
        return {p: builds[p]._write_bundle(envs[p], Path(outputs[p])) for p in outputs}

    def for_platform(self, platform: str | None) -> UvBuild:
        """This build for one platform: its entries of ``PLATFORM=VALUE,...`` options."""
        o = self.options
        return replace(self, options=replace(o, platform=platform,
                                             python=_for_platform(o.python, platform),
                                             base=_for_platform(o.base, platform)))


def _for_platform(value: str | None, platform: str | None) -> str | None:
    """``VALUE``, or the entry for ``platform`` in ``linux/arm64=VALUE,linux/amd64=VALUE``
    (None when the list has none for it: the default applies)."""
    if not value or "=" not in value:
        return value
    from .project.plan import platform_of

    want = platform_of(platform)
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if sep and platform_of(key) == want:
            return val
    return None


def _host_machine() -> str:
    import os

    return os.uname().machine
