"""The host's payload check, in the engine: values the payload codec cannot carry fail where they are produced
(the step call, the child start, continue_as_new, the step's attempt, the run's result), deterministically on
replay, instead of reaching a host that cannot encode them. InMemoryDriver with the real codec's check."""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

import pytest

from engine import (
    Registry,
    RunStatus,
    continue_as_new,
    hook,
    start_child_workflow,
    step,
    workflow,
)
from engine.runtime import StepCompleted, StepFailed, WorkflowFailed
from engine.testing import FakeClock, InMemoryDriver
from schemas import PayloadError, RecordCodec

CALLS: list[str] = []


@dataclasses.dataclass(frozen=True)
class Invoice:  # defined in this module: allowed through the registry of the workflows below
    total: Decimal
    due: datetime.date


@step(max_retries=3, retry_delay="1s")
async def give(kind: str) -> object:
    CALLS.append(kind)
    if kind == "object":
        return {"items": [1, 2, object()]}
    return Invoice(Decimal("9.50"), datetime.date(2024, 5, 1))


@workflow
async def step_result(kind: str) -> object:
    try:
        return await give(kind)
    except PayloadError as exc:
        return f"caught {type(exc).__name__}: {exc}"


@workflow
async def bad_result() -> object:
    await give("invoice")
    return (1, lambda: 2)


@workflow
async def bad_step_call() -> object:
    try:
        await give(object())  # type: ignore[arg-type]
    except PayloadError as exc:
        caught = str(exc)
    return caught, await give("invoice")  # the run goes on, and replays the same way


@workflow
async def child(value: object) -> object:
    return value


@workflow
async def bad_child(catch: bool) -> object:
    try:
        return await start_child_workflow(child, {"k": object()})
    except PayloadError as exc:
        if not catch:
            raise
        return f"caught: {exc}"


@workflow
async def good_child() -> object:
    return await start_child_workflow(child, (Invoice(Decimal("1"), datetime.date(2000, 1, 1)), {1, 2}))


@workflow
async def bad_continue() -> None:
    await give("invoice")
    continue_as_new(n=object())


@workflow
async def waits() -> object:
    return await hook("go")


REGISTRY = Registry([give, step_result, bad_result, bad_step_call, child, bad_child, good_child, bad_continue, waits])
CHECK = RecordCodec(types=REGISTRY.payload_types).payload_check


@pytest.fixture
def driver(always_replay: bool) -> InMemoryDriver:
    CALLS.clear()
    return InMemoryDriver(REGISTRY, FakeClock(1_000), always_replay=always_replay, payload_check=CHECK)


async def test_a_step_result_that_cannot_be_encoded_fails_the_attempt_without_retries(driver: InMemoryDriver) -> None:
    run_id = driver.start(step_result, "object")
    await driver.run_until_idle()
    assert CALLS == ["object"]  # not retried: it would return the same kind of value
    result = driver.result(run_id)
    assert isinstance(result, str) and result.startswith("caught PayloadError: the result of step 'give' cannot")
    assert '$.result["items"][2]: object cannot be encoded' in result
    [failed] = [e for e in driver.history(run_id) if isinstance(e, StepFailed)]
    assert failed.retry_at is None and not failed.error.retryable


async def test_an_allowed_class_is_a_fine_result(driver: InMemoryDriver) -> None:
    run_id = driver.start(step_result, "invoice")
    await driver.run_until_idle()
    assert driver.result(run_id) == Invoice(Decimal("9.50"), datetime.date(2024, 5, 1))


async def test_a_workflow_result_that_cannot_be_encoded_fails_the_run(driver: InMemoryDriver) -> None:
    run_id = driver.start(bad_result)
    await driver.run_until_idle()
    assert driver.status(run_id) == RunStatus.FAILED
    with pytest.raises(PayloadError, match=r"^\$\.result\[1\]: function cannot be encoded"):
        driver.result(run_id)
    assert isinstance(driver.history(run_id)[-1], WorkflowFailed)


async def test_step_arguments_that_cannot_be_encoded_raise_at_the_call_and_replay_alike(
    driver: InMemoryDriver,
) -> None:
    run_id = driver.start(bad_step_call)
    await driver.run_until_idle()
    caught, invoice = driver.result(run_id)  # type: ignore[misc]
    assert caught.startswith("$.args[0]: object cannot be encoded")
    assert invoice == Invoice(Decimal("9.50"), datetime.date(2024, 5, 1))
    assert CALLS == ["invoice"]  # the refused call took no position and ran nothing
    assert [e.position for e in driver.history(run_id) if isinstance(e, StepCompleted)] == [0]


@pytest.mark.parametrize("catch", [False, True])
async def test_child_arguments_that_cannot_be_encoded_raise_at_the_start(driver: InMemoryDriver, catch: bool) -> None:
    run_id = driver.start(bad_child, catch)
    await driver.run_until_idle()
    if catch:
        assert str(driver.result(run_id)).startswith('caught: $.args[0]["k"]: object cannot be encoded')
    else:
        with pytest.raises(PayloadError, match=r'^\$\.args\[0\]\["k"\]: object'):
            driver.result(run_id)
    assert not [e for e in driver.history(run_id) if type(e).__name__ == "ChildWorkflowStarted"]


async def test_typed_child_arguments_and_results_pass(driver: InMemoryDriver) -> None:
    run_id = driver.start(good_child)
    await driver.run_until_idle()
    assert driver.result(run_id) == (Invoice(Decimal("1"), datetime.date(2000, 1, 1)), {1, 2})


async def test_continue_as_new_arguments_that_cannot_be_encoded_fail_the_run(driver: InMemoryDriver) -> None:
    run_id = driver.start(bad_continue)
    await driver.run_until_idle()
    assert driver.status(run_id) == RunStatus.FAILED
    with pytest.raises(PayloadError, match=r'^\$\.kwargs\["n"\]: object'):
        driver.result(run_id)


async def test_the_driver_refuses_what_a_client_would_refuse_to_send(driver: InMemoryDriver) -> None:
    with pytest.raises(PayloadError, match=r"^\$\.args\[0\]: object"):
        driver.start(child, object())
    run_id = driver.start(waits)
    await driver.run_until_idle()
    with pytest.raises(PayloadError, match=r'^\$\.payload\["x"\]: object'):
        driver.resume_hook(f"{run_id}:go", {"x": object()})
    driver.resume_hook(f"{run_id}:go", {"at": datetime.datetime(2024, 1, 1)})
    await driver.run_until_idle()
    assert driver.result(run_id) == {"at": datetime.datetime(2024, 1, 1)}


async def test_without_a_check_values_stay_in_memory_unchecked(always_replay: bool) -> None:
    plain = InMemoryDriver(REGISTRY, FakeClock(1_000), always_replay=always_replay)
    run_id = plain.start(bad_result)
    await plain.run_until_idle()
    assert plain.status(run_id) == RunStatus.COMPLETED
