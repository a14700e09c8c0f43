"""Where a run's latency goes: per-hop times from the records' own timestamps (what bench.durable --hops prints).

A 1-step run crosses four hops, each ending when a producer's record is written (its CreateTime, set at send on this
machine's clock) or when the client sees the completion:

    start    client sends StartWorkflow (inbox)
    → task   the orchestrator has read it, replayed the run and sent ExecuteStep (tasks)
    → result a worker has read the task (visible once the orchestrator's transaction committed), run it, sent StepResult
    → done   the orchestrator has read the result, finished the run and sent RunFinished (completions)
    → seen   the client's completion tail delivered it (visible once that transaction committed)

Each hop holds the previous transaction's commit, the next consumer's fetch and the processing in between.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from engine.runtime import ExecuteStep, RunFinished, StartWorkflow, StepResult
from schemas import RecordCodec, SchemaError
from streams import Settings, Topics
from streams.kafka import read_partition

HOPS = ("start→task", "task→result", "result→done", "done→seen")


@dataclass(frozen=True, slots=True)
class Timed:
    """One run of the latency phase: its id, when the client sent its start and saw its result (epoch ms)."""

    run_id: str
    sent_ms: float
    seen_ms: float


async def record_times(settings: Settings, run_ids: set[str]) -> dict[str, dict[str, int]]:
    """The CreateTime of each run's first start, task, result and completion records, by run id."""
    topics, codec = Topics(settings.topic_prefix), RecordCodec(secret=settings.secret)
    kinds = {StartWorkflow: "start", ExecuteStep: "task", StepResult: "result", RunFinished: "done"}
    found: dict[str, dict[str, int]] = {}
    for topic in (topics.inbox, topics.tasks, topics.completions):
        for partition in range(settings.partitions):
            async for message in read_partition(settings.kafka_target(), TopicPartition(topic, partition), None):
                try:
                    record = codec.decode(message.value)
                except SchemaError:
                    continue
                kind = kinds.get(type(record))
                run_id = getattr(record, "run_id", None)
                if kind is not None and run_id in run_ids:
                    found.setdefault(run_id, {}).setdefault(kind, message.timestamp)
    return found


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def hop_lines(settings: Settings, runs: Sequence[Timed]) -> list[str]:
    """p50 / p99 / max of each hop over ``runs``, and which hop made the slowest 1 % slow."""
    times = await record_times(settings, {run.run_id for run in runs})
    rows: list[tuple[float, list[float]]] = []
    for run in runs:
        t = times.get(run.run_id, {})
        if not {"start", "task", "result", "done"} <= t.keys():
            continue
        marks = [t["start"], t["task"], t["result"], t["done"], run.seen_ms]
        rows.append((run.seen_ms - run.sent_ms, [b - a for a, b in itertools.pairwise(marks)]))
    if not rows:
        return ["hops: no run had all four records"]
    lines = [f"hops over {len(rows)} runs (record CreateTimes, ms):  p50    p99    max   share of the slowest 1 %"]
    slow = sorted(rows, key=lambda row: row[0])[-max(1, len(rows) // 100) :]
    slow_total = sum(sum(hops) for _, hops in slow) or 1.0
    for i, name in enumerate(HOPS):
        values = [hops[i] for _, hops in rows]
        share = sum(hops[i] for _, hops in slow) / slow_total
        lines.append(
            f"    {name:<12} {pct(values, 0.5):6.1f} {pct(values, 0.99):6.1f} {max(values):6.1f}   {share:6.0%}"
        )
    totals = [total for total, _ in rows]
    lines.append(f"    end to end   {statistics.median(totals):6.1f} {pct(totals, 0.99):6.1f} {max(totals):6.1f}")
    return lines
