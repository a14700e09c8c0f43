"""The trace context of each traced running run of one inbox partition, and the spans the orchestrator records.

A run's context is its ``RunWorkflow:<wf>`` span, recorded when the run starts as a child of the span on its
``StartWorkflow`` (docs/operations.md, "Traces"). Every record the orchestrator writes for the run carries it as
headers; it is kept here while the run runs and restored by a new owner of the partition from the headers of the
run's ``WorkflowStarted`` history record (or of its ``RunSnapshot``). Without OpenTelemetry nothing is kept.
"""

from __future__ import annotations

from engine.runtime import Command, RunFinished, StartWorkflow
from streams._tracing import Carrier, enabled, record_span


class RunTraces:
    """Run id → the run's trace context (only runs that have one)."""

    def __init__(self) -> None:
        self._runs: dict[str, Carrier] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def of(self, run_id: str) -> Carrier:
        """The run's context (``()``: not traced)."""
        return self._runs.get(run_id, ())

    def keep(self, run_id: str, trace: Carrier) -> None:
        """Remember the run's context (read back on a restore); ``()`` changes nothing."""
        if trace:
            self._runs[run_id] = trace

    def drop(self, run_id: str) -> None:
        """Forget the run's context (it finished, or its start was undone)."""
        self._runs.pop(run_id, None)

    def clear(self) -> None:
        """Forget every context (the partition was dropped)."""
        self._runs.clear()

    def started(self, start: StartWorkflow, parent: Carrier) -> Carrier:
        """Record ``RunWorkflow:<wf>`` for a run just started, a child of ``parent`` (the headers of its
        ``StartWorkflow``; ``()``: a new trace), and keep it as the run's context."""
        if not enabled():
            return ()
        attributes = {"kflow.run_id": start.run_id, "kflow.workflow": start.workflow_name}
        trace = record_span(f"RunWorkflow:{start.workflow_name}", parent, attributes, kind="consumer")
        self.keep(start.run_id, trace)
        return trace

    def command(self, run_id: str, trace: Carrier, command: Command) -> Carrier:
        """The headers of the records of a command of a traced run (``trace``: its context): the run's context; a
        child's ``StartWorkflow`` gets a ``StartChildWorkflow:<wf>`` span's instead, and the run's own
        ``RunFinished`` records ``CompleteWorkflow:<wf>`` (status ERROR when the run failed)."""
        if isinstance(command, StartWorkflow) and command.parent_run_id == run_id and command.continued_from is None:
            attributes: dict[str, str | int] = {
                "kflow.run_id": command.run_id,
                "kflow.workflow": command.workflow_name,
                "kflow.parent_run_id": run_id,
            }
            if command.parent_position is not None:
                attributes["kflow.position"] = command.parent_position
            return record_span(f"StartChildWorkflow:{command.workflow_name}", trace, attributes, kind="producer")
        if isinstance(command, RunFinished) and command.run_id == run_id:
            error = None
            if command.status == "failed":
                error = "failed" if command.error is None else f"{command.error.type}: {command.error.message}"
            attributes = {
                "kflow.run_id": run_id,
                "kflow.workflow": command.workflow_name,
                "kflow.status": command.status,
            }
            record_span(f"CompleteWorkflow:{command.workflow_name}", trace, attributes, error=error)
        return trace
