"""OCPP 2.1 V2X, DER control, aFRR and periodic event streams (the CSMS side of issue 14).

The station's own version decides what it gets: these routes answer 422 for a 2.0.1 station
where only 2.1 has the means (DER control, dynamic schedules, aFRR, streams), 404 for an
unknown station; the station's answers are returned as it gave them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from csms.api.deps import OPERATE, READ
from csms.api.routes.commands import ERROR_RESPONSES
from csms.api.routes.v2g import V2g
from csms.api.v2x_schemas import (
    AfrrCreate,
    AfrrCurveCreate,
    AllowedTransferCreate,
    DerCurveCreate,
    DynamicSetpointCreate,
    LocalControlCreate,
    StreamAdjustCreate,
    StreamRequestCreate,
    V2xStationRead,
)
from csms.services.v2g.grid_services import DER_REPORT_KINDS
from csms.v2g.der_curves import SOURCES, VERIFIED, CurveKind, Region, default_curve

router = APIRouter(tags=["v2x"], responses=ERROR_RESPONSES)

CurveKindName = Literal["volt_watt", "volt_var", "freq_watt_over", "freq_watt_under"]


@router.get(
    "/stations/{station_id}/v2x",
    dependencies=[READ],
    response_model=V2xStationRead,
    summary="The station's OCPP version and V2X controller (what the V2G services send it)",
)
async def v2x_station(v2g: V2g, station_id: str) -> V2xStationRead:
    await v2g.require_known(station_id)
    version = await v2g.station_version(station_id)
    caps = await v2g.capabilities(station_id)
    mode = caps.frequency_mode()
    return V2xStationRead(
        station_id=station_id,
        ocpp_version=version.label,
        v2x_enabled=caps.enabled,
        operation_modes=sorted(m.value for m in caps.operation_modes),
        energy_transfer_modes=sorted(caps.energy_transfer_modes),
        frequency_mode=None if mode is None else mode.value,
    )


@router.put(
    "/stations/{station_id}/v2x/dynamic-setpoint",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="UpdateDynamicSchedule: a fast setpoint change on a 2.1 profile",
    description="The update (setpoint clamped into [-max_discharge_w, max_charge_w], sent "
    "with those bounds) is kept and answers the station's PullDynamicScheduleUpdate.",
)
async def dynamic_setpoint(
    v2g: V2g, station_id: str, body: DynamicSetpointCreate
) -> dict[str, Any]:
    return await v2g.update_setpoint(
        station_id,
        body.profile_id,
        body.setpoint_w,
        max_charge_w=body.max_charge_w,
        max_discharge_w=body.max_discharge_w,
        reactive_var=body.setpoint_reactive_var,
    )


@router.get(
    "/stations/{station_id}/v2x/dynamic-setpoint/{profile_id}",
    dependencies=[READ],
    response_model=dict[str, Any],
    summary="The latest dynamic-schedule update kept for a 2.1 profile",
)
async def dynamic_setpoint_read(v2g: V2g, station_id: str, profile_id: int) -> dict[str, Any]:
    await v2g.require_known(station_id)
    return await v2g.latest_dynamic_update(station_id, profile_id)


@router.post(
    "/stations/{station_id}/v2x/allowed-energy-transfer",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="NotifyAllowedEnergyTransfer for the running transaction",
    description="The EV's available transfer modes (its NotifyEVChargingNeeds), without the "
    "bidirectional ones when the vehicle may not discharge.",
)
async def allowed_energy_transfer(
    v2g: V2g, station_id: str, body: AllowedTransferCreate
) -> dict[str, Any]:
    return await v2g.notify_allowed_energy_transfer(station_id, body.vehicle_id)


@router.put(
    "/stations/{station_id}/v2x/local-control",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="Hand the session to the station's side: ExternalSetpoint, ExternalLimits or "
    "LocalLoadBalancing (2.1)",
    description="A TxProfile (id 62006, stack level 7, above the plan and dispatches) with one "
    "period of that mode, bounded by the vehicle's limits and the optional maxima, for "
    "duration_s; 422 when the station is 2.0.1, does not offer the mode or has no session.",
)
async def local_control(v2g: V2g, station_id: str, body: LocalControlCreate) -> dict[str, Any]:
    return await v2g.local_control(
        station_id,
        body.mode,
        body.duration_s,
        max_charge_w=body.max_charge_w,
        max_discharge_w=body.max_discharge_w,
    )


@router.delete(
    "/stations/{station_id}/v2x/local-control",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="End local control: the plan applies again",
)
async def end_local_control(v2g: V2g, station_id: str) -> dict[str, Any]:
    return await v2g.end_local_control(station_id)


# ---- DER control (R) ---------------------------------------------------------------------------


@router.post(
    "/stations/{station_id}/der/controls",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="SetDERControl (the OCPP 2.1 request body as is)",
)
async def set_der_control(v2g: V2g, station_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return await v2g.der_command(station_id, "SetDERControl", body)


@router.post(
    "/stations/{station_id}/der/controls/report",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="GetDERControl (the station then sends ReportDERControl: see /der/reports)",
)
async def get_der_control(v2g: V2g, station_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return await v2g.der_command(station_id, "GetDERControl", body)


@router.post(
    "/stations/{station_id}/der/controls/clear",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="ClearDERControl (the OCPP 2.1 request body as is)",
)
async def clear_der_control(v2g: V2g, station_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return await v2g.der_command(station_id, "ClearDERControl", body)


@router.get(
    "/stations/{station_id}/der/reports",
    dependencies=[READ],
    response_model=list[dict[str, Any]],
    summary="NotifyDERAlarm, NotifyDERStartStop and ReportDERControl the station sent",
)
async def der_reports(
    v2g: V2g,
    station_id: str,
    kind: Annotated[
        Literal["NotifyDERAlarm", "NotifyDERStartStop", "ReportDERControl"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    kinds = DER_REPORT_KINDS if kind is None else (kind,)
    return await v2g.station_events(station_id, kinds, limit)


@router.get(
    "/der/curve-defaults",
    dependencies=[READ],
    response_model=dict[str, Any],
    summary="AS/NZS 4777.2:2020 region defaults of each curve, with their source",
    description="`verified` says whether the values were checked against a published table "
    "(the frequency settings were; the volt-watt and volt-var ones were not).",
)
async def der_curve_defaults() -> dict[str, Any]:
    return {
        kind.value: {
            "verified": VERIFIED[kind],
            "source": SOURCES[kind],
            "regions": {
                region.value: [list(p) for p in default_curve(kind, region)] for region in Region
            },
        }
        for kind in CurveKind
    }


@router.get(
    "/stations/{station_id}/der/curves",
    dependencies=[READ],
    response_model=list[dict[str, Any]],
    summary="The grid-code curves configured for the station",
)
async def der_curves(v2g: V2g, station_id: str) -> list[dict[str, Any]]:
    return await v2g.der_curves(station_id)


@router.put(
    "/stations/{station_id}/der/curves/{kind}",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="Configure one curve: a region's defaults or a DNSP's own points",
)
async def set_der_curve(
    v2g: V2g, station_id: str, kind: CurveKindName, body: DerCurveCreate
) -> dict[str, Any]:
    return await v2g.set_der_curve(
        station_id,
        kind,
        region=body.region,
        points=None if body.points is None else [[x, y] for x, y in body.points],
        nominal_v=body.nominal_v,
        priority=body.priority,
        response_time_s=body.response_time_s,
    )


@router.delete(
    "/stations/{station_id}/der/curves/{kind}",
    dependencies=[OPERATE],
    response_model=dict[str, bool],
    summary="Forget one configured curve (the station keeps what it was sent)",
)
async def delete_der_curve(v2g: V2g, station_id: str, kind: CurveKindName) -> dict[str, bool]:
    return {"deleted": await v2g.delete_der_curve(station_id, kind)}


@router.post(
    "/stations/{station_id}/der/curves/apply",
    dependencies=[OPERATE],
    response_model=list[dict[str, Any]],
    summary="SetDERControl (isDefault) for each configured curve",
)
async def apply_der_curves(v2g: V2g, station_id: str) -> list[dict[str, Any]]:
    return await v2g.apply_der_curves(station_id)


# ---- aFRR ----------------------------------------------------------------------------------------


@router.post(
    "/grid/afrr",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="AFRRSignal to the given 2.1 stations, or to every 2.1 station of the fleet",
)
async def afrr(v2g: V2g, body: AfrrCreate) -> dict[str, Any]:
    return await v2g.afrr_signal(body.signal, body.timestamp, body.station_ids)


@router.post(
    "/grid/afrr/curve",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="Arm aFRR: a CentralFrequency profile with the signal-watt curve on 2.1 stations",
    description="Each 2.1 station (given, or every one with a plugged-in vehicle) whose "
    "V2XChargingCtrlr offers CentralFrequency gets a TxProfile with v2xSignalWattCurve and "
    "v2xBaseline for duration_s; POST /grid/afrr then moves it. Other stations are skipped, "
    "with the reason.",
)
async def afrr_curve(v2g: V2g, body: AfrrCurveCreate) -> dict[str, Any]:
    return await v2g.afrr_curve(
        [(p.signal, p.power_w) for p in body.curve],
        body.duration_s,
        baseline_w=body.baseline_w,
        station_ids=body.station_ids,
    )


# ---- periodic event streams -----------------------------------------------------------------


def _params(interval_s: int | None, values: int | None) -> dict[str, int]:
    params: dict[str, int] = {}
    if interval_s is not None:
        params["interval"] = interval_s
    if values is not None:
        params["values"] = values
    return params


@router.post(
    "/stations/{station_id}/periodic-streams",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="Ask for a periodic event stream: SetVariableMonitoring with periodicEventStream",
    description="The station answers with its monitor result and opens the stream itself "
    "(OpenPeriodicEventStream); its values are read at .../periodic-streams/samples.",
)
async def request_stream(v2g: V2g, station_id: str, body: StreamRequestCreate) -> dict[str, Any]:
    component: dict[str, Any] = {"name": body.component}
    if body.evse_id is not None:
        component["evse"] = {"id": body.evse_id}
    monitor = {
        "value": body.value,
        "type": body.monitor_type,
        "severity": body.severity,
        "component": component,
        "variable": {"name": body.variable},
        "periodicEventStream": _params(body.interval_s, body.values),
    }
    return await v2g.request_stream(station_id, monitor)


@router.get(
    "/stations/{station_id}/periodic-streams",
    dependencies=[READ],
    response_model=list[dict[str, Any]],
    summary="The periodic event streams the station opened",
)
async def streams(v2g: V2g, station_id: str) -> list[dict[str, Any]]:
    return await v2g.streams(station_id)


@router.post(
    "/stations/{station_id}/periodic-streams/query",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="GetPeriodicEventStream: the streams the station has open",
)
async def get_streams(v2g: V2g, station_id: str) -> dict[str, Any]:
    return await v2g.stream_command(station_id, "GetPeriodicEventStream", {})


@router.patch(
    "/stations/{station_id}/periodic-streams/{stream_id}",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="AdjustPeriodicEventStream",
)
async def adjust_stream(
    v2g: V2g, station_id: str, stream_id: int, body: StreamAdjustCreate
) -> dict[str, Any]:
    payload = {"id": stream_id, "params": _params(body.interval_s, body.values)}
    return await v2g.stream_command(station_id, "AdjustPeriodicEventStream", payload)


@router.delete(
    "/stations/{station_id}/periodic-streams/monitors/{monitor_id}",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="Stop a stream: ClearVariableMonitoring of its monitor (the station closes it)",
)
async def stop_stream(v2g: V2g, station_id: str, monitor_id: int) -> dict[str, Any]:
    return await v2g.stop_stream(station_id, monitor_id)


@router.get(
    "/stations/{station_id}/periodic-streams/samples",
    dependencies=[READ],
    response_model=list[dict[str, Any]],
    summary="Values of one periodic event stream (time = basetime + t), oldest first",
)
async def stream_samples(
    v2g: V2g,
    station_id: str,
    stream_id: Annotated[int, Query(ge=0, le=2**31 - 1)],
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    since: Annotated[datetime | None, Query()] = None,
) -> list[dict[str, Any]]:
    return await v2g.stream_samples(station_id, stream_id, limit, since)
