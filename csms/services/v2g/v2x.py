"""V2X per station version: what a V2G service sends a 2.1 station (native operation modes,
csms.v2g.v2x) and a 2.0.1 station (the negative-limit convention), chosen per station.

Also the 2.1 V2X messages the V2G services use: UpdateDynamicSchedule (fast setpoint changes;
the update is held in `dynamic_schedule_updates`, from which the OCPP edge answers the station's
PullDynamicScheduleUpdate on any node), NotifyAllowedEnergyTransfer, and the EV's V2X charging
parameters (NotifyEVChargingNeeds) narrowing the plan's power bounds.

Where the station's version comes from: the callable `versions` given to V2gCore when there is
one (tests), else the version negotiated on the station's current or last connection (stored on
the station record by the OCPP endpoint), else 2.0.1.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from csms.domain.errors import InvalidRequest, NotFound, UnknownStation
from csms.domain.models import DynamicScheduleUpdate
from csms.persistence import repositories as repo
from csms.persistence.repositories import ocpp21 as r21
from csms.persistence.repositories import v2g as vrepo
from csms.services.common import ocpp_datetime
from csms.services.v2g.records import SessionContext
from csms.services.v2g.sessions import SessionsPart
from csms.v2g import VehicleSession
from csms.v2g.ev_v2x import (
    EvV2xLimits,
    apply_ev_limits,
    ev_v2x_limits,
)
from csms.v2g.v2x import (
    V2X_CONTROLLER,
    OperationMode,
    PowerBounds,
    V2xCapabilities,
    central_frequency_period,
    schedule_update,
    setpoint_period,
    v2x_capabilities,
    v21_profile,
)
from v2g_shared.ocpp_versions import OcppVersion, parse_ocpp_version

log = logging.getLogger(__name__)

# Energy transfer modes by what they allow (NotifyAllowedEnergyTransfer).
BIDIRECTIONAL = ("AC_BPT", "AC_BPT_DER", "DC_BPT", "DC_ACDP_BPT")


def allowed_transfers(available: list[str], discharge_allowed: bool) -> list[str]:
    """The EV's available energy transfer modes the CSMS allows: all of them, or only the
    charge-only ones when the vehicle may not discharge (its V2G is off or its bound is 0)."""
    modes = [m for m in available[:16] if isinstance(m, str)]
    if not discharge_allowed:
        modes = [m for m in modes if m not in BIDIRECTIONAL]
    return modes


class V2xPart(SessionsPart):
    async def station_version(self, station_id: str) -> OcppVersion:
        text: str | None = None
        if self._versions is not None:
            text = await self._versions(station_id)
        else:
            async with self._db.read() as conn:
                station = await repo.get_station(conn, station_id)
            text = None if station is None else station.ocpp_version
        if not text:
            return OcppVersion.V201
        try:
            return parse_ocpp_version(str(text))
        except ValueError:
            log.warning("station %s: unknown OCPP version %r, using 2.0.1", station_id, text)
            return OcppVersion.V201

    async def is_v21(self, station_id: str) -> bool:
        return await self.station_version(station_id) is OcppVersion.V21

    async def require_known(self, station_id: str) -> None:
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)

    async def require_v21(self, station_id: str) -> None:
        """InvalidRequest (422) unless the station speaks 2.1; UnknownStation (404) first."""
        await self.require_known(station_id)
        if not await self.is_v21(station_id):
            raise InvalidRequest(f"station {station_id!r} does not speak OCPP 2.1")

    async def capabilities(self, station_id: str) -> V2xCapabilities:
        """The station's V2XChargingCtrlr variables (Actual) from its device-model reports."""
        async with self._db.read() as conn:
            found = await repo.list_device_variables(conn, station_id, V2X_CONTROLLER)
        return v2x_capabilities(
            (v.component, v.variable, v.value) for v in found if v.attribute_type == "Actual"
        )

    async def ev_limits(self, ctx: SessionContext) -> EvV2xLimits:
        """The V2X parameters of the EV's latest NotifyEVChargingNeeds in this session (none:
        every field None)."""
        station_id = ctx.vehicle.station_id
        if station_id is None:
            return EvV2xLimits()
        async with self._db.read() as conn:
            needs = await vrepo.latest_event(conn, station_id, ["NotifyEVChargingNeeds"])
        tx = ctx.transaction
        for _kind, received, payload in needs:
            if ctx.vehicle.evse_id is not None and payload.get("evseId") != ctx.vehicle.evse_id:
                continue
            if tx is not None and tx.started_at is not None and received < tx.started_at:
                break  # an earlier session's needs
            charging_needs = payload.get("chargingNeeds")
            if isinstance(charging_needs, dict):
                return ev_v2x_limits(charging_needs)
            break
        return EvV2xLimits()

    async def with_ev_limits(self, ctx: SessionContext, session: VehicleSession) -> VehicleSession:
        """The session with the vehicle's power bounds narrowed by the EV's V2X parameters (kept
        apart from the planning flow so the plan's trigger and its bounds change separately)."""
        limits = await self.ev_limits(ctx)
        vehicle = session.vehicle
        charge, discharge = apply_ev_limits(vehicle.max_charge_kw, vehicle.max_discharge_kw, limits)
        if (charge, discharge) == (vehicle.max_charge_kw, vehicle.max_discharge_kw):
            return session
        narrowed = replace(vehicle, max_charge_kw=charge, max_discharge_kw=discharge)
        return replace(session, vehicle=narrowed)

    async def power_bounds(self, ctx: SessionContext) -> PowerBounds:
        vehicle = ctx.vehicle
        charge, discharge = apply_ev_limits(
            vehicle.max_charge_kw, vehicle.max_discharge_kw, await self.ev_limits(ctx)
        )
        return PowerBounds(charge * 1000.0, discharge * 1000.0)

    async def power_profile(
        self,
        ctx: Any,
        power_w: float,
        duration_s: int,
        profile_id: int,
        stack_level: int,
        now: datetime,
        *,
        frequency: bool = False,
        share_w: tuple[float, float] | None = None,
    ) -> tuple[dict[str, Any], OcppVersion]:
        """One-period TxProfile running the EV at `power_w` (signed) for `duration_s`: on 2.1
        CentralSetpoint (CentralFrequency when `frequency` and the station offers it), on 2.0.1
        a signed limit. `ctx` is a SessionContext or a fleet Plugged (vehicle + transaction).
        `share_w`: the station's envelope share (charge W, discharge W) that the 2.1 bounds
        (`limit`, `dischargeLimit`) are narrowed to."""
        tx = ctx.transaction
        station_id = ctx.vehicle.station_id
        version = await self.station_version(station_id)
        if version is not OcppVersion.V21:
            schedule = {
                "id": profile_id,
                "startSchedule": ocpp_datetime(now),
                "duration": duration_s,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(power_w, 1)}],
            }
            profile = {
                "id": profile_id,
                "stackLevel": stack_level,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Absolute",
                "transactionId": tx.transaction_id,
                "chargingSchedule": [schedule],
            }
            return profile, version
        caps = await self.capabilities(station_id)
        v = ctx.vehicle
        bounds = PowerBounds(v.max_charge_kw * 1000.0, v.max_discharge_kw * 1000.0)
        if isinstance(ctx, SessionContext):
            bounds = await self.power_bounds(ctx)
        if share_w is not None:
            bounds = PowerBounds(
                min(bounds.max_charge_w, share_w[0]), min(bounds.max_discharge_w, share_w[1])
            )
        modes = caps.operation_modes if caps.enabled and caps.operation_modes else None
        if frequency and caps.enabled and OperationMode.CENTRAL_FREQUENCY in caps.operation_modes:
            period = central_frequency_period(power_w, bounds)
        else:
            try:
                period = setpoint_period(0, power_w, bounds, modes=modes)
            except ValueError as exc:
                raise InvalidRequest(f"station {station_id!r}: {exc}") from exc
        profile = v21_profile(
            [period],
            profile_id=profile_id,
            stack_level=stack_level,
            start_schedule=ocpp_datetime(now),
            duration_s=duration_s,
            transaction_id=tx.transaction_id,
        )
        return profile, version

    # ---- dynamic schedules (2.1) -------------------------------------------------------------

    async def update_setpoint(
        self,
        station_id: str,
        profile_id: int,
        setpoint_w: float,
        *,
        max_charge_w: float,
        max_discharge_w: float,
        reactive_var: float | None = None,
    ) -> dict[str, Any]:
        """UpdateDynamicSchedule: a new setpoint for a 2.1 profile the station holds, within the
        bounds sent with it; the update is kept for the station's PullDynamicScheduleUpdate."""
        await self.require_v21(station_id)
        try:
            update = schedule_update(
                setpoint_w, PowerBounds(max_charge_w, max_discharge_w), reactive_var
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        held = DynamicScheduleUpdate(station_id, profile_id, update, self._clock())
        await self._db.write(lambda c: r21.upsert_schedule_update(c, held))
        answer = await self._commands.send(
            station_id,
            "UpdateDynamicSchedule",
            {"chargingProfileId": profile_id, "scheduleUpdate": update},
        )
        return {"scheduleUpdate": update, "answer": answer}

    async def latest_dynamic_update(self, station_id: str, profile_id: int) -> dict[str, Any]:
        async with self._db.read() as conn:
            found = await r21.get_schedule_update(conn, station_id, profile_id)
        if found is None:
            raise NotFound(f"no dynamic update for profile {profile_id} of {station_id!r}")
        return {"scheduleUpdate": found.schedule_update, "updated_at": found.updated_at}

    # ---- allowed energy transfer (2.1) ------------------------------------------------------

    async def restrict_transfer_if_needed(
        self, station_id: str, ctx: SessionContext
    ) -> dict[str, Any] | None:
        """After a plan went to a 2.1 station: when the EV offered a bidirectional transfer the
        vehicle may not use (its discharge bound is 0), tell the station which transfers are
        allowed (NotifyAllowedEnergyTransfer); None when nothing needs saying."""
        limits = await self.ev_limits(ctx)
        if limits.bidirectional is not True or (await self.power_bounds(ctx)).max_discharge_w:
            return None
        return await self.notify_allowed_energy_transfer(station_id, ctx.vehicle.id)

    async def notify_allowed_energy_transfer(
        self, station_id: str, vehicle_id: str | None = None
    ) -> dict[str, Any]:
        """NotifyAllowedEnergyTransfer for the running transaction of the vehicle at the
        station: the EV's available modes, less the bidirectional ones when the vehicle may not
        discharge (its max discharge power, narrowed by the EV's own, is 0)."""
        await self.require_v21(station_id)
        record = await self._station_vehicle(station_id, vehicle_id)
        ctx = await self.session_context(record, self._clock())
        tx = ctx.transaction
        if tx is None:
            raise InvalidRequest(f"station {station_id!r} has no active transaction")
        async with self._db.read() as conn:
            needs = await vrepo.latest_event(conn, station_id, ["NotifyEVChargingNeeds"])
        available: list[str] = []
        for _kind, _received, payload in needs:
            charging_needs = payload.get("chargingNeeds") or {}
            found = charging_needs.get("availableEnergyTransfer")
            requested = charging_needs.get("requestedEnergyTransfer")
            available = list(found) if isinstance(found, list) else []
            if not available and isinstance(requested, str):
                available = [requested]
            break
        bounds = await self.power_bounds(ctx)
        allowed = allowed_transfers(available, bounds.max_discharge_w > 0)
        if not allowed:
            raise InvalidRequest("the EV reported no energy transfer mode the CSMS can allow")
        payload = {"transactionId": tx.transaction_id, "allowedEnergyTransfer": allowed}
        answer = await self._commands.send(station_id, "NotifyAllowedEnergyTransfer", payload)
        return {"allowedEnergyTransfer": allowed, "answer": answer}
