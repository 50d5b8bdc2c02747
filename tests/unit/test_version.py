"""The version is written once (src/uvship/_version.py) and the package's metadata says it."""

from __future__ import annotations

import importlib.metadata

from uvship._version import version


def test_the_installed_metadata_has_the_version_of_the_source():
    assert importlib.metadata.version("uvship") == version()
