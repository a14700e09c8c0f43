"""What the Cassandra writer and readers share: run statuses as stored, the driver's errors, planned writes and
their grouping into single-partition batches, CQL value conversions, and the driver-to-asyncio bridge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable, ResponseFuture
from cassandra.connection import ConnectionException
from cassandra.protocol import ErrorMessage
from cassandra.query import PreparedStatement

from engine import RunStatus
from engine.runtime import CallArgs
from schemas import SchemaError, encode_payload
from storage._errors import StorageError

RUNNING: Final = RunStatus.RUNNING
"""Status of a run from ``WorkflowStarted`` until its terminal event."""

STATUSES: Final = tuple(RunStatus)
"""Every status a run can have (the terminal ones match ``RunFinished.status``)."""

DRIVER_ERRORS: Final = (DriverException, NoHostAvailable, ConnectionException, ErrorMessage, OSError)
"""What the Cassandra driver raises for an unreachable, overloaded or refusing server."""

BATCH_BYTES: Final = 4 * 1024 * 1024
"""Most event bytes in one batch (a batch is one mutation; Cassandra refuses mutations over 16 MiB)."""

REQUEST_PARTITIONS: Final = 10
"""Most partitions one request writes when it packs several (Cassandra's default
``unlogged_batch_across_partitions_warn_threshold``: over it every such request logs a warning)."""

REQUEST_BYTES: Final = 4 * 1024
"""Most bytes (by ``weight``) one request packing several partitions carries: Cassandra's default
``batch_size_warn_threshold`` (5 KiB; single-partition requests are exempt) less a fifth for the cell overheads
that ``weight`` leaves out (seen: 4.6–5.0 KiB estimated for 5.4 KiB counted)."""


@dataclass(frozen=True, slots=True)
class Write:
    """One planned write: the statement, its values, the partition it touches and its payload bytes."""

    statement: PreparedStatement
    params: tuple[object, ...]
    partition: tuple[object, ...]  # (table, *partition key)
    size: int = 0


def group_writes(writes: Iterable[Write], max_bytes: int = BATCH_BYTES) -> list[list[Write]]:
    """Writes grouped by partition (first-seen order), each group split to at most ``max_bytes``.

    A group goes to Cassandra as one single-partition unlogged batch: one mutation, one round trip,
    and exempt from Cassandra's batch size limits, which only apply to multi-partition batches.
    """
    by_partition: dict[tuple[object, ...], list[list[Write]]] = {}
    filled: dict[tuple[object, ...], int] = {}  # bytes in the partition's last chunk
    for write in writes:
        chunks = by_partition.setdefault(write.partition, [[]])
        if chunks[-1] and filled[write.partition] + write.size > max_bytes:
            chunks.append([])
            filled[write.partition] = 0
        chunks[-1].append(write)
        filled[write.partition] = filled.get(write.partition, 0) + write.size
    return [chunk for chunks in by_partition.values() for chunk in chunks]


def weight(write: Write) -> int:
    """About the bytes a write adds to a mutation: its text and blob values, 8 for any other value."""
    return sum(len(v) if isinstance(v, str | bytes) else 8 for v in write.params)


def pack_groups(
    groups: Iterable[list[Write]],
    replicas: Callable[[list[Write]], Hashable],
    max_partitions: int = REQUEST_PARTITIONS,
    max_bytes: int = REQUEST_BYTES,
) -> list[list[list[Write]]]:
    """Partition groups (``group_writes``) packed into requests: one request per pack, as one unlogged batch.

    Only groups on the same replicas (``replicas(group)``: a key of the nodes that own the group's partition) share
    a request, so the coordinator that receives it owns every partition in it and applies each one locally — the
    way Cassandra's batch guidance and the Spark connector's ``replica_set`` grouping write. A pack stays within
    ``max_partitions`` and ``max_bytes`` (Cassandra's warning thresholds for multi-partition batches); a group
    heavier than ``max_bytes`` alone is a request of its own (single-partition batches are exempt). Order within
    a group is kept; nothing in the rows depends on the order of groups (``storage._history``'s invariant).
    """
    packs: list[list[list[Write]]] = []
    open_packs: dict[Hashable, tuple[list[list[Write]], list[int]]] = {}  # replicas -> (pack, [bytes])
    for group in groups:
        size = sum(weight(write) for write in group)
        if size > max_bytes:
            packs.append([group])
            continue
        key = replicas(group)
        current = open_packs.get(key)
        if current is None or len(current[0]) >= max_partitions or current[1][0] + size > max_bytes:
            current = ([], [0])
            open_packs[key] = current
            packs.append(current[0])
        current[0].append(group)
        current[1][0] += size
    return packs


def day_bucket(epoch_ms: int) -> str:
    """The query tables' partition bucket of a run: the UTC day ``YYYY-MM-DD`` of ``epoch_ms``."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def to_ms(value: object) -> int | None:
    """A CQL ``timestamp`` as read by the driver (naive UTC datetime) in epoch milliseconds."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def json_text(value: object) -> str:
    """JSON text of a decoded value for the ``args``/``result`` columns: what the JSON payload codecs write (plain
    JSON, or the tagged JSON of ``json+types`` for typed values: docs/payloads.md); for a value they cannot carry
    (from a cloudpickle payload), JSON with the ``repr`` of what JSON cannot hold. Never raises."""
    if isinstance(value, CallArgs):
        value = {"args": list(value.args), "kwargs": value.kwargs}
    try:
        data = encode_payload(value)["data"]
        assert isinstance(data, bytes)
        return data.decode("utf-8")
    except SchemaError:
        pass
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (TypeError, ValueError, RecursionError):  # keys JSON cannot have, a cycle
        return json.dumps(_safe_repr(value), ensure_ascii=False)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a user __repr__
        return f"<{type(value).__qualname__}>"


def bridge(future: ResponseFuture, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """An asyncio future resolved (on ``loop``) by a driver ``ResponseFuture``; errors → StorageError."""
    result: asyncio.Future[Any] = loop.create_future()
    # A cancelled caller never looks at the outcome: mark it retrieved so it is not reported as lost.
    result.add_done_callback(lambda done: done.cancelled() or done.exception())

    def settle(rows: object, error: BaseException | None) -> None:
        if result.done():
            return
        if error is None:
            result.set_result(rows)
        else:
            result.set_exception(StorageError(f"Cassandra request failed: {error!r}"))

    def post(rows: object, error: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, rows, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    future.add_callbacks(callback=lambda rows: post(rows, None), errback=lambda exc: post(None, exc))
    return result
