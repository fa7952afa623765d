"""Typed kiosk configuration: one TOML file, validated once at start, frozen afterwards.

Layers, in order: defaults in the dataclasses below, then the TOML file, then
``KIOSK_<SECTION>_<KEY>`` environment variables for the keys marked secret.
Every key carries a one-line description in its field metadata; the example
file ``deploy/kiosk.example.toml`` is generated from them (``kiosk config example``).

A wrong type, an unknown key or an impossible value raises :class:`ConfigError`
naming the file, the key and what is allowed; the CLI turns it into exit code 78.
What the file points at (directories, salt, TLS files) is checked by :mod:`kiosk.cli.preflight`.

Longer than most modules on purpose: it is the schema, one declaration per key with its
description and bounds, and the validation that reads it; splitting it would spread one key
over several files.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/kiosk.toml")
EX_CONFIG = 78  # sysexits.h: configuration error
MAX_CONFIG_BYTES = 1024 * 1024  # a kiosk.toml is a few KiB; more is a mistake or an attack
MIN_SALT_CHARS = 16  # the subject salt is an HMAC key (kiosk.decide.privacy.Pseudonymizer)
SITE_SALT_FIX = (
    "give every kiosk of the site the same salt: credentials.subject_salt_file ="
    ' "/etc/kiosk/site-salt" (deploy/install.sh --site-salt FILE, or the Ansible play,'
    " writes it; see docs/deploy.md)"
)
MIN_TOKEN_CHARS = 20  # API tokens and command keys: about 120 bits when random
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}\Z")
RESERVED_IDS = ("central", "operator", "homeassistant", "site")  # broker users and topics
BCM_PINS = range(2, 28)  # GPIO2..GPIO27 on the 40-pin header; 0 and 1 are the HAT EEPROM bus

Mode = Literal["gate", "screen", "checkin"]
Decoder = Literal["zxing-cpp", "pyzbar"]
MqttProtocol = Literal["5", "3.1.1"]
Direction = Literal["entry", "exit", "toggle"]
NationalQrPolicy = Literal["grant", "refer", "deny"]
ConfirmMode = Literal["receipt", "puback"]
Language = Literal["vi", "en"]
# kiosk.gate drives the relay; the mode is declared here so that loading a config needs no gpiozero
RelayMode = Literal["pulse", "hold"]


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names file, key and what is allowed."""

    def __init__(
        self, source: str, key: str, problem: str, line: int | None = None, *, fix: str = ""
    ) -> None:
        self.source, self.key, self.problem, self.line, self.fix = source, key, problem, line, fix
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


def _key(
    default: Any,
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    check: Callable[[Any], str | None] | None = None,
    secret: bool = False,
) -> Any:
    """Declare a config key: its default, one-line description and allowed values."""
    meta = {"doc": doc, "low": low, "high": high, "check": check, "secret": secret}
    return field(default=default, metadata=meta)


def _id_check(value: str) -> str | None:
    if ID_PATTERN.match(value):
        return None
    return "must be 1-32 characters of a-z, 0-9 and '-', starting with a letter or digit"


def _kiosk_id_check(value: str) -> str | None:
    if value in RESERVED_IDS:
        return f"is reserved for the broker's {value} user; choose another kiosk id"
    return _id_check(value)


def _hours_check(value: str) -> str | None:
    if not value:
        return None
    match = re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value)
    return None if match else "must be HH:MM-HH:MM (local time), or empty"


