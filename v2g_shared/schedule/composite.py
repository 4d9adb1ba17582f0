"""The composite schedule: what each EVSE (or the whole station) may do at any moment.

A pure function of the installed profiles, the running transactions, the EVSE list and a time.
It never reads the clock: `now` / `start` are arguments.

Order of combination (as EVerest libocpp does it, see docs/ocpp.md):
1. within each purpose, the applicable profile with the highest stackLevel wins at each moment
   (a TxDefaultProfile on evse 0 applies to every EVSE; on a tie of stack levels the
   EVSE-specific profile wins over the evse-0 one);
2. TxProfile overrides TxDefaultProfile, moment by moment (where the TxProfile gives no limit,
   e.g. after its `duration`, the TxDefaultProfile applies again);
3. per EVSE, bound by the ChargingStationExternalConstraints profile of that EVSE;
4. for evseId 0, add the EVSEs (signed);
5. bound by the station-level (evse 0) ChargingStationExternalConstraints and
   ChargingStationMaxProfile. A single EVSE's composite is bounded by them too (the station
   limit is not shared out between EVSEs here; the agent's load balancer may do that).

Time rules. A profile applies in [validFrom, validTo). An Absolute schedule starts at
startSchedule; a Recurring one restarts every 24 h (Daily) or 7 x 24 h (Weekly) from startSchedule
(UTC, no daylight-saving shifts; before startSchedule it does not apply); a Relative one starts at
the start of the transaction on that EVSE (a Relative profile with no transaction on its EVSE,
or a Relative station-level ExternalConstraints profile, has no anchor and does not apply).
A schedule applies for `duration` seconds from its start; without duration its last period lasts
until the profile ends (or, for Recurring, until the next recurrence). A TxProfile applies only
while its transactionId is the transaction on its EVSE. Only the first chargingSchedule of a
profile is used (2.0.1 allows alternatives only for ISO 15118).

Units. Limits are converted to the requested unit with a nominal DC voltage:
W = A x nominal_voltage_v (CHAdeMO EVSEs are DC, so no phases are involved). Callers pass the
EVSE's nominal battery-side voltage (default 400 V); K01.FR.50's AC rule (W / (V x phases)) does
not apply to a DC EVSE.

Bidirectional (2.0.1 convention, switchable): a negative limit means discharge.
* TxProfile / TxDefaultProfile give the SIGNED setpoint: +7000 W = charge up to 7 kW,
  -5000 W = discharge at up to 5 kW.
* ExternalConstraints and ChargingStationMaxProfile BOUND it. A bound b >= 0 limits the magnitude
  in both directions: the setpoint is clamped to [-b, +b] (a max of +7 kW turns an 11 kW
  discharge into a 7 kW discharge: the grid connection and the power electronics are limited
  the same way in both directions). A bound b < 0 means "no charging; discharge allowed up to
  |b|": the setpoint is clamped to [b, 0]. A bound never asks for discharge by itself: with no
  setpoint (no Tx/TxDefault profile, read as "charge as much as allowed") the result is the upper
  end of the bound interval (b when b >= 0, 0 when b < 0).
* evse 0 adds the signed EVSE values (one EVSE discharging into another's charge nets out),
  then applies the station bounds to the sum.
* With `discharge_enabled=False` nothing is ever negative: negative setpoints and bounds read
  as 0.
`None` as a limit means no profile limits that EVSE at that moment (hardware limits only).
* Operating envelope (`envelope.py`): a bound period with the envelope's customData is
  ASYMMETRIC, [-d, +b]: b = its limit, d = the tighter of customData dischargeLimitW and
  -dischargeLimit (2.1). Other bound periods keep the symmetric rule above.

OCPP 2.1. A period without `limit` does not limit (the next profile down the stack does). A
Dynamic profile starts at its startSchedule, else at validFrom, else applies from the start
(its one period is moved by schedule updates, see model.apply_schedule_update).
PriorityCharging and LocalGeneration profiles are not combined here: a CHAdeMO station has no
priority-charging trigger and no local generation behind it (documented in the README).
`v2x_at` gives the V2X side of the same stack at a moment: the operation mode, setpoint and
curves of the winning Tx/TxDefault period and the tightest dischargeLimit of every active
profile; the caller (the agent) turns that into a target bounded by `limit_at`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from v2g_shared.schedule.envelope import envelope_discharge_bounds
from v2g_shared.schedule.model import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedulePeriod,
    InstalledProfile,
    OperationMode,
    RecurrencyKind,
    format_datetime,
)

Purpose = ChargingProfilePurpose
Kind = ChargingProfileKind

DEFAULT_NOMINAL_VOLTAGE_V = 400.0
_RECURRENCE = {
    RecurrencyKind.DAILY: timedelta(days=1),
    RecurrencyKind.WEEKLY: timedelta(days=7),
}
# limit_at looks ahead in windows this long (longer than a weekly recurrence).
_SEARCH_WINDOW = timedelta(days=8)


@dataclass(frozen=True, slots=True)
class Transaction:
    """The transaction running on an EVSE (the anchor of Relative profiles)."""

    id: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class CompositePeriod:
    """One constant stretch of the composite schedule, from `start` to the next period."""

    start: datetime
    offset_s: float  # seconds from the requested start (exact; may be fractional)
    limit: float | None  # in the requested unit; signed; None = not limited by any profile


@dataclass(frozen=True, slots=True)
class _Entry:
    """A profile as seen from one EVSE: with its anchor (for Relative) resolved."""

    profile: ChargingProfile
    anchor: datetime | None
    specific: bool  # installed on this EVSE (not on evse 0)
    offsets: tuple[timedelta, ...]

    @staticmethod
    def of(profile: ChargingProfile, anchor: datetime | None, specific: bool) -> _Entry:
        offsets = tuple(timedelta(seconds=p.start_period) for p in profile.schedule.periods)
        return _Entry(profile, anchor, specific, offsets)

    def base_at(self, t: datetime) -> datetime | None:
        """Start of the schedule occurrence that covers t (None if none does)."""
        p = self.profile
        start = p.schedule.start_schedule
        if p.kind is Kind.RELATIVE:
            return self.anchor
        if p.kind is Kind.DYNAMIC and start is None:
            return p.valid_from or datetime.min.replace(tzinfo=UTC)
        if start is None:
            return None
        if p.kind is Kind.RECURRING and p.recurrency_kind is not None:
            if t < start:
                return None
            every = _RECURRENCE[p.recurrency_kind]
            return start + every * ((t - start) // every)
        return start

    def limit_at(self, t: datetime) -> tuple[float, ChargingRateUnit] | None:
        found = self.period_at(t)
        if found is None or found[0].limit is None:
            return None
        return found[0].limit, found[1]

    def period_at(self, t: datetime) -> tuple[ChargingSchedulePeriod, ChargingRateUnit] | None:
        """The period in force at t (None = the profile does not apply at t)."""
        p = self.profile
        if (p.valid_from is not None and t < p.valid_from) or (
            p.valid_to is not None and t >= p.valid_to
        ):
            return None
        base = self.base_at(t)
        if base is None or t < base:
            return None
        elapsed = t - base
        schedule = p.schedule
        if schedule.duration is not None and elapsed >= timedelta(seconds=schedule.duration):
            return None
        index = bisect.bisect_right(self.offsets, elapsed) - 1
        if index < 0:
            return None
        return schedule.periods[index], schedule.charging_rate_unit

    def _bases(self, t0: datetime, t1: datetime) -> Iterable[datetime]:
        p = self.profile
        if p.kind is Kind.RECURRING and p.recurrency_kind is not None:
            start = p.schedule.start_schedule
            if start is None:
                return
            every = _RECURRENCE[p.recurrency_kind]
            first = max(0, (t0 - start) // every)
            last = (t1 - start) // every
            for k in range(first, last + 1):
                yield start + every * k
            return
        base = self.base_at(t0)
        if base is not None:
            yield base

    def breakpoints(self, t0: datetime, t1: datetime) -> Iterable[datetime]:
        """Every moment in (t0, t1] at which this profile's limit may change."""
        p = self.profile
        for edge in (p.valid_from, p.valid_to):
            if edge is not None and t0 < edge <= t1:
                yield edge
        schedule = p.schedule
        end = None if schedule.duration is None else timedelta(seconds=schedule.duration)
        for base in self._bases(t0, t1):
            lo = bisect.bisect_right(self.offsets, t0 - base)
            hi = bisect.bisect_right(self.offsets, t1 - base)
            for offset in self.offsets[lo:hi]:
                yield base + offset
            if end is not None and t0 < base + end <= t1:
                yield base + end

    def last_finite_breakpoint(self) -> datetime | None:
        """After this moment the profile is constant or purely periodic."""
        p = self.profile
        candidates = [e for e in (p.valid_from, p.valid_to) if e is not None]
        if p.kind is not Kind.RECURRING:
            base = self.anchor if p.kind is Kind.RELATIVE else p.schedule.start_schedule
            if base is not None:
                candidates.append(base + self.offsets[-1])
                if p.schedule.duration is not None:
                    candidates.append(base + timedelta(seconds=p.schedule.duration))
        return max(candidates, default=None)


