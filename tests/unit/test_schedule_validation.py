"""K01 SetChargingProfile rules and the profile store (K09 get, K10 clear)."""

from __future__ import annotations

from typing import Any

import pytest

from v2g_shared.schedule import (
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    InstalledProfile,
    ProfileStore,
    ValidationContext,
    profile_from_ocpp,
    validate_profile,
)

DEFAULT_START = "2026-01-01T00:00:00Z"


def make_profile(
    profile_id: int = 1,
    purpose: str = "TxDefaultProfile",
    kind: str = "Absolute",
    periods: list[tuple[int, float]] | None = None,
    *,
    stack_level: int = 0,
    start: str | None = DEFAULT_START,
    unit: str = "W",
    duration: int | None = None,
    extra_period_fields: dict[str, Any] | None = None,
    **profile_fields: Any,
) -> ChargingProfile:
    """Build a profile through its OCPP JSON form (so the parser is exercised as well)."""
    schedule: dict[str, Any] = {
        "id": profile_id,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": s, "limit": limit, **(extra_period_fields or {})}
            for s, limit in (periods or [(0, 7000.0)])
        ],
    }
    if start is not None and kind != "Relative":
        schedule["startSchedule"] = start
    if duration is not None:
        schedule["duration"] = duration
    payload = {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule],
        **profile_fields,
    }
    return profile_from_ocpp(payload)


CONTEXT = ValidationContext(
    evse_ids=frozenset({1, 2}),
    dc_evse_ids=frozenset({1, 2}),
    active_transactions={1: "tx-1"},
)


def rules(
    profile: ChargingProfile, evse_id: int = 1, context: ValidationContext = CONTEXT
) -> set[str]:
    return {v.rule for v in validate_profile(profile, context, evse_id=evse_id)}


def test_valid_profiles_have_no_violations() -> None:
    assert rules(make_profile()) == set()
    assert rules(make_profile(purpose="ChargingStationMaxProfile"), evse_id=0) == set()
    tx = make_profile(purpose="TxProfile", kind="Relative", transactionId="tx-1")
    assert rules(tx) == set()
    daily = make_profile(kind="Recurring", recurrencyKind="Daily")
    assert rules(daily, evse_id=0) == set()


def test_k01_fr05_same_id_replaces_instead_of_conflicting() -> None:
    old = make_profile(7, periods=[(0, 1000)])
    context = ValidationContext(evse_ids=frozenset({1}), stored=(InstalledProfile(1, old),))
    new = make_profile(7, periods=[(0, 2000)])
    assert rules(new, context=context) == set()
    store = ProfileStore().set(1, old).set(1, new)
    assert len(store) == 1
    installed = store.installed(7)
    assert installed is not None
    assert installed.profile.schedule.periods[0].limit == 2000


def test_k01_fr06_same_stack_purpose_evse_with_overlapping_validity_is_rejected() -> None:
    stored = make_profile(1, validFrom="2026-01-01T00:00:00Z", validTo="2026-01-02T00:00:00Z")
    context = ValidationContext(evse_ids=frozenset({1, 2}), stored=(InstalledProfile(1, stored),))
    overlapping = make_profile(2, validFrom="2026-01-01T12:00:00Z")
    assert "K01.FR.06" in rules(overlapping, context=context)
    # Not overlapping in time, another EVSE, another stack level: all fine.
    after = make_profile(2, validFrom="2026-01-02T00:00:00Z")
    assert "K01.FR.06" not in rules(after, context=context)
    assert "K01.FR.06" not in rules(overlapping, evse_id=2, context=context)
    higher = make_profile(2, stack_level=1)
    assert "K01.FR.06" not in rules(higher, context=context)


def test_k01_fr06_new_profile_ending_exactly_when_stored_one_starts_does_not_overlap() -> None:
    # Validity is half-open [validFrom, validTo): the boundary in this direction (new before
    # stored) is the one the other test does not reach; one second more must conflict.
    stored = make_profile(1, validFrom="2026-01-02T00:00:00Z", validTo="2026-01-03T00:00:00Z")
    context = ValidationContext(evse_ids=frozenset({1}), stored=(InstalledProfile(1, stored),))
    touching = make_profile(2, validFrom="2026-01-01T00:00:00Z", validTo="2026-01-02T00:00:00Z")
    assert "K01.FR.06" not in rules(touching, context=context)
    one_second_in = make_profile(
        2, validFrom="2026-01-01T00:00:00Z", validTo="2026-01-02T00:00:01Z"
    )
    assert "K01.FR.06" in rules(one_second_in, context=context)
    # Open-ended start (no validFrom) ending at the stored start: still no overlap.
    unbounded = make_profile(2, validTo="2026-01-02T00:00:00Z")
    assert "K01.FR.06" not in rules(unbounded, context=context)


