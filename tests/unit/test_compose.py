"""docker-compose.yml is a valid Compose file and stays in step with `kflow dev up`.

`kflow dev up` configures its servers from streams/dev/servers/kafka/server.properties and
streams/dev/servers/cassandra/cassandra.yaml; docker-compose.yml must give Docker users the same stack.
These tests read both sides, so changing one without the other fails here.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import tomllib
import xml.etree.ElementTree as ET
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from streams import Settings
from streams import dev as _devstack
from streams.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_SPEC = ROOT / "tests" / "data" / "compose-spec.json"
DEVSTACK = ROOT / "streams" / "dev" / "servers"

# server.properties keys that docker-compose.yml sets differently on purpose: the container needs a
# second listener for other containers, and its data lives in a volume (see the comments there).
KAFKA_DIFFERENT_BY_DESIGN = {
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "log.dirs",
}
# KAFKA_* variables the apache/kafka image passes to the JVM instead of rendering into server.properties.
KAFKA_IMAGE_NON_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_LOG4J_OPTS"}


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@cache
def compose_spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(COMPOSE_SPEC.read_text())
    return loaded


def service(name: str) -> dict[str, Any]:
    svc: dict[str, Any] = compose()["services"][name]
    return svc


@cache
def server_properties() -> dict[str, str]:
    props: dict[str, str] = {}
    for line in (DEVSTACK / "kafka" / "server.properties").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


@cache
def cassandra_yaml() -> dict[str, Any]:
    # @RUN@ is the run directory the dev scripts substitute; a bare '@' cannot start a YAML scalar.
    text = (DEVSTACK / "cassandra" / "cassandra.yaml").read_text().replace("@RUN@", "/run")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def kafka_image_properties() -> dict[str, str]:
    """The server.properties the apache/kafka image renders from the kafka service's KAFKA_* variables."""
    props = {}
    for name, value in service("kafka")["environment"].items():
        if not name.startswith("KAFKA_") or name in KAFKA_IMAGE_NON_PROPERTIES:
            continue
        # The image's rule: '___' -> '-', '__' -> '_', '_' -> '.', lower-cased.
        key = name[len("KAFKA_") :].lower().replace("___", "-").replace("__", "\0").replace("_", ".")
        props[key.replace("\0", "_")] = str(value)
    return props


def listeners(spec: str) -> dict[str, str]:
    """'NAME://host:port,…' -> {NAME: 'host:port'}."""
    return dict(item.split("://", 1) for item in spec.split(","))


