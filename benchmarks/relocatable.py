"""Benchmark: one locked environment shipped to Spark executors three ways — a relocatable
uvship bundle, venv-pack and PEX.

    .venv/bin/python benchmarks/relocatable.py [--repeat N] [--out PATH] [--keep] [--uvship CMD]

The same project (a fresh copy of examples/hello-web with its uv.lock), the same machine,
the same run; each repeat runs the tools in a rotated order. For each tool: the time to
pack (from the locked project to the archive), the archive's size, and the time from
`spark-submit` to the first task of a PySpark UDF running on an executor, in
`local-cluster[2,1,1024]` mode (executors are separate processes that fetch and unpack the
archive). Medians go to PATH (JSON) and a Markdown table beside it (.md); the table is
also printed on stdout, progress on stderr. A benchmark, not a test: nothing fails
because something is slow. benchmarks/README.md ("Relocatable bundles on Spark") says
what is measured and how.

Prerequisites: scripts/bootstrap (the offline uv-managed CPython, the example's uv.lock),
Java (scripts/setup-host installs openjdk-17-jre-headless), and access to PyPI for the
tools' own environment (PySpark, pex, venv-pack; installed once per run, untimed).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (
    EXAMPLE,
    ROOT,
    Failed,
    busy_note,
    cli,
    cpu_busy_seconds,
    default_uvship,
    finish_machine,
    log,
    machine_info,
    own_cpu_seconds,
    parse_args,
    rotated,
    run,
    sample,
    summarize,
    timed,
    write_results,
)

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "relocatable.json"
# the tools' environment: the Spark driver (PySpark from PyPI) and the two packers
TOOL_REQUIREMENTS = ("pyspark==4.3.0", "pex==2.105.2", "venv-pack==0.2.0")
TOOLS = ("uvship", "venv-pack", "pex")
LABELS = {"uvship": "uvship bundle --relocatable", "venv-pack": "uv sync + venv-pack",
          "pex": "uv sync + pex --venv-repository"}
WORKERS_NEED = {"uvship": "nothing (the interpreter is inside; /bin/sh for scripts)",
                "venv-pack": "the same CPython at the same path",
                "pex": "the same CPython at the same path"}
MASTER = "local-cluster[2,1,1024]"
# The job: a UDF on the executors imports a compiled dependency and reports when it ran.
JOB = r'''
import sys, time
from pyspark.sql import SparkSession
from pyspark.sql.functions import udf

spark = SparkSession.builder.appName("uvship-bench-relocatable").getOrCreate()


@udf("string")
def started(i):
    t = time.time()
    import pydantic_core
    return f"{t}|{sys.executable}|{pydantic_core.__version__}"


for row in spark.range(4).repartition(4).select(started("id").alias("s")).collect():
    print("task", row.s)
spark.stop()
'''


def python312(uv: str) -> str:
    """The CPython 3.12 that venv-pack and PEX need on every worker (uv finds it: the
    offline uv-managed one scripts/bootstrap installs, or a local one)."""
    return run([uv, "python", "find", "--no-project", "3.12"]).stdout.strip().splitlines()[-1]


def tools_env(work: Path, uv: str, python: str) -> Path:
    """The driver's environment (PySpark, no project dependencies) and the packers."""
    venv = work / "tools"
    run([uv, "venv", "-q", "--python", python, venv])
    run([uv, "pip", "install", "-q", "--python", venv / "bin" / "python", *TOOL_REQUIREMENTS])
    return venv


def locked_copy(work: Path, uv: str, python: str) -> Path:
    d = work / "project"
    shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    if not (d / "uv.lock").is_file():
        log(f"{EXAMPLE} has no uv.lock: locking a copy")
        run([uv, "lock", "-q", "--python", python], cwd=d)
    return d


def synced_venv(dest: Path, project: Path, uv: str, python: str) -> list[list[str]]:
    """The commands that install the locked environment into a fresh venv at ``dest``
    (what venv-pack and PEX pack)."""
    return [[uv, "venv", "-q", "--python", python, str(dest)],
            [uv, "sync", "-q", "--frozen", "--no-dev", "--no-editable", "--link-mode", "copy",
             "--python", python, "--project", str(project)]]


