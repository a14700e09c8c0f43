"""The workflows of the traces test (test_tracing.py): three steps, one failing once, and a sleep; a parent with a
child; a run waiting on a hook across an orchestrator restart."""

from __future__ import annotations

from engine import RetryableError, hook, sleep, start_child_workflow, step, workflow

_attempts: dict[str, int] = {}  # per process: the test runs its worker in-process


@step
async def prepare(order_id: str) -> str:
    return f"prepared-{order_id}"


@step(max_retries=3, retry_delay=[0.05])
async def charge(prepared: str) -> str:
    """Fails its first attempt (per argument), then succeeds."""
    _attempts[prepared] = _attempts.get(prepared, 0) + 1
    if _attempts[prepared] == 1:
        raise RetryableError("card network busy")
    return f"charged-{prepared}"


@step
async def ship(charged: str) -> str:
    return f"shipped-{charged}"


@workflow(name="traced_order")
async def traced_order(order_id: str) -> str:
    """prepare, charge (retried once), a durable sleep, ship."""
    charged = await charge(await prepare(order_id))
    await sleep("200ms")
    return await ship(charged)


@workflow(name="traced_parent")
async def traced_parent(order_id: str) -> str:
    return await start_child_workflow(traced_child, order_id)


@workflow(name="traced_child")
async def traced_child(order_id: str) -> str:
    return await prepare(order_id)


@workflow(name="traced_waiting")
async def traced_waiting(order_id: str) -> str:
    """A step, a hook (the test restarts the orchestrator meanwhile), another step."""
    prepared = await prepare(order_id)
    await hook("go")
    return await ship(prepared)
