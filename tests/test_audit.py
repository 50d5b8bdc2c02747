"""`uvship audit` on real locks of old releases, against an OSV service holding real advisories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from uvship.audit import audit_tree, find_targets, glob_regex, render_json, render_sarif

from .conftest import run, validate_sarif
from .osv_service import running_osv


def cli(*args: str):
    return run([sys.executable, "-m", "uvship", *args], check=False)


def _project(root: Path, name: str, deps: list[str], uv: str) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f"dependencies = {json.dumps(deps)}\n")
    run([uv, "lock", "--quiet", "--no-python-downloads"], cwd=root)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Three workspaces: an affected jinja2, its fixed release, and an excluded old requests
    (whose urllib3 1.23 is affected too). Locked once: locking asks PyPI."""
    from uvship.uv import uv_bin

    root = tmp_path_factory.mktemp("audit-tree")
    _project(root / "app", "app", ["jinja2==2.10"], uv_bin())
    _project(root / "clean", "clean", ["jinja2==2.10.1"], uv_bin())
    _project(root / "legacy" / "old", "old", ["requests==2.19.1"], uv_bin())
    return root


@pytest.fixture(scope="module")
def osv():
    with running_osv() as svc:
        yield svc


def test_globs():
    assert glob_regex("legacy/**").fullmatch("legacy/old")
    assert glob_regex("**/tests/**").fullmatch("tests/fixtures/x")
    assert glob_regex("**/tests/**").fullmatch("pkg/tests/fixtures")
    assert not glob_regex("legacy/*").fullmatch("legacy/old/deeper")
    assert not glob_regex("app*").fullmatch("legacy/app")


def test_affected_lock_fails_clean_passes_excluded_skipped(tree, osv):
    targets = find_targets(tree, ["legacy"])
    assert targets.audit == [tree / "app", tree / "clean"]
    assert targets.excluded == [tree / "legacy" / "old"]

    reports = audit_tree(tree, exclude=["legacy/**"], service_url=osv.url)
    by = {r.path.name: r for r in reports}
    assert set(by) == {"app", "clean"}
    app, clean = by["app"], by["clean"]
    assert app.failed and not app.error
    assert [(f.package, f.version, f.id) for f in app.findings] == [
        ("jinja2", "2.10", "PYSEC-2019-217")]
    f = app.findings[0]
    assert f.aliases == ("CVE-2019-10906",) and f.fixed_versions == ("2.10.1",)
    assert "sandbox escape" in f.summary
    assert not clean.failed and clean.findings == () and clean.packages == 2
    # the excluded workspace never reached the service
    assert ("requests", "2.19.1") not in osv.queried()
    assert ("jinja2", "2.10.1") in osv.queried()

    # --ignore takes an advisory's ID or one of its aliases, as uv's does
    again = audit_tree(tree / "app", service_url=osv.url, ignore=["CVE-2019-10906"])
    assert [r.failed for r in again] == [False]


def test_cli_exit_codes_and_json(tree, osv):
    proc = cli("audit", str(tree), "--exclude", "legacy/**", "--service-url", osv.url,
               "--format", "json")
    assert proc.returncode == 1, proc.stderr
    assert f"skipped (excluded): {tree / 'legacy/old/uv.lock'}" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "uvship-audit/1"
    assert doc["summary"] == {"workspaces": 2, "failed": 1, "findings": 1}
    ws = {w["workspace"]: w for w in doc["workspaces"]}
    assert ws["app"]["lock"] == "app/uv.lock" and ws["app"]["error"] is None
    assert ws["app"]["findings"][0]["id"] == "PYSEC-2019-217"
    assert ws["clean"]["findings"] == []

    # the excluded workspace, audited alone: two advisories (requests and its urllib3)
    proc = cli("audit", str(tree / "legacy"), "--service-url", osv.url)
    assert proc.returncode == 1, proc.stderr
    assert "PYSEC-2018-28" in proc.stdout and "PYSEC-2019-133" in proc.stdout
    assert proc.stdout.startswith("old/uv.lock: 5 packages, 2 known vulnerabilities")

    proc = cli("audit", str(tree / "clean"), "--service-url", osv.url)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == "uv.lock: 2 packages, 0 known vulnerabilities\n"


def test_unreachable_service_is_an_error_not_a_pass(tree, monkeypatch):
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv retries 3 times, 10 s, by default
    proc = cli("audit", str(tree / "clean"), "--service-url", "http://127.0.0.1:9")
    assert proc.returncode == 2
    assert "error: " in proc.stderr and "not audited" in proc.stderr
    assert "127.0.0.1:9" in proc.stderr


def test_no_workspace_is_a_clear_error(tmp_path):
    proc = cli("audit", str(tmp_path))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {tmp_path}: no uv workspace found")


def test_sarif(tree, osv):
    reports = audit_tree(tree, service_url=osv.url)
    sarif = json.loads(render_sarif(reports, tree))
    assert sarif["version"] == "2.1.0" and len(sarif["runs"]) == 1
    run_ = sarif["runs"][0]
    rules = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert sorted(rules) == ["PYSEC-2018-28", "PYSEC-2019-133", "PYSEC-2019-217"]
    got = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
           for r in run_["results"]}
    assert got == {("PYSEC-2019-217", "app/uv.lock"), ("PYSEC-2018-28", "legacy/old/uv.lock"),
                   ("PYSEC-2019-133", "legacy/old/uv.lock")}
    for r in run_["results"]:
        assert rules[r["ruleIndex"]] == r["ruleId"]
        loc = r["locations"][0]["physicalLocation"]
        line = (tree / loc["artifactLocation"]["uri"]).read_text().splitlines()[
            loc["region"]["startLine"] - 1]
        assert line.startswith('name = "')  # the package's entry in uv.lock


def test_sarif_and_json_validate(tree, osv):
    reports = audit_tree(tree, service_url=osv.url)
    doc = json.loads(render_json(reports, tree))
    assert [w["workspace"] for w in doc["workspaces"]] == ["app", "clean", "legacy/old"]
    assert all(set(f) == {"package", "version", "id", "aliases", "summary", "details",
                          "fixed_versions", "link"}
               for w in doc["workspaces"] for f in w["findings"])
    sarif = json.loads(render_sarif(reports, tree))
    validate_sarif(sarif)
    # the vulnerable locks were read (artifacts) and each result names one of them
    (run_,) = sarif["runs"]
    locks = {a["location"]["uri"] for a in run_["artifacts"]}
    assert locks == {"app/uv.lock", "clean/uv.lock", "legacy/old/uv.lock"}
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in run_["results"]} <= locks
    # also valid with nothing found (an empty run)
    validate_sarif(json.loads(render_sarif([], tree)))
