"""The "scratch" runtime: the host's glibc closure and the /etc, CA and zoneinfo files a Python
needs in an image that has no distribution."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from .. import _proc
from ..errors import CommandError, InputError, UvshipError
from ..layers import DIR_MODE, EXEC_MODE, FILE_MODE, Entry, normalize
from ..oci import Platform
from ..python import elf, ldso

HINT = ("give a base image with --base (an OCI layout or docker-archive of a distribution "
        "or distroless image)")

NONROOT = 65532
# The accounts distroless images have; 65532 is the usual unprivileged user of such images.
PASSWD = (b"root:x:0:0:root:/root:/sbin/nologin\n"
          b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
# glibc >= 2.34 has the files and dns NSS modules built in: no libnss_*.so is needed for
# these, and nothing else (systemd, ldap...) is configured.
NSSWITCH = b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
ZONEINFO = "usr/share/zoneinfo"
# Libraries glibc dlopens by soname, so no DT_NEEDED names them: libgcc_s for the stack
# unwinding of pthread_cancel/pthread_exit and backtrace().
_DLOPENED = ("libgcc_s.so.1",)
# The rest of glibc that compiled wheels (manylinux, built against older glibc) list in
# DT_NEEDED even where newer glibc merged them into libc: shipping them with the base
# runtime keeps the runtime layer the same whatever the environment holds.
_GLIBC_FAMILY = ("libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
                 "libresolv.so.2")
# What else the scratch base takes from this host for the environment's ELF files: the
# libraries of the manylinux policy that every Linux system has, which auditwheel therefore
# leaves out of wheels. The policy's graphical ones (libGL, libX11, libglib...) are not
# taken: an image must not depend on what this build host happens to have installed.
SYSTEM_LIBRARIES = ("libgcc_s.so.1", "libstdc++.so.6", "libatomic.so.1", "libz.so.1",
                    "libexpat.so.1")
# Packages published in two flavours, one of which loads no GUI library.
_HEADLESS = {"opencv-python": "opencv-python-headless",
             "opencv-contrib-python": "opencv-contrib-python-headless"}
# Before glibc 2.34 the files and dns NSS modules are separate, dlopened libraries.
_OLD_NSS = ("libnss_files.so.2", "libnss_dns.so.2")
_GLIBC_BANNER = re.compile(rb"GNU C Library [^\n]*? version (\d+\.\d+)")
_SEARCH_LINE = re.compile(r"^\s*(/\S*) \(system search path\)$", re.M)
# In the loader's bytes, its built-in search path is one run of NUL-ended directories
# ending in "/" ("/lib/x86_64-linux-gnu/\0/usr/lib/x86_64-linux-gnu/\0/lib/\0/usr/lib/\0").
_SEARCH_BYTES = re.compile(rb"(?:/[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*/\0){2,}")


@dataclass(frozen=True)
class Runtime:
    """Entries at their absolute paths (no leading slash) and what they are, for an SBOM."""

    entries: list[Entry]
    components: list[dict[str, Any]]


def glibc_version_of(data: bytes) -> str | None:
    """"2.36" from the bytes of glibc's libc.so.6 ("GNU C Library ... version 2.36.")."""
    m = _GLIBC_BANNER.search(data)
    return m.group(1).decode() if m else None


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def scratch_runtime(elf_roots: list[Path], *, machine: str) -> Runtime:
    """Everything the ELF files under ``elf_roots`` need at run time, taken from this host.

    The files of the roots themselves are not included (they are shipped as they are);
    only what they load from outside them, glibc and its loader included. InputError when
    this host cannot provide it (other machine, no glibc, a library missing).
    """
    machine = Platform.of_machine(machine).machine  # "arm64" and "aarch64" alike
    host = os.uname().machine
    if machine != host:
        raise InputError(f"the scratch base for {machine}: this host is {host}, and its C "
                         f"library cannot run {machine} programs", hint=HINT)
    roots = [Path(r).resolve() for r in elf_roots]
    files = _elf_files(roots, machine)
    ref = next((i for _, i in files if i.interpreter), None)
    if ref is None:
        raise InputError(f"{', '.join(map(str, roots))}: no program found (no ELF file with "
                         "a loader, PT_INTERP); expected an interpreter tree", hint=HINT)
    if elf.libc_flavour(ref) == "musl":
        return _musl_runtime(files, roots, ref)
    libs = _closure([p for p, _ in files],
                    [_host_library(s, ref) for s in (*_DLOPENED, *_GLIBC_FAMILY)])
    libc = libs.get("libc.so.6")
    if libc is None:
        raise InputError(f"this host: no glibc libc.so.6 for {machine} found in "
                         f"{list(elf.system_library_dirs())}", hint=HINT)
    glibc = glibc_version_of(libc.read_bytes())
    if glibc is None:
        raise InputError(f"{libc}: expected glibc's libc.so.6, found no glibc version in it",
                         hint=HINT)
    if _version_key(glibc) < (2, 34):
        libs |= _closure([_host_library(s, ref) for s in _OLD_NSS], [])
    # What the roots bundle themselves (the interpreter's libssl, a wheel's .libs) ships
    # with them; only what comes from outside them is added here.
    libs = {s: p for s, p in sorted(libs.items())
            if not any(p.is_relative_to(r) for r in roots)}

    out: dict[str, Entry] = {}
    interpreters = sorted({i.interpreter for _, i in files if i.interpreter})
    for interp in interpreters:
        if not os.path.isfile(interp):
            raise InputError(f"this host: no {interp}, the loader (PT_INTERP) of the programs "
                             f"under {', '.join(map(str, roots))}", hint=HINT)
        _place(interp, out)
    _place_libraries(libs, _loader_dirs(Path(interpreters[0])), out)
    return _runtime(out, {"name": "glibc", "version": glibc, "source": f"host file {libc}"},
                    libs)


