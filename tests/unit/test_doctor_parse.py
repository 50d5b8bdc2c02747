"""The doctor's Dockerfile reader (uvship.doctor.parse), in-process: continuations, comments,
parser directives, heredocs, ARG/ENV substitution, flags and mounts, exec and shell forms,
stages. The rules' cases over whole trees are in tests/test_doctor.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from uvship.doctor.parse import Dockerfile, Instruction, expand, parse_dockerfile, shell_split
from uvship.errors import InputError


def parse(tmp_path: Path, text: str | bytes) -> Dockerfile:
    p = tmp_path / "Dockerfile"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return parse_dockerfile(p)


def only(df: Dockerfile) -> Instruction:
    (inst,) = df.final.instructions
    return inst


def only_run(df: Dockerfile) -> Instruction:
    (run,) = [i for i in df.final.instructions if i.cmd == "RUN"]
    return run


# ---------------------------------------------------------------------- lines
def test_a_continuation_joins_lines_and_keeps_the_first_line_number(tmp_path):
    df = parse(tmp_path, "FROM alpine\n\nRUN apk add \\\n    curl \\  \n    git\nUSER app\n")
    run, user = df.final.instructions
    assert (run.cmd, run.line, run.args) == ("RUN", 3, "apk add     curl     git")
    assert (user.cmd, user.line) == ("USER", 6)


def test_comments_and_blank_lines_inside_a_continuation_are_dropped(tmp_path):
    df = parse(tmp_path, "FROM alpine\nRUN echo a \\\n# not part of it\n\n  && echo b\n"
                         "# a comment line\nCMD x\n")
    run, cmd = df.final.instructions
    assert run.args == "echo a   && echo b"
    assert (cmd.line, cmd.args) == (7, "x")


def test_a_continuation_on_the_last_line_ends_the_instruction(tmp_path):
    assert only(parse(tmp_path, "FROM alpine\nRUN echo a \\\n")).args == "echo a"


def test_keywords_are_case_insensitive_and_crlf_and_bom_are_read(tmp_path):
    df = parse(tmp_path, b"\xef\xbb\xbffrom alpine AS Base\r\nrun echo hi\r\n")
    assert (df.final.name, df.final.base) == ("base", "alpine")
    assert (only(df).cmd, only(df).args) == ("RUN", "echo hi")


# ---------------------------------------------------------------------- directives
def test_parser_directives_are_read_only_at_the_top(tmp_path):
    df = parse(tmp_path, "# syntax=docker/dockerfile:1.7\n# ESCAPE=\\\n# check=skip=all\n"
                         "FROM alpine\n# escape=`\n")
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "escape": "\\",
                             "check": "skip=all"}


def test_a_blank_line_ends_the_directives(tmp_path):
    assert parse(tmp_path, "\n# escape=`\nFROM alpine\n").directives == {}


def test_the_escape_directive_makes_backtick_the_continuation(tmp_path):
    df = parse(tmp_path, "# escape=`\nFROM windows\nRUN dir c:\\\nRUN echo a `\n    b\n")
    first, second = df.final.instructions
    assert (first.line, first.args) == (3, "dir c:\\")  # a backslash no longer continues
    assert (second.line, second.args) == (4, "echo a     b")


def test_an_escape_other_than_backslash_or_backtick_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"escape='\$' \(expected \\ or `\)"):
        parse(tmp_path, "# escape=$\nFROM alpine\n")


# ---------------------------------------------------------------------- heredocs
def test_heredoc_bodies_belong_to_their_instruction(tmp_path):
    df = parse(tmp_path, "FROM alpine\nRUN <<EOF\nset -e\nuv sync --locked \\\nEOF\n"
                         "CMD [\"app\"]\n")
    run, cmd = df.final.instructions
    assert run.heredocs == ("set -e\nuv sync --locked \\",)  # no continuation inside
    assert run.script == "<<EOF\nset -e\nuv sync --locked \\"
    assert (cmd.line, cmd.exec_form) == (6, ("app",))


def test_two_heredocs_quoted_and_tab_stripped(tmp_path):
    df = parse(tmp_path, "FROM alpine\nRUN <<'ONE' <<-\"TWO\"\n$NOT_EXPANDED\nONE\n"
                         "\t\tindented\n\tTWO\n")
    assert only(df).heredocs == ("$NOT_EXPANDED", "indented")


def test_copy_heredoc_and_heredoc_only_for_run_copy_add(tmp_path):
    df = parse(tmp_path, "FROM alpine\nCOPY <<EOT /etc/x.conf\nk=v\nEOT\nLABEL a=<<EOF\n")
    copy, label = df.final.instructions
    assert (copy.heredocs, copy.words) == (("k=v",), ["<<EOT", "/etc/x.conf"])
    assert label.heredocs == ()


def test_an_unclosed_heredoc_is_an_error_naming_its_line(tmp_path):
    with pytest.raises(InputError, match=r"Dockerfile:2: heredoc <<END is never closed"):
        parse(tmp_path, "FROM alpine\nRUN <<END\necho\n")


# ---------------------------------------------------------------------- ARG and ENV
@pytest.mark.parametrize("text,value", [
    ("$A", "a"), ("${A}", "a"), ("x${A}y$A", "xaya"),
    ("${A:-d}", "a"), ("${E:-d}", "d"), ("${E-d}", ""), ("${N-d}", "d"),
    ("${A:+x}", "x"), ("${E:+x}", ""), ("${E+x}", "x"), ("${N+x}", ""),
    ("$N", "$N"), ("${N}", "${N}"),  # unknown: left as written
])
def test_expand_substitutes_as_buildkit_does(text, value):
    assert expand(text, {"A": "a", "E": ""}) == value


def test_a_global_arg_sets_from_and_a_stage_arg_inherits_its_default(tmp_path):
    df = parse(tmp_path, "ARG PY=3.12\nARG TAG=slim\nFROM python:${PY}-$TAG\nARG PY\n"
                         "ARG TAG=bookworm\nRUN echo $PY $TAG\n")
    assert df.final.base == "python:3.12-slim"
    assert only_run(df).words == ["echo", "3.12", "bookworm"]



def test_each_instruction_sees_the_values_set_before_it(tmp_path):
    df = parse(tmp_path, "FROM alpine\nENV A=1\nRUN echo $A\nENV A=2 B=\"two words\" "
                         "C=${A:-x}\nRUN echo\n")
    _, run1, env2, run2 = df.final.instructions
    assert run1.env == {"A": "1"}
    assert env2.env == {"A": "1"}  # not its own values
    assert run2.env == {"A": "2", "B": "two words", "C": "1"}  # C saw A as it was before


def test_env_legacy_form_and_env_over_arg(tmp_path):
    df = parse(tmp_path, "FROM alpine\nARG X=arg\nENV X env value\nENV Y=$X\n")
    assert df.final.envs == {"X": "env value", "Y": "env value"}


def test_env_and_workdir_carry_to_a_child_stage_args_do_not(tmp_path):
    df = parse(tmp_path, "FROM alpine AS base\nARG V=1\nENV E=$V\nWORKDIR /app\n"
                         "FROM base AS child\nRUN echo $V $E\nWORKDIR sub\nWORKDIR $E\n")
    base, child = df.stages
    assert child.parent is base and child.chain() == [base, child]
    run, wd_sub, wd_e = child.instructions
    assert run.words == ["echo", "$V", "1"] and run.workdir == "/app"
    assert (wd_sub.workdir, wd_e.workdir, child.workdir) == ("/app", "/app/sub", "/app/sub/1")
    assert base.envs == {"E": "1"} and base.workdir == "/app"


# ---------------------------------------------------------------------- flags and mounts
def test_run_mount_flags_as_dicts_with_bind_by_default(tmp_path):
    df = parse(tmp_path, "FROM alpine\nARG CACHE=/root/.cache/uv\n"
                         "RUN --mount=type=cache,target=$CACHE,id=uv \\\n"
                         "    --mount=source=uv.lock,Target=/src/uv.lock \\\n"
                         "    --network=none uv sync --locked\n")
    run = only_run(df)
    assert run.mounts() == [{"type": "cache", "target": "/root/.cache/uv", "id": "uv"},
                            {"type": "bind", "source": "uv.lock", "target": "/src/uv.lock"}]
    assert run.flag("network") == ["none"] and run.args == "uv sync --locked"


def test_copy_flags_with_and_without_values(tmp_path):
    df = parse(tmp_path, "FROM alpine AS build\nFROM alpine\n"
                         "COPY --link --from=build --chown=1000:1000 /a \"/b c\" /dst/\n")
    copy = only(df)
    assert copy.flags == (("link", ""), ("from", "build"), ("chown", "1000:1000"))
    assert copy.sources == ["/a", "/b c"] and df.stage(copy.flag("from")[0]) is df.stages[0]


def test_flags_are_only_read_where_buildkit_has_them(tmp_path):
    inst = only(parse(tmp_path, "FROM alpine\nCMD --port=80\n"))
    assert (inst.flags, inst.args) == ((), "--port=80")


# ---------------------------------------------------------------------- exec and shell form
def test_json_is_the_exec_form(tmp_path):
    df = parse(tmp_path, "FROM alpine\nRUN [\"sh\", \"-c\", \"echo $HOME\"]\n"
                         "ENTRYPOINT [\"app\"]\nCMD [\"--port\", \"80\"]\n")
    run, entrypoint, cmd = df.final.instructions
    assert run.exec_form == ("sh", "-c", "echo $HOME")
    assert run.script == "sh -c 'echo $HOME'"
    assert (entrypoint.exec_form, cmd.words) == (("app",), ["--port", "80"])


@pytest.mark.parametrize("args", ['["unclosed"', "[1, 2]", '["a", 1]', '{"a": "b"}'])
def test_what_is_not_a_json_list_of_strings_is_the_shell_form(tmp_path, args):
    inst = only(parse(tmp_path, f"FROM alpine\nCMD {args}\n"))
    assert (inst.exec_form, inst.args) == (None, args)


def test_exec_form_only_for_the_instructions_that_have_it(tmp_path):
    assert only(parse(tmp_path, 'FROM alpine\nUSER ["root"]\n')).exec_form is None


def test_shell_form_words_are_split_and_substituted(tmp_path):
    df = parse(tmp_path, "FROM alpine\nENV D=/app\nRUN cp 'a b' \"$D/c\" x\\ y $D\n"
                         "RUN echo \"unclosed\n")
    _, run, bad = df.final.instructions
    assert run.words == ["cp", "a b", "/app/c", "x y", "/app"]
    assert bad.words == ["echo", '"unclosed']  # unbalanced quotes: split on blanks


@pytest.mark.parametrize("text,words", [
    ("uv sync && echo ok;ls|wc", ["uv", "sync", "&&", "echo", "ok", ";", "ls", "|", "wc"]),
    ("a 'b;c' \"d|e\"", ["a", "b;c", "d|e"]),
    ("a\nb", ["a", "\n", "b"]),
    ("a \\\nb", ["a", "b"]),  # a backslash-newline joins
])
def test_shell_split_with_operators(text, words):
    assert shell_split(text, operators=True) == words


def test_shell_split_refuses_an_unclosed_quote():
    with pytest.raises(ValueError, match="No closing quotation"):
        shell_split("echo 'oops")


# ---------------------------------------------------------------------- stages and errors
def test_shipped_stages_follow_copy_from_and_mount_from(tmp_path):
    df = parse(tmp_path, "FROM alpine AS deps\nFROM alpine AS tools\nFROM alpine AS unused\n"
                         "FROM deps AS final\nCOPY --from=1 /x /x\n"
                         "RUN --mount=type=bind,from=tools,target=/t true\n")
    assert [s.name for s in df.shipped()] == ["deps", "tools", "final"]
    assert df.stage("unused").index == 2 and df.stage("python:3.12") is None


@pytest.mark.parametrize("text,error", [
    ("FROM alpine\nRUNN echo\n", r"Dockerfile:2: unknown instruction 'RUNN'"),
    ("# only a comment\n", r"Dockerfile: no FROM instruction"),
    ("ENV A=1\nFROM alpine\n", r"Dockerfile:1: ENV before any FROM"),
    ("FROM\n", r"Dockerfile:1: FROM without an image"),
])
def test_what_buildkit_refuses_is_an_input_error(tmp_path, text, error):
    with pytest.raises(InputError, match=error):
        parse(tmp_path, text)


def test_a_file_that_is_not_utf8_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not UTF-8 text"):
        parse(tmp_path, b"FROM alpine\nRUN echo \xff\n")
