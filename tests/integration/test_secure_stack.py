"""``kflow dev up --secure``: a private secure stack (own home, port offset 1200), started once for this module.

Kafka on SASL_SSL with SCRAM users and the ACLs of each role, Cassandra with passwords and TLS. The workflow runs
end to end with each process as its own principal; the wrong principal, password or CA is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAuthorizationFailedError
from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import RoundRobinPolicy

from streams import DevStack, Settings
from streams.dev import StackSecrets, resolved

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(os.environ.get("KFLOW_BOOTSTRAP")), reason="servers are external"),
]

OFFSET = 1200  # test_dev_cluster 3000, test_chaos 2000, bench.chaos 1000
BOOTSTRAP, CASSANDRA_PORT = "127.0.0.1:10292", 10242
HERE = Path(__file__).parent
TAG = uuid.uuid4().hex[:8]
PREFIX = f"kflowsec-{TAG}"  # the ACLs kflow dev up --secure applies are for KFLOW_TOPIC_PREFIX
ROLES = ("admin", "client", "worker", "processor", "ops", "cassandra")


@dataclasses.dataclass
class Secure:
    home: Path
    outputs: list[str]  # everything the stack's commands and kflow's processes printed

    @property
    def secrets(self) -> StackSecrets:
        return StackSecrets(self.home / "run" / "secure")

    def env(self, role: str = "admin", **extra: str) -> dict[str, str]:
        """The environment of a kflow process running as ``role`` on this stack (secrets resolved)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
        return {
            **base,
            **resolved(DevStack(self.home).environment(role)),
            "KFLOW_HOME": str(self.home),
            "KFLOW_TOPIC_PREFIX": PREFIX,
            "KFLOW_KEYSPACE": f"kflowsec_{TAG}",
            "KFLOW_PARTITIONS": "2",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            **extra,
        }

    def kflow(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command_env = env or {**self.env(), "KFLOW_DEV_PORT_OFFSET": str(OFFSET)}
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=command_env, timeout=300
        )
        self.outputs.append(done.stdout + done.stderr)
        return done


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    home = tmp_path_factory.mktemp("secure") / "kflow"
    shared_jars = Settings.from_env().home / "jars"  # fetched once per machine, not once per test
    shared_jars.mkdir(parents=True, exist_ok=True)
    home.mkdir()
    (home / "jars").symlink_to(shared_jars)
    stack = Secure(home, [])
    try:
        up = stack.kflow("dev", "up", "--secure")
        assert up.returncode == 0, up.stdout + up.stderr
        yield stack
    finally:
        down = stack.kflow("dev", "down", "--wipe")
    assert down.returncode == 0, down.stdout + down.stderr


def test_up_prints_the_variables_and_keeps_secrets_in_private_files(secure: Secure) -> None:
    up, env = secure.outputs[0], secure.kflow("dev", "env", "--role", "client")
    assert env.returncode == 0 and f"export KFLOW_BOOTSTRAP={BOOTSTRAP}\n" in up
    assert "export KFLOW_KAFKA_USERNAME=admin" in up and "export KFLOW_KAFKA_USERNAME=client" in env.stdout
    assert f"ACLs of the client, worker, processor and ops roles on {PREFIX}.* applied" in up
    status = secure.kflow("dev", "status")
    assert status.returncode == 0 and status.stdout.count("running") == 2
    run = secure.home / "run"
    assert oct((run / "kafka" / "server.properties").stat().st_mode & 0o777) == "0o600"
    assert {oct(secure.secrets.password_file(role).stat().st_mode & 0o777) for role in ROLES} == {"0o600"}


async def _produce(role: str, secure: Secure, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **secure.secrets.kafka(role).options())
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"x", key=b"run-1"), timeout=30)
    finally:
        await producer.stop()


def test_a_client_writes_the_inbox_and_nothing_the_processor_owns(secure: Secure) -> None:
    other = f"{PREFIX}-acl"
    DevStack(secure.home).grant_roles(other, log=secure.outputs.append)  # ACLs for one more prefix: idempotent

    async def check() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, **secure.secrets.kafka("admin").options())
        await admin.start()
        try:
            names = ["inbox", "tasks", "state", "history", "completions"]
            await admin.create_topics([NewTopic(f"{other}.{name}", 1, 1) for name in names])
        finally:
            await admin.close()
        await _produce("client", secure, f"{other}.inbox")
        for name in ("tasks", "state", "history", "completions"):
            with pytest.raises(TopicAuthorizationFailedError):
                await _produce("client", secure, f"{other}.{name}")
        await _produce("worker", secure, f"{other}.inbox")
        with pytest.raises(TopicAuthorizationFailedError):
            await _produce("worker", secure, f"{other}.history")

    asyncio.run(check())