def _secret_check(minimum: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if not value or len(value) >= minimum:
            return None
        return (
            f"is too short ({len(value)} characters): use at least {minimum} random characters,"
            " e.g. `openssl rand -base64 32`"
        )

    return check


def _pin_check(value: int | bool) -> str | None:
    if value is False or value in BCM_PINS:
        return None
    return f"must be a BCM GPIO number from {BCM_PINS.start} to {BCM_PINS.stop - 1}, or false"


def _source_check(value: str) -> str | None:
    if value == "picamera2" or (value.split(":", 1)[0] in ("opencv", "folder") and ":" in value):
        return None
    return "must be 'picamera2', 'opencv:<index, /dev/videoN or file>' or 'folder:<path>'"


@dataclass(frozen=True)
class KioskSection:
    """Identity and mode of this kiosk."""

    id: str = _key(
        "kiosk-1",
        "This kiosk's id: its MQTT user name, unique on the broker",
        check=_kiosk_id_check,
    )
    site: str = _key("site-1", "The site (building) this kiosk belongs to", check=_id_check)
    mode: Mode = _key(
        "gate",
        "gate: QR and temperature drive the turnstile; screen: temperature only; "
        "checkin: QR only, records attendance and never drives the relay",
    )
    meeting: str = _key("", "checkin mode: the meeting's name, recorded with each attendance")
    direction: Direction = _key(
        "entry", "entry or exit kiosk; toggle: one kiosk for both (entry unless already inside)"
    )
    area: str = _key(
        "main", "The area this entrance leads into (occupancy is per area)", check=_id_check
    )
    state_dir: str = _key("/var/lib/kiosk", "Writable directory for the event log and salt")


@dataclass(frozen=True)
class CameraSection:
    """Where frames come from and how codes are read."""

    source: str = _key(
        "picamera2",
        "Frame source: picamera2, opencv:0, opencv:FILE, folder:DIR",
        check=_source_check,
    )
    decoder: Decoder = _key("zxing-cpp", "QR decoder backend (pyzbar on 32-bit Raspberry Pi OS)")
    rearm_after_s: float = _key(
        2.0, "Seconds a code must be out of view before it counts as a new scan", low=0.2, high=30
    )
    max_payload_bytes: int = _key(1024, "Longer QR payloads are refused", low=16, high=4096)


@dataclass(frozen=True)
class ThermometerSection:
    """The MLX90614 and the measurement protocol."""

    enabled: bool = _key(True, "Measure forehead temperature (gate and screen modes)")
    i2c_bus: int = _key(1, "I2C bus number (/dev/i2c-N)", low=0, high=20)
    address: int = _key(0x5A, "I2C address of the MLX90614 (90 = 0x5A)", low=0x03, high=0x77)
    fever_threshold_c: float = _key(
        37.5, "A confirmed reading at or above this is a fever", low=37.0, high=39.0
    )
    calibration_offset_c: float = _key(
        0.0, "Added to every reading (site calibration)", low=-5.0, high=5.0
    )
    presence_delta_c: float = _key(
        3.0, "A person is present when object exceeds ambient by this", low=0.5, high=15.0
    )
    presence_timeout_s: float = _key(
        4.0, "How long to wait for a person to step up after a scan", low=0.5, high=30.0
    )
    sample_interval_s: float = _key(
        0.1, "Seconds between samples (the sensor refreshes ~10/s)", low=0.02, high=1.0
    )
    stable_count: int = _key(
        5, "Readings that must agree before a measurement counts", low=3, high=50
    )
    stable_tolerance_c: float = _key(0.3, "How close those readings must be", low=0.05, high=2.0)
    stable_timeout_s: float = _key(
        2.0, "Give up waiting for stability after this long", low=0.2, high=20.0
    )
    retest_pause_s: float = _key(
        0.3, "Pause before re-measuring a reading over the threshold", low=0.0, high=10.0
    )
    min_plausible_c: float = _key(30.0, "Lower readings are a sensor fault", low=20.0, high=35.0)
    max_plausible_c: float = _key(43.0, "Higher readings are a sensor fault", low=39.5, high=50.0)
    retries: int = _key(2, "Retries of a failed I2C read before it is a fault", low=0, high=10)


def key_bounds(section: type[Any], key: str) -> tuple[float, float]:
    """The ``low`` and ``high`` a section's key is validated against."""
    meta = next(f.metadata for f in dataclasses.fields(section) if f.name == key)
    return meta["low"], meta["high"]


# Where a fever threshold may be set, at start (config) and later (status page, MQTT command).
FEVER_MIN_C, FEVER_MAX_C = key_bounds(ThermometerSection, "fever_threshold_c")


@dataclass(frozen=True)
class GateSection:
    """GPIO wiring (BCM numbers; false = not fitted) and relay behaviour."""

    relay_pin: int = _key(17, "Turnstile relay output", check=_pin_check)
    relay_active_high: bool = _key(False, "true if the relay board energises on a HIGH level")
    relay_mode: RelayMode = _key(
        "pulse", "pulse: release for pulse_ms; hold: release until the passage sensor fires"
    )
    pulse_ms: int = _key(500, "Relay pulse length in pulse mode", low=50, high=10_000)
    hold_timeout_s: float = _key(
        8.0, "hold mode: re-lock after this long without a passage", low=1.0, high=60.0
    )
    signal_s: float = _key(3.0, "How long the green or warning light stays on", low=0.5, high=30)
    green_light_pin: int | bool = _key(27, "Green light output", check=_pin_check)
    warning_light_pin: int | bool = _key(22, "Red warning light output", check=_pin_check)
    buzzer_pin: int | bool = _key(23, "Buzzer output", check=_pin_check)
    passage_sensor_pin: int | bool = _key(24, "Passage (beam) sensor input", check=_pin_check)
    passage_active_low: bool = _key(True, "The passage sensor pulls its input low when broken")
    fire_alarm_pin: int | bool = _key(
        25, "Fire alarm input: while active the gate is released", check=_pin_check
    )
    fire_alarm_active_low: bool = _key(True, "The fire alarm contact pulls its input low")


@dataclass(frozen=True)
class CredentialsSection:
    """Who may pass."""

    allowlist: str = _key(
        "/etc/kiosk/allowlist.csv",
        "CSV of legacy badge ids (id,kind,valid_until); empty: only signed passes",
    )
    trust_anchor: str = _key(
        "", "PEM public key that signs the trust and revocation lists (empty: no signed passes)"
    )
    trust_list: str = _key("", "Signed trust list file (issuer keys); newer ones arrive over MQTT")
    revocation_list: str = _key("", "Signed revocation list file; newer ones arrive over MQTT")
    clock_skew_s: int = _key(300, "Tolerance on pass validity times", low=0, high=3600)
    national_qr: NationalQrPolicy = _key(
        "refer", "Unsigned national-app QR codes (PC-Covid …): grant, refer to reception, deny"
    )
    subject_salt: str = _key(
        "",
        "Secret salt for pseudonymous subject ids; the same on every kiosk of a site "
        "(empty: subject_salt_file, else generated per kiosk in state_dir)",
        check=_secret_check(MIN_SALT_CHARS),
        secret=True,
    )
    subject_salt_file: str = _key(
        "",
        "File holding the site's subject salt (one line, not readable by others); "
        "deploy/install.sh and the Ansible play write /etc/kiosk/site-salt",
    )


@dataclass(frozen=True)
class RulesSection:
    """Entry rules from the source documents; 0 or empty switches a rule off."""

    health_declaration_max_age_h: float = _key(
        0.0, "Require a health declaration newer than this many hours (R4)", low=0, high=720
    )
    visitor_hours: str = _key(
        "", "Visitors only between these local times, e.g. 07:30-17:30", check=_hours_check
    )
    visitor_daily_cap: int = _key(
        0, "Most visitors admitted per day at this site", low=0, high=100_000
    )
    anti_passback: bool = _key(False, "A pass that entered cannot enter again before it exits")
    passback_grace_s: float = _key(
        10.0, "The same pass again within this is one scan, never a second grant", low=0, high=600
    )
    passback_reentry_h: float = _key(
        0.0,
        "A pass that entered and never exited may enter again after this (0: next day)",
        low=0,
        high=24,
    )
    occupancy_cap: int = _key(
        0, "Refuse entry when this many people are inside the area", low=0, high=100_000
    )


@dataclass(frozen=True)
class LogSection:
    """The local event log (outbox)."""

    path: str = _key("", "SQLite event log (empty: <state_dir>/events.db)")
    capacity: int = _key(
        200_000,
        "Rows kept; only events confirmed by central are pruned",
        low=1_000,
        high=10_000_000,
    )
    warn_ratio: float = _key(
        0.9, "Report 'log near capacity' above this fill ratio", low=0.5, high=0.99
    )
    max_age_days: float = _key(
        0.0,
        "Delete rows older than this even under capacity (0: no age limit); unconfirmed rows "
        "only past unconfirmed_max_age_days",
        low=0,
        high=3650,
    )
    unconfirmed_max_age_days: float = _key(
        30.0,
        "With mqtt.enabled, events central never confirmed are dropped (with an alert) only "
        "when the log is over capacity or max_age_days and they are older than this "
        "(0: never)",
        low=0,
        high=3650,
    )


@dataclass(frozen=True)
class MqttSection:
    """Event sync to the site broker (see docs/mqtt.md)."""

    enabled: bool = _key(False, "Sync events to the broker; without it the kiosk works offline")
    host: str = _key("localhost", "Broker host name or address")
    port: int = _key(8883, "Broker port (8883: TLS, 1883: plain)", low=1, high=65535)
    protocol: MqttProtocol = _key("5", "MQTT protocol version")
    tls: bool = _key(True, "Connect with TLS (verify the broker against ca_file)")
    ca_file: str = _key("", "CA certificate that signed the broker's (empty: system CAs)")
    cert_file: str = _key("", "Client certificate for TLS client authentication (optional)")
    key_file: str = _key("", "Private key of the client certificate")
    username: str = _key("", "MQTT user name (empty: the kiosk id)")
    password: str = _key("", "MQTT password", secret=True)
    password_file: str = _key(
        "", "File holding the MQTT password; must not be readable by group or others"
    )
    keepalive_s: int = _key(
        30,
        "MQTT keep-alive; the broker declares the kiosk offline after 1.5x this without traffic",
        low=5,
        high=600,
    )
    confirm: ConfirmMode = _key(
        "receipt",
        "receipt: an event is confirmed when central's receipt covers it; "
        "puback: when the broker accepts it (for third-party subscribers; see docs/mqtt.md)",
    )
    window: int = _key(
        5000, "Most events handed to the MQTT client and not yet confirmed", low=10, high=100_000
    )
    batch_max: int = _key(
        100, "Most events packed into one message when draining a backlog", low=1, high=500
    )
    max_message_bytes: int = _key(
        240 * 1024,
        "Largest events message in bytes (central refuses over 256 KiB; leave room for the"
        " topic under the broker's max_packet_size)",
        low=16 * 1024,
        high=255 * 1024,
    )
    resend_after_s: float = _key(
        600.0, "Send an event again if no receipt covered it after this long", low=1, high=86400
    )
    state_interval_s: float = _key(
        30.0, "Publish the retained health state at least this often", low=1, high=3600
    )
    command_key: str = _key(
        "",
        "Shared key for HMAC-signed commands; when set, unsigned commands are refused",
        check=_secret_check(MIN_TOKEN_CHARS),
        secret=True,
    )
    allow_emergency_open: bool = _key(
        False, "Accept the emergency_open command over MQTT (and offer it to Home Assistant)"
    )
    homeassistant: bool = _key(False, "Publish Home Assistant MQTT discovery for this kiosk")
    discovery_prefix: str = _key("homeassistant", "Home Assistant's discovery topic prefix")


@dataclass(frozen=True)
class WebSection:
    """The status page and the entrance display (served by waitress in a child process)."""

    enabled: bool = _key(True, "Serve the status dashboard, the display and the API")
    host: str = _key("127.0.0.1", "Address to listen on (0.0.0.0: reachable from the network)")
    port: int = _key(8080, "TCP port", low=1, high=65535)
    password_hash: str = _key(
        "",
        "Dashboard password hash (empty: the one `kiosk web set-password` saved)",
        secret=True,
    )
    api_token: str = _key(
        "",
        "Bearer token for /api/v1 (empty: login only)",
        check=_secret_check(MIN_TOKEN_CHARS),
        secret=True,
    )
    display_public: bool = _key(
        False, "Serve the entrance display to other machines too (default: this one only)"
    )
    cookie_secure: bool = _key(False, "Send the session cookie over HTTPS only")
    display_clear_s: float = _key(5.0, "Seconds a decision stays on the display", low=1, high=60)
    session_idle_s: float = _key(
        900.0,
        "Seconds without an operator request after which a dashboard login ends",
        low=60,
        high=43200,
    )
    language: Language = _key(
        "vi", "Dashboard language until an operator switches it: vi (Vietnamese) or en (English)"
    )


@dataclass(frozen=True)
class KioskConfig:
    """The whole configuration; build it with :func:`load_config`."""

    kiosk: KioskSection = field(default_factory=KioskSection)
    camera: CameraSection = field(default_factory=CameraSection)
    thermometer: ThermometerSection = field(default_factory=ThermometerSection)
    gate: GateSection = field(default_factory=GateSection)
    credentials: CredentialsSection = field(default_factory=CredentialsSection)
    rules: RulesSection = field(default_factory=RulesSection)
    log: LogSection = field(default_factory=LogSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    web: WebSection = field(default_factory=WebSection)
    source: str = "<defaults>"

    @property
    def log_path(self) -> Path:
        """Where the event log lives."""
        return Path(self.log.path) if self.log.path else Path(self.kiosk.state_dir) / "events.db"


SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(KioskConfig)[f.name]
    for f in dataclasses.fields(KioskConfig)
    if f.name != "source"
}


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> KioskConfig:
    """Read, merge and validate the configuration; raise ConfigError on any problem."""
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
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
    return parse_config(raw, source=source, text=text, env=os.environ if env is None else env)


def read_relay_wiring(path: str | Path) -> tuple[int, bool]:
    """``gate.relay_pin`` and ``gate.relay_active_high`` from a config file, even when another
    key of it is wrong: releasing the relay must not depend on the rest of the file.

    :raises ConfigError: the file cannot be read or parsed, or the relay keys themselves are wrong.
    """
    try:
        config = load_config(path)
        return config.gate.relay_pin, config.gate.relay_active_high
    except ConfigError as exc:
        if not exc.key or exc.key in ("gate", "gate.relay_pin", "gate.relay_active_high"):
            raise
    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))  # it parsed a moment ago
    gate = raw.get("gate", {})
    fields = {f.name: f for f in dataclasses.fields(GateSection)}
    values = []
    for key in ("relay_pin", "relay_active_high"):
        value = gate.get(key, fields[key].default)
        problem = _type_problem(value, typing.get_type_hints(GateSection)[key])
        problem = problem or _value_problem(value, fields[key].metadata)
        if problem:
            raise ConfigError(str(path), f"gate.{key}", f"{value!r} {problem}")
        values.append(value)
    return int(values[0]), bool(values[1])


