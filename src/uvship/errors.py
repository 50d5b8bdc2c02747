"""The one error type of uvship and its few kinds."""

from __future__ import annotations


class UvshipError(Exception):
    """A failure a user can act on: what was wrong with which input, and a hint.

    ``message`` names the input and says what was expected and what was found;
    ``hint`` (optional) says what to do about it. The CLI prints both, never a traceback.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(UvshipError):
    """A project, option, path or file given to uvship is not what it must be."""


class CommandError(UvshipError):
    """A subprocess (uv, patchelf, ...) failed; carries its command, exit code and stderr."""

    def __init__(
        self,
        message: str,
        *,
        command: list[str],
        returncode: int,
        stderr: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


class Cancelled(UvshipError):
    """The build was interrupted (Ctrl-C); nothing was written to the output."""
