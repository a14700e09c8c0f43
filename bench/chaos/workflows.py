"""The chaos workload (``-A bench.chaos.workflows``): one workflow that uses every durable feature at once.

A ``chaos`` run is a chain of ``links + 1`` runs (continue-as-new ``links`` times). Each link runs a step that
fails transiently (1 or 2 times, then succeeds: durable retries), sleeps one second, waits on the hook ``go``
(resumed by the driver), and runs a child workflow with one more step. Every value is a deterministic function
of the chain's key, so the checker knows the right result (``expected_result``) from the arguments alone.

Every step execution creates one file ``<KFLOW_CHAOS_DIR>/steps/<key>.<n>`` (``O_EXCL``: ``n`` counts the
executions of that step call across all workers); the checker compares these executions with the attempts the
histories recorded, which gives the number of re-executed steps. Without ``KFLOW_CHAOS_DIR`` executions are
counted in memory (tests of the workflow code).
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from collections import Counter
from pathlib import Path

from engine import RetryableError, continue_as_new, hook, sleep, start_child_workflow, step, workflow

WORKFLOW = "chaos"
"""The name of the workflow the driver starts."""
STEP_SECONDS = 0.2
"""How long each step works: long enough that a killed worker has steps in flight."""
HOOK = "go"
"""The hook every link waits on; its token is ``<run_id>:go``."""

_IN_MEMORY: Counter[str] = Counter()


def step_value(key: str) -> int:
    """What the flaky step of ``key`` returns once it succeeds."""
    return zlib.crc32(key.encode()) % 1000


def failures(key: str) -> int:
    """How many executions of the flaky step ``key`` fail before one succeeds (1 or 2)."""
    return 1 + zlib.crc32(b"fail:" + key.encode()) % 2


def hook_value(key: str, links: int) -> int:
    """The number the driver sends to the hook of the link of chain ``key`` that has ``links`` links to go."""
    return zlib.crc32(f"hook:{key}:{links}".encode()) % 100


def flaky_key(key: str, links: int) -> str:
    """The key of the flaky step of one link."""
    return f"{key}/{links}/flaky"


def expected_result(key: str, links: int, acc: int = 0) -> int:
    """The result of the chain ``chaos(key, links, acc)`` (its last link's result)."""
    total = acc
    for left in range(links, -1, -1):
        total += 2 * (step_value(flaky_key(key, left)) + hook_value(key, left)) + 1
    return total


def steps_dir() -> Path | None:
    """Where step executions are recorded (``$KFLOW_CHAOS_DIR/steps``), or None (counted in memory)."""
    root = os.environ.get("KFLOW_CHAOS_DIR")
    return Path(root) / "steps" if root else None


def file_name(key: str) -> str:
    """The file-name form of a step key (no ``/``)."""
    return key.replace("/", "~")


def record_execution(key: str) -> int:
    """Record one execution of the step call ``key``; returns how many executions it has had, this one included.

    # Invariant: ``O_CREAT | O_EXCL`` makes the count exact across processes: two workers never get the same n.
    """
    folder = steps_dir()
    if folder is None:
        _IN_MEMORY[key] += 1
        return _IN_MEMORY[key]
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        try:
            fd = os.open(folder / f"{file_name(key)}.{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            n += 1
            continue
        try:
            os.write(fd, f"{os.getpid()} {int(time.time() * 1000)}\n".encode())
        finally:
            os.close(fd)
        return n


@step(max_retries=4, retry_delay=[0.5])
async def flaky(key: str) -> int:
    """Fails its first ``failures(key)`` executions with a retryable error, then returns ``step_value(key)``."""
    executions = record_execution(key)
    await asyncio.sleep(STEP_SECONDS)
    if executions <= failures(key):
        raise RetryableError(f"{key}: transient failure (execution {executions})")
    return step_value(key)


@step
async def double(key: str, x: int) -> int:
    """Returns ``2 * x``."""
    record_execution(key)
    await asyncio.sleep(STEP_SECONDS)
    return 2 * x


@workflow
async def chaos_child(key: str, x: int) -> int:
    """The child of one link: ``2 * x + 1`` through a step."""
    return await double(f"{key}/double", x) + 1


@workflow(name=WORKFLOW)
async def chaos(key: str, links: int, acc: int = 0) -> int:
    """One link of a chain: retried step, sleep, hook, child, then continue-as-new until ``links`` is 0."""
    a = await flaky(flaky_key(key, links))
    await sleep("1s")
    got = await hook(HOOK, timeout="30m")
    total = acc + await start_child_workflow(chaos_child, f"{key}/{links}", a + int(got["n"]))
    if links > 0:
        continue_as_new(key, links - 1, total)
    return total
