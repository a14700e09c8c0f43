"""``kflow storage migrate``: apply the Cassandra schema migrations (the processor also does this at start)."""

from __future__ import annotations

import argparse
import json

from storage import CassandraConnection, CassandraTarget, migrate
from streams._settings import Settings


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``storage`` and its sub-commands to the ``kflow`` parser."""
    storage = groups.add_parser("storage", help="the Cassandra keyspace of kflow")
    commands = storage.add_subparsers(title="storage commands", metavar="COMMAND", parser_class=type(storage))
    commands.required = True
    up = commands.add_parser("migrate", help="create the keyspace and apply pending migrations, in order")
    up.add_argument(
        "--replication",
        metavar="JSON",
        type=json.loads,
        help="keyspace replication when it is created, e.g. "
        '\'{"class": "NetworkTopologyStrategy", "dc1": 3}\' (default: SimpleStrategy, 1)',
    )
    up.add_argument("--json", action="store_true", help="print only {keyspace, applied} as JSON")
    up.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    host, port = settings.cassandra_host_port
    with CassandraConnection(CassandraTarget(host, port)) as conn:
        applied = migrate(conn, settings.keyspace, args.replication)
    if args.json:
        print(json.dumps({"keyspace": settings.keyspace, "applied": applied}))
    else:
        print(f"keyspace {settings.keyspace}: " + (f"applied migrations {applied}" if applied else "up to date"))
    return 0
