"""Where a key is written in a TOML file, for error messages.

:mod:`tomllib` gives a mapping without line numbers, so the text is scanned once more, line by
line, following ``[table]`` and ``[[array]]`` headers, dotted keys (``mqtt.enabled = true``),
quoted keys and inline tables: the key ``enabled`` of ``[mqtt]`` is found there, never under
``[web]``. Multi-line strings are skipped. Only text :mod:`tomllib` accepted is scanned.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cached_property

KeyPath = tuple[str, ...]

_KEY_PART = re.compile(r"""[ \t]*([A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')[ \t]*""")
_MULTILINE_QUOTES = ('"""', "'''")


@dataclass(frozen=True)
class _Entry:
    path: KeyPath  # the table's or key's full dotted path
    line: int
    inline_table: bool  # the value is written as { ... } on this line


class KeyLines:
    """The lines of a TOML text where tables and keys are defined."""

    def __init__(self, text: str) -> None:
        self._text = text

    def line(self, *path: str) -> int | None:
        """The first line defining ``path`` (a section, or a section and key) or something
        inside it; for a key inside an inline table, the table's line; None if not written."""
        for entry in self._entries:
            if entry.path[: len(path)] == path:
                return entry.line
        for entry in self._entries:
            if entry.inline_table and path[: len(entry.path)] == entry.path:
                return entry.line
        return None

    @cached_property
    def _entries(self) -> list[_Entry]:
        entries: list[_Entry] = []
        table: KeyPath = ()
        open_quote = ""  # the closing quotes of a multi-line string still open
        for number, text in enumerate(self._text.splitlines(), start=1):
            if open_quote:
                if open_quote in text:
                    open_quote = ""
                continue
            header = _header(text)
            if header is not None:
                table = header
                entries.append(_Entry(table, number, inline_table=False))
                continue
            found = _dotted_key(text, 0)
            if found is None or not text.startswith("=", found[1]):
                continue
            value = text[found[1] + 1 :].lstrip()
            entries.append(_Entry(table + found[0], number, value.startswith("{")))
            open_quote = next((q for q in _MULTILINE_QUOTES if value.count(q) == 1), "")
        return entries


def _header(text: str) -> KeyPath | None:
    """The path of a ``[table]`` or ``[[array]]`` header line; None for any other line."""
    stripped = text.lstrip()
    brackets = "[[" if stripped.startswith("[[") else "[" if stripped.startswith("[") else ""
    found = _dotted_key(stripped, len(brackets)) if brackets else None
    if found is None:
        return None
    path, end = found
    close = "]" * len(brackets)
    rest = stripped[end + len(close) :].strip()
    if stripped.startswith(close, end) and (not rest or rest.startswith("#")):
        return path
    return None


def _dotted_key(text: str, start: int) -> tuple[KeyPath, int] | None:
    """The dotted key at ``start`` and the index after it; None if there is none."""
    parts: list[str] = []
    position = start
    while match := _KEY_PART.match(text, position):
        part = _unquote(match.group(1))
        if part is None:
            return None
        parts.append(part)
        position = match.end()
        if not text.startswith(".", position):
            return tuple(parts), position
        position += 1
    return None


def _unquote(token: str) -> str | None:
    if token[0] not in "\"'":
        return token
    try:
        return str(tomllib.loads(f"k = {token}")["k"])
    except tomllib.TOMLDecodeError:
        return None
