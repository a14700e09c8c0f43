"""A login or TLS failure is one line (a ``TransportError``, ``kflow: error: …``, exit 4), never a traceback or a
hang; and every Kafka client kflow makes reaches the broker with the security settings (aiokafka's connection
factory is replaced by one that records its arguments and refuses the login, as a broker would)."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from tls_samples import Pki, make_pki, tls_server

from engine import Registry, step, workflow
from schemas import Codec, SchemaError, set_schema_source
from streams import Client, KafkaTarget, Settings, Topics, TransportError, check_topics, committed_lag, create_topics
from streams.client import CompletionsReader
from streams.ops import topic_partitions
from streams.processors import StepWorker

ROOT = Path(__file__).resolve().parents[3]
REFUSAL = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
SASL = {
    "KFLOW_BOOTSTRAP": "127.0.0.1:9",
    "KFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KFLOW_KAFKA_USERNAME": "worker",
    "KFLOW_KAFKA_PASSWORD": "hunter2",
}


@step
async def noop() -> None:
    return None


@workflow
async def flow() -> None:
    await noop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Aiokafka's connections: each records its keyword arguments and fails SASL authentication."""
    calls: list[dict[str, Any]] = []

    async def create_conn(host: str, port: int, **options: Any) -> None:
        calls.append({"host": host, "port": port, **options})
        raise SaslAuthenticationFailed(REFUSAL)

    monkeypatch.setattr("aiokafka.client.create_conn", create_conn)
    yield calls


def assert_secure(call: dict[str, Any]) -> None:
    assert (call["host"], call["port"], call["security_protocol"], call["sasl_mechanism"]) == (
        "127.0.0.1",
        9,
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert (call["sasl_plain_username"], call["sasl_plain_password"]) == ("worker", "hunter2")
    assert isinstance(call["ssl_context"], ssl.SSLContext)


def assert_rejected(error: TransportError, doing: str) -> None:
    text = str(error)
    assert (
        text
        == f"Kafka at 127.0.0.1:9 rejected the credentials ({doing}): [Error 58] SaslAuthenticationFailed: {REFUSAL}"
    )
    assert not error.unreachable and "hunter2" not in text
    assert isinstance(error.__cause__, KafkaConnectionError)  # aiokafka's own error stays the cause


async def test_a_refused_login_is_one_line_and_does_not_hang(refusing: list[dict[str, Any]]) -> None:
    target = Settings.from_env(SASL).kafka_target()
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        async with asyncio.timeout(10):
            await create_topics(target, Topics("p"), 1)
    assert time.monotonic() - started < 5  # one attempt per bootstrap server, no retry
    assert_rejected(caught.value, "creating topics")
    [call] = refusing
    assert_secure(call)


async def test_every_entry_point_connects_with_the_security_settings(refusing: list[dict[str, Any]]) -> None:
    settings = Settings.from_env({**SASL, "KFLOW_TOPIC_PREFIX": "sec"})
    target = settings.kafka_target()
    attempts = [
        (check_topics(target, Topics("sec"), 1), "checking topics"),
        (committed_lag(target, "sec.history", "g"), "reading the offsets of group g on sec.history"),
        (topic_partitions(target, "sec.dlq"), "describing sec.dlq"),
        (StepWorker(settings, Registry.from_module(__name__)).start(), "checking topic sec.schemas"),
        (Client(settings=settings).connect(), "checking topic sec.schemas"),
    ]
    for attempt, doing in attempts:
        with pytest.raises(TransportError) as caught:
            await attempt
        assert_rejected(caught.value, doing)
    assert len(refusing) == len(attempts)
    for call in refusing:
        assert_secure(call)
    reader = CompletionsReader(target, "sec.completions")
    with pytest.raises(TransportError, match=r"rejected the credentials \(scanning sec.completions\[0\]\)"):
        await reader.scan(TopicPartition("sec.completions", 0), None, lambda k, v: None)
    assert_secure(refusing[-1])


def test_the_schema_lookup_thread_connects_with_the_security_settings(refusing: list[dict[str, Any]]) -> None:
    previous = set_schema_source(None)
    try:
        Client(settings=Settings.from_env({**SASL, "KFLOW_TOPIC_PREFIX": "lookup"}))  # watches lookup.schemas
        unknown = b"\xc3\x01" + bytes(range(8)) + b"\x00"
        with pytest.raises(SchemaError, match=r"^unknown fingerprint 0001020304050607"):
            Codec().decode(unknown)  # the lookup runs in a thread of its own, with its own event loop
    finally:
        set_schema_source(previous)
    ours = [call for call in refusing if call["port"] == 9]  # (other tests' clients may have joined other topics)
    assert ours, refusing
    for call in ours:
        assert_secure(call)


async def test_an_untrusted_certificate_fails_the_tls_handshake(pki: Pki) -> None:
    async with tls_server(pki) as port:
        wrong_ca = KafkaTarget(f"127.0.0.1:{port}", "SSL", ca_file=pki.other_ca)
        with pytest.raises(TransportError) as caught:
            async with asyncio.timeout(20):
                await create_topics(wrong_ca, Topics("p"), 1)
        text = str(caught.value)
        assert text.startswith(f"Kafka at 127.0.0.1:{port} failed the TLS handshake (creating topics): ")
        assert "CERTIFICATE_VERIFY_FAILED" in text and "\n" not in text and not caught.value.unreachable
        trusted = KafkaTarget(f"127.0.0.1:{port}", "SSL", ca_file=pki.ca)  # handshake passes; the server hangs up
        with pytest.raises(TransportError) as closed:
            async with asyncio.timeout(20):
                await create_topics(trusted, Topics("p"), 1)
        assert "TLS handshake" not in str(closed.value) and closed.value.unreachable


def kflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, "KFLOW_CASSANDRA": "127.0.0.1:1", **env},
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize("argv", [["topics", "create"], ["runs", "lag"], ["dlq", "list"]])
def test_the_command_reports_a_security_failure_in_one_line_exit_4(argv: list[str], pki: Pki) -> None:
    missing = kflow(*argv, **SASL, KFLOW_KAFKA_CA_FILE="/nowhere/ca.pem")
    assert (missing.returncode, missing.stdout) == (4, ""), missing.stderr
    assert missing.stderr.startswith("kflow: error: Kafka at 127.0.0.1:9: cannot use the CA file (/nowhere/ca.pem): ")
    assert missing.stderr.count("\n") == 1 and "hunter2" not in missing.stderr and "Traceback" not in missing.stderr
    wrong_key = kflow(
        *argv,
        KFLOW_BOOTSTRAP="127.0.0.1:9",
        KFLOW_KAFKA_SECURITY_PROTOCOL="SSL",
        KFLOW_KAFKA_CERT_FILE=str(pki.client_cert),
        KFLOW_KAFKA_KEY_FILE=str(pki.client_key),
        KFLOW_KAFKA_KEY_PASSWORD="hunter2",
    )
    assert wrong_key.returncode == 4 and "cannot use the client certificate and key" in wrong_key.stderr
    assert wrong_key.stderr.count("\n") == 1 and "hunter2" not in wrong_key.stderr
