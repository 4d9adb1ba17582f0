"""Control that takes effect at once: a vehicle setting changed (V2G switch, discharge limit,
departure SoC, backup reserve) is applied to the station within the same call, not at the next
re-plan, and kept only when the station accepted it; a short manual dispatch; and the live
figures Home Assistant shows (energy registers, grid frequency, price, next planned action).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from csms.domain.errors import CsmsError, InvalidRequest
from csms.domain.v2g_records import VehicleRecord
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.checks import bounded
from csms.services.v2g.fleet import Plugged
from csms.services.v2g.frequency import FrequencyPart
from csms.services.v2g.planning import PlanningPart
from csms.services.v2g.profiles import (
    DISPATCH_PROFILE_ID,
    DISPATCH_STACK_LEVEL,
    EXPORT_REGISTER,
    FREQUENCY_PROFILE_ID,
    IMPORT_REGISTER,
    PLAN_PROFILE_ID,
    PLAN_STACK_LEVEL,
)
from csms.v2g import VehiclePlan, to_tx_profile
from csms.v2g import bounds as b
from csms.v2g.armed_services import ArmedKind

log = logging.getLogger(__name__)

# A manual dispatch (Home Assistant's dispatch power) lasts at most this long on the station,
# so a dispatch nobody ends (Home Assistant gone) falls back to the plan by itself.
MANUAL_DISPATCH_MAX_S = 900
# Meter samples older than this do not count as the station's present grid frequency.
FREQUENCY_MAX_AGE = timedelta(minutes=5)


@dataclass(frozen=True)
class Applied:
    """What applying a change did at the station."""

    vehicle: VehicleRecord
    # "stored": no session to apply it to; "Accepted": a new profile runs on the station
    action: str
    status: str
    detail: str | None = None


@dataclass(frozen=True)
class NextAction:
    action: str  # charge / discharge / idle / none (no plan running)
    at: datetime | None
    power_kw: float | None


class StationRefused(CsmsError):
    """The station did not accept the change; the stored setting was left as it was."""


def _action_of(power_kw: float) -> str:
    if power_kw > 0.05:
        return "charge"
    if power_kw < -0.05:
        return "discharge"
    return "idle"


def plan_from_json(stored: dict[str, Any]) -> VehiclePlan:
    """A stored plan (rules.plan_to_json) back as the optimizer's record."""
    return VehiclePlan(
        vehicle_id=str(stored["vehicle_id"]),
        start=datetime.fromisoformat(stored["start"]),
        departure=datetime.fromisoformat(stored["departure"]),
        interval_starts=tuple(datetime.fromisoformat(s) for s in stored["interval_starts"]),
        hours=tuple(float(h) for h in stored["hours"]),
        power_kw=tuple(float(p) for p in stored["power_kw"]),
        soc_start=float(stored["soc_start"]),
        soc_after=tuple(float(s) for s in stored["soc_after"]),
        target_soc=float(stored["target_soc"]),
        target_met=bool(stored["target_met"]),
        warnings=tuple(str(w) for w in stored.get("warnings", ())),
    )


