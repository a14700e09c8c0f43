"""continue_as_new: bare and awaited, deterministic successor ids, linked runs."""

from __future__ import annotations

from collections.abc import Callable

from engine import Registry, continue_as_new, sleep, step, workflow
from engine.runtime import Run, WorkflowContinuedAsNew, WorkflowStarted
from engine.testing import InMemoryDriver

Make = Callable[..., InMemoryDriver]


@step
async def process(offset: int) -> int:
    return offset + 10


@workflow
async def batch(offset: int, *, limit: int) -> int:
    new_offset = await process(offset)
    if new_offset < limit:
        continue_as_new(new_offset, limit=limit)  # bare, pyworkflow 0.1.10 style
    return new_offset


@workflow
async def awaited_style(n: int) -> int:
    await sleep(0)
    if n < 3:
        await continue_as_new(n + 1)  # awaited, 0.4 style: raises when called
    return n


async def test_bare_continue_as_new_chains_runs(make_driver: Make, event_names: Callable) -> None:
    driver = make_driver(batch, process)
    first = driver.start(batch, 0, limit=30)
    await driver.run_until_idle()
    assert driver.result(first) == 30
    history = driver.history(first)
    assert event_names(history)[-1] == "WorkflowContinuedAsNew"
    ending = history[-1]
    assert isinstance(ending, WorkflowContinuedAsNew)
    assert (ending.args.args, ending.args.kwargs) == ((10,), {"limit": 30})
    successor = driver.history(ending.next_run_id)
    assert isinstance(successor[0], WorkflowStarted)
    assert successor[0].continued_from == first
    assert len(successor) < len(history) + 3  # a fresh history, not an ever-growing one


async def test_awaited_continue_as_new(make_driver: Make) -> None:
    driver = make_driver(awaited_style)
    run_id = driver.start(awaited_style, 0)
    await driver.run_until_idle()
    assert driver.status(run_id) == "continued_as_new"
    assert driver.result(run_id) == 3


async def test_successor_id_is_the_same_on_replay(make_driver: Make) -> None:
    driver = make_driver(batch, process)
    first = driver.start(batch, 0, limit=20)
    await driver.run_until_idle()
    ending = driver.history(first)[-1]
    assert isinstance(ending, WorkflowContinuedAsNew)
    replayed = Run.replay(Registry([batch, process]), driver.history(first))
    assert replayed.status == "continued_as_new"
    other_driver = make_driver(batch, process)
    again = other_driver.start(batch, 0, limit=20)
    await other_driver.run_until_idle()
    other_end = other_driver.history(again)[-1]
    assert isinstance(other_end, WorkflowContinuedAsNew)
    assert other_end.next_run_id == ending.next_run_id  # same run id -> same successor id
    assert len(ending.next_run_id) == 32
