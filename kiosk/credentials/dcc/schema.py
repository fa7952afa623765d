"""The ``hcert`` payload against the EU DCC JSON schema (vendored in ``schemas/``, see its
README), picked by the payload's ``ver`` (1.0.x … 1.3.x), and the one-entry rule of the
specification (exactly one of ``v``, ``t``, ``r``, holding exactly one entry).

The schemas are compiled, once each, into plain Python checks of the keywords they use (type,
properties, required, items, min/maxItems, maxLength, pattern, minimum, maximum, oneOf, anyOf,
local ``$ref``; ``format`` is an annotation, as the EU apps and jsonschema treat it). A general
JSON Schema validator (jsonschema) took 0.33 ms CPU per payload, more than the rest of a
verification (0.24 ms, signature included); these checks take 0.04 ms, and the tests hold them
to jsonschema's verdicts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any

MAX_DEPTH = 8  # the schema's deepest value is 4 levels down
MAX_INT = 1 << 53
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
SCHEMA_FILES = {(1, 0): "1.0.1", (1, 1): "1.1.0", (1, 2): "1.2.1", (1, 3): "1.3.3"}
_ANNOTATIONS = {"description", "title", "examples", "$comment", "format", "valueset-uri"}
_ANNOTATIONS |= {"$schema", "$id", "$defs"}

Check = Callable[[object], bool]


class SchemaError(ValueError):
    """The payload does not follow the DCC schema; the message says why."""


def check_hcert(raw: object) -> dict[str, Any]:
    """The payload as JSON values, validated; SchemaError says why not."""
    payload = _json(raw, 0)
    if not isinstance(payload, dict):
        raise SchemaError("the hcert is not a map")
    # Early issuers wrote the absent groups as null; the EU apps read that as absent.
    payload = {key: value for key, value in payload.items() if value is not None}
    version = payload.get("ver")
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    name = SCHEMA_FILES.get((int(match[1]), int(match[2]))) if match else None
    if name is None:
        raise SchemaError(f"schema version {version!r} is not supported (1.0.x-1.3.x)")
    if not compiled(name)(payload):
        raise SchemaError(f"the payload does not follow the DCC schema {name}")
    groups = [key for key in ("v", "t", "r") if key in payload]
    if len(groups) != 1 or len(payload[groups[0]]) != 1:
        raise SchemaError("a DCC must hold exactly one entry of one type")
    return payload


def schema_document(name: str) -> dict[str, Any]:
    """The vendored schema ``name`` (e.g. ``"1.3.3"``) as parsed JSON."""
    text = resources.files(__package__).joinpath("schemas", f"{name}.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def compiled(name: str) -> Check:
    """The check of the vendored schema ``name``: a function of a JSON value."""
    document = schema_document(name)
    definitions: dict[str, Check] = {}

    def reference(target: str) -> Check:
        prefix = "#/$defs/"
        if not target.startswith(prefix):
            raise ValueError(f"unsupported $ref {target!r}")
        key = target[len(prefix) :]
        return lambda value: definitions[key](value)  # noqa: PLW0108 (defined later)

    for key, definition in document.get("$defs", {}).items():
        definitions[key] = _compile(definition, reference)
    return _compile(document, reference)


def _compile(schema: Mapping[str, Any], reference: Callable[[str], Check]) -> Check:
    checks: list[Check] = []
    for keyword, argument in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "properties":
            checks.append(_properties(argument, reference))
        elif keyword == "items":
            checks.append(_items(_compile(argument, reference)))
        elif keyword in ("oneOf", "anyOf"):
            options = [_compile(sub, reference) for sub in argument]
            checks.append(_one_of(options) if keyword == "oneOf" else _any_of(options))
        elif keyword == "$ref":
            checks.append(reference(argument))
        else:
            checks.append(_keyword(keyword, argument))
    return lambda value: all(check(value) for check in checks)


def _properties(properties: Mapping[str, Any], reference: Callable[[str], Check]) -> Check:
    checks = {name: _compile(sub, reference) for name, sub in properties.items()}

    def check(value: object) -> bool:
        if not isinstance(value, dict):
            return True
        return all(checks[name](value[name]) for name in checks if name in value)

    return check


def _items(item: Check) -> Check:
    return lambda value: not isinstance(value, list) or all(map(item, value))


def _one_of(options: list[Check]) -> Check:
    return lambda value: sum(option(value) for option in options) == 1


def _any_of(options: list[Check]) -> Check:
    return lambda value: any(option(value) for option in options)


def _keyword(keyword: str, argument: Any) -> Check:
    if keyword == "type":
        return _TYPES[argument]
    if keyword == "required":
        return lambda v: not isinstance(v, dict) or all(name in v for name in argument)
    if keyword == "pattern":
        search = re.compile(argument).search
        return lambda v: not isinstance(v, str) or search(v) is not None
    if keyword == "maxLength":
        return lambda v: not isinstance(v, str) or len(v) <= argument
    if keyword == "minItems":
        return lambda v: not isinstance(v, list) or len(v) >= argument
    if keyword == "maxItems":
        return lambda v: not isinstance(v, list) or len(v) <= argument
    if keyword == "minimum":
        return lambda v: not _is_number(v) or v >= argument
    if keyword == "maximum":
        return lambda v: not _is_number(v) or v <= argument
    raise ValueError(f"unsupported schema keyword {keyword!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: _is_number(v) and float(v).is_integer(),  # type: ignore[arg-type]
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _json(value: object, depth: int) -> object:
    """CBOR values as JSON values (tagged dates as ISO text); SchemaError for anything else."""
    if depth > MAX_DEPTH:
        raise SchemaError(f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, str | bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise SchemaError("an integer out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SchemaError("a number that is not finite")
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise SchemaError("a map key that is not text")
        return {key: _json(item, depth + 1) for key, item in value.items()}
    raise SchemaError(f"a {type(value).__name__} value, not JSON")
