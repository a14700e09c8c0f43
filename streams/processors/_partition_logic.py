"""The orchestrator's logic for one inbox partition, free of Kafka I/O.

``PartitionLogic.process`` turns one inbox record into the records to produce (history events, step
commands, timer requests, completions, dead letters). The Kafka loop around it (``streams.processors._orchestrator``)
makes each batch's outputs and its inbox offsets one transaction.

Invariant: a run's records all live on one partition number (keyed by run id), so the partition that
owns a run sees every input of that run, in order, and nothing else mutates its state.
"""

from __future__ import annotations

import logging

from engine import EventLimits, KflowError, Registry, RunStatus, UnknownWorkflowError, runtime
from engine.runtime import (
    ErrorInfo,
    ExecuteStep,
    Run,
    RunFinished,
    StartTimer,
    StartWorkflow,
    Transition,
    decide_schedule,
    is_schedule_key,
    schedule_key,
)
from schemas import RecordCodec, SchemaError
from streams.kafka import MAX_MESSAGE_BYTES
from streams.processors._outputs import Output, dead_letter
from streams.processors._partition_state import (
    FORGOTTEN,
    SNAPSHOT_AFTER_RECORDS,
    SNAPSHOT_MIN_AGE_MS,
    PartitionState,
)

log = logging.getLogger(__name__)

_INPUT_TYPES = (
    runtime.StartWorkflow,
    runtime.CancelWorkflow,
    runtime.ResumeHook,
    runtime.StepResult,
    runtime.TimerFired,
    runtime.RunFinished,
    runtime.ForgetRun,
    runtime.ScheduleCommand,
)
_Inbound = runtime.Input | runtime.ForgetRun | runtime.ScheduleCommand
"""What the inbox carries: run inputs, and ops records the orchestrator handles itself."""


