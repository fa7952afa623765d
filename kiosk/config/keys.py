"""Declaring a config key and checking one TOML value against its declaration.

A key is a dataclass field made by :func:`key`: its default, a one-line description, optional
bounds and a check. The field's type says which TOML values it takes: ``bool``, ``int``,
``float``, ``str``, a ``Literal`` of allowed values, or a union of those (``int |
Literal[False]``: a pin number or ``false``). :func:`type_problem` and :func:`convert` handle
each member of a union on its own, so every union is checked member by member.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

Check = Callable[[Any], str | None]


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names file, key and what is allowed."""

    def __init__(
        self, source: str, key: str, problem: str, line: int | None = None, *, fix: str = ""
    ) -> None:
        self.source, self.key, self.problem, self.line, self.fix = source, key, problem, line, fix
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


def key(
    default: Any,
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    check: Check | None = None,
    secret: bool = False,
) -> Any:
    """Declare a config key: its default, one-line description and allowed values."""
    meta = {"doc": doc, "low": low, "high": high, "check": check, "secret": secret}
    return dataclasses.field(default=default, metadata=meta)


def key_bounds(section: type[Any], name: str) -> tuple[float, float]:
    """The ``low`` and ``high`` a section's key is validated against."""
    meta = next(f.metadata for f in dataclasses.fields(section) if f.name == name)
    return meta["low"], meta["high"]


def members(hint: Any) -> tuple[Any, ...]:
    """The kinds of value a key's type allows: the members of a union, else the type itself.

    :raises TypeError: a kind no TOML value converts to (a schema mistake, found by the tests).
    """
    kinds = typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)
    for kind in kinds:
        if typing.get_origin(kind) is not Literal and kind not in _DESCRIPTIONS:
            raise TypeError(f"no TOML value converts to {kind!r}")
    return kinds


def type_problem(value: Any, hint: Any) -> str | None:
    """What is wrong with the type of ``value`` for a key typed ``hint``; None if nothing."""
    kinds = members(hint)
    if any(_accepts(kind, value) for kind in kinds):
        return None
    if len(kinds) == 1 and typing.get_origin(hint) is Literal:
        return "is not allowed; choose one of: " + ", ".join(map(str, typing.get_args(hint)))
    return "must be " + " or ".join(_describe(kind) for kind in kinds)


def convert(value: Any, hint: Any) -> Any:
    """``value`` as the first kind of ``hint`` that accepts it (a whole number for a float
    key becomes a float); call only when :func:`type_problem` found nothing."""
    kind = next(kind for kind in members(hint) if _accepts(kind, value))
    if kind == STRINGS:
        return tuple(value)
    return float(value) if kind is float else value


def value_problem(value: Any, meta: Mapping[str, Any]) -> str | None:
    """What is wrong with a well-typed value: out of the key's bounds, or refused by its check."""
    low, high, check = meta["low"], meta["high"], meta["check"]
    if low is not None and not low <= value <= high:
        return f"is out of range: allowed {low:g} to {high:g}"
    return check(value) if check else None


def toml_value(value: Any) -> str:
    """``value`` written as in a TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return repr(value)


_UNIONS = (types.UnionType, typing.Union)
STRINGS = tuple[str, ...]  # a TOML array of strings, held as a tuple
_DESCRIPTIONS: Mapping[Any, str] = {
    STRINGS: "a list of strings",
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
}


def _accepts(kind: Any, value: Any) -> bool:
    if typing.get_origin(kind) is Literal:  # False is not 0, "5" is not 5
        allowed = typing.get_args(kind)
        return any(type(value) is type(choice) and value == choice for choice in allowed)
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float)
    if kind == STRINGS:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, kind)


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return " or ".join(toml_value(allowed) for allowed in typing.get_args(kind))
    return _DESCRIPTIONS[kind]
