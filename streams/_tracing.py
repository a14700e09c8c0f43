"""OpenTelemetry traces of runs (the optional ``kflow[otel]`` extra): the one module that imports ``opentelemetry``.

It is imported lazily, at the first call that needs it, and only when it is installed: without the extra nothing
here imports it, no span is made and no header is written (every function returns ``()`` or does nothing).

A run's trace context travels as the W3C ``traceparent`` (and ``tracestate``) Kafka record headers
(``streams._headers``); kflow keeps it as a ``Carrier``, those headers as (name, bytes) pairs. Spans go to the
provider set with ``use_tracer_provider``, else to OpenTelemetry's global one (a no-op unless the application, or
``KFLOW_TRACES`` for the long-running commands, set one): with a no-op provider a span is the context it was given,
so a context passes through a process that records nothing. docs/operations.md, "Traces", has the span tree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

from streams._errors import SettingsError
from streams._headers import TRACEPARENT, TRACESTATE

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

Carrier = tuple[tuple[str, bytes], ...]
"""The W3C trace-context headers of a record, ``(("traceparent", b"00-…"), ("tracestate", b"…"))``; ``()``: none."""

Attributes = Mapping[str, str | int | bool]
Kind = Literal["internal", "producer", "consumer"]

TRACE_MODES: Final = ("off", "otlp", "console")
"""The values of ``KFLOW_TRACES``."""

_NAMES: Final = (TRACEPARENT, TRACESTATE)
_VERSION_00: Final = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_DESCRIPTION: Final = 1024
"""Longest span status description written (an error message may be 32,768 characters)."""
_loaded: Any = None  # the opentelemetry API once imported (_Api); False: not installed (tried once)
_provider: TracerProvider | None = None  # use_tracer_provider's; None: the global one
_tracer: Tracer | None = None


def enabled() -> bool:
    """Whether OpenTelemetry is installed (imported at the first call; never imported when it is not)."""
    return _otel() is not None


def carrier(headers: Sequence[tuple[str, bytes]] | None) -> Carrier:
    """The trace-context headers among a Kafka record's ``headers`` (no import: a plain filter)."""
    if not headers:
        return ()
    return tuple((name, value) for name, value in headers if name in _NAMES)


def pack(trace: Carrier) -> bytes | None:
    """A carrier as one value (``name=value`` lines) for a store that is not Kafka; None for ``()``."""
    return b"\n".join(name.encode() + b"=" + value for name, value in trace) or None


def unpack(packed: bytes | None) -> Carrier:
    """The carrier ``pack`` made."""
    if not packed:
        return ()
    pairs = (line.partition(b"=") for line in packed.split(b"\n"))
    return tuple((name.decode(), value) for name, _, value in pairs if name.decode() in _NAMES)


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Send kflow's spans in this process to ``provider`` instead of OpenTelemetry's global provider (None: back to
    the global one). For tests, and applications that keep kflow's spans apart."""
    global _provider, _tracer
    _provider, _tracer = provider, None


def configure_traces(mode: str, service_name: str) -> bool:
    """``KFLOW_TRACES`` for a long-running command: ``otlp`` (OTLP over HTTP, configured by the standard
    ``OTEL_EXPORTER_OTLP_*`` variables) or ``console`` (spans printed to stdout) installs an SDK tracer provider with
    a batch span processor as the global one (its ``service.name``: ``OTEL_SERVICE_NAME`` or ``service_name``);
    ``off`` changes nothing. Returns whether a provider was installed.

    Raises:
        SettingsError: an unknown mode, or ``otlp``/``console`` without the ``otel`` extra installed.
    """
    if mode not in TRACE_MODES:
        raise SettingsError(f"KFLOW_TRACES must be one of {', '.join(TRACE_MODES)}, got {mode!r}")
    if mode == "off":
        return False
    otel = _otel()
    if otel is None:
        raise SettingsError(f"KFLOW_TRACES={mode} needs OpenTelemetry: pip install 'kflow[otel]'")
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name}))
    exporter: SpanExporter
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=resource)  # flushed and shut down at exit
    provider.add_span_processor(BatchSpanProcessor(exporter))
    otel.trace.set_tracer_provider(provider)
    return True


@contextmanager
def producer_span(name: str, attributes: Attributes) -> Iterator[Carrier]:
    """A span around sending a record (kind PRODUCER), a child of the caller's current span; yields its carrier."""
    otel = _otel()
    if otel is None:
        yield ()
        return
    with _get_tracer().start_as_current_span(name, kind=otel.SpanKind.PRODUCER, attributes=attributes) as span:
        yield _inject(span)


