"""Home Assistant MQTT discovery for one kiosk (opt-in: ``[mqtt] homeassistant = true``).

:func:`discovery_messages` returns retained config messages, one per entity, on
``<prefix>/<component>/<kiosk>/<object_id>/config`` (the kiosk id, its MQTT user name: see
:func:`node_id`). All entities share one device (identifier ``kiosk-<site>-<kiosk>``, unique
across sites) and one availability: the kiosk's ``status`` topic, where
``online`` means available and anything else (``offline``, ``stopped``) unavailable.

The sensors read the kiosk's retained ``state`` topic, which must hold this JSON (the contract):

.. code-block:: text

    {"v": 1, "kiosk": str, "site": str, "version": str, "mode": str,
     "camera": {"ok": bool, "detail": str, "fps": float},
     "thermometer": {"ok": bool, "detail": str, "ambient_c": float|null, "object_c": float|null},
     "gate": {"relay_energised": bool, "lockdown": bool, "emergency_open": bool,
              "fire_alarm": bool},
     "log": {"ok": bool, "rows": int, "unconfirmed": int,
             "oldest_unconfirmed_age_s": float|null, "near_capacity": bool},
     "clock_synced": bool,
     "today": {"granted": int, "denied": int, "referred": int, "fevers": int},
     "last_temperature_c": float|null,
     "occupancy": {"area": str, "inside": int}|null,
     "mqtt": {"connected": bool, "in_flight": int, "last_receipt_ms": int|null,
              "ignored_messages": int, "unsendable_events": int, "restarts": int}}

The ``event`` entity reads the non-retained ``activity`` topic, where the kiosk publishes
``{"event_type": "grant"|"deny"|"refer", "reason": str}`` for every live decision.
"""

from __future__ import annotations

from typing import Any

from kiosk.mqtt.protocol import Availability, KioskTopics, Leaf, canonical_json

MODEL = "Entrance kiosk"
EVENT_TYPES = ("grant", "deny", "refer")

# HA buttons publish a fixed payload; this template turns it into a fresh, short-lived command.
EMERGENCY_OPEN_TEMPLATE = (
    '{"v":1,"id":"{{ now().timestamp() }}-ha","command":"emergency_open","args":{"on":true},'
    '"issued_at_ms":{{ (now().timestamp()*1000)|int }},'
    '"expires_at_ms":{{ ((now().timestamp()+60)*1000)|int }}}'
)


def _problem(part: str) -> dict[str, Any]:
    """A binary sensor that is ON when ``part`` of the state reports a fault."""
    return {
        "device_class": "problem",
        "entity_category": "diagnostic",
        "value_template": f"{{{{ 'OFF' if value_json.{part}.ok else 'ON' }}}}",
        "json_attributes_template": f"{{{{ value_json.{part} | tojson }}}}",
    }


def _count(path: str, icon: str) -> dict[str, Any]:
    """A daily counter (it drops to 0 at midnight, which total_increasing allows)."""
    return {
        "value_template": f"{{{{ value_json.{path} }}}}",
        "state_class": "total_increasing",
        "icon": icon,
    }


#: Where occupancy is tracked (gate mode): the people inside the kiosk's area.
_INSIDE_ENTITY: tuple[str, str, str, dict[str, Any]] = (
    "sensor",
    "people_inside",
    "People inside",
    {
        "value_template": "{{ value_json.occupancy.inside }}",
        "unit_of_measurement": "people",
        "state_class": "measurement",
        "icon": "mdi:account-group",
    },
)

# (component, object_id, name, options); all but the event entity read the state topic.
_STATE_ENTITIES: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("binary_sensor", "camera", "Camera", _problem("camera")),
    ("binary_sensor", "thermometer", "Thermometer", _problem("thermometer")),
    ("binary_sensor", "log", "Event log", _problem("log")),
    (
        "sensor",
        "backlog",
        "MQTT backlog",
        {
            "value_template": "{{ value_json.log.unconfirmed }}",
            "unit_of_measurement": "events",
            "state_class": "measurement",
            "entity_category": "diagnostic",
            "icon": "mdi:tray-full",
        },
    ),
    (
        "sensor",
        "oldest_unconfirmed_age",
        "Oldest unconfirmed event",
        {
            # null means nothing is waiting: show 0 s so "older than" automations stay simple
            "value_template": "{{ value_json.log.oldest_unconfirmed_age_s or 0 }}",
            "device_class": "duration",
            "unit_of_measurement": "s",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        },
    ),
    (
        "sensor",
        "last_temperature",
        "Last temperature",
        {
            "value_template": "{{ value_json.last_temperature_c }}",  # null: unknown
            "device_class": "temperature",
            "unit_of_measurement": "°C",
            "state_class": "measurement",
        },
    ),
    (
        "binary_sensor",
        "lockdown",
        "Lockdown",
        {
            "value_template": "{{ 'ON' if value_json.gate.lockdown else 'OFF' }}",
            "icon": "mdi:lock",
        },
    ),
    ("sensor", "granted_today", "Granted today", _count("today.granted", "mdi:account-check")),
    ("sensor", "denied_today", "Denied today", _count("today.denied", "mdi:account-cancel")),
    ("sensor", "fevers_today", "Fevers today", _count("today.fevers", "mdi:thermometer-alert")),
)


