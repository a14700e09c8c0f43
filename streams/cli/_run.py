"""``kflow processor``, ``kflow worker`` and ``kflow run``: the running side of kflow."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from engine import CancellationError, Registry, RunStatus, StepFailedError, UnknownWorkflowError
from streams._errors import TransportError
from streams._logs import LOG_FORMATS, configure_logging
from streams._settings import Settings
from streams._tracing import configure_traces
from streams.cli._app import load_registry
from streams.cli._call_args import parse_call
from streams.cli._errors import CliError, UsageError
from streams.cli._runs import positive_int
from streams.ops import event_fields, plain

log = logging.getLogger(__name__)


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``processor``, ``worker`` and ``run`` to the ``kflow`` parser."""
    processor = groups.add_parser(
        "processor", help="run the orchestrator, the timer processor and the history materializer"
    )
    processor.add_argument("-A", "--app", required=True, metavar="MODULE", help="module defining the workflows")
    processor.add_argument("--cache-size", type=int, default=10_000, help="live runs kept per partition")
    processor.add_argument(
        "--run-steps",
        action="store_true",
        help="run the first attempt of every step of the module here, recorded in the orchestrator's transaction "
        "(local steps; retries and long attempts still go to workers)",
    )
    processor.add_argument(
        "--local-max-steps", type=positive_int, default=1_000, metavar="N", help="most local attempts per transaction"
    )
    processor.add_argument(
        "--local-interval-ms",
        type=positive_int,
        default=100,
        metavar="MS",
        help="no new round of local steps starts this long after a transaction's first",
    )
    processor.add_argument(
        "--local-budget-ms",
        type=positive_int,
        default=1_000,
        metavar="MS",
        help="longest a local attempt runs before it is handed to a worker",
    )
    processor.add_argument(
        "--no-materializer",
        action="store_true",
        help="do not write the history to Cassandra (run the materializer elsewhere)",
    )
    processor.add_argument(
        "--activate-schedules",
        action="store_true",
        help="also create or update the schedules declared with @scheduled_workflow in -A",
    )
    _service_options(processor)
    processor.set_defaults(handler=_processor)
    materializer = groups.add_parser(
        "materializer", help="run only the history materializer (pair with processor --no-materializer)"
    )
    _service_options(materializer)
    materializer.set_defaults(handler=_materializer)
    worker = groups.add_parser("worker", help="run a step worker")
    worker.add_argument("-A", "--app", required=True, metavar="MODULE", help="module defining the steps")
    worker.add_argument("--concurrency", type=int, default=32, help="steps run at once (default 32)")
    _service_options(worker)
    worker.set_defaults(handler=_worker)
    run = groups.add_parser("run", help="start a run, wait, print its result")
    run.add_argument("target", metavar="MODULE:WORKFLOW", help="e.g. examples.basic:order")
    run.add_argument("args", nargs="*", metavar="ARG", help="positional arguments: JSON values, else strings")
    run.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword argument (repeatable); VALUE is JSON when it parses as JSON, else a string",
    )
    run.add_argument(
        "--args-json",
        metavar="JSON",
        help='all arguments as JSON: {"args": [...], "kwargs": {...}}, an array (positional) or an object (keywords)',
    )
    run.add_argument("--idempotency-key", help="the same key returns the first run's id")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the result")
    run.add_argument("--history", action="store_true", help="also print the run's history")
    run.add_argument(
        "--json",
        action="store_true",
        help="print only {run_id, status, result or error[, history]} as JSON (exit 1 when the run failed)",
    )
    run.set_defaults(handler=_run)


def _service_options(parser: argparse.ArgumentParser) -> None:
    """The options of every long-running command: log level and format, the metrics and health port."""
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text (default) or json: one object per line ($KFLOW_LOG_FORMAT)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics (Prometheus), /healthz and /readyz on PORT (0: a free one, logged; $KFLOW_METRICS_PORT)",
    )
    parser.add_argument(
        "--instance-id",
        type=_instance_id,
        metavar="ID",
        help="static group membership, unique per process: restarted with the same ID it takes its partitions back "
        "at once, with no rebalance; stopped, they move after the session timeout, 10 s ($KFLOW_INSTANCE_ID)",
    )


def _instance_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value):
        raise argparse.ArgumentTypeError(f"{value!r}: letters, digits, '.', '_' and '-' only (at most 249)")
    return value


