"""Running one kiosk: the wiring, the loops, health, metrics and life under systemd."""
