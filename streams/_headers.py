"""The Kafka record headers kflow writes, shared by the processors, the client and the ops commands.

Headers never change what a record means (its Avro value does); they say where a record came from, so that a
reader can tell a moved, provisional or redriven record from an ordinary one, and which trace it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

REROUTED_FROM: Final = "kflow-rerouted-from"
"""On an inbox record the orchestrator moved to the partition its key belongs to: ``<partition>@<offset>`` where it
had been produced. A record carrying it is never moved again (it is dead-lettered instead)."""

DEAD_LETTERED: Final = "kflow-dead-letter"
"""On a ``RunFinished`` written because the run's ``StartWorkflow`` was dead-lettered (the run never started):
``<inbox topic>[<partition>]@<offset>`` of that start. Such a completion is provisional: when the start is redriven
after a fix (``kflow dlq redrive``), the run's real completion follows, and a scan prefers that one."""

REDRIVE_OF: Final = "kflow-redrive-of"
"""On an inbox record re-produced by ``kflow dlq redrive``: ``<dlq topic>[<partition>]@<offset>`` of its dead
letter."""

TRACEPARENT: Final = "traceparent"
"""W3C trace context (``00-<trace id>-<span id>-<flags>``, ASCII), only with OpenTelemetry (``kflow[otel]``): on a
``StartWorkflow`` the span that started the run (the client's ``StartWorkflow:<wf>``, a parent's
``StartChildWorkflow:<wf>``, a predecessor's ``RunWorkflow:<wf>`` for a continue-as-new successor); on every other
record the orchestrator writes for a traced run (``ExecuteStep``, ``StartTimer``/``CancelTimer``, ``RunFinished``,
the run's ``WorkflowStarted`` history event and its ``RunSnapshot``, from which a new owner of the partition
restores it) and on what returns (``StepResult``, ``TimerFired``, and the ``.timer-index`` copy of a timer) the
run's ``RunWorkflow:<wf>`` span. docs/operations.md, "Traces"."""

TRACESTATE: Final = "tracestate"
"""W3C vendor trace state, beside ``TRACEPARENT`` when the context has one."""


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> bytes | None:
    """The value of the first header called ``name`` (None: there is none)."""
    return next((value for key, value in headers or () if key == name), None)
