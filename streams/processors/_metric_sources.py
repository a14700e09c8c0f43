"""What ``/metrics`` reads from each processor when scraped (``watch_processor``): gauges of its state now and
the counters its stats objects keep."""

from __future__ import annotations

import asyncio

from prometheus_client.core import Metric

from streams.processors._materializer import HistoryMaterializer
from streams.processors._metrics import STATS, families_of, lag_family
from streams.processors._orchestrator import Orchestrator
from streams.processors._serve import ProgressWatch
from streams.processors._timer_processor import TimerProcessor
from streams.processors._worker import StepWorker

Processor = Orchestrator | TimerProcessor | StepWorker | HistoryMaterializer


def watch_processor(processor: Processor, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Serve ``processor``'s figures on ``/metrics`` (read on ``loop``, the processor's event loop)."""
    STATS.watch(lambda: families(processor), loop)


def _lag(watch: ProgressWatch, group: str) -> Metric:
    return lag_family((group, partition, behind) for partition, behind in sorted(watch.lag.items()))


def families(processor: Processor) -> list[Metric]:
    """The families of one processor now."""
    watch: ProgressWatch = processor._watch
    if isinstance(processor, Orchestrator):
        stats, logics = processor.stats, list(processor.partitions.values())
        return [
            _lag(watch, processor.group),
            *families_of(
                [
                    (
                        "gauge",
                        "kflow_live_runs",
                        "Live runs in the orchestrator's cache",
                        sum(len(x.cache.runs) for x in logics),
                    ),
                    (
                        "gauge",
                        "kflow_running_runs",
                        "Running runs of the owned partitions",
                        sum(len(x.histories) for x in logics),
                    ),
                    (
                        "gauge",
                        "kflow_history_bytes",
                        "Bytes of running runs' histories held in memory",
                        stats.history_bytes,
                    ),
                    (
                        "gauge",
                        "kflow_history_peak_bytes",
                        "Most history bytes one partition held",
                        stats.history_peak_bytes,
                    ),
                    ("gauge", "kflow_partitions_owned", "Inbox partitions adopted by this orchestrator", len(logics)),
                    ("gauge", "kflow_partitions_adopting", "Inbox partitions being adopted", len(processor._adopting)),
                    ("counter", "kflow_orchestrator_records", "Inbox records processed", stats.records),
                    ("counter", "kflow_orchestrator_transactions", "Transactions committed", stats.transactions),
                    (
                        "counter",
                        "kflow_orchestrator_resets",
                        "Partitions restored after a failed transaction",
                        stats.resets,
                    ),
                ]
            ),
        ]
    if isinstance(processor, TimerProcessor):
        timers = processor.stats
        return [
            _lag(watch, processor.group),
            *families_of(
                [
                    ("gauge", "kflow_timers_pending", "Timers armed in the owned partitions", timers.pending),
                    ("counter", "kflow_timers_fired", "TimerFired records sent", timers.fired),
                ]
            ),
        ]
    if isinstance(processor, StepWorker):
        return [
            _lag(watch, processor.group),
            *families_of([("gauge", "kflow_steps_in_flight", "Step attempts running now", len(processor._inflight))]),
        ]
    m = processor.stats
    return [
        _lag(watch, processor.group),
        *families_of(
            [
                ("gauge", "kflow_materializer_lag", "History records not yet in Cassandra", sum(watch.lag.values())),
                (
                    "counter",
                    "kflow_materializer_events_written",
                    "History events written to Cassandra",
                    m.events_written,
                ),
                ("counter", "kflow_materializer_retries", "Cassandra writes retried", m.retries),
            ]
        ),
    ]
