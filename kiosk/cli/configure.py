"""``kiosk config check|example`` and ``kiosk web set-password``: setting a kiosk up."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from kiosk.cli.common import EX_USAGE, config_option
from kiosk.config import EX_CONFIG, KioskConfig, load_config


@click.group("config")
def config_group() -> None:
    """Check or print the configuration."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--machine",
    is_flag=True,
    help="Fail (exit 78) when this machine lacks what FILE points at, as `kiosk run` does; "
    "use it on the kiosk itself.",
)
@click.option("--strict", is_flag=True, help="Fail (exit 78) on any warning; implies --machine.")
def config_check(file: Path, machine: bool, strict: bool) -> None:
    """Validate FILE without starting anything: exit 78 if the file is wrong.

    What FILE points at (directories, salt and TLS files, allowlist, trust anchor) is checked
    on this machine too; missing there is a warning, or an error with --machine or --strict.
    A file with which nobody can ever be granted is a warning (an error with --strict).
    """
    from kiosk.cli.preflight import policy_warnings, setup_problems

    config = load_config(file)
    problems = setup_problems(config)
    fatal = bool(problems) and (machine or strict)
    for problem in problems:
        label = "configuration error" if fatal else "warning: on this machine"
        click.echo(f"kiosk: {label}: {problem}", err=True)
    if fatal:
        sys.exit(EX_CONFIG)
    policy = policy_warnings(config)
    for warning in policy:
        click.echo(f"kiosk: {'configuration error' if strict else 'warning'}: {warning}", err=True)
    if strict and policy:
        sys.exit(EX_CONFIG)
    where = f"kiosk {config.kiosk.id} at {config.kiosk.site}, mode {config.kiosk.mode}"
    if problems:
        click.echo(
            f"{file}: valid ({where}); {len(problems)} "
            f"warning{'s' if len(problems) > 1 else ''} about this machine "
            "(--machine makes them errors)"
        )
    else:
        click.echo(f"{file}: ok ({where}, {_credentials_summary(config)})")


def _credentials_summary(config: KioskConfig) -> str:
    """The legacy badges and signed-pass documents a working setup would load."""
    from kiosk.credentials.trust import TrustStore
    from kiosk.run.runtime import load_allowlist

    allowlist = load_allowlist(config)
    badges = "no legacy badges" if allowlist is None else f"{len(allowlist)} legacy badges"
    trust = TrustStore.open(config)
    if not trust.enabled:
        return f"{badges}, signed passes off"
    documents = [
        f"{name} list v{version}" if version is not None else f"no {name} list"
        for name, version in trust.versions().items()
    ]
    return f"{badges}, signed passes: {', '.join(documents)}"


@config_group.command("example")
def config_example() -> None:
    """Print an example configuration with every key, its default and description."""
    from kiosk.config import example_toml

    click.echo(example_toml(), nl=False)


@click.group()
def web() -> None:
    """The status page."""


@web.command("set-password")
@config_option
def web_set_password(config_path: Path) -> None:
    """Set the dashboard password (stored hashed, 0600, in the state directory)."""
    from kiosk.web import hash_password
    from kiosk.web.child import PASSWORD_FILE

    config = load_config(config_path)
    password = click.prompt("New dashboard password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        click.echo("kiosk: use at least 8 characters", err=True)
        sys.exit(EX_USAGE)
    path = Path(config.kiosk.state_dir) / PASSWORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(hash_password(password) + "\n")
    click.echo(f"password saved (hashed) in {path}; it ends every open dashboard session")
    if config.web.password_hash:
        click.echo("kiosk: web.password_hash in the config is used instead of it", err=True)
