"""The kiosk's health declarations: central's signed snapshot and delta, kept durably.

The documents (:mod:`kiosk.credentials.declarations`) arrive as retained MQTT messages on
``kiosk/v1/<site>/site/declarations`` and ``…/declarations-delta``. A snapshot newer than the
one held replaces it; a delta is taken when it extends the snapshot held and is newer than the
delta held. A delta for a newer snapshot than the one held is kept aside (one at most) until
that snapshot arrives. Each document taken is saved whole in ``state_dir`` as the signed bytes
it came as, and verified again at the next start. A refused document (forged, foreign, older,
oversized, from the future) changes nothing: the kiosk keeps what it holds.

:meth:`DeclaredStore.lookup` answers the entry rules: a subject's newest declaration, or None.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.config import KioskConfig
from kiosk.credentials.declarations import (
    Declaration,
    DeclarationsDocument,
    DocumentKind,
    accepts,
    load_declarations,
    merge,
)
from kiosk.credentials.documents import DocumentError
from kiosk.credentials.trust import DocumentUpdate
from kiosk.store.durable import write_whole

log = logging.getLogger(__name__)

#: The document kind as a ``document`` event names it, per payload kind (the topic's leaf).
KINDS: dict[DocumentKind, str] = {"snapshot": "declarations", "delta": "declarations-delta"}
#: Declarations older than this are forgotten, whatever the rule's age: central sends none.
MIN_VALIDITY = timedelta(hours=24)


class DeclaredStore:
    """The snapshot and delta in force, merged into one map of subject → newest declaration.

    :param validity: declarations older than this are left out of the map; a holder then has
        none (the rule says "missing"), which the display words as for a stale one.
    """

    def __init__(
        self,
        site: str,
        anchor: Ed25519PublicKey,
        state_dir: Path,
        *,
        validity: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._site = site
        self._anchor = anchor
        self._state_dir = state_dir
        self._validity = validity
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[DocumentKind, tuple[DeclarationsDocument, bytes]] = {}
        self._aside: tuple[DeclarationsDocument, bytes] | None = None
        self._merged: Mapping[str, Declaration] = {}

    @classmethod
    def open(
        cls,
        site: str,
        anchor: Ed25519PublicKey,
        state_dir: Path,
        *,
        max_age_h: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> DeclaredStore:
        """A store holding the documents saved in ``state_dir``, verified again."""
        validity = max(MIN_VALIDITY, timedelta(hours=max_age_h))
        store = cls(site, anchor, state_dir, validity=validity, clock=clock)
        for kind in ("snapshot", "delta"):
            path = store._path(KINDS[kind])
            if path.exists():
                update = store.offer(KINDS[kind], path.read_bytes(), save=False)
                if not update.accepted:
                    log.error("%s: %s", path, update.reason)
        return store

    def lookup(self, subject: str) -> Declaration | None:
        """``subject``'s newest declaration in force, or None."""
        with self._lock:
            return self._merged.get(subject)

    def state(self) -> dict[str, Any]:
        """For the kiosk's state document: the versions held and the newest document's age."""
        with self._lock:
            snapshot, delta = self._held.get("snapshot"), self._held.get("delta")
        newest = max((held[0].issued_at for held in (snapshot, delta) if held), default=None)
        age = None if newest is None else round((self._clock() - newest).total_seconds(), 1)
        return {
            "snapshot": None if snapshot is None else snapshot[0].version,
            "delta": None if delta is None else delta[0].version,
            "age_s": age,
        }

    def offer(self, kind: str, data: bytes, *, save: bool = True) -> DocumentUpdate:
        """Check a document that came as ``kind`` (its topic's leaf); take it if it is new.

        Accepted and in force: reason ``accepted``. Refused (a ``document_refused`` alert):
        not accepted, the reason in words. Neither (the document in force again, a retained
        message after every reconnect; a delta kept aside for its snapshot): accepted, the
        reason says which; nothing changes and nothing needs logging.
        """
        now = self._clock()
        try:
            document = load_declarations(data, self._anchor, site=self._site, now=now)
        except DocumentError as exc:
            return DocumentUpdate(kind, False, None, str(exc))
        if KINDS[document.kind] != kind:
            return DocumentUpdate(kind, False, None, f"a {document.kind} on the {kind} topic")
        with self._lock:
            taken, reason = self._take(document, data, now)
            files = {held_kind: held[1] for held_kind, held in self._held.items()}
        if not taken:
            version = None if taken is False else document.version
            return DocumentUpdate(kind, taken is None, version, reason)
        if save:
            for held_kind, name in KINDS.items():
                self._save(name, files.get(held_kind))
        return DocumentUpdate(kind, True, document.version, reason)

    def _take(
        self, document: DeclarationsDocument, data: bytes, now: datetime
    ) -> tuple[bool | None, str]:
        """Under the lock: whether ``document`` was taken (None: it changes nothing and is no
        refusal either), and the reason to report."""
        snapshot, delta = self._held.get("snapshot"), self._held.get("delta")
        snapshot_version = None if snapshot is None else snapshot[0].version
        delta_version = None if delta is None else delta[0].version
        held = snapshot if document.kind == "snapshot" else delta
        if held is not None and held[0].version == document.version:
            if held[1] != data:
                return False, f"version {document.version} differs from the one in force"
            return None, f"already in force: version {document.version}"
        if not accepts(document, snapshot_version, delta_version):
            if document.kind == "snapshot":
                return False, f"version {document.version} is not newer than {snapshot_version}"
            if snapshot_version is None or document.base > snapshot_version:
                self._aside = (document, data)
                return None, f"kept aside until snapshot {document.base} arrives"
            if document.base < snapshot_version:
                return False, f"extends snapshot {document.base}, not {snapshot_version} in force"
            return False, f"version {document.version} is not newer than {delta_version}"
        if document.kind == "snapshot":
            self._held = {"snapshot": (document, data)}
            aside, self._aside = self._aside, None
            if aside is not None and aside[0].base == document.version:
                self._held["delta"] = aside
                log.info("delta %s, kept aside, extends it", aside[0].version)
        else:
            self._held["delta"] = (document, data)
        sources = [held[0].entries for held in self._held.values()]
        self._merged = merge(*sources, now=now, validity=self._validity)
        log.info("declarations %s version %s in force", document.kind, document.version)
        return True, "accepted"

    def _path(self, kind: str) -> Path:
        return self._state_dir / f"{kind}.cose"

    def _save(self, kind: str, data: bytes | None) -> None:
        """Write ``data`` whole as the saved ``kind``; None: remove it (a snapshot replaced
        the delta that extended the one before)."""
        path = self._path(kind)
        try:
            if data is None:
                path.unlink(missing_ok=True)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            write_whole(path, data)
        except OSError as exc:
            log.warning("could not save the %s document (kept in memory): %s", kind, exc)


def open_declarations(config: KioskConfig, anchor: Ed25519PublicKey | None) -> DeclaredStore | None:
    """The kiosk's store, holding what ``state_dir`` saved (None without a trust anchor:
    central's documents could not be verified)."""
    if anchor is None:
        return None
    return DeclaredStore.open(
        config.kiosk.site,
        anchor,
        Path(config.kiosk.state_dir),
        max_age_h=config.rules.health_declaration_max_age_h,
    )