def parse_config(
    raw: Mapping[str, Any],
    *,
    source: str = "<mapping>",
    text: str = "",
    env: Mapping[str, str] | None = None,
) -> KioskConfig:
    """Validate a mapping shaped like the TOML file and return the frozen config."""
    env = env or {}
    sections: dict[str, Any] = {}
    for name in raw:
        if name not in SECTIONS:
            raise ConfigError(
                source,
                name,
                f"unknown section; allowed: {', '.join(SECTIONS)}",
                _line_of(text, name),
            )
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, Mapping):
            raise ConfigError(
                source, name, "must be a table ([" + name + "])", _line_of(text, name)
            )
        sections[name] = _parse_section(name, cls, table, source, text, env)
    config = KioskConfig(**sections, source=source)
    _cross_check(config, text)
    return config


def _parse_section(
    name: str,
    cls: type,
    table: Mapping[str, Any],
    source: str,
    text: str,
    env: Mapping[str, str],
) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise ConfigError(
                source,
                f"{name}.{key}",
                f"unknown key; allowed: {', '.join(fields)}",
                _line_of(text, key),
            )
    values: dict[str, Any] = {}
    for key, fld in fields.items():
        dotted = f"{name}.{key}"
        env_name = f"KIOSK_{name}_{key}".upper()
        if fld.metadata["secret"] and env_name in env:
            problem = _value_problem(env[env_name], fld.metadata)
            if problem:
                raise ConfigError(source, dotted, f"(from ${env_name}) {problem}")
            values[key] = env[env_name]
            continue
        if key not in table:
            continue
        value = table[key]
        line = _line_of(text, key)
        problem = _type_problem(value, hints[key])
        if problem is None:
            problem = _value_problem(value, fld.metadata)
        if problem:
            shown = "the value" if fld.metadata["secret"] else repr(value)  # never echo a secret
            raise ConfigError(source, dotted, f"{shown} {problem}", line)
        values[key] = float(value) if hints[key] is float else value
    return cls(**values)


