"""The start-up check of every long-running process (and the client): the topics a run lives on have one
partition count.

A run's records are keyed by its run id, so Kafka's partitioner (murmur2 of the key modulo the partition
count) puts them on one partition number on every topic, and the orchestrator that owns inbox partition N
reads the history, timers and state of partition N. With ``.tasks`` at 2 partitions and ``.inbox`` at 4,
the same key lands on different numbers: runs would be restored from the wrong history partition, timers
would fire into the void. ``kflow topics create`` refuses to create such a set; this check refuses to *run*
on one (a topic altered by hand, one created by another tool), with one line naming every count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from streams import kafka
from streams._errors import kafka_errors
from streams._kafka_target import KafkaTarget
from streams._topics import InternalTopicError, Topics, partition_counts

CHECKED_SUFFIXES: Final = ("inbox", "history", "tasks", "timers", "state")
"""The topics whose partition numbers must name the same runs (``.completions`` and ``.dlq`` are only read by
key, ``.timer-index`` is checked against ``.timers`` by the timer processor)."""


class PartitionCountError(InternalTopicError):
    """The topics a run lives on have different partition counts; the process refuses to start (one line)."""


def partition_mismatch(counts: Mapping[str, int]) -> str | None:
    """How ``counts`` (topic name → partition count, in the order to report) differ, as one line, or None when
    they are all equal (or fewer than two topics exist)."""
    if len(set(counts.values())) <= 1:
        return None
    listed = ", ".join(f"{name} {count}" for name, count in counts.items())
    return (
        f"partition counts differ ({listed}): these topics must all have the same count, because a run's "
        "records share one partition number on every one of them (`kflow topics check` lists the differences)"
    )


async def check_partition_counts(bootstrap: KafkaTarget | str, topics: Topics, who: str) -> int | None:
    """The partition count shared by the existing topics of ``CHECKED_SUFFIXES`` (None: none of them exists), on
    ``bootstrap`` (a ``KafkaTarget``, or bootstrap servers over PLAINTEXT).

    Missing topics are not described (a metadata request naming one may make the broker create it) and not
    reported here: the caller's own checks report them (``kflow topics create``).

    Raises:
        PartitionCountError: the counts differ; the message starts with ``refusing to start {who}``.
        TransportError: Kafka is unreachable or refused a request.
    """
    names = [topics.name(suffix) for suffix in CHECKED_SUFFIXES]
    with kafka_errors(bootstrap, "checking the partition counts"):
        admin = kafka.admin(bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            present = [name for name in names if name in existing]
            counts = await partition_counts(admin, present) if present else {}
        finally:
            await admin.close()
    ordered = {name: counts[name] for name in present}
    problem = partition_mismatch(ordered)
    if problem is not None:
        raise PartitionCountError(f"refusing to start {who}: {problem}")
    return next(iter(ordered.values()), None)
