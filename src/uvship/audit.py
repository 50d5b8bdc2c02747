"""Auditing every uv workspace of a source tree for known vulnerabilities, through `uv audit`.

uv reads each uv.lock (``--frozen``: nothing is locked or installed) and asks an
OSV-compatible service (``POST /v1/querybatch``, then ``GET /v1/vulns/<id>``) about every
locked version; uvship runs it for each workspace in parallel and turns uv's JSON into one
report per workspace, rendered as text, JSON or SARIF 2.1.0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import _proc, sarif, uv
from ._glob import glob_pattern
from .errors import CommandError
from .project.workspace import find_workspaces

# uv exits 1 when it found something and 2 when it could not audit: only the second is a
# failure of the run; the findings are read from its JSON.
_FINDINGS_ARE_OK = '"$0" "$@"; s=$?; [ "$s" -le 1 ] || exit "$s"'


@dataclass(frozen=True)
class Vulnerability:
    """One advisory affecting one locked package version, as uv reported it.

    Not a `sarif.Finding`: this is data about a package version (its advisory, aliases
    and fixed versions, all of which the JSON report keeps), with no place in a file. A
    report puts it at the package's entry in a uv.lock, and that (`finding`) is the
    shared Finding, the shape the doctor's findings have too.
    """

    package: str
    version: str
    id: str  # the advisory's id in the service (OSV), e.g. GHSA-... or PYSEC-...
    aliases: tuple[str, ...] = ()
    summary: str = ""  # OSV's summary, else the first sentence of its details
    details: str = ""
    fixed_versions: tuple[str, ...] = ()
    link: str | None = None

    def finding(self, lock: Path) -> sarif.Finding:
        """This vulnerability at the line of its package's entry in ``lock``; the advisory
        is the rule broken."""
        rule = sarif.Rule(self.id, self.id, "error", self.summary or self.id,
                          self.details or self.summary or self.id, uri=self.link,
                          tags=("security", "vulnerability"), aliases=self.aliases)
        fixed = f"; fixed in {', '.join(self.fixed_versions)}" if self.fixed_versions else ""
        return sarif.Finding(
            rule, lock, _lock_line(lock, self.package, self.version),
            f"{self.package} {self.version} is affected by {self.id}: {self.summary}{fixed}",
            "error", "",
            (("uvship/advisory", f"{self.id}:{self.package}:{self.version}"),))


@dataclass(frozen=True)
class Status:
    """An adverse project status uv reports (archived, deprecated, quarantined)."""

    package: str
    version: str | None
    status: str
    reason: str = ""


@dataclass(frozen=True)
class WorkspaceReport:
    """What the audit of one workspace found; ``error`` when it could not be audited."""

    path: Path  # the workspace root (the directory of uv.lock)
    packages: int = 0
    findings: tuple[Vulnerability, ...] = ()  # sorted by package, version, id
    statuses: tuple[Status, ...] = ()
    error: str | None = None

    @property
    def lock(self) -> Path:
        return self.path / "uv.lock"

    @property
    def failed(self) -> bool:
        """A finding, an adverse status or an error: what makes `uvship audit` exit non-zero."""
        return bool(self.findings or self.statuses or self.error)


@dataclass(frozen=True)
class Targets:
    root: Path
    audit: list[Path] = field(default_factory=list)
    excluded: list[Path] = field(default_factory=list)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob as a regex: ``*`` and ``?`` stay within one directory, ``**`` crosses
    them (``**/tests/**``, ``legacy/*``); a trailing ``/`` is ignored."""
    return re.compile(glob_pattern(pattern.strip().rstrip("/") or "."))


def find_targets(root: Path | str, exclude: Iterable[str] = ()) -> Targets:
    """The workspaces under ``root`` to audit, and those an ``exclude`` glob skips.

    A glob is matched against each workspace's directory relative to ``root``, against
    the directories above it and against its uv.lock (``legacy``, ``legacy/**`` and
    ``**/uv.lock``-style patterns all work).
    """
    root = Path(root)
    rx = [glob_regex(g) for g in exclude]
    t = Targets(root)
    for ws in find_workspaces(root):
        rel = ws.relative_to(root).as_posix()
        parts = [] if rel == "." else rel.split("/")
        names = {".", f"{rel}/uv.lock".removeprefix("./")}
        names |= {"/".join(parts[:n]) for n in range(1, len(parts) + 1)}
        (t.excluded if any(r.fullmatch(n) for r in rx for n in names) else t.audit).append(ws)
    return t


def audit_tree(path: Path | str, *, exclude: Iterable[str] = (), service_url: str | None = None,
               ignore: Iterable[str] = (), jobs: int = 2) -> list[WorkspaceReport]:
    """Audit every workspace under ``path`` (but the excluded ones), ``jobs`` at a time.

    A workspace uv cannot audit gets a report with ``error`` set; the others are audited
    all the same. Reports come in the order of the workspaces' paths.
    """
    targets = find_targets(path, exclude)
    ignore = tuple(ignore)
    # Found once, before the threads: the uv package's finder reads sysconfig, whose lazy
    # first initialisation is not thread-safe (two threads at once got EXE = None).
    uv.uv_bin()
    with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="uvship-audit") as pool:
        return list(pool.map(lambda ws: audit_workspace(ws, service_url=service_url,
                                                        ignore=ignore), targets.audit))