def _first_limit(entries: Sequence[_Entry], t: datetime) -> tuple[float, ChargingRateUnit] | None:
    """Highest stack level wins (entries are sorted that way); skip those inactive at t."""
    for entry in entries:
        value = entry.limit_at(t)
        if value is not None:
            return value
    return None


def _first_bound(
    entries: Sequence[_Entry], t: datetime
) -> tuple[ChargingSchedulePeriod, ChargingRateUnit] | None:
    """As `_first_limit`, with the whole period (an envelope period bounds asymmetrically)."""
    for entry in entries:
        found = entry.period_at(t)
        if found is not None and found[0].limit is not None:
            return found
    return None


def period_in_force(
    profile: ChargingProfile, now: datetime
) -> tuple[ChargingSchedulePeriod, ChargingRateUnit] | None:
    """The period of a (not Relative) profile in force at `now`; None = it does not apply."""
    return _Entry.of(profile, None, True).period_at(now)


def _sorted(entries: Iterable[_Entry]) -> list[_Entry]:
    return sorted(entries, key=lambda e: (-e.profile.stack_level, not e.specific))


@dataclass(frozen=True, slots=True)
class _EvseStack:
    tx: list[_Entry]
    tx_default: list[_Entry]
    bounds: list[list[_Entry]]  # each list: one purpose, highest stack level first


