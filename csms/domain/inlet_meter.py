"""A station's own main meter as its site's household meter (issue 18). Many stations meter
their grid connection: OCPP 2.0.1 MeterValues with evseId 0 and location Inlet. A site may take
its household reading from one of its stations' such meter (the site's `meter_station_id`);
each MeterValues then is a reading, with no separate push. Pure: samples in, a reading out.

Power: Power.Active.Import - Power.Active.Export at the newest timestamp (each the phase-less
total, else the sum of its phases; W or kW; either may be missing, an Import alone is signed).
Without power at the newest timestamp, the two newest Energy.Active.Import/Export.Register
readings (Wh or kWh) give the mean power between them, Δ(import - export) / Δt, only when
REGISTER_MIN_INTERVAL_S <= Δt <= REGISTER_MAX_INTERVAL_S and no register went backwards (a reset
or replaced meter is no reading). Only Inlet samples of evse 0 count (an Outlet or unlocated
evse-0 value is not the grid connection). Anything else, or beyond +-MAX_METER_W: no reading
(dropped, never clipped).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from csms.domain.csip_telemetry import (
    MAIN_METER_EVSE_ID,
    POWER_ACTIVE_EXPORT,
    POWER_ACTIVE_IMPORT,
    POWER_UNITS,
    Sample,
    instant_value,
)
from csms.domain.site_meter import MAX_METER_W

INLET = "Inlet"
ENERGY_IMPORT = "Energy.Active.Import.Register"
ENERGY_EXPORT = "Energy.Active.Export.Register"
INLET_MEASURANDS = (POWER_ACTIVE_IMPORT, POWER_ACTIVE_EXPORT, ENERGY_IMPORT, ENERGY_EXPORT)
ENERGY_UNITS: dict[str | None, float | None] = {None: 1.0, "Wh": 1.0, "kWh": 1_000.0}
# Registers closer than this give no power worth the name (timestamp rounding dominates);
# further apart, the mean is too old to stand for the household now.
REGISTER_MIN_INTERVAL_S = 1.0
REGISTER_MAX_INTERVAL_S = 300.0


@dataclass(frozen=True)
class InletReading:
    measured_at: datetime
    grid_import_w: float  # + import, - export at the connection point
    from_registers: bool  # the mean power between two register readings


def is_inlet_sample(sample: Sample) -> bool:
    return (
        sample.evse_id == MAIN_METER_EVSE_ID
        and sample.location == INLET
        and sample.measurand in INLET_MEASURANDS
    )


def _bounded(value: float) -> float | None:
    return value if math.isfinite(value) and abs(value) <= MAX_METER_W else None


def _value(
    group: Iterable[Sample], measurand: str, units: Mapping[str | None, float | None]
) -> float | None:
    return instant_value([s for s in group if s.measurand == measurand], units, average=False)


def _power(group: Sequence[Sample]) -> float | None:
    plus = _value(group, POWER_ACTIVE_IMPORT, POWER_UNITS)
    minus = _value(group, POWER_ACTIVE_EXPORT, POWER_UNITS)
    if plus is None and minus is None:
        return None
    return (plus or 0.0) - (minus or 0.0)


def power_from_registers(
    earlier: tuple[datetime, float, float | None],
    later: tuple[datetime, float, float | None],
) -> float | None:
    """The mean net import (W) between two (time, import Wh, export Wh or None) register
    readings; None when the interval is out of bounds, a register went backwards, or the export
    register is in one reading only."""
    (t0, import0, export0), (t1, import1, export1) = earlier, later
    interval_s = (t1 - t0).total_seconds()
    if not REGISTER_MIN_INTERVAL_S <= interval_s <= REGISTER_MAX_INTERVAL_S:
        return None
    if (export0 is None) != (export1 is None):
        return None
    imported = import1 - import0
    exported = 0.0 if export0 is None or export1 is None else export1 - export0
    if imported < 0 or exported < 0:
        return None
    return _bounded((imported - exported) * 3600.0 / interval_s)


def inlet_reading(samples: Iterable[Sample]) -> InletReading | None:
    """The grid connection's net import from a station's evse-0 Inlet samples (others are
    ignored): the newest timestamp's power, else the mean between its registers and the
    previous ones; None when there is no such value."""
    by_time: dict[datetime, list[Sample]] = defaultdict(list)
    for s in samples:
        if is_inlet_sample(s):
            by_time[s.timestamp].append(s)
    if not by_time:
        return None
    newest = max(by_time)
    power = _power(by_time[newest])
    if power is not None:
        bounded = _bounded(power)
        return None if bounded is None else InletReading(newest, bounded, from_registers=False)
    registers = [
        (ts, imported, _value(by_time[ts], ENERGY_EXPORT, ENERGY_UNITS))
        for ts in sorted(by_time)
        if (imported := _value(by_time[ts], ENERGY_IMPORT, ENERGY_UNITS)) is not None
    ]
    if len(registers) < 2 or registers[-1][0] != newest:
        return None
    mean = power_from_registers(registers[-2], registers[-1])
    return None if mean is None else InletReading(newest, mean, from_registers=True)
