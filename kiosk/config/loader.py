"""Reading and validating the configuration: defaults, then the TOML file, then the secret keys'
``KIOSK_<SECTION>_<KEY>`` environment variables, into a frozen :class:`KioskConfig`."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiosk.config.crosscheck import cross_check
from kiosk.config.keys import ConfigError, convert, type_problem, value_problem
from kiosk.config.lines import KeyLines
from kiosk.config.schema import SECTIONS, GateSection, KioskConfig

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/kiosk.toml")
EX_CONFIG = 78  # sysexits.h: configuration error
MAX_CONFIG_BYTES = 1024 * 1024  # a kiosk.toml is a few KiB; more is a mistake or an attack
_RELAY_WIRING = ("relay_pin", "relay_active_high")


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> KioskConfig:
    """Read, merge and validate the configuration; raise ConfigError on any problem."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    raw, text = read_toml(path)
    return parse_config(raw, source=str(path), text=text, env=os.environ if env is None else env)


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """A config file's TOML mapping and text; ConfigError if it cannot be read or parsed."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(source, "", f"larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(source, "", "not valid TOML: nested too deeply") from None
    return raw, text


def read_relay_wiring(path: str | Path) -> tuple[int, bool]:
    """``gate.relay_pin`` and ``gate.relay_active_high`` from a config file, even when another
    key of it is wrong: releasing the relay must not depend on the rest of the file.

    :raises ConfigError: the file cannot be read or parsed, or the relay keys themselves are wrong.
    """
    try:
        config = load_config(path)
        return config.gate.relay_pin, config.gate.relay_active_high
    except ConfigError as exc:
        if not exc.key or exc.key == "gate" or exc.key.removeprefix("gate.") in _RELAY_WIRING:
            raise
    text = Path(path).read_text(encoding="utf-8")  # it parsed a moment ago
    gate = tomllib.loads(text).get("gate", {})
    wiring = {key: gate[key] for key in _RELAY_WIRING if key in gate}
    relay = parse_section("gate", GateSection, wiring, str(path), KeyLines(text), {})
    return relay.relay_pin, relay.relay_active_high


def parse_config(
    raw: Mapping[str, Any],
    *,
    source: str = "<mapping>",
    text: str = "",
    env: Mapping[str, str] | None = None,
) -> KioskConfig:
    """Validate a mapping shaped like the TOML file and return the frozen config."""
    env = env or {}
    lines = KeyLines(text)
    for name in raw:
        if name not in SECTIONS:
            allowed = ", ".join(SECTIONS)
            raise ConfigError(
                source, name, f"unknown section; allowed: {allowed}", lines.line(name)
            )
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, Mapping):
            raise ConfigError(source, name, f"must be a table ([{name}])", lines.line(name))
        sections[name] = parse_section(name, cls, table, source, lines, env)
    config = KioskConfig(**sections, source=source)
    cross_check(config, lines)
    return config


def parse_section(
    name: str,
    cls: type,
    table: Mapping[str, Any],
    source: str,
    lines: KeyLines,
    env: Mapping[str, str],
) -> Any:
    """The section ``cls`` from its TOML table, every key checked; ``name`` is the table's
    dotted path (``report.smtp``), used in messages and to find a key's line."""
    table_path = name.split(".")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            allowed = ", ".join(fields)
            raise ConfigError(
                source,
                f"{name}.{key}",
                f"unknown key; allowed: {allowed}",
                lines.line(*table_path, key),
            )
    values: dict[str, Any] = {}
    for key, fld in fields.items():
        dotted = f"{name}.{key}"
        env_name = f"KIOSK_{name}_{key}".upper()
        if fld.metadata["secret"] and env_name in env:
            problem = value_problem(env[env_name], fld.metadata)
            if problem:
                raise ConfigError(source, dotted, f"(from ${env_name}) {problem}")
            values[key] = env[env_name]
            continue
        if key not in table:
            continue
        value = table[key]
        problem = type_problem(value, hints[key])
        if problem is None:
            problem = value_problem(value, fld.metadata)
        if problem:
            shown = "the value" if fld.metadata["secret"] else repr(value)  # never echo a secret
            raise ConfigError(source, dotted, f"{shown} {problem}", lines.line(*table_path, key))
        values[key] = convert(value, hints[key])
    return cls(**values)
