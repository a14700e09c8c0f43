"""``kflow topics create`` and ``kflow topics check``: every kflow topic with the configured partition count,
replication factor and retention, and how the existing ones differ from that."""

from __future__ import annotations

import argparse
import asyncio
import json

from streams._settings import Settings
from streams._topics import Topics, check_topics, create_topics

EXIT_DRIFT = 1
"""``kflow topics check``: some topic is missing or differs from its declaration."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``topics`` and its sub-commands to the ``kflow`` parser."""
    topics = groups.add_parser("topics", help="Kafka topics of kflow")
    commands = topics.add_subparsers(title="topics commands", metavar="COMMAND", parser_class=type(topics))
    commands.required = True
    create = commands.add_parser(
        "create",
        help="create all topics (KFLOW_TOPIC_PREFIX, KFLOW_PARTITIONS, KFLOW_REPLICATION_FACTOR, KFLOW_RETENTION); "
        "refuses when existing ones have another partition count or cleanup policy",
    )
    create.add_argument("--json", action="store_true", help="print only [{topic, created}] as JSON")
    create.set_defaults(handler=_create)
    check = commands.add_parser(
        "check",
        help="report every topic that is missing or differs from what `topics create` makes (exit 1 when one does)",
    )
    check.add_argument("--json", action="store_true", help="print only [{topic, setting, expected, actual}] as JSON")
    check.set_defaults(handler=_check)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    topics = Topics(settings.topic_prefix)
    created = asyncio.run(
        create_topics(
            settings.kafka_target(),
            topics,
            settings.partitions,
            replication_factor=settings.replication_factor,
            retention_ms=settings.retention_ms,
        )
    )
    if args.json:
        print(json.dumps([{"topic": name, "created": name in created} for name in topics.all()], indent=2))
        return 0
    for name in topics.all():
        print(f"{name:<40} {'created' if name in created else 'exists'}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    topics = Topics(settings.topic_prefix)
    drift = asyncio.run(
        check_topics(
            settings.kafka_target(),
            topics,
            settings.partitions,
            replication_factor=settings.replication_factor,
            retention_ms=settings.retention_ms,
        )
    )
    if args.json:
        rows = [{"topic": d.topic, "setting": d.setting, "expected": d.expected, "actual": d.actual} for d in drift]
        print(json.dumps(rows, indent=2))
        return EXIT_DRIFT if drift else 0
    for name in topics.all():
        found = [d for d in drift if d.topic == name]
        if not found:
            print(f"{name:<40} ok")
        elif found[0].setting == "missing":
            print(f"{name:<40} missing")
        else:
            print(f"{name:<40} " + ", ".join(f"{d.setting}={d.actual} (expected {d.expected})" for d in found))
    return EXIT_DRIFT if drift else 0
