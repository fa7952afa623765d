"""The topics: a versioned prefix per kiosk, ``kiosk/v1/<site>/<kiosk>/<leaf>``, and the
retained availability values of its ``status`` leaf.

Part of the wire contract that :mod:`kiosk.mqtt.protocol` publishes (its docstring has the
table of leaves).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kiosk.mqtt.wire import SEGMENT, ProtocolError

PREFIX = "kiosk/v1"
SITE_DOCUMENTS = "site"  # the reserved kiosk id under which a site's signed lists live


class Leaf(StrEnum):
    """The last level of each per-kiosk topic."""

    EVENTS = "events"
    STATUS = "status"
    STATE = "state"
    ALERTS = "alerts"
    CMD = "cmd"
    RESULT = "result"
    RECEIPTS = "receipts"
    TRUST = "trust"  # under the site's reserved kiosk id "site": the signed trust list
    REVOCATION = "revocation"  # likewise: the signed revocation list
    DCC_TRUST = "dcc-trust"  # likewise: the signed DCC trust list (kiosk.credentials.dcc)
    DECLARATIONS = "declarations"  # likewise: the signed declarations snapshot
    DECLARATIONS_DELTA = "declarations-delta"  # likewise: the snapshot's cumulative delta
    ACTIVITY = "activity"  # live decisions for Home Assistant (kiosk.mqtt.homeassistant)
    PASSAGES = "passages"  # what the site's other kiosks learn from this one's events


class Availability(StrEnum):
    """Values of the retained ``status`` topic."""

    ONLINE = "online"
    OFFLINE = "offline"  # the broker published the kiosk's will: connection lost
    STOPPED = "stopped"  # the kiosk shut down cleanly


@dataclass(frozen=True)
class KioskTopics:
    """The topics of one kiosk."""

    site: str
    kiosk: str

    def __post_init__(self) -> None:
        for name, value in (("site", self.site), ("kiosk", self.kiosk)):
            if not SEGMENT.match(value):
                raise ValueError(f"{name} {value!r} cannot be used in a topic")

    @property
    def base(self) -> str:
        """``kiosk/v1/<site>/<kiosk>``."""
        return f"{PREFIX}/{self.site}/{self.kiosk}"

    def topic(self, leaf: Leaf) -> str:
        """The full topic for ``leaf``."""
        return f"{self.base}/{leaf.value}"


def subscription(leaf: Leaf, *, site: str = "+", kiosk: str = "+", share: str = "") -> str:
    """A topic filter for ``leaf`` over all kiosks (or one site); ``share`` adds $share/<group>/."""
    topic = f"{PREFIX}/{site}/{kiosk}/{leaf.value}"
    return f"$share/{share}/{topic}" if share else topic


def parse_topic(topic: str) -> tuple[str, str, Leaf]:
    """``(site, kiosk, leaf)`` of a per-kiosk topic; ProtocolError if it is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != PREFIX:
        raise ProtocolError(f"not a kiosk topic: {topic!r}")
    site, kiosk, leaf = parts[2], parts[3], parts[4]
    try:
        return site, kiosk, Leaf(leaf)
    except ValueError:
        raise ProtocolError(f"unknown topic leaf {leaf!r}") from None
