"""The MQTT protocol between kiosks and central: every topic and payload, defined once.

Topics live under a versioned prefix per kiosk, ``kiosk/v1/<site>/<kiosk>/``:

==============  ==========  =========  ===  ======  ============================================
leaf            publisher   reader     QoS  retain  payload
==============  ==========  =========  ===  ======  ============================================
``events``      kiosk       central    1    no      :func:`encode_events` (a batch of events)
``status``      kiosk/will  anyone     1    yes     ``online`` / ``offline`` / ``stopped``
``state``       kiosk       anyone     1    yes     health JSON (:func:`encode_state`)
``alerts``      kiosk       anyone     1    no      one alert JSON per event that needs a human
``activity``    kiosk       HA         0    no      each live decision (:func:`encode_activity`)
``passages``    kiosk       kiosks     1    no      :func:`encode_passages`: grants, withdrawn
``cmd``         operators   kiosk      1    no      a command JSON (see ``kiosk.operator.commands``)
``result``      kiosk       operators  1    no      a command result JSON
``receipts``    central     kiosk      1    no      :func:`encode_receipt`: seqs stored
``trust``       issuer      kiosks     1    yes     signed trust list, under ``<site>/site/``
``revocation``  issuer      kiosks     1    yes     signed revocation list, likewise
``dcc-trust``   issuer      kiosks     1    yes     signed DCC trust list (DCC signers), likewise
==============  ==========  =========  ===  ======  ============================================

``cmd`` also comes from central (``resend`` when it sees a gap). Kiosks of one site share
occupancy, anti-passback and attendance through ``passages``: with each events message, the
granted entries and exits in it and the grants withdrawn unused, cut down to what
:meth:`kiosk.decide.entrance.Entrance.learn_event` reads, so that no kiosk needs another's
``events`` (which the broker's ACL does not let it read). ``docs/mqtt.md`` documents each
topic; ``docs/asyncapi.yaml`` and ``docs/schemas/`` describe them formally, and the tests
check real messages against those schemas.

This module is the one place to import the contract from; the definitions live by message
family beside it: :mod:`~kiosk.mqtt.wire` (version, bounds, ids, ``ProtocolError``),
:mod:`~kiosk.mqtt.topics`, :mod:`~kiosk.mqtt.events` (events and receipts),
:mod:`~kiosk.mqtt.passages`, :mod:`~kiosk.mqtt.state` (state, alerts, activity) and
:mod:`~kiosk.mqtt.commands` (commands, signatures, results).
"""

from __future__ import annotations

from kiosk.ids import SEGMENT, TOKEN
from kiosk.mqtt.commands import (
    Command,
    canonical_json,
    command_signature,
    decode_command,
    decode_result,
    encode_command,
    encode_result,
)
from kiosk.mqtt.events import (
    EVENT_FIELDS,
    MAX_RECEIPT_SEQS,
    WireEvent,
    decode_events,
    decode_receipt,
    encode_events,
    encode_receipt,
    event_json,
    events_message,
    seq_ranges,
)
from kiosk.mqtt.passages import (
    MAX_MEETING_CHARS,
    MAX_PASSAGES,
    PASSAGE_TYPES,
    PASSAGES_DEPTH,
    WirePassage,
    decode_passages,
    encode_passages,
    passage_of,
)
from kiosk.mqtt.state import (
    decode_state,
    encode_activity,
    encode_alert,
    encode_state,
)
from kiosk.mqtt.topics import (
    PREFIX,
    SITE_DOCUMENTS,
    Availability,
    KioskTopics,
    Leaf,
    parse_topic,
    subscription,
)
from kiosk.mqtt.wire import (
    DEFAULT_MESSAGE_BYTES,
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    MAX_SEQ,
    SCHEMA_VERSION,
    UUID,
    ProtocolError,
)

__all__ = [
    "DEFAULT_MESSAGE_BYTES",
    "EVENT_FIELDS",
    "MAX_DEPTH",
    "MAX_MEETING_CHARS",
    "MAX_MESSAGE_BYTES",
    "MAX_PASSAGES",
    "MAX_RECEIPT_SEQS",
    "MAX_SEQ",
    "PASSAGES_DEPTH",
    "PASSAGE_TYPES",
    "PREFIX",
    "SCHEMA_VERSION",
    "SEGMENT",
    "SITE_DOCUMENTS",
    "TOKEN",
    "UUID",
    "Availability",
    "Command",
    "KioskTopics",
    "Leaf",
    "ProtocolError",
    "WireEvent",
    "WirePassage",
    "canonical_json",
    "command_signature",
    "decode_command",
    "decode_events",
    "decode_passages",
    "decode_receipt",
    "decode_result",
    "decode_state",
    "encode_activity",
    "encode_alert",
    "encode_command",
    "encode_events",
    "encode_passages",
    "encode_receipt",
    "encode_result",
    "encode_state",
    "event_json",
    "events_message",
    "parse_topic",
    "passage_of",
    "seq_ranges",
    "subscription",
]
