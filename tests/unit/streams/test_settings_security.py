"""The security settings: ``KFLOW_KAFKA_*`` → ``KafkaTarget`` → aiokafka keyword arguments and TLS context;
``KFLOW_CASSANDRA_USERNAME`` / ``_PASSWORD`` / ``_CA_FILE`` … → ``CassandraTarget``; every combination that cannot
work is one ``SettingsError`` naming the variables; no secret in any ``repr``, ``str`` or dump."""

from __future__ import annotations

import dataclasses
import json
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr
from tls_samples import KEY_PASSWORD, Pki, make_pki

from streams import KafkaTarget, Settings, TransportError
from streams.kafka import admin, consumer, producer

SASL = {
    "KFLOW_BOOTSTRAP": "k1:9093,k2:9093",
    "KFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KFLOW_KAFKA_USERNAME": "processor",
    "KFLOW_KAFKA_PASSWORD": "hunter2-kafka",
}
SECRETS = ("hunter2-kafka", "hunter2-cassandra", KEY_PASSWORD, "pickle-key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def secure_env(pki: Pki) -> dict[str, str]:
    return {
        **SASL,
        "KFLOW_KAFKA_CA_FILE": str(pki.ca),
        "KFLOW_KAFKA_CERT_FILE": str(pki.client_cert),
        "KFLOW_KAFKA_KEY_FILE": str(pki.client_key),
        "KFLOW_KAFKA_KEY_PASSWORD": KEY_PASSWORD,
        "KFLOW_CASSANDRA_USERNAME": "kflow",
        "KFLOW_CASSANDRA_PASSWORD": "hunter2-cassandra",
        "KFLOW_CASSANDRA_CA_FILE": str(pki.ca),
        "KFLOW_SECRET": "pickle-key",
    }


def test_the_defaults_are_plaintext_without_login() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_target() == KafkaTarget("127.0.0.1:9092")
    assert settings.kafka_target().client_options() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    target = settings.cassandra_target()
    assert (target.username, target.password, target.tls, target.auth_provider(), target.ssl_context()) == (
        None,
        None,
        False,
        None,
        None,
    )


def test_sasl_ssl_maps_to_the_aiokafka_arguments(pki: Pki) -> None:
    settings = Settings.from_env({**SASL, "KFLOW_KAFKA_CA_FILE": str(pki.ca)})
    target = settings.kafka_target()
    assert (target.bootstrap, target.security_protocol, target.sasl_mechanism, target.username) == (
        "k1:9093,k2:9093",
        "SASL_SSL",
        "SCRAM-SHA-512",
        "processor",
    )
    options = target.client_options()
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "k1:9093,k2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "processor",
        "sasl_plain_password": "hunter2-kafka",
    }
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "kflow test CA"),),)]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KFLOW_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KFLOW_KAFKA_USERNAME": "u", "KFLOW_KAFKA_PASSWORD": "p"},
         {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u"}),
        ({"KFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KFLOW_KAFKA_SASL_MECHANISM": "scram-sha-256",
          "KFLOW_KAFKA_USERNAME": "u", "KFLOW_KAFKA_PASSWORD": "p"},
         {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "u"}),
        ({"KFLOW_KAFKA_SECURITY_PROTOCOL": " ssl "}, {"security_protocol": "SSL"}),
        ({"KFLOW_KAFKA_SECURITY_PROTOCOL": ""}, {"security_protocol": "PLAINTEXT"}),
    ],
)  # fmt: skip
def test_protocols_and_mechanisms(env: dict[str, str], expected: dict[str, str]) -> None:
    options = Settings.from_env(env).kafka_target().client_options()
    assert {key: options[key] for key in expected} == expected
    assert ("ssl_context" in options) == (expected["security_protocol"] in ("SSL", "SASL_SSL"))


