"""Where ``Settings.from_env`` reads its values: the ``KFLOW_*`` environment variables and, optionally, a TOML file
(``kflow --config FILE``, ``KFLOW_CONFIG``); a variable that is set wins over the file.

Both are pydantic-settings sources yielding raw text keyed by variable name, so every value goes through the same
validators whatever its origin: a TOML number, boolean or (for ``[cassandra] replication``) table is turned into
the text the variable would hold. A pydantic ``ValidationError`` becomes one ``SettingsError`` line naming the
variable (and the file key it came from), never echoing a value.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource, TomlConfigSettingsSource

from streams._errors import SettingsError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

TABLES = ("kafka", "cassandra")
"""The TOML tables of the configuration file; every other key is at the top level."""


class Variables(PydanticBaseSettingsSource):
    """The variables ``names`` that ``env`` has, each looked up by its exact name (case-sensitive)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str], names: Iterable[str]) -> None:
        super().__init__(settings_cls)
        self.values = {name: env[name] for name in names if name in env}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The raw value of ``field`` (by its variable name) and that name."""
        name = field.validation_alias if isinstance(field.validation_alias, str) else field_name
        return self.values.get(name), name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


class ConfigFile(TomlConfigSettingsSource):
    """A TOML configuration file, its keys (``topic_prefix``, ``kafka.security_protocol``, …) mapped to variable names
    by ``keys``.

    Raises:
        SettingsError: the file is missing, unreadable or not TOML, has a key kflow does not know, or a value that
            is not a string, number or boolean (the message names the file and the key).
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path, keys: Mapping[str, str], given_by: str) -> None:
        if not path.is_file():
            raise SettingsError(f"{given_by}: no such file {path}")
        try:
            super().__init__(settings_cls, toml_file=path)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{given_by}: {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise SettingsError(f"{given_by}: cannot read {path}: {exc.strerror or exc}") from None
        self.path = path
        self.values: dict[str, str] = {}
        self.keys: dict[str, str] = {}  # variable -> key in the file
        for key, value in _flattened(self.toml_data):
            name = keys.get(key)
            if name is None:
                raise SettingsError(f"{path}: unknown setting {key} (docs/api.md, Configuration, lists them)")
            self.values[name] = _text(value, f"{path}: {key}")
            self.keys[name] = key

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The raw value of ``field`` (by its variable name) and that name."""
        name = field.validation_alias if isinstance(field.validation_alias, str) else field_name
        return self.values.get(name), name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def _flattened(data: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        if key in TABLES and isinstance(value, dict):
            yield from ((f"{key}.{inner}", item) for inner, item in value.items())
        else:
            yield key, value


def _text(value: object, where: str) -> str:
    """A TOML value as the text its variable would hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict):  # an inline table: [cassandra] replication = {class = "…", dc1 = 3}
        return json.dumps(value)
    raise SettingsError(f"{where} must be a string, a number or a boolean, got a {type(value).__name__}")


def settings_error(error: ValidationError, file: ConfigFile | None, env: Variables) -> SettingsError:
    """The first problem of ``error`` as one line naming the variable (and where in ``file`` it was set when ``env``
    did not set it); the values themselves are never shown."""
    first = error.errors(include_url=False, include_input=False)[0]
    cause = first.get("ctx", {}).get("error")
    name = str(first["loc"][0]) if first["loc"] else ""
    message = str(cause) if isinstance(cause, SettingsError) else f"{name}: {first['msg']}"
    if file is not None and name in file.keys and name not in env.values:
        message += f" (from {file.keys[name]} in {file.path})"
    return SettingsError(message)
