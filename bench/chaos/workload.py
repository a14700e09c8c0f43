"""The driver of the chaos workload: starts chains, resumes their hooks, follows their completions.

Runs are started at a steady pace over the load phase (so work is in flight at every fault), each with an
idempotency key: a start retried after a broker error names the same run. The driver follows
``<prefix>.completions`` with a reader of its own: a ``continued_as_new`` completion names the next link, whose
hook it then resumes (after a random pause, so some payloads are queued and some delivered to a waiting hook).
Hook payloads are sent with ``wait=False`` and retried on a broker error; a payload that arrives twice is
refused by the orchestrator (a dead letter the checker reports), never delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from bench.chaos.workflows import HOOK, WORKFLOW, hook_value
from engine import Registry
from engine.runtime import RunFinished
from schemas import RecordCodec
from streams import Settings, Topics
from streams.client import Client
from streams.kafka import consumer

log = logging.getLogger(__name__)
RETRY_PAUSE_S = 1.0


@dataclass
class Chain:
    """One chain of runs: its key, its links, the run ids seen so far and its last completion."""

    key: str
    links: int
    runs: list[str] = field(default_factory=list)
    finished: RunFinished | None = None
    started_at: float = 0.0
    finished_at: float = 0.0


@dataclass
class WorkloadResult:
    """What the driver saw: chains (by root run id), completion arrival times, errors it retried."""

    chains: dict[str, Chain]
    completions: list[float]
    retries: dict[str, int]

    @property
    def lost(self) -> list[str]:
        """Root run ids whose chain never finished."""
        return [root for root, chain in self.chains.items() if chain.finished is None]


class Workload:
    """Drive ``runs`` chains of ``links + 1`` runs each, started over ``spread`` seconds.

    Args:
        settings: servers and topic prefix of the run.
        runs: how many chains to start.
        links: continue-as-new hops per chain.
        spread: seconds over which the starts are spread.
        say: where progress lines go.
        name: the chains' keys are ``<name><index>`` (also their idempotency keys).
    """

    def __init__(
        self, settings: Settings, runs: int, links: int, spread: float, say: Callable[[str], None], name: str = "c"
    ) -> None:
        self.settings, self.runs, self.links, self.spread, self.say = settings, runs, links, spread, say
        self.name = name
        self.topics = Topics(settings.topic_prefix)
        self.records = RecordCodec()
        self.chains: dict[str, Chain] = {}
        self._link_of: dict[str, tuple[str, int]] = {}  # run id -> (root, links to go)
        self._completions: list[float] = []
        self._retries: dict[str, int] = {"start": 0, "hook": 0, "follow": 0}
        self._client: Client | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._all_done = asyncio.Event()
        self._more = asyncio.Event()
        self._started_all = False
        self._random = random.Random(7)

    async def run(self, drain: float) -> WorkloadResult:
        """Start every chain, then wait at most ``drain`` seconds for all to finish."""
        follower = asyncio.create_task(self._follow(), name="chaos-follow")
        starter = asyncio.create_task(self._start_all(), name="chaos-start")
        try:
            await starter
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_done.wait(), drain)
        finally:
            for task in [follower, starter, *self._tasks]:
                task.cancel()
            await asyncio.gather(follower, starter, *self._tasks, return_exceptions=True)
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._client.close(), 30)
        return WorkloadResult(self.chains, list(self._completions), dict(self._retries))

    def done_count(self) -> int:
        """How many chains have finished."""
        return sum(1 for chain in self.chains.values() if chain.finished is not None)

    async def _connected(self) -> Client:
        if self._client is None:
            self._client = Client(settings=self.settings, registry=Registry.from_module("bench.chaos.workflows"))
        return self._client

    async def _reset_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 15)

    def keep_going(self, more: bool) -> None:
        """While set, the driver keeps starting chains at the same pace after the first ``runs`` (so the faults
        at the end of the schedule still meet work in flight)."""
        if more:
            self._more.set()
        else:
            self._more.clear()

    async def _start_all(self) -> None:
        began = time.monotonic()
        pace = self.spread / max(1, self.runs)
        i = 0
        while i < self.runs or self._more.is_set():
            await asyncio.sleep(max(0.0, began + i * pace - time.monotonic()))
            if i >= self.runs and not self._more.is_set():
                break
            key = f"{self.name}{i:05d}"
            root = await self._start(key)
            chain = Chain(key, self.links, [root], started_at=time.monotonic())
            self.chains[root] = chain
            self._link_of[root] = (root, self.links)
            self._spawn(self._resume(root, key, self.links))
            i += 1
        self._started_all = True
        self.say(f"driver: all {i} chains started in {time.monotonic() - began:.1f} s")
        self._check_done()

    async def _start(self, key: str) -> str:
        failures = 0
        while True:
            try:
                client = await self._connected()
                return await asyncio.wait_for(client.start(WORKFLOW, key, self.links, idempotency_key=key), 45)
            except Exception as exc:  # a broker fault: the same key names the same run
                failures += 1
                self._retries["start"] += 1
                log.warning("start %s failed (%s: %s); retrying", key, type(exc).__name__, exc)
                if failures % 3 == 0:
                    await self._reset_client()
                await asyncio.sleep(RETRY_PAUSE_S)

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.ensure_future(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resume(self, run_id: str, key: str, links: int) -> None:
        await asyncio.sleep(self._random.uniform(0.0, 2.5))
        failures = 0
        while True:
            try:
                client = await self._connected()
                token = f"{run_id}:{HOOK}"
                await asyncio.wait_for(client.resume_hook(token, {"n": hook_value(key, links)}, wait=False), 45)
                return
            except Exception as exc:
                failures += 1
                self._retries["hook"] += 1
                log.warning("hook of %s not sent (%s: %s); retrying", run_id, type(exc).__name__, exc)
                if failures % 3 == 0:
                    await self._reset_client()
                await asyncio.sleep(RETRY_PAUSE_S)

    async def _follow(self) -> None:
        """Read ``.completions`` from the start, forever; a reader that fails is rebuilt at its positions."""
        positions: dict[TopicPartition, int] = {}
        while True:
            reader = consumer(self.settings.bootstrap, request_timeout_ms=15_000)
            try:
                await reader.start()
                tps = [TopicPartition(self.topics.completions, p) for p in range(self.settings.partitions)]
                reader.assign(tps)
                for tp in tps:
                    if tp in positions:
                        reader.seek(tp, positions[tp])
                    else:
                        await reader.seek_to_beginning(tp)
                while True:
                    batch = await reader.getmany(timeout_ms=500)
                    for tp, messages in batch.items():
                        for message in messages:
                            self._on_completion(message.value)
                            positions[tp] = message.offset + 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._retries["follow"] += 1
                log.warning("completions reader failed (%s: %s); rebuilding", type(exc).__name__, exc)
                await asyncio.sleep(RETRY_PAUSE_S)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(reader.stop(), 10)

    def _on_completion(self, value: bytes) -> None:
        record = self.records.decode(value)
        if not isinstance(record, RunFinished):
            return
        self._completions.append(time.monotonic())
        link = self._link_of.get(record.run_id)
        if link is None:
            return  # a child's completion, or a duplicate of a finished chain's
        root, links = link
        chain = self.chains[root]
        if record.status == "continued_as_new" and record.next_run_id:
            if record.next_run_id not in self._link_of:
                self._link_of[record.next_run_id] = (root, links - 1)
                chain.runs.append(record.next_run_id)
                self._spawn(self._resume(record.next_run_id, chain.key, links - 1))
            return
        if chain.finished is None:
            chain.finished, chain.finished_at = record, time.monotonic()
            self._check_done()

    def _check_done(self) -> None:
        if self._started_all and self.done_count() == len(self.chains):
            self._all_done.set()
