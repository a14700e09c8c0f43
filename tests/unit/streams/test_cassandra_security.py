"""Cassandra's login and TLS from the settings to the driver (a fake ``Cluster`` records what it was given), and every
failure to connect because of them as one line through ``StorageError.unreachable`` (exit 4)."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import NoHostAvailable
from pydantic import SecretStr
from tls_samples import Pki, make_pki

from storage import CassandraConnection, CassandraTarget, StorageError
from streams import Settings
from streams.cli import exit_status

ROOT = Path(__file__).resolve().parents[3]


class FakeCluster:
    made: ClassVar[list[FakeCluster]] = []
    refuse: ClassVar[BaseException | None] = None

    def __init__(self, contact_points: list[tuple[str, int]], **options: Any) -> None:
        self.options = options
        FakeCluster.made.append(self)

    def connect(self) -> object:
        if FakeCluster.refuse is not None:
            raise FakeCluster.refuse
        return object()

    def shutdown(self) -> None:
        pass


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> type[FakeCluster]:
    FakeCluster.made.clear()
    FakeCluster.refuse = None
    monkeypatch.setattr("storage._session.Cluster", FakeCluster)
    return FakeCluster


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def secure(pki: Pki, **more: str) -> Settings:
    return Settings.from_env(
        {
            "KFLOW_CASSANDRA": "c1:9142",
            "KFLOW_CASSANDRA_USERNAME": "kflow",
            "KFLOW_CASSANDRA_PASSWORD": "hunter2",
            "KFLOW_CASSANDRA_CA_FILE": str(pki.ca),
            **more,
        }
    )


def test_the_cluster_gets_the_login_and_the_tls_context(cluster: type[FakeCluster], pki: Pki) -> None:
    CassandraConnection(secure(pki).cassandra_target())
    [made] = cluster.made
    provider, context = made.options["auth_provider"], made.options["ssl_context"]
    assert isinstance(provider, PlainTextAuthProvider) and (provider.username, provider.password) == (
        "kflow",
        "hunter2",
    )
    assert isinstance(context, ssl.SSLContext) and context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "kflow test CA"),),)]


def test_a_plain_target_has_neither(cluster: type[FakeCluster]) -> None:
    CassandraConnection(Settings.from_env({}).cassandra_target())
    [made] = cluster.made
    assert (made.options["auth_provider"], made.options["ssl_context"]) == (None, None)


def test_a_client_certificate_is_loaded(cluster: type[FakeCluster], pki: Pki) -> None:
    settings = secure(pki, KFLOW_CASSANDRA_CERT_FILE=str(pki.server_cert), KFLOW_CASSANDRA_KEY_FILE=str(pki.server_key))
    CassandraConnection(settings.cassandra_target())
    assert isinstance(cluster.made[0].options["ssl_context"], ssl.SSLContext)
    mismatched = secure(pki, KFLOW_CASSANDRA_CERT_FILE=str(pki.ca), KFLOW_CASSANDRA_KEY_FILE=str(pki.server_key))
    with pytest.raises(StorageError, match=r"^Cassandra at c1:9142: cannot use its TLS files: SSLError: ") as caught:
        CassandraConnection(mismatched.cassandra_target())
    assert caught.value.unreachable and exit_status(caught.value) == 4


def test_a_missing_ca_file_is_one_line_exit_4(cluster: type[FakeCluster], pki: Pki) -> None:
    with pytest.raises(StorageError) as caught:
        CassandraConnection(secure(pki, KFLOW_CASSANDRA_CA_FILE="/nowhere/ca.pem").cassandra_target())
    assert str(caught.value).startswith("Cassandra at c1:9142: cannot use its TLS files: FileNotFoundError: ")
    assert "\n" not in str(caught.value) and caught.value.unreachable and exit_status(caught.value) == 4
    assert cluster.made == []  # refused before any connection


@pytest.mark.parametrize(
    ("username", "cause", "says"),
    [
        (
            "kflow",
            AuthenticationFailed("Failed to authenticate to c1:9142: Error from server: code=0100 [Bad credentials]"),
            r"^Cassandra at c1:9142 rejected the login of kflow: .*Bad credentials",
        ),
        (
            None,
            AuthenticationFailed("Remote end requires authentication"),
            r"^Cassandra at c1:9142 requires a login and none is configured: ",
        ),
        (
            "kflow",
            ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
            r"^Cassandra at c1:9142 failed the TLS handshake: .*CERTIFICATE_VERIFY_FAILED",
        ),
        ("kflow", ConnectionRefusedError(111, "Connection refused"), r"^Cassandra at c1:9142 is unreachable: "),
    ],
)
def test_a_refused_connection_says_why_in_one_line(
    cluster: type[FakeCluster], pki: Pki, username: str | None, cause: BaseException, says: str
) -> None:
    cluster.refuse = NoHostAvailable("Unable to connect to any servers", {"c1:9142": cause})
    target = secure(pki).cassandra_target() if username else CassandraTarget("c1", 9142)
    with pytest.raises(StorageError, match=says) as caught:
        CassandraConnection(target)
    assert "\n" not in str(caught.value) and "hunter2" not in str(caught.value)
    assert caught.value.unreachable and exit_status(caught.value) == 4


def test_the_command_reports_a_cassandra_tls_file_problem_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "storage", "migrate"],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(ROOT),
            "KFLOW_CASSANDRA": "127.0.0.1:1",
            "KFLOW_CASSANDRA_USERNAME": "kflow",
            "KFLOW_CASSANDRA_PASSWORD": "hunter2",
            "KFLOW_CASSANDRA_CA_FILE": "/nowhere/ca.pem",
        },
        cwd=ROOT,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (4, "")
    assert done.stderr.startswith("kflow: error: Cassandra at 127.0.0.1:1: cannot use its TLS files: FileNotFound")
    assert done.stderr.count("\n") == 1 and "hunter2" not in done.stderr


def test_a_target_in_code_keeps_the_password_out_of_its_repr() -> None:
    target = CassandraTarget("c", 9042, username="u", password=SecretStr("hunter2"))
    assert "hunter2" not in repr(target) and "**********" in repr(target)
    with pytest.raises(ValueError, match="both a username and a password"):
        CassandraTarget("c", 9042, username="u")
