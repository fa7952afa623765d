"""Camera frame sources, QR decoders, the MLX90614 thermometer and their simulated stand-ins.

Nothing in this package imports the rest of the kiosk.
"""
