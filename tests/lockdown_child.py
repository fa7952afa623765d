"""A kiosk process an operator puts in lockdown; the test then kills it with -9.

Usage: python -m tests.lockdown_child DIR. Writes DIR/locked once the lockdown request has
been carried out (the moment a command or the status page would be told it is done), then runs on.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from kiosk.operator.actions import Action
from kiosk.run.runtime import open_kiosk
from kiosk.sensors.simulation import Scene
from tests.support import make_config, operate


def main(directory: Path) -> None:
    """Run until killed."""
    config = make_config(directory, thermometer={"enabled": False})
    with open_kiosk(config, simulate=True, scene=Scene()) as kiosk:
        stop = threading.Event()
        threading.Thread(target=kiosk.run, args=(stop,), daemon=True).start()
        assert operate(kiosk, Action.LOCKDOWN, on=True).ok
        (directory / "locked").write_text("acknowledged\n", encoding="utf-8")
        stop.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
