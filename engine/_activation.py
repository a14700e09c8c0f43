"""Starting the workflow coroutine and running one activation of it."""

from __future__ import annotations

import inspect

from ._core import RunCore
from ._finish import Outcome, emit_ending, outcome_of
from ._pending import Mode


def begin_workflow(core: RunCore) -> None:
    """Create the run's main task (it starts running at the next activation)."""
    args = core.started.args

    async def main() -> object:
        result = core.workflow.fn(*args.args, **args.kwargs)
        return await result if inspect.isawaitable(result) else result

    core.main = core.loop.create_task(main(), name=f"kflow:{core.run_id}")


def activate(core: RunCore) -> Outcome | None:
    """Run the workflow code until it waits again; return its outcome if it ended.

    The code runs at most ``core.limits.activation_steps`` loop callbacks; poison code (that budget
    exceeded, SystemExit / KeyboardInterrupt raised) ends the run as failed (see ``outcome_of``).
    In live mode an ending is recorded (terminal event + commands) and the run is torn down.
    """
    if not core.timed_out:
        core.loop.run_ready(core.now_ms, core.limits.activation_steps)
    if core.divergence is not None:
        return None
    outcome = outcome_of(core)
    if outcome is not None and core.mode is Mode.LIVE:
        finish(core, outcome)
    return outcome


def finish(core: RunCore, outcome: Outcome) -> None:
    """End the run with ``outcome``: record it (live mode) and close the workflow coroutines."""
    if core.mode is Mode.LIVE:
        emit_ending(core, outcome)
    core.status = outcome.status
    core.unwind()