class PartitionLogic(PartitionState):
    """Decisions of one inbox partition over its state (``PartitionState``: histories, live runs, markers).

    Args:
        registry: workflows and steps of the loaded module.
        records: codec for engine records.
        partition: the partition number (for dead letters).
        cache_size: how many live runs to keep (0 = replay every time).
    """

    def __init__(
        self,
        registry: Registry,
        records: RecordCodec,
        inbox_topic: str,
        partition: int,
        cache_size: int = 10_000,
        limits: EventLimits | None = None,
        snapshot_after: int = SNAPSHOT_AFTER_RECORDS,
        snapshot_min_age_ms: int = SNAPSHOT_MIN_AGE_MS,
    ) -> None:
        super().__init__(records, partition, cache_size, snapshot_after, snapshot_min_age_ms)
        self.registry = registry
        self.inbox_topic = inbox_topic
        self.limits = limits
        self.replays = 0

    # --- processing -------------------------------------------------------------------------

    def process(self, key: bytes | None, value: bytes, offset: int, now_ms: int) -> list[Output]:
        """Everything one inbox record leads to; never raises (bad input becomes a dead letter)."""
        try:
            record = self.records.decode(value)
        except SchemaError as exc:
            return [self._dead(key, value, offset, f"undecodable record: {exc}", exc)]
        if not isinstance(record, _INPUT_TYPES):
            return [self._dead(key, value, offset, f"{type(record).__name__} does not belong on the inbox", None)]
        run_id = _owner(record)
        if key is None or key.decode("utf-8", "replace") != run_id:
            return [self._dead(key, value, offset, f"key {key!r} is not the run id {run_id!r}", None)]
        history = self.histories.get(run_id)
        known, length = history is not None, len(history or ())
        schedule = self.schedules.get(run_id)
        try:
            outputs = self._apply(record, key, value, offset, now_ms)
        except BaseException as exc:  # a bug must not stop the partition: park the record with the reason
            # BaseException too: the engine fails a run whose workflow code raises SystemExit or
            # KeyboardInterrupt, but user code also runs outside it (payload schemas, result encoding),
            # and this is synchronous code, so a CancelledError here is never a real cancellation.
            log.exception("inbox record %s@%d failed", run_id, offset)
            self._revert(run_id, known, length, schedule)
            error = runtime.error_info(exc, with_traceback=False)  # never raises, unlike repr(exc)
            return [self._dead(key, value, offset, f"processing failed: {error.type}: {error.message}", exc)]
        too_big = next((o for o in outputs if len(o.value or b"") > MAX_MESSAGE_BYTES), None)
        if too_big is not None:
            # Kafka would refuse the transaction again and again: park the input instead (docs/notes.md #6).
            self._revert(run_id, known, length, schedule)
            return [
                self._dead(
                    key,
                    value,
                    offset,
                    f"processing it produced a {len(too_big.value or b''):,}-byte {too_big.topic} record, "
                    f"too large (limit {MAX_MESSAGE_BYTES:,} bytes); the run waits on this input",
                    None,
                )
            ]
        marker = self._retire_if_finished(run_id)
        if marker is not None:
            outputs.append(Output("state", key, marker, self.partition))
        return outputs

    def _revert(self, run_id: str, known: bool, length: int, schedule: runtime.ScheduleState | None) -> None:
        """Forget what handling an input did to a run, so memory matches what Kafka will hold."""
        if is_schedule_key(run_id):
            if schedule is None:
                self.schedules.pop(run_id, None)
            else:
                self.schedules[run_id] = schedule
            return
        self.cache.discard(run_id)
        if known:
            del self.histories[run_id][length:]
        else:
            self.histories.pop(run_id, None)

    def _apply(self, record: _Inbound, key: bytes, value: bytes, offset: int, now_ms: int) -> list[Output]:
        run_id = _owner(record)
        if isinstance(record, runtime.ForgetRun):
            return self._forget(run_id, key, value, offset)
        if is_schedule_key(run_id):
            if isinstance(record, (runtime.ScheduleCommand, runtime.TimerFired, runtime.RunFinished)):
                return self._schedule(run_id, record, key, value, offset, now_ms)
            return [self._dead(key, value, offset, f"{type(record).__name__} cannot go to schedule {run_id}", None)]
        if isinstance(record, runtime.ScheduleCommand):
            raise AssertionError("unreachable: a ScheduleCommand is owned by its schedule key")
        if self.finished.get(run_id) == FORGOTTEN:
            what = (
                "its id came from an idempotency key that is not reused: start with a new key"
                if isinstance(record, StartWorkflow)
                else "its state was dropped"
            )
            return [self._dead(key, value, offset, f"run {run_id} was compacted (kflow compact): {what}", None)]
        if run_id in self.finished:
            successor = self.successors.get(run_id)
            if isinstance(record, StartWorkflow) and record.parent_run_id and is_schedule_key(record.parent_run_id):
                # a schedule re-sent the start of a run that is over: tell it, or it waits for the run forever
                told = RunFinished(
                    run_id=run_id,
                    workflow_name=record.workflow_name,
                    status=self.finished[run_id],
                    next_run_id=successor,
                    parent_run_id=record.parent_run_id,
                    started_at=0,
                    finished_at=0,
                )
                return [Output("inbox", record.parent_run_id.encode(), self.records.encode(told))]
            if isinstance(record, runtime.CancelWorkflow) and successor is not None:
                # the run continued as new: the cancel is meant for the chain's current run
                forward = runtime.CancelWorkflow(
                    run_id=successor, reason=record.reason, requested_at=record.requested_at
                )
                return [Output("inbox", successor.encode(), self.records.encode(forward))]
            if isinstance(record, runtime.ResumeHook):  # the sender waits for an answer: tell it why
                return [
                    self._dead(
                        key,
                        value,
                        offset,
                        f"hook payload for token {record.token!r} not delivered: "
                        f"run {run_id} is {self.finished[run_id]}",
                        None,
                    )
                ]
            log.debug("%s for finished run %s ignored", type(record).__name__, run_id)
            return []
        if isinstance(record, StartWorkflow):
            if run_id in self.histories:
                log.debug("duplicate start of %s ignored (idempotent)", run_id)
                return []
            try:
                run, transition = Run.start(self.registry, record, now_ms, self.limits)
            except UnknownWorkflowError as exc:
                return [self._dead(key, value, offset, str(exc), exc), *self._unknown_finished(record, exc, now_ms)]
            self.histories[run_id] = []
        else:
            history = self.histories.get(run_id)
            if not history:
                return [self._dead(key, value, offset, f"no run {run_id} on this partition", None)]
            cached = self.cache.get(run_id)
            if cached is None:
                cached, recovered = Run.recover(self.registry, history, now_ms, self.limits)
                self.replays += 1
                if recovered.events:  # the code diverged from the history: the run failed
                    return self._commit(cached, recovered)
            run = cached
            transition = run.handle(record, now_ms)
            if transition.ignored:
                log.debug("input for %s ignored: %s", run_id, transition.ignored)
                if isinstance(record, runtime.ResumeHook):
                    self.cache.put(run)
                    return [self._dead(key, value, offset, f"hook payload not delivered: {transition.ignored}", None)]
        return self._commit(run, transition)

    def _schedule(
        self,
        owner: str,
        record: runtime.ScheduleCommand | runtime.TimerFired | runtime.RunFinished,
        key: bytes,
        value: bytes,
        offset: int,
        now_ms: int,
    ) -> list[Output]:
        decision = decide_schedule(self.schedules.get(owner), record, now_ms)
        if decision.error is not None:
            return [self._dead(key, value, offset, f"schedule {owner}: {decision.error}", None)]
        if not decision.changed:
            log.debug("input for %s ignored: %s", owner, decision.ignored)
            return []
        state = decision.state
        encoded = None if state is None else self.records.encode(state)
        outputs = [Output("state", key, encoded, self.partition)]
        for command in decision.commands:
            outputs.extend(self._route(command, key))
        if state is None:
            self.schedules.pop(owner, None)
        else:
            self.schedules[owner] = state
        return outputs

    def _forget(self, run_id: str, key: bytes, value: bytes, offset: int) -> list[Output]:
        if run_id in self.histories:
            return [
                self._dead(
                    key, value, offset, f"run {run_id} is still running: only a finished run can be forgotten", None
                )
            ]
        status = self.finished.get(run_id)
        if status is None or status == FORGOTTEN:
            return []  # unknown, or forgotten before: nothing to do
        self.successors.pop(run_id, None)
        if run_id in self.keyed:
            # Its id comes from an idempotency key: a later start with that key must not reuse the id (the
            # history topic and Cassandra would mix two runs under it). Keep a small marker.
            self.keyed.discard(run_id)
            self.finished[run_id] = FORGOTTEN
            marker = self._marker(run_id, "", FORGOTTEN, None, 0, None)
            return [Output("state", key, marker, self.partition)]
        del self.finished[run_id]
        return [Output("state", key, None, self.partition)]  # tombstone: log compaction drops the marker

    def _commit(self, run: Run, transition: Transition) -> list[Output]:
        history = self.histories[run.run_id]
        history.extend(transition.events)
        self.cache.put(run)
        key = run.run_id.encode()
        encode = self.records.encode
        outputs = [Output("history", key, encode(event)) for event in transition.events]
        for command in transition.commands:
            outputs.extend(self._route(command, key))
        return outputs

    def _route(self, command: runtime.Command, key: bytes) -> list[Output]:
        encode = self.records.encode
        if isinstance(command, ExecuteStep):
            return [Output("tasks", key, encode(command))]
        if isinstance(command, (StartTimer, runtime.CancelTimer)):
            return [Output("timers", key, encode(command))]
        if isinstance(command, RunFinished):
            outs = [Output("completions", key, encode(command))]
            if command.parent_run_id:
                outs.append(Output("inbox", command.parent_run_id.encode(), encode(command)))
            return outs
        if isinstance(command, (StartWorkflow, runtime.CancelWorkflow)):
            # a child run, a continue-as-new successor, or the cancel of a child: the target run's partition
            return [Output("inbox", command.run_id.encode(), encode(command))]
        raise KflowError(f"no route for command {type(command).__name__}")

    def _unknown_finished(self, start: StartWorkflow, exc: Exception, now_ms: int) -> list[Output]:
        # A waiting client (or parent run) gets the error instead of waiting forever.
        finished = RunFinished(
            run_id=start.run_id,
            workflow_name=start.workflow_name,
            status=RunStatus.FAILED,
            error=ErrorInfo(type=f"{type(exc).__module__}.{type(exc).__qualname__}", message=str(exc), retryable=False),
            parent_run_id=start.parent_run_id,
            parent_position=start.parent_position,
            started_at=now_ms,
            finished_at=now_ms,
        )
        return self._route(finished, start.run_id.encode())

    def _dead(self, key: bytes | None, value: bytes, offset: int, reason: str, exc: BaseException | None) -> Output:
        log.warning("dead letter from %s[%d]@%d: %s", self.inbox_topic, self.partition, offset, reason)
        error_type = "" if exc is None else f"{type(exc).__module__}.{type(exc).__qualname__}"
        return dead_letter(
            self.records.codec,
            topic=self.inbox_topic,
            partition=self.partition,
            offset=offset,
            key=key,
            value=value,
            reason=reason,
            error_type=error_type or "kflow.InvalidRecord",
        )


def _owner(record: _Inbound) -> str:
    """The run (or schedule) whose partition the record belongs to (a child's completion belongs to its
    parent, the completion of a scheduled run to its schedule)."""
    if isinstance(record, runtime.ScheduleCommand):
        return schedule_key(record.schedule_id)
    if isinstance(record, RunFinished) and record.parent_run_id:
        return record.parent_run_id
    return record.run_id
