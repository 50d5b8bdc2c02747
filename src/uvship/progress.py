"""How the library tells its caller what it is doing, without printing anything itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class Progress(Protocol):
    """Receives the long steps of a build; the CLI renders them on stderr."""

    def step(self, name: str) -> contextlib.AbstractContextManager[None]: ...

    def note(self, message: str) -> None: ...


class NullProgress:
    """The default: reports go nowhere."""

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        yield

    def note(self, message: str) -> None:
        pass
