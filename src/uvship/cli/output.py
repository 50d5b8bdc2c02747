"""What the command line shows: results on stdout, progress and errors on stderr, and
the one way every command turns a failure into an `error:` line and an exit code."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from ..errors import InputError, UvshipError


class _LazyConsole:
    """rich's Console on stderr, imported on first use (it costs ~60 ms to import)."""

    def __getattr__(self, name: str) -> Any:
        from rich.console import Console

        console = Console(stderr=True, highlight=False)
        globals()["_err"] = console
        return getattr(console, name)


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


_err: Any = _LazyConsole()


class RichProgress:
    """Each long step on stderr: a rich spinner on a terminal, then a line with its time.

    Off a terminal (CI, pipes) the lines are plain text and rich is never imported.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.quiet:
            yield
            return
        t0 = time.perf_counter()
        if self.tty:
            with _err.status(f"{escape(name)} ..."):
                yield
            _err.print(f"[green]✓[/] {escape(name)} [dim]({time.perf_counter() - t0:.2f}s)[/]")
        else:
            yield
            sys.stderr.write(f"✓ {name} ({time.perf_counter() - t0:.2f}s)\n")

    def note(self, message: str) -> None:
        if self.quiet:
            return
        if self.tty:
            _err.print(f"[dim]{escape(message)}[/]")
        else:
            sys.stderr.write(message + "\n")


def fail(exc: UvshipError) -> None:
    message = exc.for_command_line() if isinstance(exc, InputError) else exc.message
    if sys.stderr.isatty():
        _err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        if exc.hint:
            _err.print(f"[bold cyan]hint:[/] {escape(exc.hint)}", soft_wrap=True)
    else:
        sys.stderr.write(f"error: {message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
    sys.exit(1)


def emit(data: dict[str, Any], as_json: bool, text: str, err: bool = False) -> None:
    """The result on stdout; on stderr (``err``) when stdout carries an output itself."""
    stream = sys.stdout if as_json or not err else sys.stderr
    stream.write((json.dumps(data, indent=2, sort_keys=True) if as_json else text) + "\n")
    stream.flush()


def stdout_output(names: list[str], as_json: bool, what: str) -> bool:
    """Whether one of the outputs ``names`` is stdout; refuses two, and --json with one
    (its result would have to share stdout with the output's bytes)."""
    if len(names) > 1:
        raise InputError(f"--output {names[1]}: two outputs write to stdout "
                         f"({' and '.join(names)})", hint="give stdout to one of them")
    if names and as_json:
        raise InputError(f"--json: the result goes to stdout, which carries the {what} of "
                         f"--output {names[0]}",
                         hint="write the output to a file to get the JSON result, or leave "
                              "out --json: the result line then goes to stderr")
    return bool(names)


def warn(message: str, hint: str) -> None:
    if sys.stderr.isatty():
        _err.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)
        _err.print(f"[bold cyan]hint:[/] {escape(hint)}", soft_wrap=True)
    else:
        sys.stderr.write(f"warning: {message}\nhint: {hint}\n")


def size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


# --debug (or UVSHIP_DEBUG): errors show their traceback and causes too
_DEBUG = False


def set_debug(on: bool) -> None:
    global _DEBUG
    _DEBUG = on


@contextlib.contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        from ..cache import remove_own_temps

        remove_own_temps()
        sys.stderr.write("error: cancelled; nothing was written to the output\n")
        sys.exit(130)
    except UvshipError as exc:
        _debug_trace(exc)
        fail(exc)
    except OSError as exc:  # the machine said no: a full disk, a permission, a missing file
        from ..cache import remove_own_temps

        remove_own_temps()
        _debug_trace(exc)
        fail(_os_error(exc))
    except Exception as exc:
        from ..cache import remove_own_temps

        remove_own_temps()
        _debug_trace(exc)
        fail(UvshipError(
            f"uvship failed unexpectedly: {type(exc).__name__}: {exc}; nothing was written "
            "to the output",
            hint="this is a bug in uvship: please report it with the output of the same "
                 "command run with --debug"))


def _debug_trace(exc: BaseException) -> None:
    if _DEBUG:
        import traceback

        sys.stderr.write("".join(traceback.format_exception(exc)))


def _os_error(exc: OSError) -> UvshipError:
    """One line for an error of the machine, naming the file (or disk) and what it said."""
    import errno
    import shutil

    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        # copytree's list of every file that failed: the first says what happened
        first = exc.args[0][0] if exc.args[0] else ("?", "?", str(exc))
        src, dst, why = [*first, "", "", ""][:3]
        more = f" (and {len(exc.args[0]) - 1} more files)" if len(exc.args[0]) > 1 else ""
        if "No space left on device" in str(why):
            return UvshipError(f"{dst}: no space left on the device that holds it (copying "
                               f"{src}{more})", hint=_space_hint())
        return UvshipError(f"copying {src} to {dst}: {why}{more}")
    where = exc.filename or "uvship"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UvshipError(f"{where}: no space left on the device that holds it (expected room "
                           "to write it)", hint=_space_hint())
    return UvshipError(f"{where}: {exc.strerror or exc}")


def _space_hint() -> str:
    from ..cache import cache_root

    return (f"free space on that disk; uvship's cache is at {cache_root()} (move it with "
            "UVSHIP_CACHE_DIR), the outputs are where -o says")
