# Run by the TARGET interpreter (not uvship's), so it uses only its standard library.
# Usage: python -B -s _compile_worker.py LISTFILE STRIP PREFIX
# For each .py in LISTFILE: keep a hash-based pyc that exists; turn a timestamp pyc into a
# checked-hash one (same code, new header: no recompilation); compile the rest in
# checked-hash mode with co_filename = PREFIX + path-after-STRIP. PYTHONHASHSEED must be
# fixed by the caller: frozenset constants are marshalled in hash order.
import importlib.util
import os
import py_compile
import sys

MAGIC = importlib.util.MAGIC_NUMBER


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
        py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeDecodeError):
        return 1  # a file that is not valid for this Python (data, templates): left as is
    return 0


def main():
    listfile, strip, prefix = sys.argv[1:4]
    with open(listfile, encoding="utf-8") as f:
        files = [line.rstrip("\n") for line in f if line.strip()]
    jobs = [(p, strip, prefix) for p in files]
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) < 64 or workers == 1:
        failed = sum(map(_work, jobs))
    else:
        from concurrent.futures import ProcessPoolExecutor  # only when there is much to do

        with ProcessPoolExecutor(workers) as ex:
            failed = sum(ex.map(_work, jobs, chunksize=32))
    sys.stdout.write(f"{len(jobs)} {failed}\n")


if __name__ == "__main__":
    main()
