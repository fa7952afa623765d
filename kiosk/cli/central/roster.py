"""``kiosk central roster import|remove|list``: who holds which subject, at central only."""

from __future__ import annotations

import getpass
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from kiosk.cli.central.options import central_config, db_option, store_url, tsv_line
from kiosk.cli.common import EX_DATAERR
from kiosk.config import EX_CONFIG
from kiosk.config.values import id_check

if TYPE_CHECKING:
    from kiosk.decide.privacy import Pseudonymizer

log = logging.getLogger(__name__)


def _site_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    problem = id_check(value)
    if problem:
        raise click.BadParameter(problem)
    return value


site_option = click.option(
    "--site", required=True, callback=_site_id, help="The site id its kiosks use (kiosk.site)."
)


@click.group("roster")
def roster_group() -> None:
    """The roster: the names behind the pseudonymous subjects, kept at central only."""


@roster_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@site_option
@click.option("--by", help="Who imports it, recorded with each row (default: your user name).")
@click.option(
    "--register",
    is_flag=True,
    help="FILE is the office's issued-passes.csv: its pass holders for the site, named by "
    "their holder reference.",
)
@db_option
@click.pass_context
def roster_import(
    ctx: click.Context, file: Path, site: str, by: str | None, register: bool, db_url: str | None
) -> None:
    """Import FILE.csv (columns badge, pass or subject; name, unit, kind; optional phone),
    replacing the site's rows from an earlier import of the same kind.

    Subjects are computed with the site's salt ([sites.SITE] subject_salt_file), exactly as
    its kiosks compute them. A wrong row refuses the whole file (exit 65), naming its line
    and column.
    """
    from kiosk.central import open_store, roster
    from kiosk.central.rosterfile import RosterFileError, read_register, read_roster

    subjects = _pseudonymizer(ctx, site)
    try:
        holders = read_register(file, subjects, site) if register else read_roster(file, subjects)
    except RosterFileError as exc:
        click.echo(f"kiosk: {exc}; nothing was imported", err=True)
        sys.exit(EX_DATAERR)
    source: Literal["import", "register"] = "register" if register else "import"
    store = open_store(store_url(ctx, db_url))
    try:
        now_ms = time.time_ns() // 1_000_000
        kept = roster.replace(store, site, source, holders, by or getpass.getuser(), now_ms)
    finally:
        store.close()
    log.info("roster: %d holders imported for site %s (%s)", len(holders), site, source)
    click.echo(f"{site}: {len(holders)} people read from {file}, {kept} roster rows from it")


@roster_group.command("remove")
@site_option
@click.option("--id", "badge", help="A badge id, as in the roster file's badge column.")
@click.option("--pass", "holder", help="A pass holder reference, as in the pass column.")
@click.option("--subject", help="A subject as kiosks record it.")
@db_option
@click.pass_context
def roster_remove(
    ctx: click.Context,
    site: str,
    badge: str | None,
    holder: str | None,
    subject: str | None,
    db_url: str | None,
) -> None:
    """Remove one person from the site's roster (someone who left), by exactly one of --id,
    --pass or --subject; their events stay, unnamed, until the retention deletes them."""
    from kiosk.central import open_store, roster
    from kiosk.central.rosterfile import subject_of

    given = [(column, value) for column, value in (("badge", badge), ("pass", holder)) if value]
    if subject:
        given.append(("subject", subject))
    if len(given) != 1:
        raise click.UsageError("give exactly one of --id, --pass or --subject")
    ((column, value),) = given
    if column != "subject":
        value = subject_of(value, column, _pseudonymizer(ctx, site))
    store = open_store(store_url(ctx, db_url))
    try:
        removed = roster.remove(store, site, value)
    finally:
        store.close()
    if not removed:
        click.echo(f"kiosk: {site}'s roster has nobody with that {column}", err=True)
        sys.exit(EX_DATAERR)
    log.info("roster: one person removed from site %s", site)
    click.echo(f"{site}: removed {value}")


@roster_group.command("list")
@click.option("--site", callback=lambda c, p, v: v and _site_id(c, p, v), help="Only this site.")
@db_option
@click.pass_context
def roster_list(ctx: click.Context, site: str | None, db_url: str | None) -> None:
    """Print the roster, one tab-separated line per person, by site, unit and name."""
    from kiosk.central import open_store, roster

    store = open_store(store_url(ctx, db_url))
    try:
        rows = roster.entries(store, site)
    finally:
        store.close()
    click.echo(tsv_line("SITE", "SUBJECT", "NAME", "UNIT", "KIND", "PHONE", "SOURCE", "BY"))
    for row in rows:
        cells = (row.site, row.subject, row.name, row.unit, row.kind, row.phone or "")
        click.echo(tsv_line(*cells, row.source, row.imported_by))


def _pseudonymizer(ctx: click.Context, site: str) -> Pseudonymizer:
    """The site's subjects, with the salt its kiosks use; exit 78 if it cannot be read."""
    from kiosk.decide.privacy import Pseudonymizer, SecretFileError, read_salt_file

    config = central_config(ctx)
    salt_file = config.site(site).subject_salt_file
    if not salt_file:
        click.echo(
            f"kiosk: sites.{site}.subject_salt_file is not set in {config.source}: the roster "
            "needs the salt the site's kiosks use (give the config with --config)",
            err=True,
        )
        ctx.exit(EX_CONFIG)
    try:
        return Pseudonymizer(read_salt_file(Path(salt_file)))
    except SecretFileError as exc:
        click.echo(f"kiosk: {exc}", err=True)
        ctx.exit(EX_CONFIG)
