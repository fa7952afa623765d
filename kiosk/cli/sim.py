"""``kiosk sim …``: drive a kiosk running with ``--simulate`` from another terminal, through
its control socket (:mod:`kiosk.run.simcontrol`). Each command prints what happened; with
no simulated kiosk running for the configuration it says so and exits 69."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from kiosk.cli.common import EX_UNAVAILABLE, config_option
from kiosk.config import load_config

ANSWER_MARGIN_S = 10.0  # beyond the time a command may take inside the kiosk

json_option = click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")


def _ask(config_path: Path, request: dict[str, Any], as_json: bool, wait_s: float = 0.0) -> None:
    """Send ``request``, print the answer; exit 1 on a refusal, 69 with no simulated kiosk."""
    from kiosk.run.simcontrol import ControlError, ask, socket_path

    path = socket_path(load_config(config_path))
    try:
        answer = ask(path, request, wait_s + ANSWER_MARGIN_S)
    except ControlError as exc:
        click.echo(f"kiosk: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False))
    if not answer.get("ok"):
        click.echo(f"kiosk: {answer.get('error')}", err=True)
        sys.exit(1)
    if not as_json:
        click.echo(answer.get("said"))


@click.group("sim")
def sim_group() -> None:
    """Drive a kiosk running with --simulate: people, fire alarm, passages, thermometer."""


@sim_group.command()
@click.argument("code", required=False)
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), help="Hold up an image.")
@click.option(
    "--temp",
    type=click.FloatRange(0, 80),
    default=36.6,
    show_default=True,
    help="Forehead temperature (°C) the thermometer sees.",
)
@click.option("--no-forehead", is_flag=True, help="Nobody in front of the thermometer.")
@click.option(
    "--wait",
    type=click.FloatRange(0, 60),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the decision (0: do not wait).",
)
@config_option
@json_option
def present(
    code: str | None,
    image: Path | None,
    temp: float,
    no_forehead: bool,
    wait: float,
    config_path: Path,
    as_json: bool,
) -> None:
    """A person steps up holding CODE (or --image FILE, or nothing); prints the decision,
    waiting up to --wait seconds for it (0: do not wait)."""
    if code is not None and image is not None:
        raise click.UsageError("give CODE or --image, not both")
    request: dict[str, Any] = {
        "command": "present",
        "temp_c": temp,
        "forehead": not no_forehead,
        "wait_s": wait,
    }
    if code is not None:
        request["code"] = code
    if image is not None:
        request["image"] = str(image.resolve())
    _ask(config_path, request, as_json, wait)


@sim_group.command()
@config_option
@json_option
def leave(config_path: Path, as_json: bool) -> None:
    """The person walks on: nothing in front of the camera or the thermometer."""
    _ask(config_path, {"command": "leave"}, as_json)


@sim_group.command("fire-alarm")
@click.argument("state", type=click.Choice(["on", "off"]))
@config_option
@json_option
def fire_alarm(state: str, config_path: Path, as_json: bool) -> None:
    """The fire-alarm contact: on releases the turnstile until off."""
    _ask(config_path, {"command": "fire-alarm", "on": state == "on"}, as_json)


@sim_group.command()
@config_option
@json_option
def passage(config_path: Path, as_json: bool) -> None:
    """Someone walks through the passage sensor's beam."""
    _ask(config_path, {"command": "passage"}, as_json)


@sim_group.command()
@click.argument("state", type=click.Choice(["fail", "ok"]))
@config_option
@json_option
def thermometer(state: str, config_path: Path, as_json: bool) -> None:
    """The thermometer fails every read (fail) or works again (ok)."""
    _ask(config_path, {"command": "thermometer", "failed": state == "fail"}, as_json)


@sim_group.command()
@config_option
@json_option
def status(config_path: Path, as_json: bool) -> None:
    """What the simulated kiosk sees and does: the scene, the gate and its pins, faults."""
    _ask(config_path, {"command": "status"}, as_json)
