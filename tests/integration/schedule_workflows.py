"""Workflows the schedule tests start (importable as ``-A schedule_workflows``)."""

from __future__ import annotations

from engine import scheduled_workflow, sleep, step, workflow


@step
async def stamp(tag: str, version: int) -> str:
    return f"{tag} v{version}"


@workflow
async def tick(tag: str, version: int = 1) -> str:
    """A quick run: one step."""
    return await stamp(tag, version)


@workflow
async def lasting(tag: str, seconds: float) -> str:
    """A run that outlasts a 1 s interval: a durable sleep (cancellable at it), then one step."""
    await sleep(seconds)
    return await stamp(tag, 1)


@scheduled_workflow(interval="1s", schedule_id="declared-tick", args=("declared",), overlap_policy="allow_all")
async def declared_tick(tag: str, version: int = 1) -> str:
    """A quick run whose schedule is declared in code (made to exist by activation, not by decorating)."""
    return await stamp(tag, version)
