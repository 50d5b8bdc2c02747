"""Issue 15's tables from two runs of benchmarks/run.py: the example and the data app.

    .venv/bin/python benchmarks/report.py [--example PATH] [--data-app PATH] [--out PATH]

Reads the JSON results of `run.py --project example` and `run.py --project data-app`
(defaults: benchmarks/results/latest.json and benchmarks/results/data-app.json) and writes
the Markdown for the README's Benchmarks section to PATH (default
benchmarks/results/issue15.md) and to stdout: per project, every row of the issue's table
with BuildKit and podman side by side and uvship's ratios; then how uvship's costs grow
with the size of the environment (example -> data app) and with the size of the change.
Nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (
    ROOT,
    fmt_kb,
    fmt_mb,
    fmt_s,
    issue_table,
    med,
    push_of,
    title_of,
    write_atomic,
)

RESULTS = ROOT / "benchmarks" / "results"


def header(res: dict) -> str:
    m, st = res["machine"], res["settings"]
    return (f"`{st.get('project_path', 'examples/hello-web')}`, {m['date']}, "
            f"{st['repeat']} runs per cell (medians), uvship at {m['uvship_commit']}, "
            f"{m['nproc']} cores, other processes used {m.get('other_cpu_cores', '?')} cores "
            f"on average; run took {res['duration_seconds'] / 60:.1f} min")


def env_size(res: dict) -> str:
    s = res["tools"].get("build", {}).get("size", {})
    return f"{fmt_mb(s.get('image_bytes'))} ({fmt_mb(s.get('compressed_layers_bytes'))} gz)"


def growth(ex: dict, da: dict) -> list[str]:
    """uvship's (and BuildKit's) time per scenario on the small and the large environment."""
    out = ["| scenario | example: uvship | data app: uvship | growth | example: BuildKit | "
           "data app: BuildKit | growth |", "|" + "---|" * 7,
           f"| environment (uvship's image) | {env_size(ex)} | {env_size(da)} | — | "
           f"{fmt_mb(ex['tools'].get('buildkit', {}).get('size', {}).get('image_bytes'))} | "
           f"{fmt_mb(da['tools'].get('buildkit', {}).get('size', {}).get('image_bytes'))} | — |"]
    for scen, title in (("nochange", "no-change rebuild"), ("edit", "one source file edited"),
                        ("edit_docker", "edit, then runnable in Docker"),
                        ("cold", "cold build (interpreter and runtime kept)"),
                        ("cold_empty", "cold build, empty uvship cache"),
                        ("cold_shared", "cold build, distributions built before"),
                        ("dep", "one dependency added"), ("bump", "one small dependency bumped")):
        cells = []
        for tool in ("build", "buildkit"):
            a, b = med(ex, tool, scen), med(da, tool, scen)
            cells += [fmt_s(a), fmt_s(b), f"{b / a:.1f}x" if a and b else "—"]
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    return out


def change_size(res: dict) -> list[str]:
    """On one project: the cost of a change against its size (edit < small < large)."""
    out = ["| change | size of the change | uvship build | BuildKit | podman build | "
           "uvship pushed | BuildKit pushed | podman pushed |", "|" + "---|" * 8]
    s0 = res["tools"].get("build", {}).get("scenarios", {}).get("edit", {})
    out.append(f"| one source file edited | one line | {fmt_s(med(res, 'build', 'edit'))} | "
               f"{fmt_s(med(res, 'buildkit', 'edit'))} | {fmt_s(med(res, 'podman', 'edit'))} "
               "| — | — | — |" if s0 else "")
    for scen, ch in res.get("changes", {}).items():
        pushed = []
        for tool in ("build", "buildkit", "podman"):
            p = push_of(res, tool, scen)
            pushed.append(fmt_kb(p["after"].get("bytes")) if p and "after" in p else "—")
        out.append(f"| {title_of(res, scen)} | wheels {fmt_kb(ch['wheel_bytes_cp312'])} "
                   f"(cp312) | {fmt_s(med(res, 'build', scen))} | "
                   f"{fmt_s(med(res, 'buildkit', scen))} | {fmt_s(med(res, 'podman', scen))} | "
                   + " | ".join(pushed) + " |")
    return [ln for ln in out if ln]


def render(ex: dict | None, da: dict | None) -> str:
    out = ["### Issue 15's targets", ""]
    for name, res in (("example (examples/hello-web)", ex), ("data app", da)):
        if not res:
            out += [f"**{name}**: no results.", ""]
            continue
        out += [f"**{name}** — {header(res)}:", "", *issue_table(res), ""]
    if ex and da:
        out += ["### How the costs grow", "",
                "With the size of the environment (the same scenarios, example -> data app):",
                "", *growth(ex, da), ""]
    if da:
        out += ["With the size of the change (data app):", "", *change_size(da), ""]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--example", type=Path, default=RESULTS / "latest.json")
    ap.add_argument("--data-app", type=Path, default=RESULTS / "data-app.json")
    ap.add_argument("--out", type=Path, default=RESULTS / "issue15.md")
    args = ap.parse_args(argv)

    def load(p: Path) -> dict | None:
        if not p.is_file():
            print(f"report: {p} is missing (run benchmarks/run.py first)", file=sys.stderr)
            return None
        res = json.loads(p.read_text())
        return res if "changes" in res else None  # an older run.py wrote it

    md = render(load(args.example), load(args.data_app))
    write_atomic(args.out, md)
    print(md, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
