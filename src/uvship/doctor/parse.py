"""`uvship doctor`'s reader: Dockerfiles, .dockerignore and compose files as values.

The Dockerfile reader follows BuildKit's grammar where it matters for the checks: parser
directives (`# escape=`), line continuations (comment and blank lines inside them dropped),
heredocs, JSON (exec) and shell forms, flags, stages, and ARG/ENV values with `$VAR`
substitution. It imports nothing of the doctor: the checks (rules.py) read what it
returns, and report.py runs both over a tree.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml  # PyYAML: compose files are full YAML (anchors, flow style, block scalars)
from packaging.utils import canonicalize_name

from .._glob import IgnoreFile, glob_pattern
from ..errors import InputError

INSTRUCTIONS = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
                "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
                "WORKDIR"}
_DIRECTIVE = re.compile(r"#\s*(syntax|escape|check)\s*=\s*(.*?)\s*$", re.IGNORECASE)
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
_FLAG = re.compile(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(\S*))?(?:\s+|$)")
_VAR = re.compile(r"\$(?:\{([A-Za-z_]\w*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_]\w*))")
_EXEC_FORM = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"}


# One regex pass over shell text (linear: shlex builds each token a character at a time,
# quadratic in a long line): whitespace, operators, quoted strings, escapes, plain runs.
_SHELL = {ops: re.compile(
    rf"""(?P<ws>[ \t\r{'' if ops else chr(10)}]+)"""
    + (rf"|(?P<op>[{re.escape(ops)}]+)" if ops else "")
    + r"""|'(?P<sq>[^']*)'|"(?P<dq>[^"\\]*(?:\\.[^"\\]*)*)"|\\(?P<esc>.)"""
    + rf"""|(?P<word>[^ \t\r{re.escape(ops) if ops else chr(10)}'"\\]+)|(?P<bad>['"\\])""",
    re.S) for ops in ("", ";&|()<>\n")}
_DQ_ESCAPE = re.compile(r'\\([\\"$`\n])')


