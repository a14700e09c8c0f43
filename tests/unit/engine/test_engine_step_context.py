"""Step context: set in workflow code, recorded in history, carried to later steps, read-only there."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from engine import (
    FatalError,
    KflowError,
    NonDeterminismError,
    Registry,
    StepContext,
    get_step_context,
    has_step_context,
    set_step_context,
    sleep,
    step,
    workflow,
)
from engine.runtime import (
    CallArgs,
    ExecuteStep,
    StepContextSet,
    StepScheduled,
    UnresolvedStepContext,
    context_from_wire,
    execute_step,
)
from engine.testing import FakeClock, InMemoryDriver

Make = Callable[..., InMemoryDriver]


class TenantCtx(StepContext):
    tenant: str
    user: str = ""


class OtherCtx(StepContext):
    region: str


@step
async def read_ctx() -> object:
    if not has_step_context():
        return None
    ctx = get_step_context()
    assert isinstance(ctx, TenantCtx)
    return {"tenant": ctx.tenant, "user": ctx.user}


@step
def read_ctx_sync() -> object:
    ctx = get_step_context()
    assert isinstance(ctx, TenantCtx)
    return ctx.tenant


@step(max_retries=0)
async def tries_to_set() -> str:
    await set_step_context(TenantCtx(tenant="hijack"))
    return "set"


def test_with_updates_returns_a_new_validated_instance() -> None:
    ctx = TenantCtx(tenant="a")
    updated = ctx.with_updates(user="u1")
    assert (ctx.user, updated.user, updated.tenant) == ("", "u1", "a")
    assert type(updated) is TenantCtx
    with pytest.raises(ValidationError, match="frozen"):
        ctx.tenant = "b"


async def test_context_reaches_later_steps_only(make_driver: Make, event_names: Callable) -> None:
    @workflow(context_class=TenantCtx)
    async def wf() -> object:
        before = await read_ctx()
        assert not has_step_context()
        await set_step_context(TenantCtx(tenant="acme"))
        assert has_step_context() and get_step_context() == TenantCtx(tenant="acme")
        after = await read_ctx()
        sync = await read_ctx_sync()
        return [before, after, sync]

    driver = make_driver(wf, read_ctx, read_ctx_sync)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    assert driver.result(run_id) == [None, {"tenant": "acme", "user": ""}, "acme"]
    history = driver.history(run_id)
    assert event_names(history)[:4] == ["WorkflowStarted", "StepScheduled", "StepCompleted", "StepContextSet"]
    (ctx_set,) = [e for e in history if isinstance(e, StepContextSet)]
    assert ctx_set.position == 1
    assert ctx_set.context == {"type": f"{__name__}.TenantCtx", "data": {"tenant": "acme", "user": ""}}
    assert [e.position for e in history if isinstance(e, StepScheduled)] == [0, 2, 3]


async def test_with_updates_and_second_set_survive_replay(make_driver: Make, clock: FakeClock) -> None:
    @workflow(context_class=TenantCtx)
    async def wf() -> object:
        await set_step_context(TenantCtx(tenant="acme"))
        first = await read_ctx()
        await sleep("1h")  # suspends: in always_replay mode the rest runs on a rebuilt run
        assert get_step_context() == TenantCtx(tenant="acme")
        await set_step_context(get_step_context().with_updates(user="bob"))
        second = await read_ctx()
        await sleep("1h")
        third = await read_ctx()
        return [first, second, third, get_step_context().model_dump()]

    driver = make_driver(wf, read_ctx)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    clock.advance("1h")
    await driver.run_until_idle()
    clock.advance("1h")
    await driver.run_until_idle()
    bob = {"tenant": "acme", "user": "bob"}
    assert driver.result(run_id) == [{"tenant": "acme", "user": ""}, bob, bob, bob]
    sets = [e.context for e in driver.history(run_id) if isinstance(e, StepContextSet)]
    assert [s["data"] for s in sets] == [{"tenant": "acme", "user": ""}, bob]  # type: ignore[index]


async def test_execute_step_commands_carry_the_context(clock: FakeClock) -> None:
    @workflow
    async def wf() -> object:
        await read_ctx()
        await set_step_context(TenantCtx(tenant="t"))
        return await read_ctx()

    driver = InMemoryDriver(Registry([wf, read_ctx]), clock)
    run_id = driver.start(wf)
    first = driver._tasks.popleft()
    assert first.context is None
    driver.deliver(await execute_step(driver.registry, first, clock))
    second = driver._tasks[0]
    assert second.context == {"type": f"{__name__}.TenantCtx", "data": {"tenant": "t", "user": ""}}
    await driver.run_until_idle()
    assert driver.result(run_id) == {"tenant": "t", "user": ""}


async def test_wrong_context_class_raises_type_error_in_workflow(make_driver: Make) -> None:
    @workflow(context_class=TenantCtx)
    async def wf() -> str:
        try:
            await set_step_context(OtherCtx(region="eu"))
        except TypeError as exc:
            assert "TenantCtx" in str(exc)
        try:
            await set_step_context({"tenant": "x"})  # type: ignore[arg-type]
        except TypeError:
            pass
        return "ok" if not has_step_context() else "set"

    driver = make_driver(wf)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    assert driver.result(run_id) == "ok"
    assert not [e for e in driver.history(run_id) if isinstance(e, StepContextSet)]


async def test_set_inside_a_step_fails_the_step(make_driver: Make) -> None:
    @workflow
    async def wf() -> str:
        await set_step_context(TenantCtx(tenant="acme"))
        try:
            await tries_to_set()
        except FatalError as exc:
            assert "read-only" in str(exc)
            return get_step_context().model_dump()["tenant"]  # type: ignore[no-any-return]
        return "no error"

    driver = make_driver(wf, tries_to_set)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    assert driver.result(run_id) == "acme"


async def test_no_context_set(make_driver: Make) -> None:
    @workflow
    async def wf() -> object:
        has = has_step_context()
        try:
            get_step_context()
        except KflowError:
            missing = True
        return [has, missing, await read_ctx()]

    driver = make_driver(wf, read_ctx)
    run_id = driver.start(wf)
    await driver.run_until_idle()
    assert driver.result(run_id) == [False, True, None]


async def test_outside_workflow_and_step() -> None:
    assert not has_step_context()
    with pytest.raises(KflowError):
        get_step_context()
    with pytest.raises(KflowError):
        await set_step_context(TenantCtx(tenant="x"))


async def test_unknown_context_class_is_exposed_read_only(clock: FakeClock) -> None:
    seen: list[object] = []

    @step
    async def peek() -> str:
        ctx = get_step_context()
        seen.append(ctx)
        return str(ctx.tenant)

    cmd = ExecuteStep(
        run_id="r",
        workflow_name="wf",
        position=0,
        attempt=1,
        step_name="peek",
        args=CallArgs((), {}),
        scheduled_at=0,
        context={"type": "not_loaded_module.Ctx", "data": {"tenant": "zeta"}},
    )
    result = await execute_step(Registry([peek]), cmd, clock)
    assert (result.ok, result.result) == (True, "zeta")
    assert isinstance(seen[0], UnresolvedStepContext)
    with pytest.raises(ValidationError, match="frozen"):
        seen[0].tenant = "other"  # type: ignore[attr-defined]
    assert not has_step_context()  # reset after the step


def test_malformed_wire_context_is_rejected() -> None:
    with pytest.raises(KflowError):
        context_from_wire({"data": {}})


async def test_replay_checks_the_context_position(clock: FakeClock) -> None:
    @workflow(name="ctx_wf")
    async def v1() -> object:
        await set_step_context(TenantCtx(tenant="a"))
        await sleep("1h")
        return await read_ctx()

    @workflow(name="ctx_wf")
    async def v2() -> object:  # the context change was removed: a step now sits at position 0
        await read_ctx()
        await sleep("1h")
        return await read_ctx()

    driver = InMemoryDriver(Registry([v1, read_ctx]), clock)
    run_id = driver.start(v1)
    await driver.run_until_idle()
    driver.evict(run_id)
    driver.registry = Registry([v2, read_ctx])
    clock.advance("1h")
    await driver.run_until_idle()
    with pytest.raises(NonDeterminismError, match="context"):
        driver.result(run_id)
