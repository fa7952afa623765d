"""Entry rules (pure) and the area state that feeds them."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from kiosk.decide import area as area_module
from kiosk.decide.area import AreaState, Passage, passage_from_event, passage_from_unused
from kiosk.decide.rules import (
    EntranceFacts,
    EntryPolicy,
    Holder,
    RuleRefusal,
    check_entry,
    is_repeat_read,
    parse_hours,
)

NOW = datetime(2026, 11, 23, 10, 0).astimezone()
NOBODY = EntranceFacts(occupancy=0, visitors_today=0, last_entry_at=None)
STAFF = Holder("s-1", "staff", health_declared_at=NOW - timedelta(hours=2))
VISITOR = Holder("s-2", "visitor", health_declared_at=NOW - timedelta(hours=2))


@pytest.mark.parametrize(
    ("holder", "policy", "facts", "expected"),
    [
        (STAFF, EntryPolicy(), NOBODY, None),
        (
            Holder("s-1", "staff"),
            EntryPolicy(health_declaration_max_age_h=24),
            NOBODY,
            RuleRefusal.HEALTH_DECLARATION_MISSING,
        ),
        (
            Holder("s-1", "staff", NOW - timedelta(hours=25)),
            EntryPolicy(health_declaration_max_age_h=24),
            NOBODY,
            RuleRefusal.HEALTH_DECLARATION_STALE,
        ),
        (STAFF, EntryPolicy(health_declaration_max_age_h=24), NOBODY, None),
        (
            VISITOR,
            EntryPolicy(visitor_hours=(time(11), time(17))),
            NOBODY,
            RuleRefusal.VISITOR_OUTSIDE_HOURS,
        ),
        (STAFF, EntryPolicy(visitor_hours=(time(11), time(17))), NOBODY, None),
        (VISITOR, EntryPolicy(visitor_hours=(time(22), time(11))), NOBODY, None),
        (
            VISITOR,
            EntryPolicy(visitor_daily_cap=3),
            EntranceFacts(occupancy=0, visitors_today=3, last_entry_at=None),
            RuleRefusal.VISITOR_CAP_REACHED,
        ),
        (
            STAFF,
            EntryPolicy(visitor_daily_cap=3),
            EntranceFacts(occupancy=0, visitors_today=3, last_entry_at=None),
            None,
        ),
        (
            STAFF,
            EntryPolicy(anti_passback=True),
            EntranceFacts(occupancy=1, visitors_today=0, last_entry_at=NOW - timedelta(minutes=5)),
            RuleRefusal.ALREADY_INSIDE,
        ),
        (  # the grace makes a re-read one scan (is_repeat_read), never a second entry
            STAFF,
            EntryPolicy(anti_passback=True, passback_grace_s=10),
            EntranceFacts(occupancy=1, visitors_today=0, last_entry_at=NOW - timedelta(seconds=5)),
            RuleRefusal.ALREADY_INSIDE,
        ),
        (  # the configured re-entry time: an entry never scanned out expires
            STAFF,
            EntryPolicy(anti_passback=True, passback_reentry_s=3600),
            EntranceFacts(occupancy=1, visitors_today=0, last_entry_at=NOW - timedelta(hours=1)),
            None,
        ),
        (
            STAFF,
            EntryPolicy(anti_passback=True, passback_reentry_s=3600),
            EntranceFacts(occupancy=1, visitors_today=0, last_entry_at=NOW - timedelta(minutes=59)),
            RuleRefusal.ALREADY_INSIDE,
        ),
        (
            STAFF,
            EntryPolicy(occupancy_cap=2),
            EntranceFacts(occupancy=2, visitors_today=0, last_entry_at=None),
            RuleRefusal.OCCUPANCY_FULL,
        ),
        (
            Holder("s-1", "staff"),
            EntryPolicy(health_declaration_max_age_h=24, occupancy_cap=1),
            EntranceFacts(occupancy=5, visitors_today=0, last_entry_at=None),
            RuleRefusal.HEALTH_DECLARATION_MISSING,
        ),
    ],
)
def test_rules(
    holder: Holder, policy: EntryPolicy, facts: EntranceFacts, expected: RuleRefusal | None
) -> None:
    assert check_entry(holder, policy, facts, NOW) == expected


def test_parse_hours() -> None:
    assert parse_hours("07:30-17:00") == (time(7, 30), time(17))
    assert parse_hours("") is None
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_hours("7h-5pm")


def passage(
    event_id: str,
    subject: str,
    direction: str,
    *,
    kind: str = "staff",
    area: str = "main",
    at: datetime = NOW,
) -> Passage:
    return Passage(event_id, subject, kind, area, direction, at)


def test_area_counts_people_inside_once_per_event() -> None:
    area = AreaState("main", NOW.date())
    area.record(passage("e1", "s-1", "entry"))
    area.record(passage("e1", "s-1", "entry"))  # the same event, delivered twice
    area.record(passage("e2", "s-2", "entry", kind="visitor"))
    area.record(passage("e3", "s-3", "entry", area="lab"))  # another area of the site
    assert area.facts("s-1", NOW) == EntranceFacts(
        occupancy=2, visitors_today=1, last_entry_at=NOW, last_grant_at=NOW
    )
    later = NOW + timedelta(seconds=1)
    area.record(passage("e4", "s-1", "exit", at=later))
    assert area.facts("s-1", later) == EntranceFacts(
        occupancy=1, visitors_today=1, last_entry_at=None, last_grant_at=later
    )


def test_area_starts_afresh_each_day() -> None:
    area = AreaState("main", NOW.date())
    area.record(passage("e1", "s-1", "entry", kind="visitor"))
    tomorrow = NOW + timedelta(days=1)
    assert area.facts("s-1", tomorrow) == EntranceFacts(0, 0, None, None)
    area.record(passage("e0", "s-9", "entry", at=NOW))  # late news from yesterday
    assert area.facts("s-9", tomorrow).occupancy == 0


def test_a_passage_dated_ahead_of_the_clock_neither_wipes_the_day_nor_pins_a_person() -> None:
    """A neighbour whose clock runs fast, or a forged passage: tomorrow's would reset the day,
    one at 23:59 would outrank every real passage of that person until midnight."""
    area = AreaState("main", NOW.date(), clock=NOW.timestamp)
    area.record(passage("e1", "s-1", "entry"))
    area.record(passage("e2", "s-2", "entry"))
    area.record(passage("f1", "s-3", "entry", at=NOW + timedelta(days=1)))
    area.record(passage("f2", "s-1", "entry", at=NOW.replace(hour=23, minute=59)))
    assert area.facts(None, NOW).occupancy == 2
    area.record(passage("e3", "s-1", "exit", at=NOW + timedelta(seconds=1)))
    assert area.facts("s-1", NOW + timedelta(seconds=1)).occupancy == 1
    area.record(passage("e4", "s-4", "entry", at=NOW + timedelta(minutes=4)))  # small skew
    assert area.is_inside("s-4")


def test_passage_from_a_logged_decision() -> None:
    data = {
        "outcome": "grant",
        "direction": "entry",
        "area": "main",
        "subject": "s-1",
        "credential": {"status": "valid", "kind": "visitor"},
    }
    found = passage_from_event("e1", int(NOW.timestamp() * 1000), data)
    assert found == Passage("e1", "s-1", "visitor", "main", "entry", NOW)
    assert passage_from_event("e2", 0, data | {"outcome": "deny"}) is None
    assert passage_from_event("e3", 0, data | {"subject": None}) is None


@pytest.mark.parametrize("ts_ms", [2**62, -(2**62), -1, area_module.TS_MS_RANGE.stop, 1.5])
def test_a_passage_at_no_sane_time_is_refused_with_its_reason(ts_ms: int) -> None:
    data = {"outcome": "grant", "direction": "entry", "area": "main", "subject": "s-1"}
    with pytest.raises(ValueError, match="not between 1970 and 2100"):
        passage_from_event("e1", ts_ms, data | {"credential": {}})
    with pytest.raises(ValueError, match="not between 1970 and 2100"):
        passage_from_unused("u1", ts_ms, data)


@pytest.mark.parametrize(
    ("policy", "last_grant_s", "expected"),
    [
        (EntryPolicy(anti_passback=True, passback_grace_s=10), 4.0, True),
        (EntryPolicy(anti_passback=True, passback_grace_s=10), 10.0, True),
        (EntryPolicy(anti_passback=True, passback_grace_s=10), 10.5, False),
        (EntryPolicy(anti_passback=True, passback_grace_s=10), None, False),
        (EntryPolicy(anti_passback=False, passback_grace_s=10), 4.0, False),
        (EntryPolicy(anti_passback=True, passback_grace_s=0), 0.0, False),
    ],
)
def test_a_read_within_the_grace_repeats_the_grant(
    policy: EntryPolicy, last_grant_s: float | None, expected: bool
) -> None:
    at = None if last_grant_s is None else NOW - timedelta(seconds=last_grant_s)
    facts = EntranceFacts(occupancy=1, visitors_today=0, last_entry_at=at, last_grant_at=at)
    assert is_repeat_read(policy, facts, NOW) is expected


def test_an_older_event_arriving_late_changes_nothing() -> None:
    area = AreaState("main", NOW.date())
    later = NOW + timedelta(minutes=1)
    area.record(passage("e2", "s-1", "exit", at=later))
    area.record(passage("e1", "s-1", "entry", at=NOW))  # the entry, delivered after the exit
    assert area.facts("s-1", later).occupancy == 0
    area.record(passage("e3", "s-1", "entry", at=later + timedelta(minutes=1)))
    area.record(passage("e2", "s-1", "exit", at=later))  # the exit again: old news
    assert area.is_inside("s-1")


def test_an_unused_grant_puts_the_subject_back() -> None:
    area = AreaState("main", NOW.date())
    area.record(passage("e1", "s-1", "entry"))
    unused = {"grant": "e1", "subject": "s-1", "direction": "entry", "area": "main"}
    ts_ms = int((NOW + timedelta(seconds=8)).timestamp() * 1000)
    correction = passage_from_unused("u1", ts_ms, unused)
    assert correction is not None and correction.direction == "exit" and not correction.granted
    area.record(correction)
    area.record(passage("e1", "s-1", "entry"))  # the grant again (a resend): older, ignored
    facts = area.facts("s-1", NOW + timedelta(seconds=9))
    assert facts == EntranceFacts(0, 0, last_entry_at=None, last_grant_at=None)
    area.record(passage("e2", "s-2", "exit"))
    exit_unused = passage_from_unused("u2", ts_ms, unused | {"subject": "s-2", "direction": "exit"})
    assert exit_unused is not None
    area.record(exit_unused)
    assert area.is_inside("s-2")  # scanned out but never went: still inside
    assert passage_from_unused("u3", ts_ms, {"subject": None, "direction": "entry"}) is None


def test_area_memory_is_bounded_by_people_not_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(area_module, "OUTSIDE_MARKS", 50)
    area = AreaState("main", NOW.date())
    for n in range(2_000):  # 2,000 events of 200 people coming and going all day
        at = NOW + timedelta(seconds=n)
        direction = "entry" if (n // 200) % 2 == 0 else "exit"
        area.record(passage(f"e{n}", f"s-{n % 200}", direction, at=at))
        area.record(passage(f"e{n}", f"s-{n % 200}", direction, at=at))  # and duplicates
    sizes = area.sizes()
    assert sizes["inside"] == 0 and sizes["outside"] <= 50
