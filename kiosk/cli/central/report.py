"""``kiosk central report daily|attendance|deliver``: the daily entry list, a meeting's
check-ins with names, and the list's delivery by hand."""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from kiosk.cli.central.options import (
    central_config,
    db_option,
    store_url,
    tsv_line,
    within_range,
)
from kiosk.cli.common import EX_CANTCREAT, EX_TEMPFAIL, EX_USAGE
from kiosk.config import EX_CONFIG
from kiosk.config.values import id_check

if TYPE_CHECKING:
    from kiosk.central.settings import CentralConfig, ReportFormat
    from kiosk.central.store import Store
    from kiosk.decide.texts import Language


def _day(_ctx: click.Context, _param: click.Parameter, value: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None
    return within_range(day, "--date")


def _site(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    problem = value and id_check(value)
    if problem:
        raise click.BadParameter(problem)
    return value


date_option = click.option(
    "--date", "day", required=True, callback=_day, help="The local day, YYYY-MM-DD."
)
site_option = click.option(
    "--site", callback=_site, help="Only this site (default: every site central knows)."
)


@click.group("report")
def report_group() -> None:
    """Reports from central's store, naming people from the roster."""


def _sites(ctx: click.Context, store: Store, config: CentralConfig, site: str | None) -> list[str]:
    """The sites a report covers; exit 64 for a site neither the config nor a kiosk names."""
    from kiosk.central.reports.daily import known_sites

    known = known_sites(store, config)
    if site is None:
        return known
    if site not in known:
        click.echo(
            f"kiosk: unknown site {site!r}: neither {config.source} nor any kiosk names it "
            f"(known: {', '.join(known) or 'none'})",
            err=True,
        )
        ctx.exit(EX_USAGE)
    return [site]


@report_group.command("daily")
@date_option
@site_option
@click.option(
    "--format", "fmt", type=click.Choice(["xlsx", "csv", "json"]), help="Default: [report] format."
)
@click.option("--lang", type=click.Choice(["vi", "en"]), help="Default: [report] language.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="The file to write ('-': the standard output); default: entries-SITE-DATE.FORMAT "
    "in the current directory.",
)
@db_option
@click.pass_context
def report_daily(
    ctx: click.Context,
    day: date,
    site: str | None,
    fmt: str | None,
    lang: str | None,
    output: Path | None,
    db_url: str | None,
) -> None:
    """The entry list of one local day: one row per entry decision (local time, site,
    entrance, name and unit from the roster or the pseudonym, kind, outcome, reason,
    temperature), then a summary. XLSX has a Summary sheet, JSON a summary object; the summary
    is also printed."""
    from kiosk.central import open_store
    from kiosk.central.reports.daily import daily_list
    from kiosk.central.reports.export import file_name, render, summary_text
    from kiosk.store.durable import write_whole

    config = central_config(ctx)
    report_format = cast("ReportFormat", fmt or config.report.format)
    language = cast("Language", lang or config.report.language)
    store = open_store(store_url(ctx, db_url))
    try:
        sites = _sites(ctx, store, config, site)
        daily = daily_list(store, config, day, site) if sites else None
    finally:
        store.close()
    if daily is None:
        click.echo("kiosk: central knows no site yet: no events and no [sites] tables", err=True)
        sys.exit(EX_USAGE)
    data = render(daily, report_format, language)
    to_stdout = output is not None and str(output) == "-"
    if to_stdout:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        path = output or Path(file_name(day.isoformat(), site, report_format))
        try:
            write_whole(path, data)
        except OSError as exc:
            click.echo(f"kiosk: cannot write {path}: {exc.strerror or exc}", err=True)
            sys.exit(EX_CANTCREAT)
        click.echo(f"{path}: {len(daily.rows)} rows")
    click.echo(summary_text(daily, language), err=to_stdout)


@report_group.command("attendance")
@click.argument("meeting")
@site_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per attendee.")
@db_option
@click.pass_context
def report_attendance(
    ctx: click.Context, meeting: str, site: str | None, as_json: bool, db_url: str | None
) -> None:
    """Who checked in to MEETING, once per person in order of arrival (the kiosk's own
    `checkin report` rules, over every kiosk of the site), named from the roster."""
    from kiosk.central import open_store
    from kiosk.central.reports.attendance import meeting_attendance

    config = central_config(ctx)
    store = open_store(store_url(ctx, db_url))
    try:
        attended = meeting_attendance(store, config, meeting, _sites(ctx, store, config, site))
    finally:
        store.close()
    for one in attended:
        person = one.person
        if as_json:
            record = {
                "site": one.site,
                "first_seen": one.first_seen.isoformat(),
                "subject": one.subject,
                "name": person.name if person else None,
                "unit": person.unit if person else None,
                "kind": person.kind if person else one.kind,
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            name, unit = (person.name, person.unit) if person else (one.subject, None)
            kind = (person.kind if person else one.kind) or None
            seen = f"{one.first_seen:%Y-%m-%d %H:%M:%S}"
            click.echo(tsv_line(one.site, seen, name, unit, kind))
    if not as_json:
        click.echo(f"{len(attended)} attended {meeting}")


@report_group.command("deliver")
@date_option
@site_option
@click.option("--again", is_flag=True, help="Deliver a day already delivered once more.")
@db_option
@click.pass_context
def report_deliver(
    ctx: click.Context, day: date, site: str | None, again: bool, db_url: str | None
) -> None:
    """Deliver the list of a day now, as the daily job does: to [report] folder and by mail to
    [report] recipients (password: KIOSK_CENTRAL_SMTP_PASSWORD); exit 75 if it failed."""
    import os

    from kiosk.central import open_store
    from kiosk.central.reports.deliveries import recorded
    from kiosk.central.reports.delivery import attempt, is_configured
    from kiosk.central.settings import SMTP_PASSWORD_ENV

    config = central_config(ctx)
    if not is_configured(config):
        click.echo(
            f"kiosk: nowhere to deliver to: {config.source} sets neither [report] folder nor "
            "[report] recipients with [report.smtp] host",
            err=True,
        )
        sys.exit(EX_CONFIG)
    failed = 0
    store = open_store(store_url(ctx, db_url))
    try:
        for name in _sites(ctx, store, config, site):
            before = recorded(store, name, [day]).get(day)
            if before is not None and before.status == "done" and not again:
                click.echo(f"{name} {day}: already delivered (give --again to deliver it again)")
                continue
            result = attempt(
                store,
                config,
                name,
                day,
                password=os.environ.get(SMTP_PASSWORD_ENV),
                now_ms=time.time_ns() // 1_000_000,
            )
            if result.status == "done":
                click.echo(
                    f"{name} {day}: delivered" + (f" ({result.file})" if result.file else "")
                )
            else:
                failed += 1
                click.echo(f"kiosk: {name} {day}: delivery failed: {result.error}", err=True)
    finally:
        store.close()
    if failed:
        sys.exit(EX_TEMPFAIL)
