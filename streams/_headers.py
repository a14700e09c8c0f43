"""The Kafka record headers kflow writes, shared by the processors, the client and the ops commands.

Headers never change what a record means (its Avro value does); they say where a record came from, so that a
reader can tell a moved, provisional or redriven record from an ordinary one.
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


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> bytes | None:
    """The value of the first header called ``name`` (None: there is none)."""
    return next((value for key, value in headers or () if key == name), None)
