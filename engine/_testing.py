"""InMemoryDriver: orchestrator + step worker + timer processor in one process, for tests."""

from __future__ import annotations

import dataclasses
import uuid
from collections import deque
from collections.abc import Callable

from ._clock import Clock
from ._definitions import EventLimits
from ._errors import CancellationError, KflowError
from ._events import HistoryEvent
from ._failures import rebuild_exception
from ._parity_errors import WorkflowNotFoundError
from ._payload_types import PayloadCheck
from ._records import (
    CallArgs,
    CancelTimer,
    CancelWorkflow,
    Command,
    ExecuteStep,
    Input,
    ResumeHook,
    RunFinished,
    StartTimer,
    StartWorkflow,
    TimerFired,
)
from ._registry import Registry
from ._run import Run, Transition
from ._status import RunStatus
from ._worker import execute_step


class InMemoryDriver:
    """Runs workflows in memory against a ``Clock``: steps execute in-process via
    ``execute_step``, timers fire once ``clock.now_ms()`` reaches them.

    Args:
        registry: the workflows and steps (may be replaced between inputs to test code changes).
        clock: usually a ``FakeClock``; advance it and call ``run_until_idle`` again.
        always_replay: close the Run after every input and rebuild it from history
            (``Run.recover``) before the next one, so every test also proves replay.
        run_ids: factory for new run ids (default: uuid4 hex).
        event_limits: the host's default event limits (a workflow's own win; default
            ``EventLimits()``).
        payload_check: check values as a real host's payload codec would (values stay in memory here, so
            by default nothing is checked): ``RecordCodec(types=registry.payload_types).payload_check``
            makes step and child arguments, results and hook payloads the JSON codecs cannot carry fail
            as they do on Kafka (see ``Run.start``); ``start`` and ``resume_hook`` raise its error.

    ``status``, ``history``, ``cancel`` and ``deliver`` raise ``WorkflowNotFoundError`` for a run id it never started.
    """

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        *,
        always_replay: bool = False,
        run_ids: Callable[[], str] | None = None,
        event_limits: EventLimits | None = None,
        payload_check: PayloadCheck | None = None,
    ) -> None:
        self.registry = registry
        self.payload_check = payload_check
        self.clock = clock
        self.always_replay = always_replay
        self.event_limits = event_limits
        self.ignored: list[tuple[Input, str]] = []
        self._new_run_id = run_ids or (lambda: uuid.uuid4().hex)
        self._histories: dict[str, list[HistoryEvent]] = {}
        self._runs: dict[str, Run] = {}
        self._tasks: deque[ExecuteStep] = deque()
        self._timers: dict[tuple[str, str], StartTimer] = {}
        self._finished: dict[str, RunFinished] = {}
        self._inputs: deque[Input] = deque()  # child completions and child cancellations

    def start(self, name_or_fn: str | Callable[..., object], *args: object, **kwargs: object) -> str:
        """Start a run of a workflow (by name or decorated function); returns its run id."""
        defn = self.registry.workflow_for(name_or_fn)
        call = CallArgs(tuple(args), dict(kwargs))
        if self.payload_check is not None:
            self.payload_check(call, "args")  # as Client.start refuses to send them
        run_id = self._new_run_id()
        self._start(StartWorkflow(run_id=run_id, workflow_name=defn.name, args=call, requested_at=self.clock.now_ms()))
        return run_id

    def deliver(self, received: Input) -> Transition:
        """Hand one input to its run (tests use this to inject duplicates and stale inputs).

        A child's RunFinished (``parent_run_id`` set) goes to the parent run.
        """
        target = received.run_id
        if isinstance(received, RunFinished) and received.parent_run_id is not None:
            target = received.parent_run_id
        run = self._load(target)
        transition = run.handle(received, self.clock.now_ms())
        self._absorb(run, transition)
        self._park(run)
        if transition.ignored is not None:
            self.ignored.append((received, transition.ignored))
        return transition

    async def run_until_idle(self, max_inputs: int = 10_000) -> None:
        """Execute queued steps and fire due timers until nothing is left to do now.

        Raises:
            KflowError: more than ``max_inputs`` inputs were needed (a workflow that never idles).
        """
        for _ in range(max_inputs):
            if self._inputs:
                self.deliver(self._address(self._inputs.popleft()))
            elif self._tasks:
                cmd = self._tasks.popleft()
                self.deliver(await execute_step(self.registry, cmd, self.clock, payload_check=self.payload_check))
            elif (timer := self._next_due_timer()) is not None:
                del self._timers[(timer.run_id, timer.timer_id)]
                self.deliver(
                    TimerFired(
                        run_id=timer.run_id,
                        timer_id=timer.timer_id,
                        position=timer.position,
                        kind=timer.kind,
                        fire_at=timer.fire_at,
                        fired_at=self.clock.now_ms(),
                    )
                )
            else:
                return
        raise KflowError(f"run_until_idle: still busy after {max_inputs} inputs")

    def cancel(self, run_id: str, reason: str | None = None) -> Transition:
        """Request cancellation of a run."""
        return self.deliver(CancelWorkflow(run_id=run_id, reason=reason, requested_at=self.clock.now_ms()))

    def resume_hook(self, token: str, payload: object) -> Transition:
        """Deliver a hook payload to the run named in ``token`` (``"{run_id}:{name}"``)."""
        run_id = token.split(":", 1)[0]
        if self.payload_check is not None:
            self.payload_check(payload, "payload")  # as Client.resume_hook refuses to send it
        return self.deliver(ResumeHook(run_id=run_id, token=token, payload=payload, requested_at=self.clock.now_ms()))

    def status(self, run_id: str) -> str:
        """``running`` or the final status of the run."""
        self._history(run_id)
        finished = self._finished.get(run_id)
        return RunStatus.RUNNING if finished is None else finished.status

    def result(self, run_id: str) -> object:
        """The run's result, following continue-as-new to the last run of the chain.

        Raises:
            the run's error (rebuilt from its ErrorInfo); CancellationError for a cancelled run;
            KflowError if the run has not finished.
        """
        finished = self._finished.get(run_id)
        while finished is not None and finished.next_run_id is not None:
            finished = self._finished.get(finished.next_run_id)
        if finished is None:
            raise KflowError(f"run {run_id} has not finished")
        if finished.status == RunStatus.CANCELLED:
            raise CancellationError(f"run {finished.run_id} was cancelled")
        if finished.error is not None:
            raise rebuild_exception(finished.error)
        return finished.result

    def history(self, run_id: str) -> tuple[HistoryEvent, ...]:
        """The run's history so far."""
        return tuple(self._history(run_id))

    def timers(self) -> tuple[StartTimer, ...]:
        """Armed timers, earliest first."""
        return tuple(sorted(self._timers.values(), key=lambda t: t.fire_at))

    def evict(self, run_id: str) -> None:
        """Drop the cached Run (the next input rebuilds it from history)."""
        run = self._runs.pop(run_id, None)
        if run is not None:
            run.close()

    def _start(self, start: StartWorkflow) -> None:
        if start.run_id in self._histories:
            return  # a duplicate start: the run exists already
        run, transition = Run.start(
            self.registry, start, self.clock.now_ms(), self.event_limits, payload_check=self.payload_check
        )
        self._histories[start.run_id] = []
        self._absorb(run, transition)
        self._park(run)

    def _load(self, run_id: str) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            now, limits, check = self.clock.now_ms(), self.event_limits, self.payload_check
            run, transition = Run.recover(self.registry, self._history(run_id), now, limits, payload_check=check)
            self._absorb(run, transition)
        return run

    def _absorb(self, run: Run, transition: Transition) -> None:
        history = self._histories[run.run_id]
        for event in transition.events:
            if event.seq != len(history) + 1:
                raise KflowError(f"run {run.run_id}: event seq {event.seq} after {len(history)} events")
            history.append(event)
        for command in transition.commands:
            self._route(command)

    def _park(self, run: Run) -> None:
        if self.always_replay:
            run.close()
            self._runs.pop(run.run_id, None)
        else:
            self._runs[run.run_id] = run

    def _route(self, command: Command) -> None:
        if isinstance(command, ExecuteStep):
            self._tasks.append(command)
        elif isinstance(command, StartTimer):
            self._timers[(command.run_id, command.timer_id)] = command
        elif isinstance(command, CancelTimer):
            self._timers.pop((command.run_id, command.timer_id), None)
        elif isinstance(command, StartWorkflow):
            self._start(command)  # a child run or a continue-as-new successor
        elif isinstance(command, CancelWorkflow):
            # A parent asks a child to cancel (handle.cancel(), its cancellation or its end): queued, delivered
            # to the child's current run.
            self._inputs.append(command)
        else:
            self._finished[command.run_id] = command
            if command.parent_run_id is not None:
                self._inputs.append(command)  # a child's completion goes to its parent

    def _address(self, received: Input) -> Input:
        """A queued CancelWorkflow for a child that continued as new goes to its latest run."""
        if isinstance(received, CancelWorkflow):
            run_id = received.run_id
            finished = self._finished.get(run_id)
            while finished is not None and finished.next_run_id is not None:
                run_id = finished.next_run_id  # the child continued as new: cancel its latest run
                finished = self._finished.get(run_id)
            return dataclasses.replace(received, run_id=run_id)
        return received

    def _next_due_timer(self) -> StartTimer | None:
        now = self.clock.now_ms()
        due = [t for t in self._timers.values() if t.fire_at <= now]
        return min(due, key=lambda t: t.fire_at) if due else None

    def _history(self, run_id: str) -> list[HistoryEvent]:
        try:
            return self._histories[run_id]
        except KeyError:
            raise WorkflowNotFoundError(f"unknown run {run_id}") from None
