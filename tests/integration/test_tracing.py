"""OpenTelemetry traces end to end on the real broker (docs/operations.md, "Traces"): the caller's trace context rides
the Kafka record headers through ``.inbox``, ``.tasks``, ``.timers``, ``StepResult`` and ``.completions``, so one run is
one trace: the client's span, the run's, a span per step attempt, per timer and per child, and the run's end. The
spans go to an in-memory exporter set for this module only (``streams.use_tracer_provider``; the global provider is
never touched)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from engine import Registry
from streams import Settings, Topics, create_topics, use_tracer_provider
from streams.client import Client
from streams.processors import Orchestrator, StepWorker, TimerProcessor
from support import eventually

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class App:
    settings: Settings
    registry: Registry
    client: Client
    orchestrator: Orchestrator
    spans: InMemorySpanExporter
    provider: TracerProvider


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    yield provider, exporter
    use_tracer_provider(None)
    provider.shutdown()


@pytest.fixture(scope="module")
async def app(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> AsyncIterator[App]:
    """Orchestrator, timer processor, worker and client in this process, on a topic prefix of their own."""
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-traces")
    await create_topics(own.bootstrap, Topics(own.topic_prefix), own.partitions)
    registry = Registry.from_module("tracing_workflows")
    orchestrator = Orchestrator(own, registry)
    timers = TimerProcessor(own, state_dir=tmp_path_factory.mktemp("timers"))
    worker = StepWorker(own, registry, concurrency=8)
    for service in (orchestrator, timers, worker):
        await service.start()
    async with Client(settings=own, registry=registry) as client:
        found = App(own, registry, client, orchestrator, provider[1], provider[0])
        yield found
    for service in (worker, timers, found.orchestrator):
        await service.stop()


async def traced_start(app: App, workflow: str, *args: object) -> tuple[str, ReadableSpan]:
    """Start a run inside a span of the caller's own; the run id and that span."""
    with app.provider.get_tracer("caller").start_as_current_span("caller") as span:
        run_id = await app.client.start(workflow, *args)
    (caller,) = [s for s in app.spans.get_finished_spans() if s.context.span_id == span.get_span_context().span_id]
    return run_id, caller


def trace_of(app: App, caller: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in app.spans.get_finished_spans() if s.context.trace_id == caller.context.trace_id]


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


async def test_a_run_with_a_retry_and_a_sleep_is_one_trace(app: App) -> None:
    run_id, caller = await traced_start(app, "traced_order", "o-1")
    assert await app.client.result(run_id, timeout=60) == "shipped-charged-prepared-o-1"

    def complete() -> list[ReadableSpan]:
        return trace_of(app, caller) if named(trace_of(app, caller), "CompleteWorkflow:traced_order") else []

    spans = await eventually(complete, what="the run's CompleteWorkflow span")
    assert Counter(s.name for s in spans) == {
        "caller": 1,
        "StartWorkflow:traced_order": 1,
        "RunWorkflow:traced_order": 1,
        "RunStep:prepare": 1,
        "RunStep:charge": 2,
        "Timer:retry": 1,
        "Timer:sleep": 1,
        "RunStep:ship": 1,
        "CompleteWorkflow:traced_order": 1,
    }
    (start,) = named(spans, "StartWorkflow:traced_order")
    assert child_of(start, caller) and start.kind == SpanKind.PRODUCER
    assert start.attributes == {"kflow.run_id": run_id, "kflow.workflow": "traced_order"}
    (run,) = named(spans, "RunWorkflow:traced_order")
    assert child_of(run, start) and run.attributes == {"kflow.run_id": run_id, "kflow.workflow": "traced_order"}
    below_run = [s for s in spans if s.name not in {"caller", "StartWorkflow:traced_order", run.name}]
    assert all(child_of(s, run) for s in below_run), [(s.name, s.parent) for s in below_run]

    first, second = sorted(named(spans, "RunStep:charge"), key=lambda s: s.attributes["kflow.attempt"])  # type: ignore[index]
    assert first.kind == SpanKind.CONSUMER and first.attributes == {
        "kflow.run_id": run_id,
        "kflow.workflow": "traced_order",
        "kflow.step": "charge",
        "kflow.position": 1,
        "kflow.attempt": 1,
    }
    assert first.status.status_code == StatusCode.ERROR and "card network busy" in str(first.status.description)
    (event,) = first.events
    assert event.name == "exception" and event.attributes["exception.message"] == "card network busy"  # type: ignore[index]
    assert second.attributes["kflow.attempt"] == 2 and second.status.status_code == StatusCode.UNSET  # type: ignore[index]
    (sleep,) = named(spans, "Timer:sleep")
    assert sleep.attributes == {"kflow.run_id": run_id, "kflow.timer_id": "sleep:2:1", "kflow.position": 2}
    (done,) = named(spans, "CompleteWorkflow:traced_order")
    assert done.attributes["kflow.status"] == "completed"  # type: ignore[index]


async def test_a_child_run_is_a_child_of_its_parents_start_child_workflow_span(app: App) -> None:
    run_id, caller = await traced_start(app, "traced_parent", "o-2")
    assert await app.client.result(run_id, timeout=60) == "prepared-o-2"

    def both_complete() -> list[ReadableSpan]:
        spans = trace_of(app, caller)
        return spans if len([s for s in spans if s.name.startswith("CompleteWorkflow:")]) == 2 else []

    spans = await eventually(both_complete, what="both runs' CompleteWorkflow spans")
    (parent_run,) = named(spans, "RunWorkflow:traced_parent")
    (launch,) = named(spans, "StartChildWorkflow:traced_child")
    (child_run,) = named(spans, "RunWorkflow:traced_child")
    (child_step,) = named(spans, "RunStep:prepare")
    (child_done,) = named(spans, "CompleteWorkflow:traced_child")
    assert child_of(launch, parent_run) and child_of(child_run, launch)
    assert child_of(child_step, child_run) and child_of(child_done, child_run)
    assert child_step.attributes["kflow.run_id"] == launch.attributes["kflow.run_id"] != run_id  # type: ignore[index]


async def test_the_run_keeps_its_trace_across_an_orchestrator_restart(app: App, tmp_path: Path) -> None:
    run_id, caller = await traced_start(app, "traced_waiting", "o-3")

    async def waiting() -> bool:
        return any(type(e).__name__ == "HookCreated" for e in await app.client.get_events(run_id))

    await eventually(waiting, what="the run waiting on its hook")
    await app.orchestrator.stop()  # its successor rebuilds the partition from Kafka: state, history, headers
    app.orchestrator = Orchestrator(app.settings, app.registry)
    await app.orchestrator.start()
    await app.client.resume_hook(f"{run_id}:go", None, timeout=60)
    assert await app.client.result(run_id, timeout=60) == "shipped-prepared-o-3"

    def complete() -> list[ReadableSpan]:
        spans = trace_of(app, caller)
        return spans if named(spans, "CompleteWorkflow:traced_waiting") else []

    spans = await eventually(complete, what="the run's CompleteWorkflow span")
    (run,) = named(spans, "RunWorkflow:traced_waiting")  # recorded once, by the first orchestrator
    (ship,) = named(spans, "RunStep:ship")  # commanded by the second one
    (done,) = named(spans, "CompleteWorkflow:traced_waiting")
    assert child_of(ship, run) and child_of(done, run)
