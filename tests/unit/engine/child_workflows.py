"""The workflows of the child workflow tests (test_engine_children*.py) and what they look at."""

from __future__ import annotations

from collections.abc import Callable

from engine import (
    ChildWorkflowFailedError,
    ChildWorkflowHandle,
    continue_as_new,
    sleep,
    start_child_workflow,
    step,
    workflow,
)
from engine.runtime import (
    CallArgs,
    ChildWorkflowStarted,
)
from engine.testing import InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step
async def double(x: int) -> int:
    return 2 * x


@workflow
async def doubler(x: int) -> int:
    return await double(x)


@workflow
async def exploder(message: str) -> None:
    await sleep(0)
    raise ValueError(message)


@workflow
async def parent_waits(x: int) -> int:
    y = await start_child_workflow(doubler, x)
    assert isinstance(y, int)
    z = await start_child_workflow("doubler", x=y)  # by name, kwargs passed through
    assert isinstance(z, int)
    return z + 1


@workflow
async def parent_catches(message: str) -> str:
    try:
        await start_child_workflow(exploder, message)
    except ChildWorkflowFailedError as exc:
        return f"caught: {exc}"
    return "not reached"


@workflow
async def parent_propagates() -> None:
    await start_child_workflow(exploder, "boom")


@workflow
async def fire_and_forget(x: int) -> list[object]:
    handle = await start_child_workflow(doubler, x, wait_for_completion=False)
    assert isinstance(handle, ChildWorkflowHandle)
    mine = await double(100)  # the parent keeps working while the child runs
    return [handle.child_run_id, mine, await handle.result()]


@workflow
async def counter(n: int) -> int:
    await sleep(0)
    if n < 3:
        continue_as_new(n + 1)
    return n * 10


@workflow
async def parent_of_chain() -> int:
    result = await start_child_workflow(counter, 0)
    assert isinstance(result, int)
    return result


def child_started(driver: InMemoryDriver, run_id: str) -> list[ChildWorkflowStarted]:
    return [e for e in driver.history(run_id) if isinstance(e, ChildWorkflowStarted)]


def args_of(*args: object) -> CallArgs:
    return CallArgs(tuple(args), {})
