"""Rules that tie keys together: each pin used once, a fever threshold between the plausible
readings, hold mode with a passage sensor, one MQTT secret, one salt per site, a scanner's
device, and so on."""

from __future__ import annotations

import dataclasses
from typing import NoReturn

from kiosk.config.keys import ConfigError
from kiosk.config.lines import KeyLines
from kiosk.config.schema import GateSection, KioskConfig

SITE_SALT_FIX = (
    "give every kiosk of the site the same salt: credentials.subject_salt_file ="
    ' "/etc/kiosk/site-salt" (deploy/install.sh --site-salt FILE, or the Ansible play,'
    " writes it; see docs/deploy.md)"
)


def cross_check(config: KioskConfig, lines: KeyLines) -> None:
    """Raise ConfigError, at the line of the key to change, for keys that contradict others."""
    source, gate, thermo, mqtt = config.source, config.gate, config.thermometer, config.mqtt

    def problem(section: str, name: str, text: str, at: str = "", *, fix: str = "") -> NoReturn:
        line = lines.line(section, at or name)
        raise ConfigError(source, f"{section}.{name}", text, line, fix=fix)

    seen: dict[int, str] = {}
    for fld in dataclasses.fields(GateSection):
        pin = getattr(gate, fld.name) if fld.name.endswith("_pin") else False
        if pin is not False and pin in seen:
            problem(
                "gate", fld.name, f"GPIO{pin} is already used by gate.{seen[pin]}; each pin once"
            )
        if pin is not False:
            seen[pin] = fld.name
    if not thermo.min_plausible_c < thermo.fever_threshold_c < thermo.max_plausible_c:
        problem(
            "thermometer",
            "fever_threshold_c",
            "must lie between min_plausible_c and max_plausible_c",
        )
    if gate.relay_mode == "hold" and gate.passage_sensor_pin is False:
        problem(
            "gate",
            "relay_mode",
            "hold mode re-locks on a passage, so it needs gate.passage_sensor_pin",
        )
    if bool(mqtt.cert_file) != bool(mqtt.key_file):
        at = "cert_file" if mqtt.cert_file else "key_file"
        problem("mqtt", "key_file", "cert_file and key_file go together", at)
    if mqtt.password and mqtt.password_file:
        problem("mqtt", "password_file", "give password or password_file, not both")
    credentials = config.credentials
    if credentials.subject_salt and credentials.subject_salt_file:
        problem(
            "credentials", "subject_salt_file", "give subject_salt or subject_salt_file, not both"
        )
    rules = site_wide_rules(config)
    if rules and not (credentials.subject_salt or credentials.subject_salt_file):
        problem(
            "credentials",
            "subject_salt",
            f"is not set, but {', '.join(rules)} match a person across the site's kiosks:"
            " a salt generated per kiosk gives each kiosk other subject ids, so an exit"
            " elsewhere never matches the entry",
            fix=SITE_SALT_FIX,
        )
    if config.kiosk.mode == "checkin" and not config.kiosk.meeting:
        problem("kiosk", "meeting", "checkin mode needs a meeting name", "mode")
    if config.kiosk.mode == "screen" and not thermo.enabled:
        problem(
            "thermometer",
            "enabled",
            "screen mode measures temperature only, so it needs the thermometer",
        )
    if config.scanner.type != "none" and not config.scanner.device:
        problem("scanner", "device", f"a {config.scanner.type} scanner needs its device", "type")


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
