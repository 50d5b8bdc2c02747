"""Path globs as regular expressions, the way .dockerignore patterns are read."""

from __future__ import annotations

import re


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