def library_runtime(libs: dict[str, Path], program: Path) -> Runtime:
    """This host's libraries ``libs`` (soname -> path, as env_libraries gives them) placed
    where the loader of ``program`` looks in an image with no ld.so.cache."""
    info = elf.read_elf(program)
    if info is None or not info.interpreter:
        raise InputError(f"{program}: expected a program with a loader (PT_INTERP)", hint=HINT)
    out: dict[str, Entry] = {}
    _place_libraries(libs, _loader_dirs(Path(info.interpreter)), out)
    entries = normalize(out.values())
    _check_no_entry_below_a_link(entries)
    return Runtime(entries=entries, components=_library_components(libs))


def _runtime(out: dict[str, Entry], libc: dict[str, Any], libs: dict[str, Path]) -> Runtime:
    """The runtime of the C library and ``libs`` placed in ``out``, with the /etc files,
    CAs and zoneinfo every scratch image gets, and what it holds for an SBOM."""
    certifi_v, tzdata_v, data_entries = _ca_and_zoneinfo()
    for e in [*_system_files(), *data_entries]:
        out[e.path] = e
    entries = normalize(out.values())
    _check_no_entry_below_a_link(entries)
    components = [libc, *_library_components(libs),
                  {"name": "certifi", "version": certifi_v, "source": "PyPI package certifi "
                   "(Mozilla's CA bundle)", "purl": f"pkg:pypi/certifi@{certifi_v}",
                   "path": CA_BUNDLE},
                  {"name": "tzdata", "version": tzdata_v, "source": "PyPI package tzdata "
                   "(IANA time zone data)", "purl": f"pkg:pypi/tzdata@{tzdata_v}",
                   "path": ZONEINFO}]
    return Runtime(entries=entries, components=components)


