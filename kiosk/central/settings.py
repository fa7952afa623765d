"""Central's configuration: ``central.toml``, typed and validated at start like the kiosk's.

The keys are declared and checked with the kiosk config's machinery (:mod:`kiosk.config`), so
a wrong key or value raises :class:`~kiosk.config.ConfigError` naming the file, the line and
the key, and the CLI exits 78. Sections: ``[store]``, ``[mqtt]``, one ``[sites.<site id>]``
per site, ``[report]`` and ``[report.smtp]``, ``[web]``, ``[declarations]``, ``[central]``
(the transport: mqtt or nats) and ``[nats]`` (the JetStream cluster, docs/scale.md). Flags of the
``kiosk central`` commands override the file. Secrets never live in it: the MQTT password comes from
``KIOSK_CENTRAL_MQTT_PASSWORD``, the command key from ``KIOSK_CENTRAL_COMMAND_KEY`` and the
SMTP password from ``KIOSK_CENTRAL_SMTP_PASSWORD``. The example file
``deploy/central.example.toml`` is generated from the declarations (:func:`example_toml`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kiosk.central.quarantine import QUARANTINE_MAX_ROWS
from kiosk.config.example import section_lines
from kiosk.config.keys import ConfigError, key
from kiosk.config.lines import KeyLines
from kiosk.config.loader import parse_section, read_toml
from kiosk.config.schema import Language
from kiosk.config.values import id_check
from kiosk.ids import TOKEN

CONFIG_ENV = "KIOSK_CENTRAL_CONFIG"
SMTP_PASSWORD_ENV = "KIOSK_CENTRAL_SMTP_PASSWORD"
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
ReportFormat = Literal["xlsx", "csv", "json"]
Transport = Literal["mqtt", "nats"]
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def timezone_check(value: str) -> str | None:
    """An IANA time zone name this machine knows."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone name, e.g. Asia/Ho_Chi_Minh"
    return None


def clock_check(value: str) -> str | None:
    """``HH:MM``, a local time of day."""
    return None if re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value) else "must be HH:MM"


def org_check(value: str) -> str | None:
    """An organisation id as signed documents carry it (letters, digits, ``._:-``)."""
    return None if TOKEN.match(value) else "must be 1-64 of A-Z a-z 0-9 . _ : -"


def addresses_check(value: tuple[str, ...]) -> str | None:
    """E-mail addresses, each like ``name@example.org``."""
    wrong = [address for address in value if not _ADDRESS.fullmatch(address)]
    return f"has what is not an e-mail address: {wrong[0]!r}" if wrong else None


@dataclass(frozen=True)
class StoreSection:
    """Where central keeps the kiosks' events, and for how long."""

    db: str = key("central.db", "sqlite:///path, a file path, or postgresql://… (psycopg)")
    retention_days: float = key(
        0.0,
        "Delete events central received longer ago than this, once a day (0: keep all)",
        low=0,
        high=36500,
    )
    quarantine_max_rows: int = key(
        QUARANTINE_MAX_ROWS,
        "Most quarantined messages kept; beyond it the oldest are deleted as new ones come",
        low=1,
        high=10_000_000,
    )


@dataclass(frozen=True)
class MqttSection:
    """The site broker central ingests from; password: KIOSK_CENTRAL_MQTT_PASSWORD."""

    host: str = key("localhost", "Broker host name or address")
    port: int = key(8883, "Broker port (8883: TLS, 1883: plain)", low=1, high=65535)
    ca_file: str = key("", "CA that signed the broker's certificate (enables TLS)")
    cert_file: str = key("", "Client certificate (TLS client authentication)")
    key_file: str = key("", "Client certificate's key")
    username: str = key("central", "MQTT user")
    client_id: str = key(
        "central-ingest-1", "MQTT client id: unique per ingest instance, stable across restarts"
    )
    group: str = key("ingest", "Shared-subscription group of the ingest instances")
    gap_grace_s: float = key(
        30.0, "Ask a kiosk to resend a sequence gap older than this", low=1, high=86400
    )


@dataclass(frozen=True)
class SiteSection:
    """One site (building), as [sites.<site id>] with the id its kiosks use (kiosk.site)."""

    name: str = key("", "The site's name in reports and pages (empty: its id)")
    timezone: str = key(
        DEFAULT_TIMEZONE, "IANA time zone of the site's local times", check=timezone_check
    )
    subject_salt_file: str = key(
        "",
        "The site's subject salt, the file its kiosks use (credentials.subject_salt_file); "
        "needed to import a roster",
    )
    language: Language = key("vi", "Language of the site's reports and pages: vi or en")