def shell_split(text: str, operators: bool = False) -> list[str]:
    """Words as a POSIX shell splits ``text``: quotes removed, backslashes applied, a
    backslash-newline joining lines. With ``operators``, each run of `;&|()<>` and newlines
    is a token of its own (a word separator). ValueError for an unclosed quote."""
    rx = _SHELL[";&|()<>\n" if operators else ""]
    out: list[str] = []
    word: list[str] | None = None
    for m in rx.finditer(text):
        kind = m.lastgroup
        if kind == "ws" or kind == "op":
            if word is not None:
                out.append("".join(word))
                word = None
            if kind == "op":
                out.append(m["op"])
            continue
        if kind == "bad":
            raise ValueError("No closing quotation")
        word = [] if word is None else word
        if kind == "sq":
            word.append(m["sq"])
        elif kind == "dq":
            word.append(_DQ_ESCAPE.sub(lambda e: "" if e[1] == "\n" else e[1], m["dq"]))
        elif kind == "esc":
            if m["esc"] != "\n":  # a backslash-newline joins the lines
                word.append(m["esc"])
            elif not word:
                word = None
        else:
            word.append(m["word"])
    if word is not None:
        out.append("".join(word))
    return out


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` as BuildKit substitutes them;
    an unknown variable is left as written (its value is not knowable here)."""
    def sub(m: re.Match[str]) -> str:
        name = m[1] or m[4]
        value, op, word = env.get(name), m[2], m[3] or ""
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else word
        if op in (":+", "+"):
            return word if value or (op == "+" and value is not None) else ""
        return value if value is not None else m[0]
    return _VAR.sub(sub, text)


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword, first line, flags, arguments and the state before it."""

    cmd: str
    line: int
    args: str  # after the flags, as written (variables not substituted)
    flags: tuple[tuple[str, str], ...] = ()
    exec_form: tuple[str, ...] | None = None
    heredocs: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # ARG and ENV values in effect
    workdir: str = "/"

    def flag(self, name: str) -> list[str]:
        return [expand(v, self.env) for k, v in self.flags if k == name]

    @property
    def script(self) -> str:
        """What a RUN runs, as shell text (heredoc bodies included)."""
        if self.exec_form is not None:
            return shlex.join(self.exec_form)
        return "\n".join([self.args, *self.heredocs])

    @property
    def words(self) -> list[str]:
        """The arguments split as the shell would, variables substituted."""
        if self.exec_form is not None:
            return [expand(w, self.env) for w in self.exec_form]
        try:
            return [expand(w, self.env) for w in shell_split(self.args)]
        except ValueError:
            return [expand(w, self.env) for w in self.args.split()]

    @property
    def sources(self) -> list[str]:
        """What a COPY or ADD copies: every word but the destination."""
        words = self.words
        return words[:-1] if len(words) > 1 else []

    def mounts(self) -> list[dict[str, str]]:
        """`RUN --mount=...` options as dicts (type defaults to bind, as in BuildKit)."""
        out = []
        for spec in self.flag("mount"):
            opts: dict[str, str] = {"type": "bind"}
            for part in spec.split(","):
                k, _, v = part.partition("=")
                opts[k.strip().lower()] = v.strip()
            out.append(opts)
        return out


@dataclass
class Stage:
    index: int
    name: str | None
    base: str  # image reference (substituted) or an earlier stage's name
    line: int
    parent: Stage | None
    instructions: list[Instruction] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)  # ENV values at its end
    workdir: str = "/"  # WORKDIR at its end

    def chain(self) -> list[Stage]:
        """This stage and the stages it is built FROM, oldest first."""
        return [*(self.parent.chain() if self.parent else []), self]

    def chain_instructions(self) -> list[Instruction]:
        return [i for s in self.chain() for i in s.instructions]


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]
    directives: dict[str, str]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, ref: str) -> Stage | None:
        """The stage a `--from=` or FROM names (by name or index), None for an image."""
        for s in self.stages:
            if (s.name and s.name == ref.lower()) or str(s.index) == ref:
                return s
        return None

    def shipped(self, target: Stage | None = None) -> list[Stage]:
        """Stages whose files can reach ``target`` (default: the final stage)."""
        seen: dict[int, Stage] = {}
        todo = [target or self.final]
        while todo:
            s = todo.pop()
            if s.index in seen:
                continue
            seen[s.index] = s
            todo.extend(s.chain())
            for i in s.instructions:
                refs = i.flag("from") if i.cmd in ("COPY", "ADD") else []
                refs += [m["from"] for m in i.mounts() if "from" in m] if i.cmd == "RUN" else []
                todo.extend(st for r in refs if (st := self.stage(r)) is not None)
        return [seen[k] for k in sorted(seen)]


def _logical_lines(path: Path, lines: list[str], start: int, escape: str):
    """(first line number, text, heredoc bodies) for each instruction."""
    cont = re.compile(re.escape(escape) + r"[ \t]*$")
    i = start
    while i < len(lines):
        raw = lines[i]
        if not raw.strip() or raw.lstrip().startswith("#"):
            i += 1
            continue
        first, parts = i + 1, []
        while True:
            m = cont.search(raw)
            if not m:
                parts.append(raw)
                i += 1
                break
            parts.append(raw[:m.start()])
            i += 1
            # Comment and blank lines inside a continuation are dropped (BuildKit does).
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
            if i >= len(lines):
                break
            raw = lines[i]
        text = "".join(parts).strip()
        bodies = []
        word = text.split(None, 1)[0].upper()
        if word in ("RUN", "COPY", "ADD"):
            for strip_tabs, _q, name in _HEREDOC.findall(text):
                body = []
                while True:
                    if i >= len(lines):
                        raise InputError(f"{path}:{first}: heredoc <<{name} is never closed "
                                         f"(expected a line holding only {name})")
                    ln = lines[i].lstrip("\t") if strip_tabs else lines[i]
                    i += 1
                    if ln.rstrip() == name:
                        break
                    body.append(ln)
                bodies.append("\n".join(body))
        yield first, text, tuple(bodies)


def _pairs(args: str, env: Mapping[str, str], legacy_ok: bool) -> list[tuple[str, str | None]]:
    """`KEY=VALUE ...` (or the legacy `KEY VALUE`) of ENV, ARG and LABEL."""
    try:
        words = shell_split(args)
    except ValueError:
        words = args.split()
    if legacy_ok and words and "=" not in words[0]:
        return [(words[0], expand(args.split(None, 1)[1].strip() if len(words) > 1 else "", env))]
    out: list[tuple[str, str | None]] = []
    for w in words:
        k, eq, v = w.partition("=")
        out.append((k, expand(v, env) if eq else None))
    return out


def parse_dockerfile(path: Path) -> Dockerfile:
    """Read a Dockerfile; anything BuildKit would refuse to parse is an InputError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (expected a Dockerfile)") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory (expected a Dockerfile)") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (expected a Dockerfile)") from None
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    directives, start = {}, 0
    while start < len(lines) and (m := _DIRECTIVE.match(lines[start])):
        directives[m[1].lower()] = m[2]
        start += 1
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise InputError(f"{path}:{start}: escape={escape!r} (expected \\ or `)")
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    args: dict[str, str] = {}
    envs: dict[str, str] = {}
    workdir = "/"
    for line, text, bodies in _logical_lines(path, lines, start, escape):
        word, _, rest = text.partition(" ")
        cmd, rest = word.upper(), rest.strip()
        if cmd not in INSTRUCTIONS:
            raise InputError(f"{path}:{line}: unknown instruction {word!r} (expected one of "
                             "FROM, RUN, COPY, ENV, ...)", hint="is this a Dockerfile?")
        flags = []
        while cmd in ("FROM", "RUN", "COPY", "ADD", "HEALTHCHECK") and (m := _FLAG.match(rest)):
            flags.append((m[1].lower(), m[2] or ""))
            rest = rest[m.end():]
        exec_form = None
        if cmd in _EXEC_FORM and rest.startswith("["):
            try:
                value = json.loads(rest)
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    exec_form = tuple(value)
            except json.JSONDecodeError:
                pass  # BuildKit falls back to the shell form
        if cmd == "FROM":
            words = rest.split()
            if not words:
                raise InputError(f"{path}:{line}: FROM without an image")
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            base = expand(words[0], global_args)
            parent = next((s for s in stages if s.name == base.lower()), None)
            stages.append(Stage(len(stages), name, base, line, parent))
            args = {}
            # ENV and WORKDIR carry over to a stage built FROM another; ARG values do not.
            envs = dict(parent.envs) if parent else {}
            workdir = parent.workdir if parent else "/"
            stages[-1].envs, stages[-1].workdir = envs, workdir
            continue
        if not stages:
            if cmd != "ARG":
                raise InputError(f"{path}:{line}: {cmd} before any FROM (expected FROM first; "
                                 "only ARG may precede it)")
            global_args.update({k: v or "" for k, v in _pairs(rest, global_args, False)})
            continue
        inst = Instruction(cmd, line, rest, tuple(flags), exec_form, bodies,
                           {**args, **envs}, workdir)
        stages[-1].instructions.append(inst)
        if cmd == "ARG":
            for k, v in _pairs(rest, {**args, **envs}, False):
                args[k] = v if v is not None else global_args.get(k, "")
        elif cmd == "ENV":
            for k, v in _pairs(rest, {**args, **envs}, True):
                envs[k] = v or ""
        elif cmd == "WORKDIR":
            wd = expand(rest, {**args, **envs}).strip().strip("\"'")
            workdir = stages[-1].workdir = str(PurePosixPath(workdir, wd))
    if not stages:
        raise InputError(f"{path}: no FROM instruction (expected a Dockerfile with a stage)")
    return Dockerfile(path, stages, directives)


