from __future__ import annotations

import pytest

from engine import InvalidDurationError, RetryPolicy
from engine.runtime import ErrorInfo

RETRYABLE = ErrorInfo(type="builtins.ValueError", message="x", retryable=True)


def test_exponential_doubles_from_one_second() -> None:
    policy = RetryPolicy.from_spec(5, "exponential")
    assert [policy.delay_ms(a) for a in range(1, 6)] == [1_000, 2_000, 4_000, 8_000, 16_000]


def test_fixed_is_one_second_constant() -> None:
    policy = RetryPolicy.from_spec(3, "fixed")
    assert [policy.delay_ms(a) for a in range(1, 4)] == [1_000, 1_000, 1_000]


@pytest.mark.parametrize(("spec", "ms"), [("30s", 30_000), ("1m", 60_000), (5, 5_000), (0.25, 250)])
def test_duration_is_constant(spec: str | int | float, ms: int) -> None:
    policy = RetryPolicy.from_spec(3, spec)
    assert [policy.delay_ms(a) for a in range(1, 4)] == [ms, ms, ms]


def test_list_is_per_attempt_with_last_repeated() -> None:
    policy = RetryPolicy.from_spec(5, [1, 5, 30])
    assert [policy.delay_ms(a) for a in range(1, 6)] == [1_000, 5_000, 30_000, 30_000, 30_000]


def test_max_retries_counts_retries_after_the_first_attempt() -> None:
    policy = RetryPolicy.from_spec(2, "fixed")
    assert policy.next_delay_ms(1, RETRYABLE) == 1_000
    assert policy.next_delay_ms(2, RETRYABLE) == 1_000
    assert policy.next_delay_ms(3, RETRYABLE) is None


def test_zero_retries_is_final_at_once() -> None:
    assert RetryPolicy.from_spec(0, "fixed").next_delay_ms(1, RETRYABLE) is None


def test_non_retryable_is_final_and_retry_after_overrides() -> None:
    policy = RetryPolicy.from_spec(3, "exponential")
    fatal = ErrorInfo(type="engine.FatalError", message="no", retryable=False)
    hinted = ErrorInfo(type="engine.RetryableError", message="later", retryable=True, retry_after_ms=42_000)
    assert policy.next_delay_ms(1, fatal) is None
    assert policy.next_delay_ms(1, hinted) == 42_000


@pytest.mark.parametrize("spec", ["soon", [], ["x"]])
def test_bad_specs_raise(spec: object) -> None:
    with pytest.raises(InvalidDurationError):
        RetryPolicy.from_spec(3, spec)  # type: ignore[arg-type]


def test_negative_max_retries_raises() -> None:
    with pytest.raises(InvalidDurationError):
        RetryPolicy.from_spec(-1, "fixed")