def audit_workspace(ws: Path, *, service_url: str | None = None,
                    ignore: Sequence[str] = ()) -> WorkspaceReport:
    """`uv audit --frozen --output-format json` in the workspace at ``ws``, as a report."""
    args = ["audit", "--frozen", "--output-format", "json", "--project", str(ws),
            # uv 0.13 marks both as preview; asking for them keeps the warnings off stderr
            "--preview-features", "audit-command,json-output"]
    if service_url:
        args += ["--service-url", service_url]
    for i in ignore:
        args += ["--ignore", i]
    try:
        proc = _proc.run(["sh", "-c", _FINDINGS_ARE_OK, uv.uv_bin(), *args], cwd=ws,
                         env={"UV_NO_PROGRESS": "1", "NO_COLOR": "1"},
                         what=f"uv audit in {ws}")
    except CommandError as exc:
        return WorkspaceReport(ws, error=_last_error(exc.stderr) or exc.message)
    try:
        return parse_uv_json(ws, json.loads(proc.stdout))
    except (ValueError, KeyError, TypeError) as exc:
        return WorkspaceReport(ws, error=f"uv audit printed JSON uvship cannot read ({exc})")


def _last_error(stderr: str) -> str:
    """uv's own words: its error line and the causes under it, without the warnings."""
    lines = [ln for ln in stderr.splitlines() if not ln.startswith("warning:")]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), 0)
    return "\n".join(lines[start:]).strip()


def parse_uv_json(ws: Path, doc: dict[str, Any]) -> WorkspaceReport:
    """uv's JSON report (schema "preview" in uv 0.13) as a WorkspaceReport."""
    findings = []
    for v in doc.get("vulnerabilities", []):
        dep = v["dependency"]
        details = (v.get("description") or "").strip()
        # PyPA's records (PYSEC-...) have details and no summary
        summary = v.get("summary") or details.split(". ", 1)[0].split("\n", 1)[0].rstrip(".")
        findings.append(Vulnerability(
            package=dep["name"], version=str(dep.get("version", "")), id=v["id"],
            aliases=tuple(v.get("aliases") or ()), summary=summary.strip(), details=details,
            fixed_versions=tuple(v.get("fix_versions") or ()), link=v.get("link")))
    statuses = []
    for s in doc.get("adverse_statuses", []):
        dep = s.get("dependency", {})
        statuses.append(Status(package=dep.get("name", "?"), version=dep.get("version"),
                               status=str(s.get("status", "?")),
                               reason=str(s.get("reason") or "")))
    packages = int(doc.get("summary", {}).get("audited_packages", 0))
    return WorkspaceReport(ws, packages, tuple(sorted(findings, key=_finding_key)),
                           tuple(statuses))


def _finding_key(f: Vulnerability) -> tuple[str, str, str]:
    return (f.package, f.version, f.id)


# ---------------------------------------------------------------------- renderers
def _rel(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def render_text(reports: Sequence[WorkspaceReport], root: Path | None = None) -> str:
    lines = []
    for r in reports:
        where = _rel(r.lock, root)
        if r.error:
            lines.append(f"{where}: not audited: {r.error}")
            continue
        n = len(r.findings)
        lines.append(f"{where}: {r.packages} packages, "
                     f"{n} known vulnerabilit{'y' if n == 1 else 'ies'}")
        for f in r.findings:
            fixed = f"fixed in {', '.join(f.fixed_versions)}" if f.fixed_versions else "no fix"
            also = f" ({', '.join(f.aliases)})" if f.aliases else ""
            lines.append(f"  {f.package} {f.version}: {f.id}{also}: {f.summary} [{fixed}]")
        for s in r.statuses:
            lines.append(f"  {s.package} {s.version or ''}: project is {s.status}"
                         + (f": {s.reason}" if s.reason else ""))
    return "\n".join(lines)


def render_json(reports: Sequence[WorkspaceReport], root: Path | None = None) -> str:
    def one(r: WorkspaceReport) -> dict[str, Any]:
        return {"workspace": _rel(r.path, root) or ".", "lock": _rel(r.lock, root),
                "packages": r.packages, "error": r.error,
                "findings": [asdict(f) for f in r.findings],
                "statuses": [asdict(s) for s in r.statuses]}

    doc = {"schema": "uvship-audit/1",
           "summary": {"workspaces": len(reports),
                       "failed": sum(1 for r in reports if r.failed),
                       "findings": sum(len(r.findings) for r in reports)},
           "workspaces": [one(r) for r in reports]}
    return json.dumps(doc, indent=2, sort_keys=True)


def render_sarif(reports: Sequence[WorkspaceReport], root: Path | None = None,
                 version: str | None = None) -> str:
    """SARIF 2.1.0 (`uvship.sarif`, as the doctor's): one run, a rule per advisory, a
    result per (workspace, vulnerability) at the line of the package's entry in that
    workspace's uv.lock, paths relative to ``root`` (default: the current directory)."""
    return sarif.render(
        sarif.Tool("uvship audit", "https://osv.dev/", version),
        [v.finding(r.lock) for r in reports for v in r.findings],
        root=root if root is not None else Path.cwd(),
        artifacts=[r.lock for r in reports if not r.error],
        errors=[f"{_rel(r.lock, root)}: not audited: {r.error}" for r in reports if r.error])


def _lock_line(lock: Path, package: str, version: str) -> int:
    """The line of ``name = "<package>"`` in the [[package]] of that version, else 1."""
    try:
        lines = lock.read_text().splitlines()
    except OSError:
        return 1
    name = f'name = "{package}"'
    for i, line in enumerate(lines):
        if line == name and lines[i + 1:i + 2] == [f'version = "{version}"']:
            return i + 1
    return next((i + 1 for i, line in enumerate(lines) if line == name), 1)
