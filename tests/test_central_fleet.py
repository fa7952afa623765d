"""``kiosk central status`` reads the backlog from the state document kiosks really publish."""

from __future__ import annotations

import io
from pathlib import Path

from kiosk.central import open_store, print_status
from kiosk.config import KioskConfig
from kiosk.gate import GateState
from kiosk.run.health import Health, Parts, state_document
from kiosk.store.eventlog import LogStats

NOW = 1_700_000_000_000


def published_state(unconfirmed: int, oldest_age_ms: int) -> dict[str, object]:
    """The retained state a kiosk publishes (kiosk.run.health) with this backlog."""
    stats = LogStats(
        rows=100,
        unconfirmed=unconfirmed,
        oldest_unconfirmed_ts_ms=NOW - oldest_age_ms,
        last_seq=100,
        capacity=10_000,
        near_capacity=False,
        over_capacity=False,
    )
    health = Health(
        parts=Parts().snapshot(),
        frames_read=10,
        frames_per_s=15.0,
        last_reading=None,
        last_temperature_c=None,
        gate=GateState(False, False, False, False, 0),
        log=stats,
        clock_synced=True,
        today={"granted": 0, "denied": 0, "referred": 0, "fevers": 0, "tailgating": 0},
        inside=None,
    )
    return state_document(KioskConfig(), health, NOW)


def test_status_shows_the_backlog_and_its_oldest_age_from_a_real_state_document(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "central.db")
    store = open_store(db)
    store.set_state("s1", "k1", published_state(42, 3 * 3600 * 1000), NOW)
    store.set_state("s1", "k2", {"kiosk": "k2"}, NOW)  # an older kiosk without a log part
    store.close()
    out = io.StringIO()
    print_status(db, out)
    header, k1, k2 = out.getvalue().splitlines()[:3]
    backlog = header.index("BACKLOG")
    oldest = header.index("OLDEST UNCONF.")
    assert k1[backlog:].split()[0] == "42" and k1[oldest:].split()[0] == "3h"
    assert k2[backlog:].split()[0] == "-" and k2[oldest:].split()[0] == "-"