class ControlPart(PlanningPart, FrequencyPart):
    last_grid_frequency: tuple[datetime, float] | None = None

    async def apply_vehicle_settings(self, vehicle_id: str, **changes: Any) -> Applied:
        """Store the change and apply it to the station at once: a new plan (or, when no plan
        can be made, the running plan without its discharge), the dispatch and frequency
        profiles cleared when discharge is no longer allowed. When the station does not accept,
        the previous setting is stored again and StationRefused is raised."""
        before = await self.get_vehicle(vehicle_id)
        after = await self.update_vehicle(vehicle_id, **changes)
        try:
            applied = await self._apply_at_station(after)
        except CsmsError as exc:
            await self._restore(before)
            raise StationRefused(f"vehicle {vehicle_id!r}: {exc}; setting not changed") from exc
        if applied.status not in ("Accepted", "stored"):
            await self._restore(before)
            raise StationRefused(
                f"vehicle {vehicle_id!r}: station answered {applied.status}"
                f"{f' ({applied.detail})' if applied.detail else ''}; setting not changed"
            )
        return applied

    async def set_v2g_enabled(self, vehicle_id: str, enabled: bool) -> Applied:
        return await self.apply_vehicle_settings(vehicle_id, v2g_enabled=enabled)

    async def _restore(self, record: VehicleRecord) -> None:
        now = self._clock()
        await self._db.write(lambda c: vrepo.save_vehicle(c, record, now))

    async def _apply_at_station(self, record: VehicleRecord) -> Applied:
        now = self._clock()
        ctx = await self.session_context(record, now)
        tx = ctx.transaction
        if record.station_id is None or tx is None or tx.evse_id is None:
            return Applied(record, "stored", "stored")
        station_id = record.station_id
        discharge_allowed = record.v2g_enabled and record.max_discharge_kw > 0
        if not discharge_allowed:
            # Profiles above the plan may discharge: end them first (Unknown = none there).
            for profile_id in (DISPATCH_PROFILE_ID, FREQUENCY_PROFILE_ID):
                await self._commands.send(
                    station_id, "ClearChargingProfile", {"chargingProfileId": profile_id}
                )
            # the LocalFrequency profile went with it: an envelope change must not bring it back
            await self.remember_armed(station_id, ArmedKind.LOCAL_FREQUENCY, None)
        try:
            sent = await self.optimize_station(station_id, vehicle_id=record.id, now=now)
            return Applied(record, "new plan", sent.status, None)
        except InvalidRequest as exc:
            reason = str(exc)
        # No plan could be made (no prices, no SoC yet, ...): keep the running plan, without
        # its discharge when discharge is no longer allowed.
        async with self._db.read() as conn:
            last = await vrepo.latest_plan(conn, vehicle_id=record.id, sent_only=True)
        if discharge_allowed or last is None or last.transaction_id != tx.transaction_id:
            return Applied(record, "stored", "stored", reason)
        plan = plan_from_json(last.plan)
        if min(plan.power_kw, default=0.0) >= 0:
            return Applied(record, "stored", "stored", reason)
        no_export = replace(plan, power_kw=tuple(max(0.0, p) for p in plan.power_kw))
        profile = to_tx_profile(no_export, PLAN_PROFILE_ID, tx.transaction_id, PLAN_STACK_LEVEL)
        answer = await self._commands.send(
            station_id, "SetChargingProfile", {"evseId": tx.evse_id, "chargingProfile": profile}
        )
        return Applied(record, "plan without discharge", str(answer.get("status")), reason)

    async def dispatch_vehicle(self, vehicle_id: str, power_kw: float) -> dict[str, Any]:
        """A manual dispatch of one vehicle (+ charge, - discharge) for MANUAL_DISPATCH_MAX_S;
        0 ends the running one. Recorded in the dispatch history (kind "manual")."""
        bounded(abs(power_kw), b.VEHICLE_POWER_KW, "power_kw")
        record = await self.get_vehicle(vehicle_id)
        ctx = await self.session_context(record, self._clock())
        tx = ctx.transaction
        if record.station_id is None or tx is None or tx.evse_id is None or ctx.soc is None:
            raise InvalidRequest(f"vehicle {vehicle_id!r} has no active session with a SoC")
        plugged = Plugged(record, tx, ctx.soc)
        if power_kw < 0 and not (record.v2g_enabled and record.max_discharge_kw > 0):
            raise InvalidRequest(f"vehicle {vehicle_id!r}: V2G is switched off")
        limit_kw = record.max_charge_kw if power_kw > 0 else record.max_discharge_kw
        power_kw = max(-limit_kw, min(limit_kw, power_kw))
        now = self._clock()
        if power_kw == 0:
            answer = await self._commands.send(
                record.station_id,
                "ClearChargingProfile",
                {"chargingProfileId": DISPATCH_PROFILE_ID},
            )
            result = {
                "station_id": record.station_id,
                "evse_id": plugged.transaction.evse_id,
                "transaction_id": plugged.transaction.transaction_id,
                "kw": 0.0,
                "status": str(answer.get("status")),
            }
            duration_s = 0
        else:
            duration_s = MANUAL_DISPATCH_MAX_S
            result = await self._send_power(
                plugged,
                power_kw * 1000.0,
                duration_s,
                DISPATCH_PROFILE_ID,
                DISPATCH_STACK_LEVEL,
                now,
            )
        await self._record_dispatch(
            "manual", now, duration_s, power_kw, power_kw, {vehicle_id: result}
        )
        return result

    async def manual_dispatch_kw(self, vehicle_id: str) -> float:
        """The manual dispatch running on the station now (kW), 0 when none: from the
        recorded dispatches the station accepted, within their duration."""
        now = self._clock()
        vehicle = await self.get_vehicle(vehicle_id)
        # Discharge no longer allowed: the discharging profiles were cleared when it changed.
        discharge_allowed = vehicle.v2g_enabled and vehicle.max_discharge_kw > 0
        async with self._db.read() as conn:
            records = await vrepo.list_dispatches(
                conn, now - timedelta(seconds=MANUAL_DISPATCH_MAX_S), None
            )
        for record in sorted(records, key=lambda r: r.started_at, reverse=True):
            entry = record.per_vehicle.get(vehicle_id)
            if entry is None or record.kind not in ("manual", "dispatch", "frequency"):
                continue
            if entry.get("status") != "Accepted":
                continue
            if record.started_at + timedelta(seconds=record.duration_s) <= now:
                return 0.0
            kw = float(entry.get("kw", 0.0))
            return 0.0 if kw < 0 and not discharge_allowed else kw
        return 0.0

    async def energy_registers_kwh(
        self, record: VehicleRecord
    ) -> tuple[float | None, float | None]:
        """The EVSE's latest import and export energy registers (kWh; None = never sampled)."""
        if record.station_id is None:
            return None, None
        async with self._db.read() as conn:
            imp = await vrepo.latest_measurand(
                conn, record.station_id, IMPORT_REGISTER, record.evse_id
            )
            exp = await vrepo.latest_measurand(
                conn, record.station_id, EXPORT_REGISTER, record.evse_id
            )
        return (
            None if imp is None else imp[1] / 1000.0,
            None if exp is None else exp[1] / 1000.0,
        )

    async def grid_frequency_hz(self, station_id: str) -> float | None:
        """The station's latest Frequency meter value, else the latest sample given to the
        frequency rule (POST grid frequency), when recent; None when neither is."""
        now = self._clock()
        async with self._db.read() as conn:
            found = await vrepo.latest_measurand(conn, station_id, "Frequency")
        candidates = [found] if found is not None else []
        if self.last_grid_frequency is not None:
            candidates.append(self.last_grid_frequency)
        recent = [c for c in candidates if now - c[0] <= FREQUENCY_MAX_AGE]
        return max(recent, key=lambda c: c[0])[1] if recent else None

    async def grid_frequency(self, hz: float, at: datetime) -> dict[str, list[dict[str, Any]]]:
        result = await super().grid_frequency(hz, at)
        self.last_grid_frequency = (at, hz)
        return result

    async def price_now(self) -> tuple[float, float] | None:
        """(import, export) c/kWh of the stored interval holding now; None when none does."""
        now = self._clock()
        rows = await self.get_prices(now - timedelta(days=1), now + timedelta(seconds=1))
        for row in rows:
            if row.interval_start <= now < row.interval_start + timedelta(seconds=row.interval_s):
                return row.import_c_kwh, row.export_c_kwh
        return None

    async def next_action(self, record: VehicleRecord) -> NextAction:
        """The next change of direction in the plan running on the station (the latest plan
        it accepted for this vehicle): what, when and how much."""
        now = self._clock()
        async with self._db.read() as conn:
            last = await vrepo.latest_plan(conn, vehicle_id=record.id, sent_only=True)
        if last is None or last.status != "Accepted":
            return NextAction("none", None, None)
        plan = plan_from_json(last.plan)
        if now >= plan.departure:
            return NextAction("none", None, None)
        current: str | None = None
        for start, hours, power in zip(
            plan.interval_starts, plan.hours, plan.power_kw, strict=True
        ):
            begin = max(start, plan.start)
            end = begin + timedelta(hours=hours)
            if end <= now:
                continue
            action = _action_of(power)
            if begin <= now:
                current = action
                continue
            if action != current:
                return NextAction(action, begin, round(power, 2))
        return NextAction("idle", plan.departure, 0.0)
