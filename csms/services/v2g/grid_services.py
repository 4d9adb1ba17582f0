"""OCPP 2.1 grid services on the CSMS: DER control (block R) with the station's AS/NZS 4777.2
curves, aFRR signals to the fleet, and periodic event streams (high-resolution meter data).

The messages a station sends about them are answered and stored by the OCPP edge (DER alarms,
start/stop and reports as station events; NotifyPeriodicEventStream values in their own table);
this part reads them back.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from typing import Any

from csms.domain.errors import CsmsError, InvalidRequest
from csms.persistence.repositories import ocpp21 as r21
from csms.persistence.repositories import v2x as xrepo
from csms.services.common import ocpp_datetime
from csms.services.v2g.armed import ArmedPart
from csms.services.v2g.checks import in_time_range
from csms.services.v2g.profiles import (
    AFRR_PROFILE_ID,
    AFRR_STACK_LEVEL,
    LOCAL_CONTROL_PROFILE_ID,
    LOCAL_CONTROL_STACK_LEVEL,
)
from csms.v2g.armed_services import MAX_POWER_W, ArmedKind, ArmedService
from csms.v2g.der_curves import (
    NOMINAL_VOLTAGE_V,
    SOURCES,
    VERIFIED,
    CurveKind,
    DerCurveSetting,
    Region,
    check_curve,
    default_curve,
    set_der_control_request,
    setting_from_dict,
)
from csms.v2g.envelope_caps import held_bounds
from csms.v2g.v2x import (
    LOCAL_CONTROL_MODES,
    OperationMode,
    PowerBounds,
    afrr_period,
    local_control_period,
    signal_curve_errors,
    v21_profile,
)

log = logging.getLogger(__name__)

DER_REPORT_KINDS = ("NotifyDERAlarm", "NotifyDERStartStop", "ReportDERControl")
INT32 = 2**31 - 1
MAX_AFRR_DURATION_S = 86_400  # an aFRR activation is armed for at most a day at a time
MAX_AFRR_POWER_W = 1_000_000.0
MAX_EVENTS = 200  # events read back per request
MAX_SAMPLES = 5000  # stream samples returned per request


class GridServicesPart(ArmedPart):
    # ---- DER control (R) ---------------------------------------------------------------------

    async def der_command(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """SetDERControl / GetDERControl / ClearDERControl on a 2.1 station (the payload is
        validated against the 2.1 schema by the command service)."""
        if action not in ("SetDERControl", "GetDERControl", "ClearDERControl"):
            raise InvalidRequest(f"{action} is not a DER control action")
        await self.require_v21(station_id)
        return await self._commands.send(station_id, action, payload)

    async def der_curves(self, station_id: str) -> list[dict[str, Any]]:
        """The station's configured curves, each with whether its values were checked against
        a published table (`verified`) and their source."""
        await self.require_known(station_id)
        async with self._db.read() as conn:
            stored = await xrepo.der_curve_settings(conn, station_id)
        out = []
        for data in stored.values():
            setting = setting_from_dict(station_id, data)
            item = setting.as_dict()
            if setting.region is not None:
                item["verified"] = VERIFIED[setting.kind]
                item["source"] = SOURCES[setting.kind]
            else:
                item["verified"], item["source"] = None, "configured values"
            out.append(item)
        return out

    async def set_der_curve(
        self,
        station_id: str,
        kind: str,
        *,
        region: str | None = None,
        points: list[list[float]] | None = None,
        nominal_v: float = NOMINAL_VOLTAGE_V,
        priority: int = 10,
        response_time_s: float | None = None,
    ) -> dict[str, Any]:
        """Configure one curve: a region's defaults (`region`) or a DNSP's own `points`."""
        await self.require_known(station_id)
        try:
            curve_kind = CurveKind(kind)
            chosen = None if region is None else Region(region)
            if (chosen is None) == (points is None):
                raise ValueError("give either a region or points")
            values = default_curve(curve_kind, chosen) if chosen is not None else points
            assert values is not None
            if not 100.0 <= nominal_v <= 500.0:
                raise ValueError("nominal_v must be between 100 and 500 V")
            if not 0 <= priority <= 1000:
                raise ValueError("priority must be between 0 and 1000")
            if response_time_s is not None and not 0 < response_time_s <= 3600:
                raise ValueError("response_time_s must be in (0, 3600]")
            setting = DerCurveSetting(
                station_id,
                curve_kind,
                check_curve(curve_kind, values),
                chosen,
                nominal_v,
                priority,
                response_time_s,
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        now = self._clock()
        data = setting.as_dict()
        await self._db.write(
            lambda c: xrepo.save_der_curve_setting(c, station_id, curve_kind.value, data, now)
        )
        return data

    async def delete_der_curve(self, station_id: str, kind: str) -> bool:
        await self.require_known(station_id)
        return bool(
            await self._db.write(lambda c: xrepo.delete_der_curve_setting(c, station_id, kind))
        )

    async def apply_der_curves(self, station_id: str) -> list[dict[str, Any]]:
        """SetDERControl (isDefault) for each configured curve; one result per curve."""
        await self.require_v21(station_id)
        async with self._db.read() as conn:
            stored = await xrepo.der_curve_settings(conn, station_id)
        if not stored:
            raise InvalidRequest(f"station {station_id!r} has no DER curve configured")
        results = []
        for data in stored.values():
            setting = setting_from_dict(station_id, data)
            request = set_der_control_request(setting)
            try:
                answer = await self._commands.send(station_id, "SetDERControl", request)
                results.append({"kind": setting.kind.value, "request": request, "answer": answer})
            except CsmsError as exc:
                results.append({"kind": setting.kind.value, "request": request, "error": str(exc)})
        return results

    async def station_events(
        self, station_id: str, kinds: tuple[str, ...], limit: int = 50
    ) -> list[dict[str, Any]]:
        await self.require_known(station_id)
        if not 1 <= limit <= MAX_EVENTS:
            raise InvalidRequest(f"limit must be between 1 and {MAX_EVENTS}")
        async with self._db.read() as conn:
            rows = await xrepo.station_events(conn, station_id, kinds, limit)
        return [
            {"id": i, "kind": k, "timestamp": ts, "received_at": at, "payload": payload}
            for i, k, ts, at, payload in rows
        ]

    # ---- aFRR ----------------------------------------------------------------------------------

    async def afrr_signal(
        self,
        signal: int,
        timestamp: datetime | None = None,
        station_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """AFRRSignal to the given 2.1 stations, or to every 2.1 station with a plugged-in
        vehicle (fleet dispatch); 2.0.1 stations are listed as skipped (no aFRR there). The
        send is recorded in the dispatch history (kind "afrr")."""
        if isinstance(signal, bool) or not -INT32 - 1 <= signal <= INT32:
            raise InvalidRequest("signal must be a 32-bit integer")
        moment = timestamp or self._clock()
        in_time_range(moment, "timestamp")
        if station_ids is None:
            targets = sorted(
                {p.vehicle.station_id for p in await self._plugged() if p.vehicle.station_id}
            )
        else:
            if not 1 <= len(station_ids) <= 1000:
                raise InvalidRequest("give 1 to 1000 station ids")
            targets = sorted(set(station_ids))
            for station_id in targets:
                await self.require_known(station_id)
        payload = {"timestamp": ocpp_datetime(moment), "signal": int(signal)}

        async def one(station_id: str) -> dict[str, Any]:
            if not await self.is_v21(station_id):
                return {"station_id": station_id, "status": "skipped", "reason": "OCPP 2.0.1"}
            try:
                answer = await self._commands.send(station_id, "AFRRSignal", payload)
                return {"station_id": station_id, "status": str(answer.get("status"))}
            except CsmsError as exc:
                return {"station_id": station_id, "status": "failed", "error": str(exc)}

        results = list(await asyncio.gather(*(one(s) for s in targets)))
        per_station = {r["station_id"]: {**r, "kw": 0.0, "signal": int(signal)} for r in results}
        outcome = await self._record_dispatch("afrr", moment, 0, 0.0, 0.0, per_station)
        return {"dispatch_id": outcome.id, "signal": int(signal), "results": results}

    async def afrr_curve(
        self,
        curve: list[tuple[int, float]],
        duration_s: int,
        *,
        baseline_w: float = 0.0,
        station_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """Arm aFRR: each 2.1 station (given, or every one with a plugged-in vehicle) whose
        V2XChargingCtrlr offers CentralFrequency gets a CentralFrequency TxProfile carrying
        the v2xSignalWattCurve (powers clamped to its vehicle) for `duration_s`; AFRRSignal
        then moves it. Others are listed as skipped, with the reason. Recorded in the dispatch
        history (kind "afrr-curve")."""
        if not 1 <= duration_s <= MAX_AFRR_DURATION_S:
            raise InvalidRequest(f"duration_s must be 1..{MAX_AFRR_DURATION_S}")
        if not math.isfinite(baseline_w) or abs(baseline_w) > MAX_AFRR_POWER_W:
            raise InvalidRequest(f"baseline_w must be within +-{MAX_AFRR_POWER_W:g} W")
        errors = signal_curve_errors(curve)
        if not errors and any(abs(w) > MAX_AFRR_POWER_W for _, w in curve):
            errors.append(f"curve powers must be within +-{MAX_AFRR_POWER_W:g} W")
        if errors:
            raise InvalidRequest("; ".join(errors))
        plugged = {p.vehicle.station_id: p for p in await self._plugged() if p.vehicle.station_id}
        if station_ids is None:
            targets = sorted(plugged)
        else:
            if not 1 <= len(station_ids) <= 1000:
                raise InvalidRequest("give 1 to 1000 station ids")
            targets = sorted(set(station_ids))
            for station_id in targets:
                await self.require_known(station_id)
        moment = self._clock()

        async def one(station_id: str) -> dict[str, Any]:
            result: dict[str, Any] = {"station_id": station_id}
            ctx = plugged.get(station_id)
            if not await self.is_v21(station_id):
                return {**result, "status": "skipped", "reason": "OCPP 2.0.1"}
            if ctx is None or ctx.transaction.evse_id is None:
                return {**result, "status": "skipped", "reason": "no vehicle plugged in"}
            caps = await self.capabilities(station_id)
            if not (caps.enabled and OperationMode.CENTRAL_FREQUENCY in caps.operation_modes):
                return {**result, "status": "skipped", "reason": "no CentralFrequency mode"}
            v = ctx.vehicle
            discharge_kw = v.max_discharge_kw if v.v2g_enabled else 0.0
            vehicle = PowerBounds(v.max_charge_kw * 1000.0, discharge_kw * 1000.0)
            # held to the station's envelope share over the whole activation (issue 18)
            share = await self.power_caps(station_id, moment)
            end = moment + timedelta(seconds=duration_s)
            bounds, _ = held_bounds(vehicle, share, moment, end)
            powers = [baseline_w, *(w for _, w in curve)]
            if any(bounds.clamp(w) != vehicle.clamp(w) for w in powers):
                result["limited_by"] = "envelope"
            profile = v21_profile(
                [afrr_period(curve, bounds, baseline_w=baseline_w)],
                profile_id=AFRR_PROFILE_ID,
                stack_level=AFRR_STACK_LEVEL,
                start_schedule=ocpp_datetime(moment),
                duration_s=duration_s,
                transaction_id=ctx.transaction.transaction_id,
            )
            try:
                answer = await self._commands.send(
                    station_id,
                    "SetChargingProfile",
                    {"evseId": ctx.transaction.evse_id, "chargingProfile": profile},
                )
            except CsmsError as exc:
                return {**result, "status": "failed", "error": str(exc)}
            if answer.get("status") == "Accepted":  # an envelope change sends it again
                armed = ArmedService(
                    ArmedKind.AFRR,
                    ctx.transaction.transaction_id,
                    ctx.transaction.evse_id,
                    end,
                    bounds,
                    tuple((float(s), float(w)) for s, w in curve),
                    baseline_w=baseline_w,
                )
                await self.remember_armed(station_id, ArmedKind.AFRR, armed)
            return {**result, "status": str(answer.get("status"))}

        results = list(await asyncio.gather(*(one(s) for s in targets)))
        per_station = {r["station_id"]: {**r, "kw": 0.0} for r in results}
        outcome = await self._record_dispatch(
            "afrr-curve", moment, duration_s, 0.0, 0.0, per_station
        )
        return {"dispatch_id": outcome.id, "results": results}

    async def local_control(
        self,
        station_id: str,
        mode: str,
        duration_s: int,
        *,
        max_charge_w: float | None = None,
        max_discharge_w: float | None = None,
    ) -> dict[str, Any]:
        """Hand the running session of a 2.1 station to its local side for `duration_s`:
        ExternalSetpoint, ExternalLimits or LocalLoadBalancing (the station must offer the
        mode), bounded by the vehicle's limits and the optional maxima; the plan resumes when it
        ends or is cleared (`end_local_control`). InvalidRequest for a 2.0.1 station, a mode the
        station does not offer, or no running session."""
        try:
            chosen = OperationMode(mode)
        except ValueError:
            raise InvalidRequest(f"unknown operation mode {mode!r}") from None
        if chosen not in LOCAL_CONTROL_MODES:
            names = ", ".join(sorted(m.value for m in LOCAL_CONTROL_MODES))
            raise InvalidRequest(f"mode must be one of {names}")
        if not 1 <= duration_s <= MAX_AFRR_DURATION_S:
            raise InvalidRequest(f"duration_s must be 1..{MAX_AFRR_DURATION_S}")
        await self.require_v21(station_id)
        caps = await self.capabilities(station_id)
        if not (caps.enabled and chosen in caps.operation_modes):
            raise InvalidRequest(f"station {station_id!r} does not offer {chosen.value}")
        ctx = next((p for p in await self._plugged() if p.vehicle.station_id == station_id), None)
        if ctx is None or ctx.transaction.evse_id is None:
            raise InvalidRequest(f"station {station_id!r} has no vehicle session to hand over")
        v = ctx.vehicle
        discharge_kw = v.max_discharge_kw if v.v2g_enabled else 0.0
        vehicle = PowerBounds(v.max_charge_kw * 1000.0, discharge_kw * 1000.0)
        now = self._clock()
        share = await self.power_caps(station_id, now)
        bounds, limited = held_bounds(vehicle, share, now, now + timedelta(seconds=duration_s))
        try:
            period = local_control_period(
                chosen, bounds, max_charge_w=max_charge_w, max_discharge_w=max_discharge_w
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        profile = v21_profile(
            [period],
            profile_id=LOCAL_CONTROL_PROFILE_ID,
            stack_level=LOCAL_CONTROL_STACK_LEVEL,
            start_schedule=ocpp_datetime(now),
            duration_s=duration_s,
            transaction_id=ctx.transaction.transaction_id,
        )
        answer = await self._commands.send(
            station_id,
            "SetChargingProfile",
            {"evseId": ctx.transaction.evse_id, "chargingProfile": profile},
        )
        if answer.get("status") == "Accepted":  # an envelope change sends it again
            armed = ArmedService(
                ArmedKind.LOCAL_CONTROL,
                ctx.transaction.transaction_id,
                ctx.transaction.evse_id,
                now + timedelta(seconds=duration_s),
                bounds,
                mode=chosen.value,
                max_charge_w=None if max_charge_w is None else min(max_charge_w, MAX_POWER_W),
                max_discharge_w=(
                    None if max_discharge_w is None else min(max_discharge_w, MAX_POWER_W)
                ),
            )
            await self.remember_armed(station_id, ArmedKind.LOCAL_CONTROL, armed)
        out = {"station_id": station_id, "status": str(answer.get("status")), "profile": profile}
        return {**out, "limited_by": "envelope"} if limited else out

    async def end_local_control(self, station_id: str) -> dict[str, Any]:
        """Clear the local-control profile: the plan (or a dispatch) applies again."""
        await self.require_v21(station_id)
        answer = await self._commands.send(
            station_id, "ClearChargingProfile", {"chargingProfileId": LOCAL_CONTROL_PROFILE_ID}
        )
        if answer.get("status") in ("Accepted", "Unknown"):  # Unknown: it held none
            await self.remember_armed(station_id, ArmedKind.LOCAL_CONTROL, None)
        return {"station_id": station_id, "status": str(answer.get("status"))}

    # ---- periodic event streams -----------------------------------------------------------

    async def stream_command(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """GetPeriodicEventStream / AdjustPeriodicEventStream (the CSMS's two stream actions:
        the station opens and closes streams itself)."""
        if action not in ("GetPeriodicEventStream", "AdjustPeriodicEventStream"):
            raise InvalidRequest(f"{action} is not a periodic event stream action")
        await self.require_v21(station_id)
        return await self._commands.send(station_id, action, payload)

    async def request_stream(self, station_id: str, monitor: dict[str, Any]) -> dict[str, Any]:
        """Ask for a periodic event stream: SetVariableMonitoring with one monitor carrying
        `periodicEventStream` (2.1); the station then opens the stream (OpenPeriodicEventStream,
        kept by the OCPP edge) and sends its values."""
        await self.require_v21(station_id)
        return await self._commands.send(
            station_id, "SetVariableMonitoring", {"setMonitoringData": [monitor]}
        )

    async def stop_stream(self, station_id: str, monitor_id: int) -> dict[str, Any]:
        """ClearVariableMonitoring of the stream's monitor (the station closes the stream)."""
        await self.require_v21(station_id)
        return await self._commands.send(
            station_id, "ClearVariableMonitoring", {"id": [monitor_id]}
        )

    async def streams(self, station_id: str) -> list[dict[str, Any]]:
        """The streams the station opened (open and closed), as the OCPP edge keeps them."""
        await self.require_known(station_id)
        async with self._db.read() as conn:
            found = await r21.list_periodic_streams(conn, station_id)
        return [
            {
                "stream_id": s.stream_id,
                "variable_monitoring_id": s.variable_monitoring_id,
                "interval_s": s.interval_s,
                "values": s.values_per_message,
                "opened_at": s.opened_at,
                "closed_at": s.closed_at,
            }
            for s in found
        ]

    async def stream_samples(
        self,
        station_id: str,
        stream_id: int,
        limit: int = 1000,
        since: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The values of one periodic event stream (basetime + t, as the OCPP edge stored each
        NotifyPeriodicEventStream), oldest first, at most `limit` from `since`."""
        await self.require_known(station_id)
        if not 1 <= limit <= MAX_SAMPLES:
            raise InvalidRequest(f"limit must be between 1 and {MAX_SAMPLES}")
        async with self._db.read() as conn:
            found = await r21.list_stream_values(conn, station_id, stream_id, 0, limit, since)
        return [
            {"stream_id": v.stream_id, "at": v.timestamp, "value": v.value} for v in found.items
        ]
