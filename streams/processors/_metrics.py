"""Prometheus metrics of the long-running processes (``--metrics-port``; docs/api.md "Metrics").

The hot paths bump a few counters and histograms here (a run started or finished, a step attempt, a transaction,
a dead letter, an adoption); the rest is read from the processors' stats objects when ``/metrics`` is scraped
(``StatsCollector``). Label values are bounded: workflow and step names come from the registry (anything else is
``other``), a dead letter's reason is reduced to one of ``DEAD_LETTER_KINDS``; never a run id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.runtime import RunFinished, WorkflowStarted

REGISTRY = CollectorRegistry(auto_describe=True)
"""The registry ``/metrics`` serves (one per process; with the standard ``process_*`` figures: CPU, memory, fds)."""
ProcessCollector(registry=REGISTRY)

OTHER = "other"
"""The label value of a name outside the known set (bounded labels)."""
DEAD_LETTER_KINDS: tuple[tuple[str, str], ...] = (
    ("undecodable", "undecodable"),
    ("processing failed", "processing_failed"),
    ("worker failed", "processing_failed"),
    ("wrong partition", "misrouted"),
    ("does not belong", "wrong_topic"),
    ("is not the run id", "bad_key"),
    ("hook payload", "hook_refused"),
    ("was compacted", "compacted"),
    ("no run ", "unknown_run"),
    ("no workflow named", "unknown_workflow"),
    ("too large", "too_large"),
    ("unauthenticated", "unsigned"),
    ("tombstone", "tombstone"),
)
"""(text in the reason, kind): the first match names a dead letter's ``kind`` label, else ``other``."""

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

RUNS_STARTED = Counter("kflow_runs_started", "Runs started, by workflow", ["workflow"], registry=REGISTRY)
RUNS_FINISHED = Counter(
    "kflow_runs_finished", "Runs finished, by workflow and status", ["workflow", "status"], registry=REGISTRY
)
STEP_EXECUTIONS = Counter("kflow_step_executions", "Step attempts run by this worker", ["step"], registry=REGISTRY)
STEP_FAILURES = Counter("kflow_step_failures", "Step attempts that failed", ["step"], registry=REGISTRY)
STEP_RETRIES = Counter("kflow_step_retries", "Step attempts after the first (retries)", ["step"], registry=REGISTRY)
STEP_DURATION = Histogram(
    "kflow_step_duration_seconds", "Duration of a step attempt", ["step"], buckets=_SECONDS, registry=REGISTRY
)
TIMER_LATENESS = Histogram(
    "kflow_timer_lateness_seconds", "TimerFired sent minus the timer's due time", buckets=_SECONDS, registry=REGISTRY
)
TRANSACTION_SECONDS = Histogram(
    "kflow_transaction_seconds",
    "Duration of an orchestrator batch's Kafka transaction",
    buckets=_SECONDS,
    registry=REGISTRY,
)
TRANSACTION_ABORTS = Counter(
    "kflow_transaction_aborts", "Orchestrator transactions that failed (the partition is restored)", registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "kflow_dead_letters",
    "Records sent to .dlq, by source topic and reason kind",
    ["source", "kind"],
    registry=REGISTRY,
)
ADOPTION_SECONDS = Histogram(
    "kflow_partition_adoption_seconds",
    "Duration of an inbox partition adoption (its _count: adoptions)",
    buckets=_SECONDS,
    registry=REGISTRY,
)
CACHE_HITS = Counter("kflow_run_cache_hits", "Inputs for a run found live in the cache", registry=REGISTRY)
CACHE_MISSES = Counter("kflow_run_cache_misses", "Inputs for a run rebuilt by replay", registry=REGISTRY)
CACHE_EVICTIONS = Counter("kflow_run_cache_evictions", "Live runs evicted from the cache (LRU)", registry=REGISTRY)
UP = Gauge("kflow_up", "1 while the process serves metrics", registry=REGISTRY)
UP.set(1)

_STATUSES = frozenset({"completed", "failed", "cancelled", "continued_as_new"})
_SOURCES = frozenset({"inbox", "tasks", "timers", "history"})


class Names:
    """The label values one process may use for workflow and step names: those of its registry (bounded)."""

    workflows: frozenset[str] = frozenset()
    steps: frozenset[str] = frozenset()

    @classmethod
    def learn(cls, workflows: Iterable[str], steps: Iterable[str]) -> None:
        """Allow these names (the ``-A`` module's workflows and steps)."""
        cls.workflows, cls.steps = cls.workflows | frozenset(workflows), cls.steps | frozenset(steps)

    @classmethod
    def workflow(cls, name: str) -> str:
        """``name`` if it is a known workflow, else ``other``."""
        return name if name in cls.workflows else OTHER

    @classmethod
    def step(cls, name: str) -> str:
        """``name`` if it is a known step, else ``other``."""
        return name if name in cls.steps else OTHER