class _Evaluator:
    """The composite as a function of time, for one station's profiles and transactions."""

    def __init__(
        self,
        profiles: Sequence[InstalledProfile],
        transactions: Mapping[int, Transaction],
        evse_ids: Iterable[int],
        unit: ChargingRateUnit | str,
        nominal_voltage_v: float,
        discharge_enabled: bool,
    ) -> None:
        self.unit = ChargingRateUnit(unit)
        self.voltage = nominal_voltage_v
        self.discharge_enabled = discharge_enabled
        self.evse_ids = sorted(set(evse_ids) - {0})
        self.stacks: dict[int, _EvseStack] = {}
        all_entries: list[_Entry] = []
        for evse in self.evse_ids:
            tx = transactions.get(evse)
            anchor = None if tx is None else tx.started_at

            def entries(
                purpose: Purpose,
                evse: int = evse,
                anchor: datetime | None = anchor,
                tx: Transaction | None = tx,
            ) -> list[_Entry]:
                return _sorted(
                    _Entry.of(i.profile, anchor, i.evse_id == evse)
                    for i in profiles
                    if i.profile.purpose is purpose
                    and (
                        i.evse_id == evse
                        or (i.evse_id == 0 and purpose is Purpose.TX_DEFAULT_PROFILE)
                    )
                    and (
                        purpose is not Purpose.TX_PROFILE
                        or (tx is not None and i.profile.transaction_id == tx.id)
                    )
                )

            stack = _EvseStack(
                tx=entries(Purpose.TX_PROFILE),
                tx_default=entries(Purpose.TX_DEFAULT_PROFILE),
                bounds=[
                    entries(Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS),
                    entries(Purpose.CHARGING_STATION_MAX_PROFILE),
                ],
            )
            self.stacks[evse] = stack
            all_entries += stack.tx + stack.tx_default
            all_entries += [e for b in stack.bounds for e in b]
        self.station_bounds = [
            _sorted(
                _Entry.of(i.profile, None, True)
                for i in profiles
                if i.evse_id == 0 and i.profile.purpose is purpose
            )
            for purpose in (
                Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
                Purpose.CHARGING_STATION_MAX_PROFILE,
            )
        ]
        all_entries += [e for b in self.station_bounds for e in b]
        self.entries = all_entries

    def _convert(self, value: tuple[float, ChargingRateUnit] | None) -> float | None:
        if value is None:
            return None
        limit, unit = value
        if unit is self.unit:
            return limit
        return limit * self.voltage if self.unit is ChargingRateUnit.W else limit / self.voltage

    def _bound(self, value: float, bound: float | None, discharge: float | None = None) -> float:
        """`value` within a bound; `discharge` (>= 0) is an envelope's own discharge bound."""
        if bound is None:
            return value
        if not self.discharge_enabled:
            return min(max(value, 0.0), max(bound, 0.0))
        low, high = (-bound, bound) if bound >= 0 else (bound, 0.0)
        if discharge is not None:
            low = -discharge if bound >= 0 else max(-discharge, bound)
            high = max(bound, 0.0)
        return min(max(value, low), high)

    def _apply_bounds(self, value: float, bounds: Sequence[Sequence[_Entry]], t: datetime) -> float:
        for entries in bounds:
            found = _first_bound(entries, t)
            if found is None:
                continue
            period, unit = found
            bound = self._convert((period.limit or 0.0, unit))  # never None: see _first_bound
            # An envelope period's own discharge bound (>= 0, converted), else None.
            own = envelope_discharge_bounds(period, unit)
            discharge = min((self._convert(b) or 0.0 for b in own), default=None)
            value = self._bound(value, bound, discharge)
        return value

    def _evse_value(self, evse: int, t: datetime) -> float:
        """Steps 1-3 for one EVSE; +inf = not limited."""
        stack = self.stacks[evse]
        setpoint = self._convert(_first_limit(stack.tx, t))
        if setpoint is None:
            setpoint = self._convert(_first_limit(stack.tx_default, t))
        value = math.inf if setpoint is None else setpoint
        if not self.discharge_enabled:
            value = max(value, 0.0)
        return self._apply_bounds(value, stack.bounds, t)

    def value(self, evse_id: int, t: datetime) -> float | None:
        if evse_id == 0:
            total = (
                math.fsum(self._evse_value(e, t) for e in self.evse_ids)
                if self.evse_ids
                else (math.inf)
            )
        else:
            total = self._evse_value(evse_id, t)
        total = self._apply_bounds(total, self.station_bounds, t)
        return None if math.isinf(total) else total

    def breakpoints(self, t0: datetime, t1: datetime) -> list[datetime]:
        points: set[datetime] = set()
        for entry in self.entries:
            points.update(entry.breakpoints(t0, t1))
        return sorted(points)

    def last_finite_breakpoint(self) -> datetime | None:
        return max(
            (b for b in (e.last_finite_breakpoint() for e in self.entries) if b is not None),
            default=None,
        )


