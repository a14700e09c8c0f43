"""Replay detects workflow code that diverges from its recorded history."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import NonDeterminismError, Registry, sleep, step, workflow
from engine.runtime import Run
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step
async def reserve() -> str:
    return "reserved"


@step
async def charge() -> str:
    return "charged"


@step
async def refund() -> str:
    return "refunded"


@workflow(name="order")
async def order_v1() -> str:
    await reserve()
    await sleep("1h")
    return await charge()


@workflow(name="order")
async def order_other_step() -> str:
    await reserve()
    await sleep("1h")
    return await refund()


@workflow(name="order")
async def order_other_kind() -> str:
    await reserve()
    await charge()  # a step where history has a sleep
    return "x"


@workflow(name="order")
async def order_fewer_commands() -> str:
    return await charge()


async def recorded_history(clock: FakeClock) -> tuple[object, ...]:
    driver = InMemoryDriver(Registry([order_v1, reserve, charge, refund]), clock, run_ids=lambda: "r1")
    run_id = driver.start("order")
    await driver.run_until_idle()
    clock.advance("1h")
    await driver.run_until_idle()
    assert driver.result(run_id) == "charged"
    return driver.history(run_id)


@pytest.mark.parametrize(
    ("changed", "position", "recorded", "new"),
    [
        (order_other_step, 2, "step 'charge'", "step 'refund'"),
        (order_other_kind, 1, "sleep", "step 'charge'"),
        (order_fewer_commands, 0, "step 'reserve'", "step 'charge'"),
    ],
)
async def test_changed_code_fails_replay_naming_position_recorded_and_new(
    clock: FakeClock, changed: object, position: int, recorded: str, new: str
) -> None:
    history = await recorded_history(clock)
    Run.replay(Registry([order_v1, reserve, charge]), history)  # unchanged code replays fine
    with pytest.raises(NonDeterminismError) as info:
        Run.replay(Registry([changed, reserve, charge, refund]), history)
    err = info.value
    assert (err.position, err.recorded, err.new) == (position, recorded, new)
    assert f"position {position}" in str(err) and recorded in str(err) and new in str(err)


async def test_code_that_stops_early_is_detected(clock: FakeClock) -> None:
    @workflow(name="order")
    async def order_shorter() -> str:
        await reserve()
        await sleep("1h")
        return "done early"

    history = await recorded_history(clock)
    with pytest.raises(NonDeterminismError, match="step 'charge'"):
        Run.replay(Registry([order_shorter, reserve]), history)


async def test_live_run_replayed_with_changed_code_fails_instead_of_reexecuting(clock: FakeClock) -> None:
    calls: list[str] = []

    @step(name="refund")
    async def counting_refund() -> str:
        calls.append("refund")
        return "refunded"

    driver = InMemoryDriver(Registry([order_v1, reserve, charge]), clock, run_ids=lambda: "r2")
    run_id = driver.start("order")
    await driver.run_until_idle()
    driver.registry = Registry([order_other_kind, reserve, charge, counting_refund])
    driver.evict(run_id)  # the next input rebuilds the run from history with the new code
    clock.advance("1h")
    await driver.run_until_idle()
    assert driver.status(run_id) == "failed"
    with pytest.raises(
        NonDeterminismError, match="position 1: history recorded sleep, the workflow code now issues step 'charge'"
    ):
        driver.result(run_id)
    assert calls == []


async def test_swallowing_exceptions_cannot_hide_a_divergence(clock: FakeClock) -> None:
    @workflow(name="order")
    async def order_swallowing() -> str:
        await reserve()
        try:
            await refund()
        except Exception:  # must not catch the engine's unwinding
            return "swallowed"
        return "x"

    history = await recorded_history(clock)
    with pytest.raises(NonDeterminismError, match="position 1"):
        Run.replay(Registry([order_swallowing, reserve, refund]), history)


async def test_recover_never_appends_to_an_ended_history(clock: FakeClock) -> None:
    driver = InMemoryDriver(Registry([order_v1, reserve, charge]), clock, run_ids=lambda: "r3")
    run_id = driver.start("order")
    await driver.run_until_idle()
    driver.registry = Registry([order_other_kind, reserve, charge])
    driver.evict(run_id)
    clock.advance("1h")
    await driver.run_until_idle()
    ended = driver.history(run_id)
    assert type(ended[-1]).__name__ == "WorkflowFailed"
    run, transition = Run.recover(driver.registry, ended, clock.now_ms())
    assert (run.status, run.history_length, transition.events) == ("failed", len(ended), ())
    with pytest.raises(NonDeterminismError):  # the strict check still reports the divergence
        Run.replay(driver.registry, ended)
