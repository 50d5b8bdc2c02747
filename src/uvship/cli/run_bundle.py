"""`uvship bundle` once its command line is parsed (cli/bundle.py parses it; the no-change
path replays a kept parse): the environment and its Python, laid out for their final
paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .output import emit, errors, stdout_output
from .running import build_from


def run(project: str, output: str, **kw: Any) -> None:
    """Bundle ``project``'s environment and its Python where ``output`` says."""
    as_json = kw.pop("as_json")
    relocatable = kw.pop("relocatable")
    with errors():
        from .._fs import is_stream, output_path, output_place

        out = output_path(output)  # `-` is stdout
        to_stdout = stdout_output(
            [output] if is_stream(out) and output_place(out, f"--output {out}").is_stdout
            else [], as_json, "bundle")
        b = build_from(project, kw, relocatable=relocatable)
        platforms = [p.strip() for p in (b.options.platform or "").split(",") if p.strip()]
        if len(platforms) > 1 and is_stream(out):
            from ..errors import InputError

            raise InputError(f"--output {output}: a stream takes one bundle; several "
                             "platforms make one bundle each",
                             hint="give a file name: {platform} in it is replaced")
        if len(platforms) > 1:
            from ..project.plan import platform_of

            platforms = [platform_of(p) for p in platforms]
            outs = {p: _per_platform_output(output, p) for p in platforms}
            results = b.bundles(outs)  # type: ignore[arg-type]
            data = {"bundles": [_bundle_data(r) | {"platform": p}
                                for p, r in results.items()]}
            emit(data, as_json, "\n".join(str(r.output) for r in results.values()))
            return
        if platforms or "=" in (b.options.python or ""):
            b = b.for_platform(platforms[0] if platforms else None)
        watch = None
        if not is_stream(out):  # a file or directory this host can check next time
            from .stamp import watch_inputs

            watch = watch_inputs(b, [out])
        res = b.bundle(out)
    data = _bundle_data(res)
    emit(data, as_json, str(res.output), err=to_stdout)
    if watch is not None:
        from .stamp import save, tree_files

        written = tree_files(res.output) if res.output.is_dir() else [
            str(res.output), str(res.output) + ".cdx.json"]
        save(watch, [str(res.output)], written,
             (json.dumps(data, indent=2, sort_keys=True) if as_json else str(res.output)) + "\n")


def _bundle_data(res) -> dict[str, Any]:
    return {"output": str(res.output), "kind": res.kind, "sha256": res.sha256,
            "size": res.size, "files": res.files, "manifest": res.manifest}


def _per_platform_output(output: str, platform: str) -> str:
    """-o for one platform of several: {platform}/{arch} filled in, else -os-arch added
    before the suffix (app.tar.gz -> app-linux-arm64.tar.gz, dist/app -> dist/app-linux-arm64)."""
    os_, arch = platform.split("/")
    if "{platform}" in output or "{arch}" in output:
        return output.replace("{platform}", f"{os_}-{arch}").replace("{arch}", arch)
    p = Path(output)
    suffix = "".join(s for s in p.suffixes[-2:] if s in (".tar", ".gz", ".tgz"))
    stem = p.name[: len(p.name) - len(suffix)] if suffix else p.name
    return str(p.with_name(f"{stem}-{os_}-{arch}{suffix}"))
