"""How the kiosk's modules import each other: no cycles anywhere in kiosk/, and a status-page
process that loads none of the kiosk's heavy parts.

The graph counts the imports that run when a module is loaded: statements in the module's
body, also inside a module-level ``if``/``try``/``with``, but not those under
``if TYPE_CHECKING:`` and not those inside a function or class (run later, when called).
``from package import name`` is an edge to ``package.name`` when that is a module, else to
``package``; loading ``a.b.c`` also loads ``a.b``, but that implied edge is not counted (every
package whose ``__init__`` re-exports a submodule would otherwise be a cycle). kiosk/ imports
absolutely; a relative import fails the test rather than being missed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "gpiozero", "paho", "cbor2", "cryptography")


def modules() -> dict[str, Path]:
    """Every module under kiosk/ by its dotted name (a package by its own name)."""
    found = {}
    for path in sorted((ROOT / "kiosk").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements run when a module with ``body`` is loaded."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level(block)
            for handler in node.handlers:
                yield from _module_level(handler.body)
        elif isinstance(node, ast.With):
            yield from _module_level(node.body)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The kiosk modules that module ``name`` imports when it is loaded."""
    found: set[str] = set()
    for node in _module_level(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        assert not node.level, f"{name} imports relatively: the graph reads absolute imports"
        origin = str(node.module)
        for alias in node.names:
            child = f"{origin}.{alias.name}"
            found.add(child if child in known else origin)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    """Module → the kiosk modules it imports when loaded."""
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, …, a]``, or None (a depth-first search for a back edge)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                done.add(path.pop())
                stack.pop()
            elif following in path:
                return [*path[path.index(following) :], following]
            elif following not in done:
                path.append(following)
                stack.append(iter(sorted(graph[following])))
    return None


def test_the_graph_sees_the_imports_it_should() -> None:
    graph = import_graph()
    assert "kiosk.web.pipe" in graph["kiosk.web.child"]  # from kiosk.web.pipe import …
    assert "kiosk.web.api" in graph["kiosk.web.app"]  # from kiosk.web import api
    assert "kiosk.run.engine" not in graph["kiosk.run.statuspage"]  # under TYPE_CHECKING only
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_of_the_kiosk_imports_itself_through_others() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def loaded_by(module: str) -> set[str]:
    """The top-level packages loaded when a fresh interpreter imports ``module``."""
    loaded = subprocess.run(
        [sys.executable, "-c", f"import {module}, sys; print(sorted(sys.modules))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    top = {name.split(".")[0] for name in loaded.strip("[]\n").replace("'", "").split(", ")}
    assert "kiosk" in top  # the list was read
    return top


def test_the_status_page_process_loads_none_of_the_kiosks_heavy_parts() -> None:
    """The child's entry module: no numpy, gpiozero, paho, cbor2, cryptography (a Pi would
    spend seconds importing them before serving a page)."""
    top = loaded_by("kiosk.web.child")
    assert "flask" in top
    assert sorted(top.intersection(HEAVY)) == []


def test_deciding_and_operator_code_never_imports_the_running_kiosk() -> None:
    """The dependency points down: kiosk.run composes kiosk.decide and kiosk.operator, so
    neither of those imports kiosk.run, not even for type checking."""
    upward = sorted(
        f"{name} imports {imported}"
        for name, path in modules().items()
        if name.startswith(("kiosk.decide", "kiosk.operator"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for imported in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [str(node.module)]
        )
        if imported == "kiosk.run" or imported.startswith("kiosk.run.")
    )
    assert upward == []


def test_the_health_vocabulary_loads_no_gpio_library() -> None:
    """The parts and the health document are read by code that drives no device."""
    assert "gpiozero" not in loaded_by("kiosk.run.health")
