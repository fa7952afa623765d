"""What the ``kiosk`` subcommands share: exit codes, the --config and --db options, and
finding the event log a command reads."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk.config import DEFAULT_CONFIG_PATH, EX_CONFIG, load_config

EX_USAGE = 64  # sysexits.h: the command was used incorrectly
EX_DATAERR = 65  # sysexits.h: the input data was incorrect
EX_UNAVAILABLE = 69  # sysexits.h: a required device or service is unavailable
EX_SOFTWARE = 70  # sysexits.h: an internal error
EX_CANTCREAT = 73  # sysexits.h: an output file cannot be created
EX_TEMPFAIL = 75  # sysexits.h: no answer in time; trying again later may work

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG_PATH,
    show_default=True,
    help="Configuration file (TOML).",
)

db_file_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Event log file (default: the one --config names).",
)


def event_log_path(config_path: Path, db: Path | None) -> Path:
    """The event log ``--db`` names, else the one the config names; exit with a how-to when
    neither can be found (the command runs on a PC, or before the kiosk ever ran)."""
    if db is None:
        if not config_path.exists():
            click.echo(
                f"kiosk: no configuration at {config_path} to find the event log from: give "
                "--config FILE (the kiosk's kiosk.toml) or --db FILE (its event log, "
                "<kiosk.state_dir>/events.db unless log.path says otherwise)",
                err=True,
            )
            sys.exit(EX_CONFIG)
        config = load_config(config_path)
        db = config.log_path
        key = "log.path" if config.log.path else "kiosk.state_dir"
        hint = (
            f" ({key} in {config_path}): the kiosk has not run with this configuration on "
            "this machine yet; give --db FILE to read a log copied from a kiosk"
        )
    else:
        hint = ""
    if not db.exists():
        click.echo(f"kiosk: no event log at {db}{hint}", err=True)
        sys.exit(EX_UNAVAILABLE)
    return db
