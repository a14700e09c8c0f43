"""OpenTelemetry traces in the orchestrator's per-partition logic and the timer index, without Kafka: the spans it
records, the trace-context headers on what it writes, and the context surviving a restore (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode
from partition_samples import RECORDS, echo, result, start, topics

from engine import Registry, runtime, start_child_workflow, step, workflow
from engine.runtime import StartTimer
from streams import use_tracer_provider
from streams.kafka import partition_for
from streams.processors import ArmedTimer, ChangelogFold, Output, PartitionLogic, TimerIndex, changelog_key

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT = (("traceparent", f"00-{TRACE_ID:032x}-b7ad6b7169203331-01".encode()), ("tracestate", b"vendor=1"))


@step
async def boom() -> None:
    raise ValueError("no")


@workflow
async def child(value: object) -> object:
    return await echo(value)


@workflow
async def parent(value: object) -> object:
    return await start_child_workflow(child, value)


@workflow
async def doomed(value: object) -> None:
    await boom()


REGISTRY = Registry([echo, child, parent, boom, doomed])


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans kflow records in this test, in memory (the global provider is left alone)."""
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    yield exporter
    use_tracer_provider(None)
    provider.shutdown()


def part(inbox_partitions: int | None = None) -> PartitionLogic:
    return PartitionLogic(REGISTRY, RECORDS, "p.inbox", 0, 100, snapshot_after=1, inbox_partitions=inbox_partitions)


def begin(logic: PartitionLogic, run_id: str, name: str = "child", trace: tuple[tuple[str, bytes], ...] = PARENT):
    return logic.process(run_id.encode(), start(run_id, name), 0, 10, trace=trace)