def status_label(status: object) -> str:
    """A run status as a bounded label value."""
    text = str(getattr(status, "value", status)).lower()
    return text if text in _STATUSES else OTHER


def dead_letter_kind(reason: str) -> str:
    """The ``kind`` label of a dead letter with this reason (``DEAD_LETTER_KINDS``)."""
    lowered = reason.lower()
    return next((kind for text, kind in DEAD_LETTER_KINDS if text in lowered), OTHER)


def count_dead_letter(topic: str, reason: str) -> None:
    """Count a dead letter from ``topic`` (a full topic name; labelled by its suffix) with ``reason``."""
    source = topic.rsplit(".", 1)[-1]
    DEAD_LETTERS.labels(source if source in _SOURCES else OTHER, dead_letter_kind(reason)).inc()


_StepChildren = tuple[Any, Any, Any, Any]
_step_children: dict[str, _StepChildren] = {}  # label value -> its four children (labels() takes a lock each time)


def count_step(step: str, attempt: int, ok: bool, seconds: float) -> None:
    """Count one step attempt (``attempt`` from 1)."""
    label = Names.step(step)
    children = _step_children.get(label)
    if children is None:
        children = (
            STEP_EXECUTIONS.labels(label),
            STEP_RETRIES.labels(label),
            STEP_FAILURES.labels(label),
            STEP_DURATION.labels(label),
        )
        _step_children[label] = children
    executions, retries, failures, duration = children
    executions.inc()
    if attempt > 1:
        retries.inc()
    if not ok:
        failures.inc()
    duration.observe(max(seconds, 0.0))


Family = Callable[[], Iterable[Metric]]
"""Builds metric families from a processor's state, at scrape time."""


class StatsCollector(Collector):
    """Metric families read from the registered processors when scraped (``watch``), on their event loop (the
    processors' state is the loop's: read there, never from the HTTP thread)."""

    def __init__(self) -> None:
        self._sources: list[Family] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def watch(self, source: Family, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Add a source of families, read on ``loop`` (None: in the scraping thread)."""
        self._sources.append(source)
        self.loop = loop or self.loop

    def collect(self) -> Iterator[Metric]:
        loop = self.loop
        if loop is None or not loop.is_running():
            yield from self._read()
            return

        async def read() -> list[Metric]:
            return self._read()

        try:
            yield from asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=5)
        except (TimeoutError, RuntimeError):  # the loop is stalled or gone: /healthz says so; the rest is served
            return

    def _read(self) -> list[Metric]:
        return [metric for source in list(self._sources) for metric in source()]


STATS = StatsCollector()
REGISTRY.register(STATS)


def gauge(name: str, doc: str, value: float, labels: Mapping[str, str] | None = None) -> GaugeMetricFamily:
    """A one-sample gauge family."""
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    """A one-sample counter family (``name`` without ``_total``)."""
    return CounterMetricFamily(name, doc, value=value)


def lag_family(lags: Iterable[tuple[str, int, int]]) -> GaugeMetricFamily:
    """``kflow_consumer_lag`` from (group, partition, records behind)."""
    family = GaugeMetricFamily(
        "kflow_consumer_lag", "Records behind the end of a partition, by group", labels=["group", "partition"]
    )
    for group, partition, behind in lags:
        family.add_metric([group, str(partition)], behind)
    return family


def families_of(items: Iterable[tuple[str, str, str, Any]]) -> list[Metric]:
    """Families from (kind ``gauge``/``counter``, name, doc, value) tuples."""
    return [gauge(n, d, float(v)) if kind == "gauge" else counter(n, d, float(v)) for kind, n, d, v in items]


def count_transition(events: Iterable[object], commands: Iterable[object]) -> None:
    """Count the runs a transition started (``WorkflowStarted``) and finished (``RunFinished``)."""
    for event in events:
        if isinstance(event, WorkflowStarted):
            RUNS_STARTED.labels(Names.workflow(event.workflow_name)).inc()
    for command in commands:
        if isinstance(command, RunFinished):
            RUNS_FINISHED.labels(Names.workflow(command.workflow_name), status_label(command.status)).inc()
