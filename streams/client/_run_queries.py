"""Runs as the client lists them: pages of ``RunInfo`` read from Cassandra's query tables (``list_runs``), a run's
``RunInfo`` from its ``runs`` row, and the walk along a continue-as-new chain (``get_chain``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import NamedTuple

from engine import RunStatus
from engine.runtime import ErrorInfo
from schemas import PayloadError, RecordCodec, decode_payload
from storage import RunRow
from streams.client._outcomes import RunInfo

_TYPED = "json+types"  # every stored text reads as it: a plain JSON document is a json+types one without tags


class RunList(NamedTuple):
    """One page of ``Client.list_runs``: ``runs`` newest first and the token of the next page (None: the last).

    A tuple too, so ``runs, token = await client.list_runs()`` reads like pyworkflow's ``list_runs``."""

    runs: list[RunInfo]
    next_page_token: str | None


def since_ms(since: datetime | int | None) -> int | None:
    """``list_runs``'s ``since`` in epoch ms: an int is epoch ms, a naive datetime is UTC.

    Raises:
        TypeError: neither an int, a datetime nor None.
    """
    if since is None:
        return None
    if isinstance(since, datetime):
        aware = since if since.utcoffset() is not None else since.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(since, int) and not isinstance(since, bool):
        return since
    raise TypeError(f"since must be a datetime or epoch milliseconds (int), got {since!r}")


def status_filter(status: RunStatus | str | None) -> str | None:
    """A ``RunStatus`` (or its value) as the listing filter.

    Raises:
        ValueError: not a status.
    """
    if status is None:
        return None
    try:
        return RunStatus(status).value
    except ValueError:
        known = ", ".join(s.value for s in RunStatus)
        raise ValueError(f"unknown status {status!r} (known: {known})") from None


def info_of_row(row: RunRow, records: RecordCodec) -> RunInfo:
    """The ``RunInfo`` of a materialized ``runs`` row.

    Arguments and the result are decoded from the row's JSON text with ``records``' payload classes (a class it
    does not allow is kept as a ``schemas.UnresolvedValue``; a value only a cloudpickle payload carried is its
    ``repr`` text). A failed run's error has its type and message, not the traceback (that is in the history).
    """
    call = _decoded(row.args, records)
    args, kwargs = (), {}
    if isinstance(call, dict) and isinstance(call.get("args"), list) and isinstance(call.get("kwargs"), dict):
        args, kwargs = tuple(call["args"]), dict(call["kwargs"])
    status = RunStatus(row.status)
    error = None
    if status == RunStatus.FAILED:
        error = ErrorInfo(type=row.error_type or "", message=row.error_message or "", retryable=False)
    return RunInfo(
        run_id=row.run_id,
        workflow_name=row.workflow_name,
        status=status,
        result=_decoded(row.result, records) if status == RunStatus.COMPLETED else None,
        error=error,
        started_at=row.started_at or 0,
        finished_at=row.finished_at,
        next_run_id=row.next_run_id,
        args=args,
        kwargs=kwargs,
        parent_run_id=row.parent_run_id,
        parent_position=row.parent_position,
        children=row.children,
        continued_from=row.continued_from,
        idempotency_key=row.idempotency_key,
    )


def _decoded(text: str | None, records: RecordCodec) -> object:
    if text is None:
        return None
    try:
        return decode_payload({"codec": _TYPED, "data": text.encode()}, types=records.types, keep_unknown=True)
    except PayloadError:  # written by an older release as plain JSON (a "$kflow" member in a user dict)
        try:
            return json.loads(text)
        except ValueError:
            return text


async def walk_chain(run_id: str, fetch: Callable[[str], Awaitable[RunInfo | None]]) -> list[RunInfo]:
    """The continue-as-new chain through ``run_id``, oldest first: back along ``continued_from``, forward along
    ``next_run_id``, each run once (a damaged link pointing back ends the walk). Empty when ``fetch`` knows no
    ``run_id``; a successor ``fetch`` does not know yet (its start is on its way) ends the chain so far."""
    first = await fetch(run_id)
    if first is None:
        return []
    seen = {run_id}
    before: list[RunInfo] = []
    current = first
    while (previous := current.continued_from) and previous not in seen:
        seen.add(previous)
        if (found := await fetch(previous)) is None:
            break
        before.append(current := found)
    after: list[RunInfo] = []
    current = first
    while current.status == RunStatus.CONTINUED_AS_NEW and (following := current.next_run_id) and following not in seen:
        seen.add(following)
        if (found := await fetch(following)) is None:
            break
        after.append(current := found)
    return [*reversed(before), first, *after]
