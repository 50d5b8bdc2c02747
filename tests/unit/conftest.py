"""The unit layer: pure functions on hand-written inputs, marked `unit`. No podman, no
network, no uv or other subprocess; every test here runs in well under a second
(`pytest -m unit` runs them alone in about a second; `-m "not unit"` leaves them out)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # a hook of this conftest sees every item collected, not only this directory's
    for item in items:
        if item.path.resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _no_subprocess(monkeypatch):
    """A unit test that would start a process (uv, git, podman) fails instead."""
    def refuse(args, *a, **kw):
        raise AssertionError(f"a unit test started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)
