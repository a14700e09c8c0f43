"""Child workflows nest at most MAX_CHILD_DEPTH levels, with a clear error at the call that would go deeper."""

from __future__ import annotations

from collections.abc import Callable

from engine import ChildWorkflowDepthError, start_child_workflow, workflow
from engine.runtime import MAX_CHILD_DEPTH, WorkflowStarted
from engine.testing import InMemoryDriver

Make = Callable[..., InMemoryDriver]


@workflow
async def nest(level: int) -> object:
    """Start itself as a child until the engine refuses; report where that happened."""
    try:
        return await start_child_workflow(nest, level + 1)
    except ChildWorkflowDepthError as exc:
        return {"refused_at": level, "message": str(exc)}


async def test_nesting_stops_at_the_limit_with_a_clear_error(make_driver: Make) -> None:
    driver = make_driver(nest)
    run_id = driver.start(nest, 0)
    await driver.run_until_idle()
    outcome = driver.result(run_id)
    assert isinstance(outcome, dict) and outcome["refused_at"] == MAX_CHILD_DEPTH
    assert f"at most {MAX_CHILD_DEPTH} levels deep" in str(outcome["message"])


async def test_depth_is_recorded_on_each_run(make_driver: Make) -> None:
    driver = make_driver(nest)
    run_id = driver.start(nest, 0)
    await driver.run_until_idle()
    first = driver.history(run_id)[0]
    assert isinstance(first, WorkflowStarted) and first.depth == 0
