"""ISO 15118 on the CSMS, pure: an EV's charging needs (K15-K17) read and bounded, the EV's
schedule compared with the limits the CSMS sent, and the contract-certificate verdict of
Authorize (C07). Nothing here does I/O or reads the clock.

Every number in NotifyEVChargingNeeds is the EV's (through the station): each is clamped into
a physical range before use, and each clamp is named in `EvNeeds.clamped` so the log says why
the plan differs from what the EV asked.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Physical ranges for the EV's numbers (a scooter to a megawatt truck charger).
MAX_POWER_W = 1_000_000.0
MAX_CURRENT_A = 3_000.0
MAX_VOLTAGE_V = 1_500.0
MAX_ENERGY_WH = 1_000_000.0  # 1 MWh
MIN_CAPACITY_WH = 1_000.0
# OCPP caps a schedule at 1,024 periods; an EV asking for fewer is honoured.
MAX_SCHEDULE_TUPLES = 1024
# The nearest departure planned for: an EV "leaving" now still gets a schedule to follow.
MIN_DWELL = timedelta(minutes=15)
AC_PHASES = {"AC_single_phase": 1, "AC_two_phase": 2, "AC_three_phase": 3}
AC_PHASE_VOLTAGE_V = 230.0  # when the EV gives no voltage: a nominal phase voltage


@dataclass(frozen=True)
class EvNeeds:
    """What the EV asked for, bounded. Powers in W (signed nowhere: both are magnitudes)."""

    evse_id: int
    transfer_mode: str
    departure: datetime
    departure_from_ev: bool
    max_charge_w: float
    min_charge_w: float
    max_discharge_w: float  # 0 = no discharge offered
    energy_wh: float | None  # energy the EV asks for (None: as much as it can take)
    soc: float | None  # fraction 0..1
    capacity_wh: float | None
    target_soc: float | None  # fraction, when the EV gave one (2.1 targetSoC)
    volts_per_amp: float  # W per A of this connection (voltage x phases), for A <-> W
    max_schedule_tuples: int
    clamped: tuple[str, ...] = ()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass
class _Reader:
    clamped: list[str] = field(default_factory=list)

    def get(self, source: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
        value = _number(source.get(key))
        if value is None:
            return None
        if value < low or value > high:
            bounded = min(high, max(low, value))
            self.clamped.append(f"{key} {value:g} -> {bounded:g}")
            return bounded
        return value


def parse_needs(
    payload: Mapping[str, Any],
    now: datetime,
    *,
    max_horizon: timedelta,
    default_dwell: timedelta,
    default_max_power_w: float,
    nominal_voltage_v: float,
) -> EvNeeds:
    """NotifyEVChargingNeedsRequest (2.0.1 or 2.1) -> EvNeeds, every number bounded.

    Departure: the EV's, clamped to [now + 15 min, now + max_horizon]; without one, now +
    default_dwell. Max power: 2.1 V2X maxChargePower, else DC evMaxPower, else evMaxCurrent x
    voltage (x phases on AC), else `default_max_power_w`. Discharge only from 2.1 V2X
    maxDischargePower (2.0.1 has no discharge need).
    """
    reader = _Reader()
    needs = payload.get("chargingNeeds") or {}
    mode = str(needs.get("requestedEnergyTransfer", "DC"))
    ac = needs.get("acChargingParameters") or {}
    dc = needs.get("dcChargingParameters") or {}
    v2x = needs.get("v2xChargingParameters") or {}

    departure_from_ev = False
    departure = now + default_dwell
    text = needs.get("departureTime")
    if isinstance(text, str):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            departure_from_ev = True
            departure = moment
            if moment < now + MIN_DWELL:
                departure = now + MIN_DWELL
                reader.clamped.append("departureTime before now + 15 min")
            elif moment > now + max_horizon:
                departure = now + max_horizon
                reader.clamped.append(f"departureTime beyond the {max_horizon} horizon")

    phases = AC_PHASES.get(mode, 1)
    if ac:
        voltage = reader.get(ac, "evMaxVoltage", 1.0, MAX_VOLTAGE_V) or AC_PHASE_VOLTAGE_V
        # ISO 15118-2 EVMaxVoltage on AC is the phase voltage.
        volts_per_amp = voltage * phases
    else:
        found = reader.get(dc, "evMaxVoltage", 1.0, MAX_VOLTAGE_V) or reader.get(
            v2x, "maxVoltage", 1.0, MAX_VOLTAGE_V
        )
        if found is None:
            found = AC_PHASE_VOLTAGE_V if mode in AC_PHASES else nominal_voltage_v
        volts_per_amp = found * (phases if mode in AC_PHASES else 1)

    max_w = reader.get(v2x, "maxChargePower", 0.0, MAX_POWER_W)
    if max_w is None:
        max_w = reader.get(dc, "evMaxPower", 0.0, MAX_POWER_W)
    if max_w is None:
        amps = reader.get(dc or ac, "evMaxCurrent", 0.0, MAX_CURRENT_A)
        if amps is None:
            amps = reader.get(v2x, "maxChargeCurrent", 0.0, MAX_CURRENT_A)
        max_w = None if amps is None else amps * volts_per_amp
    if max_w is None:
        max_w = default_max_power_w
    if max_w > MAX_POWER_W:  # current x voltage beyond any charger
        reader.clamped.append(f"max power {max_w:g} W -> {MAX_POWER_W:g} W")
        max_w = MAX_POWER_W
    min_w = reader.get(v2x, "minChargePower", 0.0, MAX_POWER_W)
    if min_w is None:
        amps = reader.get(ac, "evMinCurrent", 0.0, MAX_CURRENT_A)
        min_w = 0.0 if amps is None else amps * volts_per_amp
    min_w = min(min_w, max_w)
    discharge_w = reader.get(v2x, "maxDischargePower", 0.0, MAX_POWER_W)
    if discharge_w is None:
        amps = reader.get(v2x, "maxDischargeCurrent", 0.0, MAX_CURRENT_A)
        discharge_w = 0.0 if amps is None else min(MAX_POWER_W, amps * volts_per_amp)

    energy = reader.get(v2x, "evTargetEnergyRequest", 0.0, MAX_ENERGY_WH)
    if energy is None:
        energy = reader.get(dc or ac, "energyAmount", 0.0, MAX_ENERGY_WH)
    soc_pct = reader.get(dc, "stateOfCharge", 0.0, 100.0)
    capacity = reader.get(dc, "evEnergyCapacity", MIN_CAPACITY_WH, MAX_ENERGY_WH)
    target_pct = reader.get(v2x, "targetSoC", 0.0, 100.0)
    tuples_raw = _number(payload.get("maxScheduleTuples"))
    tuples = MAX_SCHEDULE_TUPLES
    if tuples_raw is not None:
        tuples = int(min(MAX_SCHEDULE_TUPLES, max(1, tuples_raw)))
    return EvNeeds(
        evse_id=int(payload["evseId"]),
        transfer_mode=mode,
        departure=departure,
        departure_from_ev=departure_from_ev,
        max_charge_w=max_w,
        min_charge_w=min_w,
        max_discharge_w=discharge_w,
        energy_wh=energy,
        soc=None if soc_pct is None else soc_pct / 100.0,
        capacity_wh=capacity,
        target_soc=None if target_pct is None else target_pct / 100.0,
        volts_per_amp=volts_per_amp,
        max_schedule_tuples=tuples,
        clamped=tuple(reader.clamped),
    )


# ---- the EV's schedule against the CSMS's limits (K15.FR.11/12, K16.FR.07, K17.FR.12) ------


@dataclass(frozen=True)
class LimitStep:
    """The CSMS's composite limit from `start` on (signed; None = no profile limit).

    `floor` is set where the limit is native OCPP 2.1 (Q): then `limit` bounds charging only
    and `floor` (<= 0; -inf = no discharge limit) bounds discharging, instead of the 2.0.1
    reading of one signed limit."""

    start: datetime
    limit: float | None
    floor: float | None = None


@dataclass(frozen=True)
class ScheduleVerdict:
    within: bool
    reason: str = ""
    at: datetime | None = None


def allowed_range(limit: float | None, floor: float | None = None) -> tuple[float, float]:
    """What a signed limit allows: +L = charge up to L; -L = discharge up to L (the 2.0.1
    convention); None = unlimited. With a 2.1 `floor`: [floor, max(0, limit)]."""
    if floor is not None:
        high = math.inf if limit is None else max(0.0, limit)
        return min(0.0, floor), high
    if limit is None:
        return -math.inf, math.inf
    return min(0.0, limit), max(0.0, limit)


def compare_ev_schedule(
    ev_periods: Sequence[tuple[float, float] | tuple[float, float, float]],
    time_base: datetime,
    duration_s: float | None,
    steps: Sequence[LimitStep],
    *,
    time_tolerance_s: float,
    limit_tolerance: float,
) -> ScheduleVerdict:
    """Whether the EV's schedule (startPeriod s from `time_base`, limit; or, for a 2.1 period
    with a setpoint / discharge limit, (start, lowest, highest) of its values) stays within the
    CSMS's composite limits `steps` (sorted by start; before the first step: unlimited).

    Tolerances: the EV may follow a change of limit up to `time_tolerance_s` late or early
    (its time base is not the CSMS's startSchedule), and exceed a limit by
    `limit_tolerance` x |limit| (rounding). Work is O((EV periods + steps) log steps): both
    lists are bounded by the schema (1,024 periods); each check point looks at the few steps
    within the tolerance.
    """
    if not ev_periods or not steps:
        return ScheduleVerdict(True)
    starts = [s.start for s in steps]
    tol = timedelta(seconds=time_tolerance_s)

    def allowed_at(t: datetime) -> tuple[float, float]:
        """The widest range allowed within [t - tol, t + tol]. A stretch with no limit counts
        only where it holds t itself: the tolerance is for the moment a limit changes, not
        for reaching back before the CSMS's profile began."""
        if starts[0] > t:
            return -math.inf, math.inf  # before the first step nothing limits
        lo, hi = math.inf, -math.inf
        i = max(0, bisect.bisect_right(starts, t - tol) - 1)
        while i < len(steps) and steps[i].start <= t + tol:
            step_end = steps[i + 1].start if i + 1 < len(steps) else None
            if step_end is None or step_end > t - tol:
                holds_t = steps[i].start <= t and (step_end is None or step_end > t)
                if steps[i].limit is not None or steps[i].floor is not None or holds_t:
                    a, b = allowed_range(steps[i].limit, steps[i].floor)
                    lo, hi = min(lo, a), max(hi, b)
            i += 1
        return lo, hi

    ordered = sorted((p[0], p[1], p[-1]) for p in ev_periods)
    for k, (offset, low, high) in enumerate(ordered):
        begin = time_base + timedelta(seconds=offset)
        stop_s = ordered[k + 1][0] if k + 1 < len(ordered) else duration_s
        if stop_s is None:  # the last period lasts as long as the CSMS's limits are known
            stop = max(begin, steps[-1].start + tol) + timedelta(seconds=1)
        else:
            stop = time_base + timedelta(seconds=stop_s)
        if stop <= begin:
            continue
        # allowed_at changes only at a step's start +- tol: check there and at the begin.
        points = {begin}
        first = bisect.bisect_right(starts, begin - tol)
        last = bisect.bisect_left(starts, stop + tol)
        for start in starts[first:last]:
            for edge in (start - tol, start + tol):
                if begin < edge < stop:
                    points.add(edge)
        for point in sorted(points):
            lo, hi = allowed_at(point)
            finite = [abs(x) for x in (lo, hi) if math.isfinite(x)]
            margin = limit_tolerance * max(finite, default=0.0)
            if high > hi + margin or low < lo - margin:
                value = high if high > hi + margin else low
                return ScheduleVerdict(
                    False,
                    f"EV limit {value:g} at {point.isoformat()} is outside "
                    f"[{lo:g}, {hi:g}] the CSMS allows",
                    point,
                )
    return ScheduleVerdict(True)


# ---- Plug & Charge: the contract-certificate verdict of Authorize (C07) ----------------------

REFUSED_TOKEN_STATUSES = frozenset({"Blocked", "Expired", "Invalid", "Unknown", "NoCredit"})


def contract_verdict(token_status: str, certificate_status: str) -> tuple[str, str]:
    """(idTokenInfo.status, certificateStatus) from the token's status and the chain's.

    Accepted chain: the token decides (a refused eMAID: ContractCancelled); revoked chain:
    Invalid + CertificateRevoked (C07.FR.16); expired: Expired + CertificateExpired; anything
    else (chain error, responder unreachable, unknown): Invalid with that status (fail closed:
    an unverified contract does not charge on the CSMS's word).
    """
    if certificate_status == "Accepted":
        if token_status in REFUSED_TOKEN_STATUSES:
            return token_status, "ContractCancelled"
        return token_status, "Accepted"
    if certificate_status == "CertificateExpired":
        return "Expired", "CertificateExpired"
    return "Invalid", certificate_status


def worst_certificate_status(statuses: Sequence[str]) -> str:
    """One status for a chain from each certificate's: revoked beats everything, then
    expired, then any other failure; Accepted only when all are."""
    if not statuses:
        return "NoCertificateAvailable"
    for worst in ("CertificateRevoked", "CertificateExpired", "SignatureError"):
        if worst in statuses:
            return worst
    failures = [s for s in statuses if s != "Accepted"]
    return failures[0] if failures else "Accepted"


@dataclass(frozen=True)
class OcspRequestData:
    """OCPP OCSPRequestDataType: a certificate named by its issuer's name and key hashes and
    its serial (hex strings), and the OCSP responder to ask."""

    hash_algorithm: str  # SHA256 / SHA384 / SHA512
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str
    responder_url: str

    @classmethod
    def from_ocpp(cls, data: Mapping[str, Any]) -> OcspRequestData:
        return cls(
            str(data["hashAlgorithm"]),
            str(data["issuerNameHash"]).lower(),
            str(data["issuerKeyHash"]).lower(),
            str(data["serialNumber"]).lower().lstrip("0") or "0",
            str(data["responderURL"]),
        )

    @property
    def cache_key(self) -> tuple[str, str, str, str]:
        return (
            self.hash_algorithm,
            self.issuer_name_hash,
            self.issuer_key_hash,
            self.serial_number,
        )


@dataclass(frozen=True)
class OcspAnswer:
    """What an OCSP responder said of one certificate. `status`: good / revoked / unknown
    (the responder's word), or error (no usable answer; `reason` says why). `verified`: the
    response's signature was checked against the issuer (or its delegated responder)."""

    status: str
    der: bytes | None = None
    this_update: datetime | None = None
    next_update: datetime | None = None
    verified: bool = False
    reason: str = ""


def cache_until(answer: OcspAnswer, now: datetime, max_age: timedelta) -> datetime | None:
    """Until when an answer may be reused: its nextUpdate, at most `max_age` from now; None
    (not cached) for errors and for answers without nextUpdate (RFC 6960 4.2.2.1: newer
    information is always available then)."""
    if answer.status == "error" or answer.next_update is None or max_age <= timedelta(0):
        return None
    until = min(answer.next_update, now + max_age)
    return until if until > now else None


def certificate_status_of(answer: OcspAnswer) -> str:
    """An OCSP answer as an AuthorizeCertificateStatus (C07): only a verified `good` is
    Accepted; an unverified or failed answer cannot vouch for a contract."""
    if answer.status == "revoked" and answer.verified:
        return "CertificateRevoked"
    if answer.status == "good" and answer.verified:
        return "Accepted"
    return "CertChainError"


@dataclass(frozen=True)
class ProviderAnswer:
    """A certificate provider's answer to Get15118EVCertificate (M01/M02): Accepted with the
    EXI response for the EV, or Failed with a reason code (<= 20 characters, StatusInfo)."""

    status: str
    exi_response: str = ""
    reason: str = ""
    detail: str = ""
    remaining_contracts: int | None = None  # ISO 15118-20 (OCPP 2.1)
