"""Connections to Cassandra: one cluster object per process, prepared statements, async execution.

A ``CassandraTarget`` says where the nodes are (one or more contact points), which datacenter is local,
the consistency levels of reads and writes, the replication of a keyspace kflow creates, and how to log in
(PasswordAuthenticator, through the driver's ``PlainTextAuthProvider``) and encrypt (TLS, an ``ssl_context``).
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cassandra import AuthenticationFailed, ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from pydantic import SecretStr

from storage._errors import StorageError

log = logging.getLogger(__name__)

_KEYSPACE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,47}$")
_OPTION_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

CONSISTENCY_LEVELS: Final = ("ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE")
"""The consistency levels kflow accepts for its reads and writes (not ANY, nor the serial levels)."""

DEFAULT_CONSISTENCY: Final = "LOCAL_QUORUM"
"""Quorum writes (materializer) and quorum reads (client, ops CLI) overlap at any replication factor; with one
replica (the local default) it is the same as ONE."""

DEFAULT_REPLICATION: Final[tuple[tuple[str, str | int], ...]] = (
    ("class", "SimpleStrategy"),
    ("replication_factor", 1),
)
"""The replication of a keyspace kflow creates when none is configured: one replica (a single dev node)."""

Replication = tuple[tuple[str, str | int], ...]
"""A keyspace replication map as ordered ``(option, value)`` pairs (hashable, unlike a dict)."""


@dataclass(frozen=True, slots=True)
class CassandraTarget:
    """Where the Cassandra nodes listen and how kflow talks to them.

    Attributes:
        host / port: the first contact point.
        local_dc: the datacenter to route requests to (``DCAwareRoundRobinPolicy``); None: the driver's
            default, the datacenter of the contact point that answers first (right for a single node).
        more_points: further contact points ``(host, port)``, tried when the first does not answer.
        read_consistency / write_consistency: names from ``CONSISTENCY_LEVELS``.
        replication: the replication of a keyspace created through this target (``migrate``); empty:
            ``DEFAULT_REPLICATION``.
        username / password: the login (both or neither); the password never appears in ``repr``.
        ca_file: PEM file of the authorities that signed the nodes' certificates; set (or ``cert_file``): TLS.
        cert_file / key_file: the client certificate chain and its private key (None: in ``cert_file``).
        check_hostname: whether a node's certificate must name the address connected to (the chain is
            checked either way).
    """

    host: str = "127.0.0.1"
    port: int = 9042
    local_dc: str | None = None
    more_points: tuple[tuple[str, int], ...] = ()
    read_consistency: str = DEFAULT_CONSISTENCY
    write_consistency: str = DEFAULT_CONSISTENCY
    replication: Replication = ()
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        for name in (self.read_consistency, self.write_consistency):
            if name not in CONSISTENCY_LEVELS:
                raise ValueError(f"unknown consistency level {name!r}: one of {', '.join(CONSISTENCY_LEVELS)}")
        if (self.username is None) != (self.password is None):
            raise ValueError("a Cassandra login needs both a username and a password")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("a Cassandra key_file needs its cert_file (the client certificate)")

    @property
    def tls(self) -> bool:
        """Whether connections are encrypted: a CA file or a client certificate is set."""
        return self.ca_file is not None or self.cert_file is not None

    def auth_provider(self) -> PlainTextAuthProvider | None:
        """The driver's login for PasswordAuthenticator (None without a username)."""
        if self.username is None or self.password is None:
            return None
        return PlainTextAuthProvider(username=self.username, password=self.password.get_secret_value())

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a connection (None without TLS): ``ca_file`` (else the system's authorities), the
        client certificate if any, hostname checks as ``check_hostname`` says.

        Raises:
            OSError: a file cannot be read or is not what it should be (``ssl.SSLError`` is one).
        """
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        context.check_hostname = self.check_hostname
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    @classmethod
    def of(cls, points: list[tuple[str, int]] | tuple[tuple[str, int], ...], **options: Any) -> CassandraTarget:
        """The target with contact ``points`` (at least one) and the other attributes from ``options``."""
        if not points:
            raise ValueError("a Cassandra target needs at least one contact point")
        (host, port), *more = points
        return cls(host, port, more_points=tuple(more), **options)

    @property
    def contact_points(self) -> list[tuple[str, int]]:
        """Every contact point, the first one first."""
        return [(self.host, self.port), *self.more_points]

    def describe(self) -> str:
        """The contact points as ``host:port,host:port`` (for messages)."""
        return ",".join(f"{host}:{port}" for host, port in self.contact_points)

    def replication_map(self) -> dict[str, str | int]:
        """The replication of a keyspace created through this target, as a dict."""
        return dict(self.replication or DEFAULT_REPLICATION)


def parse_replication(text: str) -> Replication:
    """A keyspace replication from JSON (``{"class": "NetworkTopologyStrategy", "dc1": 3}``) or the short form
    ``NetworkTopologyStrategy:dc1=3,dc2=3`` / ``SimpleStrategy:3``.

    Raises:
        ValueError: malformed text, a missing ``class``, a replica count that is not a positive integer.
    """
    text = text.strip()
    if text.startswith(("{", "[")):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"replication is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError("replication JSON must be an object")
        return check_replication(loaded)
    strategy, _, rest = text.partition(":")
    options: dict[str, object] = {"class": strategy.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, equals, value = part.partition("=")
        if not equals and strategy.strip().endswith("SimpleStrategy"):
            key, value = "replication_factor", key
        elif not equals:
            raise ValueError(f"replication option {part!r} is not name=count (e.g. NetworkTopologyStrategy:dc1=3)")
        options[key.strip()] = value.strip()
    return check_replication(options)


def check_replication(options: Mapping[str, object]) -> Replication:
    """``options`` as a checked ``Replication``: a ``class``, positive integer replica counts, plain names.

    Raises:
        ValueError: what is wrong, in one line.
    """
    strategy = options.get("class")
    if not isinstance(strategy, str) or not strategy:
        raise ValueError("replication needs a class, e.g. SimpleStrategy or NetworkTopologyStrategy")
    if not _OPTION_NAME.match(strategy):
        raise ValueError(f"invalid replication class {strategy!r}")
    pairs: list[tuple[str, str | int]] = [("class", strategy)]
    for key, value in options.items():
        if key == "class":
            continue
        if not _OPTION_NAME.match(key):
            raise ValueError(f"invalid replication option name {key!r}")
        count = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.isdigit():
            count = int(value)
        if count is None or count < 1:
            raise ValueError(f"replication {key} must be a positive integer, got {value!r}")
        pairs.append((key, count))
    if len(pairs) == 1:
        raise ValueError(f"replication {strategy} names no replica count (e.g. {strategy}:dc1=3)")
    return tuple(pairs)


class CassandraConnection:
    """A connected driver session; close it when done (also a context manager).

    Reads and writes of the session use ``target.read_consistency`` (the session's default profile); the
    statements that write (``HistoryWriter``, ``RunStore`` purges and marks) carry ``write_consistency``.

    Raises:
        StorageError: when no node answers within ``connect_timeout`` seconds.
    """

    def __init__(self, target: CassandraTarget, *, connect_timeout: float = 5.0, request_timeout: float = 10.0) -> None:
        self.target = target
        try:
            context = target.ssl_context()
        except OSError as exc:  # a missing or unreadable file, a key that does not match the certificate
            detail = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            raise StorageError(f"Cassandra at {target.describe()}: cannot use its TLS files: {detail}") from exc
        self.read_consistency: int = getattr(ConsistencyLevel, target.read_consistency)
        self.write_consistency: int = getattr(ConsistencyLevel, target.write_consistency)
        # No local_dc: the driver's default (the datacenter of the first contact point that answers).
        dc_aware = DCAwareRoundRobinPolicy(local_dc=target.local_dc) if target.local_dc else DCAwareRoundRobinPolicy()
        profile = ExecutionProfile(
            consistency_level=self.read_consistency,
            request_timeout=request_timeout,
            load_balancing_policy=TokenAwarePolicy(dc_aware),
        )
        self._cluster = Cluster(
            target.contact_points,
            port=target.port,
            protocol_version=5,
            connect_timeout=connect_timeout,
            control_connection_timeout=connect_timeout,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=target.auth_provider(),
            ssl_context=context,
        )
        try:
            self.session: Session = self._cluster.connect()
        except (NoHostAvailable, OSError) as exc:
            self._cluster.shutdown()
            raise StorageError(f"Cassandra at {target.describe()} {_why(exc, target)}") from exc

    def release_version(self) -> str:
        """The server's version, read from ``system.local`` (a real query round trip)."""
        row = self.session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version)

    def ensure_keyspace(self, name: str, replication: Mapping[str, Any] | None = None) -> None:
        """Create keyspace ``name`` if it does not exist, with ``replication`` (default: the target's, else
        SimpleStrategy with one replica). An existing keyspace is left as it is."""
        if not _KEYSPACE_NAME.match(name):
            raise StorageError(f"invalid keyspace name {name!r}: letters, digits and _ only, max 48")
        try:
            chosen = dict(check_replication(replication)) if replication else self.target.replication_map()
        except ValueError as exc:
            raise StorageError(f"keyspace {name}: {exc}") from None
        options = ", ".join(f"'{key}': {value!r}" for key, value in chosen.items())
        self.session.execute(f"CREATE KEYSPACE IF NOT EXISTS {name} WITH replication = {{{options}}}")

    def close(self) -> None:
        """Shut the driver's connections and threads down."""
        self._cluster.shutdown()

    def __enter__(self) -> CassandraConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _why(error: BaseException, target: CassandraTarget) -> str:
    """What a failed connect says, as the end of one line: ``is unreachable: …``, or (a node answered)
    ``rejected the login: …`` / ``requires a login …`` / ``failed the TLS handshake: …``."""
    causes = list(error.errors.values()) if isinstance(error, NoHostAvailable) else [error]
    detail = " ".join(str(error).split())
    if any(isinstance(cause, AuthenticationFailed) for cause in causes):
        if target.username is None:
            return f"requires a login and none is configured: {detail}"
        return f"rejected the login of {target.username}: {detail}"
    if any(isinstance(cause, ssl.SSLError) for cause in causes):
        return f"failed the TLS handshake: {detail}"
    return f"is unreachable: {detail}"
