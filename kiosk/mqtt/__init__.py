"""Where an event leaves the box: the MQTT protocol, the kiosk's client and bounded parsing."""
