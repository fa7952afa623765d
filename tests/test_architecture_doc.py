"""docs/architecture.md names every module under kiosk/ once, and no module that is gone.

A row's first column names its modules: a full path (``kiosk/run/engine.py``, or a folder
``kiosk/gate_parts/``), then bare names in the same folder (``parts.py``).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _named_modules() -> Counter[str]:
    """Each module path the module table names, with how many rows name it."""
    text = (REPO / "docs" / "architecture.md").read_text("utf-8")
    section = re.split(r"\n## ", text.split("\n## Modules\n", 1)[1], maxsplit=1)[0]
    named: Counter[str] = Counter()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        folder = ""
        for token in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if token.startswith("kiosk/"):
                folder = token if token.endswith("/") else token.rsplit("/", 1)[0] + "/"
                if token.endswith("/"):
                    continue
                named[token] += 1
            else:
                named[folder + token] += 1
    return named


def test_every_module_has_one_row() -> None:
    modules = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "kiosk").rglob("*.py")
        if path.name != "__init__.py"
    }
    named = _named_modules()
    assert sorted(modules - set(named)) == []
    assert sorted(set(named) - modules) == []
    assert sorted(path for path, rows in named.items() if rows > 1) == []
