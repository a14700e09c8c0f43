"""The dashboard's figures, gathered in the UI process (``kflow ui``) in the background, cheaply:

- a ``TopicFollower`` (``streams.ops``) reads ``<prefix>.completions``, ``<prefix>.history`` and ``<prefix>.dlq``
  from ``minutes`` ago on and keeps following them; only ``RunFinished``, ``StepScheduled``, ``StepCompleted``,
  ``StepFailed`` and ``DeadLetter`` records are decoded;
- a ``RunFinished`` counts for its workflow and status at its ``finished_at``; a step attempt's latency is from its
  ``StepScheduled`` to its ``StepCompleted`` / ``StepFailed`` (a run's events share one history partition, in order;
  the attempts waiting for their result are remembered, at most ``MAX_PENDING_STEPS``); a ``DeadLetter`` counts at
  its ``failed_at`` (the redrive notes of ``kflow dlq redrive`` do not);
- every ``LAG_EVERY_S`` the consumer groups' lag (``streams.ops.consumer_lags``) is sampled.

The buckets are ``streams.ui._windows.Windows``. A Kafka fault is reported in ``error`` and retried; the follower
starts each partition again after the last record it returned from it (the others from ``minutes`` before the start),
so neither a lagging partition nor one record stamped in the future makes it skip records of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import Final

from engine.runtime import SystemClock
from streams._settings import Settings
from streams._topics import Topics
from streams.ops import GroupLag, TopicFollower, TopicRecord, consumer_lags
from streams.ui._windows import Windows

log = logging.getLogger(__name__)

LAG_EVERY_S: Final = 5.0
RETRY_AFTER_S: Final = 5.0
MAX_PENDING_STEPS: Final = 100_000
_WANTED: Final = ("RunFinished", "StepScheduled", "StepCompleted", "StepFailed", "DeadLetter")
_REDRIVEN: Final = "kflow.Redriven"


class StatsCollector:
    """Follows the topics into ``windows`` and samples the lag, in two background tasks (``start`` / ``stop``)."""

    def __init__(self, settings: Settings, minutes: int = 60) -> None:
        self.settings = settings
        self._clock = SystemClock()
        self.windows = Windows(minutes, self._clock.now_ms)
        self.lags: list[GroupLag] = []
        self.error: str | None = None  # the last Kafka fault, until a poll succeeds again
        self.caught_up = False  # the look-back has been read
        self._pending: OrderedDict[tuple[str, int, int], tuple[str, int]] = OrderedDict()
        self._since_ms = 0
        self._resume: dict[tuple[str, int], int] = {}  # (role, partition) -> the offset after its last record
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start following (from ``minutes`` ago) and sampling, in the background."""
        self._since_ms = self._clock.now_ms() - self.windows.minutes * 60_000
        self._tasks = [
            asyncio.create_task(self._follow(), name="kflow-ui-follow"),
            asyncio.create_task(self._sample_lag(), name="kflow-ui-lag"),
        ]

    async def stop(self) -> None:
        """Stop both tasks."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def apply(self, record: TopicRecord) -> None:
        """Count one record (see the module's docstring)."""
        fields, name = record.fields, record.name
        if name == "RunFinished":
            self.windows.run_finished(str(fields["workflow_name"]), str(fields["status"]), _int(fields["finished_at"]))
        elif name == "StepScheduled":
            key = (str(fields["run_id"]), _int(fields["position"]), _int(fields["attempt"]))
            self._pending[key] = (str(fields["step_name"]), _int(fields["timestamp"]))
            while len(self._pending) > MAX_PENDING_STEPS:
                self._pending.popitem(last=False)
        elif name in ("StepCompleted", "StepFailed"):
            key = (str(fields["run_id"]), _int(fields["position"]), _int(fields["attempt"]))
            scheduled = self._pending.pop(key, None)
            if scheduled is not None:
                at = _int(fields["timestamp"])
                self.windows.step_latency(scheduled[0], max(0, at - scheduled[1]), at)
        elif name == "DeadLetter" and fields.get("error_type") != _REDRIVEN:
            self.windows.dead_letter(_int(fields["failed_at"]))
        if record.offset >= 0:
            self._resume[(record.topic, record.partition)] = record.offset + 1

    async def _follow(self) -> None:
        topics = Topics(self.settings.topic_prefix)
        names = {"completions": topics.completions, "history": topics.history, "dlq": topics.dlq}
        while True:
            follower = TopicFollower(self.settings, names, _WANTED, self._since_ms, self._resume)
            try:
                await follower.start()
                while True:
                    for record in await follower.poll():
                        self.apply(record)
                    self.error = None
                    self.caught_up = self.caught_up or await follower.caught_up()
            except Exception as exc:  # a fault of Kafka (TransportError) or of a client library: keep the UI up
                self.error = f"following the topics: {exc}"
                log.warning("%s; retrying in %.0f s", self.error, RETRY_AFTER_S)
            finally:
                with contextlib.suppress(Exception):
                    await follower.stop()
            await asyncio.sleep(RETRY_AFTER_S)

    async def _sample_lag(self) -> None:
        while True:
            try:
                self.lags = await consumer_lags(self.settings)
                now = self._clock.now_ms()
                for lag in self.lags:
                    self.windows.lag(lag.group, lag.lag, now)
            except Exception as exc:
                log.warning("sampling the consumer lag failed: %s", exc)
            await asyncio.sleep(LAG_EVERY_S)


def _int(value: object) -> int:
    return int(str(value))
