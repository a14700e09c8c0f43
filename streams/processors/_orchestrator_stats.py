"""What the orchestrator counts, for benchmarks and ops."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.processors._history_store import HistoryStore


@dataclass(slots=True)
class OrchestratorStats:
    """Counters for benchmarks and ops."""

    records: int = 0
    transactions: int = 0
    outputs: int = 0
    restored_events: int = 0  # history events applied while adopting partitions
    history_read: int = 0  # history records read while adopting (from each partition's checkpoint on)
    restore_seconds: float = 0.0  # time spent reading state + history while adopting
    resets: int = 0
    # The running runs' histories of the partitions owned now, against KFLOW_LIVE_HISTORY_BYTES per partition
    # (refreshed after every batch): bytes held in memory now, the most one partition ever held, histories moved
    # to local disk past the budget and read back from there.
    history_bytes: int = 0
    history_peak_bytes: int = 0
    history_evictions: int = 0
    history_reads: int = 0

    def count_histories(self, stores: Iterable[HistoryStore]) -> None:
        """Refresh the ``history_*`` figures from the partitions' history stores."""
        held = list(stores)
        self.history_bytes = sum(store.held_bytes for store in held)
        self.history_peak_bytes = max([self.history_peak_bytes, *(store.peak_bytes for store in held)])
        self.history_evictions = sum(store.evictions for store in held)
        self.history_reads = sum(store.reads for store in held)
