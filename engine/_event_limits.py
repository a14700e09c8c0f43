"""``EventLimits``: the bounds on one run's history length and on the work of one activation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Bounds on one run: the length of its history (its number of events) and the work of one activation.

    Attributes:
        soft: once a new event takes the history past ``soft``, a warning is logged
            (logger ``"engine"``) suggesting ``continue_as_new`` (and again every
            ``event_warning_interval`` events).
        hard: an activation that would take the history past ``hard`` is not recorded;
            the run fails with ``EventLimitExceededError`` instead. Its ``WorkflowFailed`` is
            the only event ever appended beyond ``hard``, so a history holds at most
            ``hard + 1`` events (``RunFinished`` is a command, not a history event).
        activation_steps: the most event-loop callbacks one activation (the workflow code running
            from an input until it waits again) may run. Past it the code is stopped and the run
            fails with ``ActivationBudgetExceededError``: a loop that never waits on kflow cannot
            hold the host. Counted, never timed, so replay stops at the same callback.
        event_warning_interval: past ``soft``, the warning is logged again each time the history
            grows by this many more events (``soft``, ``soft + interval``, ``soft + 2 × interval``, …),
            as pyworkflow-engine's setting of that name.
        early_hook_bytes: the most bytes of early hook payloads (payloads for a hook the run has not reached
            yet, kept until it does) one run holds, each counted as its JSON text plus its token
            (``payload_bytes``). A payload past it is refused with the reason (``HookDeliveryError`` at the
            sender), never dropped silently; payloads for a hook that waits are not counted.

    Raises:
        ValueError: a limit is not a positive int, or ``soft > hard``.
    """

    soft: int = 10_000
    hard: int = 50_000
    activation_steps: int = 1_000_000
    event_warning_interval: int = 100
    early_hook_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        limits = (
            ("soft", self.soft),
            ("hard", self.hard),
            ("activation_steps", self.activation_steps),
            ("event_warning_interval", self.event_warning_interval),
            ("early_hook_bytes", self.early_hook_bytes),
        )
        for label, value in limits:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EventLimits.{label} must be a positive int, got {value!r}")
        if self.soft > self.hard:
            raise ValueError(f"EventLimits.soft ({self.soft}) must not exceed hard ({self.hard})")
