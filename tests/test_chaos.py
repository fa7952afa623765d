"""A slice of the chaos suite (bench/chaos.py) against real processes: two kiosk kill -9 while
people pass, then the whole poison set published with a neighbouring kiosk's credential."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_chaos(
    directory: Path, *options: str
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run bench/chaos.py in ``directory``; its JSON line and the finished process."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "chaos.py"), "--keep", str(directory), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard only; the slice takes well under a minute on a quiet machine
        check=False,
    )
    assert done.stdout.strip(), f"no result (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), done


@pytest.mark.slow
def test_kills_and_poison_lose_nothing_and_never_stop_ingest(tmp_path: Path) -> None:
    result, done = run_chaos(
        tmp_path / "run",
        "--seed=7",
        "--stores=sqlite",
        "--kiosk-kills=2",
        "--broker-kills=0",
        "--central-kills=0",
        "--skip=lockdown,disk-full",
    )

    assert result["broken"] == [], done.stderr[-3000:]
    assert done.returncode == 0
    assert result["kiosk_kills"] == 2
    assert result["events"] > 0
    assert result["poison_cases"] == 14
    poison = result["rounds"][0]["poison"]
    assert poison["other_kiosks_topic"]["broker"] == "Not authorized"
    stored_by_broker = {
        case
        for case, outcome in poison.items()
        if outcome["broker"] == "Success" and case != "other_kiosks_event_id"
    }
    assert "nan_in_data" in stored_by_broker
    not_quarantined = {case for case in stored_by_broker if poison[case].get("quarantined") != 1}
    assert not_quarantined == set(), "central must quarantine what it can never store"
