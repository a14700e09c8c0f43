"""Workflows the web UI tests run (``tests/integration/test_ui_*.py``): a hook to resume with a JSON payload checked
against a schema, a long sleep to cancel, a failing step, a parent with a child, a quick one for schedules."""

from __future__ import annotations

from pydantic import BaseModel

from engine import FatalError, hook, sleep, start_child_workflow, step, workflow


class Approval(BaseModel):
    ok: bool
    by: str


@step
async def prepare(order_id: str) -> str:
    return f"{order_id} prepared"


@step
async def ship(order_id: str, by: str) -> str:
    return f"{order_id} shipped, approved by {by}"


@step(max_retries=0)
async def explode(order_id: str) -> str:
    raise FatalError(f"{order_id} cannot be packed")


@workflow
async def approval(order_id: str) -> str:
    """A step, then a hook ``approval`` whose payload must be an ``Approval``, then a step with it."""
    await prepare(order_id)
    decision = await hook("approval", timeout="10m", payload_schema=Approval)
    assert isinstance(decision, Approval)
    return await ship(order_id, decision.by)


@workflow
async def stuck(order_id: str) -> str:
    """Sleeps for an hour: a run to cancel."""
    await sleep("1h")
    return order_id


@workflow
async def broken(order_id: str) -> str:
    """Fails: its one step raises a FatalError."""
    return await explode(order_id)


@workflow
async def parent(order_id: str) -> str:
    """Starts a child ``quick`` and returns what it returned, wrapped."""
    child = await start_child_workflow(quick, order_id)
    return f"parent of {child}"


@workflow
async def quick(tag: str) -> str:
    """One step."""
    return await prepare(tag)
