"""Which classes a payload may name: the allow-list the typed payload codec resolves classes from.

A typed payload (docs/payloads.md) names the class of an Enum member, a dataclass or a pydantic model as
``"module:qualname"``. Decoding never imports anything by that name: the class is looked up in an allow-list,
``PayloadTypes``, which holds

- the classes registered in this process with ``@payload_type`` / ``register_payload_types`` (process-wide, like
  ``copyreg``: registering happens when the module defining the class is imported), and
- the classes *defined* in the modules of the workflows and steps a host runs (``Registry.payload_types``):
  those modules are imported already, so the class is found among their attributes.

Encoding checks the same allow-list, so a value that could not be decoded on the other side is refused where it is
produced, with the reason, instead of reaching a consumer that cannot read it.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import Callable, Iterable
from typing import Final, TypeVar

T = TypeVar("T", bound=type)

PayloadCheck = Callable[[object, str], None]
"""``check(value, field)``: raises (a ``schemas.PayloadError`` naming the path, e.g. ``$.result["items"][2]``) when
the host's payload codec cannot carry ``value`` as the record field ``field`` (``"result"``, ``"args"``, …)."""

_REGISTERED: Final[dict[str, type]] = {}
"""Classes registered with ``payload_type``, by ``"module:qualname"``."""

_HOW_TO_ALLOW: Final = (
    "decorate it with @engine.payload_type (or call engine.register_payload_types) in a module this process "
    "imports, or define it in the module of a workflow or step of the Registry this host runs (kflow processor / "
    "worker -A MODULE, Client(registry=...))"
)
"""How to allow a class, for error messages."""


def class_name(cls: type) -> str:
    """The name a payload gives a class: ``"module:qualname"`` (``"myapp.models:Order"``)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def is_payload_class(cls: object) -> bool:
    """Whether ``cls`` is a class the typed codec can carry by name: an Enum, a dataclass or a pydantic model."""
    if not isinstance(cls, type):
        return False
    if issubclass(cls, enum.Enum) or dataclasses.is_dataclass(cls):
        return True
    pydantic = sys.modules.get("pydantic")  # never imported here: without it no class can be a model
    base = getattr(pydantic, "BaseModel", None)
    return isinstance(base, type) and issubclass(cls, base)


def payload_type(cls: T) -> T:
    """Allow ``cls`` in payloads: its values may be arguments, results and hook payloads, and are rebuilt exactly.

    Use as a class decorator (``@payload_type``) on an ``Enum``, a dataclass or a pydantic model. Needed only for
    classes defined outside the modules of the workflows and steps (those are allowed already); the module that
    defines the class must be imported by every process that reads or writes such values (client, processor,
    worker) — importing it registers the class.

    Raises:
        TypeError: ``cls`` is not an Enum, a dataclass or a pydantic model class.
    """
    register_payload_types(cls)
    return cls


def register_payload_types(*classes: type) -> None:
    """Allow several classes in payloads at once (see ``payload_type``).

    Raises:
        TypeError: one of them is not an Enum, a dataclass or a pydantic model class (none is registered then).
    """
    for cls in classes:
        if not is_payload_class(cls):
            raise TypeError(
                f"payload types are Enum, dataclass or pydantic model classes; got {cls!r}: the JSON payload "
                "codecs carry other values only as the built-in types listed in docs/payloads.md"
            )
    for cls in classes:
        _REGISTERED[class_name(cls)] = cls  # a class defined again (a reloaded module) replaces the old one


class PayloadTypes:
    """An allow-list of payload classes: those registered with ``payload_type`` plus those defined in ``modules``.

    Args:
        modules: names of modules whose own classes are allowed (the modules of a registry's workflows and
            steps; see ``Registry.payload_types``). A module that is not imported allows nothing: it is never
            imported from here.
    """

    HOW_TO_ALLOW: Final = _HOW_TO_ALLOW
    """How to allow a class, for error messages."""

    def __init__(self, modules: Iterable[str] = ()) -> None:
        self.modules = frozenset(modules)
        self._found: dict[str, type] = {}

    def resolve(self, name: str) -> type | None:
        """The allowed class named ``"module:qualname"``, or None."""
        registered = _REGISTERED.get(name)
        if registered is not None:
            return registered
        found = self._found.get(name)
        if found is not None:
            return found
        module_name, colon, qualname = name.partition(":")
        if not colon or module_name not in self.modules:
            return None
        found = _defined_in(module_name, qualname)
        if found is not None:
            self._found[name] = found
        return found

    def allows(self, cls: type) -> bool:
        """Whether values of ``cls`` may travel: the allow-list resolves its name to this very class."""
        return self.resolve(class_name(cls)) is cls

    @staticmethod
    def name_of(cls: type) -> str:
        """The name a payload gives a class: ``"module:qualname"``."""
        return class_name(cls)

    def __repr__(self) -> str:
        return f"PayloadTypes(modules={sorted(self.modules)!r})"


def _defined_in(module_name: str, qualname: str) -> type | None:
    """The payload class ``qualname`` defined in the (already imported) module ``module_name``, or None."""
    obj: object = sys.modules.get(module_name)
    if obj is None:
        return None
    for part in qualname.split("."):
        if not part.isidentifier():  # "<locals>": a class defined in a function is not an attribute
            return None
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if not isinstance(obj, type) or obj.__module__ != module_name or obj.__qualname__ != qualname:
        return None  # imported into the module from elsewhere, or an alias: not defined there
    return obj if is_payload_class(obj) else None