def test_k01_fr06_new_profile_starting_exactly_when_stored_one_ends_does_not_overlap() -> None:
    stored = make_profile(1, validFrom="2026-01-01T00:00:00Z", validTo="2026-01-02T00:00:00Z")
    context = ValidationContext(evse_ids=frozenset({1}), stored=(InstalledProfile(1, stored),))
    assert "K01.FR.06" not in rules(
        make_profile(2, validFrom="2026-01-02T00:00:00Z"), context=context
    )
    assert "K01.FR.06" in rules(make_profile(2, validFrom="2026-01-01T23:59:59Z"), context=context)


def test_k01_fr39_txprofile_same_stack_level_and_transaction_is_rejected() -> None:
    stored = make_profile(1, "TxProfile", "Relative", transactionId="tx-1")
    context = ValidationContext(
        evse_ids=frozenset({1}),
        active_transactions={1: "tx-1"},
        stored=(InstalledProfile(1, stored),),
    )
    assert "K01.FR.39" in rules(
        make_profile(2, "TxProfile", "Relative", transactionId="tx-1"), context=context
    )
    other_level = make_profile(2, "TxProfile", "Relative", stack_level=1, transactionId="tx-1")
    assert rules(other_level, context=context) == set()


def test_k01_fr03_txprofile_needs_transaction_id() -> None:
    assert "K01.FR.03" in rules(make_profile(purpose="TxProfile", kind="Relative"))


def test_k01_fr09_txprofile_without_active_transaction_is_rejected() -> None:
    profile = make_profile(purpose="TxProfile", kind="Relative", transactionId="tx-2")
    assert "K01.FR.09" in rules(profile, evse_id=2)


def test_k01_fr33_txprofile_for_unknown_transaction_is_rejected() -> None:
    profile = make_profile(purpose="TxProfile", kind="Relative", transactionId="other")
    assert rules(profile, evse_id=1) == {"K01.FR.33"}


def test_k01_fr16_txprofile_on_evse_0_is_rejected() -> None:
    profile = make_profile(purpose="TxProfile", kind="Relative", transactionId="tx-1")
    assert "K01.FR.16" in rules(profile, evse_id=0)


def test_k01_fr22_csms_may_not_set_external_constraints() -> None:
    profile = make_profile(purpose="ChargingStationExternalConstraints")
    assert "K01.FR.22" in rules(profile, evse_id=0)
    local = ValidationContext(evse_ids=frozenset({1}), from_csms=False)
    assert rules(profile, evse_id=0, context=local) == set()


def test_k01_fr26_unsupported_rate_unit_is_rejected() -> None:
    watts_only = ValidationContext(
        evse_ids=frozenset({1}), supported_rate_units=frozenset({ChargingRateUnit.W})
    )
    assert rules(make_profile(unit="A"), context=watts_only) == {"K01.FR.26"}
    assert rules(make_profile(unit="W"), context=watts_only) == set()


def test_k01_fr28_unknown_evse_is_rejected() -> None:
    assert "K01.FR.28" in rules(make_profile(), evse_id=3)
    assert "K01.FR.28" in rules(make_profile(), evse_id=-1)


def test_k01_fr31_first_start_period_must_be_zero() -> None:
    assert rules(make_profile(periods=[(10, 1000)])) == {"K01.FR.31"}


def test_k01_fr35_start_periods_must_increase() -> None:
    assert rules(make_profile(periods=[(0, 1), (60, 2), (60, 3)])) == {"K01.FR.35"}
    assert rules(make_profile(periods=[(0, 1), (60, 2), (30, 3)])) == {"K01.FR.35"}


def test_k01_fr38_charging_station_max_profile_is_never_relative() -> None:
    profile = make_profile(purpose="ChargingStationMaxProfile", kind="Relative")
    assert rules(profile, evse_id=0) == {"K01.FR.38"}


def test_k01_charging_station_max_profile_only_on_evse_0() -> None:
    profile = make_profile(purpose="ChargingStationMaxProfile")
    assert rules(profile, evse_id=1) == {"ChargingStationMaxProfile.evseId"}


def test_k01_fr40_absolute_and_recurring_need_start_schedule() -> None:
    assert rules(make_profile(start=None)) == {"K01.FR.40"}
    recurring = make_profile(kind="Recurring", start=None, recurrencyKind="Daily")
    assert rules(recurring) == {"K01.FR.40"}


def test_k01_fr41_relative_has_no_start_schedule() -> None:
    payload_profile = make_profile(kind="Relative")
    assert rules(payload_profile) == set()
    with_start = profile_from_ocpp(
        {
            "id": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": DEFAULT_START,
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1}],
                }
            ],
        }
    )
    assert rules(with_start) == {"K01.FR.41"}


