"""``kflow dev up --secure`` without starting servers: certificates, rendered configuration, secrets, ACLs."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

import streams.dev
from streams import DevStack, DevStackError
from streams.dev import (
    ROLE_GRANTS,
    SecureCassandra,
    SecureKafka,
    StackConfig,
    StackSecrets,
    acl_table,
    cassandra_yaml,
    ensure_certificates,
    export_lines,
    kafka_properties,
    resolved,
    role_acls,
    scram_argument,
)

SERVERS = Path(streams.dev.__file__).parent / "servers"
ROOT = Path(__file__).resolve().parents[3]
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def props(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, _, value in pairs}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- certificates -------------------------------------------------------------------------------------------


def test_the_ca_signs_a_server_certificate_for_loopback(tmp_path: Path) -> None:
    files = ensure_certificates(tmp_path / "secure", now=NOW)
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    chain = x509.load_pem_x509_certificates(files.server.read_bytes())
    server = chain[0]
    assert [c.subject for c in chain] == [server.subject, ca.subject]  # the chain ends with the CA
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert server.subject.rfc4514_string() == "CN=kflow-dev-server"  # the nodes' principal on the controller port
    assert server.not_valid_before_utc <= NOW < server.not_valid_after_utc
    assert server.not_valid_after_utc - NOW == dt.timedelta(days=825)
    assert ca.not_valid_after_utc - NOW == dt.timedelta(days=3650)
    assert {p.name: mode(p) for p in (files.ca_key, files.server_key, files.keystore)} == {
        "ca-key.pem": 0o600,
        "server-key.pem": 0o600,
        "server-keystore.pem": 0o600,
    }
    keystore = files.keystore.read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----") and keystore.count("BEGIN CERTIFICATE") == 2


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_client_trusting_the_ca_completes_a_tls_handshake(tmp_path: Path, host: str) -> None:
    files = ensure_certificates(tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(files.keystore)  # key and chain in one PEM file, as the servers read it
    client_side = ssl.create_default_context(cafile=str(files.ca))
    assert handshake(server_side, client_side, host) == "kflow-dev-server"
    stranger = ssl.create_default_context(cafile=str(ensure_certificates(tmp_path / "other").ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_side, stranger, host)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(server_side, client_side, "127.0.0.2")


def handshake(server_side: ssl.SSLContext, client_side: ssl.SSLContext, host: str) -> str:
    """An in-memory TLS handshake; the common name of the server certificate the client accepted."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_side.wrap_bio(c_in, c_out, server_hostname=host)
    server = server_side.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    cert = client.getpeercert()
    assert cert is not None
    return str(dict(rdn[0] for rdn in cert["subject"])["commonName"])


def test_certificates_are_kept_then_the_server_one_renewed_near_its_end(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, now=NOW)
    ca, server = first.ca.read_bytes(), first.server.read_bytes()
    assert ensure_certificates(tmp_path, now=NOW + dt.timedelta(days=700)).server.read_bytes() == server
    renewed = ensure_certificates(tmp_path, now=NOW + dt.timedelta(days=800))  # within 30 days of its end
    assert renewed.ca.read_bytes() == ca and renewed.server.read_bytes() != server
    cert = x509.load_pem_x509_certificate(renewed.server.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))


# --- secrets ------------------------------------------------------------------------------------------------


def test_passwords_are_generated_once_into_private_files(tmp_path: Path) -> None:
    secrets = StackSecrets(tmp_path / "secure")
    secrets.ensure()
    files = [secrets.password_file(role) for role in ("admin", "client", "worker", "processor", "ops", "cassandra")]
    assert mode(tmp_path / "secure") == 0o700 and {mode(f) for f in files} == {0o600}
    passwords = [secrets.password(role) for role in ("admin", "client", "worker", "processor", "ops", "cassandra")]
    assert len(set(passwords)) == 6 and all(len(p) >= 32 for p in passwords)
    secrets.ensure()
    assert [secrets.password(r) for r in ("admin", "client", "worker", "processor", "ops", "cassandra")] == passwords
    login = secrets.kafka("client")
    assert login.options()["sasl_mechanism"] == "SCRAM-SHA-512" and login.options()["security_protocol"] == "SASL_SSL"
    assert login.password not in repr(login) and secrets.cassandra().password not in repr(secrets.cassandra())
    with pytest.raises(ValueError, match="no Kafka role 'root'"):
        secrets.password_file("root")