def test_mutual_tls_loads_the_client_certificate_with_its_key_password(pki: Pki) -> None:
    target = Settings.from_env(secure_env(pki)).kafka_target()
    assert (target.cert_file, target.key_file, target.key_password) == (
        pki.client_cert,
        pki.client_key,
        SecretStr(KEY_PASSWORD),
    )
    assert isinstance(target.ssl_context(), ssl.SSLContext)  # the encrypted key opened with the password
    wrong = dataclasses.replace(target, key_password=SecretStr("not it"))
    with pytest.raises(TransportError, match=r"cannot use the client certificate and key .*client\.pem") as caught:
        wrong.ssl_context()
    assert "not it" not in str(caught.value) and "\n" not in str(caught.value)


def test_hostname_checks_can_be_turned_off_but_the_chain_is_still_checked(pki: Pki) -> None:
    env = {"KFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "KFLOW_KAFKA_CA_FILE": str(pki.ca)}
    for raw, checked in [("false", False), ("0", False), ("no", False), ("TRUE", True), ("", True)]:
        context = Settings.from_env({**env, "KFLOW_KAFKA_CHECK_HOSTNAME": raw}).kafka_target().ssl_context()
        assert context is not None and (context.check_hostname, context.verify_mode) == (checked, ssl.CERT_REQUIRED)
    with pytest.raises(ValueError, match=r"^KFLOW_KAFKA_CHECK_HOSTNAME must be true or false, got 'maybe'$"):
        Settings.from_env({**env, "KFLOW_KAFKA_CHECK_HOSTNAME": "maybe"})
    cassandra = Settings.from_env({"KFLOW_CASSANDRA_CA_FILE": str(pki.ca), "KFLOW_CASSANDRA_CHECK_HOSTNAME": "off"})
    context = cassandra.cassandra_target().ssl_context()
    assert context is not None and (context.check_hostname, context.verify_mode) == (False, ssl.CERT_REQUIRED)


def test_every_factory_builds_its_client_with_the_target(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    made: dict[str, dict[str, object]] = {}

    def recording(kind: str) -> object:
        return lambda *topics, **options: made.setdefault(kind, options)

    monkeypatch.setattr("streams.kafka.AIOKafkaProducer", recording("producer"))
    monkeypatch.setattr("streams.kafka.AIOKafkaConsumer", recording("consumer"))
    monkeypatch.setattr("streams.kafka.AIOKafkaAdminClient", recording("admin"))
    target = Settings.from_env({**SASL, "KFLOW_KAFKA_CA_FILE": str(pki.ca)}).kafka_target()
    producer(target, transactional_id="t")
    consumer(target, "topic", group_id="g")
    admin(target)
    for kind in ("producer", "consumer", "admin"):
        options = made[kind]
        assert (options["bootstrap_servers"], options["security_protocol"], options["sasl_plain_password"]) == (
            "k1:9093,k2:9093",
            "SASL_SSL",
            "hunter2-kafka",
        ), kind
        assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert made["producer"]["transactional_id"] == "t" and made["consumer"]["isolation_level"] == "read_committed"
    assert made["admin"]["request_timeout_ms"] == 15_000
    consumer("plain:9092")  # a string is bootstrap servers over PLAINTEXT (the public functions take one too)
    assert KafkaTarget.of("plain:9092") == KafkaTarget("plain:9092") and KafkaTarget.of(target) is target


def test_a_missing_ca_file_is_one_line_naming_it_when_a_client_is_made() -> None:
    target = Settings.from_env({"KFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "KFLOW_KAFKA_CA_FILE": "/nowhere/ca.pem"})
    with pytest.raises(TransportError) as caught:
        producer(target.kafka_target())
    assert str(caught.value).startswith("Kafka at 127.0.0.1:9092: cannot use the CA file (/nowhere/ca.pem): ")
    assert "\n" not in str(caught.value) and caught.value.bootstrap == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"KFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}, r"KFLOW_KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL, "),
        ({**SASL, "KFLOW_KAFKA_SASL_MECHANISM": "GSSAPI"}, r"KFLOW_KAFKA_SASL_MECHANISM must be one of PLAIN, "),
        ({"KFLOW_KAFKA_USERNAME": "u"}, r"KFLOW_KAFKA_USERNAME is set, but KFLOW_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        (
            {"KFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "KFLOW_KAFKA_PASSWORD": "hunter2-kafka"},
            r"KFLOW_KAFKA_PASSWORD is set, but KFLOW_KAFKA_SECURITY_PROTOCOL is SSL \(SASL_\* protocols use it\)",
        ),
        (
            {"KFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KFLOW_KAFKA_CA_FILE": "/ca.pem"},
            r"KFLOW_KAFKA_CA_FILE is set, but KFLOW_KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT",
        ),
        (
            {"KFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            r"KFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KFLOW_KAFKA_USERNAME and KFLOW_KAFKA_PASSWORD$",
        ),
        (
            {**SASL, "KFLOW_KAFKA_USERNAME": ""},
            r"KFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KFLOW_KAFKA_USERNAME$",
        ),
        (
            {"KFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "KFLOW_KAFKA_KEY_FILE": "/k.pem"},
            r"KFLOW_KAFKA_KEY_FILE is set without KFLOW_KAFKA_CERT_FILE",
        ),
        ({"KFLOW_CASSANDRA_USERNAME": "kflow"}, r"KFLOW_CASSANDRA_USERNAME and KFLOW_CASSANDRA_PASSWORD go together"),
        ({"KFLOW_CASSANDRA_PASSWORD": "hunter2-cassandra"}, r"USERNAME and KFLOW_CASSANDRA_PASSWORD go together"),
        ({"KFLOW_CASSANDRA_KEY_FILE": "/k.pem"}, r"KFLOW_CASSANDRA_KEY_FILE is set without KFLOW_CASSANDRA_CERT_FILE"),
        ({**SASL, "KFLOW_CASSANDRA_CONSISTENCY": "ANY"}, r"^KFLOW_CASSANDRA_CONSISTENCY: unknown consistency level"),
    ],
)
def test_combinations_that_cannot_work_are_one_line_settings_errors(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        Settings.from_env(env)
    assert type(caught.value).__name__ == "SettingsError" and "\n" not in str(caught.value)
    assert not any(secret in str(caught.value) for secret in SECRETS)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no traceback of pydantic's error
    assert not any(secret in str(caught.value.__context__) for secret in SECRETS)  # nor a value in it


def test_a_target_made_in_code_is_checked_too() -> None:
    with pytest.raises(ValueError, match=r"^security_protocol=SASL_SSL needs username and password$"):
        KafkaTarget("b:1", "SASL_SSL")
    with pytest.raises(ValueError, match=r"^ca_file is set, but security_protocol is PLAINTEXT"):
        KafkaTarget("b:1", ca_file=Path("/ca.pem"))


def test_cassandra_login_and_tls(pki: Pki) -> None:
    target = Settings.from_env(secure_env(pki)).cassandra_target()
    provider = target.auth_provider()
    assert provider is not None and (provider.username, provider.password) == ("kflow", "hunter2-cassandra")
    context = target.ssl_context()
    assert target.tls and context is not None and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "kflow test CA"),),)]
    with_cert = Settings.from_env(
        {"KFLOW_CASSANDRA_CERT_FILE": str(pki.server_cert), "KFLOW_CASSANDRA_KEY_FILE": str(pki.server_key)}
    ).cassandra_target()
    assert with_cert.tls and with_cert.ssl_context() is not None  # a client certificate alone turns TLS on


def test_no_secret_in_repr_str_or_dumps(pki: Pki) -> None:
    settings = Settings.from_env(secure_env(pki))
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        repr(settings.kafka_target()),
        str(settings.kafka_target()),
        repr(settings.cassandra_target()),
        repr(settings.replace(topic_prefix="other")),
    ]
    for text in shown:
        assert not any(secret in text for secret in SECRETS), text
    assert "kafka_password=SecretStr('**********')" in repr(settings)
    assert settings.secret == b"pickle-key" and settings.kafka_password == SecretStr("hunter2-kafka")
    assert settings.replace(topic_prefix="other").kafka_password == SecretStr("hunter2-kafka")
