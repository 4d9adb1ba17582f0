"""Fleet totals for the V2G gauges on /metrics (csms_v2g_*): no per-vehicle series."""

from __future__ import annotations

from csms.persistence.repositories import v2g as vrepo
from csms.services.telemetry import V2gFleetFigures
from csms.services.v2g.profiles import EXPORT_REGISTER, IMPORT_REGISTER
from csms.services.v2g.vehicles import VehiclesPart

POWER_IMPORT = "Power.Active.Import"
POWER_EXPORT = "Power.Active.Export"
# Each refresh reads at most this many vehicles (4 indexed single-row reads each); a larger
# fleet is summed over the first ones by id, and `vehicles{state="measured"}` says how many.
GAUGE_MAX_VEHICLES = 2000


class FleetFiguresPart(VehiclesPart):
    async def fleet_figures(self) -> V2gFleetFigures:
        """Totals from the latest meter values of each vehicle's EVSE: power only while a
        transaction is active there (a finished session's last power is not "now")."""
        vehicles = await self.list_vehicles()
        linked = [v for v in vehicles if v.station_id is not None][:GAUGE_MAX_VEHICLES]
        charge = discharge = imported = exported = 0.0
        plugged = 0
        async with self._db.read() as conn:
            active = await vrepo.active_transactions_at(
                conn, sorted({v.station_id for v in linked if v.station_id is not None})
            )
            any_at_station = {station: tx for (station, _evse), tx in active.items()}
            for record in linked:
                assert record.station_id is not None
                if record.evse_id is None:  # linked to the station, not to one EVSE
                    tx = any_at_station.get(record.station_id)
                else:
                    tx = active.get((record.station_id, record.evse_id))
                registers = []
                for measurand in (IMPORT_REGISTER, EXPORT_REGISTER):
                    found = await vrepo.latest_measurand(
                        conn, record.station_id, measurand, record.evse_id
                    )
                    registers.append(found[1] / 1000.0 if found else 0.0)
                imported += registers[0]
                exported += registers[1]
                if tx is None:
                    continue
                plugged += 1
                for measurand in (POWER_IMPORT, POWER_EXPORT):
                    found = await vrepo.latest_measurand(
                        conn, record.station_id, measurand, record.evse_id, tx
                    )
                    watts = found[1] if found else 0.0
                    if measurand == POWER_IMPORT:
                        charge += watts / 1000.0
                    else:
                        discharge += watts / 1000.0
        return V2gFleetFigures(
            vehicles=len(vehicles),
            plugged_in=plugged,
            measured=len(linked),
            charge_kw=charge,
            discharge_kw=discharge,
            imported_kwh=imported,
            exported_kwh=exported,
        )
