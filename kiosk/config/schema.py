"""The configuration's schema: one frozen dataclass per TOML section, one field per key.

Each key's default, description and bounds are declared with it (:func:`kiosk.config.keys.key`);
the loader, the example file and the docs read them from here. Long for a module on purpose: it
is a list of declarations, one per key, with nothing else in it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kiosk.config.keys import STRINGS, key, key_bounds
from kiosk.config.values import (
    MIN_SALT_CHARS,
    MIN_TOKEN_CHARS,
    certificate_types_check,
    country_codes_check,
    hours_check,
    id_check,
    kiosk_id_check,
    pin_check,
    secret_check,
    source_check,
)

Mode = Literal["gate", "screen", "checkin"]
Decoder = Literal["zxing-cpp", "pyzbar"]
MqttProtocol = Literal["5", "3.1.1"]
Direction = Literal["entry", "exit", "toggle"]
NationalQrPolicy = Literal["grant", "refer", "deny"]
ConfirmMode = Literal["receipt", "puback"]
Language = Literal["vi", "en"]  # what people read: kiosk.decide.texts has each text in both
# kiosk.gate drives the relay; the mode is declared here so that loading a config needs no gpiozero
RelayMode = Literal["pulse", "hold"]
Pin = int | Literal[False]  # a BCM GPIO number, or false: not fitted
ScannerType = Literal["none", "hid", "serial"]
ScannerLayout = Literal["us", "de", "fr"]
ScannerTerminator = Literal["cr", "lf", "crlf", "tab"]
DccMode = Literal["alone", "with_pass"]


@dataclass(frozen=True)
class KioskSection:
    """Identity and mode of this kiosk."""

    id: str = key(
        "kiosk-1",
        "This kiosk's id: its MQTT user name, unique on the broker",
        check=kiosk_id_check,
    )
    site: str = key("site-1", "The site (building) this kiosk belongs to", check=id_check)
    mode: Mode = key(
        "gate",
        "gate: QR and temperature drive the turnstile; screen: temperature only; "
        "checkin: QR only, records attendance and never drives the relay",
    )
    meeting: str = key("", "checkin mode: the meeting's name, recorded with each attendance")
    direction: Direction = key(
        "entry", "entry or exit kiosk; toggle: one kiosk for both (entry unless already inside)"
    )
    area: str = key(
        "main", "The area this entrance leads into (occupancy is per area)", check=id_check
    )
    state_dir: str = key("/var/lib/kiosk", "Writable directory for the event log and salt")


@dataclass(frozen=True)
class CameraSection:
    """Where frames come from and how codes are read."""

    source: str = key(
        "picamera2",
        "Frame source: picamera2, opencv:0, opencv:FILE, folder:DIR",
        check=source_check,
    )
    decoder: Decoder = key("zxing-cpp", "QR decoder backend (pyzbar on 32-bit Raspberry Pi OS)")
    rearm_after_s: float = key(
        2.0, "Seconds a code must be out of view before it counts as a new scan", low=0.2, high=30
    )
    max_payload_bytes: int = key(
        2048, "Longer QR payloads are refused (EU DCC codes reach about 1,100)", low=16, high=4096
    )


@dataclass(frozen=True)
class ScannerSection:
    """A 2D code scanner, read beside the camera (docs/hardware.md, "Code scanners")."""

    type: ScannerType = key(
        "none",
        "none: no scanner; hid: a USB keyboard-wedge scanner (evdev, grabbed); "
        "serial: a USB CDC or RS-232 scanner",
    )
    device: str = key(
        "",
        "hid: /dev/input/by-id/…-event-kbd or name:<part of its name>; "
        "serial: the port, e.g. /dev/serial/by-id/… or /dev/ttyACM0",
    )
    layout: ScannerLayout = key(
        "us", "hid: the keyboard layout the scanner types in: us, de (QWERTZ), fr (AZERTY)"
    )
    baud: int = key(9600, "serial: the port's speed in bits per second", low=1200, high=921_600)
    terminator: ScannerTerminator = key(
        "cr", "What ends a code: cr, lf, crlf (hid: all three are the Enter key) or tab"
    )
    prefix: str = key("", "Removed from the start of a code when present (set in the scanner)")
    suffix: str = key("", "Removed from the end of a code when present (set in the scanner)")
    char_timeout_s: float = key(
        0.3,
        "A code whose next character does not come within this is a partial read, dropped",
        low=0.02,
        high=5.0,
    )


@dataclass(frozen=True)
class ThermometerSection:
    """The MLX90614 and the measurement protocol."""

    enabled: bool = key(True, "Measure forehead temperature (gate and screen modes)")
    i2c_bus: int = key(1, "I2C bus number (/dev/i2c-N)", low=0, high=20)
    address: int = key(0x5A, "I2C address of the MLX90614 (90 = 0x5A)", low=0x03, high=0x77)
    fever_threshold_c: float = key(
        37.5, "A confirmed reading at or above this is a fever", low=37.0, high=39.0
    )
    calibration_offset_c: float = key(
        0.0, "Added to every reading (site calibration)", low=-5.0, high=5.0
    )
    presence_delta_c: float = key(
        3.0, "A person is present when object exceeds ambient by this", low=0.5, high=15.0
    )
    presence_timeout_s: float = key(
        4.0, "How long to wait for a person to step up after a scan", low=0.5, high=30.0
    )
    sample_interval_s: float = key(
        0.1, "Seconds between samples (the sensor refreshes ~10/s)", low=0.02, high=1.0
    )
    stable_count: int = key(
        5, "Readings that must agree before a measurement counts", low=3, high=50
    )
    stable_tolerance_c: float = key(0.3, "How close those readings must be", low=0.05, high=2.0)
    stable_timeout_s: float = key(
        2.0, "Give up waiting for stability after this long", low=0.2, high=20.0
    )
    retest_pause_s: float = key(
        0.3, "Pause before re-measuring a reading over the threshold", low=0.0, high=10.0
    )
    min_plausible_c: float = key(30.0, "Lower readings are a sensor fault", low=20.0, high=35.0)
    max_plausible_c: float = key(43.0, "Higher readings are a sensor fault", low=39.5, high=50.0)
    retries: int = key(2, "Retries of a failed I2C read before it is a fault", low=0, high=10)


# Where a fever threshold may be set, at start (config) and later (status page, MQTT command).
FEVER_MIN_C, FEVER_MAX_C = key_bounds(ThermometerSection, "fever_threshold_c")


@dataclass(frozen=True)
class GateSection:
    """GPIO wiring (BCM numbers; false = not fitted) and relay behaviour."""

    relay_pin: int = key(17, "Turnstile relay output", check=pin_check)
    relay_active_high: bool = key(False, "true if the relay board energises on a HIGH level")
    relay_mode: RelayMode = key(
        "pulse", "pulse: release for pulse_ms; hold: release until the passage sensor fires"
    )
    pulse_ms: int = key(500, "Relay pulse length in pulse mode", low=50, high=10_000)
    hold_timeout_s: float = key(
        8.0, "hold mode: re-lock after this long without a passage", low=1.0, high=60.0
    )
    signal_s: float = key(3.0, "How long the green or warning light stays on", low=0.5, high=30)
    green_light_pin: Pin = key(27, "Green light output", check=pin_check)
    warning_light_pin: Pin = key(22, "Red warning light output", check=pin_check)
    buzzer_pin: Pin = key(23, "Buzzer output", check=pin_check)
    passage_sensor_pin: Pin = key(24, "Passage (beam) sensor input", check=pin_check)
    passage_active_low: bool = key(True, "The passage sensor pulls its input low when broken")
    fire_alarm_pin: Pin = key(
        25, "Fire alarm input: while active the gate is released", check=pin_check
    )
    fire_alarm_active_low: bool = key(True, "The fire alarm contact pulls its input low")


@dataclass(frozen=True)
class CredentialsSection:
    """Who may pass."""

    allowlist: str = key(
        "/etc/kiosk/allowlist.csv",
        "CSV of legacy badge ids (id,kind,valid_until); empty: only signed passes",
    )
    trust_anchor: str = key(
        "", "PEM public key that signs the trust and revocation lists (empty: no signed passes)"
    )
    trust_list: str = key("", "Signed trust list file (issuer keys); newer ones arrive over MQTT")
    revocation_list: str = key("", "Signed revocation list file; newer ones arrive over MQTT")
    clock_skew_s: int = key(300, "Tolerance on pass validity times", low=0, high=3600)
    national_qr: NationalQrPolicy = key(
        "refer", "Unsigned national-app QR codes (PC-Covid …): grant, refer to reception, deny"
    )
    subject_salt: str = key(
        "",
        "Secret salt for pseudonymous subject ids; the same on every kiosk of a site "
        "(empty: subject_salt_file, else generated per kiosk in state_dir)",
        check=secret_check(MIN_SALT_CHARS),
        secret=True,
    )
    subject_salt_file: str = key(
        "",
        "File holding the site's subject salt (one line, not readable by others); "
        "deploy/install.sh and the Ansible play write /etc/kiosk/site-salt",
    )


@dataclass(frozen=True)
class RulesSection:
    """Entry rules from the source documents; 0 or empty switches a rule off."""

    health_declaration_max_age_h: float = key(
        0.0, "Require a health declaration newer than this many hours (R4)", low=0, high=720
    )
    health_declaration_url: str = key(
        "",
        "The site's declaration page as the poster shows it, e.g. hd.example.vn/s/hq: "
        "the display names it to whoever must declare first",
    )
    visitor_hours: str = key(
        "", "Visitors only between these local times, e.g. 07:30-17:30", check=hours_check
    )
    visitor_daily_cap: int = key(
        0, "Most visitors admitted per day at this site", low=0, high=100_000
    )
    anti_passback: bool = key(False, "A pass that entered cannot enter again before it exits")
    passback_grace_s: float = key(
        10.0, "The same pass again within this is one scan, never a second grant", low=0, high=600
    )
    passback_reentry_h: float = key(
        0.0,
        "A pass that entered and never exited may enter again after this (0: next day)",
        low=0,
        high=24,
    )
    occupancy_cap: int = key(
        0, "Refuse entry when this many people are inside the area", low=0, high=100_000
    )


@dataclass(frozen=True)
class DccSection:
    """EU Digital COVID Certificates (HC1: codes) at the gate (docs/dcc.md, At the gate)."""

    enabled: bool = key(False, "Verify HC1: codes (off: they are refused as malformed)")
    mode: DccMode = key(
        "alone",
        "alone: a valid certificate admits a visitor under credentials.national_qr; "
        "with_pass: a certificate is needed besides a staff or visitor pass",
    )
    types: STRINGS = key(
        ("v", "t", "r"), "Certificate types that count: v, t, r", check=certificate_types_check
    )
    days_after_dose: int = key(
        14, "A complete vaccination counts this many days after its last dose", low=0, high=365
    )
    test_max_age_h: float = key(72.0, "Oldest negative test sample that counts", low=1, high=720)
    countries: STRINGS = key(
        (),
        "Accepted issuing countries, ISO codes such as VN (empty: all)",
        check=country_codes_check,
    )
    second_scan_window_s: float = key(
        60.0, "with_pass: the pass and the certificate within this many seconds", low=5, high=600
    )
    trust_list_file: str = key("", "Signed DCC trust list file (kiosk dcc trust import)")


@dataclass(frozen=True)
class LogSection:
    """The local event log (outbox)."""

    path: str = key("", "SQLite event log (empty: <state_dir>/events.db)")
    capacity: int = key(
        200_000,
        "Rows kept; only events confirmed by central are pruned",
        low=1_000,
        high=10_000_000,
    )
    warn_ratio: float = key(
        0.9, "Report 'log near capacity' above this fill ratio", low=0.5, high=0.99
    )
    max_age_days: float = key(
        0.0,
        "Delete rows older than this even under capacity (0: no age limit); unconfirmed rows "
        "only past unconfirmed_max_age_days",
        low=0,
        high=3650,
    )
    unconfirmed_max_age_days: float = key(
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

    enabled: bool = key(False, "Sync events to the broker; without it the kiosk works offline")
    host: str = key("localhost", "Broker host name or address")
    port: int = key(8883, "Broker port (8883: TLS, 1883: plain)", low=1, high=65535)
    protocol: MqttProtocol = key("5", "MQTT protocol version")
    tls: bool = key(True, "Connect with TLS (verify the broker against ca_file)")
    ca_file: str = key("", "CA certificate that signed the broker's (empty: system CAs)")
    cert_file: str = key("", "Client certificate for TLS client authentication (optional)")
    key_file: str = key("", "Private key of the client certificate")
    username: str = key("", "MQTT user name (empty: the kiosk id)")
    password: str = key("", "MQTT password", secret=True)
    password_file: str = key(
        "", "File holding the MQTT password; must not be readable by group or others"
    )
    keepalive_s: int = key(
        30,
        "MQTT keep-alive; the broker declares the kiosk offline after 1.5x this without traffic",
        low=5,
        high=600,
    )
    confirm: ConfirmMode = key(
        "receipt",
        "receipt: an event is confirmed when central's receipt covers it; "
        "puback: when the broker accepts it (for third-party subscribers; see docs/mqtt.md)",
    )
    window: int = key(
        5000, "Most events handed to the MQTT client and not yet confirmed", low=10, high=100_000
    )
    batch_max: int = key(
        100, "Most events packed into one message when draining a backlog", low=1, high=500
    )
    max_message_bytes: int = key(
        240 * 1024,
        "Largest events message in bytes (central refuses over 256 KiB; leave room for the"
        " topic under the broker's max_packet_size)",
        low=16 * 1024,
        high=255 * 1024,
    )
    resend_after_s: float = key(
        600.0,
        "Send an event again if no receipt covered it after this long (each resend no receipt"
        " answers doubles the wait, up to 4x)",
        low=1,
        high=86400,
    )
    subscriptions_qos: int = key(
        1,
        "QoS of the kiosk's subscriptions: 1 has the broker keep commands, receipts and"
        " passages for an offline kiosk (mosquitto); 0 on a NATS cluster, where each QoS 1"
        " subscription costs a JetStream consumer (docs/scale.md)",
        low=0,
        high=1,
    )
    state_interval_s: float = key(
        30.0, "Publish the retained health state at least this often", low=1, high=3600
    )
    command_key: str = key(
        "",
        "Shared key for HMAC-signed commands; when set, unsigned commands are refused",
        check=secret_check(MIN_TOKEN_CHARS),
        secret=True,
    )
    allow_emergency_open: bool = key(
        False, "Accept the emergency_open command over MQTT (and offer it to Home Assistant)"
    )
    homeassistant: bool = key(False, "Publish Home Assistant MQTT discovery for this kiosk")
    discovery_prefix: str = key("homeassistant", "Home Assistant's discovery topic prefix")


@dataclass(frozen=True)
class WebSection:
    """The status page and the entrance display (served by waitress in a child process)."""

    enabled: bool = key(True, "Serve the status dashboard, the display and the API")
    host: str = key("127.0.0.1", "Address to listen on (0.0.0.0: reachable from the network)")
    port: int = key(8080, "TCP port", low=1, high=65535)
    password_hash: str = key(
        "",
        "Dashboard password hash (empty: the one `kiosk web set-password` saved)",
        secret=True,
    )
    api_token: str = key(
        "",
        "Bearer token for /api/v1 (empty: login only)",
        check=secret_check(MIN_TOKEN_CHARS),
        secret=True,
    )
    display_public: bool = key(
        False, "Serve the entrance display to other machines too (default: this one only)"
    )
    cookie_secure: bool = key(False, "Send the session cookie over HTTPS only")
    display_clear_s: float = key(5.0, "Seconds a decision stays on the display", low=1, high=60)
    session_idle_s: float = key(
        900.0,
        "Seconds without an operator request after which a dashboard login ends",
        low=60,
        high=43200,
    )
    language: Language = key(
        "vi", "Dashboard language until an operator switches it: vi (Vietnamese) or en (English)"
    )


@dataclass(frozen=True)
class KioskConfig:
    """The whole configuration; build it with :func:`load_config`."""

    kiosk: KioskSection = field(default_factory=KioskSection)
    camera: CameraSection = field(default_factory=CameraSection)
    scanner: ScannerSection = field(default_factory=ScannerSection)
    thermometer: ThermometerSection = field(default_factory=ThermometerSection)
    gate: GateSection = field(default_factory=GateSection)
    credentials: CredentialsSection = field(default_factory=CredentialsSection)
    rules: RulesSection = field(default_factory=RulesSection)
    dcc: DccSection = field(default_factory=DccSection)
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
