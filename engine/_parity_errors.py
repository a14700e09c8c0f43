"""Errors named after pyworkflow-engine's, for code ported from it, each with the meaning it has in kflow.

``WorkflowError`` and ``MaxNestingDepthError`` are other names of ``KflowError`` and
``ChildWorkflowDepthError`` (``engine/__init__.py``); the classes here are kflow's own. Hook payloads are
refused by the orchestrator with a reason text (a dead letter); ``hook_refusal_error`` maps the reasons kflow
writes to the pyworkflow class a ``resume_hook`` caller expects (``streams.HookDeliveryError.refused``).
"""

from __future__ import annotations

import re
from typing import Final

from ._errors import HookExpiredError, KflowError


class HookNotFoundError(KflowError):
    """No hook waits on the token, and none will: the run does not exist, has finished, or cancelled that wait.

    (A running run that has not reached its ``hook()`` call yet *queues* the payload instead.)
    """

    __module__ = "engine"
    retryable = False


class HookAlreadyReceivedError(KflowError):
    """The hook token already took its payload (delivered, or queued for the ``hook()`` call): one payload a token."""

    __module__ = "engine"
    retryable = False


class InvalidTokenError(KflowError, ValueError):
    """A malformed hook token: not ``"<run_id>:<name>"`` (or ``"<run_id>:<name>#<n>"``, n ≥ 2)."""

    __module__ = "engine"
    retryable = False


class WorkflowNotFoundError(KflowError, LookupError):
    """No run with that id (``InMemoryDriver`` for an unknown run id; client methods that need an existing run)."""

    __module__ = "engine"
    retryable = False


class WorkflowAlreadyRunningError(KflowError):
    """pyworkflow-engine raised it for a start whose idempotency key names a running run. kflow never does: such a
    start returns that run's id (the run's partition keeps only the first start). Kept so ported code imports."""

    __module__ = "engine"
    retryable = False


class ConfigurationError(KflowError):
    """kflow is misconfigured: the base of ``streams.SettingsError`` (a ``KFLOW_*`` variable with a bad value)."""

    __module__ = "engine"
    retryable = False


class ContextError(KflowError, RuntimeError):
    """``get_context()`` outside workflow code, or ``get_step_info()`` outside a step."""

    __module__ = "engine"
    retryable = False


class SuspensionSignal(KflowError):
    """pyworkflow-engine's internal signal for a suspending workflow. kflow never raises it: a waiting run's
    coroutine simply stays suspended (or is evicted and later replayed). Kept so ported code imports."""

    __module__ = "engine"
    retryable = False


# The reasons kflow's orchestrator (engine/_decide.py, streams/processors/_partition_logic.py) and client
# (streams/client/_run_ids.py) give for a refused hook payload, most specific first.
_REFUSALS: Final[tuple[tuple[re.Pattern[str], type[KflowError]], ...]] = (
    (re.compile(r"is no hook token|is not of the form|does not belong to run"), InvalidTokenError),
    (re.compile(r"already received its payload|already has a payload waiting"), HookAlreadyReceivedError),
    (re.compile(r"\bhas expired\b"), HookExpiredError),
    (re.compile(r"^no run \S+ on this partition|^run \S+ (is|was) |is no longer awaited"), HookNotFoundError),
)


def hook_refusal_error(reason: str) -> type[KflowError] | None:
    """The pyworkflow-named error class for a hook payload refused with ``reason``, or None (e.g. a payload the
    hook's ``payload_schema`` rejected: only ``streams.HookDeliveryError`` then)."""
    for pattern, cls in _REFUSALS:
        if pattern.search(reason):
            return cls
    return None
