"""tests/unit: fast, in-process tests (no containers, no uv, no network), marked `unit`.

`pytest -m unit` runs them alone in a second or so; `-m "not unit"` leaves them out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A hook of this conftest sees every item collected, not only this directory's.
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.unit)
