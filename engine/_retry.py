"""Step retry policies: how long to wait before the next attempt, and whether to retry at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from ._durations import parse_duration
from ._errors import InvalidDurationError
from ._records import ErrorInfo

RetryDelay = Union[str, int, float, Sequence[int | float]]
"""``"exponential"``, ``"fixed"``, a duration (``"30s"`` or seconds), or per-attempt seconds."""

_FIXED_DEFAULT_MS = 1_000
_EXPONENTIAL_BASE_MS = 1_000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a failed step is retried.

    ``max_retries`` counts retries after the first attempt (``max_retries=3`` allows
    attempts 1..4). Delays: ``"exponential"`` waits 1s, 2s, 4s, ... (doubling per
    attempt); ``"fixed"`` waits 1s every time (pyworkflow's default); a duration
    string or number waits that long every time; a list gives the delay (seconds)
    per retry, its last element repeated for further retries.
    """

    max_retries: int = 3
    strategy: str = "exponential"
    delays_ms: tuple[int, ...] = ()

    @classmethod
    def from_spec(cls, max_retries: int, retry_delay: RetryDelay) -> RetryPolicy:
        """Build a policy from ``@step`` arguments.

        Raises:
            InvalidDurationError: for an unparseable delay or negative ``max_retries``.
        """
        if max_retries < 0:
            raise InvalidDurationError(f"max_retries must be >= 0, got {max_retries}")
        if retry_delay == "exponential":
            return cls(max_retries, "exponential", ())
        if retry_delay == "fixed":
            return cls(max_retries, "fixed", (_FIXED_DEFAULT_MS,))
        if isinstance(retry_delay, (str, int, float)):
            return cls(max_retries, "fixed", (parse_duration(retry_delay),))
        delays = tuple(parse_duration(d) for d in retry_delay)
        if not delays:
            raise InvalidDurationError("retry_delay list must not be empty")
        return cls(max_retries, "list", delays)

    def delay_ms(self, attempt: int) -> int:
        """Delay before retrying after failed ``attempt`` (1-based)."""
        if self.strategy == "exponential":
            return _EXPONENTIAL_BASE_MS << max(attempt - 1, 0)
        return self.delays_ms[min(attempt, len(self.delays_ms)) - 1]

    def next_delay_ms(self, attempt: int, error: ErrorInfo) -> int | None:
        """Delay before the next attempt, or None when failed ``attempt`` is final.

        Final when the error is not retryable (``FatalError`` and friends) or the
        retries are used up. ``error.retry_after_ms`` (from ``RetryableError``)
        overrides the policy's delay.
        """
        if not error.retryable or attempt > self.max_retries:
            return None
        if error.retry_after_ms is not None:
            return error.retry_after_ms
        return self.delay_ms(attempt)
