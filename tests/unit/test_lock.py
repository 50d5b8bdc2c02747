"""The one walk of uv.lock's graph (project/lock.py, Workspace.reachable): what a sync of
some packages installs, markers ignored, on lock files written by hand."""

from __future__ import annotations

from uvship.project.lock import Edge, locked_packages, reachable

from .lockfiles import package, project, workspace

APP = 'editable = "."'


def test_an_edge_follows_the_extras_it_names_and_no_others(tmp_path):
    """app needs foo[bar]: foo's extra bar is installed, its extra unused is not."""
    ws = workspace(tmp_path, [
        package("app", source=APP, dependencies='{ name = "foo", extra = ["bar"] }'),
        package("foo", optional={"bar": '{ name = "baz" }', "unused": '{ name = "qux" }'}),
        package("baz"),
        package("qux"),
    ])
    assert ws.reachable(["app"]) == ("app", "baz", "foo")
    # all_extras asks the roots for theirs, not their dependencies for every extra
    assert ws.reachable(["app"], all_extras=True) == ("app", "baz", "foo")


def test_a_local_package_an_edge_extra_activates_is_in_the_local_closure(tmp_path):
    """The extra on an edge reaches a local path dependency: it is built from source here,
    so it must be in the local closure (the local tier's key)."""
    project(tmp_path / "libs" / "plugin", "plugin")
    ws = workspace(tmp_path, [
        package("app", source=APP, dependencies='{ name = "host", extra = ["plugins"] }'),
        package("host", optional={"plugins": '{ name = "plugin" }'}),
        package("plugin", source='directory = "libs/plugin"'),
    ])
    assert ws.local_closure(["app"]) == ("app", "plugin")
    assert ws.reachable(["app"]) == ("app", "host", "plugin")


def test_the_roots_extras_and_groups_are_followed_only_when_asked(tmp_path):
    ws = workspace(tmp_path, [
        package("app", source=APP, dependencies='{ name = "lib" }',
                optional={"web": '{ name = "flask" }', "cli": '{ name = "click" }'},
                groups={"test": '{ name = "pytest" }'}),
        # a dependency's group is never installed, even when a root's of that name is
        package("lib", dependencies='{ name = "six" }', groups={"test": '{ name = "hypothesis" }'}),
        package("six"), package("flask"), package("click"), package("pytest"),
        package("hypothesis"),
    ])
    assert ws.reachable(["app"]) == ("app", "lib", "six")
    assert ws.reachable(["app"], extras=["web"]) == ("app", "flask", "lib", "six")
    assert ws.reachable(["app"], all_extras=True) == ("app", "click", "flask", "lib", "six")
    assert ws.reachable(["app"], groups=["test"]) == ("app", "lib", "pytest", "six")


def test_a_cycle_and_an_extra_that_names_its_own_package(tmp_path):
    """all = ["app[web]"] is locked as an edge from app to itself with extra web; a and b
    need each other."""
    ws = workspace(tmp_path, [
        package("app", source=APP, dependencies='{ name = "a" }',
                optional={"all": '{ name = "app", extra = ["web"] }',
                          "web": '{ name = "flask" }'}),
        package("a", dependencies='{ name = "b" }'),
        package("b", dependencies='{ name = "a" }, { name = "c" }'),
        package("c"), package("flask"),
    ])
    assert ws.reachable(["app"]) == ("a", "app", "b", "c")
    assert ws.reachable(["app"], extras=["all"]) == ("a", "app", "b", "c", "flask")


def test_path_dependencies_are_local_and_a_locked_wheel_file_is_not(tmp_path):
    project(tmp_path / "vendor" / "thing", "thing")
    project(tmp_path / "packages" / "core", "core")
    ws = workspace(tmp_path, [
        package("app", source=APP, dependencies=(
            '{ name = "thing" }, { name = "core" }, { name = "prebuilt" }, { name = "six" }')),
        package("thing", source='path = "vendor/thing"'),
        package("core", source='editable = "packages/core"'),
        package("prebuilt", source='path = "wheels/prebuilt-1.0-py3-none-any.whl"'),
        package("six"),
    ])
    assert ws.reachable(["app"]) == ("app", "core", "prebuilt", "six", "thing")
    assert ws.local_closure(["app"]) == ("app", "core", "thing")
    assert ws.local_closure(["core"]) == ("core",)


def test_a_name_missing_from_the_lock_is_left_out(tmp_path):
    ws = workspace(tmp_path, [
        package("app", source=APP, dependencies='{ name = "ghost" }, { name = "six" }'),
        package("six"),
    ])
    assert ws.reachable(["app"]) == ("app", "six")
    assert ws.reachable(["nobody"]) == ()


def test_every_version_of_a_forked_package_is_followed(tmp_path):
    """A forked resolution locks numpy twice (one per Python range); markers are ignored, so
    what either version needs is in the walk."""
    ws = workspace(tmp_path, [
        package("app", source=APP,
                dependencies='{ name = "numpy", version = "1.26.4", marker = "python_version < '
                             "'3.12'\" }, { name = \"numpy\", version = \"2.1.0\" }"),
        package("numpy", "1.26.4", dependencies='{ name = "old-helper" }'),
        package("numpy", "2.1.0", dependencies='{ name = "new-helper" }'),
        package("old-helper"), package("new-helper"),
    ])
    assert [p.version for p in ws.locked["numpy"]] == ["1.26.4", "2.1.0"]
    assert ws.reachable(["app"]) == ("app", "new-helper", "numpy", "old-helper")
    assert [e["version"] for e in ws.lock_entries("NumPy")] == ["1.26.4", "2.1.0"]


def test_a_virtual_roots_groups_are_followed_when_asked(tmp_path):
    """A virtual workspace root keeps its dependency groups in [manifest], as requirements
    (`extras`, not `extra`)."""
    project(tmp_path / "packages" / "svc", "svc")
    ws = workspace(tmp_path, [
        package("svc", source='editable = "packages/svc"'),
        package("tox", optional={"fast": '{ name = "uvloop" }'}),
        package("uvloop"),
    ], pyproject='[tool.uv.workspace]\nmembers = ["packages/*"]\n', manifest=(
        '[manifest]\nmembers = ["svc"]\n\n[manifest.dependency-groups]\n'
        'ci = [{ name = "tox", extras = ["fast"], specifier = ">=4" }]\n'))
    assert ws.select() == ("svc",)
    assert ws.reachable(["svc"]) == ("svc",)
    assert ws.reachable(["svc"], groups=["ci"]) == ("svc", "tox", "uvloop")


def test_names_are_compared_as_uv_normalises_them():
    lock = {"package": [
        {"name": "App", "version": "1", "source": {"editable": "."},
         "dependencies": [{"name": "Foo_Bar", "extra": ["Extra_One"]}]},
        {"name": "foo-bar", "version": "1", "source": {"registry": "r"},
         "optional-dependencies": {"extra-one": [{"name": "zope.interface"}]}},
        {"name": "zope-interface", "version": "1", "source": {"registry": "r"}},
    ]}
    packages = locked_packages(lock)
    assert packages["app"][0].dependencies == (Edge("foo-bar", ("extra-one",)),)
    assert reachable(packages, ["APP"]) == ("app", "foo-bar", "zope-interface")
