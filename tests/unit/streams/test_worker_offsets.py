"""The worker commits only the contiguous prefix of tasks whose results were acknowledged."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.processors import OffsetTracker

TP = TopicPartition("p.tasks", 0)
OTHER = TopicPartition("p.tasks", 1)


def test_out_of_order_completion_commits_only_the_contiguous_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.add(TP, offset)
    tracker.done(TP, 11)
    assert tracker.take_committable([TP]) == {}  # 10 still running: a crash must redeliver it
    tracker.done(TP, 10)
    assert tracker.take_committable([TP]) == {TP: 12}
    tracker.done(TP, 12)
    assert tracker.take_committable([TP]) == {TP: 13}
    assert tracker.take_committable([TP]) == {}  # nothing new since the last take


def test_partitions_are_independent_and_revoked_ones_are_forgotten() -> None:
    tracker = OffsetTracker()
    tracker.add(TP, 0)
    tracker.add(OTHER, 5)
    tracker.done(OTHER, 5)
    assert tracker.take_committable([TP, OTHER]) == {OTHER: 6}
    tracker.forget([TP])
    tracker.done(TP, 0)  # result acked after the revoke: the new owner re-runs it, no commit here
    assert tracker.take_committable([TP]) == {}


def test_a_failed_commit_is_retried_unless_overtaken() -> None:
    tracker = OffsetTracker()
    tracker.add(TP, 0)
    tracker.done(TP, 0)
    taken = tracker.take_committable([TP])
    tracker.restore(taken)
    assert tracker.take_committable([TP]) == {TP: 1}
    tracker.add(TP, 1)
    tracker.done(TP, 1)
    tracker.restore({TP: 1})  # overtaken by the newer committable offset: kept at 2
    assert tracker.take_committable([TP]) == {TP: 2}
