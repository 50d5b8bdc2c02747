"""The parse a no-change stamp keeps (uvship._nochange): replayed only for the command it
was parsed for, while uvship's code is as it was. On hand-made stamps, in-process."""

from __future__ import annotations

from pathlib import Path

from uvship import _nochange
from uvship._paths import identity


def _stamp(code: Path, call) -> dict:
    return {"format": _nochange.FORMAT, "files": [], "call": call,
            "code": [(str(code), identity(code))]}


def test_the_kept_parse_is_replayed_while_the_code_is_unchanged(tmp_path):
    code = tmp_path / "module.py"
    code.write_text("x = 1\n")
    params = {"project": ".", "outputs": ("oci:out",), "quiet": False}
    assert _nochange._parsed(_stamp(code, ["build", params]), "build") == (
        "uvship.cli.run_build", params)


def test_changed_code_or_another_command_means_a_parse(tmp_path):
    code = tmp_path / "module.py"
    code.write_text("x = 1\n")
    stamp = _stamp(code, ["build", {"project": "."}])
    assert _nochange._parsed(stamp, "bundle") is False
    assert _nochange._parsed({**stamp, "call": None}, "build") is False
    assert _nochange._parsed({**stamp, "call": ["build", "not a dict"]}, "build") is False
    code.write_text("x = 2\n")  # another uvship may parse the same line another way
    assert _nochange._parsed(stamp, "build") is False
