"""The faults a chaos run applies, one at a time, and their log.

Process faults (any stack): ``kill-processor`` / ``kill-worker`` (SIGKILL, restarted after a pause),
``term-processor`` / ``term-worker`` (SIGTERM, waited for, restarted), ``zombie`` (SIGSTOP of a processor
past the session timeout, SIGCONT later: its partitions move to the others, and it must be fenced).
Server faults (a private stack only, never the shared one): ``kill-broker`` (SIGKILL of one broker of a
multi-broker cluster), ``kill-leader`` (of the broker leading the most partitions), ``restart-broker`` (SIGKILL of
the only broker of a 1-broker stack, then started again), ``stop-cassandra`` (SIGTERM, down for a minute).
A fault's *recovery moment* is when the process was restarted or continued, or the server's port answered again.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient

from bench.chaos.cluster import Fleet, PrivateStack, Process, SharedStack, port_open

PROCESS_FAULTS = ("kill-processor", "term-processor", "kill-worker", "term-worker", "zombie")
BROKER_FAULTS = ("kill-broker", "kill-leader", "restart-broker")
CASSANDRA_FAULTS = ("stop-cassandra",)
ALL_FAULTS = PROCESS_FAULTS + BROKER_FAULTS + CASSANDRA_FAULTS


@dataclass
class FaultRecord:
    """One applied fault: what, on whom, when (monotonic s and wall clock), and what was seen."""

    kind: str
    target: str = ""
    began: float = 0.0
    recovered: float | None = None
    wall: str = ""
    notes: list[str] = field(default_factory=list)
    faulted_pids: list[int] = field(default_factory=list)

    def describe(self, origin: float) -> str:
        """One line of the fault log, times relative to ``origin``."""
        back = "" if self.recovered is None else f", recovered at +{self.recovered - origin:.1f} s"
        notes = f"; {'; '.join(self.notes)}" if self.notes else ""
        return f"{self.wall} +{self.began - origin:6.1f} s  {self.kind:<15} {self.target}{back}{notes}"


@dataclass
class Timings:
    """How long faults last."""

    restart_pause: float = 2.0
    zombie_seconds: float = 16.0
    broker_down: float = 20.0
    cassandra_down: float = 60.0
    term_grace: float = 30.0


class Injector:
    """Applies faults to ``fleet`` and (server faults) to ``stack``; rotates over the targets of each role."""

    def __init__(
        self,
        fleet: Fleet,
        stack: SharedStack | PrivateStack,
        prefix: str,
        timings: Timings,
        say: Callable[[str], None],
    ) -> None:
        self.fleet, self.stack, self.prefix, self.timings, self.say = fleet, stack, prefix, timings, say
        self._turn = {role: itertools.cycle(fleet.of(role)) for role in ("processor", "worker")}
        self.log: list[FaultRecord] = []
        self.origin = time.monotonic()
        """What the times of the fault log count from (the start of the load)."""

    def supported(self, kind: str) -> str | None:
        """Why ``kind`` cannot be applied on this stack, or None."""
        if kind not in ALL_FAULTS:
            return f"unknown fault {kind!r} (one of {', '.join(ALL_FAULTS)})"
        if kind in BROKER_FAULTS + CASSANDRA_FAULTS and not self.stack.private:
            return f"{kind} needs a private stack (the shared one is never faulted)"
        if kind == "stop-cassandra" and not getattr(self.stack, "with_cassandra", False):
            return "stop-cassandra needs a private Cassandra"
        brokers = getattr(self.stack, "brokers", 0)
        if kind in ("kill-broker", "kill-leader") and brokers < 3:
            return f"{kind} needs the 3-broker cluster"
        if kind == "restart-broker" and brokers != 1:
            return "restart-broker is the 1-broker stack's fault"
        return None

    async def apply(self, kind: str) -> FaultRecord:
        """Apply one fault and wait until it is over (the target restarted, continued or reachable again)."""
        record = FaultRecord(kind, began=time.monotonic(), wall=time.strftime("%H:%M:%S"))
        self.log.append(record)
        if kind in ("kill-processor", "kill-worker", "term-processor", "term-worker"):
            await self._process_fault(record, kind.split("-")[1], kind.startswith("kill"))
        elif kind == "zombie":
            await self._zombie(record)
        elif kind in BROKER_FAULTS:
            await self._broker(record, kind)
        elif kind == "stop-cassandra":
            await self._cassandra(record)
        self.say(f"fault: {record.describe(self.origin)}")
        return record

    def _next(self, role: str) -> Process:
        for _ in range(len(self.fleet.of(role))):
            process = next(self._turn[role])
            if process.alive():
                return process
        raise RuntimeError(f"no {role} is running")

    async def _process_fault(self, record: FaultRecord, role: str, kill: bool) -> None:
        process = self._next(role)
        record.target, record.faulted_pids = f"{process.name} (pid {process.pid})", [process.pid]
        process.signal(signal.SIGKILL if kill else signal.SIGTERM)
        grace = 30.0 if kill else self.timings.term_grace
        began = time.monotonic()
        status = await asyncio.to_thread(process.wait, grace)
        if status is None:
            record.notes.append(f"did not exit {grace:.0f} s after SIGTERM: killed")
            process.signal(signal.SIGKILL)
            status = await asyncio.to_thread(process.wait, 30)
        record.notes.append(f"exited {status} after {time.monotonic() - began:.1f} s")
        await asyncio.sleep(self.timings.restart_pause)
        process.start()
        record.recovered = time.monotonic()

    async def _zombie(self, record: FaultRecord) -> None:
        process = self._next("processor")
        record.target, record.faulted_pids = f"{process.name} (pid {process.pid})", [process.pid]
        process.signal(signal.SIGSTOP)
        await asyncio.sleep(self.timings.zombie_seconds)
        process.signal(signal.SIGCONT)
        record.recovered = time.monotonic()
        record.notes.append(f"stopped {self.timings.zombie_seconds:.0f} s")

    async def _broker(self, record: FaultRecord, kind: str) -> None:
        assert isinstance(self.stack, PrivateStack)
        kafka = [s for s in await asyncio.to_thread(self.stack.servers) if s.name.startswith("kafka") and s.pid]
        if kind == "kill-leader":
            target = await self._leader_of_most(kafka)
        else:
            target = kafka[len(self.log) % len(kafka)]
        record.target = f"{target.name} (pid {target.pid}, port {target.ports[0]})"
        self.stack.kill(target.name, signal.SIGKILL)
        await asyncio.sleep(self.timings.broker_down)
        record.recovered = await self._restart(target.ports[0], record)

    async def _leader_of_most(self, kafka: list) -> object:  # type: ignore[type-arg]
        admin = AIOKafkaAdminClient(bootstrap_servers=self.stack.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            port_of = {b["node_id"]: b["port"] for b in cluster["brokers"]}
            names = [n for n in await admin.list_topics() if n.startswith(self.prefix + ".")]
            leaders = collections.Counter(
                p["leader"] for t in await admin.describe_topics(names) for p in t["partitions"]
            )
        finally:
            await admin.close()
        node, _ = leaders.most_common(1)[0]
        return next(s for s in kafka if port_of.get(node) in s.ports)

    async def _cassandra(self, record: FaultRecord) -> None:
        assert isinstance(self.stack, PrivateStack)
        server = self.stack.server("cassandra")
        record.target = f"cassandra (pid {server.pid}, port {server.ports[0]})"
        self.stack.kill("cassandra", signal.SIGTERM)
        await asyncio.sleep(self.timings.cassandra_down)
        record.recovered = await self._restart(server.ports[0], record)

    async def _restart(self, port: int, record: FaultRecord) -> float:
        """``kflow dev up`` in the background; the moment ``port`` answers again."""
        assert isinstance(self.stack, PrivateStack)
        restart = asyncio.ensure_future(asyncio.to_thread(self.stack.restart_missing))
        while not port_open("127.0.0.1", port):
            if restart.done():
                restart.result()  # raises when kflow dev up failed
            await asyncio.sleep(0.2)
        reachable = time.monotonic()
        took = await restart
        record.notes.append(f"kflow dev up took {took:.1f} s")
        return reachable
