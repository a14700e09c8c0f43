"""A child's completion is applied only when it comes from the child started at that position (or a run that child
continued as): any other run's ``RunFinished`` naming the parent is rejected (``Transition.rejected``), and the
parent keeps waiting for the real one."""

from __future__ import annotations

from child_workflows import Make, child_started

from engine import continue_as_new, sleep, start_child_workflow, workflow
from engine.runtime import ChildWorkflowCompleted, RunFinished
from engine.testing import FakeClock, InMemoryDriver

HOUR_MS = 3_600_000


@workflow
async def slow_child(links: int = 0) -> str:
    await sleep(0)
    if links:
        continue_as_new(links - 1)  # a chain: the last run's completion is the child's
    await sleep("1h")
    return "real"


@workflow
async def waits_for_slow(links: int) -> object:
    return await start_child_workflow(slow_child, links)


def _forged(parent: str, run_id: str) -> RunFinished:
    return RunFinished(
        run_id=run_id,
        workflow_name="slow_child",
        status="completed",
        result="forged",
        parent_run_id=parent,
        parent_position=0,
        started_at=0,
        finished_at=0,
    )


async def _parent_waiting(make_driver: Make, links: int) -> tuple[InMemoryDriver, str, str]:
    driver = make_driver(waits_for_slow, slow_child)
    parent = driver.start(waits_for_slow, links)
    await driver.run_until_idle()
    [started] = child_started(driver, parent)
    return driver, parent, started.child_run_id


async def test_a_completion_from_another_run_is_rejected_and_the_parent_waits_for_its_child(
    make_driver: Make, clock: FakeClock
) -> None:
    driver, parent, child = await _parent_waiting(make_driver, 0)
    before = driver.history(parent)
    transition = driver.deliver(_forged(parent, "intruder"))
    assert transition.rejected and transition.events == () and transition.commands == ()
    assert transition.ignored == (
        f"RunFinished of run intruder names position 0 of run {parent}, where child run {child} was started: "
        "it is neither that run nor one it continued as"
    )
    assert driver.history(parent) == before and driver.status(parent) == "running"
    clock.advance(HOUR_MS)
    await driver.run_until_idle()
    assert driver.result(parent) == "real"
    completed = [e for e in driver.history(parent) if isinstance(e, ChildWorkflowCompleted)]
    assert [(e.child_run_id, e.result) for e in completed] == [(child, "real")]


async def test_the_last_run_of_a_childs_chain_completes_it_and_a_stranger_does_not(
    make_driver: Make, clock: FakeClock
) -> None:
    driver, parent, _ = await _parent_waiting(make_driver, 2)
    rejected = driver.deliver(_forged(parent, "intruder"))
    assert rejected.rejected and "neither that run nor one it continued as" in str(rejected.ignored)
    clock.advance(HOUR_MS)
    await driver.run_until_idle()
    assert driver.result(parent) == "real"  # from the chain's third run, not from the child's own id


async def test_duplicates_and_intermediate_links_are_ignored_not_rejected(make_driver: Make, clock: FakeClock) -> None:
    driver, parent, child = await _parent_waiting(make_driver, 0)
    link = RunFinished(
        run_id=child,
        workflow_name="slow_child",
        status="continued_as_new",
        next_run_id="next",
        parent_run_id=parent,
        parent_position=0,
        started_at=0,
        finished_at=0,
    )
    waiting = driver.deliver(link)
    assert waiting.ignored is not None and not waiting.rejected
    clock.advance(HOUR_MS)
    await driver.run_until_idle()
    again = driver.deliver(_forged(parent, child))
    assert again.ignored is not None and not again.rejected  # the run is over: a late record, not a stranger