def _observed(
    args: argparse.Namespace, settings: Settings, registry: Registry | None = None, service: str = "kflow"
) -> tuple[int | None, Settings]:
    """Set logging and traces (``KFLOW_TRACES``; ``service``: the ``service.name`` of the spans) up; the metrics port
    (None: no server), after allowing the registry's names as label values, and the settings with ``--instance-id``."""
    _logging(args.log_level, args.log_format or settings.log_format)
    if configure_traces(settings.traces, service):
        log.info("OpenTelemetry traces: %s (service %s)", settings.traces, service)
    port: int | None = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if port is not None and not 0 <= port <= 65535:
        raise UsageError(f"--metrics-port {port}: not a TCP port")
    if port is not None and registry is not None:
        from streams.processors import MetricNames

        MetricNames.learn(registry.workflows, registry.steps)
    if args.instance_id is not None:
        settings = settings.replace(instance_id=args.instance_id)
    if settings.instance_id is not None:
        log.info("static group membership as %s", settings.instance_id)
    return port, settings


def _processor(args: argparse.Namespace, settings: Settings) -> int:
    registry = load_registry(args.app)
    from schemas import RecordCodec
    from streams.processors import HistoryMaterializer, LocalBounds, Orchestrator, TimerProcessor

    port, settings = _observed(args, settings, registry, "kflow-processor")
    bounds = LocalBounds(args.local_max_steps, args.local_interval_ms, args.local_budget_ms)
    orchestrator = Orchestrator(
        settings, registry, cache_size=args.cache_size, run_steps=args.run_steps, local_bounds=bounds
    )
    delay = TimerProcessor(settings, state_dir=settings.home / "state")
    processors: list[Any] = [orchestrator, delay]
    if not args.no_materializer:
        processors.append(HistoryMaterializer(settings, records=RecordCodec(secret=settings.secret)))
    services: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = [p.run_until for p in processors]
    if args.activate_schedules:
        services.append(_schedule_activation(settings, registry))
    return _serve(services, processors, port)


_ACTIVATION_TIMEOUT_S = 120.0  # per schedule; covers the orchestrator joining its group (after a crash, too)


def _schedule_activation(
    settings: Settings, registry: Registry
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A service that activates the declared schedules once, in the background, and lasts until the processor
    stops (``_serve`` stops every service as soon as one returns); stopping cancels an unfinished activation.

    Its commands wait in the inbox until an orchestrator consumes it: this process's, once it has joined its
    group, or another's. A failure is logged, not raised: the processor goes on running the runs it owns
    (``kflow schedules activate`` is the way to fail a deploy on it).
    """

    async def activate() -> None:
        from streams.client import Client

        if not registry.schedules:
            log.warning("--activate-schedules: the -A module declares no schedules (@scheduled_workflow)")
            return
        try:
            async with Client(settings=settings, registry=registry) as client:
                ids = await client.schedules.activate(registry, timeout=_ACTIVATION_TIMEOUT_S)
            log.info("declared schedules activated: %s", ", ".join(ids))
        except Exception as exc:  # reported: the orchestrator must keep running
            log.error("declared schedules not all activated: %s: %s", type(exc).__name__, exc)

    async def serve(stop: asyncio.Event) -> None:
        task = asyncio.create_task(activate(), name="kflow-schedule-activation")
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return serve


def _materializer(args: argparse.Namespace, settings: Settings) -> int:
    from schemas import RecordCodec
    from streams.processors import HistoryMaterializer

    port, settings = _observed(args, settings, service="kflow-materializer")
    materializer = HistoryMaterializer(settings, records=RecordCodec(secret=settings.secret))
    return _serve([materializer.run_until], [materializer], port)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    registry = load_registry(args.app)
    from streams.processors import StepWorker

    port, settings = _observed(args, settings, registry, "kflow-worker")
    worker = StepWorker(settings, registry, concurrency=args.concurrency)
    return _serve([worker.run_until], [worker], port)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """Start the run, wait for it, print its result; a failed (or unfinished) run is one line, exit 1."""
    module, _, name = args.target.partition(":")
    if not module or not name:
        raise UsageError(f"expected MODULE:WORKFLOW, got {args.target!r}")
    registry = load_registry(module)
    try:
        registry.workflow(name)  # unknown name → one-line error before anything is sent
    except UnknownWorkflowError as exc:
        raise UsageError(str(exc)) from None
    from streams.client import Client

    values, keywords = parse_call(args.args, args.arg, args.args_json)
    if "idempotency_key" in keywords:
        raise UsageError("a keyword argument cannot be named idempotency_key: use --idempotency-key")

    async def go() -> dict[str, object]:
        async with Client(settings=settings, registry=registry) as client:
            run_id = await client.start(name, *values, idempotency_key=args.idempotency_key, **keywords)
            print(f"run {run_id} started", file=sys.stderr if args.json else sys.stdout, flush=True)
            outcome: dict[str, object] = {"run_id": run_id}
            try:
                result = await client.result(run_id, timeout=args.timeout)
                outcome |= {"status": RunStatus.COMPLETED, "result": plain(result)}
            except TransportError:
                raise
            except TimeoutError:
                outcome |= {
                    "status": RunStatus.RUNNING,
                    "error": _error(TimeoutError(f"did not finish within {args.timeout:g} s (it goes on running)")),
                }
            except CancellationError as exc:
                outcome |= {"status": RunStatus.CANCELLED, "error": _error(exc)}
            except Exception as exc:  # the run's own error, rebuilt
                outcome |= {"status": RunStatus.FAILED, "error": _error(exc)}
            if args.history:
                outcome["history"] = [
                    {"seq": event.seq, "type": type(event).__name__, "fields": event_fields(event)}
                    for event in await client.get_events(run_id)
                ]
            return outcome

    outcome = asyncio.run(go())
    if args.json:
        print(json.dumps(outcome, indent=2, default=repr))
    else:
        if "result" in outcome:
            print(json.dumps(outcome["result"], default=repr))
        for event in cast(list[dict[str, Any]], outcome.get("history", [])):
            print(f"  {event['seq']:>3}  {event['type']:<22} {_brief(event['fields'])}")
    error = cast(dict[str, str] | None, outcome.get("error"))
    if error is None:
        return 0
    if outcome["status"] == RunStatus.RUNNING:
        raise RunFailedError(f"run {outcome['run_id']} {error['message']}")
    raise RunFailedError(f"run {outcome['run_id']} {outcome['status']}: {error['type']}: {error['message']}")


class RunFailedError(CliError):
    """``kflow run``: the run failed, was cancelled or did not finish in time; one line, exit status 1."""


def _error(exc: BaseException) -> dict[str, str]:
    """The run's error as JSON: its qualified type (the original's, when only a stand-in was rebuilt) and message."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if isinstance(exc, StepFailedError) and exc.error_type:  # a stand-in for a type not importable here
        kind = exc.error_type
    return {"type": kind.removeprefix("builtins."), "message": str(exc)}


