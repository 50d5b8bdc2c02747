"""`uvship doctor`'s rules: each known uv-in-Docker mistake, why it hurts, its fix, its check.

Rules and findings are the shared `sarif.Rule` and `sarif.Finding` (the audit's too), so
that one writer reports both commands' findings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .._glob import IgnoreFile
from ..sarif import Finding, Rule
from .parse import (
    Compose,
    DevGroup,
    Dockerfile,
    Instruction,
    Service,
    dev_group,
    expand,
    ignore_file_for,
    parse_dockerfile,
    shell_split,
)

UV_EXAMPLE = "0.13.9"  # the uv version the fixes show (any exact version will do)


RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("UV001", "venv-not-ignored", "error", ".venv is not in .dockerignore",
       "COPY of the build context sends the host's .venv: it is large, made for the host's "
       "Python and paths, and lands on top of the image's environment.",
       "add `.venv` (and `**/.venv` in a workspace) to .dockerignore"),
    Rule("UV002", "venv-hidden-by-bind-mount", "error",
       "a source bind mount hides the image's venv",
       "The mount puts the host directory over the one holding the image's venv, so the "
       "container sees no venv, or the host's (built for another machine).",
       "keep the venv outside the project (UV_PROJECT_ENVIRONMENT=/app/.venv, source in "
       "/src), or add a volume for the venv path (`- /app/.venv`)"),
    Rule("UV003", "activate-in-run", "error", "a RUN that only activates a venv",
       "Each RUN is a new shell: the activation ends with it and later instructions do not "
       "see the venv.",
       "put the venv first on PATH: `ENV PATH=\"/app/.venv/bin:$PATH\"`"),
    Rule("UV004", "sync-not-locked", "error", "`uv sync` without --locked or --frozen",
       "Without either, uv re-resolves when uv.lock is stale and builds something other "
       "than what was tested and locked.",
       "use `uv sync --locked` (fail if uv.lock is stale) or `--frozen`"),
    Rule("UV005", "deps-and-code-in-one-layer", "warning",
       "dependencies and code are installed in one layer",
       "The source is copied before the dependencies are installed, so every code edit "
       "reinstalls every dependency.",
       "first copy uv.lock and pyproject.toml and run `uv sync --locked "
       "--no-install-project`, then COPY the source and sync again"),
    Rule("UV006", "uv-not-pinned", "warning", "uv is not pinned to a version",
       "A tag without a uv version (`latest`, none, or one naming only a Python and a "
       "distro) moves to each new uv release: builds stop being reproducible and break "
       "when uv changes.",
       f"copy uv from a versioned image, e.g. `COPY --from=ghcr.io/astral-sh/uv:{UV_EXAMPLE} "
       "/uv /uvx /bin/` (or pin its digest)"),
    Rule("UV007", "editable-in-final-stage", "error",
       "an editable install is copied into the final stage",
       "An editable install points at the source directory of the build stage, which the "
       "final stage does not have: the import fails at run time.",
       "install with `uv sync --locked --no-editable` (or UV_NO_EDITABLE=1) in the stage "
       "the venv is copied from"),
    Rule("UV008", "venv-and-pip", "warning", "`python -m venv` and pip instead of uv",
       "pip ignores uv.lock: versions float, installs are slower and there is no cache "
       "shared with uv.",
       "copy uv into the build stage and run `uv sync --locked`"),
    Rule("UV009", "cache-mount-without-copy", "warning",
       "a uv cache mount without UV_LINK_MODE=copy",
       "uv hardlinks from its cache by default; the cache mount is another file system, "
       "so linking fails (with a warning) or, with symlinks, the venv points into a cache "
       "the image lacks.",
       "set `ENV UV_LINK_MODE=copy`"),
    Rule("UV010", "no-cache-mount", "warning", "no uv cache mount and no --no-cache",
       "The uv cache is written into the layer: the image grows by every downloaded wheel, "
       "and rebuilds download everything again.",
       "add `--mount=type=cache,target=/root/.cache/uv` to the RUN (or pass --no-cache)"),
    Rule("UV011", "runs-as-root", "warning", "the image runs as root",
       "A process running as root in the container turns any compromise of the app into "
       "root in the container.",
       "end the final stage with a non-root `USER`, e.g. `USER 65532:65532`"),
    Rule("UV012", "dotenv-copied", "error", ".env is copied into the image",
       "Secrets in .env end up in an image layer, readable by anyone who can pull it.",
       "add `.env` to .dockerignore and pass settings at run time"),
    Rule("UV013", "lock-not-copied", "error", "uv.lock is never copied or mounted",
       "`uv sync` without uv.lock resolves afresh (or fails with --locked): the image gets "
       "versions nobody locked.",
       "COPY uv.lock (or bind-mount it) before `uv sync`"),
    Rule("UV014", "dev-dependencies-shipped", "warning",
       "dev dependencies are installed in the shipped image",
       "`uv sync` installs the dev group by default: test and lint tools make the image "
       "bigger and widen its attack surface.",
       "pass `--no-dev` (or set UV_NO_DEV=1) in the stages that make the image"),
    Rule("UV015", "bytecode-not-compiled", "warning", "bytecode is not compiled",
       "Without .pyc files every start compiles the modules again (slower starts), and a "
       "non-root user cannot write them, so it happens every time.",
       "set `ENV UV_COMPILE_BYTECODE=1` (or pass --compile-bytecode)"),
    Rule("UV016", "git-not-ignored", "warning", ".git is not in .dockerignore",
       "COPY of the context sends .git: it changes with every commit, so the copied layer "
       "and every layer after it rebuild, and history ends up in the image.",
       "add `.git` to .dockerignore"),
    Rule("UV017", "watch-syncs-venv", "error", "develop.watch syncs the host's .venv",
       "A sync of the project directory without ignoring .venv/ copies the host's venv into "
       "the container, over the image's.",
       "add `ignore: [.venv/]` to the sync action"),
    Rule("UV018", "watch-no-rebuild", "warning",
       "develop.watch does not rebuild when dependencies change",
       "Syncing source does not install dependencies: after uv.lock changes the container "
       "runs with the old environment.",
       "add `- action: rebuild` entries for `path: uv.lock` and `path: pyproject.toml`"),
    Rule("UV019", "relative-mount-target", "error", "a RUN --mount target is relative",
       "buildah (podman build) refuses relative mount targets (\"must be an absolute "
       "path\"); BuildKit resolves them against WORKDIR.",
       "write the target as an absolute path: the WORKDIR joined to it"),
    Rule("UV020", "bind-mounted-lock", "note",
       "the dependency step bind-mounts uv.lock or pyproject.toml",
       "buildah (podman build; seen with buildah 1.28) leaves bind-mount contents out of "
       "its layer cache key: after uv.lock changes it reuses the old dependency layer. "
       "BuildKit is not affected.",
       "COPY uv.lock and pyproject.toml before the dependency `uv sync` instead"),
)}

_TRUE = {"1", "true", "yes", "on"}
_ROOT_SOURCES = {".", "./", "*", "./*"}


# ---------------------------------------------------------------------- shell commands
@dataclass(frozen=True)
class Cmd:
    """One simple command of a RUN: its words, inline and exported variables, position."""

    words: tuple[str, ...]
    env: Mapping[str, str]
    last: bool  # nothing runs after it in the same RUN

    def opt(self, *names: str) -> str | None:
        """The value of the first option among ``names`` (``--x=v`` or ``--x v``), "" for
        a flag, None when absent."""
        for i, w in enumerate(self.words):
            for n in names:
                if w == n:
                    nxt = self.words[i + 1] if i + 1 < len(self.words) else ""
                    return "" if nxt.startswith("-") else nxt
                if w.startswith(n + "="):
                    return w.split("=", 1)[1]
        return None

    def values(self, name: str) -> list[str]:
        """Every value of a repeatable option (`--package a --package=b`)."""
        w = self.words
        return [w[i + 1] if x == name else x.split("=", 1)[1] for i, x in enumerate(w)
                if (x == name and i + 1 < len(w)) or x.startswith(name + "=")]

    def has(self, *names: str) -> bool:
        return self.opt(*names) is not None

    def true(self, var: str) -> bool:
        return self.env.get(var, "").lower() in _TRUE

    @property
    def uv(self) -> tuple[str, ...]:
        """The uv subcommand and what follows (`("sync", "--locked")`), () if not uv."""
        w = list(self.words)
        if len(w) > 2 and os.path.basename(w[0]).startswith("python") and w[1:3] == ["-m", "uv"]:
            w = w[2:]
        if not w or os.path.basename(w[0]) != "uv":
            return ()
        for i, x in enumerate(w[1:], 1):
            if not x.startswith("-") and x in ("sync", "pip", "venv", "run", "python", "export",
                                                "lock", "tool", "build", "add", "install"):
                return tuple(w[i:])
        return ()

    @property
    def installs(self) -> bool:
        """uv sync, or uv pip install/sync: it writes packages into an environment."""
        u = self.uv
        return u[:1] == ("sync",) or u[:2] in (("pip", "install"), ("pip", "sync"))

    @property
    def pip_install(self) -> bool:
        w = self.words
        base = os.path.basename(w[0]) if w else ""
        return (re.fullmatch(r"pip[\d.]*", base) is not None and "install" in w[1:2]) or (
            base.startswith("python") and w[1:4] == ("-m", "pip", "install"))


def commands(inst: Instruction) -> list[Cmd]:
    """The simple commands of a RUN, split on `&&`, `||`, `;`, `|` and newlines."""
    try:
        tokens = shell_split(inst.script, operators=True)
    except ValueError:  # unbalanced quotes: fall back to words
        tokens = inst.script.replace("\n", " \n ").split(" ")
    groups: list[list[str]] = [[]]
    comment = False
    for t in tokens:
        if t == "\n" or (t and set(t) <= set(";&|()\n") and not comment):
            comment = False  # a comment ends with its line
            groups.append([])
        elif comment or t.startswith("#"):  # a word starting with # starts a comment
            comment = True
        elif t and set(t) <= set("<>"):
            groups[-1].append("\0redirect")
        else:
            groups[-1].append(t)
    env = dict(inst.env)
    out = []
    for g in groups:
        words = [w for i, w in enumerate(g) if w != "\0redirect"
                 and (i == 0 or g[i - 1] != "\0redirect")]
        while words and words[0] in ("then", "do", "else", "if", "!", "{", "}", "exec", "env",
                                     "time", "sudo"):
            words = words[1:]
        inline = {}
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
            k, _, v = words.pop(0).partition("=")
            inline[k] = expand(v, env)
        if words[:1] == ["export"]:
            for w in words[1:]:
                k, eq, v = w.partition("=")
                if eq:
                    env[k] = expand(v, env)
            continue
        if words:
            out.append(Cmd(tuple(expand(w, env) for w in words), {**env, **inline}, False))
    if out:
        out[-1] = Cmd(out[-1].words, out[-1].env, True)
    return out


# ---------------------------------------------------------------------- Dockerfile checks
def check_dockerfile(df: Dockerfile, context: Path, ignore: IgnoreFile | None) -> list[Finding]:
    found: list[Finding] = []

    def add(rule: str, line: int, message: str, level: str | None = None,
            fix: str | None = None) -> None:
        r = RULES[rule]
        found.append(Finding(r, df.path, line, f"{message}: {r.why}", level or r.level,
                             fix or r.fix))

    shipped = {s.index for s in df.shipped()}
    runs = [(s, i, commands(i)) for s in df.stages for i in s.instructions if i.cmd == "RUN"]
    _check_context_copies(df, context, ignore, add)
    _check_images(df, add)
    for stage, inst, cmds in runs:
        mounts = inst.mounts()
        caches = [m for m in mounts if m.get("type") == "cache"]
        relative = [t for m in mounts if m.get("type") in ("bind", "cache")
                    and (t := m.get("target") or m.get("dst") or m.get("destination"))
                    and not t.startswith("/")]
        if relative:
            absolute = ", ".join(f"`target={PurePosixPath(inst.workdir, t)}`" for t in relative)
            add("UV019", inst.line, f"relative --mount target: {', '.join(relative)} "
                f"(WORKDIR {inst.workdir})", fix=f"write the target as an absolute path: "
                f"{absolute}")
        for c in cmds:
            if c.words[0] in (".", "source") and c.words[-1].endswith("activate") and c.last:
                add("UV003", inst.line, f"`{' '.join(c.words)}` is the last command of its RUN")
            if re.search(r"astral\.sh/uv/install\.sh", " ".join(c.words)):
                add("UV006", inst.line, "the uv installer script is fetched without a version")
            if c.pip_install and "uv" in c.words:
                add("UV006", inst.line, "`pip install uv` without a version")
            if not c.installs:
                continue
            u = c.uv
            sync = u[0] == "sync"
            what = "uv " + " ".join(u[:2]) if not sync else "uv sync"
            if sync and not (c.has("--locked", "--frozen") or c.true("UV_LOCKED")
                             or c.true("UV_FROZEN")):
                add("UV004", inst.line, "`uv sync` runs without --locked or --frozen")
            if caches and (c.opt("--link-mode") or c.env.get("UV_LINK_MODE", "")) != "copy":
                add("UV009", inst.line, f"`{what}` uses a cache mount and links from it")
            if not caches and not (c.has("--no-cache", "-n") or c.true("UV_NO_CACHE")):
                add("UV010", inst.line, f"`{what}` writes its cache into the layer")
            if sync and any(m.get("type") == "bind" and "from" not in m and
                            PurePosixPath(m.get("source", "")).name in ("uv.lock",
                                                                       "pyproject.toml")
                            for m in mounts):
                add("UV020", inst.line, "uv.lock or pyproject.toml is bind-mounted")
            if stage.index not in shipped:
                continue
            if sync and _installs_dev(c, dev := dev_group(context, c.values("--package"),
                                                          c.has("--all-packages"))):
                where = f" (of {', '.join(map(str, dev.declared_in))})" if dev is not None \
                    else ""
                add("UV014", inst.line, f"`uv sync` installs the dev group{where} in a shipped "
                    "stage")
            if not (c.has("--compile-bytecode") or c.true("UV_COMPILE_BYTECODE")):
                add("UV015", inst.line, f"`{what}` in a shipped stage does not compile bytecode")
    _check_layers(df, ignore, add)
    _check_final(df, add)
    _check_venv_pip(runs, add)
    return _dedupe(found)


def _dedupe(found: list[Finding]) -> list[Finding]:
    return list({(f.rule.id, f.path, f.line): f for f in found}.values())


def _installs_dev(c: Cmd, dev: DevGroup | None) -> bool:
    """Whether the sync installs a dev group: asked for, or by default; ``dev`` says what
    the project declares (None: unknown, so assume it has one, installed by default)."""
    if dev is not None and not dev.declared_in:
        return False
    if c.has("--only-dev", "--all-groups") or "dev" in c.values("--group"):
        return True
    return (dev is None or dev.default) and not (
        c.has("--no-dev", "--no-default-groups", "--only-group") or "dev" in c.values("--no-group")
        or c.true("UV_NO_DEV") or c.true("UV_NO_DEFAULT_GROUPS"))


def _excluded(ignore: IgnoreFile | None, rel: str) -> bool:
    return ignore is not None and ignore.excludes(rel)


def _check_context_copies(df: Dockerfile, context: Path, ignore: IgnoreFile | None,
                          add) -> None:
    where = f"{ignore.path}" if ignore else f"no .dockerignore in the context {context}"
    for s in df.stages:
        for inst in s.instructions:
            if inst.cmd not in ("COPY", "ADD") or inst.flag("from"):
                continue
            srcs = inst.sources
            if any(PurePosixPath(x).name == ".env" for x in srcs):
                add("UV012", inst.line, f"{inst.cmd} names .env")
            if not any(x in _ROOT_SOURCES for x in srcs):
                continue
            if not _excluded(ignore, ".venv"):
                add("UV001", inst.line, f"{inst.cmd} copies the context and .venv is not "
                    f"excluded ({where})")
            if not _excluded(ignore, ".git"):
                add("UV016", inst.line, f"{inst.cmd} copies the context and .git is not "
                    f"excluded ({where})")
            if not _excluded(ignore, ".env"):
                present = (context / ".env").exists()
                add("UV012", inst.line, f"{inst.cmd} copies the context and .env is not "
                    f"excluded ({where}){'' if present else '; no .env exists yet'}",
                    None if present else "warning")


def _uv_image(ref: str) -> bool:
    repo = re.sub(r"@.*$", "", ref)
    repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
    return repo.rsplit("/", 1)[-1] == "uv"


def _floats(ref: str) -> tuple[str, str] | None:
    """For a uv image whose uv version is not fixed: what its tag says, and the reference
    with a uv version put in (the Python and distro of the tag kept). None when the tag
    starts with an X.Y.Z version, or for a digest or a build argument we cannot see."""
    if "@sha256:" in ref or "$" in ref:
        return None
    repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    if re.match(r"\d+\.\d+\.\d+(-|$)", tag):
        return None
    minor = re.match(r"(\d+\.\d+)(?:-|$)", tag)
    rest = tag[minor.end():] if minor else "" if tag in ("", "latest") else tag
    pinned = f"{repo}:{UV_EXAMPLE}" + (f"-{rest}" if rest else "")
    if not tag or tag == "latest":
        said = "its tag `latest`" if tag else "with no tag it is `latest`, which"
        return f"{said} names no uv version, so uv's version floats", pinned
    if minor:
        return f"its tag names uv {minor[1]}, so uv's patch version floats", pinned
    python = re.match(r"python[\d.]*", tag)
    what = ("a distro" if not python else "a Python" if python.end() == len(tag)
            else "a Python and a distro")
    return f"its tag names {what}, not a uv version, so uv's version floats", pinned


def _check_images(df: Dockerfile, add) -> None:
    """UV006 for each uv image (FROM, COPY --from, RUN --mount=from) without a uv version;
    the fix is the same instruction with a version in the tag."""
    refs: list[tuple[int, str, str]] = []  # line, reference, the instruction's text
    for s in df.stages:
        if s.parent is None:
            refs.append((s.line, s.base, f"FROM {s.base}" + (f" AS {s.name}" if s.name else "")))
        for inst in s.instructions:
            if inst.cmd in ("COPY", "ADD"):
                flags = " ".join(f"--{k}={v}" if v else f"--{k}" for k, v in inst.flags)
                refs += [(inst.line, r, f"{inst.cmd} {flags} {inst.args}")
                         for r in inst.flag("from")]
            elif inst.cmd == "RUN":
                refs += [(inst.line, m["from"], f"--mount={spec}") for m, spec in
                         zip(inst.mounts(), inst.flag("mount"), strict=True) if "from" in m]
    for line, ref, text in refs:
        if df.stage(ref) is None and _uv_image(ref) and (floating := _floats(ref)):
            said, pinned = floating
            add("UV006", line, f"the uv image {ref!r}: {said}",
                fix=f"put a uv version in the tag, e.g. `{text.replace(ref, pinned, 1)}`")


def _is_source_copy(inst: Instruction, ignore: IgnoreFile | None) -> bool:
    """A COPY/ADD from the context of more than the lock and manifests."""
    if inst.cmd not in ("COPY", "ADD") or inst.flag("from"):
        return False
    manifest = re.compile(r"(.*/)?(uv\.lock|pyproject\.toml|\.python-version|README.*)")
    return any(not manifest.fullmatch(x.removeprefix("./")) for x in inst.sources)


def _check_layers(df: Dockerfile, ignore: IgnoreFile | None, add) -> None:
    """UV005 (code before dependencies), UV013 (no uv.lock) and UV007 (editable shipped)."""
    state: dict[int, tuple[bool, bool, bool]] = {}  # stage -> deps done, source in, lock in
    editable: dict[int, list[str]] = {}  # stage -> workdirs of editable installs
    for s in df.stages:
        deps, source, lock = state.get(s.parent.index, (False, False, False)) if s.parent \
            else (False, False, False)
        editable[s.index] = list(editable.get(s.parent.index, [])) if s.parent else []
        for inst in s.instructions:
            if inst.cmd in ("COPY", "ADD"):
                if inst.flag("from") and df.stage(inst.flag("from")[0]) is not None:
                    lock = True  # files from another stage: assume they include what it had
                srcs = [] if inst.flag("from") else inst.sources
                source = source or _is_source_copy(inst, ignore)
                lock = lock or any(PurePosixPath(x).name == "uv.lock" or (
                    x in _ROOT_SOURCES and not _excluded(ignore, "uv.lock")) for x in srcs)
            if inst.cmd != "RUN":
                continue
            binds = [m for m in inst.mounts() if m.get("type") == "bind" and "from" not in m]
            here_src = any(m.get("source", ".").strip("/") in ("", ".") for m in binds)
            here_lock = here_src or any(PurePosixPath(m.get("source", "")).name == "uv.lock"
                                        for m in binds)
            for c in commands(inst):
                if not c.uv[:1] == ("sync",):
                    continue
                project = not c.has("--no-install-project", "--no-install-workspace",
                                    "--only-dev", "--only-group") and not (
                    c.true("UV_NO_INSTALL_PROJECT") or c.true("UV_NO_INSTALL_WORKSPACE"))
                if not (lock or here_lock):
                    add("UV013", inst.line, "`uv sync` runs with no uv.lock copied or mounted")
                if project and (source or here_src) and not deps:
                    add("UV005", inst.line, "the project and its dependencies are synced in "
                        "one step after the source was copied")
                if project and not (c.has("--no-editable") or c.true("UV_NO_EDITABLE")):
                    editable[s.index].append(inst.workdir)
                deps = deps or not project
        state[s.index] = (deps, source, lock)
    final = df.final
    copies: dict[int, list[Instruction]] = {}  # stage -> the final stage's COPYs from it
    for inst in final.instructions:
        src = df.stage(inst.flag("from")[0]) if inst.cmd == "COPY" and inst.flag("from") \
            else None
        if src is not None and src is not final and editable.get(src.index):
            copies.setdefault(src.index, []).append(inst)
    for index, insts in copies.items():
        # Copying the source directory too (in any COPY) keeps the editable install working.
        copied = [PurePosixPath("/", c) for i in insts for c in i.sources]
        if not all(any(PurePosixPath(wd).is_relative_to(c) for c in copied)
                   for wd in editable[index]):
            src = df.stages[index]
            at = next((i for i in insts if any("venv" in c for c in i.sources)), insts[0])
            add("UV007", at.line, f"the venv copied from stage {src.name or index!r} "
                "holds an editable install of the project")


def _holds_python(df: Dockerfile) -> bool:
    """Whether the image has Python in it: a stage that reaches it is built on a Python or
    uv image, copies uv in, or runs uv, pip or Python, or installs Python packages."""
    for s in df.shipped():
        if _python_image(s.chain()[0].base):
            return True
        for inst in s.instructions:
            if inst.cmd in ("COPY", "ADD") and any(_uv_image(r) for r in inst.flag("from")):
                return True
            if inst.cmd == "RUN" and any(_runs_python(c) for c in commands(inst)):
                return True
    return False


def _python_image(ref: str) -> bool:
    name = re.sub(r"[:@].*$", "", ref.rsplit("/", 1)[-1])
    return _uv_image(ref) or re.match(r"(python|pypy)", name) is not None


def _runs_python(c: Cmd) -> bool:
    tool = os.path.basename(c.words[0])
    if re.fullmatch(r"(python|pypy|pip)[\d.]*|uvx?|virtualenv|pipx|poetry|pdm|conda", tool):
        return True
    return tool in ("apt-get", "apt", "apk", "dnf", "yum", "microdnf") and any(
        w.startswith(("python", "pypy")) for w in c.words[2:])


def _check_final(df: Dockerfile, add) -> None:
    final = df.final
    users = [i for i in final.chain_instructions() if i.cmd == "USER"]
    root_base = final.chain()[0].base
    if "nonroot" in root_base or not _holds_python(df):
        return  # nonroot by name; or not a Python image: not ours to judge
    if not users:
        add("UV011", final.line, "the final stage sets no USER")
    elif expand(users[-1].args, users[-1].env).split(":")[0].strip() in ("root", "0"):
        add("UV011", users[-1].line, "the final stage's USER is root")


def _check_venv_pip(runs, add) -> None:
    venvs = [(i, c) for _, i, cmds in runs for c in cmds
             if (c.words[1:3] == ("-m", "venv") and os.path.basename(c.words[0]).startswith(
                 "python"))
             or os.path.basename(c.words[0]) == "virtualenv"]
    pips = any(c.pip_install for _, _, cmds in runs for c in cmds)
    for inst, c in venvs:
        if pips:
            add("UV008", inst.line, f"`{' '.join(c.words[:3])}` then pip install")


# ---------------------------------------------------------------------- compose checks
def check_compose(compose: Compose) -> list[Finding]:
    found: list[Finding] = []

    def add(rule: str, line: int, message: str, fix: str | None = None) -> None:
        r = RULES[rule]
        found.append(Finding(r, compose.path, line, f"{message}: {r.why}", r.level,
                             fix or r.fix))

    for svc in compose.services:
        context = svc.context or compose.path.parent
        df = None
        if svc.dockerfile is not None and svc.dockerfile.is_file():
            df = parse_dockerfile(svc.dockerfile)
        venvs = _venvs(df, svc) if df is not None else {}
        for v in (v for v in svc.volumes if v.type == "bind"):
            # Only a mount over the venv, or a directory holding it, hides it; a socket,
            # a config file or a reports directory beside it does not.
            for venv, line in venvs.items():
                kept = any(o.type != "bind" and PurePosixPath(o.target) == venv
                           for o in svc.volumes)
                if venv.is_relative_to(v.target) and not kept:
                    add("UV002", v.line, f"service {svc.name}: {v.source} is mounted on "
                        f"{v.target}, over the venv at {venv} (made by `uv sync` at "
                        f"{df.path}:{line}), with no volume for it",
                        f"add `- {venv}` to the service's volumes (a volume keeps the image's "
                        f"venv visible), or move the venv out of {v.target} with "
                        "UV_PROJECT_ENVIRONMENT")
                    break
        syncs = [w for w in svc.watch if w.action.startswith("sync")]
        ignore = ignore_file_for(svc.dockerfile, context) if svc.dockerfile else None
        for w in syncs:
            host = (compose.path.parent / w.path).resolve()
            project = host == context.resolve() or (host / "pyproject.toml").is_file()
            ignored = any(re.sub(r"^(\./|/)|/(\*\*)?$", "", i) in (".venv", "**/.venv")
                          for i in w.ignore) or _excluded(ignore, ".venv")
            if project and not ignored:
                add("UV017", w.line, f"service {svc.name}: `{w.action}` of {w.path} "
                    "does not ignore .venv/")
        rebuilt = [(compose.path.parent / w.path).resolve() for w in svc.watch
                   if w.action == "rebuild"]
        # Every dependency change reaches uv.lock (an image built --locked needs it to), so a
        # rebuild on uv.lock is what matters; pyproject.toml too is better.
        lock = (context / "uv.lock").resolve()
        if syncs and not any(lock.is_relative_to(r) for r in rebuilt):
            add("UV018", syncs[0].line, f"service {svc.name}: no rebuild when uv.lock changes")
    return found


def _venvs(df: Dockerfile, svc: Service) -> dict[PurePosixPath, int]:
    """The venvs `uv sync` makes in the stages that reach the service's image (its build
    target, else the final stage), each with the line of the sync: UV_PROJECT_ENVIRONMENT
    (VIRTUAL_ENV with --active), else .venv in the project directory. Empty: no uv project
    is installed in that image."""
    stage = (df.stage(svc.target) if svc.target else None) or df.final
    out: dict[PurePosixPath, int] = {}
    for s in df.shipped(stage):
        for inst in (i for i in s.instructions if i.cmd == "RUN"):
            for c in (c for c in commands(inst) if c.uv[:1] == ("sync",)):
                project = PurePosixPath(inst.workdir, c.opt("--project", "--directory") or ".")
                env = c.env.get("UV_PROJECT_ENVIRONMENT") or (
                    c.env.get("VIRTUAL_ENV") if c.has("--active") else None)
                out.setdefault(PurePosixPath(project, env or ".venv"), inst.line)
    return out
