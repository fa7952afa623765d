"""What the ``kiosk central`` commands share: the group's ``--config``, every command's
``--db``, and flags that override the config file only when they are given."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from kiosk.config import EX_CONFIG, ConfigError

if TYPE_CHECKING:  # kiosk.central loads paho and the store: only when a command runs
    from kiosk.central.settings import CentralConfig

_CONFIG_KEY = "kiosk.central.config"
#: The days the commands accept: a day's end and its UTC time stay within what Python and the
#: stores can hold.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


def within_range(day: date, label: str) -> date:
    """``day`` if it is from :data:`FIRST_DAY` to :data:`LAST_DAY`; else a usage error
    (exit 2) naming ``label``."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise click.BadParameter(f"{label} must be from {FIRST_DAY} to {LAST_DAY} (got {day})")
    return day


def tsv_line(*cells: str | None) -> str:
    """One tab-separated output line, each cell made inert for a spreadsheet that opens it
    (:func:`kiosk.central.spreadsheet.inert`: a name typed as ``=HYPERLINK(…)`` stays text);
    None is shown as ``-``."""
    from kiosk.central.spreadsheet import inert

    return "\t".join("-" if cell is None else str(inert(cell)) for cell in cells)


db_option = click.option(
    "--db",
    "db_url",
    help="sqlite:///path, a file path, or postgresql://… (psycopg); default: [store] db of "
    "--config, else central.db.",
)


def remember_config(ctx: click.Context, path: Path | None) -> None:
    """Keep the group's ``--config`` for its commands; it is read when a command needs it."""
    ctx.meta[_CONFIG_KEY] = path


def central_config(ctx: click.Context) -> CentralConfig:
    """The config the group's ``--config`` (or KIOSK_CENTRAL_CONFIG) names, else the defaults;
    a wrong file ends the command with the problem and exit code 78."""
    from kiosk.central.settings import CentralConfig, load_central_config

    path = ctx.meta.get(_CONFIG_KEY)
    if path is None:
        return CentralConfig()
    try:
        return load_central_config(path)
    except ConfigError as exc:
        click.echo(f"kiosk: configuration error: {exc}", err=True)
        ctx.exit(EX_CONFIG)


def store_url(ctx: click.Context, db_url: str | None) -> str:
    """``--db`` when given, else the config's ``[store] db``."""
    return db_url or central_config(ctx).store.db


def given(ctx: click.Context, names: Iterable[str]) -> set[str]:
    """Which of the command's options ``names`` were given on the command line or in the
    environment, so that only those override the config file."""
    explicit = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return {name for name in names if ctx.get_parameter_source(name) in explicit}