def env_libraries(files: dict[Path, elf.ElfInfo], trees: list[Path], program: Path,
                  owner: Callable[[Path], str | None]) -> dict[str, Path]:
    """What this host must provide for ``files`` (an environment's ELF files) to load on the
    scratch base, with ``program`` (the interpreter) that loads them: soname -> host path.

    Libraries are found as the loader finds them (ldso): in ``trees`` (the interpreter's and
    the environment's, as they ship), else among glibc and SYSTEM_LIBRARIES on this host.
    InputError naming each package (``owner`` of a file: "name version") whose files load
    a library that the image would not have, the library and the way out.
    """
    trees = [t.resolve() for t in trees]
    prog = elf.read_elf(program)
    if prog is not None and elf.libc_flavour(prog) == "musl":
        shipped = {p.name for t in trees for p, _ in elf.iter_elf_files(t)}
        _check_musl_needs(files.items(), shipped)
        return {}

    def inside(path: Path) -> bool:
        return any(path.resolve().is_relative_to(t) for t in trees)

    def keep(soname: str, path: Path) -> bool:
        return elf.is_glibc_soname(soname) or soname in SYSTEM_LIBRARIES or inside(path)

    loads = ldso.resolve_loads(sorted(files), preload=[program], include_libc=True,
                               infos=files, keep=keep)
    if loads.missing:
        raise _not_provided(loads.missing, trees, owner)
    out: dict[str, Path] = {}
    for soname, path in loads.loaded:
        if not inside(path):
            out.setdefault(soname, path)
    return dict(sorted(out.items()))


def _not_provided(missing: tuple[ldso.Missing, ...], trees: list[Path],
                  owner: Callable[[Path], str | None]) -> InputError:
    by_owner: dict[str, dict[str, str]] = {}  # "name version" -> soname -> the file needing it
    on_host = False
    for m in missing:
        who = owner(m.needer) or owner(m.root) or str(m.needer)
        needer = next((str(m.needer.relative_to(t)) for t in trees
                       if m.needer.is_relative_to(t)), str(m.needer))
        by_owner.setdefault(who, {}).setdefault(m.soname, needer.rsplit("site-packages/")[-1])
        on_host = on_host or bool(m.refused)
    parts = []
    for who, libs in sorted(by_owner.items()):
        first = sorted(libs)[0]
        parts.append(f"{who} needs {', '.join(sorted(libs))} ({libs[first]} needs {first})")
    sonames = sorted({s for libs in by_owner.values() for s in libs})
    host = ("; this host has them, but an image must not depend on what the build host "
            "happens to have installed" if on_host else "")
    ways = [f"use {_HEADLESS[w.split()[0]]}" for w in sorted(by_owner)
            if w.split()[0] in _HEADLESS]
    more = f" (and the {len(sonames) - 1} others)" if len(sonames) > 1 else ""
    ways.append(f"{'a' if ways else 'give a'} --base that provides {sonames[0]}{more}")
    return InputError(
        f"{'; '.join(parts)}: not bundled in the wheel, and an image on the scratch base does "
        f"not have {'it' if len(sonames) == 1 else 'them'} (expected each library a wheel "
        "loads bundled in it, or among what the scratch base takes from this host: glibc, "
        f"{', '.join(SYSTEM_LIBRARIES)}){host}", hint=", or ".join(ways))


def _check_musl_needs(files: Iterable[tuple[Path, elf.ElfInfo]], bundled: set[str]) -> None:
    """musllinux wheels bundle every library they load but musl: refuse a file that needs
    one that none of ``bundled`` (the file names shipped) provides."""
    for path, info in files:
        missing = [n for n in info.needed if not elf.is_libc_soname(n) and n not in bundled]
        if missing:
            raise InputError(f"{path}: needs {', '.join(missing)}, which the musl scratch "
                             "base does not provide (it holds only musl itself)",
                             hint="give a musl base image that has them (e.g. Alpine) "
                                  "with --base")


# ---------------------------------------------------------------------- the closure
def _elf_files(roots: list[Path], machine: str) -> list[tuple[Path, elf.ElfInfo]]:
    files = []
    for path, info in elf.iter_elf_files(roots):
        if info.machine != machine:
            raise InputError(f"{path}: is built for {info.machine}, expected {machine} for "
                             "this build", hint=HINT)
        files.append((path, info))
    flavours = {f for _, i in files if (f := elf.libc_flavour(i))}
    if len(flavours) > 1:
        musl = next(p for p, i in files if elf.libc_flavour(i) == "musl")
        glibc = next(p for p, i in files if elf.libc_flavour(i) == "glibc")
        raise InputError(f"{musl} links musl and {glibc} links glibc: expected one C library "
                         "for the whole image", hint="install musllinux wheels for a musl "
                         "interpreter (uvship does when the interpreter links musl)")
    return files


