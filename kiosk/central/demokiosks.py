"""The simulated kiosks of ``kiosk central demo``: how each kiosk of a site records the traffic
of :mod:`kiosk.central.demotraffic`, with the kiosk's own code.

Each kiosk has a real kiosk configuration. It reads a badge with the real allowlist check,
computes the subject with the site's salt, applies the real entry rules
(:func:`kiosk.decide.rules.check_entry`) and decision core (:func:`kiosk.decide.decision.decide`),
and logs its events with the kiosk's own functions (:func:`kiosk.events.decision_event_data`,
the health, command and passage events' data); its retained state is
:func:`kiosk.run.health.state_document`. What the kiosks of a site share over MQTT (who is
inside each area, today's visitors, meeting attendance) is kept in :class:`Site`.

A little over the project's ~350 lines: one short method per kind of incident the demo stages
(fever, passback, tailgating, lockdown, a failed thermometer, a restart), read side by side.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kiosk import __version__
from kiosk.central.demotraffic import (
    IN,
    LAB,
    MEETING,
    OUT,
    SIDE,
    VISITOR_DAILY_CAP,
    Body,
    Incident,
    Person,
    Scan,
)
from kiosk.config import KioskConfig, parse_config
from kiosk.credentials import CredentialStatus, check_payload, parse_allowlist
from kiosk.decide.decision import decide
from kiosk.decide.entrance import Assessment, entry_policy
from kiosk.decide.privacy import Pseudonymizer
from kiosk.decide.rules import EntranceFacts, Holder, check_entry
from kiosk.events import EventType, Part, decision_event_data, passage_event_data
from kiosk.gate_parts.data import GateState
from kiosk.mqtt.protocol import WireEvent
from kiosk.run.health import DailyCounts, Health, PartState, state_document
from kiosk.sensors.measurement import Measurement, TemperatureStatus
from kiosk.sensors.mlx90614 import Reading
from kiosk.store.records import LogStats

# Door role → (kiosk id stem, mode, direction, area, relay mode); N kiosks take the first N
# roles of _LAYOUT (one kiosk alone is a side door for both ways), further ones more lobbies.
_ROLES = {
    IN: ("sanh-vao", "gate", "entry", "main", "hold"),
    OUT: ("sanh-ra", "gate", "exit", "main", "pulse"),
    MEETING: ("phong-hop", "checkin", "entry", "main", "pulse"),
    SIDE: ("cua-ben", "gate", "toggle", "main", "pulse"),
    LAB: ("phong-lab", "gate", "toggle", "lab", "pulse"),
}
_LAYOUT = (IN, OUT, MEETING, SIDE, LAB)
_FALLBACK = {
    IN: (IN, SIDE),
    OUT: (OUT, SIDE),
    SIDE: (SIDE, IN, OUT),
    LAB: (LAB,),
    MEETING: (MEETING,),
}


@dataclass
class Kiosk:
    """A simulated kiosk: its configuration, its log, and what it knows of its parts."""

    door: str
    config: KioskConfig
    boot_id: str
    events: list[WireEvent] = field(default_factory=list)
    thermometer: PartState = field(default_factory=PartState)
    lockdown: bool = False
    clock_synced: bool = True
    passages: int = 0
    last_body: Body | None = None
    counts: DailyCounts = field(default_factory=lambda: DailyCounts(date.min))

    @property
    def id(self) -> str:
        """The kiosk's id (``kiosk.id``)."""
        return self.config.kiosk.id


def layout(site: str, kiosks: int) -> list[Kiosk]:
    """The kiosks' doors and configurations: see :data:`_LAYOUT`."""
    doors = (
        [SIDE]
        if kiosks == 1
        else [_LAYOUT[i] if i < len(_LAYOUT) else (IN, OUT)[i % 2] for i in range(kiosks)]
    )
    made, seen = [], defaultdict[str, int](int)
    for door in doors:
        stem, mode, direction, area, relay = _ROLES[door]
        seen[door] += 1
        identity = {"id": f"{stem}-{seen[door]}", "site": site, "mode": mode}
        identity |= {"direction": direction, "area": area}
        if (
            mode == "checkin"
        ):  # each meeting's name replaces it: the room's kiosk is set per meeting
            identity["meeting"] = "Phòng họp"
        raw = {
            "kiosk": identity,
            "gate": {"relay_mode": relay},
            "rules": {"visitor_daily_cap": VISITOR_DAILY_CAP, "anti_passback": True},
        }
        made.append(Kiosk(door, parse_config(raw), ""))
    return made


