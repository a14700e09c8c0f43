"""Local steps: first attempts run inside the orchestrator, their results recorded in its own transaction.

Before a batch's transaction, the orchestrator hands the batch's outputs to ``LocalSteps.settle``. Every
``ExecuteStep`` bound for ``.tasks`` that is the first attempt of a local step (``@step(local=True)``, or of any
step with ``kflow processor --run-steps``) is run there instead (concurrently within a round), its result fed back
to the partition logic as if a worker had sent it; the new activations may schedule more local steps, and the
rounds go on — so chains of local steps of many runs commit in one transaction (group commit) — until none is
left or a bound is reached: ``max_steps`` attempts or ``interval_ms`` since the first. What is left then, an
attempt that overruns ``budget_ms``, and every retry (attempt > 1) go to the step workers on ``.tasks``: the
normal path.

Semantics are those of any step: at least once. A crash before the transaction commits loses the batch's
results and its inbox offsets together, so the new owner re-reads the batch and runs its local steps again;
steps of committed transactions never re-run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine import Registry, UnknownStepError
from engine.runtime import Clock, ExecuteStep, StepResult, execute_step
from schemas import RecordCodec, RecordSigner
from streams._settings import Settings
from streams._tracing import Carrier, consumer_span
from streams.processors._metrics import count_step
from streams.processors._outputs import Output
from streams.processors._step_results import attempt_attributes, encode_result

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LocalBounds:
    """The bounds of local work (``kflow processor --local-max-steps / --local-interval-ms / --local-budget-ms``).

    Attributes:
        max_steps: most local attempts one transaction runs; a round that would pass it runs only what fits.
        interval_ms: no new round starts this long after a transaction's first; the rounds end at a round's end,
            and one round lasts at most ``budget_ms``.
        budget_ms: longest one local attempt may run before it is cancelled and handed to a worker (a synchronous
            step's thread cannot be cancelled: it runs on while a worker runs the attempt again).
    """

    max_steps: int = 1_000
    interval_ms: int = 100
    budget_ms: int = 1_000


Process = Callable[[bytes, bytes, int, int], list[Output]]
"""The partition logic's ``process(key, value, offset, now_ms)``."""


def local_predicate(registry: Registry, run_steps: bool) -> Callable[[ExecuteStep], bool]:
    """Which commands run locally: first attempts of steps declared ``local`` (of every step: ``run_steps``)."""

    def is_local(cmd: ExecuteStep) -> bool:
        if cmd.attempt != 1:
            return False
        try:
            return run_steps or registry.step(cmd.step_name).local
        except UnknownStepError:
            return False  # a worker that has it may run it

    return is_local


def local_steps(
    registry: Registry,
    records: RecordCodec,
    clock: Clock,
    settings: Settings,
    run_steps: bool,
    bounds: LocalBounds | None = None,
) -> LocalSteps | None:
    """The orchestrator's local steps (None: its module declares none and ``run_steps`` is off)."""
    if not run_steps and not any(defn.local for defn in registry.steps.values()):
        return None
    signer = None if settings.secret is None else RecordSigner(settings.secret)
    worker = f"local:{socket.gethostname()}:{os.getpid()}"
    return LocalSteps(registry, records, clock, worker, local_predicate(registry, run_steps), signer, bounds=bounds)


class LocalSteps:
    """Runs a batch's local steps for one orchestrator (``settle``).

    Args:
        registry: the module's steps (the processor's ``-A``).
        records: the engine record codec.
        clock: the orchestrator's clock.
        worker: recorded as the ``worker`` of local results (e.g. ``local:<host>:<pid>``).
        is_local: which ``ExecuteStep`` run here (``local_predicate``).
        signer: signs the results when ``KFLOW_SECRET`` is set (the partition logic checks every result).
        bounds: of one transaction's local work and of one attempt (default ``LocalBounds()``).
    """

    def __init__(
        self,
        registry: Registry,
        records: RecordCodec,
        clock: Clock,
        worker: str,
        is_local: Callable[[ExecuteStep], bool],
        signer: RecordSigner | None = None,
        *,
        bounds: LocalBounds | None = None,
    ) -> None:
        bounds = bounds or LocalBounds()
        self.registry = registry
        self.records = records
        self.clock = clock
        self.worker = worker
        self.signer = signer
        self.max_steps = bounds.max_steps
        self.interval_s = bounds.interval_ms / 1000
        self.budget_s = bounds.budget_ms / 1000
        self.is_local = is_local
        self.ran = 0
        self.handed_over = 0

    async def settle(self, process: Process, outputs: list[Output]) -> list[Output]:
        """``outputs`` with every local step run and its consequences added (or handed to the workers).

        A run's records keep their order: what a local result leads to follows what came before it.
        """
        began, ran = time.monotonic(), 0
        done: list[Output] = []
        fresh = outputs
        while fresh:
            local: list[tuple[Output, ExecuteStep]] = []
            for out in fresh:
                if (cmd := self._local(out)) is None:
                    done.append(out)
                else:
                    local.append((out, cmd))
            if not local:
                break
            fresh = []
            room = self.max_steps - ran if time.monotonic() - began < self.interval_s else 0
            if room < len(local):  # the bound of one transaction: the workers take what does not fit
                self.handed_over += len(local) - max(room, 0)
                done.extend(out for out, _ in local[max(room, 0) :])
                local = local[: max(room, 0)]
                if not local:
                    break
            results = await asyncio.gather(*(self._attempt(cmd, out.headers) for out, cmd in local))
            ran += len(local)
            for (out, cmd), result in zip(local, results, strict=True):
                if result is None:  # over its budget: a worker runs the attempt (at least once)
                    self.handed_over += 1
                    done.append(out)
                    continue
                count_step(cmd.step_name, cmd.attempt, result.ok, (result.finished_at - result.started_at) / 1000)
                encoded, _ = encode_result(self.records, self.signer, result, cmd.step_name)  # unsendable: failed
                fresh.extend(process(out.key, encoded, -1, self.clock.now_ms()))
        self.ran += ran
        return done

    def _local(self, out: Output) -> ExecuteStep | None:
        """The command of ``out`` when it is a local first attempt (None: it is not)."""
        cmd = out.command
        return cmd if out.topic == "tasks" and cmd is not None and self.is_local(cmd) else None

    async def _attempt(self, cmd: ExecuteStep, trace: Carrier) -> StepResult | None:
        """One local attempt's result (None: it overran the local budget and was cancelled); traced as a
        worker's attempt (a ``RunStep`` span, marked ``kflow.local``) when the run is."""
        attributes = {**attempt_attributes(cmd), "kflow.local": True}
        try:
            with consumer_span(f"RunStep:{cmd.step_name}", trace, attributes) as span:
                async with asyncio.timeout(self.budget_s):
                    result = await execute_step(self.registry, cmd, self.clock, worker=self.worker)
                if result.error is not None:
                    span.failed(result.error.type, result.error.message, result.error.traceback)
                return result
        except TimeoutError:
            log.warning(
                "local step %s of %s (position %d) ran over %.0f ms: handed to the step workers",
                cmd.step_name,
                cmd.run_id,
                cmd.position,
                self.budget_s * 1000,
            )
            return None
