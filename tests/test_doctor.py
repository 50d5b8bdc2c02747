"""`uvship doctor`: the parser, each rule on its corpus case (tests/doctor/), outputs, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from uvship.doctor.parse import IgnoreFile, parse_dockerfile, read_compose
from uvship.doctor.report import diagnose
from uvship.doctor.rules import RULES, commands
from uvship.errors import InputError
from uvship.sarif import SCHEMA

from .conftest import uvship, validate_sarif

CORPUS = Path(__file__).parent / "doctor"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def expected(case: Path) -> set[tuple[str, str, int]]:
    """(rule, file, line) from the case's markers, the file relative to the case (a case may
    hold a whole repository's shape: compose files, Dockerfiles in subdirectories, a root
    .dockerignore): `# expect: UVnnn` on a Dockerfile comment line marks the next
    instruction; at the end of a YAML line it marks that line."""
    out = set()
    for f in sorted(p for p in case.rglob("*") if p.is_file()):
        lines = f.read_text().splitlines()
        for n, line in enumerate(lines, 1):
            m = re.search(r"#\s*expect:\s*((?:UV\d{3}\s*)+)$", line)
            if not m:
                continue
            target = n
            if line.lstrip().startswith("#"):  # a comment line: the next instruction
                target = next(k for k in range(n + 1, len(lines) + 1)
                              if lines[k - 1].strip() and not lines[k - 1].lstrip().startswith("#"))
            out |= {(rule, f.relative_to(case).as_posix(), target) for rule in m[1].split()}
    return out


def found(path: Path) -> set[tuple[str, str, int]]:
    """(rule, file, line) of each finding, the file relative to ``path`` (a directory)."""
    base = (path if path.is_dir() else path.parent).resolve()
    return {(f.rule.id, f.path.resolve().relative_to(base).as_posix(), f.line)
            for f in diagnose(path).findings}


# ---------------------------------------------------------------------------- the corpus
def test_every_rule_has_a_positive_and_a_negative_case():
    assert len(RULES) >= 15
    by_rule = {c.split("-")[0] for c in CASES}
    assert by_rule == set(RULES)
    for case in CASES:
        assert (CORPUS / case / "bad").is_dir() and (CORPUS / case / "good").is_dir()
        assert case.split("-")[0] in {r for r, _, _ in expected(CORPUS / case / "bad")}


@pytest.mark.parametrize("case", CASES)
def test_rule_finds_its_mistake(case):
    bad = CORPUS / case / "bad"
    assert found(bad) == expected(bad)


@pytest.mark.parametrize("case", CASES)
def test_rule_is_quiet_on_the_fix(case):
    """No finding at all, but for a lower-level one the case marks (a UV020 note where the
    fix shown is a bind mount): the fix itself is never reported."""
    good = CORPUS / case / "good"
    marked = expected(good)
    assert found(good) == marked
    levels = ["error", "warning", "note"]
    rule = RULES[case.split("-")[0]]
    assert all(levels.index(RULES[r].level) > levels.index(rule.level) for r, _, _ in marked)


def test_whole_corpus_through_the_cli_fails_with_every_rule():
    proc = uvship("doctor", str(CORPUS), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert {f["rule"] for f in data["findings"]} == set(RULES)
    for f in data["findings"]:
        assert f["message"] and f["fix"] and f["line"] >= 1 and Path(f["file"]).is_file()
    assert proc.stderr == ""


def test_text_output_names_file_line_why_and_fix():
    bad = CORPUS / "UV004-sync-not-locked" / "bad"
    proc = uvship("doctor", str(bad))
    assert proc.returncode == 1
    first, fix = proc.stdout.splitlines()[:2]
    assert first.startswith(f"{bad / 'Dockerfile'}:11: UV004 error: `uv sync` runs without")
    assert "re-resolves" in first
    assert fix == "    fix: " + RULES["UV004"].fix
    assert proc.stdout.splitlines()[-1].startswith("1 finding(s) in 2 file(s): 1 error(s)")


def test_warnings_pass_unless_fail_on_warning():
    bad = CORPUS / "UV005-deps-and-code-in-one-layer" / "bad"
    assert uvship("doctor", str(bad)).returncode == 0
    proc = uvship("doctor", str(bad), "--fail-on", "warning")
    assert proc.returncode == 1 and "UV005 warning" in proc.stdout
    good = CORPUS / "UV005-deps-and-code-in-one-layer" / "good"
    proc = uvship("doctor", str(good), "--fail-on", "note")
    assert (proc.returncode, proc.stdout.strip()) == (0, "no problems found in 2 file(s)")


def test_sarif_has_the_required_structure():
    proc = uvship("doctor", str(CORPUS / "UV002-venv-hidden-by-bind-mount"), "--format", "sarif")
    assert proc.returncode == 1, proc.stderr
    sarif = json.loads(proc.stdout)
    assert sarif["version"] == "2.1.0" and sarif["$schema"] == SCHEMA  # OASIS's, as the audit's
    (run,) = sarif["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] and driver["version"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == list(RULES)
    for r in driver["rules"]:
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"]
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
    base = run["originalUriBaseIds"]["SRCROOT"]["uri"]
    assert base.startswith("file:///") and base.endswith("/")
    (result,) = run["results"]
    assert result["ruleId"] == "UV002" and rule_ids[result["ruleIndex"]] == "UV002"
    assert result["level"] == "error" and result["message"]["text"]
    (loc,) = result["locations"]
    art = loc["physicalLocation"]["artifactLocation"]
    assert art == {"uri": "bad/compose.yaml", "uriBaseId": "SRCROOT"}
    assert loc["physicalLocation"]["region"]["startLine"] == 5
    assert {a["location"]["uri"] for a in run["artifacts"]} >= {"bad/compose.yaml",
                                                                 "good/compose.yaml"}


def test_sarif_of_every_rule_is_valid_sarif():
    """The whole corpus, every rule found, printed as SARIF: valid against SARIF 2.1.0
    (the audit's output is validated in test_audit.py and tests/unit/test_sarif.py)."""
    proc = uvship("doctor", str(CORPUS), "--format", "sarif")
    assert proc.returncode == 1, proc.stderr
    sarif = json.loads(proc.stdout)
    validate_sarif(sarif)
    (run,) = sarif["runs"]
    assert {r["ruleId"] for r in run["results"]} == set(RULES)
    assert len(run["results"]) == len(diagnose(CORPUS).findings)
    assert run["invocations"] == [{"executionSuccessful": True}]


# ---------------------------------------------------------------------------- real shapes
def first(path: Path, rule: str):
    """The first finding of ``rule`` at ``path``."""
    return min((f for f in diagnose(path).findings if f.rule.id == rule), key=lambda f: f.line)


def test_a_uv_image_tagged_with_python_and_distro_floats_only_uv():
    """`uv:python3.12-bookworm-slim` has a tag: it fixes Python and Debian, not uv. The fix
    on a FROM line is a FROM line, with the tag and the stage name kept."""
    f = first(CORPUS / "UV006-uv-image-with-python-tag" / "bad", "UV006")
    assert f.message.startswith("the uv image 'ghcr.io/astral-sh/uv:python3.12-bookworm-slim': "
                                "its tag names a Python and a distro, not a uv version, so uv's "
                                "version floats: ")
    assert "no version tag" not in f.message
    assert f.fix == ("put a uv version in the tag, e.g. "
                     "`FROM ghcr.io/astral-sh/uv:0.13.9-python3.12-bookworm-slim AS app`")
    f = first(CORPUS / "UV006-uv-not-pinned" / "bad" / "Dockerfile", "UV006")
    assert "its tag `latest` names no uv version" in f.message
    assert f.fix == ("put a uv version in the tag, e.g. "
                     "`COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/`")


@pytest.mark.parametrize("ref,said,pinned", [
    ("ghcr.io/astral-sh/uv", "no tag", "ghcr.io/astral-sh/uv:0.13.9"),
    ("ghcr.io/astral-sh/uv:bookworm-slim", "a distro", "ghcr.io/astral-sh/uv:0.13.9-bookworm-slim"),
    ("ghcr.io/astral-sh/uv:python3.13-alpine", "a Python and a distro",
     "ghcr.io/astral-sh/uv:0.13.9-python3.13-alpine"),
    ("ghcr.io/astral-sh/uv:0.5-python3.12-bookworm", "uv 0.5",
     "ghcr.io/astral-sh/uv:0.13.9-python3.12-bookworm"),
    ("ghcr.io/astral-sh/uv:0.5.31-python3.12-bookworm", None, None),
    ("ghcr.io/astral-sh/uv@sha256:" + "a" * 64, None, None),
])
def test_what_a_uv_image_tag_fixes(ref, said, pinned):
    from uvship.doctor.rules import _floats

    got = _floats(ref)
    assert (got is None) == (said is None)
    if got:
        assert said in got[0] and got[1] == pinned


def test_relative_mount_target_fix_uses_the_workdir():
    f = first(CORPUS / "UV019-relative-target-under-workdir" / "bad", "UV019")
    assert "(WORKDIR /app)" in f.message
    assert f.fix == ("write the target as an absolute path: `target=/app/uv.lock`, "
                     "`target=/app/pyproject.toml`")


def test_mount_over_the_venv_names_it_and_the_sync_that_made_it():
    bad = CORPUS / "UV002-mounts-beside-the-venv" / "bad"
    f = first(bad, "UV002")
    assert (f"over the venv at /srv/.venv (made by `uv sync` at {bad / 'api' / 'Dockerfile'}:8)"
            in f.message)
    assert f.fix.startswith("add `- /srv/.venv` to the service's volumes")


def test_a_dockerfile_is_checked_with_the_context_it_is_built_from(tmp_path):
    """A Dockerfile in a workspace member is built from the workspace root, whose
    .dockerignore applies (a .dockerignore beside the Dockerfile does not); doctor pointed
    at the member's directory still finds the root."""
    case = CORPUS / "UV001-ignore-file-of-the-context"
    f = first(case / "bad" / "apps" / "web", "UV001")
    assert f"({case / 'bad' / '.dockerignore'})" in f.message
    report = diagnose(case / "good" / "apps" / "web")
    assert report.findings == ()
    assert [p.resolve() for p in report.files] == [
        (case / "good" / "apps" / "web" / "Dockerfile").resolve(),
        (case / "good" / ".dockerignore").resolve()]


@pytest.mark.parametrize("where,copies,context", [
    ("docker", "COPY pyproject.toml uv.lock /src/", "."),  # the files it names are at the root
    ("web", "COPY . /src", "."),  # names nothing: the directory with uv.lock
    ("proxy", "COPY nginx.conf /etc/nginx/", "proxy"),  # its own files: its own directory
])
def test_build_context_without_compose(tmp_path, where, copies, context):
    from uvship.doctor.parse import build_context

    for name in ("pyproject.toml", "uv.lock", "proxy/nginx.conf", f"{where}/Dockerfile"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    df = write(tmp_path / where, f"FROM python:3.12-slim\n{copies}\nRUN uv sync --locked\n")
    got = build_context(parse_dockerfile(df), tmp_path)
    assert got.resolve() == (tmp_path / context).resolve()


def test_dev_group_is_read_from_the_synced_project():
    bad = CORPUS / "UV014-member-groups" / "bad"
    f = first(bad, "UV014")
    assert f"(of {bad / 'services' / 'svc' / 'pyproject.toml'})" in f.message


def test_files_are_named_once_and_alike():
    """A .dockerignore reached from a compose context and from the Dockerfile beside it is
    one file, named the way the path given to doctor names it."""
    good = CORPUS / "UV002-mounts-beside-the-venv" / "good"
    proc = uvship("doctor", str(good), "--format", "json")
    files = json.loads(proc.stdout)["files"]
    assert len({Path(f).resolve() for f in files}) == len(files) == 5
    assert all(f.startswith(str(good) + "/") for f in files)
    assert sum(Path(f).name == ".dockerignore" for f in files) == 1


# ---------------------------------------------------------------------------- generated files
@pytest.mark.parametrize("variant", ["venv", "system", "managed-python"])
@pytest.mark.parametrize("name,args", [("hello-web", ()), ("ws", ("--package", "ws-app"))])
def test_generated_files_have_no_findings(project, name, args, variant):
    src = project(name)
    gen = uvship("dockerfile", str(src), *args, "--variant", variant, "--python", "3.11")
    assert gen.returncode == 0, gen.stderr
    proc = uvship("doctor", str(src), "--fail-on", "note")
    assert (proc.returncode, proc.stdout.strip()) == (0, "no problems found in 3 file(s)")


def test_editable_install_copied_with_its_source_is_fine(tmp_path):
    """uv's standalone example: the interpreter and the whole /app (venv and source) are
    copied in two COPYs, so its editable install still finds the source."""
    write(tmp_path, ".venv\n.git\n.env\n", ".dockerignore")
    df = write(tmp_path, """\
FROM ghcr.io/astral-sh/uv:0.13.9-bookworm-slim AS builder
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_DEV=1 UV_PYTHON_INSTALL_DIR=/python
RUN uv python install 3.12
WORKDIR /app
COPY uv.lock pyproject.toml /app/
RUN --mount=type=cache,target=/root/.cache/uv uv sync --locked --no-install-project
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv uv sync --locked
FROM debian:bookworm-slim
COPY --from=builder /python /python
COPY --from=builder /app /app
USER 999
""")
    assert diagnose(df).findings == ()
    df.write_text(df.read_text().replace("COPY --from=builder /app /app",
                                         "COPY --from=builder /app/.venv /app/.venv"))
    assert found(df) == {("UV007", "Dockerfile", 11)}


# ---------------------------------------------------------------------------- the parser
def write(tmp_path: Path, text: str, name: str = "Dockerfile") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_parser_continuations_comments_heredocs_and_forms(tmp_path):
    df = parse_dockerfile(write(tmp_path, """\
# syntax=docker/dockerfile:1
ARG BASE=python:3.12-slim
FROM ${BASE} AS build
ENV A=1 B="two words" \\
# a comment inside a continuation is dropped

    C=${BASE:-none}x
RUN echo one \\
    && echo two
RUN <<EOF
uv sync --locked
EOF
COPY <<-EOT /etc/conf
	key=value
	EOT
CMD ["app", "--port", "80"]
FROM build
WORKDIR /app
WORKDIR sub
"""))
    assert df.directives == {"syntax": "docker/dockerfile:1"}
    build, child = df.stages
    assert (build.name, build.base, build.line) == ("build", "python:3.12-slim", 3)
    env, run1, run2, copy, cmd = build.instructions
    assert (env.line, run1.line, run2.line, copy.line, cmd.line) == (4, 8, 10, 13, 16)
    assert child.envs == {"A": "1", "B": "two words", "C": "nonex"}
    assert run1.script == "echo one     && echo two"
    assert run2.heredocs == ("uv sync --locked",)
    assert copy.heredocs == ("key=value",)
    assert cmd.exec_form == ("app", "--port", "80")
    assert child.parent is build and child.workdir == "/app/sub"
    assert [c.words for c in commands(run1)] == [("echo", "one"), ("echo", "two")]
    assert commands(run2)[0].uv == ("sync", "--locked")


def test_parser_escape_directive_and_flags(tmp_path):
    df = parse_dockerfile(write(tmp_path, "# escape=`\nFROM alpine\n"
                                "RUN --mount=type=cache,target=/root/.cache/uv `\n"
                                "    --mount=type=bind,source=uv.lock,target=/src/uv.lock `\n"
                                "    uv sync --frozen\n"))
    (run,) = df.final.instructions
    assert run.line == 3 and run.args == "uv sync --frozen"
    assert [m["type"] for m in run.mounts()] == ["cache", "bind"]
    assert run.mounts()[1]["source"] == "uv.lock"


def test_shell_commands_split_and_env():
    from uvship.doctor.parse import Instruction

    run = Instruction("RUN", 1, "export UV_LOCKED=1; X=y uv --no-progress sync > /dev/null "
                                "# uv pip install junk\n. /v/bin/activate")
    sync, activate = commands(run)
    assert sync.uv == ("sync",) and sync.true("UV_LOCKED") and sync.env["X"] == "y"
    assert not sync.last and activate.last and activate.words == (".", "/v/bin/activate")


def test_dockerignore_matching(tmp_path):
    ig = IgnoreFile.read(write(tmp_path, "# comment\n/.venv/\n**/*.pyc\n.git\n!.git/keep\n",
                               ".dockerignore"))
    assert ig.excludes(".venv") and ig.excludes(".venv/bin/python")
    assert ig.excludes("a/b/c.pyc") and ig.excludes("c.pyc")
    assert ig.excludes(".git/HEAD") and not ig.excludes(".git/keep")
    assert not ig.excludes("src/app.py") and not ig.excludes("pkg/.venv")


def test_compose_reading(tmp_path):
    c = read_compose(write(tmp_path, """\
services:
  web:
    build: {context: ., target: dev}
    volumes: [".:/src", "/app/.venv", {type: bind, source: ./data, target: /data}]
    develop:
      watch:
        - {action: sync, path: ., target: /src, ignore: [.venv/]}
""", "compose.yaml"))
    (web,) = c.services
    assert web.target == "dev" and web.context == tmp_path.resolve()
    assert [(v.type, v.target, v.line) for v in web.volumes] == [
        ("bind", "/src", 4), ("volume", "/app/.venv", 4), ("bind", "/data", 4)]
    assert web.watch[0].ignore == (".venv/",) and web.watch[0].line == 7


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("text,error", [
    ("FROM alpine\nRUNN echo\n", ":2: unknown instruction 'RUNN'"),
    ("# only a comment\n", ": no FROM instruction"),
    ("RUN echo\n", ":1: RUN before any FROM"),
    ("FROM alpine\nRUN <<EOF\necho\n", ":2: heredoc <<EOF is never closed"),
    ("FROM\n", ":1: FROM without an image"),
])
def test_unparsable_dockerfile_is_a_clear_error(tmp_path, text, error):
    p = write(tmp_path, text)
    proc = uvship("doctor", str(p))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {p}{error}"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_binary_dockerfile_is_a_clear_error(tmp_path):
    p = tmp_path / "Dockerfile"
    p.write_bytes(b"\xff\xfe\x00FROM")
    with pytest.raises(InputError, match="not UTF-8 text"):
        parse_dockerfile(p)


def test_missing_path_is_an_error(tmp_path):
    proc = uvship("doctor", str(tmp_path / "nope"))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith(f"error: {tmp_path / 'nope'}: no such file or directory")


def test_nothing_to_check_says_so_and_passes(tmp_path):
    """A project with no Dockerfile (pipx, posting) has no uv-in-Docker mistake: exit 0,
    but stderr says where doctor looked, so a CI job pointed at the wrong place is seen."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '0'\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "Dockerfile").write_text("FROM scratch\n")  # never searched
    proc = uvship("doctor", str(tmp_path), "--fail-on", "note")
    assert (proc.returncode, proc.stdout) == (0, "")
    warning, hint = proc.stderr.splitlines()
    assert warning == (f"warning: nothing to check: no Dockerfile or compose file in "
                       f"{tmp_path} or below it")
    assert hint.startswith("hint: looked for Dockerfile*, Containerfile*, *.Dockerfile, ")
    assert ".venv" in hint and "node_modules" in hint
    proc = uvship("doctor", str(tmp_path), "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == {
        "files": [], "findings": [], "summary": {"error": 0, "warning": 0, "note": 0}}
    proc = uvship("doctor", str(tmp_path), "--format", "sarif")
    assert proc.returncode == 0 and json.loads(proc.stdout)["runs"][0]["results"] == []


def test_unparsable_compose_is_a_clear_error(tmp_path):
    p = write(tmp_path, "services:\n  web:\n    build: [unclosed\n", "compose.yaml")
    proc = uvship("doctor", str(p))
    assert proc.returncode == 1 and proc.stdout == ""
    assert re.match(rf"error: {re.escape(str(p))}:\d+: not valid YAML", proc.stderr)
    p.write_text("- just\n- a list\n")
    proc = uvship("doctor", str(p))
    assert "no `services:` mapping" in proc.stderr


@pytest.mark.parametrize("text", [
    "a b  c", "echo 'x y' \"a\\\"b $X\" c\\ d", "uv sync --frozen && echo \"ok\" ; ls|wc",
    "cmd >> out 2>&1", "printf '%s' \"\" ''", "a\\\\b 'c\\d' \"e\\f\"", "x=1 y='2 3' cmd",
])
def test_shell_split_agrees_with_shlex(text):
    import shlex

    from uvship.doctor.parse import shell_split

    assert shell_split(text) == shlex.split(text)
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>\n")
    lex.whitespace, lex.whitespace_split, lex.commenters = " \t\r", True, ""
    assert shell_split(text, operators=True) == list(lex)


def test_a_ten_megabyte_line_is_read_in_one_pass(tmp_path):
    """shlex built each token a character at a time: a 640 kB RUN line took 16 s and a
    10 MB one never ended. The whole line is read once now (this test would not finish)."""
    big = "x" * 10_000_000
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.12-slim\n"
        f"RUN uv sync --locked && echo '{big}' && echo \"{big}\" {big}\n")
    (tmp_path / ".dockerignore").write_text(".venv\n.git\n.env\n")
    report = diagnose(tmp_path / "Dockerfile")
    assert "UV011" in {f.rule.id for f in report.findings}  # runs as root: still seen
