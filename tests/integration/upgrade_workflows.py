"""Workflows of the schema upgrade test (tests/integration/test_schema_upgrade.py): a run that waits on a hook
between steps, so the test decides which release of the processes carries out each part of it."""

from __future__ import annotations

from engine import hook, step, workflow


@step
async def double(x: int) -> int:
    return 2 * x


@workflow
async def staged(x: int) -> list[object]:
    a = await double(x)
    first = await hook("upgrade", timeout="10m")  # phase 2 (new orchestrator, old worker) carries on from here
    b = await double(a)
    second = await hook("rollback", timeout="10m")  # phase 3 (old orchestrator, new worker) carries on from here
    c = await double(b)
    return [a, b, c, first, second]
