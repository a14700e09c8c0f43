"""Static group membership on the real broker (``--instance-id``): a processor killed -9 and restarted with the same
id takes its own partitions back with no rebalance — the other processor keeps its partitions throughout — and the
runs of every partition complete."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from engine import Registry
from streams import Settings, Topics, create_topics
from streams.client import Client
from streams.processors import StepWorker
from support import eventually

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
PARTITIONS = 4
ADOPTED = re.compile(r"partition (\d+) adopted")


def _adopted(log: Path) -> list[int]:
    """The inbox partitions a processor adopted, in order, from its log."""
    return [int(number) for number in ADOPTED.findall(log.read_text(errors="replace"))] if log.exists() else []


async def test_a_processor_restarted_with_its_instance_id_takes_its_partitions_back_without_a_rebalance(
    settings: Settings, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    own = settings.replace(topic_prefix=f"{settings.topic_prefix}-static{tag}", partitions=PARTITIONS)
    await create_topics(own.bootstrap, Topics(own.topic_prefix), PARTITIONS)
    env = {
        **os.environ,
        "KFLOW_TOPIC_PREFIX": own.topic_prefix,
        "KFLOW_PARTITIONS": str(PARTITIONS),
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    command = [sys.executable, "-m", "streams.cli", "processor", "-A", "e2e_workflows", "--no-materializer"]
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, log: Path) -> None:
        home = {"KFLOW_HOME": str(tmp_path / name)}
        with open(log, "ab") as out:
            procs[name] = subprocess.Popen(
                [*command, "--instance-id", f"processor-{name}"],
                env={**env, **home},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    registry = Registry.from_module("e2e_workflows")
    worker = StepWorker(own, registry, concurrency=8)
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b", "a-again")}
    try:
        start("a", logs["a"])
        await eventually(lambda: len(_adopted(logs["a"])) == PARTITIONS, timeout=90, what="a adopting every partition")
        start("b", logs["b"])
        await eventually(
            lambda: (
                _adopted(logs["b"])
                and len(set(_adopted(logs["a"])[PARTITIONS:])) == PARTITIONS - len(_adopted(logs["b"]))
            ),
            timeout=90,
            what="the partitions shared between a and b",
        )
        kept_by_a = set(_adopted(logs["a"])[PARTITIONS:])
        kept_by_b = _adopted(logs["b"])
        await worker.start()
        async with Client(settings=own, registry=registry) as client:
            ids = await asyncio.gather(*(client.start("sum_three", i, 1, 1) for i in range(20)))
            assert await asyncio.gather(*(client.result(r, timeout=60) for r in ids)) == [i + 2 for i in range(20)]

            procs["a"].send_signal(signal.SIGKILL)
            procs["a"].wait(timeout=30)
            start("a", logs["a-again"])  # a supervisor restarting it, same id and home
            await eventually(
                lambda: set(_adopted(logs["a-again"])) == kept_by_a, timeout=60, what="a taking its partitions back"
            )
            ids = await asyncio.gather(*(client.start("sum_three", i, 2, 2) for i in range(40)))
            assert await asyncio.gather(*(client.result(r, timeout=60) for r in ids)) == [i + 4 for i in range(40)]
        assert _adopted(logs["b"]) == kept_by_b  # b never gave its partitions up: no rebalance
        assert set(_adopted(logs["a-again"])) == kept_by_a and len(_adopted(logs["a-again"])) == len(kept_by_a)
    finally:
        await worker.stop()
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
