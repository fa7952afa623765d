"""The chaos suite's verdict: central's store against the kiosk's log and the relay's own
record (lost, duplicated, unconfirmed, wrong grants, relay pulses without their event)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from chaos_clients import quarantined, query
from chaos_procs import KIOSK, SITE, lines
from chaos_round import Round


def lockdown_windows(rows: list[tuple[Any, ...]]) -> list[tuple[int, float]]:
    """``(first, last)`` seqs of the kiosk's log between each lockdown and its lifting."""
    windows: list[tuple[int, float]] = []
    for seq, *_, lockdown_on in rows:
        open_window = bool(windows) and windows[-1][1] == float("inf")
        if lockdown_on == 1 and not open_window:
            windows.append((seq, float("inf")))
        elif lockdown_on == 0 and open_window:
            windows[-1] = (windows[-1][0], seq)
    return windows


def wrong_grants(r: Round, rows: list[tuple[Any, ...]]) -> set[str]:
    """Grants nobody should have had: the relay moved for a badge on no list, or a grant was
    logged or pulsed between a lockdown and its lifting (kiosk restarts included)."""
    locked = lockdown_windows(rows)

    def in_lockdown(seq: int) -> bool:
        return any(first < seq < last for first, last in locked)

    wrong = {str(row[0]) for row in rows if row[4] == "grant" and in_lockdown(row[0])}
    for at, kind, seq in lines(r.kiosk.side / "pulses"):
        if seq == "-1":  # the log could not be read at that moment: judge by the time
            if kind == "refused" or any(a <= float(at) <= b for a, b in r.lockdowns):
                wrong.add(f"t{at}")
        elif kind == "refused" or in_lockdown(int(seq)):
            wrong.add(seq)
    return wrong


def central_events(url: str) -> dict[int, list[tuple[str, str | None]]]:
    """Kiosk k1's events at central: ``seq -> [(event_id, outcome)]`` (a list, to see doubles)."""
    found: dict[int, list[tuple[str, str | None]]] = {}
    rows = query(
        url, f"SELECT event_id, seq, data FROM events WHERE site = '{SITE}' AND kiosk = '{KIOSK}'"
    )
    for event_id, seq, data in rows:
        loaded = json.loads(data) if isinstance(data, str) else data
        outcome = loaded.get("outcome") if isinstance(loaded, dict) else None
        found.setdefault(int(seq), []).append((event_id, outcome))
    return found


def check(r: Round) -> dict[str, Any]:
    """Central against the kiosk's log and the relay's own record.

    Seqs are gapless from 1, so a seq this suite never saw in the log was pruned (confirmed)
    before it looked: such an event is judged by central's copy alone."""
    rows, pruned = r.log_rows()
    central = central_events(r.url)
    seen = {row[0] for row in rows}
    unseen = [seq for seq in range(1, max(seen, default=0) + 1) if seq not in seen]
    lost = [seq for seq in unseen if seq not in central]
    lost += [s for s, e, confirmed, *_ in rows if confirmed and e not in dict(central.get(s, []))]
    grants = {row[0] for row in rows if row[3] == "decision" and row[4] == "grant"}
    grants |= {seq for seq in unseen if any(o == "grant" for _, o in central.get(seq, []))}
    pulse_seqs = [int(fields[2]) for fields in lines(r.kiosk.side / "pulses")]
    without_event = sorted(s for s in pulse_seqs if s not in grants)
    without_event += sorted(s for s in set(pulse_seqs) if pulse_seqs.count(s) > 1)
    return {
        "store": r.store,
        "kiosk_kills": r.counts["kiosk_kills"],
        "broker_kills": r.counts["broker_kills"],
        "central_kills": r.counts["central_kills"],
        "events": max(seen, default=0),
        "pruned": pruned + len(unseen),
        "people": len(r.kiosk.decisions()),
        "lost": len(lost),
        "duplicated": sum(len(copies) - 1 for copies in central.values()),
        "unconfirmed": sum(1 for row in rows if not row[2]),
        "wrong_grants": len(wrong_grants(r, rows)),
        "relay_without_event": len(without_event),
        "ingest_halts": r.counts["ingest_halts"],
        "poison_cases": r.counts["poison_cases"],
        "quarantined": quarantined(r.url),
        "acl_breaches": r.counts["acl_breaches"],
        "forged_id_lost": sum(1 for e, s in r.forged if e not in dict(central.get(s, []))),
        "kiosk_start_failures": r.counts["kiosk_start_failures"],
        "examples": {"lost": lost[:10], "relay_without_event": without_event[:10]},
        **r.report,
    }


def copy_log(db: Path, to: Path) -> None:
    """A consistent copy of the kiosk's log."""
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
