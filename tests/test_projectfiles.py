"""projectfiles: which of a project's files ship, as a docker build context would choose."""

from __future__ import annotations

from pathlib import Path

from uvship.stage.files import select


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_dockerignore_and_what_never_ships(tmp_path):
    _tree(tmp_path, {
        "app.py": "x", "pkg/__init__.py": "", "pkg/data/table.csv": "1,2",
        "pyproject.toml": "", "uv.lock": "",
        # never shipped by default
        ".git/config": "", ".venv/pyvenv.cfg": "", "pkg/__pycache__/m.cpython-312.pyc": "",
        "node_modules/x/index.js": "", "dist/app.whl": "", "build/lib/x": "",
        "app.egg-info/PKG-INFO": "", ".mypy_cache/x": "",
        # secrets: never shipped, and named
        ".env": "TOKEN=1", "pkg/.env.local": "", ".netrc": "", "keys/id_rsa": "",
        "credentials.json": "{}", "tls/ca.pem": "",
        # uvship's own outputs written inside the project
        "out/app/oci-layout": "{}", "out/app/index.json": "{}",
        # a venv under another name
        "env2/pyvenv.cfg": "", "env2/lib/x.py": "",
        # left out by the project's .dockerignore, one of them re-included
        "notes/todo.txt": "", "docs/a.md": "", "docs/keep.md": "",
        ".dockerignore": "notes/\ndocs/\n!docs/keep.md\n",
    })
    (tmp_path / "link").symlink_to("app.py")
    sel = select(tmp_path)
    assert sorted(sel.files) == [".dockerignore", "app.py", "docs/keep.md", "link",
                                 "pkg/__init__.py", "pkg/data/table.csv", "pyproject.toml",
                                 "tls/ca.pem", "uv.lock"]
    assert sel.files["link"] == "->app.py"  # shipped as a link, never followed
    assert sel.left_out == (".env", ".netrc", "credentials.json", "keys/id_rsa",
                            "pkg/.env.local")
    assert sel.has_code


def test_a_dockerignore_can_re_include_a_default(tmp_path):
    _tree(tmp_path, {"main.py": "", ".env.example": "A=", ".dockerignore": "!.env.example\n"})
    sel = select(tmp_path)
    assert ".env.example" in sel.files and sel.left_out == ()


def test_metadata_alone_is_not_code(tmp_path):
    _tree(tmp_path, {"pyproject.toml": "", "uv.lock": "", "README.md": "", ".env": ""})
    sel = select(tmp_path)
    assert not sel.has_code and sel.left_out == (".env",)


def test_content_and_mode_are_the_identity(tmp_path):
    _tree(tmp_path, {"run.sh": "echo hi\n"})
    first = select(tmp_path).files["run.sh"]
    (tmp_path / "run.sh").chmod(0o755)
    assert select(tmp_path).files["run.sh"] != first
