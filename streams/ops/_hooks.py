"""What ``kflow hooks list|info`` show: a run's hooks, derived from its history (nothing here prints).

A hook is named by its token (``{run_id}:{name}``, ``{run_id}:{name}#n`` for the n-th call of a name). Its status
comes from the run's events for that token:

- ``received``: a ``HookReceived`` delivered a payload to the waiting ``hook()`` call (``position`` >= 0);
- ``expired``: a ``HookExpired``: its timeout elapsed first;
- ``pending``: a ``HookCreated`` and neither of the above, in a running run (``kflow hooks resume`` delivers);
- ``queued``: only a payload that arrived before the workflow reached the ``hook()`` call (``HookReceived`` with
  position -1), in a running run: it is delivered when the call is reached;
- ``closed``: pending or queued when the run finished: nothing will take a payload any more.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from engine import RunStatus
from engine.runtime import HistoryEvent, HookCreated, HookExpired, HookReceived
from streams.ops._views import OpsError, RunQueries, format_time, plain, table

HOOK_STATUSES = ("pending", "received", "expired", "queued", "closed")
"""Every status ``hooks_of`` reports (``kflow hooks list --status``)."""


@dataclass(frozen=True, slots=True)
class HookView:
    """One hook of a run, as its history tells it; times in epoch ms (None: not happened)."""

    token: str
    run_id: str
    name: str
    status: str
    position: int | None = None
    created_at: int | None = None
    expires_at: int | None = None
    received_at: int | None = None
    expired_at: int | None = None
    payload: object = None


def hooks_of(run_id: str, events: Sequence[HistoryEvent], run_status: str) -> list[HookView]:
    """The hooks of a run, in the order their tokens first appear in its history."""
    found: dict[str, HookView] = {}
    queued: dict[str, object] = {}  # payloads that arrived before their hook() call
    for event in events:
        if not isinstance(event, HookCreated | HookReceived | HookExpired):
            continue
        hook = found.setdefault(event.token, HookView(event.token, run_id, _name_of(event.token), "pending"))
        if isinstance(event, HookCreated):
            hook = replace(
                hook,
                name=event.name,
                position=event.position,
                created_at=event.timestamp,
                expires_at=event.expires_at,
            )
        elif isinstance(event, HookExpired):
            hook = replace(hook, expired_at=event.timestamp)
        elif event.position >= 0:
            hook = replace(hook, received_at=event.timestamp, payload=event.payload)
        else:
            queued[event.token] = event.payload
        found[event.token] = hook
    running = run_status == RunStatus.RUNNING
    return [_settled(hook, running, queued) for hook in found.values()]


@dataclass(frozen=True, slots=True)
class HookListing:
    """``kflow hooks list`` without ``--run``: the hooks found, how many running runs were read, and whether the
    scan stopped at its bound with running runs left unread (``more``)."""

    hooks: list[HookView]
    runs: int
    more: bool


def hooks_of_running_runs(store: RunQueries, status: str | None, limit: int, max_runs: int = 1000) -> HookListing:
    """The hooks (of ``status``, if given) of the running runs, newest run first, at most ``limit`` hooks, reading
    at most ``max_runs`` runs' histories (the runs listed as running by Cassandra's query tables)."""
    found: list[HookView] = []
    read, page = 0, None
    while True:
        batch = store.list_runs(status=RunStatus.RUNNING.value, limit=min(100, max_runs - read), page=page)
        for row in batch.runs:
            read += 1
            hooks = hooks_of(row.run_id, store.events(row.run_id), row.status)
            found.extend(hook for hook in hooks if status is None or hook.status == status)
            if len(found) >= limit:
                return HookListing(found[:limit], read, True)
        page = batch.next_page
        if page is None:
            return HookListing(found, read, False)
        if read >= max_runs:
            return HookListing(found, read, True)


def _settled(hook: HookView, running: bool, queued: dict[str, object]) -> HookView:
    if hook.received_at is not None:
        return replace(hook, status="received")
    if hook.expired_at is not None:
        return replace(hook, status="expired")
    waiting = queued.get(hook.token) if hook.created_at is None else None  # a queued payload not taken yet
    if not running:
        return replace(hook, status="closed", payload=waiting)
    return replace(hook, status="pending" if hook.created_at is not None else "queued", payload=waiting)


def _name_of(token: str) -> str:
    """The hook name in a token: ``approval`` for ``{run_id}:approval`` and ``{run_id}:approval#2``."""
    name = token.partition(":")[2]
    base, _, count = name.rpartition("#")
    return base if base and count.isdigit() else name


def find_hook(hooks: Sequence[HookView], token: str) -> HookView:
    """The hook of ``token``; raises OpsError when the run's history has none."""
    for hook in hooks:
        if hook.token == token:
            return hook
    known = ", ".join(hook.token.partition(":")[2] for hook in hooks) or "none"
    raise OpsError(f"no hook {token} in the history of its run (its hooks: {known})")


def hook_json(hook: HookView) -> dict[str, object]:
    """A hook as JSON-ready data (the payload as JSON can show it)."""
    data = {f.name: getattr(hook, f.name) for f in fields(hook)}
    data["payload"] = plain(hook.payload)
    return data


def hooks_table(hooks: Sequence[HookView]) -> str:
    """``kflow hooks list``: one line per hook."""
    if not hooks:
        return "no hooks"
    rows = [
        [
            h.token,
            h.name,
            h.status,
            format_time(h.created_at),
            format_time(h.expires_at),
            format_time(h.received_at if h.received_at is not None else h.expired_at),
        ]
        for h in hooks
    ]
    return table(["TOKEN", "NAME", "STATUS", "CREATED (UTC)", "EXPIRES (UTC)", "RECEIVED/EXPIRED (UTC)"], rows)


def hook_text(hook: HookView, run_status: str) -> str:
    """``kflow hooks info``: one labelled line per fact, then the payload."""
    lines = [
        ("token", hook.token),
        ("run", f"{hook.run_id} ({run_status})"),
        ("name", hook.name),
        ("status", hook.status),
        ("position", "-" if hook.position is None else str(hook.position)),
        ("created", _utc(hook.created_at)),
        ("expires", _utc(hook.expires_at)),
        ("received", _utc(hook.received_at)),
        ("expired", _utc(hook.expired_at)),
    ]
    if hook.status in ("received", "queued", "closed") and hook.payload is not None:
        lines.append(("payload", json.dumps(plain(hook.payload), default=repr)))
    return "\n".join(f"{label:<10}{value}" for label, value in lines)


def _utc(ms: int | None) -> str:
    return "-" if ms is None else f"{format_time(ms)} UTC"
