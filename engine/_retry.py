"""Step retry policies: how long to wait before the next attempt, and whether to retry at all."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from ._durations import Duration, parse_duration
from ._errors import InvalidDurationError
from ._records import ErrorInfo

RetryDelay = Union[str, int, float, Sequence[int | float]]
"""``"exponential"``, ``"fixed"``, a duration (``"30s"`` or seconds), or per-attempt seconds."""

_FIXED_DEFAULT_MS = 1_000
_EXPONENTIAL_BASE_MS = 1_000
DEFAULT_MAX_RETRY_DELAY_MS = 300_000
"""The cap of ``"exponential"`` back-off when ``max_retry_delay`` is not given (5 minutes, as pyworkflow-engine)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a failed step is retried.

    ``max_retries`` counts retries after the first attempt (``max_retries=3`` allows
    attempts 1..4). Delays: ``"exponential"`` waits 1s, 2s, 4s, ... (doubling per
    attempt); ``"fixed"`` waits 1s every time (pyworkflow's default); a duration
    string or number waits that long every time; a list gives the delay (seconds)
    per retry, its last element repeated for further retries.

    ``max_delay_ms`` caps every delay of the policy (``"exponential"``: 300 s unless
    ``max_retry_delay`` says otherwise; the other strategies: uncapped unless it is given).
    ``jitter`` ("full jitter") waits a fraction of the capped delay, between 0 and all of it,
    that is a pure function of (run id, position, attempt): the same failure always waits the
    same, live or replayed, while the retries of many runs failing together spread out.
    """

    max_retries: int = 3
    strategy: str = "exponential"
    delays_ms: tuple[int, ...] = ()
    max_delay_ms: int | None = None  # None: DEFAULT_MAX_RETRY_DELAY_MS for "exponential", no cap for the others
    jitter: bool = False

    @classmethod
    def from_spec(
        cls,
        max_retries: int,
        retry_delay: RetryDelay,
        max_retry_delay: Duration | None = None,
        jitter: bool = False,
    ) -> RetryPolicy:
        """Build a policy from ``@step`` arguments.

        Raises:
            InvalidDurationError: for an unparseable delay or cap, or a negative ``max_retries``.
            TypeError: ``jitter`` is not a bool.
        """
        if max_retries < 0:
            raise InvalidDurationError(f"max_retries must be >= 0, got {max_retries}")
        if not isinstance(jitter, bool):
            raise TypeError(f"retry_jitter must be a bool, got {jitter!r}")
        cap = None if max_retry_delay is None else parse_duration(max_retry_delay)
        if retry_delay == "exponential":
            return cls(max_retries, "exponential", (), cap, jitter)
        if retry_delay == "fixed":
            return cls(max_retries, "fixed", (_FIXED_DEFAULT_MS,), cap, jitter)
        if isinstance(retry_delay, (str, int, float)):
            return cls(max_retries, "fixed", (parse_duration(retry_delay),), cap, jitter)
        delays = tuple(parse_duration(d) for d in retry_delay)
        if not delays:
            raise InvalidDurationError("retry_delay list must not be empty")
        return cls(max_retries, "list", delays, cap, jitter)

    def delay_ms(self, attempt: int) -> int:
        """Delay before retrying after failed ``attempt`` (1-based), capped, without jitter."""
        cap = self.max_delay_ms
        if self.strategy == "exponential":
            delay = _EXPONENTIAL_BASE_MS << min(max(attempt - 1, 0), 62)
            cap = DEFAULT_MAX_RETRY_DELAY_MS if cap is None else cap
        else:
            delay = self.delays_ms[min(attempt, len(self.delays_ms)) - 1]
        return delay if cap is None else min(delay, cap)

    def next_delay_ms(self, attempt: int, error: ErrorInfo, run_id: str = "", position: int = 0) -> int | None:
        """Delay before the next attempt, or None when failed ``attempt`` is final.

        Final when the error is not retryable (``FatalError`` and friends) or the
        retries are used up. ``error.retry_after_ms`` (from ``RetryableError``)
        overrides the policy's delay, uncapped and without jitter. With ``jitter`` the
        delay is ``jittered(delay, run_id, position, attempt)``.
        """
        if not error.retryable or attempt > self.max_retries:
            return None
        if error.retry_after_ms is not None:
            return error.retry_after_ms
        delay = self.delay_ms(attempt)
        return jittered(delay, run_id, position, attempt) if self.jitter else delay


def jittered(delay_ms: int, run_id: str, position: int, attempt: int) -> int:
    """A delay in ``[0, delay_ms]`` chosen by a hash of (run id, position, attempt): never random at decision time,
    so the same failed attempt always gets the same delay."""
    digest = hashlib.sha256(f"{run_id}\x00{position}\x00{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * (delay_ms + 1) >> 64  # integer arithmetic: exactly in [0, delay_ms]
