# Run by the TARGET interpreter (not uvship's), so it uses only its standard library.
# Usage: python -B -s _compile_worker.py LISTFILE STRIP PREFIX
# For each .py in LISTFILE: keep a hash-based pyc that exists; turn a timestamp pyc into a
# checked-hash one (same code, new header: no recompilation); compile the rest in
# checked-hash mode with co_filename = PREFIX + path-after-STRIP. PYTHONHASHSEED must be
# fixed by the caller: frozenset constants are marshalled in hash order.
#
# A pyc's bytes also depend on what its process compiled before: CPython shares an equal
# constant (a frozenset) between two code objects, or not, and marshal writes a shared
# object once with a reference flag, by state left behind by earlier compiles. So files
# are compiled in fixed chunks of the sorted list, each in a fresh fork of this process:
# every file has the same history on every run and machine, however many workers there
# are (a pool's workers take chunks in whatever order they free up).
#
# LISTFILE may hold groups separated by a blank line (one per distribution): each group is
# chunked on its own, so a file's history is the files of its own group before it, and a
# distribution's bytecode is the same whatever else is compiled with it (another lock,
# another project, or only the distributions a changed lock installed).
import importlib.util
import marshal
import os
import sys
from importlib import _bootstrap_external

MAGIC = importlib.util.MAGIC_NUMBER
# Not py_compile: it imports traceback, linecache, tokenize and re (~12 ms of a ~25 ms
# run for a one-file edit). _compile does what py_compile.compile does in checked-hash
# mode, with the same calls: compile(), source_hash, the hash-pyc header, the source's
# mode and an atomic write.
CHECKED_HASH = (0b1 | 0b10).to_bytes(4, "little")


def _compile(src, cfile, dfile):
    with open(src, "rb") as f:
        data = f.read()
    code = compile(data, dfile, "exec", dont_inherit=True, optimize=-1)
    pyc = MAGIC + CHECKED_HASH + importlib.util.source_hash(data) + marshal.dumps(code)
    os.makedirs(os.path.dirname(cfile), exist_ok=True)
    _bootstrap_external._write_atomic(cfile, pyc, _bootstrap_external._calc_mode(src))


def _work(args):
    src, strip, prefix = args
    try:
        cfile = importlib.util.cache_from_source(src)
    except NotImplementedError:
        return 0
    try:
        with open(cfile, "rb") as f:
            head = f.read(16)
            if head[:4] == MAGIC and int.from_bytes(head[4:8], "little") & 1:
                return 0  # already hash-based
            if head[:4] == MAGIC and int.from_bytes(head[4:8], "little") == 0:
                body = f.read()
                with open(src, "rb") as s:
                    h = importlib.util.source_hash(s.read())
                tmp = cfile + ".tmp"
                with open(tmp, "wb") as out:
                    out.write(MAGIC + (3).to_bytes(4, "little") + h + body)
                os.replace(tmp, cfile)
                return 0
    except OSError:
        pass
    dfile = prefix + src[len(strip):] if src.startswith(strip) else src
    try:
        _compile(src, cfile, dfile)
    except OSError:
        raise
    except Exception:  # as py_compile: any failure to compile is the file's
        return 1  # a file that is not valid for this Python (data, templates): left as is
    return 0


CHUNK = 256  # files per fresh process: a fork costs about a millisecond


def _compile_chunk(jobs):
    return sum(map(_work, jobs))


def _in_fresh_processes(chunks, workers):
    """Each chunk compiled by a fork of this process (never yet compiled anything), at
    most ``workers`` at once; the number of files that did not compile."""
    failed, running, todo = 0, {}, list(chunks)
    while todo or running:
        while todo and len(running) < workers:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: compile, report, leave without Python's cleanup
                os.close(r)
                try:
                    os.write(w, str(_compile_chunk(todo[0])).encode())
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    os._exit(1)
                os._exit(0)
            os.close(w)
            running[pid] = r
            todo.pop(0)
        pid, status = os.wait()
        r = running.pop(pid)
        with os.fdopen(r, "rb") as f:
            out = f.read()
        if status != 0 or not out:
            raise SystemExit(f"byte-compiling: a worker ended with status {status}")
        failed += int(out)
    return failed


def main():
    listfile, strip, prefix = sys.argv[1:4]
    with open(listfile, encoding="utf-8") as f:
        groups = [[(p, strip, prefix) for p in block.split("\n") if p]
                  for block in f.read().split("\n\n")]
    chunks = [g[i:i + CHUNK] for g in groups for i in range(0, len(g), CHUNK)]
    jobs = [j for g in groups for j in g]
    if len(chunks) <= 1:
        failed = sum(map(_compile_chunk, chunks))  # this process, as fresh as a fork
    else:
        failed = _in_fresh_processes(chunks, min(os.cpu_count() or 1, 8))
    sys.stdout.write(f"{len(jobs)} {failed}\n")


if __name__ == "__main__":
    main()
