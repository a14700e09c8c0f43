"""What a run whose ``StartWorkflow`` was dead-lettered gets: a failed ``RunFinished``, so whoever waits hears why.

A start that cannot be applied (unknown workflow, arguments that cannot be decoded, processing that fails,
outputs too large for Kafka) never creates the run. Without an answer, ``client.result`` (or a parent's child
handle, or a schedule's overlap bookkeeping) would wait forever. So the orchestrator writes, in the same
transaction as the dead letter, a ``RunFinished`` with status ``failed`` and an ``ErrorInfo`` naming the reason
to ``<prefix>.completions`` (and to the parent's inbox for a child or scheduled run). It carries the
``DEAD_LETTERED`` header: the run never started, and if the start is redriven after a fix the run's real
completion follows it (readers prefer the later one).

Invariant: only for a run id the partition does not know (neither running nor finished): a duplicate start
of an existing run is not a dead letter, and a run that exists is never told it failed by a bad copy of its
start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine import RunStatus
from engine.runtime import (
    ErrorInfo,
    HistoryEvent,
    RunFinished,
    StartTimer,
    StartWorkflow,
    StepResult,
    TimerElapsed,
    TimerFired,
    TimerScheduled,
)
from schemas import RecordCodec, SchemaError
from streams._headers import DEAD_LETTERED
from streams.processors._outputs import Output


@dataclass(frozen=True, slots=True)
class StartFields:
    """What a start says about its run: enough to tell the run's waiters (and its parent) that it failed."""

    run_id: str
    workflow_name: str
    parent_run_id: str | None = None
    parent_position: int | None = None

    @classmethod
    def of(cls, start: StartWorkflow) -> StartFields:
        """The fields of a decoded start."""
        return cls(start.run_id, start.workflow_name, start.parent_run_id, start.parent_position)

    @classmethod
    def from_envelope(cls, records: RecordCodec, value: bytes) -> StartFields | None:
        """The fields of a ``StartWorkflow`` whose Avro envelope decodes although the record does not (its
        arguments payload cannot be decoded); None for anything else."""
        try:
            envelope = records.codec.decode(value)
        except SchemaError:
            return None
        if envelope.name != "StartWorkflow":
            return None
        fields = envelope.record
        parent, position = fields.get("parent_run_id"), fields.get("parent_position")
        return cls(
            str(fields["run_id"]),
            str(fields["workflow_name"]),
            parent if isinstance(parent, str) else None,
            position if isinstance(position, int) else None,
        )


def start_failed(
    records: RecordCodec, start: StartFields, error_type: str, reason: str, address: str, now_ms: int
) -> list[Output]:
    """The failed ``RunFinished`` of a run whose start (read at ``address``, ``<inbox>[<p>]@<offset>``) was
    dead-lettered with ``reason``: to ``.completions`` with the ``DEAD_LETTERED`` header, and to the parent's inbox
    for a child or scheduled run. ``error_type`` is the qualified name the client rebuilds the error from."""
    message = f"{reason} (its StartWorkflow was dead-lettered from {address}: see `kflow dlq list`)"
    finished = RunFinished(
        run_id=start.run_id,
        workflow_name=start.workflow_name,
        status=RunStatus.FAILED,
        error=ErrorInfo(type=error_type, message=message, retryable=False),
        parent_run_id=start.parent_run_id,
        parent_position=start.parent_position,
        started_at=now_ms,
        finished_at=now_ms,
    )
    encoded = records.encode(finished)
    outputs = [Output("completions", start.run_id.encode(), encoded, headers=((DEAD_LETTERED, address.encode()),))]
    if start.parent_run_id:
        outputs.append(Output("inbox", start.parent_run_id.encode(), encoded))
    return outputs


def failed_outcome(records: RecordCodec, value: bytes, reason: str) -> StepResult | RunFinished | None:
    """A ``StepResult`` or a child's ``RunFinished`` whose Avro envelope decodes but whose payload does not (a
    class this process's allow-list lacks, a corrupt value), turned into the failure of that attempt or child,
    with ``reason``: the run goes on (its retry policy, its ``try``) instead of waiting on a dead letter. None
    for anything else."""
    try:
        envelope = records.codec.decode(value)
    except SchemaError:
        return None
    fields = envelope.record
    error = ErrorInfo(type="schemas._errors.PayloadError", message=reason, retryable=False)
    if envelope.name == "StepResult":
        return StepResult(
            run_id=str(fields["run_id"]),
            position=int(str(fields["position"])),
            attempt=int(str(fields["attempt"])),
            ok=False,
            error=error,
            worker=str(fields["worker"]),
            started_at=int(str(fields["started_at"])),
            finished_at=int(str(fields["finished_at"])),
            mac=mac if isinstance(mac := fields.get("mac"), bytes) else None,  # checked like any StepResult's
        )
    if envelope.name == "RunFinished" and isinstance(fields.get("parent_run_id"), str):
        position = fields.get("parent_position")
        return RunFinished(
            run_id=str(fields["run_id"]),
            workflow_name=str(fields["workflow_name"]),
            status=RunStatus.FAILED,
            error=error,
            parent_run_id=str(fields["parent_run_id"]),
            parent_position=position if isinstance(position, int) else None,
            started_at=int(str(fields["started_at"])),
            finished_at=int(str(fields["finished_at"])),
        )
    return None


def rearmed(
    histories: Mapping[str, Sequence[HistoryEvent]],
    record: object,
    records: RecordCodec,
    now_ms: int,
    trace: tuple[tuple[str, bytes], ...] = (),
) -> list[Output]:
    """For a refused (unsigned or badly signed) ``TimerFired``: the ``StartTimer`` that arms that timer again at the
    time the run recorded for it, when the run is waiting on it (``trace``: the run's trace-context headers). A real
    fire from a timer processor without the secret (one still running during the switch to ``KFLOW_SECRET``) is so
    fired again, signed, instead of lost; a forged one only re-arms a timer at its own time, which changes nothing.
    Empty for anything else."""
    history = histories.get(record.run_id) if isinstance(record, TimerFired) else None
    if history is None or not isinstance(record, TimerFired):  # (a run whose snapshot proved unreadable: gone)
        return []
    armed = [e for e in history if isinstance(e, TimerScheduled) and e.timer_id == record.timer_id]
    if not armed or any(isinstance(e, TimerElapsed) and e.timer_id == record.timer_id for e in history):
        return []
    timer = armed[-1]
    again = StartTimer(
        run_id=record.run_id,
        timer_id=timer.timer_id,
        position=timer.position,
        kind=timer.kind,
        fire_at=timer.fire_at,
        requested_at=now_ms,
    )
    return [Output("timers", record.run_id.encode(), records.encode(again), headers=trace)]
