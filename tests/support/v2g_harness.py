"""V2G API tests: the API harness with the V2G router, a connected test station, and station
messages (transactions with SoC/energy meter values, EV charging needs, grid events)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from csms.api.app import API_PREFIX
from csms.api.routes import v2g as v2g_routes
from csms.services.v2g import V2gService, v2g_service_for
from tests.support.api_harness import STATION_PASSWORD, ApiHarness, api_harness
from tests.support.api_station import ApiTestStation, connected_station

DATA = Path(__file__).resolve().parents[1] / "data" / "v2g"
NEM_FILE = DATA / "PRICE_AND_DEMAND_20240805-06_VIC1.csv"

LEAF = {
    "id": "leaf-1",
    "name": "Nissan Leaf ZE1",
    "capacity_kwh": 40.0,
    "chemistry": "NMC",
    "max_charge_kw": 7.0,
    "max_discharge_kw": 7.0,
    "round_trip_efficiency": 0.9,
    "driving_reserve_soc": 0.2,
    "backup_reserve_soc": 0.1,
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def with_v2g_routes(harness: ApiHarness) -> None:
    """Include the V2G router unless the app already has it (wired in csms.api.app)."""
    paths = {getattr(r, "path", "") for r in harness.app.routes}
    if f"{API_PREFIX}/vehicles" not in paths:
        harness.app.include_router(v2g_routes.router, prefix=API_PREFIX)


def v2g_of(harness: ApiHarness) -> V2gService:
    return v2g_service_for(harness.services)


@contextlib.asynccontextmanager
async def v2g_api(tmp_path: Path, **overrides: Any) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path, with_ocpp=True, **overrides) as harness:
        with_v2g_routes(harness)
        yield harness


@contextlib.asynccontextmanager
async def v2g_station(harness: ApiHarness, station_id: str) -> AsyncIterator[ApiTestStation]:
    await harness.add_station(station_id)
    assert harness.ocpp_url is not None
    async with connected_station(harness.ocpp_url, station_id, STATION_PASSWORD) as station:
        await station.call_status_notification(evse_id=1, connector_id=1, status="Occupied")
        yield station


def meter_value(
    at: datetime,
    soc_pct: float | None = None,
    import_wh: float | None = None,
    export_wh: float | None = None,
    power_w: float | None = None,
) -> dict[str, Any]:
    sampled: list[dict[str, Any]] = []
    if import_wh is not None:
        sampled.append({"value": import_wh, "measurand": "Energy.Active.Import.Register"})
    if export_wh is not None:
        sampled.append({"value": export_wh, "measurand": "Energy.Active.Export.Register"})
    if soc_pct is not None:
        sampled.append(
            {"value": soc_pct, "measurand": "SoC", "unit_of_measure": {"unit": "Percent"}}
        )
    if power_w is not None:
        sampled.append({"value": max(power_w, 0.0), "measurand": "Power.Active.Import"})
        sampled.append({"value": max(-power_w, 0.0), "measurand": "Power.Active.Export"})
    return {"timestamp": iso(at), "sampled_value": sampled}


async def transaction_event(
    station: ApiTestStation,
    event_type: str,
    tx_id: str,
    seq_no: int,
    at: datetime,
    *,
    evse_id: int = 1,
    meter: list[dict[str, Any]] | None = None,
    trigger: str | None = None,
) -> None:
    reason = (
        trigger
        or {
            "Started": "CablePluggedIn",
            "Updated": "MeterValuePeriodic",
            "Ended": "EVCommunicationLost",
        }[event_type]
    )
    info: dict[str, Any] = {"transaction_id": tx_id}
    if event_type == "Ended":
        info["stopped_reason"] = "EVDisconnected"
    else:
        info["charging_state"] = "Charging"
    await station.call(
        call.TransactionEvent(
            event_type=event_type,
            timestamp=iso(at),
            trigger_reason=reason,
            seq_no=seq_no,
            transaction_info=info,
            evse={"id": evse_id, "connector_id": 1},
            meter_value=meter,
        ),
        suppress=False,
    )


async def notify_ev_needs(
    station: ApiTestStation, departure: datetime, soc_pct: float, energy_wh: float, evse_id: int = 1
) -> None:
    await station.call(
        call.NotifyEVChargingNeeds(
            evse_id=evse_id,
            charging_needs={
                "requested_energy_transfer": "DC",
                "departure_time": iso(departure),
                "dc_charging_parameters": {
                    "ev_max_current": 100,
                    "ev_max_voltage": 400,
                    "energy_amount": round(energy_wh),
                    "state_of_charge": round(soc_pct),
                },
            },
        ),
        suppress=False,
    )


async def notify_grid_event(
    station: ApiTestStation, tech_code: str, active: bool, at: datetime, event_id: int = 1
) -> None:
    await station.call(
        call.NotifyEvent(
            generated_at=iso(at),
            seq_no=0,
            event_data=[
                {
                    "event_id": event_id,
                    "timestamp": iso(at),
                    "trigger": "Delta",
                    "actual_value": "true" if active else "false",
                    "tech_code": tech_code,
                    "tech_info": tech_code,
                    "event_notification_type": "HardWiredNotification",
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Problem"},
                }
            ],
        ),
        suppress=False,
    )
