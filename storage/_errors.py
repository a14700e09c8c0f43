"""The root error of the storage package."""

from __future__ import annotations

from engine import KflowError


class StorageError(KflowError):
    """Cassandra could not be reached or refused a request; the message says which and why.

    An ``engine.KflowError``; retryable (rerunning a refused request is safe). ``unreachable`` tells the two
    apart without reading the message.
    """

    retryable = True

    @property
    def unreachable(self) -> bool:
        """True when Cassandra could not be reached at all (no node answered, the connection was refused or
        timed out): judged from the driver error this one was raised from."""
        from cassandra import OperationTimedOut  # the driver loads only when asked
        from cassandra.cluster import NoHostAvailable

        return isinstance(self.__cause__, NoHostAvailable | OperationTimedOut | OSError)
