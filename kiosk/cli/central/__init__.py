"""``kiosk central``: the reference central server's commands, one module per family
(:mod:`~kiosk.cli.central.serve`: run, status, config; :mod:`~kiosk.cli.central.roster`;
:mod:`~kiosk.cli.central.report`; :mod:`~kiosk.cli.central.web`)."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk.cli.central.demo import central_demo
from kiosk.cli.central.options import remember_config
from kiosk.cli.central.people import inside_command, trace_command
from kiosk.cli.central.report import report_group
from kiosk.cli.central.roster import roster_group
from kiosk.cli.central.serve import central_config_group, central_run, central_status
from kiosk.cli.central.web import web_group


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KIOSK_CENTRAL_CONFIG",
    help="Central's configuration (central.toml); without it, the defaults.",
)
@click.pass_context
def central(ctx: click.Context, config_path: Path | None) -> None:
    """The reference central server: ingest events from the kiosks, show the fleet, keep the
    roster."""
    remember_config(ctx, config_path)


for command in (
    central_run,
    central_status,
    central_config_group,
    roster_group,
    report_group,
    web_group,
    central_demo,
    trace_command,
):
    central.add_command(command)
report_group.add_command(inside_command)

__all__ = ["central"]
