"""Console view of `csms demo`: a station table and an event log, as plain text (pure).

`render(snapshot)` returns the whole screen; the demo redraws it every second on a terminal
(ANSI clear + home) or prints the clock line and the table every few seconds when the output
is a file or a pipe (`--plain`). Columns are as wide as their longest value: nothing is cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StationRow:
    station_id: str
    car: str
    state: str
    setpoint_kw: float | None  # what the CSMS's plan asks now (+ charge, - discharge)
    commanded_a: float  # after the station's safety supervisor
    limited_by: str  # what bounded the commanded current (schedule, vehicle, soc window, ...)
    current_a: float  # measured, signed
    power_kw: float
    soc_pct: float | None
    energy_in_kwh: float
    energy_out_kwh: float
    meter_values: int  # sampled values the CSMS has stored for the transaction


@dataclass(frozen=True)
class Snapshot:
    header: Sequence[str]
    sim_time: datetime | None
    price_c_kwh: float | None  # household import price now
    rows: Sequence[StationRow]
    events: Sequence[str]
    export_c_kwh: float | None = None  # what exporting earns now
    day: int = 1  # simulated day (the NEM price day repeats)


COLUMNS = (
    "STATION",
    "CAR",
    "STATE",
    "PLAN kW",
    "CMD A",
    "LIMITED BY",
    "METER A",
    "METER kW",
    "SoC",
    "IN kWh",
    "OUT kWh",
    "SAMPLES",
)

LEGEND = (
    "PLAN kW   the CSMS's V2G plan for this 5-minute interval (+ charge, - discharge)",
    "CMD A     current the station commands, after its safety supervisor; LIMITED BY: what",
    "          bounds it (request = the plan; vehicle_*, evse_*, soc_*: a limit; fault:<name>)",
    "METER A/kW  measured at the charger (+ into the car, - out of it); SoC: the car's battery",
    "IN/OUT kWh  energy through the station's meter this session (losses included)",
    "SAMPLES   meter values (sampled values) the CSMS has stored for the transaction",
)


def shown_state(state: str, current_a: float) -> str:
    """The station's state as shown beside the measured current. The controller reports
    "suspended" as soon as it commands 0 A, while the power stage is still ramping the
    current down: shown as "ramping down" rather than "suspended" beside a flowing current."""
    if state == "suspended" and abs(current_a) >= 0.5:
        return "ramping down"
    return state


def _signed(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def _cells(row: StationRow) -> tuple[str, ...]:
    return (
        row.station_id,
        row.car,
        shown_state(row.state, row.current_a),
        _signed(row.setpoint_kw),
        f"{row.commanded_a:+.1f}",
        row.limited_by or "-",
        f"{row.current_a:+.1f}",
        _signed(row.power_kw, 2),
        "-" if row.soc_pct is None else f"{row.soc_pct:.1f}%",
        f"{row.energy_in_kwh:.2f}",
        f"{row.energy_out_kwh:.2f}",
        str(row.meter_values),
    )


def table(rows: Sequence[StationRow]) -> list[str]:
    cells = [_cells(row) for row in rows]
    widths = [max([len(name), *(len(line[k]) for line in cells)]) for k, name in enumerate(COLUMNS)]
    head = " ".join(f"{name:<{width}}" for name, width in zip(COLUMNS, widths, strict=True))
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    for line in cells:
        text = " ".join(f"{cell:<{width}}" for cell, width in zip(line, widths, strict=True))
        lines.append(text.rstrip())
    return lines


def clock_line(
    sim_time: datetime | None,
    price_c_kwh: float | None,
    export_c_kwh: float | None = None,
    day: int = 1,
) -> str:
    if sim_time is None:
        return ""
    line = f"Simulated NEM time {sim_time.strftime('%a %d %b %H:%M')} AEST (day {day})"
    if price_c_kwh is not None:
        line += f"   import price {price_c_kwh:.1f} c/kWh"
    if export_c_kwh is not None:
        line += f", export {export_c_kwh:.1f} c/kWh"
    return line


def snapshot_clock(snapshot: Snapshot) -> str:
    return clock_line(snapshot.sim_time, snapshot.price_c_kwh, snapshot.export_c_kwh, snapshot.day)


def render(snapshot: Snapshot, event_lines: int = 12) -> str:
    lines = list(snapshot.header)
    line = snapshot_clock(snapshot)
    if line:
        lines += ["", line]
    lines += ["", *table(snapshot.rows), "", *LEGEND, "", "Events (newest last):"]
    lines += [f"  {event}" for event in list(snapshot.events)[-event_lines:]]
    return "\n".join(lines) + "\n"