def test_k01_fr44_dc_evse_rejects_phases() -> None:
    profile = make_profile(extra_period_fields={"numberPhases": 3})
    assert rules(profile) == {"K01.FR.44"}
    assert "K01.FR.44" in rules(profile, evse_id=0)  # every EVSE of this station is DC
    ac = ValidationContext(evse_ids=frozenset({1}), dc_evse_ids=frozenset())
    assert rules(profile, context=ac) == set()
    assert rules(make_profile(extra_period_fields={"phaseToUse": 1})) == {"K01.FR.44"}


def test_recurring_needs_recurrency_kind() -> None:
    assert rules(make_profile(kind="Recurring")) == {"ChargingProfile.recurrencyKind"}


def test_negative_limit_needs_discharge_convention() -> None:
    discharge = make_profile(periods=[(0, -5000)])
    assert rules(discharge) == set()
    off = ValidationContext(evse_ids=frozenset({1}), negative_limit_is_discharge=False)
    assert rules(discharge, context=off) == {"V2XCtrlr.NegativeLimitIsDischarge"}


def test_stack_level_periods_and_entries_limits() -> None:
    small = ValidationContext(
        evse_ids=frozenset({1}),
        max_stack_level=2,
        max_periods_per_schedule=2,
        max_entries=1,
        stored=(InstalledProfile(1, make_profile(9, stack_level=1)),),
    )
    profile = make_profile(stack_level=3, periods=[(0, 1), (10, 2), (20, 3)])
    assert rules(profile, context=small) == {
        "SmartChargingCtrlr.ProfileStackLevel",
        "SmartChargingCtrlr.PeriodsPerSchedule",
        "SmartChargingCtrlr.Entries",
    }


def test_valid_to_must_follow_valid_from() -> None:
    profile = make_profile(validFrom="2026-01-02T00:00:00Z", validTo="2026-01-01T00:00:00Z")
    assert rules(profile) == {"ChargingProfile.validTo"}


def test_transaction_id_only_on_txprofile() -> None:
    assert rules(make_profile(transactionId="tx-1")) == {"ChargingProfile.transactionId"}


def test_violation_messages_explain() -> None:
    violations = validate_profile(make_profile(periods=[(5, 1)]), CONTEXT, evse_id=7)
    assert {v.rule for v in violations} == {"K01.FR.28", "K01.FR.31"}
    assert all(v.message for v in violations)


# ---- ProfileStore: ClearChargingProfile, GetChargingProfiles, end of transaction ----


def _store() -> ProfileStore:
    store = ProfileStore()
    store = store.set(0, make_profile(1, "ChargingStationMaxProfile"))
    store = store.set(0, make_profile(2, "TxDefaultProfile"))
    store = store.set(1, make_profile(3, "TxDefaultProfile", stack_level=1))
    store = store.set(1, make_profile(4, "TxProfile", "Relative", transactionId="tx-1"))
    return store.set(2, make_profile(5, "TxProfile", "Relative", transactionId="tx-2"))


def test_k10_clear_by_id() -> None:
    store, removed = _store().clear(profile_id=3)
    assert [i.profile.id for i in removed] == [3]
    assert store.installed(3) is None
    assert len(store) == 4
    unchanged, none = store.clear(profile_id=42)
    assert none == ()
    assert unchanged == store


def test_k10_clear_by_criteria() -> None:
    store, removed = _store().clear(purpose=ChargingProfilePurpose.TX_DEFAULT_PROFILE, evse_id=0)
    assert [i.profile.id for i in removed] == [2]
    store, removed = _store().clear(stack_level=0, purpose=ChargingProfilePurpose.TX_PROFILE)
    assert sorted(i.profile.id for i in removed) == [4, 5]
    store, removed = _store().clear()
    assert len(store) == 0
    assert len(removed) == 5


def test_k09_get_charging_profiles_filters() -> None:
    store = _store()
    assert [i.profile.id for i in store.select(evse_id=1)] == [3, 4]
    assert [i.profile.id for i in store.select(purpose=ChargingProfilePurpose.TX_PROFILE)] == [4, 5]
    assert [i.profile.id for i in store.select(stack_level=1)] == [3]
    assert [i.profile.id for i in store.select(profile_ids=[1, 5, 99])] == [1, 5]
    assert store.select(evse_id=2, stack_level=1) == ()


def test_end_transaction_drops_its_txprofiles() -> None:
    store = _store().end_transaction("tx-1")
    assert store.installed(4) is None
    assert store.installed(5) is not None
    assert len(store) == 4


@pytest.mark.parametrize("evse_id", [0, 1])
def test_store_is_immutable(evse_id: int) -> None:
    store = _store()
    store.set(evse_id, make_profile(99))
    store.clear()
    assert len(store) == 5
