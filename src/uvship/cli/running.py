"""What runs a build-like command once its command line is parsed, without the command
line's framework: the build its options describe. `build` and `bundle` run from here both
after click parsed their command line and when the no-change path replays a parse it
kept (`uvship._nochange`), so this module and what it imports never import click."""

from __future__ import annotations

from typing import Any

from .output import RichProgress


def command_words(text: str | None) -> tuple[str, ...] | None:
    from ..project.plan import command_words

    return command_words(text, "--command") if text is not None else None


def build_from(project: str, kw: dict[str, Any], **image_options: Any):
    quiet = kw.pop("quiet")
    compile_ = kw.pop("compile_")
    from ..api import Uv

    ws = Uv(".").workspace(project)
    b = ws.build(
        list(kw.pop("package")), all_packages=kw.pop("all_packages"),
        extras=kw.pop("extra"), all_extras=kw.pop("all_extras"), groups=kw.pop("group"),
        python=kw.pop("python"), python_path=kw.pop("python_path"),
        venv_path=kw.pop("venv_path"), mode=kw.pop("mode"), compile=compile_,
        strip=kw.pop("strip"), exclude=kw.pop("exclude"), platform=kw.pop("platform"),
        libc=kw.pop("libc"), build_steps=kw.pop("build_steps"),
        project_files=kw.pop("project_files"), workdir=kw.pop("workdir"),
        command=command_words(kw.pop("command")),
        **image_options,
    )
    return b.with_progress(RichProgress(quiet))
