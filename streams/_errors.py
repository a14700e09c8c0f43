"""Errors of the composition root: Kafka client failures as ``TransportError``, and bad ``KFLOW_*`` settings.

Kafka client errors (``aiokafka.errors.KafkaError``, and ``OSError`` from connecting) are wrapped at the
boundaries a caller meets (``Client``, ``create_topics``, ``committed_lag``, ``compact``, ``rebuild``, …) with
``kafka_errors``: the ``TransportError`` raised names the bootstrap servers and what was being done, and
keeps the client's error as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

from engine import ConfigurationError, KflowError

_UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError, OSError)


class TransportError(KflowError):
    """Kafka could not be reached or refused a request; the Kafka client's error is the ``__cause__``.

    Attributes:
        bootstrap: the bootstrap servers that were used.
        doing: what was being done (``"connecting the client producer"``, ``"creating topics"``, …).
        unreachable: True when no broker answered (connection refused, timed out), False when one refused.
    """

    __module__ = "streams"
    retryable = True

    def __init__(self, message: str, bootstrap: str = "", doing: str = "", *, unreachable: bool = True) -> None:
        super().__init__(message)
        self.bootstrap = bootstrap
        self.doing = doing
        self.unreachable = unreachable

    @classmethod
    def wrapping(cls, error: BaseException, bootstrap: str, doing: str) -> TransportError:
        """The error for the Kafka client's ``error``, met at ``bootstrap`` while ``doing`` something (one line:
        ``Kafka at 127.0.0.1:1 is unreachable (connecting the client producer): …``)."""
        unreachable = isinstance(error, _UNREACHABLE)
        detail = str(error) or type(error).__name__
        if not isinstance(error, KafkaError):  # aiokafka's errors already start with their class name
            detail = f"{type(error).__name__}: {detail}"
        what = "is unreachable" if unreachable else "refused a request"
        message = f"Kafka at {bootstrap} {what} ({doing}): {detail}"
        return cls(" ".join(message.split()), bootstrap, doing, unreachable=unreachable)


class SettingsError(ConfigurationError, ValueError):
    """A ``KFLOW_*`` environment variable has a value kflow cannot use; the message names it.

    An ``engine.ConfigurationError`` (pyworkflow-engine's name for a misconfiguration), and a ``ValueError``,
    which ``Settings.from_env`` documented before there was a kflow error for it.
    """

    __module__ = "streams"
    retryable = False


@contextmanager
def kafka_errors(bootstrap: str, doing: str) -> Iterator[None]:
    """Raise a ``TransportError`` (``from`` the original) for a Kafka client error raised in the block.

    ``TimeoutError`` passes through unchanged: the waits kflow times out on raise it on purpose.
    """
    try:
        yield
    except TimeoutError:
        raise
    except (KafkaError, OSError) as exc:
        raise TransportError.wrapping(exc, bootstrap, doing) from exc
