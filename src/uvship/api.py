"""The fluent Python API: Uv(path).workspace(...).build(...).with_*(...).venv() / .bundle(...)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import pipeline
from .cache import tempdir
from .errors import InputError
from .image import image as _image
from .progress import NullProgress, Progress
from .project.plan import Options, Plan, make_plan
from .project.workspace import Workspace, find_workspaces
from .publish import bundle as _bundle
from .python import interpreter as _interpreter
from .stage import venv as _venv


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

    def with_relocatable(self, relocatable: bool = True) -> UvBuild:
        """A bundle that runs wherever it is unpacked, by any user: the interpreter's prefix
        is the bundle's root (``DIR/bin/python``, ``DIR/bin/<script>``), the locked packages
        installed into it, no absolute path in it (what Spark's ``--archives`` unpacks).
        Images keep fixed paths: ``image()`` ignores it."""
        return replace(self, options=replace(self.options, relocatable=relocatable))

    def with_remote_dependencies(self) -> UvBuild:
        """Third-party dependencies as their own tier (their own image layer): always so,
        so this build is returned as it is; the call reads as the layering it asks for."""
        return self

    def with_local_dependencies(self) -> UvBuild:
        """Local workspace members as their own tier: always so (see
        with_remote_dependencies)."""
        return self

    def with_options(self, **options: Any) -> UvBuild:
        return replace(self, options=self.options.override(**options))

    def with_progress(self, progress: Progress) -> UvBuild:
        return replace(self, progress=progress)

    @property
    def plan(self) -> Plan:
        return make_plan(self.ws, self.options)

    def interpreter(self, plan: Plan | None = None) -> _interpreter.Interpreter:
        """The interpreter this build ships (found, or installed by uv)."""
        return pipeline.interpreter(self.ws, plan or self.plan, self.progress)

    def stage(self) -> _venv.StagedEnv:
        """Stage the environment (tiers cached by their inputs) and the project's files;
        nothing is laid out yet."""
        return pipeline.stage(self.ws, self.plan, self.options, self.progress)

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
        b = b.with_relocatable(False)  # an image's paths are fixed
        env = b.stage()
        return _build.copy_venv(image, env, set_env_vars=set_env_vars,
                                compression=compression,  # type: ignore[arg-type]
                                progress=self.progress)

    def image(self, base: Image | str = "scratch", spec: Any = None) -> Image:
        """The whole image `uvship build` makes: base, layers, entrypoint, config, labels."""
        from .image import assemble as _build

        if self.options.relocatable:  # a bundle's layout ([tool.uvship]); images have paths
            return replace(self, options=replace(self.options, relocatable=False)).image(
                base, spec)
        plan = self.plan
        if isinstance(base, str):
            base = Image.from_reference(base, plan.platform, self.options.insecure_registry)
        return pipeline.build_image(self.ws, plan, self.options, self.progress, base,
                                    spec or _build.ImageSpec())

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

    def bundle(self, output: str | Path) -> _bundle.BundleResult:
        """Build the environment and write it as a directory or a reproducible .tar.gz."""
        output = Path(output)
        _bundle.check_output(output)
        return pipeline.write_bundle(self.ws, self.stage(), output, self.progress)

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
        return {p: pipeline.write_bundle(self.ws, envs[p], Path(outputs[p]), self.progress)
                for p in outputs}

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