def _check_evse(evse_id: int, evse_ids: Iterable[int]) -> None:
    if evse_id != 0 and evse_id not in set(evse_ids):
        raise ValueError(f"unknown EVSE {evse_id}")


def composite_schedule(
    profiles: Sequence[InstalledProfile],
    transactions: Mapping[int, Transaction],
    evse_ids: Iterable[int],
    *,
    evse_id: int,
    start: datetime,
    duration: int | float | timedelta,
    unit: ChargingRateUnit | str = ChargingRateUnit.W,
    nominal_voltage_v: float = DEFAULT_NOMINAL_VOLTAGE_V,
    discharge_enabled: bool = True,
) -> list[CompositePeriod]:
    """The composite schedule of `evse_id` (0 = the grid connection) over [start, start+duration).

    Consecutive equal limits are merged; the first period starts at offset 0. Raises ValueError
    for an unknown EVSE.
    """
    evse_list = list(evse_ids)
    _check_evse(evse_id, evse_list)
    span = duration if isinstance(duration, timedelta) else timedelta(seconds=duration)
    if span <= timedelta(0):
        raise ValueError("duration must be positive")
    evaluator = _Evaluator(
        profiles, transactions, evse_list, unit, nominal_voltage_v, discharge_enabled
    )
    end = start + span
    points = [start] + [p for p in evaluator.breakpoints(start, end) if p < end]
    out: list[CompositePeriod] = []
    for point in points:
        limit = evaluator.value(evse_id, point)
        if out and out[-1].limit == limit:
            continue
        out.append(CompositePeriod(point, (point - start).total_seconds(), limit))
    return out


