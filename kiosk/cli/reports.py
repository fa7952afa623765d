"""``kiosk events`` and ``kiosk checkin report``: what the local event log holds."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from kiosk.cli.common import EX_UNAVAILABLE, config_option, db_file_option, event_log_path
from kiosk.events import EventType


@click.command()
@config_option
@db_file_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--type",
    "event_type",
    type=click.Choice([t.value for t in EventType]),
    help="Only events of this type.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they come.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
def events(
    config_path: Path,
    db: Path | None,
    limit: int,
    event_type: str | None,
    follow: bool,
    as_json: bool,
) -> None:
    """List (or follow) the local event log, newest last: the file --db names, else the one
    the configuration names."""
    from kiosk.store.eventlog import LogOpenError, read_events

    path = event_log_path(config_path, db)
    try:
        batch = read_events(path, limit=limit, type=event_type)
        _print_events(batch, as_json)
        last = batch[-1].seq if batch else 0
        while follow:
            time.sleep(0.5)
            batch = read_events(path, limit=1000, after_seq=last, type=event_type)
            _print_events(batch, as_json)
            last = batch[-1].seq if batch else last
    except LogOpenError as exc:
        click.echo(f"kiosk: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)
    except KeyboardInterrupt:
        pass


def _print_events(batch: list[Any], as_json: bool) -> None:
    for event in batch:
        if as_json:
            click.echo(json.dumps(event.to_json_dict(), ensure_ascii=False))
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.ts_ms / 1000))
            clock = "" if event.clock_synced else " (clock not synchronised)"
            click.echo(
                f"{event.seq:>8} {stamp}Z {event.type:<13} "
                f"{json.dumps(event.data, ensure_ascii=False)}{clock}"
            )


@click.group()
def checkin() -> None:
    """Meeting check-in (kiosks in checkin mode)."""


@checkin.command("report")
@click.argument("meeting")
@config_option
@db_file_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per attendee.")
def checkin_report(meeting: str, config_path: Path, db: Path | None, as_json: bool) -> None:
    """List who checked in to MEETING: one line per pass, in order of arrival."""
    from kiosk.store.eventlog import LogOpenError, read_events
    from kiosk.store.reports import attendance

    path = event_log_path(config_path, db)
    try:
        attendees = attendance(read_events(path, 1_000_000, type=EventType.DECISION), meeting)
    except LogOpenError as exc:
        click.echo(f"kiosk: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)
    for attendee in attendees:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "subject": attendee.subject,
                        "kind": attendee.kind,
                        "credential": attendee.credential,
                        "first_seen": attendee.first_seen.isoformat(),
                    }
                )
            )
        else:
            click.echo(
                f"{attendee.first_seen:%Y-%m-%d %H:%M:%S}  {attendee.subject:<24} "
                f"{attendee.kind or '-':<10} {attendee.credential or '-'}"
            )
    if not as_json:
        click.echo(f"{len(attendees)} attended {meeting}")
