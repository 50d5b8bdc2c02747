"""The one parser of image references, the one table of architecture names, and errors
that name an option: in-process, no containers, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from uvship import targets
from uvship.errors import InputError, Option
from uvship.oci import Platform
from uvship.project.plan import host_platform, machine_of, platform_of


@pytest.mark.parametrize(("spec", "kind", "path", "tag", "name"), [
    ("scratch", "scratch", None, None, ""),
    ("oci:out/app", "oci", Path("out/app"), None, ""),
    ("oci:out/app:1.0", "oci", Path("out/app"), "1.0", ""),
    ("oci::1.0", "oci", None, "1.0", ""),
    ("docker-archive:app.tar", "docker-archive", Path("app.tar"), None, ""),
    ("docker-archive:", "docker-archive", None, None, ""),
    ("docker-daemon:app:1", "docker-daemon", None, None, "app:1"),
    ("containers-storage:localhost/app", "containers-storage", None, None, "localhost/app"),
    ("ghcr.io/org/app:1", "registry", None, None, "ghcr.io/org/app:1"),
    ("app:1", "registry", None, None, "app:1"),
    ("app", "unknown", None, None, ""),
    ("Not A Ref", "unknown", None, None, ""),
])
def test_one_parser_for_every_kind_of_reference(spec, kind, path, tag, name):
    t = targets.parse(spec)
    assert (t.kind, t.path, t.tag, t.name, str(t)) == (kind, path, tag, name, spec)


def test_an_existing_path_is_a_path_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app:1").mkdir()  # a directory whose name could be a reference
    assert targets.parse("app:1").kind == "registry"
    assert targets.parse("app:1", paths=True) == targets.Target("path", "app:1",
                                                                path=Path("app:1"))


@pytest.mark.parametrize(("machine", "platform", "debian"), [
    ("x86_64", "linux/amd64", "amd64"), ("aarch64", "linux/arm64", "arm64"),
    ("arm64", "linux/arm64", "arm64"), ("armv7", "linux/arm/v7", "armhf"),
    ("i686", "linux/386", "i386"), ("ppc64le", "linux/ppc64le", "ppc64el"),
])
def test_one_table_of_architecture_names(machine, platform, debian):
    p = Platform.of_machine(machine)
    assert (str(p), p.debian_arch) == (platform, debian)
    assert Platform.of_machine(p.machine) == p  # the round trip through uname -m


def test_platform_options_accept_every_spelling_of_the_two_targets():
    for given, want in [("linux/x86_64", "linux/amd64"), ("LINUX/AARCH64", "linux/arm64"),
                        ("linux/arm64/v8", "linux/arm64"), ("linux/amd64", "linux/amd64")]:
        assert platform_of(given) == want
    assert machine_of("linux/arm64") == "aarch64" and machine_of("linux/amd64") == "x86_64"
    assert platform_of(None) == host_platform()
    for bad in ("linux/arm/v7", "linux/arm64/v7", "amd64", "windows/amd64"):
        with pytest.raises(InputError, match=f"^platform {bad}: expected one of"):
            platform_of(bad)


def test_an_option_error_names_the_option_for_the_api_and_the_flag_for_the_cli():
    err = InputError.of(Option("venv_path", "/x y"), "expected an absolute path", hint="h")
    assert (err.message, err.hint, err.subject) == (
        "venv_path /x y: expected an absolute path", "h", Option("venv_path", "/x y"))
    assert err.for_command_line() == "--venv-path /x y: expected an absolute path"
    plain = InputError.of("pyproject.toml", "not valid TOML")
    assert plain.subject is None and plain.for_command_line() == "pyproject.toml: not valid TOML"
