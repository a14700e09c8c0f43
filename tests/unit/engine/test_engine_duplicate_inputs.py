"""Duplicate, stale and late inputs change nothing and say why."""

from __future__ import annotations

from collections.abc import Callable

from engine import sleep, step, workflow
from engine.runtime import CallArgs, ResumeHook, StartWorkflow, StepResult, TimerFired
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step(max_retries=2, retry_delay="10s")
async def flaky_once(state: list[int]) -> str:
    state.append(1)
    if len(state) == 1:
        raise ValueError("first attempt fails")
    return "ok"


@step
async def echo(x: object) -> object:
    return x


def result(run_id: str, position: int, attempt: int, value: object = "v") -> StepResult:
    return StepResult(
        run_id=run_id,
        position=position,
        attempt=attempt,
        ok=True,
        result=value,
        worker="test",
        started_at=0,
        finished_at=0,
    )


async def test_duplicate_unknown_and_stale_step_results(make_driver: Make, clock: FakeClock) -> None:
    state: list[int] = []

    @workflow
    async def wf() -> object:
        first = await echo("a")
        return [first, await flaky_once(state)]

    driver = make_driver(wf, echo, flaky_once)
    run_id = driver.start(wf)
    await driver.run_until_idle()  # position 0 done; position 1 failed once, waiting to retry
    before = len(driver.history(run_id))
    assert "already resolved" in (driver.deliver(result(run_id, 0, 1)).ignored or "")
    assert "no step was issued at position 9" == driver.deliver(result(run_id, 9, 1)).ignored
    stale = driver.deliver(result(run_id, 1, 1)).ignored or ""
    assert "stale result for position 1 attempt 1" in stale and "waiting for its retry timer" in stale
    assert "current attempt is 1" in stale
    assert len(driver.history(run_id)) == before
    clock.advance("10s")
    await driver.run_until_idle()
    assert driver.result(run_id) == ["a", "ok"]
    assert driver.deliver(result(run_id, 1, 2)).ignored == f"run {run_id} already finished (completed)"


async def test_redelivered_timer_and_inputs_after_finish(make_driver: Make, clock: FakeClock) -> None:
    @workflow
    async def wf() -> str:
        await sleep("5s")
        await sleep("5s")
        return "done"

    driver = make_driver(wf)
    run_id = driver.start(wf)
    (timer,) = driver.timers()
    clock.advance("5s")
    await driver.run_until_idle()
    fired = TimerFired(
        run_id=run_id,
        timer_id=timer.timer_id,
        position=timer.position,
        kind="sleep",
        fire_at=timer.fire_at,
        fired_at=clock.now_ms(),
    )
    ignored = driver.deliver(fired)
    assert ignored.events == () and ignored.commands == ()
    assert ignored.ignored == "timer sleep:0:1 is not armed (already fired, cancelled or stale)"
    clock.advance("5s")
    await driver.run_until_idle()
    assert driver.result(run_id) == "done"
    assert driver.deliver(fired).ignored == f"run {run_id} already finished (completed)"


async def test_restart_and_unknown_hook_token_are_ignored(make_driver: Make) -> None:
    @workflow
    async def wf() -> None:
        await sleep("1h")

    driver = make_driver(wf)
    run_id = driver.start(wf)
    again = StartWorkflow(run_id=run_id, workflow_name="wf", args=CallArgs((), {}), requested_at=0)
    assert driver.deliver(again).ignored == f"run {run_id} was already started"
    # A payload for a hook not (yet) waited on is buffered (issue 5); another run's token is ignored.
    early = ResumeHook(run_id=run_id, token=f"{run_id}:nope", payload={}, requested_at=0)
    assert driver.deliver(early).ignored is None
    foreign = ResumeHook(run_id=run_id, token="other-run:nope", payload={}, requested_at=0)
    assert driver.deliver(foreign).ignored == f"token 'other-run:nope' does not belong to run {run_id}"
    assert [reason for _, reason in driver.ignored][-1].startswith("token 'other-run:nope'")
