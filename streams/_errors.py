"""Errors of the composition root: Kafka client failures as ``TransportError``, and bad ``KFLOW_*`` settings.

Kafka client errors (``aiokafka.errors.KafkaError``, and ``OSError`` from connecting) are wrapped at the
boundaries a caller meets (``Client``, ``create_topics``, ``committed_lag``, ``compact``, ``rebuild``, …) with
``kafka_errors``: the ``TransportError`` raised names the bootstrap servers and what was being done, and
keeps the client's error as ``__cause__``.

aiokafka reports a failed bootstrap as ``Unable to bootstrap from [hosts]`` and only logs why each host failed (a
TLS handshake, a SASL authentication, a refused connection); ``_ConnectFailures`` keeps the last reason per host
from that log record, so the ``TransportError`` says why (``Kafka at b:9093 rejected the credentials …``).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from engine import ConfigurationError, KflowError

if TYPE_CHECKING:
    from streams._kafka_target import KafkaTarget

_UNREACHABLE = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError, OSError)
_REASON_SECONDS = 120.0  # a bootstrap tries each server once, for at most its request timeout
_AUTHENTICATION = (
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
)


class _ConnectFailures(logging.Filter):
    """Keeps the error of the last failed connection to each ``host:port`` that aiokafka logs while bootstrapping
    (``Unable connect to "%s:%s": %s``); lets every record through."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, tuple[float, BaseException]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args, message = record.args, record.msg
        if isinstance(args, tuple) and len(args) == 3 and isinstance(message, str) and message.startswith("Unable"):
            host, port, error = args
            if isinstance(error, BaseException):
                self.last[f"{host}:{port}"] = (record.created, error)
        return True

    def reason(self, bootstrap: str, within: float = _REASON_SECONDS) -> BaseException | None:
        """The last failure of one of ``bootstrap``'s servers recorded within ``within`` seconds (the first server
        listed that has one)."""
        for server in bootstrap.split(","):
            when, error = self.last.get(server.strip(), (0.0, None))
            if error is not None and time.time() - when <= within:
                return error
        return None


_FAILURES = _ConnectFailures()
logging.getLogger("aiokafka").addFilter(_FAILURES)  # aiokafka.client logs as "aiokafka"


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
    def wrapping(cls, error: BaseException, bootstrap: KafkaTarget | str, doing: str) -> TransportError:
        """The error for the Kafka client's ``error``, met at ``bootstrap`` while ``doing`` something (one line:
        ``Kafka at 127.0.0.1:1 is unreachable (connecting the client producer): …``).

        A failed bootstrap says why its servers failed, when aiokafka logged it: ``rejected the credentials``
        (SASL), ``failed the TLS handshake`` (a certificate not trusted, a hostname that does not match, a
        listener that does not speak TLS), or the connection error.
        """
        servers = bootstrap if isinstance(bootstrap, str) else bootstrap.bootstrap
        if isinstance(error, KafkaConnectionError) and "Unable to bootstrap" in str(error):
            error = _FAILURES.reason(servers) or error
        unreachable = isinstance(error, _UNREACHABLE) and not isinstance(error, ssl.SSLError)
        detail = str(error) or type(error).__name__
        if not isinstance(error, KafkaError):  # aiokafka's errors already start with their class name
            detail = f"{type(error).__name__}: {detail}"
        what = "is unreachable" if unreachable else "refused a request"
        if isinstance(error, _AUTHENTICATION):
            what = "rejected the credentials"
        elif isinstance(error, ssl.SSLError):
            what = "failed the TLS handshake"
        message = f"Kafka at {servers} {what} ({doing}): {detail}"
        return cls(" ".join(message.split()), servers, doing, unreachable=unreachable)


class SettingsError(ConfigurationError, ValueError):
    """A ``KFLOW_*`` environment variable has a value kflow cannot use; the message names it.

    An ``engine.ConfigurationError`` (pyworkflow-engine's name for a misconfiguration), and a ``ValueError``,
    which ``Settings.from_env`` documented before there was a kflow error for it.
    """

    __module__ = "streams"
    retryable = False


@contextmanager
def kafka_errors(bootstrap: KafkaTarget | str, doing: str) -> Iterator[None]:
    """Raise a ``TransportError`` (``from`` the original) for a Kafka client error raised in the block.

    ``TimeoutError`` passes through unchanged: the waits kflow times out on raise it on purpose.
    """
    try:
        yield
    except TimeoutError:
        raise
    except (KafkaError, OSError) as exc:
        raise TransportError.wrapping(exc, bootstrap, doing) from exc
