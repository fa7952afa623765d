"""Sequence-gap tracking per kiosk: which kiosks should be asked to send events again.

Pure and single-threaded: the ingest worker feeds it the seqs it stored and, when a gap has
lasted a grace period, checks the store (which also holds what other share-group members
stored) with :meth:`GapTracker.settle`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from kiosk.mqtt.protocol import seq_ranges

Key = tuple[str, str]  # (site, kiosk)


@dataclass
class _View:
    highest: int
    missing: list[list[int]] = field(default_factory=list)  # sorted inclusive ranges
    first: int | None = None  # the first missing seq when `since` was set
    since: float | None = None  # when the current first gap was first noticed


def _subtract(missing: list[list[int]], first: int, last: int) -> None:
    """Remove ``[first, last]`` from the sorted ranges in place."""
    i = bisect_left([r[1] for r in missing], first)
    while i < len(missing) and missing[i][0] <= last:
        lo, hi = missing[i]
        parts = [[lo, first - 1]] if lo < first else []
        parts += [[last + 1, hi]] if hi > last else []
        missing[i : i + 1] = parts
        i += len(parts)


class GapTracker:
    """Missing seqs per kiosk as seen by this consumer, and when each first gap appeared."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._views: dict[Key, _View] = {}

    def known(self, key: Key) -> bool:
        """Whether ``key`` has been seeded."""
        return key in self._views

    def floor(self, key: Key) -> int:
        """Every seq up to this one is stored (as far as this consumer knows)."""
        view = self._views[key]
        return view.missing[0][0] - 1 if view.missing else view.highest

    def seed(self, key: Key, highest: int, missing: list[list[int]], now: float) -> None:
        """Start tracking ``key`` from the store's view."""
        self._views[key] = _View(highest, [list(r) for r in missing])
        self._restart_clock(self._views[key], now)

    def seen(self, key: Key, seqs: Iterable[int], now: float) -> None:
        """Seqs of ``key`` that are now stored."""
        view = self._views[key]
        for first, last in seq_ranges(seqs):
            if first > view.highest + 1:
                view.missing.append([view.highest + 1, first - 1])
            _subtract(view.missing, first, last)
            view.highest = max(view.highest, last)
        first_missing = view.missing[0][0] if view.missing else None
        if first_missing != view.first:
            self._restart_clock(view, now)

    def due(self, now: float) -> list[Key]:
        """Kiosks whose first gap has lasted the grace period: check them with :meth:`settle`."""
        return [
            key
            for key, view in self._views.items()
            if view.since is not None and now - view.since >= self.grace_s
        ]

    def settle(self, key: Key, highest: int, missing: list[list[int]], now: float) -> int | None:
        """Adopt the store's view (``missing`` above :meth:`floor`); the seq to resend from if
        the same first gap is still there, else None. The clock restarts either way, so a
        kiosk is asked at most once per grace period."""
        view = self._views[key]
        old_first = view.first
        floor = self.floor(key)
        view.highest = max(highest, floor)
        view.missing = [list(r) for r in missing if r[0] > floor]
        self._restart_clock(view, now)
        return view.first if view.first is not None and view.first == old_first else None

    @staticmethod
    def _restart_clock(view: _View, now: float) -> None:
        view.first = view.missing[0][0] if view.missing else None
        view.since = now if view.missing else None
