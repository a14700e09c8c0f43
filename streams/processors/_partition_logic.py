"""The orchestrator's logic for one inbox partition, free of Kafka I/O.

``PartitionLogic.process`` turns one inbox record into the records to produce (history events, step
commands, timer requests, completions, dead letters). The Kafka loop around it (``streams.processors._orchestrator``)
makes each batch's outputs and its inbox offsets one transaction.

Invariant: a run's records all live on one partition number (keyed by run id), so the partition that
owns a run sees every input of that run, in order, and nothing else mutates its state.
"""

from __future__ import annotations

import logging

from engine import EventLimits, KflowError, Registry, UnknownWorkflowError, runtime
from engine.runtime import (
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
from schemas import PayloadError, RecordCodec, RecordSigner, SchemaError
from streams._record_limit import limited_check, too_large
from streams._tracing import Carrier
from streams.kafka import MAX_MESSAGE_BYTES
from streams.processors._failed_starts import StartFields, failed_outcome, rearmed
from streams.processors._history_store import LIVE_HISTORY_BYTES
from streams.processors._metrics import CACHE_HITS, CACHE_MISSES, count_transition
from streams.processors._outputs import Output
from streams.processors._partition_letters import PartitionLetters
from streams.processors._partition_state import FORGOTTEN, SNAPSHOT_AFTER_RECORDS, SNAPSHOT_MIN_AGE_MS

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
_NOT_FINISHED = "is not a finished run of this partition (not started under this topic prefix, or forgotten before)"
"""What the inbox carries: run inputs, and ops records the orchestrator handles itself."""
_STATE_LIMIT = MAX_MESSAGE_BYTES - 1_000
"""Largest schedule state written: a record limit with room for the key and the record's framing."""


class PartitionLogic(PartitionLetters):
    """Decisions of one inbox partition over its state (``PartitionState``: histories, live runs, markers; what it
    refuses or moves: ``PartitionLetters``).

    Args:
        registry: workflows and steps of the loaded module.
        records: codec for engine records.
        partition: the partition number (for dead letters).
        cache_size: how many live runs to keep (0 = replay every time).
        inbox_partitions: the inbox's partition count; when given, a record whose key belongs to another
            partition (murmur2, Kafka's default partitioner) is moved there (``process``).
        history_bytes: the budget of the running runs' histories in memory (``KFLOW_LIVE_HISTORY_BYTES``; past it
            the least recently used go to local disk); None: unbounded.
        signer: checks the MACs of ``StepResult`` and ``TimerFired`` (None: no ``KFLOW_SECRET``, not checked).
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
        inbox_partitions: int | None = None,
        history_bytes: int | None = LIVE_HISTORY_BYTES,
        *,
        signer: RecordSigner | None = None,
    ) -> None:
        super().__init__(records, partition, cache_size, snapshot_after, snapshot_min_age_ms, history_bytes)
        self.signer = signer
        self.registry = registry
        self.inbox_partitions = inbox_partitions
        self.inbox_topic = inbox_topic
        self.limits = limits
        self.payload_check = limited_check(records)  # the codec's, and the record limit
        self.replays = 0

    # --- processing -------------------------------------------------------------------------

    def process(
        self, key: bytes | None, value: bytes, offset: int, now_ms: int, *, rerouted: bool = False, trace: Carrier = ()
    ) -> list[Output]:
        """Everything one inbox record leads to; never raises (bad input becomes a dead letter).

        A record whose key belongs to another partition is moved there, unchanged (``rerouted``: it carries
        ``REROUTED_FROM``, it was moved here already, and is dead-lettered instead: a loop guard). A dead-lettered
        start of a run this partition does not know fails the run (``streams.processors._failed_starts``).
        ``trace``: the record's trace-context headers (a start's parent span; ``streams.processors._run_traces``).
        """
        home = self._home(key)
        if home is not None and key is not None:
            return [self._misrouted(key, value, offset, home, rerouted, trace)]
        letters: list[Output] = []
        try:
            record = self.records.decode(value)
        except SchemaError as exc:
            reason = f"undecodable record: {exc}"
            outcome = failed_outcome(self.records, value, reason)  # a step or child result: it fails, the run goes on
            if outcome is None:
                fields = StartFields.from_envelope(self.records, value)
                fresh_start = fields is not None and self._fresh(key, fields)
                failed = self._failed(fields, exc, reason, offset, now_ms) if fields and fresh_start else []
                return [self._dead(key, value, offset, reason, exc), *failed]
            record, letters = outcome, [self._dead(key, value, offset, reason, exc)]  # kept as evidence
        if self.signer is not None and isinstance(record, (runtime.StepResult, runtime.TimerFired)):
            if (forged := self.signer.check(record)) is not None:  # dead-lettered: the run waits for the real one
                return [
                    self._dead(key, value, offset, forged, None),
                    *rearmed(self.histories, record, self.records, now_ms, self.traces.of(_owner(record))),
                ]
        if not isinstance(record, _INPUT_TYPES):
            return [self._dead(key, value, offset, f"{type(record).__name__} does not belong on the inbox", None)]
        run_id = _owner(record)
        if key is None or key.decode("utf-8", "replace") != run_id:
            return [self._dead(key, value, offset, f"key {key!r} is not the run id {run_id!r}", None)]
        known, length = run_id in self.histories, self.histories.length(run_id)
        schedule = self.schedules.get(run_id)
        # the start of a run this partition does not know: dead-lettered, it fails the run (its waiters hear why)
        fresh = record if isinstance(record, StartWorkflow) and not known and run_id not in self.finished else None
        try:
            outputs = self._apply(record, key, value, offset, now_ms, trace)
        except BaseException as exc:  # a bug must not stop the partition: park the record with the reason
            # BaseException too: the engine fails a run whose workflow code raises SystemExit or
            # KeyboardInterrupt, but user code also runs outside it (payload schemas, result encoding),
            # and this is synchronous code, so a CancelledError here is never a real cancellation.
            log.exception("inbox record %s@%d failed", run_id, offset)
            self._revert(run_id, known, length, schedule)
            error = runtime.error_info(exc, with_traceback=False)  # never raises, unlike repr(exc)
            reason = f"processing failed: {error.type}: {error.message}"
            failed = [] if fresh is None else self._failed(fresh, exc, reason, offset, now_ms)
            return [self._dead(key, value, offset, reason, exc), *failed]
        too_big = next((o for o in outputs if len(o.value or b"") > MAX_MESSAGE_BYTES), None)
        if too_big is not None:
            # Kafka would refuse the transaction again and again: park the input instead (docs/notes.md #6).
            self._revert(run_id, known, length, schedule)
            then = "the run waits on this input" if fresh is None else "the run was not started"
            then = "the schedule keeps its previous state" if is_schedule_key(run_id) else then
            reason = too_large(f"the {too_big.topic} record processing it produced", len(too_big.value or b""), then)
            failed = [] if fresh is None else self._failed(fresh, PayloadError(reason), reason, offset, now_ms)
            return [self._dead(key, value, offset, reason, None), *failed]
        marker = self._retire_if_finished(run_id)
        if marker is not None:
            outputs.append(Output("state", key, marker, self.partition))
        return [*letters, *outputs]

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
            self.histories.truncate(run_id, length)
        else:
            self.histories.remove(run_id)
            self.traces.drop(run_id)

    def _apply(
        self, record: _Inbound, key: bytes, value: bytes, offset: int, now_ms: int, trace: Carrier = ()
    ) -> list[Output]:
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
                check = self.payload_check
                run, transition = Run.start(self.registry, record, now_ms, self.limits, payload_check=check)
            except UnknownWorkflowError as exc:
                failed = self._failed(record, exc, str(exc), offset, now_ms)
                return [self._dead(key, value, offset, str(exc), exc), *failed]
            self.histories.start(run_id)
            self.traces.started(record, trace)
        else:
            if not self.histories.length(run_id):
                return [self._dead(key, value, offset, f"no run {run_id} on this partition", None)]
            cached = self.cache.get(run_id)
            (CACHE_MISSES if cached is None else CACHE_HITS).inc()
            if cached is None:
                check, history = self.payload_check, self.histories.events(run_id)
                cached, recovered = Run.recover(self.registry, history, now_ms, self.limits, payload_check=check)
                self.replays += 1
                if recovered.events:  # the code diverged from the history: the run failed
                    return self._commit(cached, recovered, now_ms)
            run = cached
            transition = run.handle(record, now_ms)
            if transition.ignored:
                log.debug("input for %s ignored: %s", run_id, transition.ignored)
                if transition.rejected or isinstance(record, runtime.ResumeHook):  # rejected: not this run's
                    self.cache.put(run)
                    why = ("" if transition.rejected else "hook payload not delivered: ") + transition.ignored
                    return [self._dead(key, value, offset, why, None)]
        return self._commit(run, transition, now_ms)

    def _schedule(
        self,
        owner: str,
        record: runtime.ScheduleCommand | runtime.TimerFired | runtime.RunFinished,
        key: bytes,
        value: bytes,
        offset: int,
        now_ms: int,
    ) -> list[Output]:
        size_of = self._state_size  # the state stays under the record limit: trimmed, a fire skipped, or refused
        decision = decide_schedule(self.schedules.get(owner), record, now_ms, size_of=size_of, max_bytes=_STATE_LIMIT)
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

    def _state_size(self, state: runtime.ScheduleState) -> int:
        return len(self.records.encode(state))

    def _forget(self, run_id: str, key: bytes, value: bytes, offset: int) -> list[Output]:
        """Every ForgetRun is answered, which ``kflow compact`` waits for before it purges: a tombstone or a
        ``forgotten`` marker on ``.state`` (also for a repeat), else a dead letter saying why."""
        status, running = self.finished.get(run_id), run_id in self.histories
        if running or status is None:
            why = "is still running: only a finished run can be forgotten" if running else _NOT_FINISHED
            return [self._dead(key, value, offset, f"run {run_id} {why}", None)]
        self.successors.pop(run_id, None)
        if run_id in self.keyed or status == FORGOTTEN:
            # Its id comes from an idempotency key: a later start with that key must not reuse the id (the
            # history topic and Cassandra would mix two runs under it). Keep a small marker.
            self.keyed.discard(run_id)
            self.finished[run_id] = FORGOTTEN
            marker = self._marker(run_id, "", FORGOTTEN, None, 0, None)
            return [Output("state", key, marker, self.partition)]
        del self.finished[run_id]
        return [Output("state", key, None, self.partition)]  # tombstone: log compaction drops the marker

    def _commit(self, run: Run, transition: Transition, now_ms: int) -> list[Output]:
        self.cache.put(run, now_ms)
        key = run.run_id.encode()
        encode = self.records.encode
        raws = [encode(event) for event in transition.events]
        self.histories.append(run.run_id, transition.events, raws)  # within its byte budget: older ones to disk
        outputs = [Output("history", key, raw) for raw in raws]
        count_transition(transition.events, transition.commands)
        trace = self.traces.of(run.run_id)  # () unless traced: then on the run's first event (read on a restore)
        if trace and transition.events and isinstance(transition.events[0], runtime.WorkflowStarted):
            outputs[0] = Output("history", key, raws[0], headers=trace)
        for command in transition.commands:
            outputs.extend(self._route(command, key, trace and self.traces.command(run.run_id, trace, command)))
        return outputs

    def _route(self, command: runtime.Command, key: bytes, trace: Carrier = ()) -> list[Output]:
        encode = self.records.encode
        if isinstance(command, ExecuteStep):
            return [Output("tasks", key, encode(command), headers=trace, command=command)]
        if isinstance(command, (StartTimer, runtime.CancelTimer)):
            return [Output("timers", key, encode(command), headers=trace)]
        if isinstance(command, RunFinished):
            outs = [Output("completions", key, encode(command), headers=trace)]
            if command.parent_run_id:
                outs.append(Output("inbox", command.parent_run_id.encode(), encode(command), headers=trace))
            return outs
        if isinstance(command, (StartWorkflow, runtime.CancelWorkflow)):
            # a child run, a continue-as-new successor, or the cancel of a child: the target run's partition
            return [Output("inbox", command.run_id.encode(), encode(command), headers=trace)]
        raise KflowError(f"no route for command {type(command).__name__}")


def _owner(record: _Inbound) -> str:
    """The run (or schedule) whose partition the record belongs to (a child's completion belongs to its
    parent, the completion of a scheduled run to its schedule)."""
    if isinstance(record, runtime.ScheduleCommand):
        return schedule_key(record.schedule_id)
    if isinstance(record, RunFinished) and record.parent_run_id:
        return record.parent_run_id
    return record.run_id