def record_span(
    name: str,
    parent: Carrier,
    attributes: Attributes,
    *,
    kind: Kind = "internal",
    start_ms: int | None = None,
    end_ms: int | None = None,
    error: str | None = None,
) -> Carrier:
    """A span recorded at once, a child of ``parent`` (``()``: a new trace): from ``start_ms`` to ``end_ms`` (epoch
    ms; default now), status ERROR with ``error``. A run's own spans are such marks (a run outlives any process
    that could hold a span open). Returns its carrier (``()`` without OpenTelemetry)."""
    otel = _otel()
    if otel is None:
        return ()
    start = None if start_ms is None else start_ms * 1_000_000
    span = _get_tracer().start_span(name, _extract(otel, parent), otel.kinds[kind], attributes, start_time=start)
    if error is not None:
        span.set_status(otel.Status(otel.StatusCode.ERROR, error[:_DESCRIPTION]))
    span.end(None if end_ms is None else end_ms * 1_000_000)
    return _inject(span)


class SpanHandle:
    """The span a ``consumer_span`` block runs in (a no-op one without OpenTelemetry)."""

    def __init__(self, span: Span | None = None, otel: Any = None) -> None:
        self._span, self._otel = span, otel

    def failed(self, error_type: str, message: str, stacktrace: str | None = None) -> None:
        """Mark the span ERROR, with an ``exception`` event (OpenTelemetry's ``exception.*`` attributes)."""
        if self._span is None:
            return
        description = f"{error_type}: {message}"[:_DESCRIPTION]
        self._span.set_status(self._otel.Status(self._otel.StatusCode.ERROR, description))
        event = {"exception.type": error_type, "exception.message": message}
        self._span.add_event("exception", {**event, "exception.stacktrace": stacktrace} if stacktrace else event)


@contextmanager
def consumer_span(name: str, parent: Carrier, attributes: Attributes) -> Iterator[SpanHandle]:
    """A span around handling a record (kind CONSUMER), a child of ``parent`` (``()``: a new trace), current in the
    block (code run there, a step's own instrumented calls, makes its spans its children)."""
    otel = _otel()
    if otel is None:
        yield SpanHandle()
        return
    span = _get_tracer().start_span(name, _extract(otel, parent), otel.SpanKind.CONSUMER, attributes)
    token = otel.context.attach(otel.trace.set_span_in_context(span))  # what trace.use_span does, for less
    try:
        yield SpanHandle(span, otel)
    except BaseException as exc:  # the block itself failed (a step's own failure is SpanHandle.failed)
        span.record_exception(exc)
        span.set_status(otel.Status(otel.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:_DESCRIPTION]))
        raise
    finally:
        otel.context.detach(token)
        span.end()


def _otel() -> Any:
    """The OpenTelemetry API, imported at the first call; None when it is not installed."""
    global _loaded
    if _loaded is None:
        try:
            _loaded = _Api()
        except ImportError:
            _loaded = False
    return _loaded or None


class _Api:
    """The parts of OpenTelemetry used here (importing them raises ``ImportError`` without the extra)."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        from opentelemetry.trace.span import TraceState

        self.context, self.trace = context, trace
        self.SpanKind, self.Status, self.StatusCode = SpanKind, Status, StatusCode
        self.SpanContext, self.NonRecordingSpan = SpanContext, NonRecordingSpan
        self.TraceFlags, self.TraceState = TraceFlags, TraceState
        self.propagator = TraceContextTextMapPropagator()
        self.kinds = {"internal": SpanKind.INTERNAL, "producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}


def _get_tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        _tracer = (_provider or trace.get_tracer_provider()).get_tracer("kflow")
    return _tracer


def _extract(otel: _Api, parent: Carrier) -> Context:
    """The context whose span is ``parent``'s (an empty one for ``()``: never the caller's current context).

    The ``traceparent`` kflow writes (version 00) is parsed here; anything else goes through OpenTelemetry's W3C
    propagator, which also reads later versions and refuses malformed ones."""
    empty: Context = otel.context.Context()
    values = dict(parent)
    traceparent = values.get(TRACEPARENT)
    if traceparent is None:
        return empty
    match = _VERSION_00.fullmatch(traceparent)
    trace_id, span_id = (0, 0) if match is None else (int(match[1], 16), int(match[2], 16))
    if not trace_id or not span_id:
        context: Context = otel.propagator.extract({k: v.decode("ascii", "replace") for k, v in parent}, empty)
        return context
    state = values.get(TRACESTATE)
    span_context = otel.SpanContext(
        trace_id,
        span_id,
        True,
        otel.TraceFlags(int(match[3], 16)),  # type: ignore[index]  # matched: trace_id is not 0
        otel.TraceState.from_header([state.decode("ascii", "replace")]) if state else None,
    )
    found: Context = otel.trace.set_span_in_context(otel.NonRecordingSpan(span_context), empty)
    return found


def _inject(span: Span) -> Carrier:
    """The headers of ``span``'s context (``()`` for an invalid one: a no-op provider's span without a parent)."""
    context = span.get_span_context()
    if not context.is_valid:
        return ()
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}".encode()
    if not context.trace_state:
        return ((TRACEPARENT, traceparent),)
    return (TRACEPARENT, traceparent), (TRACESTATE, context.trace_state.to_header().encode("ascii", "replace"))