def _brief(fields: dict[str, object]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in fields.items())[:120]


def _logging(level: str, log_format: str = "text") -> None:
    configure_logging(level, log_format)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # Kafka 4 verifies transactional sends (KIP-890); aiokafka's pre-KIP-890 client gets a retriable
    # NOT_ENOUGH_REPLICAS when it sends right after a commit and retries after 5 ms: routine, not a fault.
    logging.getLogger("aiokafka.producer.sender").setLevel(logging.ERROR)
    # While a broker is down the supervisor logs one line per attempt; aiokafka would add one per connection
    # and thousands of metadata errors: its repeated messages are let through once per 30 s.
    throttle = _Throttle(30.0)
    for name in (
        "aiokafka",
        "aiokafka.client",
        "aiokafka.conn",
        "aiokafka.cluster",
        "aiokafka.consumer.fetcher",
        "aiokafka.consumer.group_coordinator",
        "aiokafka.producer.sender",
    ):
        logging.getLogger(name).addFilter(throttle)


class _Throttle(logging.Filter):
    """Lets each message template of a logger through at most once per ``seconds`` (connection errors never)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(("Unable connect to", "Unable to connect to")):
            return False
        key, now = (record.name, record.msg), time.monotonic()
        if now - self._last.get(key, -self.seconds) < self.seconds:
            return False
        self._last[key] = now
        return True


def _serve(
    services: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]],
    processors: Sequence[Any] = (),
    metrics_port: int | None = None,
) -> int:
    """Run services until SIGTERM/SIGINT; the first one to crash stops the others. With ``metrics_port``, the
    ``processors``' figures and health are served there meanwhile."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        server = None
        if metrics_port is not None:
            from streams.processors import ObservabilityServer, watch_processor

            for processor in processors:
                watch_processor(processor, loop)
            try:
                server = ObservabilityServer(metrics_port, loop)
            except OSError as exc:
                raise CliError(f"cannot serve metrics on port {metrics_port}: {exc.strerror or exc}") from None
            server.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        tasks = [asyncio.create_task(service(stop)) for service in services]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            server.stop()
        for task in done:
            task.result()

    asyncio.run(main())
    return 0