class Site:
    """The kiosks of one site as they record the traffic, and what they share over MQTT
    (who is inside each area, today's visitors, meeting attendance)."""

    def __init__(
        self,
        site: str,
        kiosks: list[Kiosk],
        people: Iterable[Person],
        salt: bytes,
        tz: ZoneInfo,
        rng: random.Random,
    ) -> None:
        self.site, self.kiosks, self.tz, self.rng = site, kiosks, tz, rng
        lines = ["id,kind,valid_until"]
        lines += [
            f"{p.badge},{p.kind},{p.valid_until.isoformat() if p.valid_until else ''}"
            for p in people
        ]
        self.allowlist = parse_allowlist("\n".join(lines), "demo allowlist")
        self.subjects = Pseudonymizer(salt)
        self.policy = entry_policy(kiosks[0].config)
        self.day: date | None = None
        self.inside: dict[str, dict[str, datetime]] = defaultdict(dict)  # area → subject → entry
        self.visitors_today = 0
        self.attendance: set[tuple[str, str]] = set()  # (meeting, subject), today

    def uuid(self) -> str:
        """A random UUID (version 4) from the seeded generator: the same for the same seed."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def kiosk(self, door: str, key: str) -> Kiosk | None:
        """The kiosk at ``door`` (or the door that stands in for it), chosen by ``key`` when
        there are several; None when the site has no such door (no lab, no meeting room)."""
        for wanted in _FALLBACK[door]:
            matching = [k for k in self.kiosks if k.door == wanted]
            if matching:
                return matching[sum(key.encode()) % len(matching)]
        return None

    def record(
        self, kiosk: Kiosk, at: datetime, type: EventType, data: dict[str, Any]
    ) -> WireEvent:
        """Log an event at ``kiosk``: its next seq, its current run and clock state."""
        event = WireEvent(
            self.uuid(),
            len(kiosk.events) + 1,
            kiosk.boot_id,
            ms(at),
            kiosk.clock_synced,
            type.value,
            data,
        )
        kiosk.events.append(event)
        return event

    def start(self, at: datetime) -> None:
        """Every kiosk starts a run."""
        for kiosk in self.kiosks:
            kiosk.boot_id = self.uuid()
            started = {"mode": kiosk.config.kiosk.mode, "version": __version__, "degraded": []}
            self.record(kiosk, at, EventType.KIOSK_STARTED, started)

    def restart(self, kiosk: Kiosk, at: datetime, *, clock_synced: bool) -> None:
        """A restart (stopped, started again): the new run has no time server if
        ``clock_synced`` is False."""
        self.record(kiosk, at, EventType.KIOSK_STOPPED, {})
        kiosk.boot_id, kiosk.clock_synced = self.uuid(), clock_synced
        started = {"mode": kiosk.config.kiosk.mode, "version": __version__, "degraded": []}
        self.record(kiosk, at + timedelta(seconds=40), EventType.KIOSK_STARTED, started)

    def happen(self, happening: Scan | Incident) -> None:
        """Record one happening, in time order."""
        local_day = happening.at.astimezone(self.tz).date()
        if local_day != self.day:  # the kiosks' day starts afresh at local midnight
            self.day, self.visitors_today = local_day, 0
            self.attendance.clear()
        if isinstance(happening, Scan):
            self.scan(happening)
        else:
            self.incident(happening)

    def incident(self, incident: Incident) -> None:
        """A lockdown command at every gate kiosk, a thermometer's health event, a passage
        nobody was granted (only a hold-mode kiosk's passage sensor sees one)."""
        if incident.what == "lockdown":
            for kiosk in self.kiosks:
                if kiosk.config.kiosk.mode == "gate":
                    kiosk.lockdown = not incident.ok
                    args = {"on": kiosk.lockdown}
                    self.record(
                        kiosk,
                        incident.at,
                        EventType.COMMAND,
                        {"id": self.uuid(), "command": "lockdown", "args": args},
                    )
            return
        at_door = self.kiosk(incident.door, incident.what)
        if at_door is None:
            return
        kiosk = at_door
        if incident.what == "thermometer":
            kiosk.thermometer = PartState(incident.ok, incident.detail)
            data = {"part": Part.THERMOMETER.value, "ok": incident.ok, "detail": incident.detail}
            self.record(kiosk, incident.at, EventType.HEALTH, data)
        elif incident.what == "tailgating" and kiosk.config.gate.relay_mode == "hold":
            self.record(kiosk, incident.at, EventType.PASSAGE, passage_event_data("none", None))
            kiosk.counts.add_tailgating(self.day or date.min)
            kiosk.passages += 1

    def scan(self, scan: Scan) -> None:
        """A code at a door: the kiosk checks it, applies the rules, measures when it would,
        decides and logs the decision (and, in hold mode, the person's passage)."""
        kiosk = self.kiosk(scan.door, scan.badge)
        if kiosk is None:
            return
        config = kiosk.config
        if scan.meeting:
            config = dataclasses.replace(
                config, kiosk=dataclasses.replace(config.kiosk, meeting=scan.meeting)
            )
        credential = check_payload(scan.badge.encode(), self.allowlist, scan.at)
        subject = (
            None if credential.badge_id is None else self.subjects.subject(credential.badge_id)
        )
        area = config.kiosk.area
        direction = config.kiosk.direction
        if direction == "toggle":
            direction = "exit" if subject in self.inside[area] else "entry"
        rule = None
        valid = credential.status is CredentialStatus.VALID and subject is not None
        if valid and direction == "entry" and config.kiosk.mode == "gate" and subject:
            facts = EntranceFacts(
                len(self.inside[area]), self.visitors_today, self.inside[area].get(subject)
            )
            rule = check_entry(
                Holder(subject, credential.kind or "staff"), self.policy, facts, scan.at
            )
        checked_in = (scan.meeting or "", subject or "") in self.attendance
        measurement = None
        measures = config.kiosk.mode == "gate" and direction == "entry" and valid and rule is None
        if measures and not kiosk.lockdown:
            measurement = self.measure(kiosk, scan.body)
        decision = decide(
            config.kiosk.mode,
            credential,
            measurement,
            lockdown=kiosk.lockdown,
            rule=rule,
            exiting=direction == "exit",
            checked_in_before=checked_in,
        )
        assessment = Assessment(credential, subject, direction, rule, checked_in)
        took = self.rng.uniform(450, 900) if measurement else self.rng.uniform(40, 120)
        data = decision_event_data(
            config,
            decision,
            assessment,
            measurement,
            decision_ms=took,
            clock_synced=kiosk.clock_synced,
        )
        event = self.record(kiosk, scan.at, EventType.DECISION, data)
        kiosk.counts.add(self.day or date.min, decision.outcome.value, decision.reason.value)
        if decision.outcome.value != "grant" or subject is None:
            return
        if config.kiosk.mode == "checkin":
            self.attendance.add((scan.meeting or "", subject))
            return
        if direction == "entry":
            self.inside[area][subject] = scan.at
            self.visitors_today += credential.kind == "visitor" and area == "main"
        else:
            self.inside[area].pop(subject, None)
        if config.gate.relay_mode == "hold":
            through = scan.at + timedelta(seconds=self.rng.uniform(1.5, 4))
            self.record(
                kiosk, through, EventType.PASSAGE, passage_event_data("grant", event.event_id)
            )
            kiosk.passages += 1

    def measure(self, kiosk: Kiosk, body: Body | None) -> Measurement:
        """The kiosk's measurement of ``body``: a fault while its thermometer has failed."""
        if not kiosk.thermometer.ok:
            return Measurement(
                TemperatureStatus.FAULT, None, None, 0, False, False, kiosk.thermometer.detail, 0.9
            )
        body = body or Body(36.6, 29.0)
        kiosk.last_body = body
        fever = body.celsius >= kiosk.config.thermometer.fever_threshold_c
        status = TemperatureStatus.FEVER if fever else TemperatureStatus.NORMAL
        samples = 10 if body.retested else 5
        return Measurement(
            status, body.celsius, body.ambient_c, samples, True, body.retested, "ok", 0.6
        )

    def state(self, kiosk: Kiosk, now: datetime, unconfirmed: list[WireEvent]) -> dict[str, Any]:
        """The kiosk's retained state at ``now``, as its sync publishes it."""
        body = kiosk.last_body
        reading = None if body is None else Reading(body.ambient_c, body.celsius - 0.4)
        parts: dict[str, PartState] = {part.value: PartState() for part in Part}
        parts[Part.THERMOMETER] = kiosk.thermometer
        gate = GateState(False, kiosk.lockdown, False, False, kiosk.passages)
        stats = LogStats(
            rows=len(kiosk.events),
            unconfirmed=len(unconfirmed),
            oldest_unconfirmed_ts_ms=unconfirmed[0].ts_ms if unconfirmed else None,
            last_seq=len(kiosk.events),
            capacity=kiosk.config.log.capacity,
            near_capacity=False,
            over_capacity=False,
        )
        inside = None
        if kiosk.config.kiosk.mode == "gate":
            inside = len(self.inside[kiosk.config.kiosk.area])
        health = Health(
            parts=parts,
            frames_read=int((now.timestamp() % 86_400) * 15),
            frames_per_s=15.0 if kiosk.config.kiosk.mode != "screen" else 0.0,
            last_reading=reading,
            last_temperature_c=None if body is None else body.celsius,
            gate=gate,
            log=stats,
            clock_synced=kiosk.clock_synced,
            today=kiosk.counts.snapshot(now.astimezone(self.tz).date()),
            inside=inside,
        )
        mqtt = {
            "connected": True,
            "in_flight": len(unconfirmed),
            "last_receipt_ms": ms(now) - 1200,
            "ignored_messages": 0,
            "unsendable_events": 0,
            "restarts": 0,
        }
        return state_document(kiosk.config, health, ms(now)) | {"mqtt": mqtt}


def ms(at: datetime) -> int:
    """``at`` as epoch milliseconds, as events carry it."""
    return int(at.timestamp() * 1000)
