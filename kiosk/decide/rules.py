"""Entry rules from the source documents, as pure functions (R4, R5, R7, anti-passback, R6).

The decision core checks the credential; these rules then look at who the holder is and
what the entrance knows (``EntranceFacts``), and return the first refusal, or None. Checks,
in order: health declaration age (R4) and status (a ``refer`` declaration sends the holder to
the guard, whether or not the age is checked) → visitor hours and daily visitor cap (R5) →
anti-passback → occupancy cap (R7). Exits are never refused by a rule: nobody is trapped
inside. Time is always passed in.

Anti-passback has two parts. A pass read again within ``passback_grace_s`` of its last grant
(either way) is the same scan (:func:`is_repeat_read`): the caller ignores it, so it never
opens the gate twice and never restarts the window. A later entry while the pass is still
inside is refused (``already_inside``) until it exits, ``passback_reentry_s`` has passed since
the entry (when set), or the area's day ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum


class RuleRefusal(StrEnum):
    """Stable reason codes for the rules (they are also decision reasons)."""

    HEALTH_DECLARATION_MISSING = "health_declaration_missing"
    HEALTH_DECLARATION_STALE = "health_declaration_stale"
    HEALTH_DECLARATION_REFER = "health_declaration_refer"  # a symptom or a contact: the guard
    VISITOR_OUTSIDE_HOURS = "visitor_outside_hours"
    VISITOR_CAP_REACHED = "visitor_cap_reached"
    ALREADY_INSIDE = "already_inside"
    OCCUPANCY_FULL = "occupancy_full"


@dataclass(frozen=True)
class EntryPolicy:
    """The rules a kiosk enforces; zero or None switches a rule off."""

    health_declaration_max_age_h: float = 0.0
    visitor_hours: tuple[time, time] | None = None  # local time, [start, end)
    visitor_daily_cap: int = 0
    anti_passback: bool = False
    passback_grace_s: float = 10.0  # the same pass again this soon is the same scan
    passback_reentry_s: float = 0.0  # an entry with no exit expires after this; 0: at midnight
    occupancy_cap: int = 0


@dataclass(frozen=True)
class Holder:
    """What the rules need to know about the person from their credential."""

    subject: str
    kind: str  # staff, visitor, contractor
    health_declared_at: datetime | None = None  # the newest of the pass's claim and central's
    health_refer: bool = False  # that newest declaration said refer (a symptom or a contact)


@dataclass(frozen=True)
class EntranceFacts:
    """What the entrance knows right now (from this kiosk and the others of its area)."""

    occupancy: int  # people inside the area
    visitors_today: int  # visitors admitted into the site today
    last_entry_at: datetime | None  # the holder's last entry, if they have not exited since
    last_grant_at: datetime | None = None  # the holder's last granted passage, either way


def is_repeat_read(policy: EntryPolicy, facts: EntranceFacts, now: datetime) -> bool:
    """Whether this scan repeats the holder's last grant (anti-passback's grace): ignore it."""
    if not policy.anti_passback or policy.passback_grace_s <= 0 or facts.last_grant_at is None:
        return False
    return (now - facts.last_grant_at).total_seconds() <= policy.passback_grace_s


def check_entry(
    holder: Holder, policy: EntryPolicy, facts: EntranceFacts, now: datetime
) -> RuleRefusal | None:
    """The first rule that refuses ``holder`` entry at ``now`` (timezone-aware), or None."""
    if policy.health_declaration_max_age_h > 0:
        if holder.health_declared_at is None:
            return RuleRefusal.HEALTH_DECLARATION_MISSING
        age = now - holder.health_declared_at
        if age > timedelta(hours=policy.health_declaration_max_age_h):
            return RuleRefusal.HEALTH_DECLARATION_STALE
    if holder.health_refer:
        return RuleRefusal.HEALTH_DECLARATION_REFER
    if holder.kind == "visitor":
        if policy.visitor_hours is not None and not _within(now, policy.visitor_hours):
            return RuleRefusal.VISITOR_OUTSIDE_HOURS
        if policy.visitor_daily_cap and facts.visitors_today >= policy.visitor_daily_cap:
            return RuleRefusal.VISITOR_CAP_REACHED
    if policy.anti_passback and facts.last_entry_at is not None:
        since = (now - facts.last_entry_at).total_seconds()
        if not 0 < policy.passback_reentry_s <= since:
            return RuleRefusal.ALREADY_INSIDE
    if policy.occupancy_cap and facts.occupancy >= policy.occupancy_cap:
        return RuleRefusal.OCCUPANCY_FULL
    return None


def _within(now: datetime, hours: tuple[time, time]) -> bool:
    start, end = hours
    local = now.astimezone().time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # a window across midnight


def parse_hours(text: str) -> tuple[time, time] | None:
    """``"07:00-18:00"`` → (07:00, 18:00); ``""`` → None (any time). ValueError if malformed."""
    if not text:
        return None
    try:
        start, end = text.split("-")
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM") from None
