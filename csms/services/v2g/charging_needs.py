"""ISO 15118 charging needs (K15-K17): the EV's needs planned by the optimizer and sent as the
transaction's TxProfile, and the EV's own schedule compared with the limits the CSMS sent.

Planning is bounded: the EV's numbers are clamped (csms/domain/iso15118.py), the plan spans at
most the V2G horizon in intervals of at least a minute (and MAX_PLAN_CELLS), and the solver
runs under `ev_needs_plan_timeout_s`; past that (or when the LP fails) the EV gets one period at
its max power until departure, so a schedule always follows an Accepted.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from csms.domain import rules
from csms.domain.errors import InvalidRequest
from csms.domain.iso15118 import (
    EvNeeds,
    LimitStep,
    ScheduleVerdict,
    compare_ev_schedule,
    parse_needs,
)
from csms.domain.models import Transaction, TransactionState
from csms.domain.v2g_records import VehicleRecord
from csms.persistence import repositories as repo
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.planning import PlanningPart
from csms.services.v2g.profiles import PLAN_PROFILE_ID, PLAN_STACK_LEVEL, SOC
from csms.services.v2g.rules import series_from_rows
from csms.v2g import PlanInputs, PriceSeries, Vehicle, VehicleSession, optimize, to_tx_profile
from csms.v2g import bounds as b
from v2g_shared.schedule import (
    ChargingRateUnit,
    InstalledProfile,
    ProfileFormatError,
    composite_schedule,
    format_datetime,
    profile_from_ocpp,
)
from v2g_shared.schedule import Transaction as ScheduleTransaction

log = logging.getLogger(__name__)

# Default policy prices (no stored prices cover the stay): a flat tariff that rises by a
# hair each interval, so the LP charges as early as it can (flat prices leave it indifferent).
DEFAULT_POLICY_PRICE_C_KWH = 30.0
DEFAULT_POLICY_RISE_C_KWH = 1e-3
# An EV schedule longer than this is compared over this span only (31 days).
MAX_COMPARED_SPAN = timedelta(days=31)
_RENEGOTIATIONS_KEPT = 10_000


class NoTransaction(LookupError):
    """No transaction runs on the EVSE: no TxProfile can be sent for these needs."""


@dataclass(frozen=True)
class NeedsPlan:
    station_id: str
    evse_id: int
    transaction_id: str
    request: dict[str, Any]  # SetChargingProfileRequest
    needs: EvNeeds
    method: str  # "optimizer (stored prices)", "optimizer (default policy)", "fallback: ..."
    warnings: tuple[str, ...]


class ChargingNeedsPart(PlanningPart):
    """NotifyEVChargingNeeds -> plan -> SetChargingProfile; NotifyEVChargingSchedule check."""

    async def transaction_on_evse(self, station_id: str, evse_id: int) -> Transaction | None:
        """The running transaction on the EVSE (rules.running_transaction_by_evse decides
        when a station left several Active)."""
        async with self._db.read() as conn:
            active = await repo.list_transactions(conn, 0, 100, station_id, TransactionState.ACTIVE)
        chosen = rules.running_transaction_by_evse(active.items).get(evse_id)
        return next((t for t in active.items if t.transaction_id == chosen), None)

    async def plan_for_needs(
        self, station_id: str, payload: dict[str, Any], now: datetime | None = None
    ) -> NeedsPlan:
        """Plan the EV's needs (NotifyEVChargingNeedsRequest) into the TxProfile to send.
        Raises NoTransaction when none runs on the EVSE."""
        moment = now or self._clock()
        s = self.settings
        needs = parse_needs(
            payload,
            moment,
            max_horizon=timedelta(hours=s.max_horizon_h),
            default_dwell=timedelta(hours=s.default_dwell_h),
            default_max_power_w=s.ev_needs_default_power_kw * 1000.0,
            nominal_voltage_v=400.0,
        )
        tx = await self.transaction_on_evse(station_id, needs.evse_id)
        if tx is None:
            raise NoTransaction(f"no transaction runs on EVSE {needs.evse_id} of {station_id}")
        if needs.clamped:
            log.info("%s EVSE %d needs clamped: %s", station_id, needs.evse_id, needs.clamped)
        vehicle = await self._linked_vehicle(station_id, needs.evse_id)
        soc = needs.soc if needs.soc is not None else await self._metered_soc(station_id, tx)
        session, warnings = _session_for(needs, vehicle, soc, moment, s.default_target_soc)
        prices, method = await self._needs_prices(moment, needs.departure)
        try:
            inputs = PlanInputs(now=moment, prices=prices, sessions=(session,))
            site = await asyncio.wait_for(
                asyncio.to_thread(optimize, inputs), s.ev_needs_plan_timeout_s
            )
            plan = site.vehicles[session.vehicle_id]
            if not plan.power_kw:
                raise ValueError("; ".join(plan.warnings) or "empty plan")
            profile = to_tx_profile(plan, PLAN_PROFILE_ID, tx.transaction_id, PLAN_STACK_LEVEL)
            warnings += list(plan.warnings)
        except (TimeoutError, ValueError, RuntimeError) as exc:
            # RuntimeError covers PlanError. The EV still gets a schedule: its max power.
            method = f"fallback ({type(exc).__name__}: {exc})"
            profile = _flat_profile(needs, tx.transaction_id, moment)
        _shape_periods(profile, needs, await self._station_max_periods(station_id))
        request = {"evseId": needs.evse_id, "chargingProfile": profile}
        return NeedsPlan(
            station_id, needs.evse_id, tx.transaction_id, request, needs, method, tuple(warnings)
        )

    async def send_needs_plan(self, plan: NeedsPlan) -> str:
        """Send the plan's SetChargingProfile; the station's status (CsmsError on failure)."""
        key = (plan.station_id, plan.evse_id)
        profile = plan.request["chargingProfile"]
        self._needs_in_flight[key] = profile
        try:
            answer = await self._commands.send(plan.station_id, "SetChargingProfile", plan.request)
        finally:
            if self._needs_in_flight.get(key) is profile:
                del self._needs_in_flight[key]
        return str(answer.get("status"))

    async def _station_max_periods(self, station_id: str) -> int | None:
        """SmartChargingCtrlr.PeriodsPerSchedule as the station reported it (K01 checks it)."""
        async with self._db.read() as conn:
            found = await repo.list_device_variables(conn, station_id, "SmartChargingCtrlr")
        for variable in found:
            if variable.variable == "PeriodsPerSchedule" and variable.attribute_type == "Actual":
                try:
                    return max(1, int(variable.value or ""))
                except ValueError:
                    return None
        return None

    async def _linked_vehicle(self, station_id: str, evse_id: int) -> VehicleRecord | None:
        async with self._db.read() as conn:
            linked = await vrepo.list_vehicles(conn, station_id)
        for record in linked:
            if record.evse_id in (None, evse_id):
                return record
        return None

    async def _metered_soc(self, station_id: str, tx: Transaction) -> float | None:
        async with self._db.read() as conn:
            found = await vrepo.latest_measurand(
                conn, station_id, SOC, tx.evse_id, tx.transaction_id
            )
        if found is None or not math.isfinite(found[1]):
            return None
        return min(1.0, max(0.0, found[1] / 100.0))

    async def _needs_prices(self, now: datetime, departure: datetime) -> tuple[PriceSeries, str]:
        """Stored prices when they cover now; else the default policy's flat tariff."""
        async with self._db.read() as conn:
            rows = await vrepo.list_prices(conn, now, departure + timedelta(days=1))
        try:
            return series_from_rows(rows, now), "optimizer (stored prices)"
        except (InvalidRequest, ValueError):  # none stored, or none covering now
            pass
        step = timedelta(seconds=self.settings.ev_needs_interval_s)
        count = max(1, math.ceil((departure - now) / step))
        count = min(count, b.MAX_PLAN_CELLS)
        rising = tuple(
            DEFAULT_POLICY_PRICE_C_KWH + DEFAULT_POLICY_RISE_C_KWH * k for k in range(count)
        )
        series = PriceSeries(now, step, rising, tuple(0.0 for _ in range(count)))
        return series, "optimizer (default policy: earliest first)"

    # ---- NotifyEVChargingSchedule -----------------------------------------------------------

    async def check_ev_schedule(
        self, station_id: str, payload: dict[str, Any], time_base: datetime
    ) -> ScheduleVerdict:
        """Whether the EV's schedule stays within the composite of the profiles the CSMS
        set on that EVSE (and on the station) for the running transaction."""
        evse_id = int(payload["evseId"])
        schedule = payload["chargingSchedule"]
        periods = [
            (float(p["startPeriod"]), float(p["limit"])) for p in schedule["chargingSchedulePeriod"]
        ]
        duration = schedule.get("duration")
        last = max(start for start, _ in periods)
        # Without a duration the last period lasts on: compared over the next day at least.
        span = timedelta(seconds=float(duration) if duration else max(last + 1.0, 86_400.0))
        span = min(max(span, timedelta(seconds=1)), MAX_COMPARED_SPAN)
        # Read before the stored profiles: a profile no longer in flight is stored by then
        # (send_needs_plan drops it only after the station's Accepted is committed).
        in_flight = self._needs_in_flight.get((station_id, evse_id))
        async with self._db.read() as conn:
            stored = await repo.list_charging_profiles(conn, station_id)
            evses = await repo.list_evses(conn, station_id)
            needs = await vrepo.latest_event(conn, station_id, ["NotifyEVChargingNeeds"])
        tx = await self.transaction_on_evse(station_id, evse_id)
        installed: list[InstalledProfile] = []
        if in_flight is not None:
            installed.append(InstalledProfile(evse_id, profile_from_ocpp(in_flight)))
        for record in stored:
            if record.evse_id not in (0, evse_id):
                continue
            if in_flight is not None and record.profile_id == in_flight["id"]:
                continue  # replaced by the one being sent
            try:
                parsed = profile_from_ocpp(record.profile)
            except ProfileFormatError:
                continue
            installed.append(InstalledProfile(record.evse_id, parsed))
        if not installed:
            return ScheduleVerdict(True, "no limits were sent for this EVSE")
        transactions = {}
        if tx is not None:
            started = tx.started_at or time_base
            transactions[evse_id] = ScheduleTransaction(tx.transaction_id, started)
        # A <-> W for an EV schedule in A: the connection's volts x phases from the EV's
        # latest needs on this EVSE (only that field of the parse is used).
        volts_per_amp = 400.0
        for _kind, _received, earlier in needs:
            if earlier.get("evseId") == evse_id:
                volts_per_amp = parse_needs(
                    earlier,
                    time_base,
                    max_horizon=timedelta(hours=1),
                    default_dwell=timedelta(hours=1),
                    default_max_power_w=1.0,
                    nominal_voltage_v=400.0,
                ).volts_per_amp
                break
        tolerance = timedelta(seconds=self.settings.ev_schedule_time_tolerance_s)
        start = time_base - tolerance
        composite = composite_schedule(
            installed,
            transactions,
            {e.evse_id for e in evses} | {evse_id},
            evse_id=evse_id,
            start=start,
            duration=span + 2 * tolerance,
            unit=ChargingRateUnit(schedule["chargingRateUnit"]),
            nominal_voltage_v=volts_per_amp,
        )
        steps = [LimitStep(p.start, p.limit) for p in composite]
        return compare_ev_schedule(
            periods,
            time_base,
            float(duration) if duration else None,
            steps,
            time_tolerance_s=self.settings.ev_schedule_time_tolerance_s,
            limit_tolerance=self.settings.ev_schedule_limit_tolerance,
        )

    async def renegotiate(self, station_id: str, evse_id: int) -> str | None:
        """K15.FR.13 / K16: after a Rejected EV schedule, plan the EV's latest needs again and
        send the new TxProfile (the station renegotiates with the EV). At most
        `ev_schedule_max_renegotiations` per transaction; None when not sent."""
        tx = await self.transaction_on_evse(station_id, evse_id)
        if tx is None:
            return None
        key = (station_id, tx.transaction_id)
        done = self._renegotiations.get(key, 0)
        if done >= self.settings.ev_schedule_max_renegotiations:
            log.info("%s %s: renegotiation limit reached", station_id, tx.transaction_id)
            return None
        self._renegotiations[key] = done + 1
        self._renegotiations.move_to_end(key)
        while len(self._renegotiations) > _RENEGOTIATIONS_KEPT:
            self._renegotiations.popitem(last=False)
        async with self._db.read() as conn:
            events = await vrepo.latest_event(conn, station_id, ["NotifyEVChargingNeeds"])
        payload = next(
            (p for _k, _r, p in events if p.get("evseId") == evse_id),
            {"evseId": evse_id, "chargingNeeds": {"requestedEnergyTransfer": "DC"}},
        )
        plan = await self.plan_for_needs(station_id, payload)
        return await self.send_needs_plan(plan)


