"""Economics: energy, money, wear and payback of a vehicle over a period."""

from __future__ import annotations

import logging
from datetime import datetime

from csms.domain.errors import InvalidRequest
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.checks import bounded, in_time_range, to_vehicle
from csms.services.v2g.profiles import (
    EXPORT_REGISTER,
    IMPORT_REGISTER,
    SOC,
)
from csms.services.v2g.records import (
    EconomicsReport,
)
from csms.services.v2g.rules import (
    price_lookup,
)
from csms.services.v2g.vehicles import VehiclesPart
from csms.v2g import (
    battery_degradation,
    payback_years,
)
from csms.v2g import bounds as b
from csms.v2g.economics import DEFAULT_EQUIPMENT_COST_AUD, Economics

log = logging.getLogger(__name__)


class EconomicsPart(VehiclesPart):
    async def economics(
        self,
        vehicle_id: str,
        start: datetime,
        end: datetime,
        equipment_cost_aud: float = DEFAULT_EQUIPMENT_COST_AUD,
    ) -> EconomicsReport:
        """From meter values at the vehicle's station: energy per register step, priced at the
        stored price of the interval it ended in; wear by rainflow over the SoC trace; grid
        services = accepted dispatch/frequency kWh of this vehicle x the configured rate."""
        in_time_range(start, "from")
        in_time_range(end, "to")
        if end <= start:
            raise InvalidRequest("'to' must be after 'from'")
        bounded(equipment_cost_aud, b.EQUIPMENT_COST_AUD, "equipment_cost")
        record = await self.get_vehicle(vehicle_id)
        vehicle = to_vehicle(record)
        samples: list[tuple[datetime, str, float, str | None, str | None]] = []
        async with self._db.read() as conn:
            if record.station_id is not None:
                samples = await vrepo.samples_between(
                    conn,
                    record.station_id,
                    (IMPORT_REGISTER, EXPORT_REGISTER, SOC),
                    start,
                    end,
                    record.evse_id,
                )
            prices = await vrepo.list_prices(conn, start, end)
            events = await vrepo.list_dispatches(conn, start, end)
        price_at = price_lookup(prices)
        imported = exported = cost = revenue = priced = unpriced = 0.0
        last: dict[str, float] = {}
        soc_trace: list[float] = []
        for when, measurand, value, unit, _tx in samples:
            if measurand == SOC:
                soc_trace.append(value / 100.0)
                continue
            wh = value * 1000.0 if unit == "kWh" else value
            before = last.get(measurand)
            last[measurand] = wh
            if before is None or wh < before:
                continue  # first reading, or a register reset
            kwh = (wh - before) / 1000.0
            price = price_at(when)
            if price is None:
                unpriced += kwh
            else:
                priced += kwh
            if measurand == IMPORT_REGISTER:
                imported += kwh
                cost += kwh * (price[0] if price else 0.0) / 100.0
            else:
                exported += kwh
                revenue += kwh * (price[1] if price else 0.0) / 100.0
        grid_kwh = sum(
            abs(d.per_vehicle[vehicle_id]["kw"]) * d.duration_s / 3600.0
            for d in events
            if d.per_vehicle.get(vehicle_id, {}).get("status") == "Accepted"
        )
        days = (end - start).total_seconds() / 86400.0
        wear = battery_degradation(soc_trace, days, vehicle)
        economics = Economics(
            imported_kwh=imported,
            exported_kwh=exported,
            import_cost_aud=cost,
            export_revenue_aud=revenue,
            grid_service_aud=grid_kwh * self.settings.grid_service_aud_per_kwh,
            degradation_aud=wear.cost_aud,
            days=days,
        )
        # What V2G earns: exports and grid services less the wear of cycling (calendar ageing
        # and the cost of charging for driving happen without V2G too).
        cycle_cost = wear.cost_aud * (wear.cycle_damage / wear.damage if wear.damage else 0.0)
        benefit = revenue + economics.grid_service_aud - cycle_cost
        annual = benefit / days * 365.25 if days > 0 else 0.0
        return EconomicsReport(
            vehicle_id=vehicle_id,
            start=start,
            end=end,
            economics=economics,
            equivalent_full_cycles=wear.equivalent_full_cycles,
            v2g_benefit_aud=benefit,
            annual_benefit_aud=annual,
            payback_years=payback_years(annual, equipment_cost_aud),
            equipment_cost_aud=equipment_cost_aud,
            priced_kwh=priced,
            unpriced_kwh=unpriced,
        )