def _cassandra(secure: Secure, username: str, password: str, *, tls: bool = True) -> str:
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=10)
    cluster = Cluster(
        ["127.0.0.1"],
        port=CASSANDRA_PORT,
        protocol_version=5,
        connect_timeout=5,
        auth_provider=PlainTextAuthProvider(username=username, password=password),
        ssl_context=secure.secrets.cassandra().ssl_context() if tls else None,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    try:
        return str(cluster.connect().execute("SELECT release_version FROM system.local").one().release_version)
    finally:
        cluster.shutdown()


def test_cassandra_takes_the_kflow_role_over_tls_only(secure: Secure) -> None:
    assert _cassandra(secure, "kflow", secure.secrets.password("cassandra")).startswith("5.0")
    for username, password in (("kflow", "wrong-password"), ("cassandra", "cassandra")):  # the default is disabled
        with pytest.raises(NoHostAvailable) as refused:
            _cassandra(secure, username, password)
        assert any(isinstance(e, AuthenticationFailed) for e in refused.value.errors.values()), refused.value
    with pytest.raises(NoHostAvailable):
        _cassandra(secure, "kflow", secure.secrets.password("cassandra"), tls=False)


def test_a_workflow_runs_end_to_end_with_each_process_as_its_role(secure: Secure, tmp_path: Path) -> None:
    created = secure.kflow("topics", "create", env=secure.env("admin"))
    assert created.returncode == 0, created.stdout + created.stderr
    procs: list[tuple[Path, subprocess.Popen[bytes]]] = []
    try:
        for role in ("processor", "worker"):  # each as its own principal
            log = tmp_path / f"{role}.log"
            with open(log, "ab") as out:
                argv = [sys.executable, "-m", "streams.cli", role, "-A", "e2e_workflows"]
                procs.append((log, subprocess.Popen(argv, env=secure.env(role), stdout=out, stderr=subprocess.STDOUT)))
        run = ["run", "e2e_workflows:sum_three", "1", "2", "3", "--timeout", "90", "--history", "--json"]
        done = secure.kflow(*run, env=secure.env("client"))
        assert done.returncode == 0, done.stdout + done.stderr + "".join(log.read_text() for log, _ in procs)
        outcome = json.loads(done.stdout)
        assert outcome["result"] == 6 and outcome["history"][-1]["type"] == "WorkflowCompleted"
        for ops in (["topics", "check"], ["runs", "lag"]):  # the ops role reads everything, configs included
            checked = secure.kflow(*ops, env=secure.env("ops"))
            assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        for _, proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        secure.outputs += [log.read_text() for log, _ in procs]


@pytest.mark.parametrize(
    "login",
    [
        "no-credentials",
        "wrong-password",
        "no-ca",
    ],
)
def test_the_cli_refuses_a_wrong_login_in_one_line(secure: Secure, login: str) -> None:
    env = secure.env("client")
    if login == "no-credentials":  # a plain client: no KFLOW_KAFKA_* at all
        env = {k: v for k, v in env.items() if not k.startswith("KFLOW_KAFKA_")}
    elif login == "wrong-password":
        env["KFLOW_KAFKA_PASSWORD"] = "not-the-password"
    else:  # the system's authorities do not know the stack's CA
        del env["KFLOW_KAFKA_CA_FILE"]
    done = secure.kflow("topics", "check", env=env)
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.startswith("kflow: error: Kafka at 127.0.0.1:10292") and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr and "not-the-password" not in done.stderr


def test_no_secret_in_any_output_or_log(secure: Secure) -> None:
    """Last in the module: every command and process above has written what it writes."""
    status = secure.kflow("dev", "status", "--json")
    assert status.returncode == 0
    texts = [*secure.outputs, *(p.read_text(errors="replace") for p in (secure.home / "run").glob("*/logs/*"))]
    assert len(texts) > 5
    for role in ROLES:
        password = secure.secrets.password(role)
        assert not [text[:200] for text in texts if password in text], role
