"""uv.lock's package graph: the locked packages, their dependency edges, and the one walk of
what a sync of some packages installs.

The walk follows what uv follows, markers ignored: the roots' dependencies, the extras and
dependency groups asked of the roots, and on every edge the extras that edge names
(``{ name = "x", extra = ["y"] }``, as uv writes a requirement on ``x[y]``). Ignoring
markers, and following every locked version of a name (a forked resolution locks several),
makes it a superset of what uv installs on any one machine: what is keyed by it is never
missing a package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Edge:
    """A dependency in uv.lock: the package's name and the extras the edge asks of it."""

    name: str
    extras: tuple[str, ...] = ()


@dataclass(frozen=True)
class LockedPackage:
    """One `[[package]]` of uv.lock."""

    name: str
    version: str | None
    source: dict[str, Any]
    dependencies: tuple[Edge, ...]
    optional: dict[str, tuple[Edge, ...]]  # extra -> its edges
    groups: dict[str, tuple[Edge, ...]]  # dependency group -> its edges

    @property
    def is_local(self) -> bool:
        """A workspace member or a local path dependency (built from source on this machine)."""
        return any(k in self.source for k in ("editable", "virtual", "directory", "path")) and not (
            "path" in self.source and str(self.source["path"]).endswith((".whl", ".tar.gz", ".zip"))
        )


def edges(entries: Iterable[dict[str, Any]]) -> tuple[Edge, ...]:
    """The edges of a dependency list: ``extra`` on a package's edges, ``extras`` in the
    requirements of `[manifest]` (both read: either names extras the edge activates)."""
    return tuple(Edge(canonicalize_name(e["name"]),
                      tuple(canonicalize_name(x) for x in (*e.get("extra", ()),
                                                           *e.get("extras", ()))))
                 for e in entries)


def locked_packages(lock: dict[str, Any]) -> dict[str, tuple[LockedPackage, ...]]:
    """Every `[[package]]` of a parsed uv.lock by canonical name, each locked version of a
    name (in the lock's order)."""
    out: dict[str, list[LockedPackage]] = {}
    for p in lock.get("package", []):
        name = canonicalize_name(p["name"])
        out.setdefault(name, []).append(LockedPackage(
            name=name,
            version=p.get("version"),
            source=dict(p.get("source", {})),
            dependencies=edges(p.get("dependencies", [])),
            optional={canonicalize_name(k): edges(v)
                      for k, v in p.get("optional-dependencies", {}).items()},
            groups={canonicalize_name(k): edges(v)
                    for k, v in p.get("dev-dependencies", {}).items()},
        ))
    return {k: tuple(v) for k, v in out.items()}


def manifest_groups(lock: dict[str, Any]) -> dict[str, tuple[Edge, ...]]:
    """The dependency groups of a virtual workspace root (`[manifest.dependency-groups]`)."""
    groups = lock.get("manifest", {}).get("dependency-groups", {})
    return {canonicalize_name(k): edges(v) for k, v in groups.items()}


def reachable(
    packages: Mapping[str, Iterable[LockedPackage]],
    roots: Iterable[str],
    *,
    extras: Iterable[str] = (),
    all_extras: bool = False,
    groups: Iterable[str] = (),
    root_groups: Mapping[str, Iterable[Edge]] | None = None,
) -> tuple[str, ...]:
    """Every locked package a sync of ``roots`` installs, roots included, sorted.

    ``extras`` (or ``all_extras``) and ``groups`` are asked of the roots; ``root_groups`` are
    the groups of a virtual workspace root, followed when asked for too. Beyond the roots an
    extra is followed only where an edge names it. A name not in the lock is left out.
    """
    extras, groups = {canonicalize_name(e) for e in extras}, {canonicalize_name(g)
                                                               for g in groups}
    top = {canonicalize_name(r) for r in roots}
    # (name, None) is a package's own dependencies; (name, extra) the edges of one extra
    todo: list[tuple[str, str | None]] = [(r, None) for r in sorted(top)]
    for group, group_edges in (root_groups or {}).items():
        if group in groups:
            todo += _targets(group_edges)
    seen: set[tuple[str, str | None]] = set()
    while todo:
        node = todo.pop()
        if node in seen or node[0] not in packages:
            continue
        seen.add(node)
        name, extra = node
        for pkg in packages[name]:
            if extra is not None:
                todo += _targets(pkg.optional.get(extra, ()))
                continue
            todo += _targets(pkg.dependencies)
            if name in top:
                for e, e_edges in pkg.optional.items():
                    if all_extras or e in extras:
                        todo += _targets(e_edges)
                for g, g_edges in pkg.groups.items():
                    if g in groups:
                        todo += _targets(g_edges)
    return tuple(sorted({name for name, _ in seen}))


def _targets(edges_: Iterable[Edge]) -> list[tuple[str, str | None]]:
    """The nodes an edge leads to: the package itself, and each extra it names."""
    return [n for e in edges_ for n in ((e.name, None), *((e.name, x) for x in e.extras))]
