"""The DCC schema checks compiled from the vendored schemas give jsonschema's verdict on every
test vector's payload and on many broken variants of them."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from kiosk.credentials.dcc.schema import SCHEMA_FILES, compiled, schema_document
from tests.dcc_support import vaccination, vector_files

NAMES = sorted(SCHEMA_FILES.values())


def payloads() -> list[dict[str, Any]]:
    """Ours, and a vector's payload for each schema version and type the vectors hold."""
    found = {("1.3.0", "v"): vaccination()}
    for path in vector_files():
        value = json.loads(path.read_text("utf-8")).get("JSON")
        if isinstance(value, dict):
            kinds = "".join(kind for kind in "vtr" if value.get(kind))
            found.setdefault((str(value.get("ver")), kinds), value)
    return list(found.values())


def variants(value: Any) -> Iterator[Any]:
    """``value`` with one place changed: removed, retyped, emptied, too long, doubled."""
    yield value
    if isinstance(value, dict):
        for key in value:
            for changed in variants(value[key]):
                yield {**value, key: changed}
            yield {k: v for k, v in value.items() if k != key}
    elif isinstance(value, list):
        yield []
        yield value + value
        if value:
            for changed in variants(value[0]):
                yield [changed, *value[1:]]
    elif isinstance(value, str):
        yield 7
        yield ""
        yield "x" * 200
        yield value + "\n"
    elif isinstance(value, int) and not isinstance(value, bool):
        yield str(value)
        yield value + 1000
        yield -1
        yield 1.0
        yield True
    yield None


@pytest.mark.parametrize("name", NAMES)
def test_compiled_checks_agree_with_jsonschema(name: str) -> None:
    reference = Draft202012Validator(schema_document(name))
    check = compiled(name)
    tried = valid = 0
    for payload in payloads():
        for variant in variants(copy.deepcopy(payload)):
            expected = reference.is_valid(variant)
            assert check(variant) == expected, (name, variant)
            tried += 1
            valid += expected
    assert tried > 1000 and 0 < valid < tried, (tried, valid)
