"""Wheel tags against the target (stage/checks.py, stage/platforms.py), on lock entries
written by hand: no wheel is downloaded and no source is built."""

from __future__ import annotations

from dataclasses import replace

import pytest

from uvship.errors import InputError
from uvship.project.plan import Options, make_plan
from uvship.stage import checks
from uvship.stage.checks import check_wheels_for
from uvship.stage.platforms import glibc_fits, glibc_minor

from .lockfiles import package, workspace


@pytest.mark.parametrize("tag, glibc, fits", [
    ("manylinux_2_28_x86_64", "2.28", True),
    ("manylinux_2_28_x86_64", "2.27", False),
    ("manylinux_2_17_aarch64", "2.36", True),
    ("manylinux2014_x86_64", "2.17", True),
    ("manylinux2014_x86_64", "2.16", False),
    ("manylinux2010_x86_64", "2.12", True),
    ("manylinux1_x86_64", "2.11", True),
    ("manylinux_2_34_x86_64", None, True),  # no base glibc known: any
])
def test_glibc_fits(tag, glibc, fits):
    assert glibc_fits(tag, glibc) is fits


def test_glibc_minor():
    assert (glibc_minor("2.36"), glibc_minor("2.5"), glibc_minor("weird")) == (36, 5, 17)


def _ws(tmp_path, *more: str, needs: tuple[str, ...] = ()):
    """app needs pure, both, host and ``needs``; host's extra x (which no edge asks for)
    holds armless, a package with no wheel for arm64. ``more``: further packages."""
    deps = ", ".join(f'{{ name = "{n}" }}' for n in ("pure", "both", "host", *needs))
    return workspace(tmp_path, [
        package("app", source='editable = "."', dependencies=deps),
        package("pure", wheels=("pure-1.0-py3-none-any.whl",)),
        package("both", wheels=(
            "both-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "both-1.0-cp312-cp312-manylinux_2_28_aarch64.whl",
            "both-1.0-cp312-cp312-musllinux_1_2_aarch64.whl")),
        package("host", wheels=("host-1.0-py2.py3-none-any.whl",),
                optional={"x": '{ name = "armless" }'}),
        package("armless", wheels=("armless-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",)),
        *more,
    ])


def _plan(ws, **options):
    return make_plan(ws, Options(**options))


def test_wheels_for_every_installed_package_pass(tmp_path):
    ws = _ws(tmp_path)
    check_wheels_for(ws, _plan(ws, platform="linux/arm64"))
    check_wheels_for(ws, _plan(ws, platform="linux/arm64"), "musl")
    check_wheels_for(ws, _plan(ws, platform="linux/amd64"))


def test_a_package_with_no_wheel_for_the_target_is_named(tmp_path):
    ws = _ws(tmp_path, package("amd", "2.0", wheels=(
        "amd-2.0-cp312-cp312-manylinux_2_17_x86_64.whl",)), needs=("amd",))
    check_wheels_for(ws, _plan(ws, platform="linux/amd64"))
    with pytest.raises(InputError) as exc:
        check_wheels_for(ws, _plan(ws, platform="linux/arm64"))
    assert str(exc.value).startswith(
        f"{ws.lock_path}: no wheel for linux/arm64 of amd 2.0 (expected a manylinux wheel "
        "for aarch64 or a pure-Python one)")
    assert "armless" not in str(exc.value)  # nothing installs it


def test_wheels_for_a_newer_glibc_than_the_bases_are_refused(tmp_path):
    ws = _ws(tmp_path)
    plan = replace(_plan(ws, platform="linux/arm64"), glibc="2.27")
    with pytest.raises(InputError) as exc:
        check_wheels_for(ws, plan)
    assert "no wheel for linux/arm64 with glibc 2.27 (the base's) of both 1.0 (expected a " \
        "manylinux (glibc 2.27 or older) wheel" in str(exc.value)
    check_wheels_for(ws, replace(plan, glibc="2.28"))


def test_musl_needs_musllinux_wheels(tmp_path):
    ws = _ws(tmp_path)
    with pytest.raises(InputError) as exc:
        check_wheels_for(ws, _plan(ws, platform="linux/amd64"), "musl")
    assert "no wheel for linux/amd64 (musl) of both 1.0 (expected a musllinux wheel for " \
        "x86_64" in str(exc.value)


def test_an_sdist_only_package_passes_when_it_builds_a_pure_wheel(tmp_path, monkeypatch):
    ws = _ws(tmp_path, package("src-only", sdist="src_only-1.0.tar.gz"), needs=("src-only",))
    plan = _plan(ws, platform="linux/arm64")
    built: list[str] = []
    result = ["py3-none-any"]

    def tags(ws_, name, entry):
        built.append(f"{name} {entry['sdist']['url'].rsplit('/', 1)[-1]}")
        return result

    monkeypatch.setattr(checks, "sdist_wheel_tags", tags)
    check_wheels_for(ws, plan)
    assert built == ["src-only src_only-1.0.tar.gz"]
    result = ["cp312-cp312-linux_x86_64"]
    with pytest.raises(InputError) as exc:
        check_wheels_for(ws, plan)
    assert "src-only 1.0 (only an sdist is locked; its source builds " \
        "cp312-cp312-linux_x86_64 here)" in str(exc.value)
    # for this host's own platform uv builds it: nothing is built to look
    built.clear()
    check_wheels_for(ws, plan, host=True)
    assert built == []
