"""Byte-compilation: the bytes of a pyc depend on the file and the interpreter, never on
which worker compiled it or what that worker compiled before."""

from __future__ import annotations

from pathlib import Path

from uvship.python import bytecode
from uvship.python._compile_worker import CHUNK

from .conftest import TEST_PYTHON, needs_test_python

pytestmark = needs_test_python

# scikit-learn's shape: one set of option names as a constant at module level and again in a
# function. CPython 3.12 and 3.13 share that constant between the two code objects, or
# not, by whether an earlier compile in the same process interned one of the names.
TARGET = '''\
SOLVERS = [{"arpack", "lobpcg", "amg"}]


def check(solver):
    return [{"arpack", "lobpcg", "amg"}], solver
'''
# scipy's shape: a package that names the same word
NAMES_IT = "from . import arpack\n"


def _pyc(src: Path) -> bytes:
    return (src.parent / "__pycache__" / f"{src.stem}.cpython-312.pyc").read_bytes()


def _compile(root: Path) -> None:
    bytecode.compile_files(TEST_PYTHON, bytecode.python_files([root]), strip=root,
                           prefix="/app")


def test_a_file_compiles_the_same_whatever_came_before(tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "target.py").write_text(TARGET)
    _compile(alone)

    # many files that intern the name, then the same module: compiled by the worker that
    # took its chunk, after whatever that worker had compiled
    tree = tmp_path / "tree"
    tree.mkdir()
    for n in range(CHUNK):
        (tree / f"m{n:04}.py").write_text(NAMES_IT)
    (tree / "target.py").write_text(TARGET)  # sorted after them: the first of a chunk
    _compile(tree)
    assert _pyc(tree / "target.py") == _pyc(alone / "target.py")

    # and again: the same bytes, however the workers took the chunks
    before = {p.name: p.read_bytes() for p in tree.glob("__pycache__/*.pyc")}
    for p in tree.glob("__pycache__/*.pyc"):
        p.unlink()
    _compile(tree)
    assert {p.name: p.read_bytes() for p in tree.glob("__pycache__/*.pyc")} == before
