"""The agent's DER LimitMaxDischarge as a local limit for the safety supervisor (R04, issue 18):
W from pctMaxDischargePower of the EVSE's rated discharge power, bounded, persisted across a
restart, and the window boundaries as wake-ups."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from chargepoint_firmware.blocks.smart_charging.der import DerControls
from tests.unit.test_agent_der_and_needs import NOW, MemoryStorage, limit


def test_r04_limit_max_discharge_as_watts_of_the_rated_power() -> None:
    der = DerControls(MemoryStorage())
    assert der.limit_max_discharge_w(NOW, 6000.0, 9999.0) is None
    der.set(limit("env", 25))
    assert der.limit_max_discharge_w(NOW, 6000.0, 9999.0) == 1500.0


def test_r04_unrated_power_uses_the_fallback_and_zero_percent_still_stops() -> None:
    der = DerControls(MemoryStorage())
    der.set(limit("env", 50))
    assert der.limit_max_discharge_w(NOW, math.inf, 4000.0) == 2000.0
    assert der.limit_max_discharge_w(NOW, math.inf, math.inf) is None
    der.set(limit("env", 0))
    assert der.limit_max_discharge_w(NOW, math.inf, math.inf) == 0.0


def test_r04_limit_survives_a_restart_from_storage() -> None:
    storage = MemoryStorage()
    DerControls(storage).set(limit("env", 10, duration=3600, startTime=NOW.isoformat()))
    again = DerControls(storage)
    assert again.limit_max_discharge_w(NOW + timedelta(minutes=30), 6000.0, 0.0) == 600.0
    assert again.limit_max_discharge_w(NOW + timedelta(hours=2), 6000.0, 0.0) is None


def test_r04_next_change_is_the_next_window_boundary() -> None:
    der = DerControls(MemoryStorage())
    assert der.next_change(NOW) is None
    start = NOW + timedelta(minutes=10)
    der.set(limit("later", 10, startTime=start.isoformat(), duration=600))
    der.set(limit("open", 50))  # no window: never a boundary
    assert der.next_change(NOW) == start
    assert der.next_change(start) == start + timedelta(minutes=10)
    assert der.next_change(start + timedelta(minutes=10)) is None


@dataclass
class Evse:
    max_discharge_power_w: float
    max_discharge_current_a: float


def test_r04_evse_limit_gives_the_watts_and_the_next_boundary() -> None:
    der = DerControls(MemoryStorage())
    assert der.evse_limit(NOW, Evse(6000.0, 15.0), 400.0) == (None, None)
    der.set(limit("env", 50, startTime=NOW.isoformat(), duration=60))
    assert der.evse_limit(NOW, Evse(6000.0, 15.0), 400.0) == (3000.0, NOW + timedelta(minutes=1))
    # Unrated power: rated current x nominal voltage.
    assert der.evse_limit(NOW, Evse(math.inf, 15.0), 400.0)[0] == 3000.0
