"""The metric registry: names, bounded label values, the hot-path counters and what a scrape serves (no servers:
the HTTP server listens on a free local port)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.core import Metric

from engine.runtime import CallArgs, RunFinished, WorkflowStarted
from streams.processors import (
    DEAD_LETTER_KINDS,
    METRIC_SOURCES,
    METRICS_REGISTRY,
    MetricNames,
    ObservabilityServer,
    ProgressWatch,
    count_dead_letter,
    count_step,
    count_transition,
    dead_letter_kind,
    lag_family,
)

OTHER = "other"

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _names() -> Iterator[None]:
    before = MetricNames.workflows, MetricNames.steps
    MetricNames.learn(["order"], ["charge"])
    yield
    MetricNames.workflows, MetricNames.steps = before


def value(name: str, **labels: str) -> float:
    found = METRICS_REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def label_values(metric: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for family in METRICS_REGISTRY.collect()
        if family.name == metric
        for sample in family.samples
        if label in sample.labels
    }


def started(workflow: str) -> WorkflowStarted:
    return WorkflowStarted(run_id=RUN_ID, seq=0, timestamp=0, workflow_name=workflow, args=CallArgs((), {}))


def finished(workflow: str, status: str) -> RunFinished:
    return RunFinished(run_id=RUN_ID, workflow_name=workflow, status=status, started_at=0, finished_at=1)


def test_runs_started_and_finished_are_counted_by_workflow_and_status() -> None:
    before = (
        value("kflow_runs_started_total", workflow="order"),
        value("kflow_runs_finished_total", workflow="order", status="completed"),
    )
    count_transition([started("order")], [finished("order", "completed")])
    assert value("kflow_runs_started_total", workflow="order") == before[0] + 1
    assert value("kflow_runs_finished_total", workflow="order", status="completed") == before[1] + 1


def test_label_values_are_bounded_never_a_run_id_or_an_unknown_name() -> None:
    count_transition([started(RUN_ID)], [finished("not-registered", "weird status " + RUN_ID)])
    count_step(RUN_ID, 2, False, 0.1)
    count_dead_letter(f"p-{RUN_ID}.inbox", f"processing failed: KeyError: {RUN_ID}")
    count_dead_letter("p.whatever", f"run {RUN_ID} something new happened")
    assert label_values("kflow_runs_started", "workflow") <= {"order", OTHER}
    assert label_values("kflow_runs_finished", "status") <= {
        "completed",
        "failed",
        "cancelled",
        "continued_as_new",
        OTHER,
    }
    assert label_values("kflow_step_executions", "step") <= {"charge", OTHER}
    assert label_values("kflow_dead_letters", "source") <= {"inbox", "tasks", "timers", "history", OTHER}
    assert label_values("kflow_dead_letters", "kind") <= {kind for _, kind in DEAD_LETTER_KINDS} | {OTHER}
    texts = [sample.labels for family in METRICS_REGISTRY.collect() for sample in family.samples]
    assert not any(RUN_ID in str(labels) for labels in texts)


def test_a_step_attempt_counts_execution_retry_failure_and_duration() -> None:
    names = ["kflow_step_executions_total", "kflow_step_retries_total", "kflow_step_failures_total"]
    before = [value(name, step="charge") for name in names]
    count_before = value("kflow_step_duration_seconds_count", step="charge")
    count_step("charge", 1, False, 0.02)  # first attempt, failed
    count_step("charge", 2, True, 0.01)  # the retry, succeeded
    assert [value(name, step="charge") for name in names] == [before[0] + 2, before[1] + 1, before[2] + 1]
    assert value("kflow_step_duration_seconds_count", step="charge") == count_before + 2


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("undecodable record: bad magic", "undecodable"),
        ("processing failed: ValueError: x", "processing_failed"),
        (
            "wrong partition: key 'k' belongs to partition 1 (murmur2), not 0, and was re-routed here already",
            "misrouted",
        ),
        ("StepResult does not belong on the inbox", "wrong_topic"),
        ("key b'x' is not the run id 'y'", "bad_key"),
        ("hook payload for token 'r:a' not delivered: run r is completed", "hook_refused"),
        ("run r was compacted (kflow compact): its state was dropped", "compacted"),
        ("no run r on this partition", "unknown_run"),
        ("no workflow named 'x' is registered (known: order)", "unknown_workflow"),
        ("unauthenticated StepResult: it carries no MAC (one is required while KFLOW_SECRET is set)", "unsigned"),
        ("the history record processing it produced is too large: 2000000 bytes", "too_large"),
        ("something nobody foresaw", OTHER),
    ],
)
def test_dead_letter_reasons_map_to_a_fixed_set_of_kinds(reason: str, kind: str) -> None:
    assert dead_letter_kind(reason) == kind


def test_consumer_lag_is_one_sample_per_group_and_partition() -> None:
    family = lag_family([("p.orchestrator", 0, 3), ("p.orchestrator", 1, 0)])
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"group": "p.orchestrator", "partition": "0"}, 3),
        ({"group": "p.orchestrator", "partition": "1"}, 0),
    ]
    assert ProgressWatch().lag == {}


def scrape(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_the_server_serves_metrics_read_on_the_event_loop_and_health_as_json() -> None:
    loop = asyncio.get_running_loop()
    read_on: list[asyncio.AbstractEventLoop] = []

    def source() -> list[Metric]:
        read_on.append(asyncio.get_running_loop())
        return [lag_family([("unit.workers", 0, 7)])]

    METRIC_SOURCES.watch(source, loop)
    server = ObservabilityServer(0, loop, host="127.0.0.1")
    server.start()
    try:
        status, text = await asyncio.to_thread(scrape, server.port, "/metrics")
        assert status == 200
        assert 'kflow_consumer_lag{group="unit.workers",partition="0"} 7.0' in text
        assert "kflow_runs_started_total" in text and "kflow_step_duration_seconds_bucket" in text
        assert read_on == [loop]  # the processors' state is read on their loop, not the HTTP thread
        status, text = await asyncio.to_thread(scrape, server.port, "/healthz")
        assert status == 200 and json.loads(text)["status"] == "ok"
        status, text = await asyncio.to_thread(scrape, server.port, "/nothing")
        assert status == 404
    finally:
        server.stop()
        METRIC_SOURCES._sources.remove(source)


def test_the_dashboard_and_the_docs_name_only_metrics_the_processes_serve() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    documented = set(re.findall(r"`(kflow_[a-z_]+)`", (root / "docs" / "api.md").read_text()))
    dashboard = json.loads((root / "deploy" / "grafana" / "kflow.json").read_text())
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"kflow_[a-z_]+", target["expr"])
    }
    served = {family.name for family in METRICS_REGISTRY.collect()}  # counters without _total
    sources = Path(root / "streams" / "processors" / "_metric_sources.py").read_text()
    served |= set(re.findall(r'"(kflow_[a-z_]+)"', sources))
    served |= {"kflow_consumer_lag"}
    named = {name.removesuffix("_total") for name in documented | used}
    assert used <= documented | {"kflow_up"}
    assert named <= served, named - served
    assert len(used) >= 20
