"""SetChargingProfile rules (OCPP 2.0.1 K01, plus the OCPP 2.1 V2X and dynamic-profile fields)
and a pure, immutable store of installed profiles.

Used twice: the CSMS validates before it sends, the agent validates what it receives. Both call
`validate_profile(profile, context, evse_id=...)`; an empty list means the profile is acceptable.
`ProfileStore` applies SetChargingProfile (replace by id, K01.FR.05), ClearChargingProfile and the
GetChargingProfiles filters, each returning new values (no I/O, no clock).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from v2g_shared.schedule.envelope import envelope_violations
from v2g_shared.schedule.model import (
    PURPOSES_2_1,
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    InstalledProfile,
    OperationMode,
)

Purpose = ChargingProfilePurpose
Kind = ChargingProfileKind
_PURPOSES_2_1 = PURPOSES_2_1


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str  # requirement id, e.g. "K01.FR.35", or the device-model variable that bounds it
    message: str


@dataclass(frozen=True, slots=True)
class ValidationContext:
    """What the validator needs to know about the station.

    evse_ids: the EVSEs that exist (ids > 0). dc_evse_ids: those that are DC (K01.FR.44).
    active_transactions: evse id -> id of the transaction running there.
    stored: the profiles installed now (for K01.FR.05/.06/.39).
    from_csms: True when the profile arrives in a SetChargingProfileRequest (K01.FR.22 forbids
    the CSMS to set ChargingStationExternalConstraints); False for a local/external source.
    """

    evse_ids: frozenset[int]
    dc_evse_ids: frozenset[int] = frozenset()
    active_transactions: Mapping[int, str] = field(default_factory=dict)
    stored: tuple[InstalledProfile, ...] = ()
    supported_rate_units: frozenset[ChargingRateUnit] = frozenset(ChargingRateUnit)
    max_stack_level: int = 8  # SmartChargingCtrlr.ProfileStackLevel
    max_periods_per_schedule: int = 1024  # SmartChargingCtrlr.PeriodsPerSchedule
    max_entries: int | None = None  # SmartChargingCtrlr.Entries (None = no limit)
    negative_limit_is_discharge: bool = True  # V2XCtrlr.NegativeLimitIsDischarge
    from_csms: bool = True
    # 2.0.1 allows 2-3 schedules only after ISO 15118 NotifyEVChargingNeeds; CHAdeMO has none.
    allow_multiple_schedules: bool = False
    # The OCPP version the profile travels in: False = 2.0.1 (2.1-only fields refused), True =
    # 2.1 (every 2.1 rule, station capabilities included), None = not said (the caller checked
    # the payload against its version's schema already: the 2.1 period rules still apply, the
    # station-capability rules do not; this is how the CSMS checks before sending).
    ocpp_2_1: bool | None = None
    # V2XCtrlr.SupportedOperationModes (None = every mode); only checked over 2.1.
    supported_operation_modes: frozenset[OperationMode] | None = None
    # 2.1 purposes the station can apply (a CHAdeMO station: neither PriorityCharging nor
    # LocalGeneration by default; the CSMS validating for a generic 2.1 station passes both).
    supported_2_1_purposes: frozenset[ChargingProfilePurpose] = frozenset()


def _overlap(a: ChargingProfile, b: ChargingProfile) -> bool:
    """Whether the validity intervals [validFrom, validTo) intersect (None = unbounded)."""
    if a.valid_from is not None and b.valid_to is not None and a.valid_from >= b.valid_to:
        return False
    return not (b.valid_from is not None and a.valid_to is not None and b.valid_from >= a.valid_to)


def validate_profile(
    profile: ChargingProfile, context: ValidationContext, *, evse_id: int
) -> list[Violation]:
    """All K01 rules `profile` (to be installed on `evse_id`) breaks; empty = valid."""
    out: list[Violation] = []

    def violation(rule: str, message: str) -> None:
        out.append(Violation(rule, message))

    purpose, kind = profile.purpose, profile.kind

    # Station and EVSE.
    if evse_id < 0 or (evse_id != 0 and evse_id not in context.evse_ids):
        violation("K01.FR.28", f"EVSE {evse_id} does not exist")
    if purpose is Purpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS and context.from_csms:
        violation("K01.FR.22", "the CSMS may not set a ChargingStationExternalConstraints profile")
    if purpose is Purpose.CHARGING_STATION_MAX_PROFILE and evse_id != 0:
        violation("ChargingStationMaxProfile.evseId", "a ChargingStationMaxProfile needs evseId 0")
    if purpose is Purpose.CHARGING_STATION_MAX_PROFILE and kind is Kind.RELATIVE:
        violation("K01.FR.38", "a ChargingStationMaxProfile cannot be Relative")

    # Transactions.
    if purpose is Purpose.TX_PROFILE:
        if evse_id <= 0:
            violation("K01.FR.16", "a TxProfile needs an evseId > 0")
        if profile.transaction_id is None:
            violation("K01.FR.03", "a TxProfile needs a transactionId")
        elif evse_id > 0:
            active = context.active_transactions.get(evse_id)
            if active is None:
                violation("K01.FR.09", f"no active transaction on EVSE {evse_id}")
            elif active != profile.transaction_id:
                violation(
                    "K01.FR.33",
                    f"transaction {profile.transaction_id!r} is not the one on EVSE {evse_id}",
                )
    elif profile.transaction_id is not None:
        violation("ChargingProfile.transactionId", "only a TxProfile may carry a transactionId")

    # Kind and timing.
    has_start = [s.start_schedule is not None for s in profile.schedules]
    if kind in (Kind.ABSOLUTE, Kind.RECURRING) and not all(has_start):
        violation("K01.FR.40", f"an {kind.value} profile needs startSchedule")
    if kind is Kind.RELATIVE and any(has_start):
        violation("K01.FR.41", "a Relative profile may not have startSchedule")
    if kind is Kind.RECURRING and profile.recurrency_kind is None:
        violation("ChargingProfile.recurrencyKind", "a Recurring profile needs recurrencyKind")
    if kind is not Kind.RECURRING and profile.recurrency_kind is not None:
        violation("ChargingProfile.recurrencyKind", "recurrencyKind only applies to Recurring")
    if (
        profile.valid_from is not None
        and profile.valid_to is not None
        and profile.valid_from >= profile.valid_to
    ):
        violation("ChargingProfile.validTo", "validTo must be after validFrom")

    if not 0 <= profile.stack_level <= context.max_stack_level:
        violation(
            "SmartChargingCtrlr.ProfileStackLevel",
            f"stackLevel {profile.stack_level} outside 0..{context.max_stack_level}",
        )
    if len(profile.schedules) > 1 and not context.allow_multiple_schedules:
        violation("K01.FR.34", "only one chargingSchedule without ISO 15118 charging needs")

    dc = evse_id in context.dc_evse_ids or (
        evse_id == 0 and bool(context.evse_ids) and context.evse_ids <= context.dc_evse_ids
    )
    for schedule in profile.schedules:
        if schedule.charging_rate_unit not in context.supported_rate_units:
            violation(
                "K01.FR.26", f"chargingRateUnit {schedule.charging_rate_unit.value} unsupported"
            )
        periods = schedule.periods
        if len(periods) > context.max_periods_per_schedule:
            violation(
                "SmartChargingCtrlr.PeriodsPerSchedule",
                f"{len(periods)} periods, at most {context.max_periods_per_schedule}",
            )
        if periods and periods[0].start_period != 0:
            violation("K01.FR.31", "the first startPeriod must be 0")
        if any(b.start_period <= a.start_period for a, b in itertools.pairwise(periods)):
            violation("K01.FR.35", "startPeriod values must strictly increase")
        if schedule.duration is not None and schedule.duration <= 0:
            violation("ChargingSchedule.duration", "duration must be positive")
        if dc and any(p.number_phases is not None or p.phase_to_use is not None for p in periods):
            violation("K01.FR.44", "numberPhases/phaseToUse are not allowed on a DC EVSE")
        if not context.negative_limit_is_discharge and any(
            p.limit is not None and p.limit < 0 for p in periods
        ):
            violation(
                "V2XCtrlr.NegativeLimitIsDischarge",
                "negative limits are only accepted when negative-limit-is-discharge is enabled",
            )

    out += _v2x_violations(profile, context)
    # The operating envelope's customData (only for profiles that carry it).
    out += [Violation(rule, message) for rule, message in envelope_violations(profile)]

    # Conflicts with installed profiles (a profile with the same id is replaced: K01.FR.05).
    others = [i for i in context.stored if i.profile.id != profile.id]
    for other in others:
        p = other.profile
        if p.stack_level != profile.stack_level or p.purpose is not purpose:
            continue
        if purpose is Purpose.TX_PROFILE:
            if p.transaction_id == profile.transaction_id:
                violation(
                    "K01.FR.39",
                    f"profile {p.id} has stackLevel {p.stack_level} for the same transaction",
                )
        elif other.evse_id == evse_id and _overlap(p, profile):
            violation(
                "K01.FR.06",
                f"profile {p.id}: same stackLevel, purpose and EVSE, overlapping validity",
            )
    if context.max_entries is not None and len(others) + 1 > context.max_entries:
        violation("SmartChargingCtrlr.Entries", f"at most {context.max_entries} profiles installed")
    return out


# Modes whose period must carry a setpoint (the target the EVSE follows).
_SETPOINT_MODES = frozenset({OperationMode.CENTRAL_SETPOINT})
# The 2.1 schema: limit is "optional only when not required by the operationMode, as in
# CentralSetpoint, ExternalSetpoint, ExternalLimits, LocalFrequency, LocalLoadBalancing" (Idle
# moves nothing, so no limit is asked of it either).
_LIMIT_MODES = frozenset({OperationMode.CHARGING_ONLY, OperationMode.CENTRAL_FREQUENCY})


def _v2x_violations(profile: ChargingProfile, context: ValidationContext) -> list[Violation]:
    """The OCPP 2.1 rules: 2.1 fields only over 2.1, a limit where the mode needs one, the
    setpoint/curve a mode works from, one period in a Dynamic profile, sane curves."""
    out: list[Violation] = []
    if context.ocpp_2_1 is False:
        if profile.uses_2_1:
            out.append(Violation("OCPP 2.0.1", "the profile uses OCPP 2.1 fields over OCPP 2.0.1"))
        return out
    if (
        context.ocpp_2_1
        and profile.purpose in _PURPOSES_2_1
        and profile.purpose not in context.supported_2_1_purposes
    ):
        out.append(
            Violation(
                "ChargingProfile.chargingProfilePurpose",
                f"{profile.purpose.value} is not supported by this station",
            )
        )
    if profile.kind is Kind.DYNAMIC:
        if any(len(s.periods) != 1 for s in profile.schedules):
            out.append(Violation("K01.Dynamic", "a Dynamic profile has exactly one period"))
    elif profile.dyn_update_interval is not None or profile.dyn_update_time is not None:
        out.append(
            Violation("ChargingProfile.dynUpdateInterval", "dynamic fields need kind Dynamic")
        )
    if profile.dyn_update_interval is not None and profile.dyn_update_interval < 0:
        out.append(Violation("ChargingProfile.dynUpdateInterval", "must be >= 0"))
    if profile.max_offline_duration is not None and profile.max_offline_duration < 0:
        out.append(Violation("ChargingProfile.maxOfflineDuration", "must be >= 0"))
    for schedule in profile.schedules:
        for period in schedule.periods:
            mode = period.mode
            where = f"period at {period.start_period} s ({mode.value})"
            if (
                context.supported_operation_modes is not None
                and mode not in context.supported_operation_modes
            ):
                out.append(
                    Violation("V2XCtrlr.SupportedOperationModes", f"{where}: mode not supported")
                )
            if mode in _LIMIT_MODES and period.limit is None:
                out.append(Violation("ChargingSchedulePeriod.limit", f"{where}: needs a limit"))
            if mode in _SETPOINT_MODES and period.setpoint is None:
                out.append(
                    Violation("ChargingSchedulePeriod.setpoint", f"{where}: needs a setpoint")
                )
            if mode is OperationMode.LOCAL_FREQUENCY and period.v2x_freq_watt_curve is None:
                out.append(
                    Violation(
                        "ChargingSchedulePeriod.v2xFreqWattCurve", f"{where}: needs the curve"
                    )
                )
            # A setpoint would be ignored in these modes: refuse it rather than drop it. (A
            # dischargeLimit is a bound, harmless anywhere, e.g. on a ChargingStationMaxProfile.)
            if mode in (OperationMode.CHARGING_ONLY, OperationMode.IDLE) and (
                period.setpoint is not None
            ):
                out.append(
                    Violation(
                        "ChargingSchedulePeriod.operationMode",
                        f"{where}: no setpoint in this mode",
                    )
                )
            if period.discharge_limit is not None and period.discharge_limit > 0:
                out.append(Violation("ChargingSchedulePeriod.dischargeLimit", "must be <= 0"))
            curve = period.v2x_freq_watt_curve
            if curve is not None and any(b[0] <= a[0] for a, b in itertools.pairwise(curve)):
                out.append(
                    Violation(
                        "ChargingSchedulePeriod.v2xFreqWattCurve",
                        f"{where}: frequencies must strictly increase",
                    )
                )
    return out


@dataclass(frozen=True, slots=True)
class ProfileStore:
    """Installed profiles, immutable: every operation returns a new store."""

    profiles: tuple[InstalledProfile, ...] = ()

    def __len__(self) -> int:
        return len(self.profiles)

    def installed(self, profile_id: int) -> InstalledProfile | None:
        return next((i for i in self.profiles if i.profile.id == profile_id), None)

    def set(self, evse_id: int, profile: ChargingProfile) -> ProfileStore:
        """SetChargingProfile after validation: a known id is replaced (K01.FR.05)."""
        kept = tuple(i for i in self.profiles if i.profile.id != profile.id)
        return ProfileStore((*kept, InstalledProfile(evse_id, profile)))

    def clear(
        self,
        *,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> tuple[ProfileStore, tuple[InstalledProfile, ...]]:
        """ClearChargingProfile: by id, or by every given criterion (none given = all).

        Returns the new store and the removed profiles (empty = status Unknown).
        """

        def matches(i: InstalledProfile) -> bool:
            if profile_id is not None:
                return i.profile.id == profile_id
            return (
                (evse_id is None or i.evse_id == evse_id)
                and (purpose is None or i.profile.purpose is purpose)
                and (stack_level is None or i.profile.stack_level == stack_level)
            )

        removed = tuple(i for i in self.profiles if matches(i))
        kept = tuple(i for i in self.profiles if not matches(i))
        return ProfileStore(kept), removed

    def end_transaction(self, transaction_id: str) -> ProfileStore:
        """Drop the TxProfiles of a transaction that ended (they apply to it only)."""
        return ProfileStore(
            tuple(
                i
                for i in self.profiles
                if not (
                    i.profile.purpose is Purpose.TX_PROFILE
                    and i.profile.transaction_id == transaction_id
                )
            )
        )

    def select(
        self,
        *,
        evse_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
        profile_ids: Iterable[int] | None = None,
    ) -> tuple[InstalledProfile, ...]:
        """GetChargingProfiles filters: every given criterion must match."""
        ids = None if profile_ids is None else frozenset(profile_ids)
        return tuple(
            i
            for i in self.profiles
            if (evse_id is None or i.evse_id == evse_id)
            and (purpose is None or i.profile.purpose is purpose)
            and (stack_level is None or i.profile.stack_level == stack_level)
            and (ids is None or i.profile.id in ids)
        )