def pack(tool: str, i: int, work: Path, project: Path, uv: str, python: str, uvship: str,
         tools: Path) -> tuple[dict, Path | None]:
    """Pack the environment with ``tool``; (sample, archive)."""
    out = work / "out" / f"{tool}-{i}"
    out.mkdir(parents=True)
    env = dict(os.environ)
    if tool == "uvship":
        archive = out / "app.tar.gz"
        # a cold uvship cache (the interpreter prepared, the tiers staged); uv's cache warm
        env["UVSHIP_CACHE_DIR"] = str(out / "cache")
        cmds = [[uvship, "bundle", str(project), "--relocatable", "-q", "-o", str(archive)]]
        # and again with that cache: what a rebuild with no change costs (the archive
        # written again)
        again = [uvship, "bundle", str(project), "--relocatable", "-q", "-o",
                 str(out / "again.tar.gz")]
    else:
        venv = out / "venv"
        env["UV_PROJECT_ENVIRONMENT"] = str(venv)
        cmds = synced_venv(venv, project, uv, python)
        if tool == "venv-pack":
            archive = out / "env.tar.gz"
            cmds.append([str(tools / "bin" / "venv-pack"), "-q", "-p", str(venv), "-o",
                         str(archive)])
        else:
            archive = out / "app.pex"
            # PySpark comes from the executor's PYTHONPATH (Spark's pyspark.zip)
            cmds.append([str(tools / "bin" / "pex"), "--venv-repository", str(venv),
                         "--inherit-path=fallback", "--python", python,
                         "--python-shebang", python, "-o", str(archive)])
    t0 = time.perf_counter()
    for cmd in cmds:
        proc = run(cmd, env=env, check=False)
        if proc.returncode != 0:
            return sample(time.perf_counter() - t0, proc), None
    s = sample(time.perf_counter() - t0, proc, size=archive.stat().st_size)
    if tool == "uvship":
        secs, proc = timed(again, env=env)
        s["warm_cache_seconds"] = round(secs, 4) if proc.returncode == 0 else None
        shutil.rmtree(out / "cache")
    else:
        shutil.rmtree(out / "venv")
    return s, archive


def submit(tool: str, archive: Path, work: Path, tools: Path) -> dict:
    """spark-submit the job with the archive; the seconds until the first UDF task ran."""
    spark_home = next((tools / "lib").glob("python3*/site-packages/pyspark"))
    job = work / "job.py"
    job.write_text(JOB)
    args = [spark_home / "bin" / "spark-submit", "--master", MASTER,
            "--conf", f"spark.pyspark.driver.python={tools / 'bin' / 'python'}",
            "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0"]
    if tool == "baseline":  # nothing shipped: an environment already on every worker
        args += ["--conf", f"spark.pyspark.python={archive}/bin/python"]
    elif tool == "pex":  # a fresh PEX_ROOT per executor: its first run unpacks the PEX
        args += ["--files", archive, "--conf", f"spark.pyspark.python=./{archive.name}",
                 "--conf", "spark.executorEnv.PEX_ROOT=./.pex"]
    else:
        args += ["--archives", f"{archive}#env", "--conf", "spark.pyspark.python=./env/bin/python"]
    env = {**os.environ, "SPARK_HOME": str(spark_home)}
    t0 = time.time()
    secs, proc = timed([*args, job], env=env, cwd=work)
    tasks = [ln.split(" ", 1)[1].split("|") for ln in proc.stdout.splitlines()
             if ln.startswith("task ")]
    if proc.returncode != 0 or len(tasks) != 4:
        return sample(secs, proc) | {"ok": False}
    first = min(float(t[0]) for t in tasks) - t0
    return {"seconds": round(first, 4), "ok": True, "submit_seconds": round(secs, 4),
            "executor_python": sorted({t[1] for t in tasks})}


def cold_start(tool: str, archive: Path, work: Path) -> dict:
    """What one fresh worker pays for the archive, outside Spark: unpack it into a new
    directory (a fresh PEX root for PEX) and import the compiled dependency with its
    Python."""
    d = Path(tempfile.mkdtemp(prefix=f"worker-{tool}-", dir=work))
    code = "import pydantic_core, hello_web"
    if tool == "pex":
        shutil.copy(archive, d / archive.name)
        cmds = [[d / archive.name, "-c", code]]
        env = {**os.environ, "PEX_ROOT": str(d / ".pex")}
    else:
        cmds = [["tar", "-xzf", archive, "-C", d], [d / "bin" / "python", "-c", code]]
        env = dict(os.environ)
    t0 = time.perf_counter()
    for cmd in cmds:
        proc = run(cmd, env=env, check=False)
        if proc.returncode != 0:
            break
    s = sample(time.perf_counter() - t0, proc)
    shutil.rmtree(d, ignore_errors=True)
    return s


def table(results: dict) -> list[str]:
    rows = ["| tool | time to pack | archive | a fresh worker: unpack + first import | "
            "time to the first executor task | workers need |",
            "|---|---|---|---|---|---|"]
    base = results.get("baseline", {}).get("first_task", {})
    if "median" in base:
        rows.append(f"| nothing shipped (baseline) | — | — | — | {spread(base)} | "
                    "the environment, installed beforehand |")
    for tool in TOOLS:
        r = results.get(tool)
        if r is None:
            continue
        p, s, size = r["pack"], r["first_task"], r["size"]
        warm = [x["warm_cache_seconds"] for x in p["samples"] if x.get("warm_cache_seconds")]
        again = f" ({statistics.median(warm):.2f} s with its cache warm)" if warm else ""
        rows.append(f"| {LABELS[tool]} | {spread(p)}{again} | {size / 1e6:.1f} MB | "
                    f"{spread(r.get('cold_start', {}))} | {spread(s)} | "
                    f"{WORKERS_NEED[tool]} |")
    return rows


def spread(x: dict) -> str:
    """The median, with the fastest and slowest run."""
    if "median" not in x:
        return "failed"
    return f"{x['median']:.2f} s ({x['min']:.2f} to {x['max']:.2f})"


