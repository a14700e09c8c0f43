"""Child workflows: fan out to children on their own partitions, handle a failing one
(``python -m examples.children``)."""

from __future__ import annotations

import asyncio

from engine import ChildWorkflowFailedError, FatalError, start_child_workflow, step, workflow
from streams import Client
from streams.dev import Say


@step
async def price(item: str) -> float:
    if item == "unicorn":
        raise FatalError("no such item")
    return float(len(item))


@workflow
async def quote(item: str) -> float:
    return await price(item)


@workflow
async def basket(items: list[str]) -> dict[str, object]:
    """One child per item, all at once; a failed child is reported, not fatal."""
    results = await asyncio.gather(*(start_child_workflow(quote, item) for item in items), return_exceptions=True)
    prices = {item: r for item, r in zip(items, results, strict=True) if not isinstance(r, BaseException)}
    failed = [item for item, r in zip(items, results, strict=True) if isinstance(r, ChildWorkflowFailedError)]
    return {"prices": prices, "failed": failed, "total": sum(prices.values())}


async def scenario(client: Client, say: Say) -> None:
    run_id = await client.start("basket", ["apple", "pear", "unicorn"])
    say(f"basket: {await client.result(run_id, timeout=60)}")


if __name__ == "__main__":
    from examples._runner import main

    main("examples.children", scenario)
