"""The workflow of the metrics, health and JSON log test (test_observability.py): a step that fails once, logging."""

from __future__ import annotations

import logging

from engine import RetryableError, step, workflow

log = logging.getLogger("observe_workflows")
_attempts: dict[str, int] = {}  # per worker process (the test runs one worker)


@step(max_retries=3)
async def flaky(order_id: str) -> str:
    """Logs a line (it carries the run id with --log-format json), fails the first time, then succeeds."""
    _attempts[order_id] = _attempts.get(order_id, 0) + 1
    log.warning("charging %s, attempt %d", order_id, _attempts[order_id])
    if _attempts[order_id] == 1:
        raise RetryableError("card network busy", retry_after="1s")
    return f"receipt-{order_id}"


@workflow(name="observed")
async def observed(order_id: str) -> str:
    """One step, retried once."""
    return await flaky(order_id)
