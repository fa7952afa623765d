"""The kiosk's trust material for signed passes: issuer keys and the revocation list.

Both arrive as documents signed by the organisation's document-signing key (the trust
anchor in config), from files at start and as retained MQTT messages later. A document with
a bad signature, the wrong type or an older version is refused and reported (the version in
force, offered again, is not: it changes nothing); a newer one replaces the old one whole
and is saved in ``state_dir`` so that a restart keeps it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from kiosk.config import ConfigError, KioskConfig
from kiosk.credentials.documents import (
    Document,
    DocumentError,
    RevocationList,
    TrustList,
    load_document,
    same_content,
)
from kiosk.credentials.passes import PassVerifier
from kiosk.store.durable import write_whole

log = logging.getLogger(__name__)

KINDS = ("trust", "revocation")


@dataclass(frozen=True)
class DocumentUpdate:
    """What happened to an offered document: accepted (with its version) or refused (why)."""

    kind: str
    accepted: bool
    version: int | None
    reason: str


class TrustStore:
    """Current trust list and revocation list; builds the pass verifier from them."""

    def __init__(self, config: KioskConfig, anchor: Ed25519PublicKey | None) -> None:
        self._config = config
        self._anchor = anchor
        self._lock = threading.Lock()
        self._trust: TrustList | None = None
        self._revocation: RevocationList | None = None

    @classmethod
    def open(cls, config: KioskConfig) -> TrustStore:
        """Load the anchor and the newest documents (configured file or saved copy)."""
        store = cls(config, _load_anchor(config))
        if store._anchor is None:
            return store
        configured = {
            "trust": config.credentials.trust_list,
            "revocation": config.credentials.revocation_list,
        }
        for kind in KINDS:
            for path in (
                Path(configured[kind]) if configured[kind] else None,
                store._saved_path(kind),
            ):
                if path is not None and path.exists():
                    update = store.offer(kind, path.read_bytes(), save=False)
                    if not update.accepted and "not newer" not in update.reason:
                        log.error("%s: %s", path, update.reason)
        return store

    @property
    def anchor(self) -> Ed25519PublicKey | None:
        """The site's document-signing key the documents are verified with (None: not set)."""
        return self._anchor

    @property
    def enabled(self) -> bool:
        """Whether signed passes are configured at all."""
        return self._anchor is not None

    def verifier(self) -> PassVerifier | None:
        """A verifier for the current documents (None without a trust anchor or keys)."""
        with self._lock:
            trust, revocation = self._trust, self._revocation
        if trust is None:
            return None
        revoked = revocation.revoked if revocation is not None else frozenset()
        return PassVerifier(
            trust.keys,
            site=self._config.kiosk.site,
            clock_skew_s=self._config.credentials.clock_skew_s,
            revoked=revoked,
        )

    def versions(self) -> dict[str, int | None]:
        """The version of each document in force."""
        with self._lock:
            return {
                "trust": self._trust.version if self._trust else None,
                "revocation": self._revocation.version if self._revocation else None,
            }

    def offer(self, kind: str, data: bytes, *, save: bool = True) -> DocumentUpdate:
        """Check a document; keep it only if it is signed by the anchor and newer.

        The version already in force, offered again (a retained message after every restart
        or reconnect), is no refusal: it is accepted as "already in force" and changes nothing.
        """
        if self._anchor is None:
            return DocumentUpdate(kind, False, None, "no trust anchor configured")
        try:
            version, changed = self._accept(kind, data, self._anchor)
        except DocumentError as exc:
            return DocumentUpdate(kind, False, None, str(exc))
        if not changed:
            return DocumentUpdate(kind, True, version, f"version {version} already in force")
        if save:
            self._save(kind, data)
        return DocumentUpdate(kind, True, version, "accepted")

    def _accept(self, kind: str, data: bytes, anchor: Ed25519PublicKey) -> tuple[int, bool]:
        """The version now in force and whether ``data`` changed it."""
        with self._lock:
            held: Document | None
            if kind == "trust":
                held = self._trust
                offered: Document = load_document(
                    data, anchor, expected_type="trust", current_version=None
                )
            elif kind == "revocation":
                held = self._revocation
                offered = load_document(
                    data, anchor, expected_type="revocation", current_version=None
                )
            else:
                raise DocumentError(f"unknown document kind {kind!r}")
            if held is not None and offered.version < held.version:
                raise DocumentError(f"version {offered.version} is not newer than {held.version}")
            if held is not None and offered.version == held.version:
                if not same_content(offered, held):
                    raise DocumentError(
                        f"version {held.version} differs from the version {held.version} in "
                        "force: sign the change as a newer version"
                    )
                return held.version, False
            if isinstance(offered, TrustList):
                self._trust = offered
            else:
                self._revocation = offered
            return offered.version, True

    def _saved_path(self, kind: str) -> Path:
        return Path(self._config.kiosk.state_dir) / f"{kind}.cose"

    def _save(self, kind: str, data: bytes) -> None:
        path = self._saved_path(kind)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_whole(path, data)
        except OSError as exc:
            log.warning("could not save the %s document (kept in memory): %s", kind, exc)


def _load_anchor(config: KioskConfig) -> Ed25519PublicKey | None:
    path = config.credentials.trust_anchor
    if not path:
        return None
    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            config.source, "credentials.trust_anchor", f"cannot load the public key {path}: {exc}"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(
            config.source, "credentials.trust_anchor", f"{path} is not an Ed25519 public key"
        )
    return key
