"""The Kafka ACLs of kflow's roles (docs/security.md, "Kafka ACLs per role"), and applying them to a secure stack.

Each role is a SCRAM principal ``User:<role>``: ``client`` (``streams.Client`` and the commands that use it),
``worker`` (``kflow worker``), ``processor`` (``kflow processor``: orchestrator, timer processor, materializer),
``ops`` (``kflow runs|dlq|compact|replay|hooks|topics check``) and ``admin``, the super user that creates topics.
Every grant is an ALLOW from any host; a resource named ``<p>.x`` is the topic prefix's topic (``KFLOW_TOPIC_PREFIX``),
``<p>.`` with ``prefixed`` every name that starts so. The group and transactional id names are the ones the
processes use (``<p>.workers``, ``<p>.orchestrator`` and ``<p>.orchestrator.<partition>``, ``<p>.delay``,
``<p>.materializer``, ``<p>.dlq-redrive``).

aiokafka 0.14's admin client has no ``create_acls``; its protocol module has the CreateAcls request, sent here
through a plain ``AIOKafkaClient`` (version 1: Kafka 4 serves 1-3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest_v1
from aiokafka.protocol.api import Request

from streams.dev._jvm import DevStackError
from streams.dev._secure import KafkaLogin

_RESOURCE_TYPES: Final = {"topic": 2, "group": 3, "cluster": 4, "transactional-id": 5}
_PATTERNS: Final = {"literal": 3, "prefixed": 4}
_OPERATIONS: Final = {
    "Read": 3,
    "Write": 4,
    "Create": 5,
    "Describe": 8,
    "DescribeConfigs": 10,
}
_ALLOW: Final = 3


@dataclass(frozen=True, slots=True)
class Grant:
    """Operations a role is allowed on one resource, and why kflow needs them.

    ``name`` is relative to the topic prefix: ``.inbox`` names ``<prefix>.inbox``, ``.`` with ``prefixed``
    every ``<prefix>.*`` name.
    """

    resource: str
    name: str
    operations: tuple[str, ...]
    why: str
    pattern: str = "literal"


_EVERY_ROLE: Final = (
    Grant("topic", ".", ("Describe",), "topic metadata: partition counts checked at start", "prefixed"),
    Grant("topic", ".schemas", ("Read", "Write", "DescribeConfigs"), "learn writer schemas, publish its own"),
)

ROLE_GRANTS: Final[dict[str, tuple[Grant, ...]]] = {
    "client": (
        Grant("topic", ".inbox", ("Write",), "start, cancel, hook payloads, schedule commands"),
        Grant("topic", ".completions", ("Read",), "results (assigned partitions, no group)"),
        Grant("topic", ".history", ("Read",), "run queries past Cassandra, hook answers"),
        Grant("topic", ".dlq", ("Read",), "a refused hook payload or schedule command"),
        Grant("topic", ".state", ("Read",), "schedules (get, list, command answers)"),
        Grant("group", ".materializer", ("Describe",), "how far Cassandra is (committed offsets)"),
    ),
    "worker": (
        Grant("topic", ".tasks", ("Read",), "step commands"),
        Grant("group", ".workers", ("Read",), "the workers' consumer group"),
        Grant("topic", ".inbox", ("Write",), "step results"),
        Grant("topic", ".dlq", ("Write",), "a task it cannot decode"),
    ),
    "processor": (
        Grant("topic", ".inbox", ("Read", "Write"), "orchestrator input; timers fired, child runs"),
        Grant("topic", ".history", ("Read", "Write"), "the event log: restore, materializer"),
        Grant("topic", ".state", ("Read", "Write", "Create", "DescribeConfigs"), "restore state (created if missing)"),
        Grant("topic", ".timers", ("Read", "Write"), "timer requests"),
        Grant(
            "topic",
            ".timer-index",
            ("Read", "Write", "Create", "DescribeConfigs"),
            "timer changelog (created if missing)",
        ),
        Grant("topic", ".tasks", ("Write",), "step commands"),
        Grant("topic", ".completions", ("Read", "Write"), "one RunFinished per run; read by --activate-schedules"),
        Grant("topic", ".dlq", ("Read", "Write"), "dead letters; read by --activate-schedules (a client)"),
        Grant("topic", ".schemas", ("Create",), "created if missing"),
        Grant("group", ".orchestrator", ("Read",), "orchestrator group (offsets committed in its transactions)"),
        Grant("group", ".delay", ("Read",), "timer processor group"),
        Grant("group", ".materializer", ("Read",), "materializer group"),
        Grant("transactional-id", ".orchestrator.", ("Write",), "one transactional id per inbox partition", "prefixed"),
    ),
    "ops": (
        Grant("topic", ".", ("Read", "DescribeConfigs"), "read everything; kflow topics check", "prefixed"),
        Grant("topic", ".inbox", ("Write",), "runs cancel, dlq redrive, compact (ForgetRun), hooks resume"),
        Grant("topic", ".dlq", ("Write",), "dlq redrive's notes"),
        Grant("transactional-id", ".dlq-redrive", ("Write",), "dlq redrive's transactions"),
        Grant("group", ".materializer", ("Describe",), "runs lag (committed offsets)"),
    ),
}
"""What each role may do besides what every role may (``_EVERY_ROLE``); ``admin`` is a super user instead."""


@dataclass(frozen=True, slots=True)
class Acl:
    """One ALLOW binding: ``User:<principal>`` may ``operation`` on the resource."""

    principal: str
    resource: str
    name: str
    pattern: str
    operation: str


def role_grants(role: str) -> tuple[Grant, ...]:
    """Every grant of ``role`` (those of every role first)."""
    return _EVERY_ROLE + ROLE_GRANTS[role]


def role_acls(prefix: str, roles: Iterable[str] = tuple(ROLE_GRANTS)) -> list[Acl]:
    """The bindings of ``roles`` for topic prefix ``prefix``, one per operation."""
    return [
        Acl(role, grant.resource, prefix + grant.name, grant.pattern, operation)
        for role in roles
        for grant in role_grants(role)
        for operation in grant.operations
    ]


def acl_table() -> str:
    """The markdown table of every role's grants (docs/security.md carries it verbatim)."""
    lines = ["| role | resource | name | operations | why |", "|---|---|---|---|---|"]
    rows = [("every role", grant) for grant in _EVERY_ROLE]
    rows += [(f"`{role}`", grant) for role, grants in ROLE_GRANTS.items() for grant in grants]
    for role, grant in rows:
        name = f"`<p>{grant.name}`" + (" (prefixed)" if grant.pattern == "prefixed" else "")
        lines.append(f"| {role} | {grant.resource} | {name} | {', '.join(grant.operations)} | {grant.why} |")
    lines.append("| `admin` | cluster | | super user (`super.users`) | creates topics, applies these ACLs |")
    return "\n".join(lines)


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka has no type information
    """CreateAcls (API key 30) with many creations in one request (aiokafka's own builds one)."""

    API_KEY = 30

    def __init__(self, acls: Sequence[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: Any) -> Any:
        return request_struct_class(
            [
                (
                    _RESOURCE_TYPES[acl.resource],
                    acl.name,
                    _PATTERNS[acl.pattern],
                    f"User:{acl.principal}",
                    "*",
                    _OPERATIONS[acl.operation],
                    _ALLOW,
                )
                for acl in self._acls
            ]
        )


async def create_acls(bootstrap: str, login: KafkaLogin, acls: Sequence[Acl]) -> int:
    """Create ``acls`` as ``login`` (a super user); idempotent (an existing binding is left as it is).

    Raises:
        DevStackError: Kafka could not be reached, or refused a binding (the first refusal is named).
    """
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000, **login.options())
    try:
        await client.bootstrap()
        response = await client.send(client.get_random_node(), _CreateAcls(acls))
    except (KafkaError, OSError) as exc:
        raise DevStackError(f"creating the ACLs on {bootstrap} as {login.username} failed: {exc!r}") from None
    finally:
        await client.close()
    for acl, (code, message) in zip(acls, response.creation_responses, strict=True):
        if code != 0:
            raise DevStackError(f"creating the ACL {acl} failed with Kafka error code {code}: {message}")
    return len(acls)
