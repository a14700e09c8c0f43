"""Workflows of test_pyworkflow_parity.py: get_context() in a workflow, get_step_info() in a step, a retry at a
datetime (importable as ``-A context_workflows``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine import RetryableError, continue_as_new, get_context, get_step_info, start_child_workflow, step, workflow

RETRY_AFTER_S = 3.0
_ATTEMPTS: dict[str, int] = {}


@step(max_retries=3)
async def keyed(tag: str) -> dict[str, object]:
    """Fails its first attempt asking to be retried at a time ``RETRY_AFTER_S`` away; returns its step info."""
    info = get_step_info()
    _ATTEMPTS[tag] = _ATTEMPTS.get(tag, 0) + 1
    if _ATTEMPTS[tag] == 1:
        raise RetryableError("not yet", retry_after=datetime.now(UTC) + timedelta(seconds=RETRY_AFTER_S), tag=tag)
    return {"key": info.idempotency_key, "attempt": info.attempt, "position": info.position, "step": info.step_name}


@workflow(name="context_child")
async def context_child() -> dict[str, object]:
    ctx = get_context()
    return {"parent_run_id": ctx.parent_run_id, "depth": ctx.depth}


@workflow(name="context_fields", recover_on_worker_loss=True, max_recovery_attempts=2)
async def context_fields(tag: str, hops: int) -> dict[str, object]:
    ctx = get_context()
    if hops > 0:
        continue_as_new(tag, hops - 1)
    step_info = await keyed(tag)
    child = await start_child_workflow(context_child)
    return {
        "run_id": ctx.run_id,
        "workflow_name": ctx.workflow_name,
        "parent_run_id": ctx.parent_run_id,
        "attempt": ctx.attempt,
        "continued_from": ctx.continued_from_run_id,
        "is_replaying": ctx.is_replaying,
        "uuid": str(ctx.uuid4()),
        "now_ms": round(ctx.now().timestamp() * 1000),
        "step": step_info,
        "child": child,
    }
