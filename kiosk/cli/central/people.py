"""``kiosk central report inside`` and ``kiosk central trace``: who is inside now, and who
was near a person, with names from the roster."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

import click

from kiosk.cli.central.options import central_config, db_option, store_url, within_range
from kiosk.cli.central.roster import _pseudonymizer, _site_id, site_option
from kiosk.cli.common import EX_DATAERR, EX_USAGE

if TYPE_CHECKING:
    from kiosk.central.people_formats import Format
    from kiosk.central.roster import Entry

output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (CSV with a byte-order mark, for Excel) instead of the screen.",
)


def _emit(text: str, fmt: str, output: Path | None) -> None:
    from kiosk.central.people_formats import file_bytes

    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_bytes(file_bytes(text, fmt))


@click.command("inside")
@click.option("--site", callback=lambda c, p, v: v and _site_id(c, p, v), help="Only this site.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text", show_default=True
)
@output_option
@db_option
@click.pass_context
def inside_command(
    ctx: click.Context, site: str | None, fmt: str, output: Path | None, db_url: str | None
) -> None:
    """People inside now, per site and area, from the entries and exits of all the site's
    kiosks since local midnight (the kiosks' own rules), with names from the roster."""
    from kiosk.central import open_store
    from kiosk.central.people_formats import inside_text
    from kiosk.central.presence import inside

    config = central_config(ctx)
    store = open_store(store_url(ctx, db_url))
    try:
        areas = inside(store, config, site)
    finally:
        store.close()
    _emit(inside_text(areas, cast("Format", fmt)), fmt, output)


@click.command("trace")
@click.option("--badge", help="The index person's badge id (subject computed with the site salt).")
@click.option("--pass", "holder", help="The index person's pass holder reference.")
@click.option("--subject", help="The index person's subject, as kiosks record it.")
@click.option("--name", help="Part of the index person's name in the roster.")
@site_option
@click.option("--from", "start", required=True, help="ISO date or date-time, site local time.")
@click.option("--to", "end", required=True, help="ISO date (through its end) or date-time.")
@click.option(
    "--window-min",
    default=15.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Minutes either side of each passage in which others at that entrance are contacts.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@output_option
@db_option
@click.pass_context
def trace_command(
    ctx: click.Context,
    badge: str | None,
    holder: str | None,
    subject: str | None,
    name: str | None,
    site: str,
    start: str,
    end: str,
    window_min: float,
    fmt: str,
    output: Path | None,
    db_url: str | None,
) -> None:
    """Every place and time the index person passed between --from and --to, and every
    other person who passed the same entrance within --window-min of it, was inside the same
    area at the same time, or checked in to the same meeting that day; each with the reason.

    Give the index person by exactly one of --badge, --pass, --subject or --name; a name that
    matches several people lists them (exit 64): choose one with --subject.
    """
    from kiosk.central import open_store
    from kiosk.central.people_formats import trace_text
    from kiosk.central.rosterfile import subject_of
    from kiosk.central.trace import find_people, trace

    given = [(c, v) for c, v in (("badge", badge), ("pass", holder), ("subject", subject)) if v]
    if len(given) + bool(name) != 1:
        raise click.UsageError("give exactly one of --badge, --pass, --subject or --name")
    zone = ZoneInfo(central_config(ctx).site(site).timezone)
    t0 = _moment(start, "--from", zone)
    t1 = _moment(end, "--to", zone, end_of_day=True)
    if t1 <= t0:
        raise click.BadParameter("--to must be after --from")
    store = open_store(store_url(ctx, db_url))
    try:
        if name:
            subject = _one_named(find_people(store, site, name), site, name)
        else:
            ((column, value),) = given
            pseudonymizer = _pseudonymizer(ctx, site) if column != "subject" else None
            subject = value if pseudonymizer is None else subject_of(value, column, pseudonymizer)
        window = timedelta(minutes=window_min)
        result = trace(store, site, subject, t0, t1, zone, window, now=datetime.now(UTC))
    finally:
        store.close()
    text = trace_text(result, "json" if fmt == "json" else "csv")
    _emit(text + ("\n" if fmt == "json" else ""), fmt, output)


def _moment(text: str, label: str, zone: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    """``--from`` or ``--to`` (:func:`kiosk.credentials.office.parse_moment`), on a day
    :func:`within_range`; a usage error (exit 2) otherwise."""
    from kiosk.credentials.office import parse_moment

    try:
        start = parse_moment(text[:10], label, zone=zone)
        within_range(start.date(), label)
        return parse_moment(text, label, zone=zone, end_of_day=end_of_day)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _one_named(matches: list[Entry], site: str, text: str) -> str:
    """The one subject a name search found; else the matches are listed and the command ends."""
    if len(matches) == 1:
        return str(matches[0].subject)
    if not matches:
        click.echo(f"kiosk: nobody in {site}'s roster has a name containing {text!r}", err=True)
        sys.exit(EX_DATAERR)
    click.echo(f"kiosk: {len(matches)} people match {text!r}; choose one with --subject:", err=True)
    for entry in matches:
        click.echo(f"  {entry.subject}\t{entry.name}\t{entry.unit}\t{entry.kind}", err=True)
    sys.exit(EX_USAGE)
