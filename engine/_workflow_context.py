"""``get_context()``: the running workflow's identity, replay state, cancellation, and deterministic time,
uuids and random numbers.

Everything here is a function of the run's history, so a replay sees exactly what the live run saw:
``now()`` is the time of the input being applied (the recorded event's timestamp on replay), and
``uuid4()`` / ``random()`` are derived from (run id, position, draw) by a hash, where the position is
that of the next command the code will issue and the draw counts the values taken since that
position was reached. A value drawn between two commands stays the same when code elsewhere changes.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
import weakref
from datetime import UTC, datetime

from ._core import RunCore
from ._errors import CancellationError
from ._loop import current_runtime
from ._parity_errors import ContextError
from ._pending import Mode
from ._scheduler import is_schedule_key

logger = logging.getLogger("engine.workflow")

# Per run: [the position of the last draw, draws taken at that position]. Kept apart from the context objects
# (which hold their run) so that a finished or evicted run is not kept alive by this table.
_DRAWS: weakref.WeakKeyDictionary[RunCore, list[int]] = weakref.WeakKeyDictionary()


class WorkflowContext:
    """What ``get_context()`` returns in workflow code: a view of the running run.

    Not to be built by hand. All of it replays identically.
    """

    __slots__ = ("_core",)

    def __init__(self, core: RunCore) -> None:
        self._core = core

    # -- identity -------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """This run's id."""
        return self._core.run_id

    @property
    def workflow_name(self) -> str:
        """The workflow's registered name."""
        return self._core.workflow.name

    @property
    def parent_run_id(self) -> str | None:
        """The parent run of a child workflow; None for a top-level run (also one a schedule started)."""
        parent = self._core.started.parent_run_id
        return None if parent is None or is_schedule_key(parent) else parent

    @property
    def depth(self) -> int:
        """Child-workflow nesting depth: 0 for a top-level run, the parent's + 1 for a child."""
        return self._core.started.depth

    @property
    def continued_from_run_id(self) -> str | None:
        """The run that continued as new into this one (None for the first run of a chain)."""
        return self._core.started.continued_from

    @property
    def attempt(self) -> int:
        """This run's place in its continue-as-new chain: 1 for the first run, n + 1 after n ``continue_as_new``."""
        return self._core.started.chain_attempt or 1

    @property
    def is_durable(self) -> bool:
        """Always True: every kflow run is durable (pyworkflow-engine's transient mode does not exist)."""
        return True

    # -- replay and cancellation ----------------------------------------------------------

    @property
    def is_replaying(self) -> bool:
        """True while the code re-runs recorded history (after an eviction, a restart, ``kflow replay``); use it
        to skip side effects such as logging that must happen once."""
        return self._core.mode is Mode.REPLAY

    def is_cancellation_requested(self) -> bool:
        """Whether the run was asked to cancel (the ``CancellationError`` may be deferred by ``shield()``)."""
        return self._core.cancel_requested

    @property
    def cancellation_blocked(self) -> bool:
        """True inside ``async with shield():``, where cancellation waits for the end of the block."""
        return self._core.shield_depth > 0

    @property
    def cancellation_reason(self) -> str | None:
        """The reason given with the cancel request, if any."""
        return self._core.cancel_reason

    def check_cancellation(self) -> None:
        """Raise ``CancellationError`` now if cancellation was requested and no ``shield()`` defers it.

        kflow raises it at the run's current await anyway; this is for code between awaits (a long loop).
        """
        core = self._core
        if core.cancel_requested and core.shield_depth == 0:
            raise CancellationError(core.cancel_reason or "run cancelled", core.cancel_reason)

    # -- deterministic values -------------------------------------------------------------

    def now(self) -> datetime:
        """The time of the input being applied (aware, UTC): the same on every replay, never the wall clock."""
        return datetime.fromtimestamp(self._core.now_ms / 1000, UTC)

    def uuid4(self) -> uuid.UUID:
        """A version-4 UUID that replays identically (derived from run id, position and draw)."""
        return uuid.UUID(bytes=self._draw()[:16], version=4)

    def random(self) -> float:
        """A float in [0, 1) that replays identically (derived from run id, position and draw)."""
        return (int.from_bytes(self._draw()[:8], "big") >> 11) / 2**53

    def _draw(self) -> bytes:
        core = self._core
        position = core.next_position
        state = _DRAWS.get(core)
        if state is None or state[0] != position:
            state = _DRAWS[core] = [position, 0]
        state[1] += 1
        return hashlib.sha256(f"{core.run_id}\x00{position}\x00{state[1]}".encode()).digest()

    # -- logging --------------------------------------------------------------------------

    def log(self, message: str, level: str = "info", **fields: object) -> None:
        """Log ``message`` (logger ``engine.workflow``) with the run id and workflow name, once: not while replaying."""
        if self.is_replaying:
            return
        extra = "".join(f" {key}={value!r}" for key, value in fields.items())
        log_level = logging.getLevelName(level.upper())
        logger.log(
            log_level if isinstance(log_level, int) else logging.INFO,
            "%s [workflow %r run %s]%s",
            message,
            self.workflow_name,
            self.run_id,
            extra,
        )

    def __repr__(self) -> str:
        return f"WorkflowContext(run_id={self.run_id!r}, workflow_name={self.workflow_name!r}, attempt={self.attempt})"


def get_context() -> WorkflowContext:
    """The context of the workflow whose code is running (see ``WorkflowContext``).

    Raises:
        ContextError: called outside workflow code (in a step use ``get_step_info()``).
    """
    core = current_runtime()
    if core is None:
        raise ContextError(
            "get_context() is only available in workflow code (a @workflow function and what it awaits); "
            "in a step use get_step_info()"
        )
    return WorkflowContext(core)


def has_context() -> bool:
    """Whether ``get_context()`` would return here (True in workflow code only)."""
    return current_runtime() is not None
