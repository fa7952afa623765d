"""Meeting check-in: attendance once per pass, and the attendance list afterwards (R6)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

from kiosk.decide.decision import Reason
from kiosk.decide.privacy import Pseudonymizer
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Person
from tests.support import SALT, make_config, running, wait_until


def test_each_pass_checks_in_once_and_the_report_lists_it_once(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, kiosk={"mode": "checkin", "meeting": "all-hands"}, camera={"rearm_after_s": 0.2}
    )
    reasons = []
    with running(config) as kiosk:

        def frames_read_past(count: int) -> bool:
            return kiosk.kiosk.health().frames_read > count

        for code in ("S-0001", "S-0002", "S-0001"):
            wait_until(partial(frames_read_past, kiosk.kiosk.health().frames_read + 10))
            kiosk.scene.step_up(Person(code, code.encode(), sim.nobody(), "grant"))
            reasons.append(kiosk.next_decision().decision.reason)
            kiosk.scene.leave()
    assert reasons == [Reason.CHECKED_IN, Reason.CHECKED_IN, Reason.ALREADY_CHECKED_IN]

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from kiosk.cli.main import main; main()",
            "checkin",
            "report",
            "all-hands",
            "--db",
            str(config.log_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    attendees = [json.loads(line) for line in result.stdout.splitlines()]
    pseudonym = Pseudonymizer(SALT.encode()).subject
    assert [a["subject"] for a in attendees] == [pseudonym("S-0001"), pseudonym("S-0002")]
    assert {a["kind"] for a in attendees} == {"staff"}
    assert "S-0001" not in result.stdout
