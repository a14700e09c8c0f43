"""The workflow the dead-letter tests deploy "after the fix" (``-A dlq_workflows``): at first the processors run
``e2e_workflows``, which does not define it, so its start is dead-lettered; then this module, and a redrive."""

from __future__ import annotations

from engine import step, workflow


@step
async def summarize(quarter: str) -> str:
    return f"report for {quarter}"


@workflow
async def late_report(quarter: str) -> str:
    return await summarize(quarter)
