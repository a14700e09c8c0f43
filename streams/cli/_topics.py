"""``kflow topics create``: every kflow topic with the configured partition count."""

from __future__ import annotations

import argparse
import asyncio
import json

from streams._settings import Settings
from streams._topics import Topics, create_topics


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``topics`` and its sub-commands to the ``kflow`` parser."""
    topics = groups.add_parser("topics", help="Kafka topics of kflow")
    commands = topics.add_subparsers(title="topics commands", metavar="COMMAND", parser_class=type(topics))
    commands.required = True
    create = commands.add_parser("create", help="create all topics (KFLOW_TOPIC_PREFIX, KFLOW_PARTITIONS)")
    create.add_argument("--json", action="store_true", help="print only [{topic, created}] as JSON")
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    topics = Topics(settings.topic_prefix)
    created = asyncio.run(create_topics(settings.bootstrap, topics, settings.partitions))
    if args.json:
        print(json.dumps([{"topic": name, "created": name in created} for name in topics.all()], indent=2))
        return 0
    for name in topics.all():
        print(f"{name:<40} {'created' if name in created else 'exists'}")
    return 0
