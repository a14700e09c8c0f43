"""The Cassandra keyspace of a topic prefix when none is configured: one keyspace per prefix, so two kflow
deployments sharing a Kafka cluster and a Cassandra cluster under different prefixes never read or purge each
other's runs (docs/security.md, "Isolation")."""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["DEFAULT_PREFIX", "default_keyspace"]

DEFAULT_PREFIX: Final = "kflow"
"""The default topic prefix; its keyspace is ``kflow``, as it always was."""

_MAX_LENGTH: Final = 48  # Cassandra's limit on keyspace names
_HEAD: Final = "kflow_"
_PLAIN: Final = re.compile(r"[a-z0-9_]+")


def default_keyspace(topic_prefix: str) -> str:
    """``kflow`` for the prefix ``kflow``; ``kflow_<prefix>`` for a prefix of lowercase letters, digits and ``_``
    that fits; otherwise ``kflow_<prefix lowercased, every other character as _, cut>_<8 hex of its SHA-256>``.

    The result is a valid unquoted Cassandra keyspace name (``[a-z0-9_]``, at most 48 characters, starting with a
    letter), and two different prefixes get two different keyspaces: a prefix that is not kept as it is (``my-app``,
    ``MyApp``, a long one) carries a hash of itself, so ``my-app`` and ``my_app`` (or ``MyApp`` and ``myapp``) differ.
    """
    if topic_prefix == DEFAULT_PREFIX:
        return DEFAULT_PREFIX
    if _PLAIN.fullmatch(topic_prefix) and len(_HEAD) + len(topic_prefix) <= _MAX_LENGTH:
        return _HEAD + topic_prefix
    digest = hashlib.sha256(topic_prefix.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    body = re.sub(r"[^a-z0-9_]", "_", topic_prefix.lower())[: _MAX_LENGTH - len(_HEAD) - len(digest) - 1]
    return f"{_HEAD}{body}_{digest}"
