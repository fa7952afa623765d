"""The ``hcert`` payload against the EU DCC JSON schema (vendored in ``schemas/``, see its
README), picked by the payload's ``ver`` (1.0.x … 1.3.x), and the one-entry rule of the
specification (exactly one of ``v``, ``t``, ``r``, holding exactly one entry)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

MAX_DEPTH = 8  # the schema's deepest value is 4 levels down
MAX_INT = 1 << 53
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_SCHEMAS = {(1, 0): "1.0.1", (1, 1): "1.1.0", (1, 2): "1.2.1", (1, 3): "1.3.3"}


class SchemaError(ValueError):
    """The payload does not follow the DCC schema; the message says where."""


def check_hcert(raw: object) -> dict[str, Any]:
    """The payload as JSON values, validated; SchemaError says why not."""
    payload = _json(raw, 0)
    if not isinstance(payload, dict):
        raise SchemaError("the hcert is not a map")
    # Early issuers wrote the absent groups as null; the EU apps read that as absent.
    payload = {key: value for key, value in payload.items() if value is not None}
    version = payload.get("ver")
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    schema = _SCHEMAS.get((int(match[1]), int(match[2]))) if match else None
    if schema is None:
        raise SchemaError(f"schema version {version!r} is not supported (1.0.x-1.3.x)")
    error = next(iter(_validator(schema).iter_errors(payload)), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the payload"
        raise SchemaError(f"{where}: {error.validator} check failed")
    groups = [key for key in ("v", "t", "r") if key in payload]
    if len(groups) != 1 or len(payload[groups[0]]) != 1:
        raise SchemaError("a DCC must hold exactly one entry of one type")
    return payload


@cache
def _validator(version: str) -> Draft202012Validator:
    text = resources.files(__package__).joinpath("schemas", f"{version}.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


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