def pom_property(pom: Path, name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find(f"m:properties/m:{name}", ns)
    assert node is not None and node.text, f"{pom} has no <{name}>"
    return node.text.strip()


def published(svc: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Short-syntax port mappings 'ip:host:container' as (ip, host_port, container_port)."""
    out = []
    for port in svc["ports"]:
        ip, host, target = str(port).split(":")
        out.append((ip, int(host), int(target)))
    return out


def env_default(value: str) -> str:
    """The default of a '${VAR:-default}' interpolation."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    assert match, f"{value!r} is not of the form ${{VAR:-default}}"
    return match.group(1)


# --- (a) a valid Compose file -------------------------------------------------------------------


def test_compose_spec_is_the_draft7_json_schema() -> None:
    spec = compose_spec()
    assert "draft-07" in spec["$schema"]
    assert spec["title"] == "Compose Specification"
    Draft7Validator.check_schema(spec)


def test_compose_file_validates_against_compose_spec() -> None:
    errors = sorted(Draft7Validator(compose_spec()).iter_errors(compose()), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def _misspelt_key(doc: dict[str, Any]) -> None:
    doc["services"]["kafka"]["imagee"] = doc["services"]["kafka"].pop("image")


def _unknown_condition(doc: dict[str, Any]) -> None:
    doc["services"]["worker"]["depends_on"]["kafka"]["condition"] = "service_ready"


def _ports_as_mapping(doc: dict[str, Any]) -> None:
    doc["services"]["cassandra"]["ports"] = {"9042": "9042"}


def _unknown_top_level(doc: dict[str, Any]) -> None:
    doc["service"] = doc.pop("services")


@pytest.mark.parametrize("breakage", [_misspelt_key, _unknown_condition, _ports_as_mapping, _unknown_top_level])
def test_compose_spec_rejects_a_broken_compose_file(breakage: Any) -> None:
    broken = copy.deepcopy(compose())
    breakage(broken)
    assert list(Draft7Validator(compose_spec()).iter_errors(broken))


# --- (b) in step with the `kflow dev up` configuration ------------------------------------------


def test_kafka_image_is_the_dev_stack_kafka_version() -> None:
    version = pom_property(DEVSTACK / "kafka" / "pom.xml", "kafka.version")
    assert version == _devstack.KAFKA_VERSION
    assert service("kafka")["image"] == f"apache/kafka:{version}"


def test_kafka_settings_match_server_properties() -> None:
    props = server_properties()
    image_props = kafka_image_properties()
    shared = {k: v for k, v in props.items() if k not in KAFKA_DIFFERENT_BY_DESIGN}
    assert {k: image_props.get(k) for k in shared} == shared
    # The ones the brief names, spelt out so a rename in either file cannot slip through.
    for key, value in {
        "node.id": "1",
        "process.roles": "broker,controller",
        "controller.quorum.voters": "1@127.0.0.1:9093",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "4",
    }.items():
        assert props[key] == value == image_props[key], key


def test_kafka_host_listener_is_the_dev_stack_address() -> None:
    dev = listeners(server_properties()["advertised.listeners"])
    advertised = listeners(kafka_image_properties()["advertised.listeners"])
    assert advertised["PLAINTEXT"] == dev["PLAINTEXT"] == "127.0.0.1:9092"
    assert ("127.0.0.1", 9092, 9092) in published(service("kafka"))


def test_kafka_listeners_are_consistent() -> None:
    props = kafka_image_properties()
    bound = listeners(props["listeners"])
    advertised = listeners(props["advertised.listeners"])
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    assert set(bound) == set(advertised) == set(protocols)
    assert props["inter.broker.listener.name"] in bound
    assert props["controller.listener.names"] in bound
    # Containers reach the broker through the INTERNAL listener, on the same port it binds.
    assert advertised["INTERNAL"] == "kafka:19092"
    assert bound["INTERNAL"].rsplit(":", 1)[1] == "19092"
    # The host port is published to the port PLAINTEXT binds in the container.
    host_target = {target for _, host, target in published(service("kafka")) if host == 9092}
    assert host_target == {int(bound["PLAINTEXT"].rsplit(":", 1)[1])}


def test_kafka_heap_and_healthcheck() -> None:
    env = service("kafka")["environment"]
    # The heap `kflow dev up` gives Kafka (streams/_devstack.py).
    assert env["KAFKA_HEAP_OPTS"].split() == ["-Xms256m", "-Xmx512m"]
    assert env["KAFKA_LOG_DIRS"] in {v.split(":")[1] for v in service("kafka")["volumes"]}
    test = service("kafka")["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1].startswith("/opt/kafka/bin/")


def test_cassandra_image_is_the_dev_stack_cassandra_version() -> None:
    version = pom_property(DEVSTACK / "cassandra" / "pom.xml", "cassandra.version")
    assert version == _devstack.CASSANDRA_VERSION
    assert service("cassandra")["image"] == f"cassandra:{version}"


def test_cassandra_settings_match_cassandra_yaml() -> None:
    conf = cassandra_yaml()
    env = service("cassandra")["environment"]
    assert env["CASSANDRA_CLUSTER_NAME"] == conf["cluster_name"]
    assert int(env["CASSANDRA_NUM_TOKENS"]) == conf["num_tokens"]
    assert env["CASSANDRA_ENDPOINT_SNITCH"] == conf["endpoint_snitch"]
    port = conf["native_transport_port"]
    assert port == 9042
    assert (conf["rpc_address"], port, port) in published(service("cassandra"))
    assert service("processor")["environment"]["KFLOW_CASSANDRA"] == f"cassandra:{port}"


def test_cassandra_heap_jvm_options_and_healthcheck() -> None:
    env = service("cassandra")["environment"]
    assert env["MAX_HEAP_SIZE"] == "1G" and env["HEAP_NEWSIZE"]
    dev_options = set((DEVSTACK / "cassandra" / "jvm17.options").read_text().split())
    extra = env["JVM_EXTRA_OPTS"].split()
    assert extra and set(extra) <= dev_options
    test = service("cassandra")["healthcheck"]["test"]
    assert "cqlsh" in test and "SELECT release_version FROM system.local" in test


# --- (c) the image and the kflow services -------------------------------------------------------


def dockerfile_instructions() -> dict[str, str]:
    out = {}
    for line in DOCKERFILE.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out[word.upper()] = rest.strip()
    return out


def test_dockerfile_installs_the_pinned_package_with_kflow_as_entrypoint() -> None:
    steps = dockerfile_instructions()
    assert steps["FROM"] == "python:3.11-slim"
    assert 'pip install -c constraints.txt ".[otel,ui]"' in DOCKERFILE.read_text()  # the versions the suite ran with
    assert json.loads(steps["ENTRYPOINT"]) == ["kflow"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "kflow" in scripts


@pytest.mark.parametrize("name", ["processor", "worker"])
def test_kflow_services_run_the_cli_commands(name: str) -> None:
    svc = service(name)
    entrypoint = json.loads(dockerfile_instructions()["ENTRYPOINT"])
    # docs/api.md, "Command line": `kflow processor -A pkg.module` and `kflow worker -A pkg.module`.
    assert entrypoint + svc["command"] == ["kflow", name, "-A", "${KFLOW_APP:-examples.basic}"]
    assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert svc["restart"] == "unless-stopped"
    assert svc["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "cassandra": {"condition": "service_healthy"},
    }


@pytest.mark.parametrize("name", ["processor", "worker"])
def test_kflow_cli_parses_the_service_commands(name: str) -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if name not in commands:
        pytest.skip(f"`kflow {name}` is not registered in streams.cli yet")
    args = parser.parse_args([*service(name)["command"][:-1], "examples.basic"])
    assert "examples.basic" in vars(args).values()


@pytest.mark.parametrize("name", ["processor", "worker"])
def test_kflow_services_configuration(name: str) -> None:
    env = service(name)["environment"]
    advertised = listeners(kafka_image_properties()["advertised.listeners"])
    assert env["KFLOW_BOOTSTRAP"] in advertised.values()
    assert env["KFLOW_BOOTSTRAP"] == "kafka:19092"
    defaults = Settings()
    assert env_default(env["KFLOW_KEYSPACE"]) == defaults.keyspace == "kflow"
    assert env_default(env["KFLOW_TOPIC_PREFIX"]) == defaults.topic_prefix == "kflow"
    assert env_default(env["KFLOW_PARTITIONS"]) == str(defaults.partitions) == server_properties()["num.partitions"]
    # Only the variables kflow reads (docs/api.md, "Configuration"), so a typo cannot hide.
    assert set(env) == {
        "KFLOW_BOOTSTRAP",
        "KFLOW_CASSANDRA",
        "KFLOW_KEYSPACE",
        "KFLOW_TOPIC_PREFIX",
        "KFLOW_PARTITIONS",
        "KFLOW_SECRET",
    }


def test_dockerignore_keeps_what_the_build_needs() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    needed = ["pyproject.toml", "README.md", "engine", "schemas", "storage", "streams", "examples"]
    assert not [(n, p) for n in needed for p in patterns if fnmatch(n, p)]
