"""Entrance kiosk: QR pass and infrared temperature at a turnstile, with a durable event log."""

__version__ = "0.1.0"