# ---------------------------------------------------------------------- build contexts
def ignore_file_for(dockerfile: Path, context: Path) -> IgnoreFile | None:
    """The ignore file a build uses: `<Dockerfile>.dockerignore` beside it, else the
    context's .dockerignore (BuildKit's and podman's order)."""
    for p in (dockerfile.with_name(dockerfile.name + ".dockerignore"),
              context / ".dockerignore", context / ".containerignore"):
        if p.is_file():
            return IgnoreFile.read(p)
    return None


def build_context(df: Dockerfile, root: Path) -> Path:
    """The context a Dockerfile that no compose file builds is built from, as `docker build
    -f DIR/Dockerfile CONTEXT` would be run: the nearest directory at or above the
    Dockerfile that holds every file it copies or bind-mounts by name; else the nearest
    holding uv.lock or a uv workspace's root pyproject.toml (where `COPY uv.lock` is read
    from); else the Dockerfile's own directory. The search stops at ``root``, the directory
    doctor was pointed at, or at the root of the uv workspace that ``root`` is a member of."""
    named = {n for s in df.stages for i in s.instructions for n in _named_sources(i)}
    dirs = _context_candidates(df.path.parent, root)
    if named:
        for d in dirs:
            if all((d / n).exists() for n in named):
                return d
    for d in dirs:
        if (d / "uv.lock").is_file() or _workspace_root(d) is not None:
            return d
    return df.path.parent