def _session_for(
    needs: EvNeeds,
    vehicle: VehicleRecord | None,
    soc: float | None,
    now: datetime,
    default_target: float,
) -> tuple[VehicleSession, list[str]]:
    """The planner's session for the EV: its battery when its SoC and capacity are known
    (from the EV or the linked vehicle), else an "energy to deliver" battery."""
    warnings: list[str] = []
    max_kw = min(needs.max_charge_w / 1000.0, b.VEHICLE_POWER_KW.high)
    discharge_kw = min(needs.max_discharge_w / 1000.0, b.VEHICLE_POWER_KW.high)
    capacity_kwh = (
        needs.capacity_wh / 1000.0
        if needs.capacity_wh is not None
        else (vehicle.capacity_kwh if vehicle is not None else None)
    )
    hours = max(1e-3, (needs.departure - now).total_seconds() / 3600.0)
    if soc is not None and capacity_kwh is not None:
        capacity_kwh = min(max(capacity_kwh, b.CAPACITY_KWH.low), b.CAPACITY_KWH.high)
        if needs.energy_wh is not None:
            target = soc + needs.energy_wh / 1000.0 / capacity_kwh
        elif needs.target_soc is not None:
            target = needs.target_soc
        elif vehicle is not None and vehicle.target_soc is not None:
            target = vehicle.target_soc
        else:
            target = default_target
        reserve = 0.0 if vehicle is None else vehicle.driving_reserve_soc
        if vehicle is not None:
            max_kw = min(max_kw, vehicle.max_charge_kw)
            discharge_kw = min(discharge_kw, vehicle.max_discharge_kw)
        ev = Vehicle(
            vehicle_id="ev",
            capacity_kwh=capacity_kwh,
            max_charge_kw=max_kw,
            max_discharge_kw=discharge_kw,
            driving_reserve_soc=min(reserve, soc),
        )
        return VehicleSession(ev, soc, needs.departure, min(1.0, max(0.0, target))), warnings
    # No SoC: plan the energy asked for (or max power for the whole stay), no discharge.
    energy_kwh = (needs.energy_wh / 1000.0) if needs.energy_wh else max_kw * hours
    capacity = min(max(energy_kwh, b.CAPACITY_KWH.low), b.CAPACITY_KWH.high)
    if energy_kwh > b.CAPACITY_KWH.high:
        warnings.append(f"energy {energy_kwh:g} kWh planned as {capacity:g} kWh")
    ev = Vehicle(
        vehicle_id="ev",
        capacity_kwh=capacity,
        max_charge_kw=max_kw,
        max_discharge_kw=0.0,
        driving_reserve_soc=0.0,
        round_trip_efficiency=1.0,
    )
    target = min(1.0, energy_kwh / capacity)
    return VehicleSession(ev, 0.0, needs.departure, target), warnings


