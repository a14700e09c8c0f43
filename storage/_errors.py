"""The root error of the storage package."""

from __future__ import annotations


class StorageError(Exception):
    """Cassandra could not be reached or refused a request; the message says which and why."""

    retryable = True
