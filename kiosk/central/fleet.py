"""The fleet table and the quarantine lines that ``kiosk central status`` prints."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from kiosk.central.quarantine import Quarantined
from kiosk.central.rows import KioskStatus

_HEADERS = ("SITE", "KIOSK", "STATUS", "LAST SEEN", "BACKLOG", "OLDEST UNCONF.", "EVENTS", "GAPS")


def age_parts(seconds: float) -> tuple[int, str]:
    """An age in its largest whole unit: ``(42, "s")``, ``(5, "m")``, ``(3, "h")``, ``(2, "d")``."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return int(seconds // size), unit
    return int(seconds), "s"


def format_age(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    number, unit = age_parts(seconds)
    return f"{number}{unit}"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def fleet_row(status: KioskStatus, now_ms: int) -> tuple[str, ...]:
    """One kiosk's cells; the backlog (events not yet confirmed by central) and the age of its
    oldest come from the ``log`` part of the kiosk's retained state, as of its publication."""
    seen = None if status.last_seen_ms is None else (now_ms - status.last_seen_ms) / 1000
    log_state = status.state.get("log")
    log_state = log_state if isinstance(log_state, dict) else {}
    backlog = _number(log_state.get("unconfirmed"))
    gaps = f"{status.missing} missing" if status.missing else "none"
    if status.missing and status.resend_from_seq is not None:
        gaps += f" (resend from {status.resend_from_seq} asked)"
    return (
        status.site,
        status.kiosk,
        status.availability or "unknown",
        format_age(seen) + (" ago" if seen is not None else ""),
        "-" if backlog is None else str(int(backlog)),
        format_age(_number(log_state.get("oldest_unconfirmed_age_s"))),
        str(status.count),
        gaps,
    )


def format_fleet(rows: Sequence[KioskStatus], now_ms: int | None = None) -> str:
    """A plain-text table with one line per kiosk; ages are relative to ``now_ms`` (default:
    the current time)."""
    if not rows:
        return "no kiosks yet"
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    table = [_HEADERS, *(fleet_row(status, now_ms) for status in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADERS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def format_quarantine(count: int, latest: Sequence[Quarantined]) -> str:
    """``quarantined: N`` and one indented line per latest row: when (UTC), topic, reason."""
    lines = [f"quarantined: {count}"]
    for item in latest:
        when = datetime.fromtimestamp(item.received_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        seq = "" if item.seq is None else f" seq {item.seq}"
        repeats = f" (x{item.repeats})" if item.repeats > 1 else ""
        lines.append(f"  {when}Z {item.topic}{seq}: {item.reason}{repeats}")
    return "\n".join(lines)
