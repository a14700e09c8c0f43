"""Workflows of the typed-payload integration test (test_payloads.py): typed values through steps, arguments,
results, hook payloads and child results; and values no JSON codec carries."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from decimal import Decimal

from engine import hook, start_child_workflow, step, workflow


class Status(enum.Enum):
    PAID = "paid"
    LATE = "late"


@dataclasses.dataclass(frozen=True)
class Invoice:
    number: uuid.UUID
    total: Decimal
    issued: datetime.datetime  # aware, with its offset
    due: datetime.date
    lines: tuple[tuple[str, Decimal], ...]


@step
async def issue(number: uuid.UUID, total: Decimal, issued: datetime.datetime) -> Invoice:
    return Invoice(number, total, issued, issued.date() + datetime.timedelta(days=30), (("base", total),))


@step
async def audit_at() -> datetime.datetime:
    return datetime.datetime(2024, 5, 1, 12, 30, 15, 123456)  # naive stays naive


@workflow
async def invoice_of(number: uuid.UUID, total: Decimal, issued: datetime.datetime) -> Invoice:
    return await issue(number, total, issued)


@workflow
async def child_total(invoice: Invoice) -> Decimal:
    return sum((amount for _, amount in invoice.lines), Decimal("0.00"))


@workflow
async def bill(number: uuid.UUID, total: Decimal, issued: datetime.datetime, tags: frozenset[str]) -> object:
    invoice = await issue(number, total, issued)
    audited = await audit_at()
    checked = await start_child_workflow(child_total, invoice)
    approval = await hook("approval")  # a typed hook payload
    return (Status.PAID, invoice, audited, checked, approval, {("tags", 1): tags, b"raw": float("nan")})


@step(max_retries=3)
async def opaque() -> object:
    return {"items": [1, 2, object()]}


@workflow
async def bad_step_result() -> str:
    try:
        await opaque()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


@workflow
async def bad_result() -> object:
    return [1, lambda: 2]