def report(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"# Relocatable bundles on Spark — {m['date']}", "",
        f"examples/hello-web's locked environment (FastAPI, uvicorn, pydantic-core) "
        f"shipped to `{MASTER}` executors; medians of {res['repeat']} runs each; "
        f"{m['nproc']} cores ({m['cpu']}), {m['uv']}, PySpark {TOOL_REQUIREMENTS[0][9:]}, "
        f"uvship at {m.get('uvship_commit', '?')}.", "",
        *table(res["results"]), "",
        "Time to pack: from the locked project to the archive, uv's cache warm (uvship's own "
        "cache empty: it prepares the interpreter and byte-compiles for the final paths; "
        "the venv-pack and PEX rows include the `uv venv` + `uv sync` that makes the "
        "environment they pack, with no bytecode). Time to the first executor task: from "
        "starting `spark-submit` to the first UDF call on an executor (the executors "
        "fetch and unpack the archive first). A fresh worker: the same work outside "
        "Spark, on this machine (`tar -xzf` into a new directory, then `python -c "
        "'import pydantic_core, hello_web'` with the unpacked Python; for PEX, the PEX "
        "run with an empty `PEX_ROOT`, which it unpacks into). The uvship archive is "
        "larger because it carries the interpreter (and bytecode); the others need that "
        "interpreter installed at the same path on every worker. The baseline runs the "
        "same job with nothing shipped (the executors use a venv already on this "
        "machine): the rest of each row's time to the first task is Spark's own "
        "start-up.", "",
        *([f"Note: {note}", ""] if (note := busy_note(m)) else []),
        "Raw runs: the JSON beside this file.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, 3, DEFAULT_OUT)
    t_start = time.perf_counter()
    busy0, own0 = cpu_busy_seconds(), own_cpu_seconds()
    uvship = default_uvship(args.uvship)
    from uv import find_uv_bin

    uv = find_uv_bin()
    if shutil.which("java") is None:
        raise Failed("no java on PATH: scripts/setup-host installs openjdk-17-jre-headless")
    work = Path(tempfile.mkdtemp(prefix="uvship-bench-reloc-", dir="/var/tmp"))
    machine = machine_info(uv, uvship)
    try:
        python = python312(uv)
        log(f"work directory {work}; workers' CPython for venv-pack and PEX: {python}")
        log("installing the driver's PySpark and the packers (untimed)")
        tools = tools_env(work, uv, python)
        project = locked_copy(work, uv, python)
        # one untimed run of each: uv's cache holds every wheel, Spark's jars are read once
        for tool in TOOLS:
            s, archive = pack(tool, -1, work, project, uv, python, uvship, tools)
            if archive is None:
                raise Failed(f"{tool}: packing failed\n{s.get('output_tail', '')}")
            first = submit(tool, archive, work, tools)
            if not first["ok"]:
                raise Failed(f"{tool}: the Spark job failed\n{first.get('output_tail', '')}")
            log(f"warm-up {tool}: packed in {s['seconds']:.2f} s, first task after "
                f"{first['seconds']:.2f} s on {first['executor_python']}")
        # the baseline's environment: synced once, at a path every executor sees
        base_env = work / "baseline-venv"
        for cmd in synced_venv(base_env, project, uv, python):
            run(cmd, env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(base_env)})
        samples: dict[str, dict[str, list]] = {
            t: {"pack": [], "first_task": [], "cold_start": []} for t in ("baseline", *TOOLS)}
        sizes: dict[str, int] = {}
        for i in range(args.repeat):
            for tool in rotated(["baseline", *TOOLS], i):
                if tool == "baseline":
                    first = submit(tool, base_env, work, tools)
                    samples[tool]["first_task"].append(first)
                    log(f"run {i + 1}/{args.repeat} baseline: first task "
                        f"{first['seconds']:.2f} s")
                    continue
                s, archive = pack(tool, i, work, project, uv, python, uvship, tools)
                samples[tool]["pack"].append(s)
                if archive is None:
                    continue
                sizes[tool] = archive.stat().st_size
                samples[tool]["cold_start"].append(cold_start(tool, archive, work))
                first = submit(tool, archive, work, tools)
                samples[tool]["first_task"].append(first)
                log(f"run {i + 1}/{args.repeat} {tool}: pack {s['seconds']:.2f} s, "
                    f"{sizes[tool] / 1e6:.1f} MB, a fresh worker "
                    f"{samples[tool]['cold_start'][-1]['seconds']:.2f} s, first task "
                    f"{first['seconds']:.2f} s")
        results = {t: {"pack": summarize(samples[t]["pack"]),
                       "first_task": summarize(samples[t]["first_task"]),
                       "cold_start": summarize(samples[t]["cold_start"]),
                       "size": sizes.get(t, 0)} for t in ("baseline", *TOOLS)}
        finish_machine(machine, busy0, own0, t_start)
        res = {"repeat": args.repeat, "machine": machine, "results": results,
               "tools": list(TOOL_REQUIREMENTS), "workers_python": python,
               "duration_seconds": round(time.perf_counter() - t_start, 1)}
        write_results(args.out, res, report(res))
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    cli(main)
