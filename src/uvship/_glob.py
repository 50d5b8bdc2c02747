"""Path globs as regular expressions, and .dockerignore files: how a context is filtered."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError


def glob_pattern(pattern: str) -> str:
    """The regex (unanchored) of a path glob, as moby/patternmatcher reads .dockerignore:
    `*` and `?` within a segment, `**` across them, `[...]` classes, `\\` escapes."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (j := pattern.find("]", i + 1)) > i:
            body = pattern[i + 1:j]
            out.append("[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class IgnoreFile:
    """A .dockerignore: patterns in order, the last match wins, `!` re-includes."""

    path: Path
    patterns: tuple[tuple[re.Pattern[str], bool, int], ...]  # regex, excluded?, line

    @classmethod
    def read(cls, path: Path) -> IgnoreFile:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text (expected a .dockerignore)") from exc
        return cls.of(text.splitlines(), path)

    @classmethod
    def of(cls, lines: Iterable[str], path: Path = Path("-")) -> IgnoreFile:
        """Patterns given as lines (e.g. defaults, or an option's values)."""
        pats = []
        for n, raw in enumerate(lines, 1):
            p = raw.strip()
            if not p or p.startswith("#"):
                continue
            negate = p.startswith("!")
            p = p[1:].strip() if negate else p
            p = os.path.normpath(p.lstrip("/")).replace(os.sep, "/")
            pats.append((re.compile(glob_pattern(p)), not negate, n))
        return cls(path, tuple(pats))

    def __add__(self, other: IgnoreFile) -> IgnoreFile:
        """These patterns, then ``other``'s (which win, and may re-include)."""
        return IgnoreFile(other.path, self.patterns + other.patterns)

    @property
    def reincludes(self) -> bool:
        """Whether any pattern is an exception (`!`): then an excluded directory must still
        be walked, since something below it may be re-included."""
        return any(not excluded for _, excluded, _ in self.patterns)

    def excludes(self, rel: str) -> bool:
        """Whether the context path ``rel`` (or a directory above it) is left out."""
        parts = rel.strip("/").split("/")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        out = False
        for rx, excluded, _ in self.patterns:
            if any(rx.fullmatch(c) for c in candidates):
                out = excluded
        return out