def limit_at(
    profiles: Sequence[InstalledProfile],
    transactions: Mapping[int, Transaction],
    evse_ids: Iterable[int],
    *,
    evse_id: int,
    now: datetime,
    unit: ChargingRateUnit | str = ChargingRateUnit.W,
    nominal_voltage_v: float = DEFAULT_NOMINAL_VOLTAGE_V,
    discharge_enabled: bool = True,
) -> tuple[float | None, datetime | None]:
    """The composite limit at `now` and the next moment it changes (None = never, as installed).

    The limit is constant in [now, next_change); next_change > now. The agent sleeps until
    next_change (or until profiles/transactions change), it never polls.
    """
    evse_list = list(evse_ids)
    _check_evse(evse_id, evse_list)
    evaluator = _Evaluator(
        profiles, transactions, evse_list, unit, nominal_voltage_v, discharge_enabled
    )
    current = evaluator.value(evse_id, now)
    last_finite = evaluator.last_finite_breakpoint()
    # After the last finite breakpoint everything is constant or repeats within a week, so
    # searching one more window past it is enough.
    give_up_after = max(now, last_finite or now) + _SEARCH_WINDOW
    # Windows grow from 15 min so that a change soon is found without listing a week of
    # breakpoints of a long recurring schedule.
    t0, window = now, timedelta(minutes=15)
    while t0 < give_up_after:
        t1 = t0 + window
        for point in evaluator.breakpoints(t0, t1):
            if evaluator.value(evse_id, point) != current:
                return current, point
        t0, window = t1, min(window * 2, _SEARCH_WINDOW)
    return current, None


def composite_to_ocpp(
    periods: Sequence[CompositePeriod],
    *,
    evse_id: int,
    start: datetime,
    duration: int,
    unit: ChargingRateUnit | str,
    unlimited: float,
    round_to: Callable[[float], float] = lambda v: round(v, 1),
) -> dict[str, Any]:
    """A CompositeScheduleType JSON object for GetCompositeScheduleResponse.

    OCPP needs an integer startPeriod and a limit in every period: fractional offsets are
    rounded down to the second (a later period wins a shared second), and `unlimited` (e.g. the
    EVSE's rated power) stands for "no profile limit".
    """
    rows: list[dict[str, Any]] = []
    for period in periods:
        second = math.floor(period.offset_s)
        limit = round_to(unlimited if period.limit is None else period.limit)
        value: int | float = int(limit) if float(limit).is_integer() else limit
        if rows and rows[-1]["startPeriod"] == second:
            rows.pop()
        if rows and rows[-1]["limit"] == value:
            continue
        rows.append({"startPeriod": second, "limit": value})
    return {
        "evseId": evse_id,
        "duration": duration,
        "scheduleStart": format_datetime(start),
        "chargingRateUnit": ChargingRateUnit(unit).value,
        "chargingSchedulePeriod": rows,
    }


