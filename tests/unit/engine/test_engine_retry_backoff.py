"""Capped exponential back-off (``max_retry_delay``) and deterministic full jitter (``retry_jitter``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import InvalidDurationError, RetryableError, RetryPolicy, step, workflow
from engine.runtime import ErrorInfo, StepFailed, step_definition
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]
RETRYABLE = ErrorInfo(type="builtins.OSError", message="down", retryable=True)


def test_exponential_is_capped_at_300_seconds_by_default() -> None:
    policy = RetryPolicy.from_spec(30, "exponential")
    delays = [policy.delay_ms(attempt) for attempt in range(1, 12)]
    assert delays == [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]
    assert policy.delay_ms(20) == 300_000 and policy.next_delay_ms(20, RETRYABLE) == 300_000
    assert policy.delay_ms(10_000) == 300_000  # no overflow, no huge shift
    assert RetryPolicy().delay_ms(20) == 300_000  # also a policy built directly


@pytest.mark.parametrize("cap", ["10s", 10, 10.0])
def test_max_retry_delay_takes_any_duration(cap: object) -> None:
    policy = RetryPolicy.from_spec(10, "exponential", cap)  # type: ignore[arg-type]
    assert [policy.delay_ms(a) for a in range(1, 7)] == [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]


def test_fixed_and_list_delays_are_capped_only_when_asked() -> None:
    assert RetryPolicy.from_spec(3, "10m").delay_ms(1) == 600_000  # what was written, even above 300 s
    assert RetryPolicy.from_spec(3, "10m", "1m").delay_ms(1) == 60_000
    assert [RetryPolicy.from_spec(3, [1, 90], "30s").delay_ms(a) for a in (1, 2, 3)] == [1_000, 30_000, 30_000]


def test_retry_after_overrides_cap_and_jitter() -> None:
    policy = RetryPolicy.from_spec(3, "exponential", "5s", jitter=True)
    hinted = ErrorInfo(type="engine.RetryableError", message="later", retryable=True, retry_after_ms=3_600_000)
    assert policy.next_delay_ms(1, hinted, "run", 0) == 3_600_000


def test_jitter_is_in_range_and_a_pure_function_of_run_position_attempt() -> None:
    policy = RetryPolicy.from_spec(30, "exponential", jitter=True)
    seen = set()
    for run in ("r1", "r2", "r3"):
        for position in range(4):
            for attempt in range(1, 21):
                delay = policy.next_delay_ms(attempt, RETRYABLE, run, position)
                assert delay is not None and 0 <= delay <= policy.delay_ms(attempt) <= 300_000
                assert delay == policy.next_delay_ms(attempt, RETRYABLE, run, position)  # same inputs, same delay
                seen.add(delay)
    assert len(seen) > 200  # spread out, not a constant fraction
    at_twenty = [policy.next_delay_ms(20, RETRYABLE, f"run{i}", 0) for i in range(200)]
    assert max(at_twenty) <= 300_000 and min(at_twenty) < 150_000 < max(at_twenty)  # type: ignore[operator]
    assert policy.next_delay_ms(3, RETRYABLE, "r1", 0) != policy.next_delay_ms(3, RETRYABLE, "r1", 1)


def test_jitter_covers_zero_to_the_whole_delay() -> None:
    policy = RetryPolicy.from_spec(3, "5ms", jitter=True)
    delays = {policy.next_delay_ms(1, RETRYABLE, f"r{i}", 0) for i in range(1_000)}
    assert delays == {0, 1, 2, 3, 4, 5}  # both ends included


def test_bad_options_fail_at_import() -> None:
    with pytest.raises(InvalidDurationError):
        step(max_retry_delay="soon")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="retry_jitter must be a bool"):
        step(retry_jitter="yes")  # type: ignore[call-overload]


failures: list[int] = []


@step(max_retries=25, max_retry_delay="4s", retry_jitter=True)
async def unreliable() -> str:
    failures.append(1)
    if len(failures) <= 6:
        raise OSError("down")
    return "up"


@workflow
async def keeps_trying() -> str:
    return await unreliable()


def waits(driver: InMemoryDriver, run_id: str) -> list[int]:
    return [e.retry_at - e.timestamp for e in driver.history(run_id) if isinstance(e, StepFailed) and e.retry_at]


async def test_the_driver_waits_the_jittered_capped_delays(make_driver: Make, clock: FakeClock) -> None:
    failures.clear()
    driver = make_driver(keeps_trying, unreliable)
    run_id = driver.start(keeps_trying)
    for _ in range(10):
        await driver.run_until_idle()
        clock.advance("4s")
    assert driver.result(run_id) == "up"
    policy = step_definition(unreliable).policy  # type: ignore[union-attr]
    expected = [policy.next_delay_ms(attempt, RETRYABLE, run_id, 0) for attempt in range(1, 7)]
    assert waits(driver, run_id) == expected  # the same in both replay modes: a function of the inputs
    assert all(0 <= w <= min(1_000 << (a - 1), 4_000) for a, w in enumerate(expected, start=1))  # type: ignore[operator]
    assert expected != [1_000, 2_000, 4_000, 4_000, 4_000, 4_000]  # jittered, not the plain capped delays


async def test_retryable_error_retry_after_still_wins_over_jitter(make_driver: Make, clock: FakeClock) -> None:
    calls: list[int] = []

    @step(retry_jitter=True)
    async def hinted() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RetryableError("later", retry_after="42s")
        return "ok"

    @workflow
    async def uses_hint() -> str:
        return await hinted()

    driver = make_driver(uses_hint, hinted)
    run_id = driver.start(uses_hint)
    await driver.run_until_idle()
    assert waits(driver, run_id) == [42_000]