def node_id(topics: KioskTopics) -> str:
    """The discovery node id: the kiosk id, which is also its MQTT user name, so the broker's
    ACL (``homeassistant/+/%u/#``) lets each kiosk publish only its own discovery."""
    return topics.kiosk


def discovery_messages(
    topics: KioskTopics,
    *,
    prefix: str,
    version: str,
    allow_emergency_open: bool,
    signed_commands: bool,
    occupancy: bool = False,
) -> list[tuple[str, bytes]]:
    """Retained ``(topic, payload)`` discovery messages that make the kiosk one HA device.

    ``occupancy`` (the kiosk tracks who is inside: gate mode) adds the "People inside" sensor;
    without it an empty retained payload removes one published earlier.

    The "Emergency open" button is offered only when ``allow_emergency_open`` is set and the
    kiosk takes unsigned commands (``signed_commands`` false, i.e. no ``[mqtt] command_key``):
    Home Assistant cannot sign commands. The button publishes :data:`EMERGENCY_OPEN_TEMPLATE`,
    a command with a time-based id valid for 60 s, to the kiosk's ``cmd`` topic, so HA's clock
    must be within a minute of the kiosk's. When the button is not offered, an empty retained
    payload on its config topic removes a button published earlier.
    """
    node = node_id(topics)
    device = f"kiosk-{topics.site}-{topics.kiosk}"  # unique across sites
    shared: dict[str, Any] = {
        "device": {
            "identifiers": [device],
            "name": f"Kiosk {topics.site}/{topics.kiosk}",
            "model": MODEL,
            "sw_version": version,
        },
        "origin": {"name": "entrance-kiosk", "sw_version": version},
        "availability": [
            {
                "topic": topics.topic(Leaf.STATUS),
                "value_template": (
                    f"{{{{ '{Availability.ONLINE}' if value == '{Availability.ONLINE}' "
                    f"else '{Availability.OFFLINE}' }}}}"
                ),
                "payload_available": Availability.ONLINE.value,
                "payload_not_available": Availability.OFFLINE.value,
            }
        ],
    }
    state_topic = topics.topic(Leaf.STATE)
    state_entities = _STATE_ENTITIES + ((_INSIDE_ENTITY,) if occupancy else ())
    entities = [
        (component, object_id, {"name": name, "state_topic": state_topic, **options})
        for component, object_id, name, options in state_entities
    ]
    for _, _, options in entities:
        if "json_attributes_template" in options:
            options["json_attributes_topic"] = state_topic
    entities.append(
        (
            "event",
            "activity",
            {
                "name": "Passage",
                "state_topic": topics.topic(Leaf.ACTIVITY),
                "event_types": list(EVENT_TYPES),
                "icon": "mdi:turnstile",
            },
        )
    )
    button = (
        "button",
        "emergency_open",
        {
            "name": "Emergency open",
            "command_topic": topics.topic(Leaf.CMD),
            "command_template": EMERGENCY_OPEN_TEMPLATE,
            "qos": 1,
            "retain": False,
            "icon": "mdi:door-open",
        },
    )
    offer_button = allow_emergency_open and not signed_commands
    if offer_button:
        entities.append(button)
    messages = [
        (
            _config_topic(prefix, component, node, object_id),
            canonical_json({**options, "unique_id": f"{device}_{object_id}", **shared}),
        )
        for component, object_id, options in entities
    ]
    if not offer_button:
        messages.append((_config_topic(prefix, button[0], node, button[1]), b""))
    if not occupancy:
        messages.append((_config_topic(prefix, _INSIDE_ENTITY[0], node, _INSIDE_ENTITY[1]), b""))
    return messages


def _config_topic(prefix: str, component: str, node: str, object_id: str) -> str:
    return f"{prefix}/{component}/{node}/{object_id}/config"