def hi(password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 5802's Hi() with HMAC-SHA-512, written out (U1 = HMAC(p, salt + INT(1)), Ui = HMAC(p, Ui-1), XOR all)."""
    u = hmac.new(password, salt + b"\x00\x00\x00\x01", hashlib.sha512).digest()
    out = bytearray(u)
    for _ in range(iterations - 1):
        u = hmac.new(password, u, hashlib.sha512).digest()
        out = bytearray(a ^ b for a, b in zip(out, u, strict=True))
    return bytes(out)


def test_scram_credentials_are_passed_salted_never_as_the_password() -> None:
    argument = scram_argument("client", "s3cret-pw", b"0123456789abcdef", iterations=4096)
    assert "s3cret-pw" not in argument
    mechanism, _, body = argument.partition("=")
    assert mechanism == "SCRAM-SHA-512" and body.startswith("[") and body.endswith("]")
    fields = dict(part.split("=", 1) for part in body[1:-1].split(","))
    assert fields["name"] == "client" and fields["iterations"] == "4096"
    assert base64.b64decode(fields["salt"]) == b"0123456789abcdef"
    assert base64.b64decode(fields["saltedpassword"]) == hi(b"s3cret-pw", b"0123456789abcdef", 4096)


# --- rendered configuration ---------------------------------------------------------------------------------


def test_a_secure_node_serves_sasl_ssl_and_authorizes(tmp_path: Path) -> None:
    template = (SERVERS / "kafka" / "server.properties").read_text()
    secure = SecureKafka(tmp_path / "server-keystore.pem", tmp_path / "ca.pem", "the-admin-password")
    config = StackConfig(brokers=3, port_offset=1200, secure=True)
    node = props(kafka_properties(template, config, 2, tmp_path / "data", secure))
    assert (
        node["listeners"] == node["advertised.listeners"] == "SASL_SSL://127.0.0.1:10294,CONTROLLER://127.0.0.1:10295"
    )
    assert node["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert node["inter.broker.listener.name"] == "SASL_SSL" and node["controller.listener.names"] == "CONTROLLER"
    assert node["sasl.enabled.mechanisms"] == node["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert node["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="admin" password="the-admin-password";'
    )
    assert (node["ssl.keystore.type"], node["ssl.keystore.location"]) == ("PEM", str(tmp_path / "server-keystore.pem"))
    assert (node["ssl.truststore.type"], node["ssl.truststore.location"]) == ("PEM", str(tmp_path / "ca.pem"))
    assert node["listener.name.controller.ssl.client.auth"] == "required"
    assert node["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert node["super.users"] == "User:admin;User:CN=kflow-dev-server"
    assert node["allow.everyone.if.no.acl.found"] == "false"
    assert "PLAINTEXT" not in node["listeners"] + node["listener.security.protocol.map"]
    assert "the-admin-password" not in repr(secure)
    plain = props(kafka_properties(template, config, 2, tmp_path / "data"))
    assert not any(key.startswith(("sasl.", "ssl.", "authorizer", "super.")) for key in plain)


def test_a_secure_cassandra_asks_for_passwords_over_tls(tmp_path: Path) -> None:
    template = (SERVERS / "cassandra" / "cassandra.yaml").read_text()
    secure = SecureCassandra(tmp_path / "server-keystore.pem", tmp_path / "ca.pem")
    text = cassandra_yaml(template, StackConfig(port_offset=1200, secure=True), tmp_path, secure)
    for key in ("authenticator", "authorizer", "role_manager", "client_encryption_options"):
        assert sum(line.startswith(f"{key}:") for line in text.splitlines()) == 1, key  # one key, no silent override
    loaded = yaml.safe_load(text)
    assert (loaded["authenticator"], loaded["authorizer"]) == ("PasswordAuthenticator", "CassandraAuthorizer")
    assert loaded["role_manager"] == "CassandraRoleManager" and loaded["native_transport_port"] == 10242
    assert loaded["client_encryption_options"] == {
        "enabled": True,
        "optional": False,
        "ssl_context_factory": {"class_name": "org.apache.cassandra.security.PEMBasedSslContextFactory"},
        "keystore": str(tmp_path / "server-keystore.pem"),
        "truststore": str(tmp_path / "ca.pem"),
        "require_client_auth": False,
    }
    assert "authenticator" not in yaml.safe_load(cassandra_yaml(template, StackConfig(), tmp_path))


def test_secure_is_remembered_and_a_switch_with_data_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DevStack, "_start", lambda self, names, timeout, log: None)
    granted: list[str] = []
    monkeypatch.setattr(DevStack, "grant_roles", lambda self, prefix, log: granted.append(prefix))
    DevStack(tmp_path, port_offset=1200).up(secure=True, acl_prefix="shop")
    stack = DevStack(tmp_path)
    assert stack.config == StackConfig(port_offset=1200, secure=True) and granted == ["shop"]
    assert stack.secrets is not None and stack.secrets.folder == tmp_path / "run" / "secure"
    stack.up()  # a bare `kflow dev up` keeps it secure
    assert DevStack(tmp_path).config.secure and granted == ["shop", "kflow"]
    (tmp_path / "run" / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "run" / "kafka" / "data" / "meta.properties").write_text("cluster.id=abc\n")
    with pytest.raises(DevStackError) as err:
        DevStack(tmp_path).up(secure=False)
    assert "kflow dev down --wipe" in str(err.value) and "\n" not in str(err.value)
    assert DevStack(tmp_path).config.secure  # the refusal changed nothing
    (tmp_path / "run" / "stack.json").write_text('{"brokers": 1, "port_offset": 0, "cassandra": true}')
    assert DevStack(tmp_path).config == StackConfig()  # a stack.json from before --secure: plain
    monkeypatch.undo()
    with pytest.raises(DevStackError, match="not secure"):
        DevStack(tmp_path).grant_roles("kflow")


# --- the environment of a shell -----------------------------------------------------------------------------

VARIABLES = [
    "KFLOW_BOOTSTRAP",
    "KFLOW_CASSANDRA",
    "KFLOW_KAFKA_SECURITY_PROTOCOL",
    "KFLOW_KAFKA_SASL_MECHANISM",
    "KFLOW_KAFKA_USERNAME",
    "KFLOW_KAFKA_PASSWORD",
    "KFLOW_KAFKA_CA_FILE",
    "KFLOW_CASSANDRA_USERNAME",
    "KFLOW_CASSANDRA_PASSWORD",
    "KFLOW_CASSANDRA_CA_FILE",
]


def kflow(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KFLOW_HOME": str(home)}
    env.pop("KFLOW_DEV_PORT_OFFSET", None)
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=env)


def test_dev_env_of_a_plain_stack_is_the_addresses(tmp_path: Path) -> None:
    done = kflow(tmp_path, "dev", "env")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "export KFLOW_BOOTSTRAP=127.0.0.1:9092\nexport KFLOW_CASSANDRA=127.0.0.1:9042\n"


def test_dev_env_of_a_secure_stack_exports_files_not_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DevStack, "_start", lambda self, names, timeout, log: self.secrets.ensure())
    monkeypatch.setattr(DevStack, "grant_roles", lambda self, prefix, log: None)
    DevStack(tmp_path, port_offset=1200).up(secure=True)
    secrets = StackSecrets(tmp_path / "run" / "secure")
    done = kflow(tmp_path, "dev", "env", "--role", "worker")
    assert done.returncode == 0, done.stderr
    assert [line.split("=")[0].removeprefix("export ") for line in done.stdout.splitlines()] == VARIABLES
    for role in ("admin", "client", "worker", "processor", "ops", "cassandra"):
        assert secrets.password(role) not in done.stdout
    shell = subprocess.run(
        ["bash", "-c", 'eval "$1"; env', "-", done.stdout], capture_output=True, text=True, check=True
    )
    seen = dict(line.split("=", 1) for line in shell.stdout.splitlines() if line.startswith("KFLOW_"))
    assert seen["KFLOW_KAFKA_USERNAME"] == "worker" and seen["KFLOW_KAFKA_PASSWORD"] == secrets.password("worker")
    assert seen["KFLOW_CASSANDRA_PASSWORD"] == secrets.password("cassandra")
    assert seen["KFLOW_BOOTSTRAP"] == "127.0.0.1:10292" and seen["KFLOW_CASSANDRA"] == "127.0.0.1:10242"
    assert seen["KFLOW_KAFKA_CA_FILE"] == seen["KFLOW_CASSANDRA_CA_FILE"] == str(secrets.certificates.ca)
    assert resolved(DevStack(tmp_path).environment("worker")) == {k: seen[k] for k in VARIABLES}
    assert export_lines({"A": "x y"}) == ["export A='x y'"]


# --- ACLs ---------------------------------------------------------------------------------------------------


def test_the_acl_table_in_the_docs_is_the_one_applied() -> None:
    assert acl_table() in (ROOT / "docs" / "security.md").read_text()


def test_roles_get_what_their_processes_do_and_no_more() -> None:
    acls = role_acls("shop")

    def allowed(role: str, resource: str, name: str, operation: str) -> bool:
        granting = {"Describe", "Read", "Write"} if operation == "Describe" else {operation}  # Kafka's implications
        return any(
            a.principal == role
            and a.resource == resource
            and a.operation in granting
            and (a.name == name if a.pattern == "literal" else name.startswith(a.name))
            for a in acls
        )

    for role in ROLE_GRANTS:
        assert allowed(role, "topic", "shop.schemas", "Read") and allowed(role, "topic", "shop.schemas", "Write")
        assert allowed(role, "topic", "shop.history", "Describe")
    assert allowed("client", "topic", "shop.inbox", "Write") and allowed("client", "topic", "shop.completions", "Read")
    for topic in ("tasks", "state", "history", "timers", "completions", "dlq"):
        assert not allowed("client", "topic", f"shop.{topic}", "Write"), topic
    assert allowed("worker", "topic", "shop.tasks", "Read") and allowed("worker", "group", "shop.workers", "Read")
    assert not allowed("worker", "topic", "shop.history", "Write")
    assert allowed("processor", "transactional-id", "shop.orchestrator.3", "Write")
    assert not allowed("processor", "transactional-id", "shop.dlq-redrive", "Write")
    for group in ("orchestrator", "delay", "materializer"):
        assert allowed("processor", "group", f"shop.{group}", "Read")
    assert allowed("ops", "topic", "shop.timer-index", "Read") and not allowed("ops", "topic", "shop.tasks", "Write")
    assert allowed("ops", "transactional-id", "shop.dlq-redrive", "Write")
    assert not any(a.name.startswith("kflow") for a in acls)  # everything under the prefix asked for


def test_scram_users_reach_the_format_in_a_private_argument_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DevStack, "_start", lambda self, names, timeout, log: self.secrets.ensure())
    monkeypatch.setattr(DevStack, "grant_roles", lambda self, prefix, log: None)
    calls, copies = tmp_path / "calls.txt", tmp_path / "argfiles.txt"
    java = tmp_path / "java"  # records its arguments and the argument files it is given, then exits
    java.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\nfor a in "$@"; do case "$a" in @*) cat "${{a#@}}" >> {copies};; esac; done\n'
    )
    java.chmod(0o755)
    stack = DevStack(tmp_path / "home", port_offset=1200)
    stack.up(secure=True)
    stack._start_kafka(str(java), tmp_path / "libs", [1])
    pid = stack.daemon("kafka-1").pid_file.read_text().strip()
    os.waitpid(int(pid), 0)  # the fake broker has exited: reap it
    fmt, broker = calls.read_text().splitlines()
    argfile = tmp_path / "home" / "run" / "kafka" / "format.args"
    assert fmt.endswith(f"@{argfile}") and "StorageTool" not in fmt and not argfile.exists()  # deleted after use
    assert broker.endswith("kafka.Kafka " + str(tmp_path / "home" / "run" / "kafka" / "server.properties"))
    arguments = [line.strip('"') for line in copies.read_text().splitlines()]
    assert arguments[:2] == ["kafka.tools.StorageTool", "format"]
    users = [arguments[i + 1] for i, a in enumerate(arguments) if a == "--add-scram"]
    names = ["admin", "client", "worker", "processor", "ops"]
    assert [user.split(",")[0] for user in users] == [f"SCRAM-SHA-512=[name={name}" for name in names]
    secrets = StackSecrets(tmp_path / "home" / "run" / "secure")
    for role in ("admin", *ROLE_GRANTS):
        assert secrets.password(role) not in fmt + broker + copies.read_text()
    properties = tmp_path / "home" / "run" / "kafka" / "server.properties"
    assert mode(properties) == 0o600 and secrets.password("admin") in properties.read_text()  # inter-broker login