def _named_sources(inst: Instruction) -> list[str]:
    """Context paths an instruction names literally (no glob, variable, URL or heredoc)."""
    if inst.cmd in ("COPY", "ADD") and not inst.flag("from"):
        names = inst.sources
    elif inst.cmd == "RUN":
        names = [m.get("source", "") for m in inst.mounts()
                 if m.get("type") == "bind" and "from" not in m]
    else:
        return []
    names = [n.removeprefix("./").strip("/") for n in names]
    return [n for n in names if n not in ("", ".") and not re.search(r"[*?\[$]|^<<|://|^git@", n)]


def _context_candidates(here: Path, root: Path) -> list[Path]:
    """``here`` and the directories above it up to ``root`` (as paths relative to ``here``
    when it is relative, so that what is shown reads like the paths given), and on up to
    the root of a uv workspace that lists ``root`` among its members."""
    chain = [Path(os.path.abspath(here)), *Path(os.path.abspath(here)).parents]
    top = Path(os.path.abspath(root))
    if top not in chain:  # a Dockerfile outside root (a compose file names it)
        return [here]
    last = chain.index(top)
    for i in range(last + 1, len(chain)):
        if (workspace := _workspace_root(chain[i])) is not None:
            if _is_member(top.relative_to(chain[i]).as_posix(), workspace):
                last = i
            break  # uv stops at the first workspace root above a project, and so do we
    return [Path(os.path.normpath(os.path.join(here, *[".."] * k))) for k in range(last + 1)]


def _workspace_root(d: Path) -> dict | None:
    """`[tool.uv.workspace]` of the pyproject.toml in ``d``, None when it declares none."""
    ws = _toml(d / "pyproject.toml").get("tool", {}).get("uv", {}).get("workspace")
    return ws if isinstance(ws, dict) else None


def _is_member(rel: str, workspace: Mapping) -> bool:
    """Whether the directory ``rel`` (relative to the workspace root) or one above it is
    matched by `members` and not by `exclude`."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]

    def match(key: str) -> bool:
        globs = [g for g in workspace.get(key, []) if isinstance(g, str)]
        return any(re.fullmatch(glob_pattern(g.strip("/")), p) for g in globs for p in prefixes)
    return match("members") and not match("exclude")


def _toml(path: Path) -> dict:
    """A TOML file's tables; {} when it is missing or unreadable (uv reports those, not us)."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


@dataclass(frozen=True)
class DevGroup:
    """What the projects a `uv sync` installs declare of their `dev` dependency group:
    which pyproject.toml files have one (`[dependency-groups]` or the older
    `tool.uv.dev-dependencies`), and whether one of them installs it unless told not to
    (its `default-groups`)."""

    declared_in: tuple[Path, ...]
    default: bool


def dev_group(context: Path, packages: Iterable[str] = (),
              all_packages: bool = False) -> DevGroup | None:
    """The dev group of what `uv sync` (with ``packages`` for `--package`) installs from the
    uv project in ``context``, read as uv does: `--package` selects a member's groups and
    defaults, a bare sync the root project's (every member's for a virtual root). None when
    there is no pyproject.toml to read or a package is not a member: nothing is known."""
    root = _toml(context / "pyproject.toml")
    if not root:
        return None
    members: dict[str, tuple[Path, dict]] = {}
    ws = root.get("tool", {}).get("uv", {}).get("workspace")
    globs = ws.get("members", []) if isinstance(ws, dict) else []
    for g in (g.strip("/") for g in globs if isinstance(g, str) and g.strip("/")):
        for d in sorted(context.glob(g)):
            data = _toml(d / "pyproject.toml")
            name = data.get("project", {}).get("name")
            rel = d.relative_to(context).as_posix()
            if isinstance(name, str) and _is_member(rel, ws):
                members[canonicalize_name(name)] = (d / "pyproject.toml", data)
    wanted = [canonicalize_name(p) for p in packages]
    if any(p not in members for p in wanted):
        return None
    this = (context / "pyproject.toml", root)
    if wanted:
        chosen = [members[p] for p in wanted]
    elif all_packages or "project" not in root:
        chosen = [this, *members.values()]
    else:
        chosen = [this]
    with_dev = [(path, data) for path, data in chosen if _declares_dev(data)]
    return DevGroup(tuple(path for path, _ in with_dev),
                    any(_dev_by_default(data) for _, data in with_dev))


def _declares_dev(pyproject: Mapping) -> bool:
    return "dev" in pyproject.get("dependency-groups", {}) or bool(
        pyproject.get("tool", {}).get("uv", {}).get("dev-dependencies"))


