"""Step execution through the driver: retries, delays, fatal errors, identity by position."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import FatalError, RetryableError, StepFailedError, sleep, step, workflow
from engine.runtime import StepFailed, StepScheduled, TimerScheduled
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


class Flaky:
    """A step body failing a given number of times with a given exception."""

    def __init__(self, failures: int, exc: Callable[[], Exception]) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc()
        return f"ok after {self.calls}"


def retry_delays(history: tuple[object, ...]) -> list[int]:
    return [e.retry_at - e.timestamp for e in history if isinstance(e, StepFailed) and e.retry_at]


async def settle(driver: InMemoryDriver, clock: FakeClock, rounds: int = 10) -> None:
    for _ in range(rounds):
        await driver.run_until_idle()
        timers = [t for t in driver.timers() if t.kind == "retry"]
        if not timers:
            return
        clock.set(max(clock.now_ms(), timers[0].fire_at))


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        ("exponential", [1_000, 2_000, 4_000]),
        ("fixed", [1_000, 1_000, 1_000]),
        ("30s", [30_000, 30_000, 30_000]),
        (2, [2_000, 2_000, 2_000]),
        ([1, 5], [1_000, 5_000, 5_000]),
    ],
)
async def test_retry_delay_forms(make_driver: Make, clock: FakeClock, delay: object, expected: list[int]) -> None:
    body = Flaky(3, lambda: ValueError("flaky"))
    flaky = step(name="flaky", max_retries=3, retry_delay=delay)(body)  # type: ignore[arg-type]

    @workflow
    async def wf() -> object:
        return await flaky()

    driver = make_driver(wf, flaky)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    assert driver.status(run_id) == "running"  # waiting on a durable retry timer
    await settle(driver, clock)
    assert driver.result(run_id) == "ok after 4"
    history = driver.history(run_id)
    assert retry_delays(history) == expected
    assert [e.attempt for e in history if isinstance(e, StepScheduled)] == [1, 2, 3, 4]
    assert [e.timer_id for e in history if isinstance(e, TimerScheduled)] == ["retry:0:1", "retry:0:2", "retry:0:3"]


async def test_retry_after_overrides_the_policy(make_driver: Make, clock: FakeClock) -> None:
    body = Flaky(1, lambda: RetryableError("rate limited", retry_after="90s"))
    limited = step(name="limited", retry_delay="exponential")(body)

    @workflow
    async def wf() -> object:
        return await limited()

    driver = make_driver(wf, limited)
    run_id = driver.start(wf)
    await settle(driver, clock)
    assert driver.result(run_id) == "ok after 2"
    assert retry_delays(driver.history(run_id)) == [90_000]


async def test_fatal_error_is_final_at_once_and_fails_the_run(make_driver: Make, clock: FakeClock) -> None:
    body = Flaky(5, lambda: FatalError("card declined"))
    charge = step(name="charge", max_retries=5)(body)

    @workflow
    async def wf() -> object:
        return await charge()

    driver = make_driver(wf, charge)
    run_id = driver.start(wf)
    await settle(driver, clock)
    assert body.calls == 1
    with pytest.raises(FatalError, match="card declined"):
        driver.result(run_id)
    assert driver.status(run_id) == "failed"


async def test_exhausted_retries_can_be_caught_by_the_workflow(make_driver: Make, clock: FakeClock) -> None:
    body = Flaky(99, lambda: RetryableError("still down"))
    down = step(name="down", max_retries=2, retry_delay="fixed")(body)

    @workflow
    async def wf() -> str:
        try:
            await down()
        except RetryableError as exc:
            return f"gave up: {exc}"
        return "unreachable"

    driver = make_driver(wf, down)
    run_id = driver.start(wf)
    await settle(driver, clock)
    assert body.calls == 3
    assert driver.result(run_id) == "gave up: still down"


async def test_unrebuildable_error_type_becomes_step_failed_error(make_driver: Make, clock: FakeClock) -> None:
    class NeedsTwoArgs(Exception):
        def __init__(self, a: str, b: str) -> None:
            super().__init__(f"{a}/{b}")

    body = Flaky(9, lambda: NeedsTwoArgs("x", "y"))
    odd = step(name="odd", max_retries=0)(body)

    @workflow
    async def wf() -> str:
        try:
            await odd()
        except StepFailedError as exc:
            return exc.error_type
        return "unreachable"

    driver = make_driver(wf, odd)
    run_id = driver.start(wf)
    await settle(driver, clock)
    assert str(driver.result(run_id)).endswith("NeedsTwoArgs")


async def test_same_step_twice_with_equal_args_runs_twice(make_driver: Make) -> None:
    calls: list[int] = []

    @step
    async def record(x: int) -> int:
        calls.append(x)
        return len(calls)

    @workflow
    async def wf() -> list[int]:
        return [await record(7), await record(7)]

    driver = make_driver(wf, record)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    assert driver.result(run_id) == [1, 2]
    assert calls == [7, 7]
    assert [e.position for e in driver.history(run_id) if isinstance(e, StepScheduled)] == [0, 1]


async def test_recorded_results_are_not_recomputed_on_replay(make_driver: Make, clock: FakeClock) -> None:
    calls: list[str] = []

    @step
    async def once() -> str:
        calls.append("x")
        return "value"

    @workflow
    async def wf() -> str:
        first = await once()
        await sleep("1m")
        return first

    driver = make_driver(wf, once)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    clock.advance("1m")
    await driver.run_until_idle()
    assert driver.result(run_id) == "value"
    assert calls == ["x"]


async def test_an_exception_escaping_the_workflow_fails_the_run(make_driver: Make) -> None:
    @workflow
    async def broken(x: int) -> None:
        raise KeyError(f"missing {x}")

    driver = make_driver(broken)
    run_id = driver.start(broken, 4)
    assert driver.status(run_id) == "failed"
    with pytest.raises(KeyError, match="missing 4"):
        driver.result(run_id)
    failed = driver.history(run_id)[-1]
    assert failed.error.type == "builtins.KeyError" and "Traceback" in failed.error.traceback  # type: ignore[union-attr]
