"""JSON from untrusted peers, parsed with bounds: size and nesting are checked before parsing.

``json.loads`` recurses once per nesting level, so a message nested a few thousand levels
deep raises ``RecursionError`` out of any caller that only expects ``ValueError``. Every
message that arrives over the network (MQTT payloads, documents, web requests) goes through
:func:`loads` instead, which refuses, as :class:`JSONLimitError` (a ``ValueError``):

- payloads larger than ``max_bytes``;
- nesting deeper than ``max_depth`` (counted on the raw bytes, before any parsing);
- bytes that are not UTF-8, and text that is not JSON;
- ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON and no store accepts, and
  numbers too large for a float (``1e400``), which Python would read as infinity;
- lone surrogates (``"\\ud800"``), which no UTF-8 store or encoder accepts;
- integers outside the signed 64-bit range, which SQLite and PostgreSQL cannot store.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

DEFAULT_MAX_DEPTH = 32
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_OPEN = frozenset(b"[{")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# A JSON string: a quote, runs of plain bytes or escapes, a quote (the unrolled-loop form).
# An unterminated one runs to the end, so the engine never retries from each later quote
# (that retry made a 256 KiB run of escaped quotes take minutes).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
# Only an escape can put a surrogate into strictly decoded UTF-8 text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Outside strings, only these numbers can leave 64 bits or overflow a float (an exponent
# follows a digit; the e of true and false does not).
_LARGE_NUMBER = re.compile(rb"\d{19}|\d[eE]")


class JSONLimitError(ValueError):
    """A payload refused before or while parsing; the text says why."""


def _outside_strings(raw: bytes) -> bytes:
    """``raw`` with every complete JSON string cut out, at C speed, not a loop per byte."""
    if b'\\"' in raw:  # an escaped quote: only the full string grammar can tell
        return _STRING.sub(b"", raw)
    return b"".join(raw.split(b'"')[0::2])


def _depth(code: bytes, limit: int) -> int:
    """The deepest nesting of arrays and objects in ``code`` (strings cut out), counting only
    up to ``limit + 1``: a linear scan, no parse."""
    depth = deepest = 0
    for byte in code.translate(None, _NOT_BRACKET):
        if byte in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONLimitError(f"number {text[:24]} is too large for a float")
    return value


def _int64(text: str) -> int:
    if len(text.lstrip("-")) > len(str(INT64_MAX)):  # also spares int() its 4,300-digit limit
        raise JSONLimitError(f"integer {text[:24]}… is outside the 64-bit range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise JSONLimitError(f"integer {text[:24]}… is outside the 64-bit range")
    return value


def _check_text(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise JSONLimitError("a string holds a lone surrogate") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads(raw: bytes | str, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse ``raw`` as strict JSON within the bounds; :class:`JSONLimitError` if it is not."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > max_bytes:
        raise JSONLimitError(f"larger than {max_bytes} bytes ({len(data)})")
    code = _outside_strings(data)
    if _depth(code, max_depth) > max_depth:
        raise JSONLimitError(f"nested deeper than {max_depth} levels")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONLimitError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    # The number hooks run once per number in Python: only where a number could need them.
    numbers: dict[str, Any] = (
        {"parse_int": _int64, "parse_float": _finite} if _LARGE_NUMBER.search(code) else {}
    )
    try:
        value = json.loads(text, parse_constant=_refuse_constant, **numbers)
    except json.JSONDecodeError as exc:
        raise JSONLimitError(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # the depth check makes this unreachable; kept as a last guard
        raise JSONLimitError(f"nested deeper than {max_depth} levels") from None
    if _SURROGATE_ESCAPE.search(data):
        _check_text(value)
    return value