def _dev_by_default(pyproject: Mapping) -> bool:
    groups = pyproject.get("tool", {}).get("uv", {}).get("default-groups", ["dev"])
    return groups == "all" or (isinstance(groups, list) and "dev" in groups)


# ---------------------------------------------------------------------- compose files
@dataclass(frozen=True)
class Volume:
    type: str  # bind | volume | tmpfs
    source: str | None
    target: str
    line: int


@dataclass(frozen=True)
class Watch:
    action: str
    path: str
    target: str | None
    ignore: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Service:
    name: str
    line: int
    context: Path | None  # None: no build section (an image only)
    dockerfile: Path | None
    target: str | None
    volumes: tuple[Volume, ...]
    watch: tuple[Watch, ...]


@dataclass(frozen=True)
class Compose:
    path: Path
    services: tuple[Service, ...]


def read_compose(path: Path) -> Compose:
    """The parts of a compose file the checks read, with the line of each."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8-sig"), Loader=yaml.SafeLoader)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (expected a compose file)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML "
                         f"({getattr(exc, 'problem', None) or exc})") from None
    top = _map(root)
    if root is None or not isinstance(root, yaml.MappingNode) or "services" not in top:
        raise InputError(f"{path}: no `services:` mapping (expected a compose file)")
    services = []
    for name, node in _map(top["services"]).items():
        s = _map(node)
        context = dockerfile = target = None
        if "build" in s:
            b = s["build"]
            bm = _map(b) if isinstance(b, yaml.MappingNode) else {"context": b}
            # Kept as written (not resolved) so that paths shown read like the ones given.
            context = Path(os.path.normpath(path.parent / (_str(bm.get("context")) or ".")))
            dockerfile = context / (_str(bm.get("dockerfile")) or "Dockerfile")
            target = _str(bm.get("target"))
        vols = tuple(v for n in _seq(s.get("volumes")) if (v := _volume(n)) is not None)
        watch = []
        for w in _seq(_map(s.get("develop")).get("watch")):
            wm = _map(w)
            watch.append(Watch(_str(wm.get("action")) or "", _str(wm.get("path")) or "",
                               _str(wm.get("target")),
                               tuple(_str(i) or "" for i in _seq(wm.get("ignore"))),
                               w.start_mark.line + 1))
        services.append(Service(name, node.start_mark.line + 1, context, dockerfile, target,
                                vols, tuple(watch)))
    return Compose(path, tuple(services))


def _map(node) -> dict:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _seq(node) -> list:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _str(node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _volume(node) -> Volume | None:
    line = node.start_mark.line + 1
    if (m := _map(node)):
        target = _str(m.get("target"))
        kind = _str(m.get("type")) or "volume"
        if not target:
            return None
        return Volume(kind, _str(m.get("source")), target, m["target"].start_mark.line + 1)
    spec = _str(node)
    if not spec:
        return None
    parts = spec.split(":")
    if len(parts) == 1:
        return Volume("volume", None, parts[0], line)  # anonymous volume
    source, target = parts[0], parts[1]
    kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
    return Volume(kind, source, target, line)


# ---------------------------------------------------------------------- the run
_DOCKERFILE = re.compile(r"(Dockerfile|Containerfile)(\..+)?|.+\.(Dockerfile|dockerfile)")
_COMPOSE = re.compile(r"(docker-)?compose(\.[\w.-]+)?\.ya?ml")
LOOKED_FOR = ("Dockerfile*", "Containerfile*", "*.Dockerfile", "compose*.y(a)ml",
              "docker-compose*.y(a)ml")  # what `find_files` looks for, as a user says it
SKIPPED = (".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox",
           ".mypy_cache", ".pytest_cache", ".ruff_cache")  # directories it never enters


def _kind(name: str) -> str | None:
    if _COMPOSE.fullmatch(name):
        return "compose"
    if _DOCKERFILE.fullmatch(name) and not name.endswith((".dockerignore", ".containerignore")):
        return "dockerfile"
    return None


def find_files(path: Path) -> list[tuple[str, Path]]:
    """(kind, path) of each Dockerfile and compose file at or under ``path`` (none: [])."""
    if path.is_file():
        return [(_kind(path.name) or "dockerfile", path)]
    if not path.is_dir():
        raise InputError(f"{path}: no such file or directory (expected a Dockerfile, a "
                         "compose file or a directory holding them)")
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED)
        found += [(k, Path(dirpath) / f) for f in sorted(filenames) if (k := _kind(f))]
    return found