@dataclass(frozen=True, slots=True)
class V2xPeriod:
    """The V2X side of the composite at one moment (OCPP 2.1 Q), values in the requested unit.

    mode/setpoint/baseline/curves come from the winning TxProfile (else TxDefaultProfile) period;
    discharge_limit is the tightest (closest to 0) dischargeLimit of every profile active at that
    moment, None = none given. The power the EVSE runs at is still bounded by `limit_at`.
    """

    mode: OperationMode
    setpoint: float | None = None
    discharge_limit: float | None = None
    v2x_baseline: float | None = None
    freq_watt_curve: tuple[tuple[float, float], ...] | None = None
    signal_watt_curve: tuple[tuple[int, float], ...] | None = None
    profile_id: int | None = None
    # The winning period speaks 2.1 V2X (operationMode, setpoint or dischargeLimit given), or a
    # bound carries a dischargeLimit; False = a 2.0.1 period (negative-limit convention applies).
    native: bool = False


def v2x_at(
    profiles: Sequence[InstalledProfile],
    transactions: Mapping[int, Transaction],
    evse_ids: Iterable[int],
    *,
    evse_id: int,
    now: datetime,
    unit: ChargingRateUnit | str = ChargingRateUnit.W,
    nominal_voltage_v: float = DEFAULT_NOMINAL_VOLTAGE_V,
) -> V2xPeriod:
    """The operation mode and V2X values in force on `evse_id` (> 0) at `now`."""
    evse_list = list(evse_ids)
    if evse_id == 0:
        raise ValueError("operation modes apply per EVSE")
    _check_evse(evse_id, evse_list)
    evaluator = _Evaluator(profiles, transactions, evse_list, unit, nominal_voltage_v, True)
    stack = evaluator.stacks[evse_id]

    def convert(value: float | None, from_unit: ChargingRateUnit) -> float | None:
        return None if value is None else evaluator._convert((value, from_unit))

    winner: tuple[ChargingSchedulePeriod, ChargingRateUnit, int] | None = None
    for entries in (stack.tx, stack.tx_default):
        for entry in entries:
            found = entry.period_at(now)
            if found is not None:
                winner = (*found, entry.profile.id)
                break
        if winner is not None:
            break
    discharge: float | None = None
    every = [*stack.tx, *stack.tx_default, *(e for b in stack.bounds for e in b)]
    every += [e for b in evaluator.station_bounds for e in b]
    for entry in every:
        found = entry.period_at(now)
        if found is None or found[0].discharge_limit is None:
            continue
        value = convert(found[0].discharge_limit, found[1])
        assert value is not None
        discharge = value if discharge is None else max(discharge, value)
    if winner is None:
        return V2xPeriod(
            OperationMode.CHARGING_ONLY, discharge_limit=discharge, native=discharge is not None
        )
    period, from_unit, profile_id = winner
    native = discharge is not None or any(
        v is not None for v in (period.operation_mode, period.setpoint, period.discharge_limit)
    )

    def curve(points: tuple[tuple[Any, float], ...] | None) -> tuple[tuple[Any, float], ...] | None:
        if points is None:
            return None
        return tuple((x, convert(w, from_unit) or 0.0) for x, w in points)

    return V2xPeriod(
        mode=period.mode,
        setpoint=convert(period.setpoint, from_unit),
        discharge_limit=discharge,
        v2x_baseline=convert(period.v2x_baseline, from_unit),
        freq_watt_curve=curve(period.v2x_freq_watt_curve),
        signal_watt_curve=curve(period.v2x_signal_watt_curve),
        profile_id=profile_id,
        native=native,
    )


def next_breakpoint(
    profiles: Sequence[InstalledProfile],
    transactions: Mapping[int, Transaction],
    evse_ids: Iterable[int],
    *,
    now: datetime,
) -> datetime | None:
    """The first moment after `now` at which any period, validity or duration edge falls (within
    the search window): where a 2.1 setpoint or mode may change although the limit does not."""
    evaluator = _Evaluator(profiles, transactions, list(evse_ids), "W", 1.0, True)
    later = [p for p in evaluator.breakpoints(now, now + _SEARCH_WINDOW) if p > now]
    return later[0] if later else None
