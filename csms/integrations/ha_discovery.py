"""What the vehicles' and the sites' Home Assistant MQTT discovery configs share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ONLINE, OFFLINE = "online", "offline"


def add_sensor_fields(
    config: dict[str, Any],
    unit: str | None,
    device_class: str | None,
    state_class: str | None,
    options: Sequence[str] = (),
) -> dict[str, Any]:
    """A sensor's optional discovery keys, only where set (Home Assistant refuses e.g. a state
    class on a non-numeric sensor, so an unset key must be absent, not null)."""
    if unit is not None:
        config["unit_of_measurement"] = unit
    if device_class is not None:
        config["device_class"] = device_class
    if state_class is not None:
        config["state_class"] = state_class
    if options:
        config["options"] = list(options)
    return config