def _musl_runtime(files: list[tuple[Path, elf.ElfInfo]], roots: list[Path],
                  ref: elf.ElfInfo) -> Runtime:
    """The scratch runtime of musl programs: the host's musl loader (which is musl's libc
    too), CAs, zoneinfo, passwd. musllinux wheels bundle every other library they load."""
    loader = ref.interpreter or ""
    if not os.path.isfile(loader):
        raise InputError(f"this host: no {loader}, the musl loader (PT_INTERP) of the programs "
                         f"under {', '.join(map(str, roots))}",
                         hint="install the host's musl (Debian: apt-get install musl), or "
                              "give a musl base image (e.g. Alpine) with --base")
    _check_musl_needs(files, {p.name for p, _ in files})  # the interpreter's, a wheel's
    out: dict[str, Entry] = {}
    real = _place(loader, out)
    return _runtime(out, {"name": "musl", "version": _musl_version(loader),
                          "source": f"host file {real}"}, {"libc.so": Path(real)})


def _musl_version(loader: str) -> str | None:
    """musl's version, as its loader prints it when run with no program."""
    try:
        text = _proc.run([loader], what=f"{loader}").stderr
    except CommandError as exc:  # it exits 1 after printing its banner
        text = exc.stderr
    m = re.search(r"^Version (\S+)", text, re.M)
    return m.group(1) if m else None


def _closure(files: list[Path], extra: list[Path]) -> dict[str, Path]:
    try:
        found = ldso.resolve_closure([*files, *extra], include_libc=True)
    except UvshipError as exc:  # a library missing on this host: name it, then the way out
        raise InputError(f"cannot make the scratch base from this host: {exc.message}",
                         hint=HINT) from exc
    for path in extra:  # searched for by soname, so not in the closure of anything
        found.setdefault(path.name, path.resolve())
    return found


def _host_library(soname: str, ref: elf.ElfInfo) -> Path:
    """``soname`` where this host's loader would find it for a program like ``ref``."""
    for d in elf.system_library_dirs():
        cand = Path(d, soname)
        if cand.is_file():
            info = elf.read_elf(cand)
            if info is not None and (info.machine, info.bits) == (ref.machine, ref.bits):
                return cand
    raise InputError(f"this host: no {soname} for {ref.machine} in "
                     f"{list(elf.system_library_dirs())}; glibc loads it at run time",
                     hint=HINT)


def _loader_dirs(loader: Path) -> list[str]:
    """The directories the loader searches when there is no /etc/ld.so.cache, in order.

    Asked of the loader itself (`ld.so --help`, glibc >= 2.33), else read from its bytes:
    they are compiled in, and differ between distributions (Debian's include the multiarch
    directories, Fedora's are /lib64 and /usr/lib64).
    """
    try:
        text = _proc.run([loader, "--help"], what=f"{loader} --help").stdout
        dirs = _SEARCH_LINE.findall(text)
    except CommandError:
        dirs = []
    if not dirs:
        m = _SEARCH_BYTES.search(loader.resolve().read_bytes())
        dirs = [d.decode().rstrip("/") for d in m.group().split(b"\0") if d] if m else []
    if not dirs:
        raise InputError(f"{loader}: cannot tell which directories this loader searches",
                         hint=HINT)
    return [d.rstrip("/") or "/" for d in dirs]


