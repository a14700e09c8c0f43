"""The values a run's core works with: command positions and keys, commands awaiting their outcome, and the
ids derived from a run's own (children, hook tokens) so that replay names them the same."""

from __future__ import annotations

import asyncio
import enum
import uuid
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from ._definitions import StepDefinition
from ._records import CallArgs

BUFFERED_POSITION = -1
"""``HookReceived.position`` of a payload that arrived before any hook waited on its token."""

_CHILD_NAMESPACE = uuid.UUID("2b7e5f0c-93d4-4a1e-8c61-5d0f9e3a7b24")


def hook_token(run_id: str, name: str, call: int) -> str:
    """The token of the ``call``-th ``hook(name)`` of a run (1-based): ``"{run_id}:{name}"`` for the first,
    ``"{run_id}:{name}#{call}"`` for the next ones — each takes exactly one payload."""
    return f"{run_id}:{name}" if call == 1 else f"{run_id}:{name}#{call}"


def child_run_id(parent_run_id: str, position: int) -> str:
    """Run id of the child started at ``position`` of ``parent_run_id``.

    # Invariant: derived from the parent run id and the position only (uuid5), so replay
    # names the same child and a redelivered StartWorkflow is a duplicate, not a second child.
    """
    return uuid.uuid5(_CHILD_NAMESPACE, f"{parent_run_id}/child/{position}").hex


def validate_payload(schema: object, payload: object) -> object:
    """Validate a hook payload with a pydantic-style ``model_validate``; identity without schema."""
    validate = getattr(schema, "model_validate", None)
    return payload if validate is None else validate(payload)


MAX_CHILD_DEPTH = 10
"""How deep child workflows may nest (a run started by a client is depth 0)."""

ParentClosePolicy = Literal["cancel", "abandon"]
"""What happens to a child that is still running when its parent ends (``start_child_workflow``)."""

PARENT_CLOSE_POLICIES: tuple[str, ...] = ("cancel", "abandon")


class Mode(enum.Enum):
    """How commands issued by workflow code are treated."""

    LIVE = "live"  # appended to the activation's events and commands
    REPLAY = "replay"  # matched against the recorded history, nothing emitted
    CLOSED = "closed"  # the run is over or evicted: any command unwinds the coroutine


@dataclass(frozen=True, slots=True)
class CommandKey:
    """What identifies a command at a position for the determinism check."""

    kind: str  # "step" | "sleep" | "hook" | "child" | "context" | "child_cancel" | "child_timeout"
    name: str
    # (replay, children) the parent close policy the history recorded: replay adopts it, never the code's
    close_policy: str | None = field(default=None, compare=False)

    def describe(self) -> str:
        """Human-readable form used in NonDeterminismError messages."""
        return self.kind if self.kind in ("sleep", "child_timeout") else f"{self.kind} {self.name!r}"


@dataclass(slots=True, eq=False)
class Pending:
    """A command at ``position`` whose outcome has not been applied yet."""

    position: int
    kind: str  # "step" | "sleep" | "hook" | "child" | "child_timeout"
    future: asyncio.Future[object]
    name: str
    step: StepDefinition | None = None
    args: CallArgs | None = None
    attempt: int = 1
    timer_id: str | None = None  # the timer currently armed for this position
    awaiting_retry: bool = False
    token: str | None = None
    schema: object = None
    abandoned: bool = False  # cancelled away: late outcomes are recorded, change nothing
    child_run_id: str | None = None
    context: object = None  # (steps) the run's step context, wire form, when the step was issued
    close_policy: str = "cancel"  # (children) the parent close policy: "cancel" or "abandon"
    cancel_sent: bool = False  # (children) the run asked the child to cancel (ChildWorkflowCancelRequested)
    child_status: str | None = None  # (children) the outcome the history recorded; None while it runs
    fire_at: int | None = None  # (sleeps) when it is due, epoch ms

    @property
    def dropped(self) -> bool:
        """True when nobody awaits the outcome any more (cancelled, or future already done)."""
        return self.abandoned or self.future.done()


class EventMeta(TypedDict):
    """The fields every history event starts with."""

    run_id: str
    seq: int
    timestamp: int
