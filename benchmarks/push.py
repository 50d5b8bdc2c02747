"""Benchmark: pushing the example image to a local registry, before and after a code-only change.

Starts Debian's docker-registry on 127.0.0.1 (a free port, a temporary directory), builds
examples/hello-web with uvship, pushes it (`uvship build --push`), edits one source file,
builds and pushes again, and reports both push times and the bytes each push uploaded
(the blobs the registry's own access log shows it stored, and their sizes on its disk).

    .venv/bin/python benchmarks/push.py [--repeat N]

A benchmark, not a test: it prints numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.registry_fixtures import RegistryServer  # noqa: E402
from uvship import Uv  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="uvship-push-bench-", dir="/var/tmp"))
    os.environ["UVSHIP_CACHE_DIR"] = str(work / "cache")
    try:
        project = work / "hello-web"
        shutil.copytree(ROOT / "examples" / "hello-web", project,
                        ignore=shutil.ignore_patterns(".venv"))
        server = RegistryServer(work / "registry")
        server.start()
        rows = []
        try:
            for i in range(args.repeat):
                repo = f"bench{i}"
                image = Uv(project).workspace().build().image()
                first = push(server, image, repo)
                init = project / "src/hello_web/__init__.py"
                init.write_text(init.read_text() + f"\n# edit {time.time_ns()}\n")
                image2 = Uv(project).workspace().build().image()
                second = push(server, image2, repo)
                total = sum(x.size for x in image2.oci.layers)
                rows.append({"first": first, "second": second, "image_bytes": total})
                print(f"run {i + 1}: first push {first['seconds']:.2f} s "
                      f"({first['bytes']} B), second {second['seconds']:.2f} s "
                      f"({second['bytes']} B, {second['blobs']} blobs)", file=sys.stderr)
        finally:
            server.stop()
        med = {k: statistics.median(r[k.split(".")[0]][k.split(".")[1]] for r in rows)
               for k in ("first.seconds", "first.bytes", "second.seconds", "second.bytes")}
        image_bytes = rows[-1]["image_bytes"]
        out = {"runs": rows, "median": med, "image_bytes": image_bytes,
               "second_push_fraction": med["second.bytes"] / image_bytes}
        (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
        (ROOT / "benchmarks" / "results" / "push.json").write_text(json.dumps(out, indent=2))
        print(f"| push | median time | bytes uploaded |\n|---|---|---|\n"
              f"| first push | {med['first.seconds']:.2f} s | {med['first.bytes'] / 1e6:.1f} MB |\n"
              f"| after a code-only change | {med['second.seconds']:.2f} s | "
              f"{med['second.bytes'] / 1e3:.1f} kB ({100 * out['second_push_fraction']:.3f}% "
              f"of the {image_bytes / 1e6:.1f} MB image) |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def push(server: RegistryServer, image, repo: str) -> dict:
    mark = server.mark()
    t0 = time.perf_counter()
    image.publish(f"{server.host}/{repo}:latest")
    seconds = time.perf_counter() - t0
    uploads = server.count("PUT", rf"/v2/{repo}/blobs/uploads/", since=mark, status=201)
    blob_bytes = _uploaded_bytes(server, repo, mark)
    return {"seconds": seconds, "bytes": blob_bytes, "blobs": uploads}


def _uploaded_bytes(server: RegistryServer, repo: str, mark: int) -> int:
    """Bytes of the blobs the registry stored since ``mark`` (from its log's digests)."""
    import re

    total = 0
    for r in server.requests(since=mark):
        if r.method == "PUT" and r.status == 201 and f"/v2/{repo}/blobs/uploads/" in r.uri:
            m = re.search(r"digest=sha256%3A([0-9a-f]{64})|digest=sha256:([0-9a-f]{64})", r.uri)
            if m:
                hexd = m.group(1) or m.group(2)
                blob = (server.root / "storage" / "docker" / "registry" / "v2" / "blobs" /
                        "sha256" / hexd[:2] / hexd / "data")
                total += blob.stat().st_size
    return total


if __name__ == "__main__":
    main()