def named(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def traceparent(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01".encode()


def test_a_run_is_a_child_of_its_start_and_every_record_of_it_carries_its_context(
    spans: InMemorySpanExporter,
) -> None:
    logic = part()
    outputs = begin(logic, "r1")
    run = named(spans)["RunWorkflow:child"]
    assert run.parent is not None and run.parent.span_id == 0xB7AD6B7169203331
    assert run.context.trace_id == TRACE_ID and run.kind == SpanKind.CONSUMER
    assert dict(run.attributes or {}) == {"kflow.run_id": "r1", "kflow.workflow": "child"}
    trace = (("traceparent", traceparent(run)), ("tracestate", b"vendor=1"))
    assert topics(outputs) == ["history", "history", "tasks"]
    assert [o.headers for o in outputs] == [trace, (), trace]  # the run's first event: read back on a restore
    finished = logic.process(b"r1", result("r1", 0, "v"), 1, 11)
    assert topics(finished) == ["history", "history", "completions", "state"]
    assert finished[2].headers == trace and finished[3].headers == ()
    complete = named(spans)["CompleteWorkflow:child"]
    assert complete.parent is not None and complete.parent.span_id == run.context.span_id
    assert complete.status.status_code == StatusCode.UNSET and complete.attributes["kflow.status"] == "completed"
    assert len(logic.traces) == 0  # a finished run keeps no context


def test_a_child_run_is_a_child_of_its_start_child_workflow_span(spans: InMemorySpanExporter) -> None:
    logic = part()
    outputs = begin(logic, "p1", "parent")
    run = named(spans)["RunWorkflow:parent"]
    (started,) = [o for o in outputs if o.topic == "inbox"]
    launch = named(spans)["StartChildWorkflow:child"]
    assert launch.parent is not None and launch.parent.span_id == run.context.span_id
    assert launch.kind == SpanKind.PRODUCER
    child_id = RECORDS.decode(started.value).run_id  # type: ignore[attr-defined]
    assert launch.attributes == {
        "kflow.run_id": child_id,
        "kflow.workflow": "child",
        "kflow.parent_run_id": "p1",
        "kflow.position": 0,
    }
    assert started.headers == (("traceparent", traceparent(launch)), ("tracestate", b"vendor=1"))
    logic.process(child_id.encode(), started.value, 1, 11, trace=started.headers)
    child_run = named(spans)["RunWorkflow:child"]
    assert child_run.parent is not None and child_run.parent.span_id == launch.context.span_id
    assert {span.context.trace_id for span in spans.get_finished_spans()} == {TRACE_ID}


def test_a_failed_run_completes_with_an_error_span(spans: InMemorySpanExporter) -> None:
    logic = part()
    begin(logic, "d1", "doomed")
    failed = runtime.StepResult(
        run_id="d1",
        position=0,
        attempt=1,
        ok=False,
        error=runtime.ErrorInfo(type="builtins.ValueError", message="no", retryable=False),
        worker="w",
        started_at=1,
        finished_at=2,
    )
    logic.process(b"d1", RECORDS.encode(failed), 1, 11)
    complete = named(spans)["CompleteWorkflow:doomed"]
    assert complete.status.status_code == StatusCode.ERROR and "ValueError: no" in str(complete.status.description)


def test_the_context_is_restored_from_the_history_and_from_a_snapshot(spans: InMemorySpanExporter) -> None:
    live = part()
    history = [o for o in begin(live, "r1") if o.topic == "history"]
    trace = live.traces.of("r1")
    assert trace and history[0].headers == trace
    live.observe("r1", 0)
    live.history_end = 2
    (snapshot,) = live.snapshot_outputs(10 + 60_000)
    assert snapshot.headers == trace

    from_history, from_snapshot = part(), part()
    for offset, out in enumerate(history):
        from_history.restore(RECORDS.decode(out.value), offset, out.value, out.headers)  # type: ignore[arg-type]
    from_snapshot.restore_state(snapshot.key, snapshot.value, snapshot.headers)
    for restored in (from_history, from_snapshot):
        assert restored.traces.of("r1") == trace
        done = restored.process(b"r1", result("r1", 0, "v"), 1, 11)
        assert [o.headers for o in done if o.topic == "completions"] == [trace]
    assert len([s for s in spans.get_finished_spans() if s.name == "RunWorkflow:child"]) == 1  # not made again


def test_a_record_moved_to_its_partition_keeps_its_context(spans: InMemorySpanExporter) -> None:
    elsewhere = next(f"m{i}" for i in range(100) if partition_for(f"m{i}".encode(), 2) == 1)
    (moved,) = part(inbox_partitions=2).process(elsewhere.encode(), start(elsewhere), 0, 10, trace=PARENT)
    assert moved.topic == "inbox" and moved.partition == 1 and moved.headers[1:] == PARENT
    assert spans.get_finished_spans() == ()  # it runs on its own partition


def test_without_a_provider_the_context_passes_through_unchanged() -> None:
    use_tracer_provider(NoOpTracerProvider())
    try:
        outputs = begin(part(), "r1")
        assert [o.headers for o in outputs] == [PARENT, (), PARENT]
        assert {o.headers for o in begin(part(), "r2", trace=())} == {()}  # nothing to pass: no header at all
    finally:
        use_tracer_provider(None)


def test_a_timer_keeps_its_context_and_arming_time_in_the_index_and_the_changelog(tmp_path: Path) -> None:
    record = StartTimer(run_id="r", timer_id="sleep:1:1", position=1, kind="sleep", fire_at=500, requested_at=100)
    armed = ArmedTimer.of(record, PARENT)
    assert (armed.requested_at, armed.trace) == (100, PARENT)
    assert armed == ArmedTimer(500, "r", "sleep:1:1", 1, "sleep")  # they describe it, they do not identify it
    index = TimerIndex(tmp_path / "timers-0.sqlite3")
    index.apply([armed, ArmedTimer(600, "r", "sleep:2:1", 2, "sleep")])
    first, second = index.earliest(10)
    assert (first.requested_at, first.trace, second.requested_at, second.trace) == (100, PARENT, 0, ())
    index.close()
    fold = ChangelogFold(RECORDS)
    fold.apply(changelog_key(armed.key), RECORDS.encode(record), PARENT)
    assert [(t.trace, t.requested_at) for t in fold.result(1).timers] == [(PARENT, 100)]


def test_an_index_file_of_an_older_kflow_gets_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "timers-0.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE timers (run_id TEXT NOT NULL, timer_id TEXT NOT NULL, position INTEGER NOT NULL, "
        "kind TEXT NOT NULL, fire_at INTEGER NOT NULL, PRIMARY KEY (run_id, timer_id))"
    )
    old.execute("INSERT INTO timers VALUES ('r', 'sleep:1:1', 1, 'sleep', 500)")
    old.commit()
    old.close()
    index = TimerIndex(path)
    assert index.earliest(10) == [ArmedTimer(500, "r", "sleep:1:1", 1, "sleep")]
    index.apply([ArmedTimer(500, "r", "sleep:1:1", 1, "sleep", 7, PARENT)])
    assert [(t.requested_at, t.trace) for t in index.earliest(10)] == [(7, PARENT)]
    index.close()


def test_outputs_without_headers_are_sent_without_headers() -> None:
    assert Output("tasks", b"k", b"v").options["headers"] is None
    assert Output("tasks", b"k", b"v", headers=PARENT).options["headers"] == list(PARENT)
