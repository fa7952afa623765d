"""The example configuration file, generated from the schema: every key with its default,
description and allowed values (``deploy/kiosk.example.toml``, ``kiosk config example``)."""

from __future__ import annotations

import dataclasses
import typing

from kiosk.config.keys import toml_value
from kiosk.config.schema import SECTIONS


def example_toml() -> str:
    """The documented example file: every key with its default and description."""
    lines = [
        "# Entrance kiosk configuration. Every key is optional; shown with its default.",
        "# Secrets may instead come from the environment: KIOSK_<SECTION>_<KEY>.",
        "",
    ]
    for name, cls in SECTIONS.items():
        lines += section_lines(name, cls)
    return "\n".join(lines)


def section_lines(name: str, cls: type) -> list[str]:
    """The lines of one section: its header, then every key with its default and description,
    then an empty line."""
    lines = [f"[{name}]", f"# {cls.__doc__}"]
    for fld in dataclasses.fields(cls):
        meta = fld.metadata
        allowed = ""
        choices = typing.get_args(typing.get_type_hints(cls)[fld.name])
        if all(isinstance(choice, str) for choice in choices) and choices:
            allowed = " (one of: " + ", ".join(choices) + ")"
        if meta["low"] is not None:
            allowed = f" ({meta['low']:g} to {meta['high']:g})"
        secret = " [secret: KIOSK_" + f"{name}_{fld.name}".upper() + "]" if meta["secret"] else ""
        lines.append(f"# {meta['doc']}{allowed}{secret}")
        lines.append(f"{fld.name} = {toml_value(fld.default)}")
    lines.append("")
    return lines
