"""Findings, and the one SARIF 2.1.0 writer every report of them goes through.

A finding is what a check says about one place: the rule it breaks (`Rule`), the file and
line, what was found there, and the level and fix for that place. `uvship docker doctor`
makes them from its rules; `uvship audit` from the advisories uv reports on a uv.lock.
`log` (and `render`, the same as JSON text) writes any list of them the same way: one
run, the rules in `tool.driver.rules`, a result per finding located by a path relative to
the root scanned (`uriBaseId` SRCROOT), the files read as `artifacts`, and an invocation
that says whether every input could be read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# OASIS's SARIF 2.1.0 schema (with errata 01), by the `id` the schema itself declares.
SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
VERSION = "2.1.0"
LEVELS = ("error", "warning", "note")  # SARIF's levels, worst first
ROOT_ID = "SRCROOT"  # the uriBaseId every location is relative to


@dataclass(frozen=True)
class Rule:
    """What a check looks for (SARIF's reportingDescriptor)."""

    id: str  # e.g. UV004, or an advisory's id (GHSA-..., PYSEC-...)
    name: str
    level: str  # the default level: error | warning | note
    title: str  # one line: what is wrong
    why: str  # why it hurts
    fix: str = ""  # how to fix it, in general ("" when only a finding can say)
    uri: str | None = None  # where more is written about it
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # other ids of the same rule (an advisory's CVE, GHSA, ...)


@dataclass(frozen=True)
class Finding:
    """A rule broken at one place (SARIF's result): both commands report this shape.

    The audit keeps its own record of what uv reported (`audit.Vulnerability`: a package
    version and an advisory, fixed versions and aliases) because that is data about a
    locked version, with no file or line until a report puts it at its uv.lock entry;
    the audit makes a Finding of it there. The doctor's checks make Findings directly.
    """

    rule: Rule
    path: Path
    line: int
    message: str  # what was found here (and why it hurts)
    level: str  # the rule's level, or one for this place
    fix: str  # the rule's fix, one written for this place, or ""
    fingerprints: tuple[tuple[str, str], ...] = ()  # SARIF partialFingerprints, as pairs


@dataclass(frozen=True)
class Tool:
    """Who wrote the log: `tool.driver` without its rules."""

    name: str
    information_uri: str
    version: str | None = None  # default: uvship's own


def _rule(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "name": r.name,
                           "shortDescription": {"text": r.title},
                           "fullDescription": {"text": r.why},
                           "defaultConfiguration": {"level": r.level}}
    if r.fix:
        out["help"] = {"text": f"Fix: {r.fix}"}
    if r.uri:
        out["helpUri"] = r.uri
    properties = {k: list(v) for k, v in (("tags", r.tags), ("aliases", r.aliases)) if v}
    if properties:
        out["properties"] = properties
    return out


def log(tool: Tool, findings: Iterable[Finding], *, root: Path,
        rules: Iterable[Rule] | None = None, artifacts: Iterable[Path] = (),
        errors: Sequence[str] = ()) -> dict[str, Any]:
    """One SARIF run of ``findings`` as a JSON-ready dict.

    ``rules`` are described in the driver in their order (default: the rules of the
    findings, in the order they first appear; a finding's rule missing from them is
    added). Paths are written relative to ``root``. ``artifacts`` are the files read;
    ``errors`` say what could not be checked (the run is then not successful).
    """
    from ._version import version

    findings = list(findings)
    described = {r.id: r for r in (rules if rules is not None else ())}
    for f in findings:
        described.setdefault(f.rule.id, f.rule)
    index = {rule_id: i for i, rule_id in enumerate(described)}
    base = Path(root).resolve()

    def where(path: Path) -> dict[str, str]:
        rel = os.path.relpath(Path(path).resolve(), base)
        return {"uri": Path(rel).as_posix(), "uriBaseId": ROOT_ID}

    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule.id, "ruleIndex": index[f.rule.id], "level": f.level,
            "message": {"text": f"{f.message} Fix: {f.fix}" if f.fix else f.message},
            "locations": [{"physicalLocation": {"artifactLocation": where(f.path),
                                                "region": {"startLine": f.line}}}]}
        if f.fingerprints:
            result["partialFingerprints"] = dict(f.fingerprints)
        results.append(result)
    invocation: dict[str, Any] = {"executionSuccessful": not errors}
    if errors:
        invocation["toolExecutionNotifications"] = [
            {"message": {"text": e}, "level": "error"} for e in errors]
    return {"$schema": SCHEMA, "version": VERSION, "runs": [{
        "tool": {"driver": {"name": tool.name, "version": tool.version or version(),
                            "informationUri": tool.information_uri,
                            "rules": [_rule(r) for r in described.values()]}},
        "originalUriBaseIds": {ROOT_ID: {"uri": base.as_uri() + "/"}},
        "artifacts": [{"location": where(p)} for p in artifacts],
        "invocations": [invocation],
        "results": results,
    }]}


def render(tool: Tool, findings: Iterable[Finding], *, root: Path,
           rules: Iterable[Rule] | None = None, artifacts: Iterable[Path] = (),
           errors: Sequence[str] = ()) -> str:
    """`log` as the JSON text the commands print (keys sorted, indented)."""
    return json.dumps(log(tool, findings, root=root, rules=rules, artifacts=artifacts,
                          errors=errors), indent=2, sort_keys=True)
