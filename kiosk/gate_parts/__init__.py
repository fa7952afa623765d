"""Parts of :mod:`kiosk.gate`, which composes them under its one lock: the lights and buzzer
(:mod:`~kiosk.gate_parts.signals`), the admissions waiting for a passage
(:mod:`~kiosk.gate_parts.admissions`) and the gate's plain data (:mod:`~kiosk.gate_parts.data`).
Import them from :mod:`kiosk.gate`; code that must not load gpiozero imports the plain data from
:mod:`kiosk.gate_parts.data`."""
