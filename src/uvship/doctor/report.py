"""`uvship doctor`'s run: every Dockerfile and compose file at a path read and checked.

The top of the doctor: it imports the reader (parse.py) and the checks (rules.py), and
neither imports it, so imports in the package point one way: report -> rules -> parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..sarif import Finding
from .parse import build_context, find_files, ignore_file_for, parse_dockerfile, read_compose
from .rules import check_compose, check_dockerfile


@dataclass(frozen=True)
class Report:
    """What `uvship doctor` found: the files it checked (no file twice; none when ``root``
    holds no Dockerfile or compose file) and each finding, in file order."""

    root: Path
    files: tuple[Path, ...]
    findings: tuple[Finding, ...]

    def count(self, level: str) -> int:
        return sum(f.level == level for f in self.findings)


def diagnose(path: Path | str) -> Report:
    """Read every Dockerfile and compose file at ``path`` and check them."""
    path = Path(path)
    files = find_files(path)
    root = path if path.is_dir() else path.parent
    composes = [read_compose(p) for k, p in files if k == "compose"]
    # A Dockerfile a compose file builds is checked with that build's context (and checked
    # even when it lies outside ``path``); any other with the context it most likely has.
    contexts: dict[Path, Path] = {}
    for s in (s for c in composes for s in c.services):
        if s.dockerfile is not None and s.context is not None and s.dockerfile.is_file():
            if s.dockerfile.resolve() not in {p.resolve() for _, p in files}:
                files.append(("dockerfile", s.dockerfile))
            contexts.setdefault(s.dockerfile.resolve(), s.context)
    findings = []
    read: dict[Path, Path] = {}  # resolved -> as shown
    for kind, p in files:
        if kind == "dockerfile":
            df = parse_dockerfile(p)
            context = contexts.get(p.resolve()) or build_context(df, root)
            ignore = ignore_file_for(p, context)
            findings += check_dockerfile(df, context, ignore)
            for f in (p, ignore.path) if ignore else (p,):
                read.setdefault(f.resolve(), f)
    for c in composes:
        findings += check_compose(c)
        read.setdefault(c.path.resolve(), c.path)
    findings.sort(key=lambda f: (str(f.path), f.line, f.rule.id))
    return Report(root, tuple(read.values()), tuple(findings))