@dataclass(frozen=True)
class ReportSection:
    """The daily entry list: when it is made, where it goes."""

    folder: str = key("", "Folder the daily list is written to (empty: not written)")
    daily_at: str = key(
        "07:00", "Local time (HH:MM) at which the previous day's list is made", check=clock_check
    )
    format: ReportFormat = key("xlsx", "File format of the daily list")
    language: Language = key("vi", "Language of the list's column names: vi or en")
    recipients: tuple[str, ...] = key(
        (), "E-mail addresses the list is sent to (empty: not sent)", check=addresses_check
    )


@dataclass(frozen=True)
class SmtpSection:
    """The mail server for the daily list; password: KIOSK_CENTRAL_SMTP_PASSWORD."""

    host: str = key("", "SMTP server (empty: no mail)")
    port: int = key(587, "SMTP port (587: submission with STARTTLS)", low=1, high=65535)
    starttls: bool = key(True, "Upgrade the connection with STARTTLS before logging in")
    username: str = key("", "SMTP user (empty: no login)")
    sender: str = key("", "The From address of the mail")


@dataclass(frozen=True)
class WebSection:
    """The fleet dashboard (kiosk central web)."""

    host: str = key("127.0.0.1", "Address to listen on (0.0.0.0: reachable from the network)")
    port: int = key(8090, "TCP port", low=1, high=65535)
    users_file: str = key("central-users.toml", "The dashboard's users, roles and password hashes")
    session_minutes: int = key(
        30, "Minutes without a request after which a login ends", low=1, high=720
    )
    trusted_proxies: int = key(
        0,
        "Reverse proxies in front of the dashboard (nginx with TLS: 1), whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed (0: the connection's address is the client's)",
        low=0,
        high=5,
    )
    secure_cookie: Literal["auto", "yes", "no"] = key(
        "auto", "Send the session cookie over HTTPS only (auto: when trusted_proxies is set)"
    )

    def cookie_secure(self) -> bool:
        """Whether the session cookie is sent over HTTPS only."""
        if self.secure_cookie == "auto":
            return self.trusted_proxies > 0
        return self.secure_cookie == "yes"


@dataclass(frozen=True)
class DeclarationsSection:
    """The health declaration page (/s/<site>) and the signed declarations document."""

    signing_key_file: str = key(
        "",
        "The document-signing key (PEM, `kiosk pass keygen --name documents`) the declarations "
        "document is signed with (empty: not published)",
    )
    org: str = key(
        "org",
        "The organisation id the document carries (as `kiosk pass revoke --org`)",
        check=org_check,
    )
    validity_h: float = key(24.0, "Hours a declaration stays valid", low=1, high=336)
    snapshot_interval_min: float = key(
        15.0, "Minutes between full snapshots (deltas follow each declaration)", low=1, high=1440
    )
    keep_answers: bool = key(False, "Keep each declaration's answers, not only its status")
    retention_days: float = key(
        14.0, "Delete declarations (and their answers) older than this, daily", low=1, high=3650
    )
    privacy_url: str = key(
        "", "Address of the privacy notice the page links (empty: the notice central serves)"
    )


@dataclass(frozen=True)
class CentralSection:
    """How central receives the kiosks' messages."""

    transport: Transport = key(
        "mqtt",
        "mqtt: one ingest on the [mqtt] broker; nats: workers on the [nats] JetStream cluster"
        " (the declarations and the dashboard's commands then go over MQTT 3.1.1 to [mqtt],"
        " the cluster's MQTT listener)",
    )


@dataclass(frozen=True)
class NatsSection:
    """The NATS JetStream cluster whose MQTT listener the kiosks use (transport = "nats")."""

    servers: tuple[str, ...] = key(
        ("nats://127.0.0.1:4222",), "The cluster's client URLs (nats:// or tls://)"
    )
    durable: str = key("central-ingest", "The pull consumer all workers share")
    batch_max: int = key(500, "Messages per fetch and transaction", low=1, high=10_000)
    ack_wait_s: float = key(
        30.0, "A message unacknowledged this long goes to another worker", low=1, high=3600
    )
    user: str = key("", "NATS user (empty: none); password: KIOSK_CENTRAL_NATS_PASSWORD")
    creds_file: str = key("", "NATS credentials file (empty: none)")
    ca_file: str = key("", "CA that signed the servers' certificates (tls://)")


