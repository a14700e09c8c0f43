"""Step context: set once in the workflow, read in every later step (``python -m examples.step_context``)."""

from __future__ import annotations

from engine import StepContext, get_step_context, set_step_context, step, workflow
from streams import Client
from streams.dev import Say


class Tenant(StepContext):
    tenant: str
    region: str = "eu"


@step
async def bill(amount: float) -> str:
    ctx = get_step_context()
    assert isinstance(ctx, Tenant)
    return f"billed {amount} to {ctx.tenant} in {ctx.region}"


@workflow(context_class=Tenant)
async def monthly(tenant: str, amount: float) -> list[str]:
    await set_step_context(Tenant(tenant=tenant))
    first = await bill(amount)
    await set_step_context(get_step_context().with_updates(region="us"))
    return [first, await bill(amount)]


async def scenario(client: Client, say: Say) -> None:
    run_id = await client.start("monthly", "acme", 9.5)
    say(f"monthly: {await client.result(run_id, timeout=30)}")


if __name__ == "__main__":
    from examples._runner import main

    main("examples.step_context", scenario)
