"""One dataclass <-> JSON-able dict converter for every config that a checkpoint or a run stores.

``to_dict(config)`` turns a (nested) dataclass into plain dicts, lists and scalars;
``from_dict(cls, values)`` rebuilds it from its type hints: nested dataclasses, ``tuple[...]``,
``list[...]``, ``X | None``. Unknown keys are an error (a typo in a config must not be ignored);
missing keys take the dataclass's defaults.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from worldsim.errors import WorldsimError


def to_dict(config: Any) -> Any:
    """A dataclass (or list/tuple/dict of them) as JSON-able values; tuples become lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {field.name: to_dict(getattr(config, field.name)) for field in dataclasses.fields(config)}
    if isinstance(config, list | tuple):
        return [to_dict(value) for value in config]
    if isinstance(config, dict):
        return {key: to_dict(value) for key, value in config.items()}
    return config


def from_dict[T](cls: type[T], values: dict[str, Any] | None, *, where: str = "") -> T:
    """Build ``cls`` (a dataclass) from ``values``, converting nested fields by their type hints."""
    name = where or cls.__name__
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise WorldsimError(f"config {name} must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise WorldsimError(f"config {name} has unknown keys {unknown}: the known ones are {sorted(fields)}")
    converted = {key: _convert(hints[key], value, f"{name}.{key}") for key, value in values.items()}
    try:
        return cls(**converted)
    except (TypeError, ValueError) as error:
        if isinstance(error, WorldsimError):
            raise
        raise WorldsimError(f"config {name} is not valid: {error}") from error


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        return _convert(options[0], value, where) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if origin is tuple:
        inner = args[0] if args else Any
        return tuple(_convert(inner, item, where) for item in value)
    if origin is list:
        inner = args[0] if args else Any
        return [_convert(inner, item, where) for item in value]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
