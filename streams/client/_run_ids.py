"""Run ids: random, or derived from an idempotency key so that every client, in any language, derives the same;
and the run id inside a hook token."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Final

from engine import UnknownWorkflowError
from engine.runtime import WorkflowDefinition
from streams._keyspace import DEFAULT_PREFIX

RUN_ID_NAMESPACE: Final = uuid.UUID("0c64a7fc-d3b7-486d-b08e-4b72457f58a9")
"""UUID namespace of run ids derived from idempotency keys under the default topic prefix ``kflow`` (fixed: clients
in any language must agree); another prefix's namespace is ``uuid5(RUN_ID_NAMESPACE, prefix)``."""


def run_id_for(workflow_name: str, idempotency_key: str | None = None, *, topic_prefix: str = DEFAULT_PREFIX) -> str:
    r"""The run id for a start: random (UUID4 hex), or derived from the idempotency key (UUID5 hex of
    ``"{workflow_name}\0{idempotency_key}"`` in the namespace of ``topic_prefix``).

    The default prefix ``kflow`` keeps the derivation run ids always had (``RUN_ID_NAMESPACE``), so its keys still
    name their runs; any other prefix derives in a namespace of its own (``uuid5(RUN_ID_NAMESPACE, prefix)``), so
    one key under two prefixes names two different runs (docs/security.md, "Isolation").

    Invariant: one (prefix, workflow name, key) always maps to one run id, and the orchestrator ignores a
    second ``StartWorkflow`` for a run id it knows (decided on that run's partition), so racing starts
    with one key yield one run.
    """
    if idempotency_key is None:
        return uuid.uuid4().hex
    return uuid.uuid5(_namespace(topic_prefix), f"{workflow_name}\0{idempotency_key}").hex


def _namespace(topic_prefix: str) -> uuid.UUID:
    return RUN_ID_NAMESPACE if topic_prefix == DEFAULT_PREFIX else uuid.uuid5(RUN_ID_NAMESPACE, topic_prefix)


def run_id_of_token(token: str) -> str:
    """The run of a hook token ``"{run_id}:{name}"`` (before the first ``:``); ValueError if it has none."""
    run_id, sep, _ = token.partition(":")
    if not sep or not run_id:
        raise ValueError(f"hook token {token!r} is not of the form '<run_id>:<name>'")
    return run_id


def workflow_name_of(workflow: str | Callable[..., object]) -> str:
    """The name of a workflow given by name or as its ``@workflow`` function.

    Raises:
        UnknownWorkflowError: a function not decorated with ``@workflow``.
    """
    if isinstance(workflow, str):
        return workflow
    defn = getattr(workflow, "__kflow_workflow__", None)
    if not isinstance(defn, WorkflowDefinition):
        raise UnknownWorkflowError(f"{workflow!r} is not decorated with @workflow")
    return defn.name
