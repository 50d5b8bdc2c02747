"""The one SARIF writer (uvship.sarif), in-process: what it writes for findings, and that the
doctor's and the audit's outputs are both valid SARIF 2.1.0 (OASIS's schema)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from uvship import audit, sarif
from uvship._version import version
from uvship.cli.docker import report_sarif
from uvship.doctor.report import diagnose
from uvship.doctor.rules import RULES

from ..conftest import validate_sarif

TOOL = sarif.Tool("checker", "https://example.invalid/checker", "1.2.3")
LOUD = sarif.Rule("R1", "loud", "error", "it is loud", "loud hurts", "be quiet",
                  uri="https://example.invalid/R1", tags=("noise",), aliases=("CVE-1",))
SOFT = sarif.Rule("R2", "soft", "note", "it is soft", "soft is fine")


def finding(rule: sarif.Rule, path: Path, line: int = 1, fix: str = "",
            **kw) -> sarif.Finding:
    return sarif.Finding(rule, path, line, f"{rule.name} here", kw.pop("level", rule.level),
                         fix, **kw)


def test_one_run_with_the_oasis_schema_and_the_tool(tmp_path):
    log = sarif.log(TOOL, [], root=tmp_path)
    assert (log["$schema"], log["version"]) == (sarif.SCHEMA, "2.1.0")
    assert sarif.SCHEMA.startswith("https://docs.oasis-open.org/sarif/sarif/v2.1.0/")
    (run,) = log["runs"]
    assert run["tool"]["driver"] == {"name": "checker", "version": "1.2.3",
                                     "informationUri": "https://example.invalid/checker",
                                     "rules": []}
    assert run["results"] == [] and run["artifacts"] == []
    assert run["invocations"] == [{"executionSuccessful": True}]


def test_the_version_defaults_to_uvships(tmp_path):
    log = sarif.log(sarif.Tool("t", "https://example.invalid"), [], root=tmp_path)
    assert log["runs"][0]["tool"]["driver"]["version"] == version()


def test_rules_are_described_in_full_or_only_with_what_they_have(tmp_path):
    rules = sarif.log(TOOL, [], root=tmp_path, rules=[LOUD, SOFT])["runs"][0]["tool"]["driver"]
    assert rules["rules"] == [
        {"id": "R1", "name": "loud", "shortDescription": {"text": "it is loud"},
         "fullDescription": {"text": "loud hurts"}, "defaultConfiguration": {"level": "error"},
         "help": {"text": "Fix: be quiet"}, "helpUri": "https://example.invalid/R1",
         "properties": {"tags": ["noise"], "aliases": ["CVE-1"]}},
        {"id": "R2", "name": "soft", "shortDescription": {"text": "it is soft"},
         "fullDescription": {"text": "soft is fine"}, "defaultConfiguration": {"level": "note"}},
    ]


def test_rules_default_to_those_found_and_a_missing_one_is_added(tmp_path):
    f = tmp_path / "f"
    found = [finding(SOFT, f), finding(LOUD, f), finding(SOFT, f, 2)]
    run = sarif.log(TOOL, found, root=tmp_path)["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["R2", "R1"]
    assert [r["ruleIndex"] for r in run["results"]] == [0, 1, 0]
    run = sarif.log(TOOL, found[1:2], root=tmp_path, rules=[SOFT])["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["R2", "R1"]
    assert run["results"][0]["ruleIndex"] == 1


def test_a_result_is_located_relative_to_the_root(tmp_path):
    (tmp_path / "root" / "sub").mkdir(parents=True)
    root = tmp_path / "root"
    inside = finding(LOUD, root / "sub" / "Dockerfile", 7, fix="here: be quiet",
                     level="warning")
    outside = finding(SOFT, tmp_path / "elsewhere" / "compose.yaml", 3)
    run = sarif.log(TOOL, [inside, outside], root=root,
                    artifacts=[root / "sub" / "Dockerfile"])["runs"][0]
    assert run["originalUriBaseIds"] == {"SRCROOT": {"uri": root.resolve().as_uri() + "/"}}
    assert run["artifacts"] == [{"location": {"uri": "sub/Dockerfile", "uriBaseId": "SRCROOT"}}]
    assert run["results"] == [
        {"ruleId": "R1", "ruleIndex": 0, "level": "warning",
         "message": {"text": "loud here Fix: here: be quiet"},
         "locations": [{"physicalLocation": {
             "artifactLocation": {"uri": "sub/Dockerfile", "uriBaseId": "SRCROOT"},
             "region": {"startLine": 7}}}]},
        {"ruleId": "R2", "ruleIndex": 1, "level": "note", "message": {"text": "soft here"},
         "locations": [{"physicalLocation": {
             "artifactLocation": {"uri": "../elsewhere/compose.yaml", "uriBaseId": "SRCROOT"},
             "region": {"startLine": 3}}}]},
    ]


def test_fingerprints_and_errors(tmp_path):
    f = finding(LOUD, tmp_path / "uv.lock", fingerprints=(("uvship/advisory", "R1:x:1"),))
    run = sarif.log(TOOL, [f], root=tmp_path, errors=["b/uv.lock: not audited: boom"])["runs"][0]
    assert run["results"][0]["partialFingerprints"] == {"uvship/advisory": "R1:x:1"}
    assert run["invocations"] == [{
        "executionSuccessful": False,
        "toolExecutionNotifications": [{"message": {"text": "b/uv.lock: not audited: boom"},
                                        "level": "error"}]}]


def test_render_is_the_log_as_sorted_indented_json(tmp_path):
    found = [finding(LOUD, tmp_path / "a", 2)]
    text = sarif.render(TOOL, found, root=tmp_path, rules=[SOFT])
    assert json.loads(text) == sarif.log(TOOL, found, root=tmp_path, rules=[SOFT])
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True)


# ---------------------------------------------------------------------- both commands
def test_the_doctors_output_is_valid_sarif(tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.12-slim\nCOPY . /app\nRUN pip install uv && uv sync\n")
    doc = json.loads(report_sarif(diagnose(tmp_path)))
    validate_sarif(doc)
    (run,) = doc["runs"]
    assert run["tool"]["driver"]["name"] == "uvship doctor"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(RULES)
    found = {(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
             for r in run["results"]}
    assert {("UV001", 2), ("UV004", 3), ("UV006", 3), ("UV011", 1)} <= found
    assert run["artifacts"] == [{"location": {"uri": "Dockerfile", "uriBaseId": "SRCROOT"}}]


UV_JSON = {  # what `uv audit --output-format json` prints (uv 0.13, schema "preview")
    "vulnerabilities": [{
        "dependency": {"name": "jinja2", "version": "2.10"}, "id": "PYSEC-2019-217",
        "aliases": ["CVE-2019-10906", "GHSA-462w-v97r-4m45"],
        "description": "In Pallets Jinja before 2.10.1, str.format_map allows a sandbox "
                       "escape. More details.",
        "fix_versions": ["2.10.1"], "link": "https://osv.dev/vulnerability/PYSEC-2019-217"}],
    "summary": {"audited_packages": 2},
}
LOCK = 'version = 1\n\n[[package]]\nname = "jinja2"\nversion = "2.10"\n'


def test_the_audits_output_is_valid_sarif(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "uv.lock").write_text(LOCK)
    reports = [audit.parse_uv_json(tmp_path / "app", UV_JSON),
               audit.WorkspaceReport(tmp_path / "broken", error="uv could not read it")]
    doc = json.loads(audit.render_sarif(reports, tmp_path, version="0.0.0"))
    validate_sarif(doc)
    (run,) = doc["runs"]
    (rule,) = run["tool"]["driver"]["rules"]
    assert (rule["id"], rule["shortDescription"]["text"], rule["helpUri"]) == (
        "PYSEC-2019-217", "In Pallets Jinja before 2.10.1, str.format_map allows a sandbox "
        "escape", "https://osv.dev/vulnerability/PYSEC-2019-217")
    assert rule["properties"]["aliases"] == ["CVE-2019-10906", "GHSA-462w-v97r-4m45"]
    (result,) = run["results"]
    assert result["message"]["text"].startswith("jinja2 2.10 is affected by PYSEC-2019-217: ")
    assert result["message"]["text"].endswith("; fixed in 2.10.1")
    loc = result["locations"][0]["physicalLocation"]
    assert loc == {"artifactLocation": {"uri": "app/uv.lock", "uriBaseId": "SRCROOT"},
                   "region": {"startLine": 4}}  # the line of `name = "jinja2"`
    assert result["partialFingerprints"] == {"uvship/advisory": "PYSEC-2019-217:jinja2:2.10"}
    assert run["invocations"][0]["executionSuccessful"] is False
    assert run["artifacts"] == [{"location": {"uri": "app/uv.lock", "uriBaseId": "SRCROOT"}}]


def test_the_empty_outputs_are_valid_sarif(tmp_path):
    validate_sarif(json.loads(audit.render_sarif([], tmp_path)))
    validate_sarif(json.loads(report_sarif(diagnose(tmp_path))))


def test_the_schema_check_itself_can_fail(tmp_path):
    doc = sarif.log(TOOL, [finding(LOUD, tmp_path / "a", level="fatal")], root=tmp_path)
    with pytest.raises(jsonschema.ValidationError, match="'fatal' is not one of"):
        validate_sarif(doc)
    with pytest.raises(AssertionError):
        validate_sarif({**sarif.log(TOOL, [], root=tmp_path),
                        "$schema": "https://json.schemastore.org/sarif-2.1.0.json"})
