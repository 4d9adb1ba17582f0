"""Console view of `csms demo`: a station table and an event log, as plain text (pure).

`render(snapshot)` returns the whole screen; the demo redraws it every second on a terminal
(ANSI clear + home) or prints it every few seconds when the output is a file or a pipe.
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
    price_c_kwh: float | None
    rows: Sequence[StationRow]
    events: Sequence[str]


COLUMNS = (
    ("STATION", 9),
    ("CAR", 22),
    ("STATE", 11),
    ("SETPOINT", 9),
    ("CMD A", 7),
    ("LIMITED BY", 16),
    ("AMPS", 7),
    ("POWER", 8),
    ("SOC", 6),
    ("IN kWh", 7),
    ("OUT kWh", 7),
    ("MV", 5),
)


def _signed(value: float | None, unit: str, digits: int = 1) -> str:
    return "-" if value is None else f"{value:+.{digits}f}{unit}"


def table(rows: Sequence[StationRow]) -> list[str]:
    head = " ".join(f"{name:<{width}}" for name, width in COLUMNS)
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = (
            row.station_id,
            row.car[:22],
            row.state,
            _signed(row.setpoint_kw, "kW"),
            f"{row.commanded_a:+.1f}",
            (row.limited_by or "-")[:16],
            f"{row.current_a:+.1f}",
            _signed(row.power_kw, "kW", 2),
            "-" if row.soc_pct is None else f"{row.soc_pct:.1f}%",
            f"{row.energy_in_kwh:.2f}",
            f"{row.energy_out_kwh:.2f}",
            str(row.meter_values),
        )
        lines.append(
            " ".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True))
        )
    return lines


def clock_line(sim_time: datetime | None, price_c_kwh: float | None) -> str:
    if sim_time is None:
        return ""
    price = "" if price_c_kwh is None else f"   wholesale price {price_c_kwh:8.1f} c/kWh"
    return f"Simulated NEM time {sim_time.strftime('%a %d %b %H:%M')} AEST{price}"


def render(snapshot: Snapshot, event_lines: int = 12) -> str:
    lines = list(snapshot.header)
    line = clock_line(snapshot.sim_time, snapshot.price_c_kwh)
    if line:
        lines += ["", line]
    lines += ["", *table(snapshot.rows), "", "Events (newest last):"]
    lines += [f"  {event}" for event in list(snapshot.events)[-event_lines:]]
    return "\n".join(lines) + "\n"
