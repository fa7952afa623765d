"""The ``kiosk`` command: its entry point, which turns errors into one line and an exit code,
and the group that gathers the subcommands, each defined in the module of its family."""

from __future__ import annotations

import os
import sys

import click
from gpiozero import GPIOZeroError

from kiosk import __version__
from kiosk.cli.central import central
from kiosk.cli.command import command_group
from kiosk.cli.common import EX_SOFTWARE, EX_UNAVAILABLE
from kiosk.cli.configure import config_group, web
from kiosk.cli.dcc import dcc_group
from kiosk.cli.device import decode, demo, doctor, relay_safe, run
from kiosk.cli.issuer import pass_group, site_qr
from kiosk.cli.reports import checkin, events
from kiosk.cli.sim import sim_group
from kiosk.config import EX_CONFIG, ConfigError
from kiosk.credentials import AllowlistError


def main() -> None:
    """Entry point: run the CLI, turning errors into one clear line and an exit code.

    A traceback is shown only with ``KIOSK_DEBUG=1``; the relay was already released by
    the kiosk's own clean-up before an error reaches this point.
    """
    try:
        cli(standalone_mode=True)
    except (ConfigError, AllowlistError) as exc:
        click.echo(f"kiosk: configuration error: {exc}", err=True)
        sys.exit(EX_CONFIG)
    except GPIOZeroError as exc:
        click.echo(f"kiosk: GPIO unavailable ({exc}); on a PC use --simulate", err=True)
        sys.exit(EX_UNAVAILABLE)
    except Exception as exc:
        if os.environ.get("KIOSK_DEBUG"):
            raise
        click.echo(
            f"kiosk: {type(exc).__name__}: {exc} (KIOSK_DEBUG=1 shows the traceback)", err=True
        )
        sys.exit(EX_SOFTWARE)


@click.group()
@click.version_option(__version__, prog_name="kiosk")
def cli() -> None:
    """Entrance kiosk: QR pass and temperature at a turnstile, with a durable event log."""


for command in (
    run,
    demo,
    decode,
    doctor,
    relay_safe,
    events,
    checkin,
    config_group,
    web,
    central,
    pass_group,
    site_qr,
    command_group,
    sim_group,
    dcc_group,
):
    cli.add_command(command)
