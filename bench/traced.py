"""``python -m bench.traced <kflow arguments>``: the ``kflow`` command with OpenTelemetry traces recorded and dropped.

An SDK tracer provider with a ``BatchSpanProcessor`` (as ``KFLOW_TRACES=otlp`` installs) whose exporter drops every
span, set as the global provider before the command runs: the cost of recording and batching the spans, without the
cost of an OTLP collector. ``python -m bench.durable --traces`` starts every process this way (and traces its client).
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class Dropping(SpanExporter):
    """Counts the spans it is given and keeps none."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def install(report: str | None = None) -> Dropping:
    """Set the global tracer provider: every span recorded, batched, then dropped. ``report``: at exit, print how
    many spans were recorded, with that label (to stderr)."""
    exporter = Dropping()
    if report is not None:  # registered before the provider's own exit hook, so it runs after its last flush
        atexit.register(lambda: print(f"{report}: {exporter.spans} spans recorded (dropped)", file=sys.stderr))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


if __name__ == "__main__":
    install(f"kflow {sys.argv[1] if len(sys.argv) > 1 else ''}")
    from streams.cli import main

    sys.exit(main(sys.argv[1:]))