@dataclass(frozen=True)
class CentralConfig:
    """The whole of central's configuration; build it with :func:`load_central_config`."""

    store: StoreSection = field(default_factory=StoreSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    sites: Mapping[str, SiteSection] = field(default_factory=dict)
    report: ReportSection = field(default_factory=ReportSection)
    smtp: SmtpSection = field(default_factory=SmtpSection)  # [report.smtp]
    web: WebSection = field(default_factory=WebSection)
    declarations: DeclarationsSection = field(default_factory=DeclarationsSection)
    central: CentralSection = field(default_factory=CentralSection)
    nats: NatsSection = field(default_factory=NatsSection)
    source: str = "<defaults>"

    def site(self, site_id: str) -> SiteSection:
        """The site's section; the defaults for a site the file does not name."""
        return self.sites.get(site_id) or SiteSection()

    @property
    def speaks_mqtt_5(self) -> bool:
        """Whether central's own MQTT clients (declarations, the dashboard's commands) speak
        MQTT 5 to ``[mqtt]``; with transport "nats" they speak 3.1.1, the only version
        nats-server's MQTT listener accepts."""
        return self.central.transport == "mqtt"


_SECTIONS: dict[str, type] = {
    "store": StoreSection,
    "mqtt": MqttSection,
    "report": ReportSection,
    "report.smtp": SmtpSection,
    "web": WebSection,
    "declarations": DeclarationsSection,
    "central": CentralSection,
    "nats": NatsSection,
}


def load_central_config(path: str | Path) -> CentralConfig:
    """Read and validate ``central.toml``; ConfigError on any problem."""
    raw, text = read_toml(Path(path))
    return parse_central_config(raw, source=str(path), text=text)


def parse_central_config(
    raw: Mapping[str, Any], *, source: str = "<mapping>", text: str = ""
) -> CentralConfig:
    """Validate a mapping shaped like ``central.toml`` and return the frozen config."""
    lines = KeyLines(text)
    allowed = ("store", "mqtt", "sites", "report", "web", "declarations", "central", "nats")
    for name in raw:
        if name not in allowed:
            problem = f"unknown section; allowed: {', '.join(allowed)}"
            raise ConfigError(source, name, problem, lines.line(name))

    def table(name: str) -> dict[str, Any]:
        *outer, last = name.split(".")
        holder = raw
        for part in outer:
            holder = holder.get(part, {})
        value = holder.get(last, {})
        if not isinstance(value, Mapping):
            raise ConfigError(source, name, f"must be a table ([{name}])", lines.line(*outer, last))
        return dict(value)

    def section(name: str) -> Any:
        values = table(name)
        if name == "report":
            values.pop("smtp", None)  # its own section
        return parse_section(name, _SECTIONS[name], values, source, lines, {})

    sites = {}
    for site_id in table("sites"):
        wrong_id = id_check(site_id)
        if wrong_id:
            raise ConfigError(source, f"sites.{site_id}", wrong_id, lines.line("sites", site_id))
        sites[site_id] = parse_section(
            f"sites.{site_id}", SiteSection, table(f"sites.{site_id}"), source, lines, {}
        )
    return CentralConfig(
        store=section("store"),
        mqtt=section("mqtt"),
        sites=sites,
        report=section("report"),
        smtp=section("report.smtp"),
        web=section("web"),
        declarations=section("declarations"),
        central=section("central"),
        nats=section("nats"),
        source=source,
    )


def example_toml() -> str:
    """The documented example ``central.toml``: every key with its default and description."""
    lines = [
        "# Central server configuration (kiosk central --config FILE). Every key is optional;",
        "# shown with its default. Secrets come from the environment only:",
        "# KIOSK_CENTRAL_MQTT_PASSWORD, KIOSK_CENTRAL_COMMAND_KEY, KIOSK_CENTRAL_SMTP_PASSWORD,",
        "# KIOSK_CENTRAL_NATS_PASSWORD.",
        "",
    ]
    for name in ("store", "mqtt"):
        lines += section_lines(name, _SECTIONS[name])
    lines += section_lines("sites.site-1", SiteSection)
    for name in ("report", "report.smtp", "web", "declarations", "central", "nats"):
        lines += section_lines(name, _SECTIONS[name])
    return "\n".join(lines)
