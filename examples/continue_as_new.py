"""Continue-as-new: a long loop as a chain of short runs, each with a fresh history
(``python -m examples.continue_as_new``)."""

from __future__ import annotations

from engine import continue_as_new, step, workflow
from streams import Client
from streams.dev import Say


@step
async def process_page(offset: int, size: int) -> int:
    return sum(range(offset, offset + size))


@workflow
async def batch(offset: int = 0, size: int = 10, total: int = 50, acc: int = 0) -> int:
    """Process one page, then continue with the next page in a new run."""
    acc += await process_page(offset, size)
    if offset + size < total:
        continue_as_new(offset + size, size, total, acc)
    return acc


async def scenario(client: Client, say: Say) -> None:
    first = await client.start("batch", 0, 10, 50)
    say(f"sum of 0..49 = {await client.result(first, timeout=60)} (client.result follows the chain)")
    chain, run = [first], await client.get_run(first)
    while run is not None and run.next_run_id:
        chain.append(run.next_run_id)
        run = await client.get_run(run.next_run_id)
    say(f"chain of {len(chain)} runs: {' -> '.join(r[:8] for r in chain)}")


if __name__ == "__main__":
    from examples._runner import main

    main("examples.continue_as_new", scenario)
