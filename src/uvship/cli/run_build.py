"""`uvship build` once its command line is parsed (cli/build.py parses it; the no-change
path replays a kept parse): the image, written to outputs, local engines and registries."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InputError
from .output import emit, errors, stdout_output, warn
from .running import build_from


def run(project: str, outputs: tuple[str, ...], push_refs: tuple[str, ...],
        cache_repo: str | None, insecure: tuple[str, ...], tags: tuple[str, ...],
        base: str | None, entrypoint: str | None, cmd: tuple[str, ...],
        env_vars: tuple[str, ...], labels: tuple[str, ...], user: str | None,
        compression: str | None, **kw: Any) -> None:
    """Build the image of ``project`` and write it where the options say."""
    as_json = kw.pop("as_json")
    with errors():
        from .. import publish
        from ..image import assemble as _build
        from ..project.plan import env_pairs
        from ..publish.outputs import check_tags, parse_output

        outs = [parse_output(o) for o in outputs]
        b = build_from(project, kw, base=base, entrypoint=entrypoint, cmd=cmd,
                        env=env_vars, label=labels, user=user,
                        compression=compression, tag=tags, push=push_refs,
                        cache_repo=cache_repo, insecure_registry=insecure)
        o_ = b.options
        check_tags(o_.tag)  # with --tag from pyproject.toml too, before any work
        for o in outs:
            o.check(o_.tag)
        to_stdout = stdout_output([str(o) for o in outs if o.is_stdout], as_json,
                                   "docker-archive")
        if not outs and not o_.push:
            raise InputError("nothing to write: no --output and no --push",
                             hint="give --output oci:DIR (or another output) and/or --push REF")
        if o_.push:
            from ..registry import Reference

            for r in o_.push:
                Reference.parse(r)  # a bad reference fails before any work
        env_vars, label_pairs = env_pairs(o_.env, "--env"), env_pairs(o_.label, "--label")
        if o_.compression not in (None, "gzip", "zstd"):
            raise InputError(f"compression {o_.compression!r}: expected gzip or zstd")
        tags = o_.tag
        spec = _build.ImageSpec(
            entrypoint=o_.entrypoint, cmd=o_.cmd or None, env=env_vars, labels=label_pairs,
            user=o_.user or "65532:65532",
            compression=o_.compression or "gzip",  # type: ignore[arg-type]
        )
        platforms = [p.strip() for p in (o_.platform or "").split(",") if p.strip()]
        if len(platforms) > 1:
            _build_index(b, o_, spec, platforms, outs, as_json)
            return
        platform = platforms[0] if platforms else None
        if platform or "=" in (o_.python or "") or "=" in (o_.base or ""):
            b = b.for_platform(platform)
        base = b.options.base
        watch = _no_change_watch(b, outs, base)
        image = b.image(base or "scratch", spec)
        written = []
        for o in outs:
            with b.progress.step(f"writing {o}"):
                kw_ = {"note": b.progress.note} if o.kind in ("docker-daemon",
                                                             "containers-storage") else {}
                if o.write(image, tags, **kw_):
                    written.append(str(o))
        if outs and not written:
            b.progress.note(f"up to date: {', '.join(map(str, outs))}")
        for r in o_.push:
            outs.append(r)  # type: ignore[arg-type]
        pushed = []
        if o_.push:
            with b.progress.step(f"pushing {', '.join(o_.push)}"):
                pushed = publish.push(image, o_.push, insecure=o_.insecure_registry,
                                      progress=b.progress)
            written += list(o_.push)
        data = {
            "digest": image.digest, "outputs": [str(o) for o in outs], "written": written,
            "pushed": _report_pushed(pushed),
            "platform": str(image.oci.platform), "size": sum(x.size for x in image.oci.layers),
            "layers": [{"digest": x["digest"], "role": x["role"], "created_by": x["created_by"]}
                       for x in image.layer_info],
        }
    text = "\n".join(f"{o}@{image.digest}" for o in outs)
    emit(data, as_json, text, err=to_stdout)
    if watch is not None:  # a rerun prints what an up-to-date build prints: nothing written
        from .stamp import save

        again = json.dumps({**data, "written": []}, indent=2, sort_keys=True)
        save(watch, [str(o) for o in outs], _written_files(outs),
             (again if as_json else text) + "\n")


def _no_change_watch(b, outs, base: str | None):
    """What this build reads, taken before it runs, for the no-change path (_nochange);
    None when a rerun could not be checked from this host: an output or base in a
    registry or an engine, a stream, a shared cache."""
    from .. import targets
    from ..publish.outputs import Output
    from .stamp import watch_inputs

    o_ = b.options
    if not outs or o_.push or o_.cache_repo or any(
            not isinstance(o, Output) or o.stream for o in outs):
        return None
    base_path = None
    if base not in (None, "scratch"):
        t = targets.parse(base, paths=True)
        if t.kind not in ("oci", "docker-archive", "path") or t.path is None:
            return None
        base_path = t.path
    return watch_inputs(b, [o.path for o in outs], base_path)


def _written_files(outs) -> list[str]:
    """The files of the outputs, as the no-change path checks them."""
    files: list[str] = []
    for o in outs:
        if o.kind == "docker-archive":
            files.append(str(o.path))
            continue
        files += [str(o.path), str(o.path / "index.json"), str(o.path / "oci-layout")]
        blobs = o.path / "blobs" / "sha256"
        files.append(str(blobs))
        files += [str(p) for p in sorted(blobs.iterdir())] if blobs.is_dir() else []
    return files


def _build_index(b, o_, spec, platforms: list[str], outs, as_json: bool) -> None:
    """One image per platform, written and pushed as an OCI image index."""
    from .. import publish

    for o in outs:
        if o.kind != "oci":
            raise InputError(f"--output {o}: a docker-archive holds one platform; "
                                   "write an image index with oci:DIR or --push")
    multi = b.images(platforms, spec)
    for o in outs:
        with b.progress.step(f"writing {o}"):
            o.write(multi, list(o_.tag))
    pushed = []
    if o_.push:
        with b.progress.step(f"pushing {', '.join(o_.push)}"):
            pushed = publish.push(multi, o_.push, insecure=o_.insecure_registry,
                                  progress=b.progress)
    targets = [str(o) for o in outs] + list(o_.push)
    data = {"digest": multi.digest, "outputs": targets, "written": targets,
            "platforms": multi.platforms, "manifests": [img.digest for img in multi.images],
            "pushed": _report_pushed(pushed)}
    emit(data, as_json, "\n".join(f"{t}@{multi.digest}" for t in targets))


def _report_pushed(pushed) -> list[dict[str, Any]]:
    """Each pushed reference for --json; on stderr, a warning for each whose SBOM is missing.

    The image is in place and works, so the push succeeded (exit 0, its reference on
    stdout): the SBOM is an artifact beside it, attached by running the command again.
    """
    out = []
    for p in pushed:
        error = p.sbom_error
        if error is not None:
            # the error's own hint is about trying again, which this one says for the SBOM
            warn(f"pushed {p.reference}@{p.digest}, but its SBOM was not attached: "
                  f"{error.message}",
                  "the image is pushed and works without it; run the same command again to "
                  "attach the SBOM (what the registry already has is not sent again)")
        sbom = None if not p.sboms else {
            "attached": error is None, "error": error.message if error else None,
            "artifacts": [{"image": s.image, "digest": s.attached.digest, "via": s.attached.via}
                          for s in p.sboms if s.attached is not None]}
        out.append({"reference": p.reference, "digest": p.digest, "sbom": sbom})
    return out
