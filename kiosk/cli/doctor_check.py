"""What one ``kiosk doctor`` check found: :class:`Check`, and the fixes several checks share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]

PC_FIX = "run on the Pi or use --simulate"
CONFIG_FIX = "correct the key named above; `kiosk config example` lists every key and its range"


@dataclass(frozen=True)
class Check:
    """The result of one check: ``detail`` says what was found, ``fix`` what to do (if not ok)."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def ok(name: str, detail: str) -> Check:
    """A check that found nothing to fix."""
    return Check(name, "ok", detail, "")
