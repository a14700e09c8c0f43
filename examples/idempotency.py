"""Idempotency keys: racing starts with one key yield one run (``python -m examples.idempotency``).

The run id is derived from (workflow name, key), and the run's partition keeps only the first start, so
the answer is the same whether the first run is running, completed or failed.
"""

from __future__ import annotations

import asyncio

from engine import step, workflow
from streams import Client
from streams.dev import Say


@step
async def charge(order_id: str, amount: float) -> str:
    return f"charged {amount} for {order_id}"


@workflow
async def pay(order_id: str, amount: float) -> str:
    return await charge(order_id, amount)


async def scenario(client: Client, say: Say) -> None:
    ids = await asyncio.gather(*(client.start("pay", "o-1", 9.5, idempotency_key="order-o-1") for _ in range(5)))
    assert len(set(ids)) == 1, ids
    say(f"5 racing starts -> 1 run {ids[0]}: {await client.result(ids[0], timeout=30)}")
    again = await client.start("pay", "o-1", 9.5, idempotency_key="order-o-1")
    starts = [e for e in await client.get_events(again) if type(e).__name__ == "WorkflowStarted"]
    say(f"a start after completion returns the same run: {again == ids[0]}, started {len(starts)} time(s)")


if __name__ == "__main__":
    from examples._runner import main

    main("examples.idempotency", scenario)