# ---------------------------------------------------------------------- the layout
def _place(path: str, out: dict[str, Entry]) -> str:
    """Add ``path`` as the host has it: each symlink met on the way (same target), then the
    real file or directory. Returns the real path. The image then resolves every path
    exactly as the host does, merged-/usr links included."""
    todo = list(PurePosixPath(path).parts[1:])
    real, hops = "/", 0
    while todo:
        name = todo.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            real = os.path.dirname(real)
            continue
        cur = os.path.join(real, name)
        if os.path.islink(cur):
            hops += 1
            if hops > 40:
                raise InputError(f"{path}: too many levels of symbolic links on this host")
            target = os.readlink(cur)
            out[cur[1:]] = Entry(cur[1:], "symlink", 0o777, target=target)
            todo = list(PurePosixPath(target).parts) + todo
            if target.startswith("/"):
                todo, real = todo[1:], "/"
        else:
            real = cur
    st = os.stat(real)
    rel = real[1:]
    if stat.S_ISDIR(st.st_mode):
        out.setdefault(rel, Entry(rel, "dir", DIR_MODE))
    else:
        mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
        out[rel] = Entry(rel, "file", mode, source=Path(real))
    return real


def _place_libraries(libs: dict[str, Path], search: list[str], out: dict[str, Entry]) -> None:
    """Each library at its real host path, under its soname there, where the loader looks.

    There is no /etc/ld.so.cache in the image, so the loader finds libraries only in its
    built-in directories; they are placed (with the host's links to them, e.g. the
    merged-/usr `lib -> usr/lib`) so that they resolve as on the host.
    """
    real_search: dict[str, str] = {}
    for d in search:
        if os.path.isdir(d):
            real_search.setdefault(os.path.realpath(d), d)
    first = next(iter(real_search), None)
    used: set[str] = set()
    for soname, path in libs.items():
        real = _place(str(path), out)
        parent = os.path.dirname(real)
        if soname != os.path.basename(real):
            _link(f"{parent}/{soname}", os.path.basename(real), out)
        if parent in real_search:
            used.add(parent)
        elif first is not None:  # found through ld.so.conf or a RUNPATH: link it in
            _link(f"{first}/{soname}", real, out)
            used.add(first)
        else:
            raise InputError(f"{path}: none of the loader's directories {search} exists on "
                             "this host", hint=HINT)
    for d in search:  # the other names of the directories in use (e.g. /lib -> usr/lib)
        if os.path.isdir(d) and os.path.realpath(d) in used:
            _place(d, out)


def _link(path: str, target: str, out: dict[str, Entry]) -> None:
    rel = path.lstrip("/")
    if rel not in out:
        out[rel] = Entry(rel, "symlink", 0o777, target=target)


def _check_no_entry_below_a_link(entries: list[Entry]) -> None:
    links = {e.path for e in entries if e.kind == "symlink"}
    for e in entries:
        for parent in PurePosixPath(e.path).parents:
            if str(parent) in links:
                raise UvshipError(f"scratch base: {e.path} would be placed below the symbolic "
                                  f"link {parent}", hint="this is a bug in uvship; please "
                                  "report it")


# ---------------------------------------------------------------------- the other files
def _system_files() -> list[Entry]:
    return [
        Entry("etc/passwd", "file", FILE_MODE, data=PASSWD),
        Entry("etc/group", "file", FILE_MODE, data=GROUP),
        Entry("etc/nsswitch.conf", "file", FILE_MODE, data=NSSWITCH),
        # OpenSSL built with --openssldir=/etc/ssl (python-build-standalone's, Alpine's)
        # reads this file when SSL_CERT_FILE is not set.
        Entry("etc/ssl/cert.pem", "symlink", 0o777, target="certs/ca-certificates.crt"),
        # Relative, so that it also resolves in an extracted tree; zoneinfo readers find
        # the zone's name after "zoneinfo/" in the target.
        Entry("etc/localtime", "symlink", 0o777, target="../usr/share/zoneinfo/UTC"),
        Entry("root", "dir", 0o700),
        Entry("home/nonroot", "dir", DIR_MODE, uid=NONROOT, gid=NONROOT),
        Entry("tmp", "dir", 0o1777),  # sticky: anyone may create, only owners may delete
    ]


