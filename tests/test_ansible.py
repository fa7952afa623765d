"""The Ansible deployment: syntax check, ansible-lint, and a template that matches the schema."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from kiosk.config import SECTIONS

REPO = Path(__file__).resolve().parents[1]
ANSIBLE = REPO / "deploy" / "ansible"
TEMPLATE = ANSIBLE / "roles" / "kiosk" / "templates" / "kiosk.toml.j2"
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
LINT = Path(sys.executable).with_name("ansible-lint")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False, timeout=300)


def test_playbook_passes_syntax_check() -> None:
    result = _run(
        [
            str(PLAYBOOK),
            "--syntax-check",
            "-i",
            str(ANSIBLE / "inventory.example.yml"),
            str(ANSIBLE / "site.yml"),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_passes() -> None:
    result = _run([str(LINT), "--nocolor", str(ANSIBLE)])
    assert result.returncode == 0, result.stdout + result.stderr


def _template_keys() -> list[tuple[str, str]]:
    """(section, key) for every key the template writes."""
    keys: list[tuple[str, str]] = []
    section = ""
    for line in TEMPLATE.read_text(encoding="utf-8").splitlines():
        if header := re.fullmatch(r"\[([a-z_]+)\]\s*", line):
            section = header.group(1)
        elif assignment := re.match(r"([a-z_][a-z0-9_]*)\s*=", line):
            keys.append((section, assignment.group(1)))
    return keys


def test_template_writes_only_keys_of_the_config_schema() -> None:
    keys = _template_keys()
    assert len(keys) >= 20  # the regex found the template's keys
    unknown = [
        f"{section}.{key}"
        for section, key in keys
        if section not in SECTIONS
        or key not in {f.name for f in dataclasses.fields(SECTIONS[section])}
    ]
    assert unknown == [], f"kiosk.toml.j2 writes keys kiosk.config does not know: {unknown}"
    assert len(set(keys)) == len(keys), "a key is written twice"
