"""The fleet dashboard (``kiosk central web``): kiosks, alerts, people inside, reports,
roster and signed commands, for viewers and admins."""

from kiosk.central.web.app import create_central_app

__all__ = ["create_central_app"]
