"""Typed kiosk configuration: one TOML file, validated once at start, frozen afterwards.

Layers, in order: defaults in the schema's dataclasses, then the TOML file, then
``KIOSK_<SECTION>_<KEY>`` environment variables for the keys marked secret.
Every key carries a one-line description in its field metadata; the example
file ``deploy/kiosk.example.toml`` is generated from them (``kiosk config example``).

A wrong type, an unknown key or an impossible value raises :class:`ConfigError`
naming the file, the line, the key and what is allowed; the CLI turns it into exit code 78.
What the file points at (directories, salt, TLS files) is checked by :mod:`kiosk.cli.preflight`.

The parts: :mod:`~kiosk.config.keys` (declaring a key, checking one value),
:mod:`~kiosk.config.values` (ids, hours, secrets, pins, frame sources),
:mod:`~kiosk.config.schema` (the sections), :mod:`~kiosk.config.lines` (a key's line in
the file), :mod:`~kiosk.config.loader` (reading and validating),
:mod:`~kiosk.config.crosscheck` (keys that must agree) and :mod:`~kiosk.config.example`.
Importing it loads the standard library only.
"""

from kiosk.config.crosscheck import SITE_SALT_FIX, site_wide_rules
from kiosk.config.example import example_toml
from kiosk.config.keys import ConfigError, key_bounds
from kiosk.config.loader import (
    DEFAULT_CONFIG_PATH,
    EX_CONFIG,
    MAX_CONFIG_BYTES,
    load_config,
    parse_config,
    read_relay_wiring,
)
from kiosk.config.schema import (
    FEVER_MAX_C,
    FEVER_MIN_C,
    SECTIONS,
    CameraSection,
    ConfirmMode,
    CredentialsSection,
    Decoder,
    Direction,
    GateSection,
    KioskConfig,
    KioskSection,
    Language,
    LogSection,
    Mode,
    MqttProtocol,
    MqttSection,
    NationalQrPolicy,
    Pin,
    RelayMode,
    RulesSection,
    ThermometerSection,
    WebSection,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "EX_CONFIG",
    "FEVER_MAX_C",
    "FEVER_MIN_C",
    "MAX_CONFIG_BYTES",
    "SECTIONS",
    "SITE_SALT_FIX",
    "CameraSection",
    "ConfigError",
    "ConfirmMode",
    "CredentialsSection",
    "Decoder",
    "Direction",
    "GateSection",
    "KioskConfig",
    "KioskSection",
    "Language",
    "LogSection",
    "Mode",
    "MqttProtocol",
    "MqttSection",
    "NationalQrPolicy",
    "Pin",
    "RelayMode",
    "RulesSection",
    "ThermometerSection",
    "WebSection",
    "example_toml",
    "key_bounds",
    "load_config",
    "parse_config",
    "read_relay_wiring",
    "site_wide_rules",
]
