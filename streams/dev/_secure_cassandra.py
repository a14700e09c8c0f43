"""A secure Cassandra node's first start and readiness: the ``kflow`` role replaces the default superuser.

``PasswordAuthenticator`` creates the role ``cassandra`` (password ``cassandra``) once the node has started and
found no role (after ``cassandra.superuser_setup_delay_ms``, set to 0 by ``kflow dev up --secure``). The first
readiness probe logs in with it, creates the superuser ``kflow`` with the generated password, then, as ``kflow``,
takes login and superuser away from ``cassandra`` and gives it a random password nobody keeps. Later probes log in
as ``kflow`` straight away. The driver is used directly: ``storage.CassandraConnection`` has no credentials.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from streams.dev._jvm import DevStackError
from streams.dev._secure import CassandraLogin

DEFAULT_ROLE = ("cassandra", "cassandra")
"""The superuser ``PasswordAuthenticator`` creates on a node without roles."""


class _Refused(Exception):
    """The node answered and refused the credentials."""


def _connect(host: str, port: int, login: CassandraLogin, username: str, password: str) -> tuple[Cluster, Any]:
    profile = ExecutionProfile(request_timeout=10, load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()))
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=5,
        connect_timeout=3,
        control_connection_timeout=3,
        auth_provider=PlainTextAuthProvider(username=username, password=password),
        ssl_context=login.ssl_context(),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        return cluster, cluster.connect()
    except NoHostAvailable as exc:
        cluster.shutdown()
        if any(isinstance(error, AuthenticationFailed) for error in exc.errors.values()):
            raise _Refused(f"{username}: authentication failed") from None
        raise


def _release_version(host: str, port: int, login: CassandraLogin) -> str:
    cluster, session = _connect(host, port, login, login.username, login.password)
    try:
        return str(session.execute("SELECT release_version FROM system.local").one().release_version)
    finally:
        cluster.shutdown()


def _replace_default_role(host: str, port: int, login: CassandraLogin) -> None:
    """As ``cassandra``/``cassandra``: create ``login``'s superuser role; as that role: disable ``cassandra``."""
    cluster, session = _connect(host, port, login, *DEFAULT_ROLE)
    try:
        # the password is generated (URL-safe base64): nothing to escape
        session.execute(
            f"CREATE ROLE IF NOT EXISTS {login.username} "
            f"WITH PASSWORD = '{login.password}' AND LOGIN = true AND SUPERUSER = true"
        )
    finally:
        cluster.shutdown()
    cluster, session = _connect(host, port, login, login.username, login.password)
    try:
        session.execute(
            f"ALTER ROLE {DEFAULT_ROLE[0]} "
            f"WITH PASSWORD = '{secrets.token_urlsafe(24)}' AND LOGIN = false AND SUPERUSER = false"
        )
    finally:
        cluster.shutdown()


def secure_cassandra_ready(host: str, port: int, timeout: float, login: CassandraLogin) -> str:
    """Cassandra's release version, asked over TLS as ``login`` once the node answers (making the role first
    when only the default superuser exists).

    Raises:
        DevStackError: no answer within ``timeout`` seconds, or neither ``login`` nor the default role is accepted
            by then (a node secured by someone else: ``kflow dev down --wipe``).
    """
    deadline = time.monotonic() + timeout
    quiet = logging.getLogger("cassandra")
    level, quiet.level = quiet.level, logging.CRITICAL
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            try:
                try:
                    return _release_version(host, port, login)
                except _Refused:
                    _replace_default_role(host, port, login)  # refused too while the node creates it: retried
                    return _release_version(host, port, login)
            except Exception as exc:  # refused, not yet listening, default role not yet created
                last = exc
                time.sleep(1.0)
    finally:
        quiet.setLevel(level)
    detail = repr(last).replace(login.password, "***")  # a driver error may quote the statement
    raise DevStackError(f"Cassandra at {host}:{port} not ready after {timeout:.0f}s: {detail}")