def _type_problem(value: Any, hint: Any) -> str | None:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        return None if value in allowed else "is not allowed; choose one of: " + ", ".join(allowed)
    if origin in (types.UnionType, typing.Union):
        if isinstance(value, bool):
            return None if value is False else "must be a pin number or false"
        return None if isinstance(value, int) else "must be a pin number or false"
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be a whole number"
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "must be a number"
    return None if isinstance(value, str) else "must be a string"


def _value_problem(value: Any, meta: Mapping[str, Any]) -> str | None:
    low, high, check = meta["low"], meta["high"], meta["check"]
    if low is not None and not low <= value <= high:
        return f"is out of range: allowed {low:g} to {high:g}"
    return check(value) if check else None


def _cross_check(config: KioskConfig, text: str) -> None:
    source, gate, thermo = config.source, config.gate, config.thermometer
    seen: dict[int, str] = {}
    for fld in dataclasses.fields(GateSection):
        if not fld.name.endswith("_pin"):
            continue
        pin = getattr(gate, fld.name)
        if pin is False:
            continue
        if pin in seen:
            raise ConfigError(
                source,
                f"gate.{fld.name}",
                f"GPIO{pin} is already used by gate.{seen[pin]}; each pin once",
                _line_of(text, fld.name),
            )
        seen[pin] = fld.name
    if not thermo.min_plausible_c < thermo.fever_threshold_c < thermo.max_plausible_c:
        raise ConfigError(
            source,
            "thermometer.fever_threshold_c",
            "must lie between min_plausible_c and max_plausible_c",
            _line_of(text, "fever_threshold_c"),
        )
    if gate.relay_mode == "hold" and gate.passage_sensor_pin is False:
        raise ConfigError(
            source,
            "gate.relay_mode",
            "hold mode re-locks on a passage, so it needs gate.passage_sensor_pin",
            _line_of(text, "relay_mode"),
        )
    mqtt = config.mqtt
    if bool(mqtt.cert_file) != bool(mqtt.key_file):
        raise ConfigError(
            source,
            "mqtt.key_file",
            "cert_file and key_file go together",
            _line_of(text, "cert_file" if mqtt.cert_file else "key_file"),
        )
    if mqtt.password and mqtt.password_file:
        raise ConfigError(
            source,
            "mqtt.password_file",
            "give password or password_file, not both",
            _line_of(text, "password_file"),
        )
    _check_site_salt(config, text)
    if config.kiosk.mode == "checkin" and not config.kiosk.meeting:
        raise ConfigError(
            source, "kiosk.meeting", "checkin mode needs a meeting name", _line_of(text, "mode")
        )
    if config.kiosk.mode == "screen" and not thermo.enabled:
        raise ConfigError(
            source,
            "thermometer.enabled",
            "screen mode measures temperature only, so it needs the thermometer",
            _line_of(text, "enabled"),
        )