def _flat_profile(needs: EvNeeds, transaction_id: str, now: datetime) -> dict[str, Any]:
    duration = max(1, round((needs.departure - now).total_seconds()))
    return {
        "id": PLAN_PROFILE_ID,
        "stackLevel": PLAN_STACK_LEVEL,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "transactionId": transaction_id,
        "chargingSchedule": [
            {
                "id": PLAN_PROFILE_ID,
                "startSchedule": format_datetime(now),
                "duration": duration,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": round(needs.max_charge_w, 1)}
                ],
            }
        ],
    }


def _shape_periods(profile: dict[str, Any], needs: EvNeeds, station_max: int | None) -> None:
    """In place: a charge limit below the EV's minimum becomes that minimum (the EV cannot
    charge below it), equal neighbours merge, and at most the EV's `max_schedule_tuples` (and
    the station's PeriodsPerSchedule) periods are kept (the schedule then ends where the first
    dropped one began: the TxDefaultProfile applies after it, the next plan covers the rest)."""
    keep = min(needs.max_schedule_tuples, station_max or needs.max_schedule_tuples)
    schedule = profile["chargingSchedule"][0]
    shaped: list[dict[str, Any]] = []
    for period in schedule["chargingSchedulePeriod"]:
        limit = period["limit"]
        if 0 < limit < needs.min_charge_w:
            limit = round(needs.min_charge_w, 1)
        if shaped and shaped[-1]["limit"] == limit:
            continue
        shaped.append({**period, "limit": limit})
    if len(shaped) > keep:
        schedule["duration"] = shaped[keep]["startPeriod"]
        shaped = shaped[:keep]
    schedule["chargingSchedulePeriod"] = shaped
