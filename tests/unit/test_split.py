"""The third-party tier's split into layers (image.split), on tiers made on disk here."""

from __future__ import annotations

from pathlib import Path

from uvship.image import split
from uvship.stage.dists import Distribution
from uvship.stage.venv import Tier

SITE = "lib/python3.12/site-packages"


def _tier(root: Path, sizes: dict[str, int], extra: tuple[str, ...] = ()) -> Tier:
    """A tier with one module per package of ``sizes`` (its RECORD names the size), its
    bytecode, and ``extra`` files no RECORD lists."""
    files: list[str] = []
    dists = []
    for name, size in sizes.items():
        mod, info = f"{SITE}/{name}.py", f"{SITE}/{name}-1.0.dist-info"
        pyc = f"{SITE}/__pycache__/{name}.cpython-312.pyc"
        for rel, data in ((mod, b"x" * 10), (pyc, b"pyc"), (f"{info}/METADATA", b"")):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        (root / info / "RECORD").write_text(
            f"{name}.py,sha256=abc,{size}\n{name}-1.0.dist-info/METADATA,,\n"
            f"{name}-1.0.dist-info/RECORD,,\n")
        owned = (mod, f"{info}/METADATA", f"{info}/RECORD")
        dists.append(Distribution(name, "1.0", "dependencies", owned))
        files += [*owned, pyc]
    for rel in extra:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("venv")
        files.append(rel)
    return Tier("dependencies", "k", root, tuple(sorted(files)), tuple(dists), (), ())


def _layers(tier: Tier) -> dict[str, set[str]]:
    return {g.label: {d.name for d in g.distributions} for g in split.groups(None, tier)}


def test_large_packages_alone_small_ones_in_buckets_and_the_venv_apart(tmp_path):
    big = split.LARGE
    tier = _tier(tmp_path, {"huge": big * 4, "large": big, "tiny": 10, "small": big - 1},
                 extra=("pyvenv.cfg", "bin/activate"))
    layers = _layers(tier)
    assert layers["huge"] == {"huge"} and layers["large"] == {"large"}
    assert layers["environment"] == set()
    bucketed = {d for label, ds in layers.items() if label.startswith("packages-") for d in ds}
    assert bucketed == {"tiny", "small"}
    env = next(g for g in split.groups(None, tier) if g.label == "environment")
    assert set(env.files) == {"pyvenv.cfg", "bin/activate"}
    # bytecode goes with the module it was made from
    tiny = next(g for g in split.groups(None, tier) if "tiny" in {d.name for d in
                                                                   g.distributions})
    assert f"{SITE}/__pycache__/tiny.cpython-312.pyc" in tiny.files


def test_a_package_keeps_its_layer_whatever_else_the_lock_holds(tmp_path):
    names = {f"pkg{n}": 100 for n in range(40)}
    one = _layers(_tier(tmp_path / "a", names))
    more = _layers(_tier(tmp_path / "b", {**names, "newcomer": 100, "another": 5}))
    label_of = {d: label for label, ds in one.items() for d in ds}
    for d, label in label_of.items():
        assert d in more[label]
    # and a bucket's identity names only its own members, so the others' layers keep
    # their keys: only the buckets the newcomers joined changed
    changed = {label for label in more if more[label] != one.get(label)}
    joined = {label for label, ds in more.items() if ds & {"newcomer", "another"}}
    assert changed == joined


def test_the_identity_follows_the_record(tmp_path):
    """Same RECORD, same identity (the layer is reused, by any project); a rebuilt wheel
    of the same version has other hashes in its RECORD, and another layer."""
    a = split.groups(None, _tier(tmp_path / "a", {"p": 10}))
    tier_b = _tier(tmp_path / "b", {"p": 10})
    assert [g.identity for g in split.groups(None, tier_b)] == [g.identity for g in a]
    (tmp_path / "b" / SITE / "p-1.0.dist-info" / "RECORD").write_text("p.py,sha256=other,10\n")
    assert [g.identity for g in split.groups(None, tier_b)] != [g.identity for g in a]
