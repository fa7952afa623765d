"""Central on a NATS JetStream cluster: workers that share a durable pull consumer on the
stream where nats-server's MQTT listener keeps the kiosks' QoS 1 messages (docs/scale.md)."""

from kiosk.central.nats.worker import NatsSettings, NatsWorker, mqtt_topic, nats_subject

__all__ = ["NatsSettings", "NatsWorker", "mqtt_topic", "nats_subject"]
