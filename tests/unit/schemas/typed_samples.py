"""Classes and helpers of the typed JSON payload codec tests: sample payload classes, exact comparison."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import zoneinfo

import pydantic

from engine import payload_type
from schemas import decode_payload, encode_payload


@payload_type
class Colour(enum.Enum):
    RED = "red"
    GREEN = (0, 255, 0)


@payload_type
class Size(enum.IntEnum):
    S = 1
    M = 2


@payload_type
class Tone(enum.StrEnum):
    WARM = "warm"
    COLD = "cold"


@payload_type
class Perm(enum.Flag):
    R = 1
    W = 2
    X = 4


@payload_type
@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float = 0.0


@payload_type
@dataclasses.dataclass
class Order:
    order_id: str
    amount: decimal.Decimal
    placed: datetime.datetime
    lines: list[Point] = dataclasses.field(default_factory=list)
    tags: frozenset[str] = frozenset()
    total: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.total = len(self.lines)


@payload_type
@dataclasses.dataclass(slots=True)
class Slotted:
    data: dict[object, object]


@payload_type
class Customer(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    name: str = pydantic.Field(alias="fullName")
    since: datetime.date
    ids: tuple[int, ...] = ()
    favourite: Colour | None = None

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def initial(self) -> str:
        return self.name[:1]


@payload_type
class Ledger(pydantic.RootModel[dict[int, decimal.Decimal]]):
    pass


PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def round_trip(value: object, **options: object) -> object:
    """``value`` encoded then decoded with the JSON codecs (and the same options)."""
    return decode_payload(encode_payload(value, **options), **options)  # type: ignore[arg-type]


def same(a: object, b: object) -> bool:
    """Equal *and* of the same types all the way down: what "exact" means for the codec (NaN equals NaN here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))  # type: ignore[arg-type]
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, (datetime.datetime, datetime.time)):
        return _same_moment(a, b)  # type: ignore[arg-type]
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))  # type: ignore[arg-type]
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(map(type, a)) == list(map(type, b)) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (set, frozenset)):
        assert isinstance(b, (set, frozenset))
        mine = {item: item for item in b}
        return a == b and all(same(item, mine[item]) for item in a)
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))  # type: ignore[arg-type]
    if isinstance(a, pydantic.BaseModel):
        return same(dict(a), dict(b))  # type: ignore[call-overload]
    return a == b


def _same_moment(a: datetime.datetime | datetime.time, b: datetime.datetime | datetime.time) -> bool:
    if a.replace(tzinfo=None) != b.replace(tzinfo=None) or a.fold != b.fold:  # wall clock, fold
        return False
    if isinstance(a.tzinfo, zoneinfo.ZoneInfo) or isinstance(b.tzinfo, zoneinfo.ZoneInfo):
        return isinstance(b.tzinfo, zoneinfo.ZoneInfo) and getattr(a.tzinfo, "key", None) == b.tzinfo.key
    if (a.tzinfo is None) != (b.tzinfo is None):
        return False
    return a.utcoffset() == b.utcoffset() if isinstance(a, datetime.datetime) else a.tzinfo == b.tzinfo
