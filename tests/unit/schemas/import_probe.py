"""Imported only by a test that wants to know it was imported: a payload naming it must never import it."""

from __future__ import annotations

import dataclasses

IMPORTED = True


@dataclasses.dataclass
class Thing:
    value: int
