"""What `csms demo` ends with: the money per car against plain charging, and the targets.

Two views of each car, both in AUD at the demo's household prices (the NEM day's wholesale price
+ 10 % GST, no retail margin; + = the owner pays, - = the owner earns):
- the day's plan: the optimizer's plan from plug-in to departure next to plain charging (full
  power from the same moment and SoC until the same target), costed alike
  (csms.v2g.baselines) on the same prices: what V2G saves over the day;
- at the meter so far: what the station's energy registers say was imported and exported
  while the demo ran, priced by the CSMS (GET /vehicles/{id}/economics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csms.v2g.baselines import cost_plan, plain_charging
from csms.v2g.optimizer import VehiclePlan
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import Vehicle, VehicleSession

PRICE_NOTE = (
    "AUD at the demo's household prices: NEM wholesale + 10 % GST, no retail margin; "
    "+ = the owner pays, - = the owner earns"
)


@dataclass(frozen=True)
class DayMoney:
    """One planned day: the optimizer's plan and plain charging, in AUD."""

    plan_aud: float
    plain_aud: float
    start_soc: float
    target_soc: float
    planned_soc: float  # what the plan reaches at departure

    @property
    def saved_aud(self) -> float:
        return self.plain_aud - self.plan_aud


def day_money(plan: VehiclePlan, vehicle: Vehicle, prices: PriceSeries) -> DayMoney:
    """Cost the plan and plain charging from the plan's start to its departure."""
    session = VehicleSession(
        vehicle=vehicle,
        soc=plan.soc_start,
        departure=plan.departure,
        target_soc=plan.target_soc,
    )
    planned = cost_plan(plan, session, prices, plan.start)
    plain = plain_charging(session, prices, plan.start)
    return DayMoney(
        plan_aud=planned.energy_cost_c / 100.0,
        plain_aud=plain.energy_cost_c / 100.0,
        start_soc=plan.soc_start,
        target_soc=plan.target_soc,
        planned_soc=plan.soc_at_departure,
    )


@dataclass(frozen=True)
class Departure:
    """A departure the demo reached: the target and the SoC the car had then."""

    at: str  # as shown (NEM time)
    target_soc: float
    soc: float

    @property
    def met(self) -> bool:
        return self.soc + 0.005 >= self.target_soc  # the displayed 0.1 % rounding


@dataclass(frozen=True)
class Metered:
    """GET /vehicles/{id}/economics over the demo's run."""

    imported_kwh: float
    exported_kwh: float
    import_cost_aud: float
    export_revenue_aud: float

    @property
    def net_aud(self) -> float:
        return self.import_cost_aud - self.export_revenue_aud


@dataclass
class CarMoney:
    station_id: str
    car: str
    days: list[DayMoney] = field(default_factory=list)
    departures: list[Departure] = field(default_factory=list)
    metered: Metered | None = None
    window: tuple[str, str] | None = None  # (from, to) as shown
    soc_now: float | None = None
    faults: list[str] = field(default_factory=list)  # safety trips: "<cause> at <time>"


def _aud(value: float) -> str:
    return f"{value:+.2f} AUD"


def money_lines(cars: list[CarMoney]) -> list[str]:
    """The closing summary, one block per car."""
    lines = [f"The money per car ({PRICE_NOTE}):"]
    for car in cars:
        lines.append(f"  {car.station_id} {car.car}")
        if car.days:
            plan = sum(d.plan_aud for d in car.days)
            plain = sum(d.plain_aud for d in car.days)
            first = car.days[0]
            what = "the day" if len(car.days) == 1 else f"{len(car.days)} days"
            verdict = (
                f"V2G saves {plain - plan:.2f} AUD"
                if plan <= plain
                else f"V2G costs {plan - plain:.2f} AUD more"
            )
            lines.append(
                f"    planned for {what} (from {first.start_soc * 100:.0f} % to "
                f"{first.target_soc * 100:.0f} % at departure): V2G plan {_aud(plan)}, "
                f"plain charging {_aud(plain)}: {verdict}"
            )
        else:
            lines.append("    no plan was made (the car never had an accepted plan)")
        if car.metered is not None and car.window is not None:
            m = car.metered
            lines.append(
                f"    at the meter ({car.window[0]}-{car.window[1]}): in {m.imported_kwh:.2f} kWh "
                f"for {m.import_cost_aud:.2f} AUD, out {m.exported_kwh:.2f} kWh for "
                f"{m.export_revenue_aud:.2f} AUD: net {_aud(m.net_aud)}"
            )
        for departure in car.departures:
            lines.append(
                f"    target {departure.target_soc * 100:.0f} % at departure {departure.at}: "
                f"{'met' if departure.met else 'NOT met'} ({departure.soc * 100:.1f} %)"
            )
        for fault in car.faults:
            lines.append(
                f"    safety trip: {fault} (the station ended the session; no energy moved "
                "after it)"
            )
        if car.days and not car.departures:
            last = car.days[-1]
            now = "" if car.soc_now is None else f"now {car.soc_now * 100:.1f} %, "
            lines.append(
                f"    target {last.target_soc * 100:.0f} % at departure: not due yet ({now}"
                f"the plan reaches {last.planned_soc * 100:.1f} %)"
            )
    return lines
