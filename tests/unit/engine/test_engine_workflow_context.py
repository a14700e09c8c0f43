"""get_context() in workflow code and get_step_info() in steps: identity, replay state, cancellation, and
deterministic now / uuid4 / random that replay identically."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from conftest import START_MS
from engine import (
    CancellationError,
    ContextError,
    KflowError,
    StepInfo,
    continue_as_new,
    get_context,
    get_step_info,
    has_context,
    hook,
    shield,
    sleep,
    start_child_workflow,
    step,
    workflow,
)
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]

# Every execution of the workflow code (live and each replay) appends what it saw here.
SEEN: list[tuple[str, object]] = []


@step
async def tick(n: int) -> int:
    return n + 1


@workflow
async def draws() -> dict[str, object]:
    ctx = get_context()
    first = (str(ctx.uuid4()), ctx.random(), ctx.now().isoformat(), ctx.is_replaying)
    SEEN.append(("first", first))
    await tick(1)
    second = (str(ctx.uuid4()), str(ctx.uuid4()), ctx.random(), ctx.now().isoformat(), ctx.is_replaying)
    SEEN.append(("second", second))
    await sleep("1m")
    third = (str(get_context().uuid4()), get_context().now().isoformat(), get_context().is_replaying)
    SEEN.append(("third", third))
    return {"first": list(first[:3]), "second": list(second[:4]), "third": list(third[:2])}


async def test_now_uuid4_and_random_replay_identically(
    make_driver: Make, clock: FakeClock, always_replay: bool
) -> None:
    SEEN.clear()
    driver = make_driver(draws, tick)
    run_id = driver.start(draws)
    clock.advance("5s")  # the step's result is applied at START + 5 s
    await driver.run_until_idle()
    clock.advance("1m")
    await driver.run_until_idle()
    result = driver.result(run_id)
    assert isinstance(result, dict)
    first, second, third = result["first"], result["second"], result["third"]
    assert first[2] == datetime.fromtimestamp(START_MS / 1000, UTC).isoformat()  # the start's time
    assert second[3] == datetime.fromtimestamp((START_MS + 5_000) / 1000, UTC).isoformat()  # the step result's
    assert third[1] == datetime.fromtimestamp((START_MS + 65_000) / 1000, UTC).isoformat()  # the timer's
    uuids = [first[0], second[0], second[1], third[0]]
    assert len(set(uuids)) == 4 and all(uuid.UUID(u).version == 4 for u in uuids)
    assert 0 <= first[1] < 1 and 0 <= second[2] < 1 and first[1] != second[2]
    # Each value, however many times the code ran, is the one the live run took.
    for label, expected in (("first", first), ("second", second), ("third", third)):
        values = [seen[: len(expected)] for name, seen in SEEN if name == label]  # type: ignore[index]
        assert values and all(list(v) == expected for v in values), label
    flags = {label: [seen[-1] for name, seen in SEEN if name == label] for label in ("first", "second", "third")}  # type: ignore[index]
    if always_replay:  # rebuilt before every input: what ran before is re-run as a replay, each new point live
        assert flags == {"first": [False, True, True], "second": [False, True], "third": [False]}
    else:
        assert flags == {"first": [False], "second": [False], "third": [False]}


async def test_the_same_code_in_another_run_draws_other_values(make_driver: Make, clock: FakeClock) -> None:
    driver = make_driver(draws, tick)
    runs = [driver.start(draws), driver.start(draws)]
    for _ in range(3):
        await driver.run_until_idle()
        clock.advance("2m")
    first, second = (driver.result(run_id) for run_id in runs)
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["first"][0] != second["first"][0] and first["first"][1] != second["first"][1]


@workflow(name="ctx_child")
async def ctx_child() -> dict[str, object]:
    ctx = get_context()
    return {"run_id": ctx.run_id, "parent": ctx.parent_run_id, "depth": ctx.depth, "name": ctx.workflow_name}


@workflow(name="ctx_chain")
async def ctx_chain(n: int, seen: list[list[object]]) -> object:
    ctx = get_context()
    seen = [*seen, [ctx.run_id, ctx.attempt, ctx.continued_from_run_id, ctx.parent_run_id]]
    if n > 1:
        continue_as_new(n - 1, seen)
    child = await start_child_workflow(ctx_child)
    return {"chain": seen, "child": child, "repr": repr(ctx), "durable": ctx.is_durable}


async def test_identity_chain_attempt_and_parent(make_driver: Make) -> None:
    driver = make_driver(ctx_chain, ctx_child)
    first = driver.start(ctx_chain, 3, [])
    await driver.run_until_idle()
    result = driver.result(first)
    assert isinstance(result, dict)
    chain = result["chain"]
    assert [entry[1] for entry in chain] == [1, 2, 3]  # the attempt of the chain
    assert chain[0] == [first, 1, None, None]
    assert chain[1][2] == first and chain[2][2] == chain[1][0]  # each continued from the one before
    last = chain[2][0]
    assert result["child"]["parent"] == last and result["child"]["depth"] == 1
    assert result["child"]["name"] == "ctx_child" and result["child"]["run_id"] != last
    assert result["repr"] == f"WorkflowContext(run_id={last!r}, workflow_name='ctx_chain', attempt=3)"
    assert result["durable"] is True


@workflow
async def cancellable() -> list[object]:
    ctx = get_context()
    seen: list[object] = [ctx.is_cancellation_requested(), ctx.cancellation_blocked]
    try:
        await hook("go")
    except CancellationError as exc:
        seen += [ctx.is_cancellation_requested(), ctx.cancellation_reason, exc.reason]
        async with shield():
            seen.append(ctx.cancellation_blocked)
            ctx.check_cancellation()  # deferred by the shield: no error
            await tick(0)
        try:
            ctx.check_cancellation()
        except CancellationError as again:
            seen.append(f"raised: {again.reason}")
        return seen
    return seen


async def test_cancellation_state_and_check(make_driver: Make) -> None:
    driver = make_driver(cancellable, tick)
    run_id = driver.start(cancellable)
    await driver.run_until_idle()
    driver.cancel(run_id, reason="customer asked")
    await driver.run_until_idle()
    assert driver.result(run_id) == [
        False,
        False,
        True,
        "customer asked",
        "customer asked",
        True,
        "raised: customer asked",
    ]


@step
async def info_step(label: str) -> dict[str, object]:
    info = get_step_info()
    if label == "flaky" and info.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {
        "key": info.idempotency_key,
        "run_id": info.run_id,
        "position": info.position,
        "attempt": info.attempt,
        "step": info.step_name,
        "workflow": info.workflow_name,
        "has_context": has_context(),
    }


@workflow
async def infos() -> list[object]:
    first = await info_step("plain")
    second = await info_step("flaky")
    return [first, second, has_context()]


async def test_step_info_in_steps(make_driver: Make, clock: FakeClock) -> None:
    driver = make_driver(infos, info_step)
    run_id = driver.start(infos)
    for _ in range(3):
        await driver.run_until_idle()
        clock.advance("10s")
    first, second, in_workflow = driver.result(run_id)  # type: ignore[misc]
    assert first == {
        "key": f"{run_id}:0",
        "run_id": run_id,
        "position": 0,
        "attempt": 1,
        "step": "info_step",
        "workflow": "infos",
        "has_context": False,
    }
    assert second["key"] == f"{run_id}:1" and second["attempt"] == 2  # stable across the retry
    assert in_workflow is True


def test_step_info_is_a_plain_value() -> None:
    info = StepInfo("r1", "wf", "charge", 4, 2)
    assert info.idempotency_key == "r1:4"


async def test_both_raise_a_clear_kflow_error_out_of_place() -> None:
    assert not has_context()
    with pytest.raises(ContextError, match="only available in workflow code") as ctx_error:
        get_context()
    assert isinstance(ctx_error.value, KflowError) and isinstance(ctx_error.value, RuntimeError)
    with pytest.raises(ContextError, match="only available inside a @step"):
        get_step_info()
    with pytest.raises(ContextError, match="only available inside a @step"):
        await info_step("called directly, outside kflow")


@step
async def asks_for_context() -> str:
    return get_context().run_id


@workflow
async def step_asks_for_context() -> str:
    return await asks_for_context()


@workflow
async def workflow_asks_for_step_info() -> str:
    return get_step_info().idempotency_key


async def test_each_refuses_the_others_place(make_driver: Make) -> None:
    driver = make_driver(step_asks_for_context, asks_for_context, workflow_asks_for_step_info)
    in_step = driver.start(step_asks_for_context)
    in_workflow = driver.start(workflow_asks_for_step_info)
    await driver.run_until_idle()
    with pytest.raises(ContextError, match="in a step use get_step_info"):
        driver.result(in_step)
    with pytest.raises(ContextError, match="in workflow code use get_context"):
        driver.result(in_workflow)


@workflow
async def logs_once() -> str:
    get_context().log("charging", amount=5)
    await tick(1)
    get_context().log("charged", level="warning")
    return "done"


async def test_log_names_the_run_and_is_silent_while_replaying(
    make_driver: Make, caplog: pytest.LogCaptureFixture
) -> None:
    driver = make_driver(logs_once, tick)
    with caplog.at_level(logging.INFO, logger="engine.workflow"):
        run_id = driver.start(logs_once)
        await driver.run_until_idle()
    assert driver.result(run_id) == "done"
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "engine.workflow"]
    assert lines == [  # once each, also when the driver replays the run before every input
        (logging.INFO, f"charging [workflow 'logs_once' run {run_id}] amount=5"),
        (logging.WARNING, f"charged [workflow 'logs_once' run {run_id}]"),
    ]
