"""The no-change stamp of a command (`uvship._nochange`): what a build reads, taken before
it runs, and what it wrote, after; shared by `build` and `bundle`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def watch_inputs(b: Any, skip: Iterable[Path], base_path: Path | None = None):
    """A `_nochange.Watch` of everything the build ``b`` (a UvBuild) reads: the workspace
    tree (less ``skip``, the outputs), local sources outside it, the base, uv's
    configuration, download lists and binary, this host's packages (the scratch runtime's
    libraries) and uvship's own code."""
    from .. import _nochange
    from ..python import managed
    from ..uv import uv_bin

    watch = _nochange.Watch(sys.argv)
    ws = b.ws
    skip = [Path(p).absolute() for p in skip]
    watch.tree(ws.root, skip=skip)
    for pkg in ws.packages.values():  # local sources (directories, files) outside the root
        for kind in ("editable", "virtual", "directory", "path"):
            where = (ws.root / str(pkg.source.get(kind, "."))).resolve()
            if kind in pkg.source and not where.is_relative_to(ws.root.resolve()):
                watch.tree(where, skip=skip) if where.is_dir() else watch.add(where)
    if base_path is not None:
        watch.tree(base_path) if base_path.is_dir() else watch.add(base_path)
    for f in managed.config_candidates(ws.project_dir):  # one created later counts too
        watch.add(f)
    for lst in managed.download_config(ws.project_dir)["lists"].values():
        if lst:
            watch.add(lst[0])
    watch.add(uv_bin())
    watch.add("/var/lib/dpkg/status")  # the scratch runtime's libraries
    watch.code()
    return watch


def save(watch: Any, outputs: list[str], written: Iterable[str], stdout: str) -> None:
    """The stamp, with the state the build itself changes (uv's Pythons) taken now."""
    from ..python.managed import install_dir

    watch.save(outputs, written, stdout, state=[install_dir()])


def tree_files(root: Path) -> list[str]:
    """Every path under ``root`` (a directory written as an output), and ``root``."""
    out = [str(root)]
    for dirpath, dirnames, filenames in os.walk(root):
        out += [os.path.join(dirpath, n) for n in (*dirnames, *filenames)]
    return out
