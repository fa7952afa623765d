"""A simulated kiosk runs for months: what it keeps per person or per reading is bounded."""

from __future__ import annotations

from pathlib import Path

from kiosk.hardware import PIN_HISTORY, build_hardware
from kiosk.sensors import simulated_mlx90614 as sim
from kiosk.sensors.simulation import Scene
from tests.support import make_config


def test_simulated_pins_keep_a_short_history(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    hardware = build_hardware(config, simulate=True, scene=Scene())
    try:
        for _ in range(3 * PIN_HISTORY):
            hardware.gate.emergency_open(True)
            hardware.gate.emergency_open(False)
        relay = hardware.pin_factory.pin(config.gate.relay_pin)
        levels = [state.state for state in relay.states]
    finally:
        hardware.close()
    assert len(levels) == PIN_HISTORY
    energised = config.gate.relay_active_high
    assert levels[-2:] == [energised, not energised]  # the newest changes are the ones kept


def test_the_simulated_thermometer_keeps_only_its_newest_commands() -> None:
    sensor = sim.SimulatedMLX90614(sim.person(36.6))
    for _ in range(1000):
        sensor.read_word(0x07, 3)
    assert list(sensor.commands_read) == [0x07] * sim.COMMANDS_KEPT