def _ca_and_zoneinfo() -> tuple[str, str, list[Entry]]:
    """Mozilla's CA bundle from certifi (never the host's /etc/ssl, which may hold private
    CAs) and the IANA zones from tzdata: both from uvship's own environment."""
    try:
        import certifi

        certifi_v = importlib.metadata.version("certifi")
        tzdata_v = importlib.metadata.version("tzdata")
        zones = importlib.resources.files("tzdata") / "zoneinfo"
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        raise UvshipError(f"uvship's environment: {exc}; expected the certifi and tzdata "
                          "packages installed with uvship",
                          hint="reinstall uvship with its dependencies") from exc
    root = Path(str(zones))
    got = [Entry(CA_BUNDLE, "file", FILE_MODE, source=Path(certifi.where()))]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            if name == "__init__.py" or name.endswith(".pyc"):  # tzdata is a Python package
                continue
            path = str(PurePosixPath(ZONEINFO, rel.as_posix(), name))
            got.append(Entry(path, "file", FILE_MODE, source=Path(dirpath, name)))
    return certifi_v, tzdata_v, got


def _library_components(libs: dict[str, Path]) -> list[dict[str, Any]]:
    packages = _dpkg_packages(list(libs.values()))
    comps = []
    for soname, path in libs.items():
        comp: dict[str, Any] = {"name": soname, "version": None, "source": f"host file {path}",
                                "path": str(path).lstrip("/")}
        pkg = packages.get(path)
        if pkg is not None:
            name, arch, version, distro = pkg
            comp.update(version=version, source=f"{distro} package {name}:{arch}",
                        purl=f"pkg:deb/{distro}/{name}@{quote(version, safe='+~.')}"
                             f"?arch={arch}")
        comps.append(comp)
    return comps


def _dpkg_names(path: Path, merged: list[str]) -> list[str]:
    """``path`` and its names through the merged-/usr links (/lib/x -> /usr/lib/x): dpkg
    records the names packages were built with, often the /lib ones."""
    names = [str(path)]
    for top in merged:
        if str(path).startswith(f"/usr/{top}/"):
            names.append(f"/{top}/" + str(path)[len(f"/usr/{top}/"):])
    return names


def _dpkg_packages(paths: list[Path]) -> dict[Path, tuple[str, str, str, str]]:
    """path -> (package, architecture, version, distribution) for the paths dpkg knows."""
    if not paths or shutil.which("dpkg-query") is None:
        return {}
    merged = [t.name for t in sorted(Path("/").iterdir())
              if t.is_symlink() and os.readlink(t).lstrip("/") == f"usr/{t.name}"]
    by_name = {n: p for p in paths for n in _dpkg_names(p, merged)}
    # dpkg-query exits 1 when any path is unknown, which is expected here: what it knows
    # is on stdout all the same.
    out = _proc.run(["sh", "-c", 'dpkg-query -S "$@" 2>/dev/null; exit 0', "sh",
                     *sorted(by_name)], what="dpkg-query -S").stdout
    owner: dict[Path, str] = {}
    for line in out.splitlines():
        pkgs, sep, name = line.rpartition(": ")
        if sep and name in by_name and not line.startswith("diversion"):
            owner.setdefault(by_name[name], pkgs.split(", ")[0])
    if not owner:
        return {}
    try:
        info = _proc.run(["dpkg-query", "-W", "-f", "${Package}\t${Architecture}\t${Version}\n",
                          *sorted(set(owner.values()))], what="dpkg-query -W").stdout
    except CommandError:
        return {}
    versions: dict[str, tuple[str, str, str]] = {}
    for line in info.splitlines():
        name, arch, version = line.split("\t")
        versions[f"{name}:{arch}"] = versions[name] = (name, arch, version)
    distro = _distro_id()
    return {p: (*versions[pkg], distro) for p, pkg in owner.items() if pkg in versions}


def _distro_id() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "debian"
    m = re.search(r'^ID="?([^"\n]+)"?$', text, re.M)
    return m.group(1) if m else "debian"
