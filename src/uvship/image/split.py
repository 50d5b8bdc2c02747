"""The third-party tier split into layers, so that a changed lock rebuilds and uploads only
the distributions it touches (a Dockerfile's dependency layer is one, rebuilt whole).

A distribution of LARGE installed bytes or more is a layer of its own; smaller ones share
one of BUCKETS layers, chosen by a hash of their name. A package's layer therefore never
depends on what else the lock holds (only past MAX_ALONE large ones do the smallest of
them join the buckets, to stay well inside the layer counts engines accept: Docker stops
at 125, overlayfs' mount options at a few hundred). What no distribution's RECORD claims
(the venv's own files) is one more small layer.

Each group's layer is cached by what decides its bytes (the distributions' RECORDs, their
files after tidying, the interpreter and the final path), not by the whole tier: after a
lock change only the groups that changed are written, and a distribution shared by two
projects is one layer blob for both.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import key_of
from ..stage.dists import Distribution
from ..stage.keys import FORMAT as STAGE_FORMAT
from ..stage.venv import StagedEnv, Tier

LARGE = 512 * 1024  # installed bytes (with bytecode) from which a distribution is alone
BUCKETS = 16
MAX_ALONE = 64
# Bumped when the grouping rule changes (a different split of the same tier).
SPLIT_FORMAT = 1


@dataclass(frozen=True)
class Group:
    """Files of a tier that go into one layer, and what decides their bytes."""

    label: str  # a distribution's name, "packages-NN" (a bucket), or "environment"
    distributions: tuple[Distribution, ...]
    files: tuple[str, ...]  # relative to the environment's root
    identity: Any  # JSON-able: what decides the layer's bytes besides the final paths


def groups(env: StagedEnv, tier: Tier) -> list[Group]:
    """``tier``'s files grouped into layers, in layer order: the environment's own files,
    then each large distribution and each non-empty bucket, by label."""
    owner: dict[str, Distribution] = {}
    for d in tier.distributions:
        for rel in d.files:
            owner.setdefault(rel, d)
    files = set(tier.files)
    owned: dict[str, list[str]] = {d.name: [] for d in tier.distributions}
    rest: list[str] = []
    parents_of_files: set[str] = set()
    for rel in sorted(files):
        d = owner.get(rel) or owner.get(_source_of(rel) or "")
        if d is not None:
            owned[d.name].append(rel)
            parents_of_files.update(_parents(rel))
        else:
            rest.append(rel)
    # directories: a layer makes the parents of its files; only empty ones stay behind
    root = tier.root
    rest = [r for r in rest if r not in parents_of_files or not _is_dir(root / r)]
    sizes = {d.name: sum(_size(root / r) for r in owned[d.name]) for d in tier.distributions}
    large = sorted((d for d in tier.distributions if sizes[d.name] >= LARGE),
                   key=lambda d: (-sizes[d.name], d.name))[:MAX_ALONE]
    alone = {d.name for d in large}
    buckets: dict[str, list[Distribution]] = {}
    for d in tier.distributions:
        if d.name not in alone:
            buckets.setdefault(f"packages-{_bucket(d.name):02d}", []).append(d)
    out = [Group("environment", (), tuple(rest), ["environment", tier.key])] if rest else []
    chosen = [(d.name, [d]) for d in large] + list(buckets.items())
    for label, members in sorted(chosen):
        members = sorted(members, key=lambda d: d.name)
        rels = tuple(r for d in members for r in owned[d.name])
        out.append(Group(label, tuple(members), rels,
                         [[d.name, d.version, _record_hash(root, d) or tier.key]
                          for d in members]))
    return out


def group_key(env: StagedEnv, group: Group, compression: str, layer_format: int) -> str:
    """The cache key of a group's layer: its identity, the files it holds after tidying,
    and what turns them into bytes (bytecode of this interpreter for the final path, the
    shebangs of a system-mode install)."""
    plan, i = env.plan, env.interpreter
    return key_of("dependency-layer", layer_format, SPLIT_FORMAT, STAGE_FORMAT, group.identity,
                  group.files, i.key, plan.mode, plan.env_path, plan.python_path, plan.compile,
                  plan.platform, compression)


def _bucket(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % BUCKETS


def _source_of(rel: str) -> str | None:
    """The module a byte-compiled file was made from: a/__pycache__/m.cpython-312.pyc -> a/m.py."""
    head, sep, name = rel.rpartition("/__pycache__/")
    if not sep or not name.endswith(".pyc"):
        return None
    return f"{head}/{name.split('.', 1)[0]}.py"


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: n + 1]) for n in range(len(parts))]


def _record_hash(root: Path, d: Distribution) -> str | None:
    """The hash of the distribution's RECORD: every installed file's hash, as uv wrote them."""
    for rel in d.files:
        if rel.endswith(".dist-info/RECORD"):
            try:
                return hashlib.sha256((root / rel).read_bytes()).hexdigest()
            except OSError:
                return None
    return None


def _size(p: Path) -> int:
    try:
        return p.lstat().st_size
    except OSError:
        return 0


def _is_dir(p: Path) -> bool:
    return os.path.isdir(p) and not os.path.islink(p)
