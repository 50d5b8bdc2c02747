"""Trying registry operations again, with exponential backoff, when the failure may pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import AuthenticationError, RegistryError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try: at most ``attempts`` tries, the waits doubling from
    ``initial_delay`` up to ``max_delay``, and no new try once ``total`` seconds have passed
    since the first."""

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    total: float = 20.0

    def delay(self, failures: int, error: RegistryError) -> float:
        """The wait after the ``failures``-th failure (Retry-After if the server sent one)."""
        wait = min(self.initial_delay * (2 ** (failures - 1)), self.max_delay)
        if error.retry_after is not None:
            wait = min(max(wait, error.retry_after), self.max_delay)
        return wait

    def run(self, operation: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic) -> T:
        """``operation()``, tried again on retryable RegistryErrors; an operation must be safe
        to start over (an upload starts a new upload session each time)."""
        start = clock()
        failures = 0
        while True:
            try:
                return operation()
            except AuthenticationError:
                raise  # retryable or not, a refused login does not pass with time
            except RegistryError as exc:
                failures += 1
                if not exc.retryable:
                    raise
                elapsed = clock() - start
                wait = self.delay(failures, exc)
                if failures >= self.attempts:
                    raise _exhausted(exc, failures, elapsed, self._all_used(failures)) from exc
                if elapsed + wait > self.total:
                    raise _exhausted(exc, failures, elapsed,
                                     self._out_of_time(failures, elapsed)) from exc
                sleep(wait)

    def _all_used(self, failures: int) -> str:
        if failures == 1:
            return "the request failed its one attempt: the retry policy allows no retries"
        return f"the request failed all {failures} attempts the retry policy allows"

    def _out_of_time(self, failures: int, elapsed: float) -> str:
        failed = f"once, after {elapsed:.1f} s," if failures == 1 else \
            f"{failures} times in {elapsed:.1f} s"
        return (f"the request failed {failed} and was not tried again: retries stop "
                f"{self.total:g} s after the first attempt")


def _exhausted(exc: RegistryError, attempts: int, elapsed: float, why: str) -> RegistryError:
    """``exc`` once no attempt is left; the hint says how many were made and why no more."""
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return type(exc)(  # of the same kind: a caller may tell a deadline from a 503
        f"{exc.message} (gave up after {tries} in {elapsed:.1f} s)",
        method=exc.method, url=exc.url, status=exc.status, errors=exc.errors, retryable=True,
        retry_after=exc.retry_after, attempts=attempts,
        hint=exc.hint or f"{why}; check that the registry is up and reachable, then run the "
                         "command again (what already reached its destination is not sent "
                         "again)")
