"""The exposure trace at central (kiosk.central.trace, ``kiosk central trace``): the index
person's passages, contacts at the same entrance within the window, in the same area at the
same time and at the same meeting, and nobody else; on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner, Result

from kiosk.central import Store, roster
from kiosk.central.trace import Row, stays, trace
from kiosk.cli.main import cli
from kiosk.decide.privacy import Pseudonymizer
from tests.central_people import ZONE, at, decision, person, put

pytest_plugins = ("tests.central_fixtures",)

START = datetime(2026, 12, 1, tzinfo=ZONE)
END = datetime(2026, 12, 2, tzinfo=ZONE)


def day_of_contacts(store: Store, index: str = "s-x") -> None:
    """The index person ``index`` enters main at k1 at 09:00, leaves at k2 at 12:00 and checks
    in to meeting M1 at 14:00; around them, contacts and people who are not."""
    put(
        store,
        decision(index, at("2026-11-30 09:05"), kiosk="k1"),  # the day before the trace
        decision("s-before", at("2026-11-30 09:10"), kiosk="k1"),
        decision(index, at("2026-12-01 09:00"), kiosk="k1"),
        decision(index, at("2026-12-01 12:00"), kiosk="k2", direction="exit"),
        decision(index, at("2026-12-01 14:00"), kiosk="k9", area="room-1", meeting="M1"),
        decision("s-a", at("2026-12-01 09:10"), kiosk="k1"),  # entrance and area
        decision("s-c", at("2026-12-01 08:50"), kiosk="k1", outcome="deny"),  # entrance only
        decision("s-b", at("2026-12-01 08:40"), kiosk="k1", outcome="deny"),  # 20 min: no
        decision("s-d", at("2026-12-01 07:00"), kiosk="k2"),
        decision("s-d", at("2026-12-01 08:55"), kiosk="k2", direction="exit"),  # left before
        decision("s-e", at("2026-12-01 11:00"), kiosk="k3", kind="visitor"),  # area only
        decision("s-f", at("2026-12-01 10:00"), kiosk="k3", area="lab"),  # another area
        decision("s-g", at("2026-12-01 09:05"), kiosk="k1", site="s2"),  # another site
        decision("s-h", at("2026-12-01 14:30"), kiosk="k9", area="room-1", meeting="M1"),
        decision("s-i", at("2026-12-01 15:30"), kiosk="k8", area="room-2", meeting="M2"),
        decision("s-late", at("2026-12-01 12:30"), kiosk="k1"),  # after the index left
    )


TWO_STAYS = (  # the index person in main from 08:00 to 12:00 and from 13:00 to 16:00
    decision("s-x", at("2026-12-01 08:00")),
    decision("s-x", at("2026-12-01 12:00"), direction="exit"),
    decision("s-x", at("2026-12-01 13:00")),
    decision("s-x", at("2026-12-01 16:00"), direction="exit"),
)


def reasons(store: Store, index: str = "s-x", window_min: float = 15) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    result = trace(store, "s1", index, START, END, ZONE, timedelta(minutes=window_min))
    for contact in result.contacts:
        found.setdefault(contact.subject, set()).add(contact.reason)
    return found


def test_contacts_are_listed_with_their_reason_and_nobody_else(store: Store) -> None:
    day_of_contacts(store)
    assert reasons(store) == {
        "s-a": {"entrance", "area"},
        "s-c": {"entrance"},
        "s-e": {"area"},
        "s-h": {"meeting", "area"},  # a check-in is an entry into its room, as at the kiosks
    }
    assert reasons(store, window_min=25)["s-b"] == {"entrance"}


def test_the_index_persons_passages_are_listed_in_order_within_the_period(store: Store) -> None:
    day_of_contacts(store)
    result = trace(store, "s1", "s-x", START, END, ZONE)
    assert [
        (s.at.strftime("%d %H:%M"), s.kiosk, s.direction, s.meeting) for s in result.sightings
    ] == [
        ("01 09:00", "k1", "entry", None),
        ("01 12:00", "k2", "exit", None),
        ("01 14:00", "k9", "entry", "M1"),
    ]


def test_contacts_carry_names_kinds_times_and_the_reason_in_words(store: Store) -> None:
    day_of_contacts(store)
    roster.replace(
        store,
        "s1",
        "import",
        [person("s-x", "Lê Văn Xuân"), person("s-a", "Nguyễn Văn An")],
        "t",
        0,
    )
    result = trace(store, "s1", "s-x", START, END, ZONE)
    assert result.person is not None and result.person.name == "Lê Văn Xuân"
    by = {(c.subject, c.reason): c for c in result.contacts}
    entrance = by[("s-a", "entrance")]
    assert entrance.person is not None and entrance.person.name == "Nguyễn Văn An"
    assert (entrance.where, entrance.at.strftime("%H:%M"), entrance.index_at.strftime("%H:%M")) == (
        "k1",
        "09:10",
        "09:00",
    )
    assert entrance.detail == "passed k1 10 min from the index person"
    area = by[("s-e", "area")]
    assert (area.person, area.kind, area.where, area.at.strftime("%H:%M")) == (
        None,
        "visitor",
        "main",
        "11:00",
    )
    assert area.detail == "inside main with the index person until 12:00"
    assert by[("s-h", "meeting")].detail == "checked in to M1 the same day"


def test_one_area_contact_per_day_spans_the_index_persons_stays(store: Store) -> None:
    put(
        store,
        *TWO_STAYS,
        decision("s-a", at("2026-12-01 07:00"), kiosk="k2"),  # inside all day
    )
    result = trace(store, "s1", "s-x", START, END, ZONE)
    assert [(c.subject, c.reason, c.at.strftime("%H:%M"), c.detail) for c in result.contacts] == [
        ("s-a", "area", "08:00", "inside main with the index person until 16:00")
    ]


def test_the_gap_between_two_stays_of_a_day_makes_no_contact(store: Store) -> None:
    put(
        store,
        *TWO_STAYS,
        decision("s-lunch", at("2026-12-01 12:10"), kiosk="k2"),  # inside only at lunch
        decision("s-lunch", at("2026-12-01 12:50"), kiosk="k2", direction="exit"),
        decision("s-pm", at("2026-12-01 12:30"), kiosk="k2"),  # from lunch on
        decision("s-pm", at("2026-12-01 14:00"), kiosk="k2", direction="exit"),
    )
    result = trace(store, "s1", "s-x", START, END, ZONE)
    assert [
        (c.subject, c.at.strftime("%H:%M"), c.index_at.strftime("%H:%M"), c.detail)
        for c in result.contacts
    ] == [("s-pm", "13:00", "13:00", "inside main with the index person until 14:00")]


def test_a_trace_through_today_ends_the_open_stays_now(store: Store) -> None:
    put(
        store,
        decision("s-x", at("2026-12-01 08:00")),  # still inside
        decision("s-a", at("2026-12-01 07:00"), kiosk="k2"),  # still inside
    )
    result = trace(
        store,
        "s1",
        "s-x",
        START,
        END,
        ZONE,
        now=datetime.fromtimestamp(at("2026-12-01 10:30") / 1000, ZONE),
    )
    assert [(c.subject, c.reason, c.detail) for c in result.contacts] == [
        ("s-a", "area", "inside main with the index person until 10:30")
    ]
    assert result.end == END
    later = trace(store, "s1", "s-x", START, END, ZONE, now=END + timedelta(days=1))
    assert later.contacts[0].detail == "inside main with the index person until 00:00"


def test_a_stay_ends_at_the_sites_midnight_as_the_kiosks_count_starts_afresh() -> None:
    def row(subject: str, ts: str, direction: str = "entry") -> Row:
        return Row(
            subject,
            "k1",
            f"id-{subject}-{ts}",
            at(ts),
            "decision",
            "main",
            direction,
            "grant",
            "staff",
            None,
        )

    found = stays(
        [
            row("s-a", "2026-12-01 22:00"),
            row("s-a", "2026-12-02 08:00", "exit"),
            row("s-b", "2026-12-02 07:00"),
        ],
        ZONE,
        at("2026-12-02 09:00"),
    )
    assert sorted((s.subject, s.start_ms, s.end_ms) for s in found) == [
        ("s-a", at("2026-12-01 22:00"), at("2026-12-02 00:00")),
        ("s-b", at("2026-12-02 07:00"), at("2026-12-02 09:00")),
    ]


def test_someone_inside_overnight_is_no_contact_of_the_next_morning(store: Store) -> None:
    put(
        store,
        decision("s-night", at("2026-11-30 20:00")),  # never scanned out
        decision("s-x", at("2026-12-01 08:00")),
    )
    assert reasons(store) == {}


def central(config: Path, db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["central", "--config", str(config), *args, "--db", db_url])


def test_trace_command_finds_the_index_person_by_badge_name_or_subject(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    salt = tmp_path / "site-salt"
    salt.write_text("site-salt-0123456789abcdef\n", encoding="utf-8")
    os.chmod(salt, 0o600)
    config = tmp_path / "central.toml"
    config.write_text(f'[sites.s1]\nsubject_salt_file = "{salt}"\n', encoding="utf-8")
    index = Pseudonymizer(b"site-salt-0123456789abcdef").subject("B-1001")
    day_of_contacts(store, index)
    holders = [person(index, "Lê Văn Xuân"), person("s-a", "Lê Thị An"), person("s-e", "Phạm Lê")]
    roster.replace(store, "s1", "import", holders, "t", 0)
    period = ("--site", "s1", "--from", "2026-12-01", "--to", "2026-12-01")

    by_badge = central(config, db_url, "trace", "--badge", "B-1001", *period, "--format", "json")
    assert by_badge.exit_code == 0, by_badge.output
    listed = json.loads(by_badge.output)
    assert listed["subject"] == index and listed["name"] == "Lê Văn Xuân"
    assert len(listed["passages"]) == 3
    assert {(c["subject"], c["reason"]) for c in listed["contacts"]} >= {("s-a", "entrance")}

    by_name = central(config, db_url, "trace", "--name", "xuân", *period)
    assert by_name.exit_code == 0, by_name.output
    lines = by_name.output.splitlines()
    assert lines[0] == "record,local_time,subject,name,unit,kind,reason,where,index_time,detail"
    assert lines[1].startswith(f"index,2026-12-01T09:00:00+07:00,{index},Lê Văn Xuân,")
    assert any(
        line.startswith("contact,2026-12-01T09:10:00+07:00,s-a,Lê Thị An,") for line in lines
    )

    several = central(config, db_url, "trace", "--name", "lê", *period)
    assert several.exit_code == 64
    assert "3 people match 'lê'; choose one with --subject" in several.output
    assert "s-e\tPhạm Lê" in several.output

    by_subject = central(config, db_url, "trace", "--subject", "s-e", *period, "--window-min", "0")
    assert by_subject.exit_code == 0 and "contact" in by_subject.output

    nobody = central(config, db_url, "trace", "--name", "Zed", *period)
    assert nobody.exit_code == 65
    both = central(config, db_url, "trace", "--name", "Lê", "--subject", "s-e", *period)
    assert both.exit_code == 2 and "exactly one of" in both.output


def test_two_passages_of_a_contact_in_one_millisecond_are_ordered_by_their_event_ids(
    store: Store,
) -> None:
    """The area's passages are read in time order; a subject's two in one millisecond are
    ordered by event id (as before the rows were read in time order), whoever stored first."""
    noon = at("2026-12-01 12:00")
    put(
        store,
        *TWO_STAYS,
        # s-a: in at 09:00; out and in again at noon, the exit's event id first: inside until 16:00
        decision("s-a", at("2026-12-01 09:00"), kiosk="k2"),
        decision("s-a", noon - 3_600_000, kiosk="k2", event_id="e-2"),
        decision("s-a", noon - 3_600_000, kiosk="k3", direction="exit", event_id="e-1"),
        # s-b: the same, the entry's event id first: the exit is the later, so out from 11:00
        # (the kiosks' names order each pair the other way)
        decision("s-b", at("2026-12-01 09:00"), kiosk="k2"),
        decision("s-b", noon - 3_600_000, kiosk="k3", event_id="f-1"),
        decision("s-b", noon - 3_600_000, kiosk="k2", direction="exit", event_id="f-2"),
    )
    result = trace(store, "s1", "s-x", START, END, ZONE)
    assert [(c.subject, c.at.strftime("%H:%M"), c.detail) for c in result.contacts] == [
        ("s-a", "09:00", "inside main with the index person until 16:00"),
        ("s-b", "09:00", "inside main with the index person until 11:00"),
    ]


def test_a_trace_leaves_the_garbage_collector_as_it_found_it(store: Store) -> None:
    """The trace pauses the cyclic collector while it builds its contacts, and only then."""
    day_of_contacts(store)
    assert gc.isenabled()
    assert trace(store, "s1", "s-x", START, END, ZONE).contacts
    assert gc.isenabled()
    gc.disable()
    try:
        trace(store, "s1", "s-x", START, END, ZONE)
        assert not gc.isenabled()  # paused by someone else: left so
    finally:
        gc.enable()
    failing = mock.patch("kiosk.central.trace._contacts", side_effect=ValueError("boom"))
    with pytest.raises(ValueError, match="boom"), failing:
        trace(store, "s1", "s-x", START, END, ZONE)
    assert gc.isenabled()


def test_a_trace_of_more_decisions_than_a_query_takes_parameters(store: Store) -> None:
    """13,200 decisions of the index person (five parameters each used to pass PostgreSQL's
    limit of 65,535 and SQLite's upstream default of 32,766, set here): their windows go in
    one parameter, and the contacts at each entrance are found."""
    if store.dialect.name == "sqlite":
        store.transaction(
            lambda cur: cur.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)
        )
    first = at("2026-12-01 07:00")
    # one a second, at a kiosk each, windows of 2 s: each window holds a few rows to skip
    put(store, *(decision("s-x", first + i * 1_000, kiosk=f"k{i}") for i in range(13_200)))
    put(
        store,
        decision("s-a", first + 3_000_000, kiosk="k3000"),
        decision("s-b", first + 13_199_000 + 1_500, kiosk="k13199"),  # after the last: 1.5 s
        decision("s-c", first + 13_199_000 + 2_500, kiosk="k13199"),  # 2.5 s: no
    )
    result = trace(store, "s1", "s-x", START, END, ZONE, timedelta(seconds=2))
    assert len(result.sightings) == 13_200
    near = {(c.subject, c.where) for c in result.contacts if c.reason == "entrance"}
    assert near == {("s-a", "k3000"), ("s-b", "k13199")}


def test_two_contacts_as_near_at_one_entrance_give_the_same_row_on_every_store(
    store: Store,
) -> None:
    """A contact's two decisions at the index person's kiosk in one millisecond (of two kinds)
    give the one of the lower event id, whichever was stored first; two as near, one before
    and one after the index person's passage, give the earlier."""
    nine = at("2026-12-01 09:00")
    put(
        store,
        decision("s-x", nine, kiosk="k1"),
        decision("s-a", nine + 60_000, kiosk="k1", kind="visitor", event_id="e-9"),
        decision("s-a", nine + 60_000, kiosk="k1", kind="staff", event_id="e-1"),
        decision("s-b", nine + 120_000, kiosk="k1", kind="visitor", event_id="f-1"),
        decision("s-b", nine - 120_000, kiosk="k1", kind="contractor", event_id="f-9"),
    )
    result = trace(store, "s1", "s-x", START, END, ZONE)
    found = [(c.subject, c.kind, f"{c.at:%H:%M}") for c in result.contacts]
    assert [f for f, c in zip(found, result.contacts, strict=True) if c.reason == "entrance"] == [
        ("s-b", "contractor", "08:58"),
        ("s-a", "staff", "09:01"),
    ]
