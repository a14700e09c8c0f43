"""The configuration file (``kflow --config FILE``, ``KFLOW_CONFIG``): its TOML layout (top-level keys, ``[kafka]``,
``[cassandra]``), a variable that is set winning over it, and one-line errors naming the file and the key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams import KafkaTarget, Settings
from streams.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
API = ROOT / "docs" / "api.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kflow.toml"
    path.write_text(text)
    return path


def documented_example() -> str:
    """The example file of docs/api.md, "Configuration"."""
    section = API.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    examples: list[str] = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert len(examples) == 1
    return examples[0]


def test_the_documented_example_file_loads(tmp_path: Path) -> None:
    settings = Settings.from_env({}, config=write(tmp_path, documented_example()))
    assert (settings.topic_prefix, settings.keyspace, settings.partitions, settings.retention_ms) == (
        "orders",
        "orders",
        12,
        14 * 86_400_000,
    )
    assert settings.kafka_target() == KafkaTarget(
        "k1.example.com:9093,k2.example.com:9093",
        "SASL_SSL",
        "SCRAM-SHA-512",
        "orders-processor",
        SecretStr("change-me"),
        Path("/etc/kflow/kafka-ca.pem"),
    )
    target = settings.cassandra_target()
    assert (target.contact_points, target.local_dc, target.username, target.ca_file) == (
        [("c1.example.com", 9042), ("c2.example.com", 9042)],
        "dc1",
        "kflow",
        Path("/etc/kflow/cassandra-ca.pem"),
    )
    assert target.replication_map() == {"class": "NetworkTopologyStrategy", "dc1": 3}
    assert (target.read_consistency, target.write_consistency) == ("LOCAL_QUORUM", "LOCAL_QUORUM")


def test_a_variable_that_is_set_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'topic_prefix = "from-file"\npartitions = 8\nhome = "/from/file"\n')
    env = {"KFLOW_CONFIG": str(path), "KFLOW_TOPIC_PREFIX": "from-env", "KFLOW_HOME": ""}
    settings = Settings.from_env(env)
    assert (settings.topic_prefix, settings.partitions, settings.home) == ("from-env", 8, Path("/from/file"))
    assert Settings.from_env({"KFLOW_CONFIG": str(path)}).topic_prefix == "from-file"


def test_config_wins_over_kflow_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, 'keyspace = "chosen"\n')
    settings = Settings.from_env({"KFLOW_CONFIG": str(tmp_path / "ignored.toml")}, config=chosen)
    assert settings.keyspace == "chosen"
    assert Settings.from_env({"KFLOW_CONFIG": " "}).keyspace == "kflow"  # blank: no file


def test_values_are_typed_in_toml(tmp_path: Path) -> None:
    text = """
retention = -1
replication_factor = 3
dev_port_offset = 900
secret = "pickle-key"
[kafka]
security_protocol = "ssl"
check_hostname = false
[cassandra]
contact_points = "c1:9142"
replication = {class = "NetworkTopologyStrategy", dc1 = 3, dc2 = 2}
consistency = "read=ONE,write=ALL"
check_hostname = true
"""
    settings = Settings.from_env({}, config=write(tmp_path, text))
    assert (settings.retention_ms, settings.replication_factor, settings.dev_port_offset) == (-1, 3, 900)
    assert settings.secret == b"pickle-key"
    assert (settings.kafka_security_protocol, settings.kafka_check_hostname) == ("SSL", False)
    target = settings.cassandra_target()
    assert target.contact_points == [("c1", 9142)] and target.check_hostname
    assert target.replication_map() == {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2}
    assert (target.read_consistency, target.write_consistency) == ("ONE", "ALL")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("partitions = 0\n", r"^KFLOW_PARTITIONS must be at least 1, got 0 \(from partitions in .*kflow\.toml\)$"),
        ("retention = 100\n", r"^KFLOW_RETENTION must be -1 \(unbounded\) or a duration .*\(from retention in "),
        (
            '[kafka]\ncheck_hostname = "maybe"\n',
            r"^KFLOW_KAFKA_CHECK_HOSTNAME must be true or false, got 'maybe' \(from kafka.check_hostname in ",
        ),
        (
            "[cassandra]\ncontact_points = 'a:0'\n",
            r"^KFLOW_CASSANDRA must be host or host:port .*cassandra.contact_points",
        ),
        ("[kafka]\nsecurity_protocl = 'SSL'\n", r"kflow\.toml: unknown setting kafka\.security_protocl \("),
        ("bootstrap = 'k:9092'\n", r"kflow\.toml: unknown setting bootstrap \("),  # it is kafka.bootstrap
        ("[tls]\nca = 'x'\n", r"kflow\.toml: unknown setting tls \("),
        ("[kafka]\npassword = ['hunter2']\n", r"kflow\.toml: kafka\.password must be a string, a number or a boolean"),
        ("partitions = \n", r"^KFLOW_CONFIG: .*kflow\.toml is not valid TOML: .*line 1"),
    ],
)
def test_file_errors_are_one_line_naming_the_file_and_key(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=says) as caught:
        Settings.from_env({"KFLOW_CONFIG": str(path)})
    assert type(caught.value).__name__ == "SettingsError" and "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_missing_file_names_where_it_was_given(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^KFLOW_CONFIG: no such file .*missing\.toml$"):
        Settings.from_env({"KFLOW_CONFIG": str(tmp_path / "missing.toml")})
    with pytest.raises(ValueError, match=r"^--config: no such file .*missing\.toml$"):
        Settings.from_env({}, config=tmp_path / "missing.toml")


def kflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=ROOT,
        timeout=60,
    )


def test_the_command_reads_config_and_never_prints_a_secret(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[kafka]\nbootstrap = "127.0.0.1:1"\nsecurity_protocol = "SASL_PLAINTEXT"\nusername = "u"\n'
        'password = "hunter2-file"\n',
    )
    done = kflow("--config", str(path), "topics", "create", KFLOW_KAFKA_PASSWORD="hunter2-env")
    assert (done.returncode, done.stdout) == (4, ""), done.stderr
    assert done.stderr.startswith("kflow: error: Kafka at 127.0.0.1:1 ") and done.stderr.count("\n") == 1
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr
    missing = kflow("--config", str(tmp_path / "nope.toml"), "topics", "create")
    assert (missing.returncode, missing.stderr) == (2, f"kflow: error: --config: no such file {tmp_path}/nope.toml\n")
    bad = kflow("topics", "create", KFLOW_CONFIG=str(path), KFLOW_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                KFLOW_KAFKA_USERNAME="")  # fmt: skip
    assert bad.returncode == 2 and "needs KFLOW_KAFKA_USERNAME" in bad.stderr and "hunter2" not in bad.stderr


def test_help_shows_the_config_option() -> None:
    text = build_parser().format_help()
    assert "--config FILE" in text and "  KFLOW_CONFIG " in text
