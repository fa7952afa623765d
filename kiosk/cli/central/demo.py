"""``kiosk central demo``: a store full of simulated traffic, to try central without a fleet."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk.cli.central.options import central_config, db_option, store_url
from kiosk.cli.common import EX_CANTCREAT
from kiosk.config.values import id_check


def _site_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    problem = id_check(value)
    if problem:
        raise click.BadParameter(problem)
    return value


@click.command("demo")
@db_option
@click.option(
    "--site", default="hq", show_default=True, callback=_site_id, help="The simulated site's id."
)
@click.option(
    "--kiosks", default=5, show_default=True, type=click.IntRange(1, 50), help="How many kiosks."
)
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(1, 366),
    help="Days of traffic, ending today.",
)
@click.option("--seed", default=1, show_default=True, help="The same seed makes the same store.")
@click.option(
    "--files",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the salt, roster file and central.toml go (default: beside an SQLite store, "
    "else the current directory).",
)
@click.option(
    "--replace", is_flag=True, help="Empty a store that already holds events or a roster."
)
@click.pass_context
def central_demo(
    ctx: click.Context,
    db_url: str | None,
    site: str,
    kiosks: int,
    days: int,
    seed: int,
    folder: Path | None,
    replace: bool,
) -> None:
    """Fill a store with DAYS days of a site's simulated traffic ending today (site's local
    time) through central's own ingest, with a matching roster, then print how to look at it.

    Working-day peaks, lunch, visitors and their meetings, guards on night shifts, a few
    fevers and denials, a lockdown drill, a failed thermometer; each kiosk's events are made
    by the kiosk's own code. Beside the store: the site's salt, the roster file and a
    central.toml for every other `kiosk central` command.
    """
    from kiosk.central import open_store
    from kiosk.central.demo import DemoError, fill

    url = store_url(ctx, db_url)
    if not url.startswith(("postgresql://", "postgres://")):  # central.toml names it from anywhere
        url = str(Path(url.removeprefix("sqlite:///")).resolve())
    if folder is None:
        postgresql = url.startswith(("postgresql://", "postgres://"))
        folder = Path.cwd() if postgresql else Path(url).parent
    tz = central_config(ctx).site(site).timezone
    store = open_store(url)
    try:
        result = fill(
            store,
            url,
            folder,
            site=site,
            kiosks=kiosks,
            days=days,
            seed=seed,
            tz=tz,
            replace=replace,
        )
    except DemoError as exc:
        click.echo(f"kiosk: {url}: {exc}", err=True)
        sys.exit(EX_CANTCREAT)
    finally:
        store.close()
    config = result.config_file
    click.echo(
        f"{url}: {result.events:,} events from {len(result.kiosks)} kiosks "
        f"({', '.join(result.kiosks)}) over {result.days} day{'s' * (result.days != 1)}, "
        f"{result.people:,} people in "
        f"{site}'s roster, {result.quarantined} quarantined; "
        f"{result.seconds:.1f} s ({result.cpu_seconds:.1f} s of processor time)"
    )
    click.echo(f"Try: kiosk central --config {config} status")
    for command in ("roster list", "report inside", "report daily --date YYYY-MM-DD"):
        click.echo(f"     kiosk central --config {config} {command} --site {site}")