def site_wide_rules(config: KioskConfig) -> list[str]:
    """The configured rules that match one person across the site's kiosks (need one salt).

    None without MQTT: a kiosk learns its neighbours' passages only from the site's broker, so
    a kiosk on its own matches people at itself, whatever salt it uses.
    """
    if not config.mqtt.enabled:
        return []
    rules, kiosk = config.rules, config.kiosk
    needs = [
        ("rules.anti_passback", rules.anti_passback),
        ("rules.occupancy_cap", rules.occupancy_cap > 0),
        ("rules.visitor_daily_cap", rules.visitor_daily_cap > 0),
        (f"kiosk.direction = {kiosk.direction}", kiosk.direction != "entry"),
    ]
    return [name for name, on in needs if on]


def _check_site_salt(config: KioskConfig, text: str) -> None:
    credentials = config.credentials
    if credentials.subject_salt and credentials.subject_salt_file:
        raise ConfigError(
            config.source,
            "credentials.subject_salt_file",
            "give subject_salt or subject_salt_file, not both",
            _line_of(text, "subject_salt_file"),
        )
    rules = site_wide_rules(config)
    if rules and not (credentials.subject_salt or credentials.subject_salt_file):
        raise ConfigError(
            config.source,
            "credentials.subject_salt",
            f"is not set, but {', '.join(rules)} match a person across the site's kiosks:"
            " a salt generated per kiosk gives each kiosk other subject ids, so an exit"
            " elsewhere never matches the entry",
            _line_of(text, "subject_salt"),
            fix=SITE_SALT_FIX,
        )


def _line_of(text: str, key: str) -> int | None:
    match = re.search(rf"^[ \t]*\[?{re.escape(key)}\]?[ \t]*(=|$)", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def example_toml() -> str:
    """The documented example file: every key with its default and description."""
    lines = [
        "# Entrance kiosk configuration. Every key is optional; shown with its default.",
        "# Secrets may instead come from the environment: KIOSK_<SECTION>_<KEY>.",
        "",
    ]
    for name, cls in SECTIONS.items():
        lines += [f"[{name}]", f"# {cls.__doc__}"]
        for fld in dataclasses.fields(cls):
            meta = fld.metadata
            allowed = ""
            choices = typing.get_args(typing.get_type_hints(cls)[fld.name])
            if all(isinstance(choice, str) for choice in choices) and choices:
                allowed = " (one of: " + ", ".join(choices) + ")"
            if meta["low"] is not None:
                allowed = f" ({meta['low']:g} to {meta['high']:g})"
            secret = (
                " [secret: KIOSK_" + f"{name}_{fld.name}".upper() + "]" if meta["secret"] else ""
            )
            lines.append(f"# {meta['doc']}{allowed}{secret}")
            lines.append(f"{fld.name} = {_toml_value(fld.default)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
