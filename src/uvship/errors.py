"""The one error type of uvship and its few kinds."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class Option:
    """An input given as a build option: its name as the API spells it (``base``,
    ``output``, ``platform``) and its value. Library messages name it so (``base
    oci:lay: ...``); the command line shows its flag instead (``--base oci:lay: ...``)."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name} {self.value}"

    @property
    def flag(self) -> str:
        return f"--{self.name.replace('_', '-')} {self.value}"


class InputError(UvshipError):
    """A project, option, path or file given to uvship is not what it must be.

    ``subject`` is the option whose value is wrong, when it is one: callers branch on it,
    never on the message's text."""

    def __init__(self, message: str, *, hint: str | None = None,
                 subject: Option | None = None) -> None:
        super().__init__(message, hint=hint)
        self.subject = subject

    @classmethod
    def of(cls, subject: Option | str, detail: str, *, hint: str | None = None) -> InputError:
        """``subject: detail``; ``subject`` an Option, or a plain name (a file, a layout)."""
        return cls(f"{subject}: {detail}", hint=hint,
                   subject=subject if isinstance(subject, Option) else None)

    def for_command_line(self) -> str:
        """The message with the option named by its flag, as the CLI prints it."""
        prefix = f"{self.subject}: " if self.subject else None
        if prefix and self.message.startswith(prefix):
            return f"{self.subject.flag}: {self.message[len(prefix):]}"  # type: ignore[union-attr]
        return self.message


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

