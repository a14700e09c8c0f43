"""The client: start runs, wait for results, cancel, resume hooks, read history, list runs.

Commands go to ``<prefix>.inbox`` keyed by run id; results come from ``<prefix>.completions`` through one
tail consumer per client; a hook payload's answer is read from its run's ``<prefix>.history`` and
``<prefix>.dlq`` partitions; a run's view is its history (Cassandra plus the part of ``<prefix>.history`` not
materialized yet: always current); listings read Cassandra's query tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from aiokafka import AIOKafkaProducer, TopicPartition

from engine import Registry, RunStatus
from engine.runtime import (
    CallArgs,
    CancelWorkflow,
    HistoryEvent,
    PayloadTypes,
    ResumeHook,
    RunFinished,
    StartWorkflow,
    SystemClock,
)
from schemas import PayloadError, RecordCodec, SchemaError
from storage import StorageError
from streams import kafka
from streams._errors import kafka_errors
from streams._partition_check import check_partition_counts
from streams._record_limit import too_large
from streams._schema_topic import join_schema_topic, watch_schema_topic
from streams._settings import Settings
from streams._topics import Topics
from streams._tracing import Carrier, producer_span
from streams.client._completions import CompletionsReader
from streams.client._hook_answers import HookAnswerMatcher, HookAnswerWatch
from streams.client._outcomes import HookDeliveryError, RunInfo, outcome_of, run_info
from streams.client._run_history import HistorySource, RunHistory
from streams.client._run_ids import run_id_for, run_id_of_token, workflow_name_of
from streams.client._run_queries import RunList, info_of_row, since_ms, status_filter, walk_chain
from streams.client._schedules import Schedules
from streams.kafka import partition_for

log = logging.getLogger(__name__)

_CANCEL_WAIT_S = 60.0  # cancel(wait=True, timeout=None): pyworkflow-engine's default wait


class Client:
    """Start and follow workflow runs through Kafka (docs/api.md, "Client").

    Use as ``async with Client(...) as client`` (or ``connect()`` / ``close()``); methods connect on first use.

    Args:
        bootstrap: Kafka bootstrap servers; default ``settings.bootstrap`` (``KFLOW_BOOTSTRAP``). TLS and SASL
            are ``settings``' (``KFLOW_KAFKA_*``) either way.
        settings: servers and topic prefix; default ``Settings.from_env()``.
        registry: when given, ``start`` refuses workflow names it does not know before sending anything.
        records: codec for records and payloads (default: the JSON payload codecs, allowing the classes registered
            with ``engine.payload_type`` and those of ``registry``'s modules; ``settings.secret`` for pickles).
        history: where ``get_run`` / ``get_events`` read: ``"cassandra"`` (default: the events the
            materializer wrote, plus the part of the history topic it has not written yet; the topic alone
            while Cassandra is unreachable) or ``"kafka"`` (a scan of the run's history partition).
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        *,
        settings: Settings | None = None,
        registry: Registry | None = None,
        records: RecordCodec | None = None,
        history: HistorySource = "cassandra",
    ) -> None:
        settings = settings or Settings.from_env()
        self.settings = settings.replace(bootstrap=bootstrap) if bootstrap else settings
        self._target = self.settings.kafka_target()
        self.registry = registry
        types = registry.payload_types if registry is not None else PayloadTypes()
        self.records = records or RecordCodec(secret=self.settings.secret, types=types)
        self.topics = Topics(self.settings.topic_prefix)
        watch_schema_topic(self._target, self.topics)  # reads before connect() resolve newer schemas
        self._clock = SystemClock()
        self._producer: AIOKafkaProducer | None = None
        self._reader = CompletionsReader(self._target, self.topics.completions, self.settings.client_cache_bytes)
        self._history_partitions = 0
        self.history = RunHistory(self.settings, self.records, self._reader, self.topics.history, history)
        self._connect_lock = asyncio.Lock()
        self.schedules = Schedules(self.settings, self.records, self.registry, self._connected_producer, self._clock)
        """Schedules: create, update, pause, resume, delete, trigger, backfill, get, list, activate."""

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect the producer and position the completions tail at the end (idempotent).

        Raises:
            TransportError: Kafka is unreachable or refused a request (the producer is closed again).
            PartitionCountError: the topics a run lives on have different partition counts (one line).
        """
        async with self._connect_lock:
            if self._producer is not None:
                return
            await join_schema_topic(self._target, self.topics, self.records.codec)
            producer = kafka.producer(self._target)
            try:
                with kafka_errors(self._target, "connecting the client producer"):
                    await producer.start()
                    await check_partition_counts(self._target, self.topics, "the client")
                    self._history_partitions = len(await producer.partitions_for(self.topics.history))
                    await self._reader.open(len(await producer.partitions_for(self.topics.completions)))
            except BaseException:
                await producer.stop()
                await self._reader.close()
                raise
            self._producer = producer

    async def close(self) -> None:
        """Disconnect; waits still pending are cancelled."""
        await self._reader.close()
        await self.history.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def start(
        self,
        workflow: str | Callable[..., object],
        /,
        *args: object,
        idempotency_key: str | None = None,
        **kwargs: object,
    ) -> str:
        """Start a run of ``workflow`` (a name or an ``@workflow`` function); returns its run id.

        With an ``idempotency_key`` the run id is derived from (topic prefix, workflow name, key): the same key
        names the same run whether it is running, completed or failed; a start with a used key returns that run's
        id and starts nothing (racing starts yield one run). The key's scope is the workflow name within the topic
        prefix (``run_id_for``).

        Raises ``UnknownWorkflowError`` (not an ``@workflow``, or not in ``registry``) and ``PayloadError``
        (arguments the payload codec cannot carry, or over the record size limit).
        """
        name = workflow_name_of(workflow)
        if self.registry is not None:
            self.registry.workflow(name)
        run_id = run_id_for(name, idempotency_key, topic_prefix=self.settings.topic_prefix)
        record = StartWorkflow(
            run_id=run_id,
            workflow_name=name,
            args=CallArgs(tuple(args), dict(kwargs)),
            idempotency_key=idempotency_key,
            requested_at=self._clock.now_ms(),
        )
        value = self.records.encode(record)
        if len(value) > kafka.MAX_MESSAGE_BYTES:
            raise PayloadError(too_large(f"the start of workflow {name!r} (its arguments)", len(value)))
        await self.connect()
        if idempotency_key is None:
            self._reader.expect(run_id)  # before sending: the tail must keep its completion
        with producer_span(f"StartWorkflow:{name}", {"kflow.run_id": run_id, "kflow.workflow": name}) as trace:
            await self._send(run_id, value, trace)  # the run's spans are children of this one (docs/operations.md)
        return run_id

    async def result(self, run_id: str, timeout: float | None = None) -> object:
        """Wait for the run to finish and return its result, following continue-as-new to the last run.

        Raises the failed run's error rebuilt (its own type when importable here, else ``StepFailedError``),
        ``CancellationError`` for a cancelled run, ``TimeoutError`` when not finished within ``timeout`` s.
        """
        await self.connect()
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        current, tailed_since = run_id, None
        while True:
            raw, tailed = await self._reader.wait(current, deadline, tailed_since=tailed_since)
            finished = self.records.decode(raw)
            if not isinstance(finished, RunFinished):
                raise SchemaError(f"{type(finished).__name__} on {self.topics.completions} for run {current}")
            if finished.status != RunStatus.CONTINUED_AS_NEW or not finished.next_run_id:
                return outcome_of(finished)
            # The successor's completion is written after this one: if the tail delivered this one, it
            # delivers the successor's too (no scan of its partition is needed). Else the chain finished
            # (in part) before the tail started: Cassandra's run links skip the links already done, so only
            # the last one needs a scan, not every one.
            current, tailed_since = finished.next_run_id, (self._reader.evictions if tailed else None)
            if not tailed:
                current = await self.history.chain_end(current)

    async def cancel(
        self, run_id: str, reason: str | None = None, *, wait: bool = False, timeout: float | None = None
    ) -> bool:
        """Ask the run to cancel: ``CancellationError`` is raised in it at its current await (its running
        children are cancelled too). pyworkflow's ``cancel_workflow``.

        Returns False, sending nothing, when the run's history says it has finished already (any terminal
        status); True once the request is on the inbox for a run that was running, or that has no history yet
        (a start still on its way: the orchestrator applies the inbox in order; a run id no partition knows is
        dead-lettered, see ``kflow dlq list``). With ``wait``, True only after the run finished (cancelled, or
        with the outcome it reached first).

        Raises:
            TimeoutError: with ``wait``, the run did not finish within ``timeout`` s (default 60); the request
                stands and the run may still end.
        """
        info = await self.get_run(run_id)
        if info is not None and info.status != RunStatus.RUNNING:
            return False
        record = CancelWorkflow(run_id=run_id, reason=reason, requested_at=self._clock.now_ms())
        await self._send(run_id, self.records.encode(record))
        if wait:
            seconds = _CANCEL_WAIT_S if timeout is None else timeout
            try:
                await self._reader.wait(run_id, asyncio.get_running_loop().time() + seconds)
            except TimeoutError:
                raise TimeoutError(
                    f"run {run_id} did not finish within {seconds:g} s of its cancel request (is a kflow processor "
                    f"running on {self.topics.inbox}?); the request stands"
                ) from None
        return True

    async def resume_hook(self, token: str, payload: object, *, wait: bool = True, timeout: float = 30.0) -> str:
        """Send ``payload`` to the hook ``token`` and, with ``wait``, learn its fate.

        The token of a run's first ``hook(name)`` is ``"{run_id}:{name}"``, of its n-th ``"{run_id}:{name}#{n}"``
        (``on_created`` receives it); a token takes one payload.

        Returns ``"delivered"`` (a hook was waiting on the token and took it), ``"queued"`` (the run is
        running but not waiting on that token yet: the payload is kept and delivered when the workflow
        reaches that ``hook()`` call; a ``payload_schema`` is only checked then, and a payload it rejects is
        dropped, the token free again) or, with ``wait=False``, ``"sent"`` as soon as Kafka has it.

        Raises ``HookDeliveryError`` (with ``reason``) for a malformed token (before sending anything), no
        such run, a finished run, a token that already took its payload (delivered, or queued and waiting)
        or has expired, or a payload the waiting hook's ``payload_schema`` rejects;
        ``TimeoutError`` when no answer came within ``timeout`` s (no processor running? the payload was
        sent and may still be delivered); ``PayloadError`` for a payload the codec cannot carry.
        """
        try:
            run_id = run_id_of_token(token)
        except ValueError as exc:
            raise HookDeliveryError.refused(token, str(exc)) from None
        record = ResumeHook(run_id=run_id, token=token, payload=payload, requested_at=self._clock.now_ms())
        value = self.records.encode(record)
        if len(value) > kafka.MAX_MESSAGE_BYTES:
            raise PayloadError(too_large(f"the hook payload for {token}", len(value)))
        if not wait:
            await self._send(run_id, value)
            return "sent"
        deadline = asyncio.get_running_loop().time() + timeout
        await self.connect()
        assert self._producer is not None
        key = run_id.encode()
        history = TopicPartition(self.topics.history, partition_for(key, self._history_partitions))
        with kafka_errors(self._target, f"reading the partitions of {self.topics.dlq}"):
            dlq_partitions = len(await self._producer.partitions_for(self.topics.dlq))
        dlq = TopicPartition(self.topics.dlq, partition_for(key, dlq_partitions))
        # The watch is positioned before the send, so the answer (written after it) cannot be missed.
        async with HookAnswerWatch(self._target, history, dlq) as watch:
            offset = await self._send(run_id, value)
            answer = await watch.answer(HookAnswerMatcher(self.records, value, self.topics.inbox, offset), deadline)
        if answer is None:
            raise TimeoutError(
                f"no answer to the hook payload for {token} within {timeout:g} s (is a kflow "
                f"processor running on {self.topics.inbox}?); it was sent and may still be delivered"
            )
        if answer.outcome == "refused":
            raise HookDeliveryError.refused(token, answer.reason)
        return answer.outcome

    async def get_events(self, run_id: str) -> list[HistoryEvent]:
        """The run's history events ordered by ``seq`` (empty for an unknown run), always current: what the
        materializer has written to Cassandra plus the newer part of the history topic (see ``history``)."""
        await self.connect()
        return await self.history.events(run_id, partition_for(run_id.encode(), self._history_partitions))

    async def get_run(self, run_id: str) -> RunInfo | None:
        """Status, result or error, timestamps, arguments and links (parent, children, continue-as-new) of the
        run; None when it has no history (yet).

        Derived from ``get_events``, so as current as the history topic."""
        return run_info(run_id, await self.get_events(run_id))

    async def list_runs(
        self,
        status: RunStatus | str | None = None,
        workflow: str | Callable[..., object] | None = None,
        since: datetime | int | None = None,
        limit: int = 50,
        page_token: str | None = None,
        *,
        until: datetime | int | None = None,
        run_id_prefix: str | None = None,
    ) -> RunList:
        """One page of runs, newest first (by start time), from Cassandra's query tables (``kflow runs list``).

        Args:
            status: only runs in this ``RunStatus``.
            workflow: only runs of this workflow (a name or an ``@workflow`` function).
            since: only runs started at or after it (a datetime, naive = UTC, or epoch ms); without it the
                listing looks back 30 days.
            limit: most runs on the page.
            page_token: the ``next_page_token`` of the previous page of the same listing.
            until: only runs started before it (as ``since``).
            run_id_prefix: only runs whose id starts with it, in run id order (one partition of
                ``runs_by_id_prefix``; a page may then hold fewer than ``limit`` runs); fewer than
                ``storage.ID_PREFIX_LENGTH`` (4) characters: that exact id.

        Returns a ``RunList`` (``runs``, ``next_page_token``; None on the last page). What the materializer has
        not written yet is not listed; ``get_run`` reads a run's history, always current.

        Raises:
            ValueError: an unknown status, ``limit`` < 1, a page token of another listing (or not a token).
            TypeError: ``since`` of another type.
            StorageError: Cassandra unreachable, or the keyspace not migrated.
        """
        name = None if workflow is None else workflow_name_of(workflow)
        wanted, after, before = status_filter(status), since_ms(since), since_ms(until)
        store = await self.history.store(required=True)
        assert store is not None
        page = await asyncio.to_thread(
            store.list_runs, wanted, name, limit, page_token, since=after, until=before, run_id_prefix=run_id_prefix
        )
        return RunList([info_of_row(row, self.records) for row in page.runs], page.next_page)

    async def get_chain(self, run_id: str) -> list[RunInfo]:
        """The runs of ``run_id``'s continue-as-new chain, oldest first (``run_id`` may be any of them);
        empty when the run has no history. pyworkflow's ``get_workflow_chain``.

        Finished links are read from their Cassandra rows, the rest (the run still going, links not
        materialized yet) from their histories, so the chain is current; without Cassandra, all from the history.
        """
        await self.connect()
        store = await self.history.store()

        async def fetch(link: str) -> RunInfo | None:
            if store is not None:
                try:
                    row = await asyncio.to_thread(store.get_run, link)
                except StorageError as exc:
                    log.info("reading run %s from Cassandra failed (%s): reading its history", link, exc)
                    row = None
                if row is not None and row.status == RunStatus.CONTINUED_AS_NEW and row.next_run_id:
                    return info_of_row(row, self.records)  # a finished link never changes
            return await self.get_run(link)

        return await walk_chain(run_id, fetch)

    async def _send(self, run_id: str, value: bytes, trace: Carrier = ()) -> int:
        """Produce ``value`` to the inbox keyed by ``run_id`` (``trace``: trace-context headers); returns its offset."""
        await self.connect()
        assert self._producer is not None
        with kafka_errors(self._target, f"sending to {self.topics.inbox}"):
            headers = list(trace) or None
            metadata = await self._producer.send_and_wait(
                self.topics.inbox, value, key=run_id.encode(), headers=headers
            )
        return int(metadata.offset)

    async def _connected_producer(self) -> AIOKafkaProducer:
        await self.connect()
        assert self._producer is not None
        return self._producer
