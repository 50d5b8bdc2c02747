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

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import key_of
from ..stage.dists import Distribution, source_of_bytecode
from ..stage.keys import FORMAT as STAGE_FORMAT
from ..stage.venv import StagedEnv, Tier

LARGE = 256 * 1024  # installed bytes (RECORD's sizes) from which a distribution is alone
BUCKETS = 16
MAX_ALONE = 64
# Bumped when the grouping rule changes (a different split of the same tier); RULE is
# part of every key that depends on the split.
SPLIT_FORMAT = 2
RULE = (SPLIT_FORMAT, LARGE, BUCKETS, MAX_ALONE)


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
        d = owner.get(rel) or owner.get(source_of_bytecode(rel) or "")
        if d is not None:
            owned[d.name].append(rel)
            parents_of_files.update(_parents(rel))
        else:
            rest.append(rel)
    # directories: a layer makes the parents of its files; only empty ones stay behind
    root = tier.root
    rest = [r for r in rest if r not in parents_of_files or not _is_dir(root / r)]
    records = {d.name: _record(root, d) for d in tier.distributions}
    sizes = {name: size for name, (_, size) in records.items()}
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
                         [[d.name, d.version, records[d.name][0] or tier.key]
                          for d in members]))
    return out


def group_key(env: StagedEnv, group: Group, compression: str, layer_format: int) -> str:
    """The cache key of a group's layer: its identity, the files it holds after tidying,
    and what turns them into bytes (bytecode of this interpreter for the final path, the
    shebangs of a system-mode install)."""
    plan, i = env.plan, env.interpreter
    return key_of("dependency-layer", layer_format, RULE, STAGE_FORMAT, group.identity,
                  group.files, i.key, plan.mode, plan.env_path, plan.python_path, plan.compile,
                  plan.platform, compression)


def _bucket(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % BUCKETS


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: n + 1]) for n in range(len(parts))]


def _record(root: Path, d: Distribution) -> tuple[str | None, int]:
    """The hash of the distribution's RECORD (every installed file's hash, as uv wrote
    them) and the installed bytes it lists (bytecode aside: reading a size from RECORD
    costs nothing, a stat of each of numpy's files does)."""
    for rel in d.files:
        if rel.endswith(".dist-info/RECORD"):
            try:
                data = (root / rel).read_bytes()
            except OSError:
                return None, 0
            size = 0
            for row in csv.reader(io.StringIO(data.decode("utf-8", "replace"))):
                if len(row) >= 3 and row[2].isdigit():
                    size += int(row[2])
            return hashlib.sha256(data).hexdigest(), size
    return None, 0


def _is_dir(p: Path) -> bool:
    return os.path.isdir(p) and not os.path.islink(p)
