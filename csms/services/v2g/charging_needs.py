"""ISO 15118 charging needs (K15-K17): the EV's needs planned by the optimizer and sent as the
transaction's TxProfile, and the EV's own schedule compared with the limits the CSMS sent.

Planning is bounded: the EV's numbers are clamped (csms/domain/iso15118.py), the plan spans at
most the V2G horizon in intervals of at least a minute (and MAX_PLAN_CELLS), and the solver
runs under `ev_needs_plan_timeout_s`; past that (or when the LP fails) the EV gets one period at
its max power until departure, so a schedule always follows an Accepted.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
from collections.abc import Mapping, Sequence
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
from csms.v2g.ev_v2x import (
    EvV2xLimits,
    ev_v2x_limits,
    v2x_energy_window,
)
from csms.v2g.v2x import (
    PowerBounds,
    plan_to_v21_profile,
)
from v2g_shared.schedule import (
    ChargingProfile,
    ChargingRateUnit,
    InstalledProfile,
    OperationMode,
    ProfileFormatError,
    composite_schedule,
    format_datetime,
    next_breakpoint,
    profile_from_ocpp,
    v2x_at,
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
# A V2X maximum energy request of 0 leaves no room to charge; the planner's window needs one.
MIN_SOC_CEILING = 1e-6


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
        charging_needs = payload.get("chargingNeeds")
        ev_limits = ev_v2x_limits(charging_needs if isinstance(charging_needs, dict) else {})
        session, warnings = _session_for(
            needs, vehicle, soc, moment, s.default_target_soc, ev_limits
        )
        prices, method = await self._needs_prices(moment, needs.departure)
        # 2.1 stations get native operation modes (Q); 2.0.1 ones the negative-limit convention.
        native = await self.is_v21(station_id)
        try:
            inputs = PlanInputs(now=moment, prices=prices, sessions=(session,))
            site = await asyncio.wait_for(
                asyncio.to_thread(optimize, inputs), s.ev_needs_plan_timeout_s
            )
            plan = site.vehicles[session.vehicle_id]
            if not plan.power_kw:
                raise ValueError("; ".join(plan.warnings) or "empty plan")
            if native:
                caps = await self.capabilities(station_id)
                vehicle_limits = session.vehicle
                profile = plan_to_v21_profile(
                    plan,
                    PLAN_PROFILE_ID,
                    tx.transaction_id,
                    PLAN_STACK_LEVEL,
                    PowerBounds(
                        vehicle_limits.max_charge_kw * 1000.0,
                        vehicle_limits.max_discharge_kw * 1000.0,
                    ),
                    modes=caps.operation_modes if caps.enabled and caps.operation_modes else None,
                )
            else:
                profile = to_tx_profile(plan, PLAN_PROFILE_ID, tx.transaction_id, PLAN_STACK_LEVEL)
            warnings += list(plan.warnings)
        except (TimeoutError, ValueError, RuntimeError) as exc:
            # RuntimeError covers PlanError. The EV still gets a schedule: its max power.
            method = f"fallback ({type(exc).__name__}: {exc})"
            profile = _flat_profile(needs, tx.transaction_id, moment, native=native)
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
        periods = ev_schedule_ranges(schedule["chargingSchedulePeriod"])
        if not periods:
            return ScheduleVerdict(True, "the EV's schedule sets no limit or setpoint")
        duration = schedule.get("duration")
        last = max(p[0] for p in periods)
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
        if any(_is_native(p.profile) for p in installed):
            steps = native_steps(
                installed,
                transactions,
                {e.evse_id for e in evses} | {evse_id},
                evse_id,
                composite,
                ChargingRateUnit(schedule["chargingRateUnit"]),
                volts_per_amp,
            )
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


def ev_schedule_ranges(
    periods: Sequence[Mapping[str, Any]],
) -> list[tuple[float, float, float]]:
    """Each EV schedule period as (startPeriod, lowest, highest) of what it sets: its limit
    (2.0.1, signed), and in 2.1 also its setpoint and dischargeLimit. A 2.1 period that sets
    none of them claims nothing and is left out (the schema bounds the list: 1,024)."""
    ranges: list[tuple[float, float, float]] = []
    for period in periods:
        values = [
            float(period[key])
            for key in ("limit", "setpoint", "dischargeLimit")
            if isinstance(period.get(key), int | float)
        ]
        if values:
            ranges.append((float(period["startPeriod"]), min(values), max(values)))
    return ranges


def _is_native(profile: ChargingProfile) -> bool:
    return any(
        p.operation_mode is not None or p.setpoint is not None or p.discharge_limit is not None
        for schedule in profile.schedules
        for p in schedule.periods
    )


# The EV's schedule is compared at most at this many moments where a 2.1 value may change.
MAX_NATIVE_STEPS = 2_048


def native_steps(
    installed: Sequence[InstalledProfile],
    transactions: Mapping[int, ScheduleTransaction],
    evse_ids: set[int],
    evse_id: int,
    composite: Sequence[Any],
    unit: ChargingRateUnit,
    volts_per_amp: float,
) -> list[LimitStep]:
    """The composite as 2.1 steps: at every moment a limit, mode or discharge limit changes,
    charging up to the composite limit and discharging down to the tightest dischargeLimit
    (ChargingOnly: none; Idle: neither). The walk is bounded by MAX_NATIVE_STEPS."""
    if not composite:
        return []
    start, end = composite[0].start, composite[-1].start
    moments = {p.start for p in composite}
    t = start
    while len(moments) < MAX_NATIVE_STEPS:
        found = next_breakpoint(installed, transactions, evse_ids, now=t)
        if found is None or found > end:
            break
        moments.add(found)
        t = found
    starts = [p.start for p in composite]
    steps: list[LimitStep] = []
    for moment in sorted(moments):
        limit = composite[max(0, bisect.bisect_right(starts, moment) - 1)].limit
        v2x = v2x_at(
            installed,
            transactions,
            evse_ids,
            evse_id=evse_id,
            now=moment,
            unit=unit,
            nominal_voltage_v=volts_per_amp,
        )
        if not v2x.native:
            steps.append(LimitStep(moment, limit))
        elif v2x.mode is OperationMode.IDLE:
            steps.append(LimitStep(moment, 0.0, 0.0))
        elif v2x.mode is OperationMode.CHARGING_ONLY:
            steps.append(LimitStep(moment, limit, 0.0))
        else:
            floor = -math.inf if v2x.discharge_limit is None else v2x.discharge_limit
            steps.append(LimitStep(moment, limit, floor))
    return steps


def _session_for(
    needs: EvNeeds,
    vehicle: VehicleRecord | None,
    soc: float | None,
    now: datetime,
    default_target: float,
    ev_limits: EvV2xLimits | None = None,
) -> tuple[VehicleSession, list[str]]:
    """The planner's session for the EV: its battery when its SoC and capacity are known
    (from the EV or the linked vehicle), else an "energy to deliver" battery. The EV's 2.1 V2X
    energy requests (evMin/evMaxV2XEnergyRequest) narrow the SoC window: no discharge below
    the minimum, the departure target at least the minimum and at most the maximum."""
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
        reserve = min(reserve, soc)
        soc_max = 1.0
        if vehicle is not None:
            max_kw = min(max_kw, vehicle.max_charge_kw)
            discharge_kw = min(discharge_kw, vehicle.max_discharge_kw)
        window = v2x_energy_window(soc, capacity_kwh, ev_limits or EvV2xLimits())
        if window.floor is not None:
            # Below the EV's minimum the plan only charges (the optimizer's reserve rule).
            reserve = max(reserve, window.floor)
            target = max(target, window.floor)
        if window.ceiling is not None:
            soc_max = max(window.ceiling, MIN_SOC_CEILING)
            target = min(target, window.ceiling)
        ev = Vehicle(
            vehicle_id="ev",
            capacity_kwh=capacity_kwh,
            max_charge_kw=max_kw,
            max_discharge_kw=discharge_kw,
            driving_reserve_soc=reserve,
            soc_max=soc_max,
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


def _flat_profile(
    needs: EvNeeds, transaction_id: str, now: datetime, *, native: bool = False
) -> dict[str, Any]:
    duration = max(1, round((needs.departure - now).total_seconds()))
    period: dict[str, Any] = {"startPeriod": 0, "limit": round(needs.max_charge_w, 1)}
    if native:  # 2.1: the mode named, not left to the default
        period["operationMode"] = "ChargingOnly"
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
                "chargingSchedulePeriod": [period],
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
        period = dict(period)
        # The charge the period asks for: a 2.1 setpoint, else the limit (2.0.1 and
        # ChargingOnly). Charging below the EV's minimum is raised to it (never above `limit`).
        key = "setpoint" if "setpoint" in period else "limit"
        value = period.get(key)
        if value is not None and 0 < value < needs.min_charge_w:
            raised = round(needs.min_charge_w, 1)
            if key == "setpoint" and period.get("limit") is not None:
                raised = min(raised, period["limit"])
            period[key] = raised
        if shaped and _same_but_start(shaped[-1], period):
            continue
        shaped.append(period)
    if len(shaped) > keep:
        schedule["duration"] = shaped[keep]["startPeriod"]
        shaped = shaped[:keep]
    schedule["chargingSchedulePeriod"] = shaped


def _same_but_start(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "startPeriod"} == {
        k: v for k, v in b.items() if k != "startPeriod"
    }
