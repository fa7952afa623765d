"""What the entrance knows about one scanned code before the decision: credential, subject,
direction, the entry rules' verdict and attendance — and what it learns from each passage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kiosk.config import KioskConfig
from kiosk.credentials import CredentialCheck, CredentialStatus
from kiosk.credentials.checker import Credentials
from kiosk.credentials.declarations import Declaration, DeclarationStatus
from kiosk.decide.area import AreaState, passage_from_event, passage_from_unused
from kiosk.decide.decision import DeclarationAdvice
from kiosk.decide.privacy import Pseudonymizer
from kiosk.decide.rules import (
    EntryPolicy,
    Holder,
    RuleRefusal,
    check_entry,
    is_repeat_read,
    parse_hours,
)
from kiosk.decide.second_scan import SecondScan
from kiosk.events import EventType


@dataclass(frozen=True)
class Assessment:
    """Everything decided about one scan before temperature and the decision core."""

    credential: CredentialCheck
    subject: str | None  # pseudonymous; None when the payload identified nobody
    direction: str  # "entry" or "exit"
    rule: RuleRefusal | None
    checked_in_before: bool
    repeat: bool = False  # anti-passback: the same pass again within the grace, one scan

    @property
    def exiting(self) -> bool:
        """True for a scan on the way out."""
        return self.direction == "exit"


def entry_policy(config: KioskConfig) -> EntryPolicy:
    """The entry rules from the [rules] section."""
    r = config.rules
    return EntryPolicy(
        health_declaration_max_age_h=r.health_declaration_max_age_h,
        visitor_hours=parse_hours(r.visitor_hours),
        visitor_daily_cap=r.visitor_daily_cap,
        anti_passback=r.anti_passback,
        passback_grace_s=r.passback_grace_s,
        passback_reentry_s=r.passback_reentry_h * 3600,
        occupancy_cap=r.occupancy_cap,
    )


def declaration_advice(config: KioskConfig) -> DeclarationAdvice:
    """What the display tells someone who must declare first, from the [rules] section."""
    r = config.rules
    return DeclarationAdvice(r.health_declaration_max_age_h, r.health_declaration_url)


class Entrance:
    """The entrance's memory: who is inside, who checked in, and how to read a credential.

    :param declarations: a subject's newest health declaration at central (the kiosk's
        :class:`~kiosk.credentials.declared.DeclaredStore`), or None without one.
    """

    def __init__(
        self,
        config: KioskConfig,
        checker: Credentials,
        pseudonymizer: Pseudonymizer,
        today: datetime,
        *,
        declarations: Callable[[str], Declaration | None] | None = None,
    ) -> None:
        self.config = config
        self.checker = checker
        self._declarations = declarations
        self._pseudonymizer = pseudonymizer
        self._policy = entry_policy(config)
        self.area = AreaState(config.kiosk.area, today.astimezone().date())
        self._attendance: set[str] = set()
        self._lock = threading.Lock()
        dcc = config.dcc
        with_pass = dcc.enabled and dcc.mode == "with_pass"
        self._second_scan = SecondScan(dcc.second_scan_window_s) if with_pass else None

    def assess(self, payload: bytes, now: datetime, *, too_large: bool) -> Assessment:
        """Read the credential and apply the entry rules (time passed in)."""
        credential = self.checker.check(payload, now, too_large=too_large)
        subject = self._subject(credential)
        direction = self._direction(subject)
        if self._second_scan is not None and direction == "entry":
            credential = self._second_scan.combine(credential, now)  # [dcc] with_pass
            subject = self._subject(credential)
        rule, repeat = None, False
        if credential.status is CredentialStatus.VALID and subject:
            facts = self.area.facts(subject, now)
            repeat = is_repeat_read(self._policy, facts, now)
            if direction == "entry" and not repeat:
                holder = self._holder(subject, credential)
                rule = check_entry(holder, self._policy, facts, now)
        with self._lock:
            checked_in = subject is not None and subject in self._attendance
        return Assessment(credential, subject, direction, rule, checked_in, repeat)

    def needs_temperature(self, assessment: Assessment) -> bool:
        """Measure only when the temperature can still change the outcome of an entry."""
        credential = assessment.credential
        unsigned_blocked = credential.unsigned and self.config.credentials.national_qr != "grant"
        return (
            self.config.kiosk.mode == "gate"
            and self.config.thermometer.enabled
            and credential.status is CredentialStatus.VALID
            and not assessment.exiting
            and assessment.rule is None
            and not unsigned_blocked
        )

    def learn(self, event_id: str, ts_ms: int, data: dict[str, Any]) -> None:
        """A decision was logged here or by a neighbour: update occupancy and attendance."""
        passage = passage_from_event(event_id, ts_ms, data)
        if passage is not None:
            self.area.record(passage)
        meeting = self.config.kiosk.meeting
        if data.get("mode") == "checkin" and data.get("meeting") == meeting and meeting:
            subject = data.get("subject")
            if data.get("outcome") == "grant" and isinstance(subject, str):
                with self._lock:
                    self._attendance.add(subject)

    def learn_event(self, event_type: str, event_id: str, ts_ms: int, data: dict[str, Any]) -> None:
        """Any logged event (here or a neighbour's): decisions and withdrawn grants count."""
        if event_type == EventType.DECISION:
            self.learn(event_id, ts_ms, data)
        elif event_type == EventType.GRANT_UNUSED:
            passage = passage_from_unused(event_id, ts_ms, data)
            if passage is not None:
                self.area.record(passage)

    def _holder(self, subject: str, credential: CredentialCheck) -> Holder:
        """The holder with the newest of the credential's declaration claim and central's
        document entry (whose status counts when it is the newer, or as new)."""
        kind = credential.kind or "staff"
        claimed = credential.health_declared_at
        declared = None if self._declarations is None else self._declarations(subject)
        if declared is None or (claimed is not None and claimed > declared.declared_at):
            return Holder(subject, kind, claimed)
        refer = declared.status is DeclarationStatus.REFER
        return Holder(subject, kind, declared.declared_at, health_refer=refer)

    def _subject(self, credential: CredentialCheck) -> str | None:
        if credential.badge_id is None:
            return None
        if credential.credential_type in ("national", "dcc"):
            return credential.badge_id  # already a salted hash (ID number; DCC name and birth)
        # Badge ids and pass subjects share one keyed namespace, kept apart by a prefix.
        prefix = "pass:" if credential.credential_type == "pass" else ""
        return self._pseudonymizer.subject(prefix + credential.badge_id)

    def _direction(self, subject: str | None) -> str:
        configured = self.config.kiosk.direction
        if configured != "toggle":
            return configured
        return "exit" if subject is not None and self.area.is_inside(subject) else "entry"
