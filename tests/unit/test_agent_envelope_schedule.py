"""The operating envelope profile (envelope_wire.md) in the shared schedule model: customData
survives parse -> serialise (the agent's store), the composite bounds asymmetrically (charge up
to `limit`, discharge up to dischargeLimitW / -dischargeLimit), profiles without the envelope's
customData read exactly as before, and validation refuses a broken envelope."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v2g_shared.schedule import (
    ENVELOPE_VENDOR_ID,
    ChargingRateUnit,
    EnvelopeBounds,
    InstalledProfile,
    ValidationContext,
    envelope_bounds,
    is_envelope_profile,
    limit_at,
    profile_from_ocpp,
    profile_to_ocpp,
    v2x_at,
    validate_profile,
)
from v2g_shared.schedule.envelope import MAX_ENVELOPE_W

T0 = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
START = "2026-12-06T18:00:00.000Z"


def period(
    start: int, charge_w: float, discharge_w: Any, ramp: Any = None, **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {"vendorId": ENVELOPE_VENDOR_ID, "dischargeLimitW": discharge_w}
    if ramp is not None:
        data["rampRatePctPerS"] = ramp
    return {"startPeriod": start, "limit": charge_w, **extra, "customData": data}


def envelope(*periods: dict[str, Any], unit: str = "W") -> dict[str, Any]:
    return {
        "id": 62007,
        "stackLevel": 8,
        "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 62007,
                "startSchedule": START,
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": list(periods),
            }
        ],
        "customData": {
            "vendorId": ENVELOPE_VENDOR_ID,
            "siteId": "site-1",
            "source": "csip-aus",
            "controlId": None,
        },
    }


def tx_default(limit: float) -> dict[str, Any]:
    return {
        "id": 5,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": START,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            }
        ],
    }


def installed(*payloads: dict[str, Any]) -> list[InstalledProfile]:
    return [
        InstalledProfile(0 if p.purpose.value.startswith("ChargingStation") else 1, p)
        for p in map(profile_from_ocpp, payloads)
    ]


def composite_at(profiles: list[InstalledProfile], at: datetime, **kw: Any) -> float | None:
    value, _next = limit_at(profiles, {}, [1], evse_id=1, now=at, **kw)
    return value


def test_envelope_customdata_survives_parse_and_serialise_byte_for_byte() -> None:
    payload = envelope(period(0, 0, 5000, ramp=0.27), period(1800, 7000, 0))
    again = profile_to_ocpp(profile_from_ocpp(payload))
    assert json.dumps(again, sort_keys=True) == json.dumps(payload, sort_keys=True)
    parsed = profile_from_ocpp(payload)
    assert is_envelope_profile(parsed)
    assert (
        parsed.schedule.periods[0].custom_data
        == payload["chargingSchedule"][0]["chargingSchedulePeriod"][0]["customData"]
    )


def test_profile_without_customdata_serialises_exactly_as_before() -> None:
    payload = tx_default(-3000)
    text = json.dumps(profile_to_ocpp(profile_from_ocpp(payload)))
    assert "customData" not in text
    assert text == json.dumps(payload)
    assert profile_from_ocpp(payload).uses_2_1 is False


def test_customdata_is_not_a_2_1_field() -> None:
    assert profile_from_ocpp(envelope(period(0, 7000, 5000))).uses_2_1 is False


def test_customdata_without_vendor_id_is_a_format_error() -> None:
    payload = envelope(period(0, 7000, 5000))
    payload["customData"] = {"siteId": "x"}
    with pytest.raises(ValueError, match="vendorId"):
        profile_from_ocpp(payload)


def test_envelope_discharge_bound_is_asymmetric_on_2_0_1() -> None:
    # Import limit 0 (no charging), export limit 5 kW; the car's plan discharges 6 kW.
    profiles = installed(envelope(period(0, 0, 5000)), tx_default(-6000))
    assert composite_at(profiles, T0) == -5000
    # The plan discharges 3 kW: within the export bound, untouched.
    profiles = installed(envelope(period(0, 0, 5000)), tx_default(-3000))
    assert composite_at(profiles, T0) == -3000


def test_envelope_charge_bound_applies_to_charging_only() -> None:
    profiles = installed(envelope(period(0, 2000, 0)), tx_default(7000))
    assert composite_at(profiles, T0) == 2000
    profiles = installed(envelope(period(0, 2000, 0)), tx_default(-4000))
    assert composite_at(profiles, T0) == 0  # export bound 0: no discharge


def test_envelope_without_a_plan_charges_up_to_its_charge_bound_only() -> None:
    assert composite_at(installed(envelope(period(0, 3000, 9000))), T0) == 3000


def test_envelope_periods_change_the_bound_at_their_start() -> None:
    profiles = installed(envelope(period(0, 0, 5000), period(600, 0, 1500)), tx_default(-6000))
    value, change = limit_at(profiles, {}, [1], evse_id=1, now=T0)
    assert (value, change) == (-5000, T0 + timedelta(seconds=600))
    assert composite_at(profiles, T0 + timedelta(seconds=601)) == -1500


def test_envelope_in_amps_converts_the_discharge_bound_with_the_nominal_voltage() -> None:
    profiles = installed(envelope(period(0, 10, 4000), unit="A"), tx_default(-6000))
    assert composite_at(profiles, T0, nominal_voltage_v=400.0) == -4000
    assert composite_at(profiles, T0, unit="A", nominal_voltage_v=400.0) == -10.0


def test_native_2_1_discharge_limit_bounds_an_envelope_period() -> None:
    native = period(0, 0, 5000, dischargeLimit=-2500)
    profiles = installed(envelope(native), tx_default(-6000))
    assert composite_at(profiles, T0) == -2500  # the tighter of the two
    v2x = v2x_at(profiles, {}, [1], evse_id=1, now=T0)
    assert v2x.discharge_limit == -2500


def test_untagged_max_profile_stays_symmetric() -> None:
    plain = envelope(period(0, 2000, 5000))
    del plain["customData"]
    plain["chargingSchedule"][0]["chargingSchedulePeriod"][0].pop("customData")
    profiles = installed(plain, tx_default(-6000))
    assert composite_at(profiles, T0) == -2000


def test_unreadable_discharge_bound_reads_as_no_discharge() -> None:
    for bad in (-5, "5000", True, None):
        profiles = installed(envelope(period(0, 7000, bad)), tx_default(-6000))
        assert composite_at(profiles, T0) == 0, bad


def test_discharge_disabled_still_never_discharges() -> None:
    profiles = installed(envelope(period(0, 7000, 5000)), tx_default(-6000))
    assert composite_at(profiles, T0, discharge_enabled=False) == 0


@given(
    charge=st.floats(0, 20000),
    discharge=st.floats(0, 20000),
    plan=st.floats(-30000, 30000),
)
def test_composite_stays_within_the_envelope_in_both_directions(
    charge: float, discharge: float, plan: float
) -> None:
    profiles = installed(envelope(period(0, charge, discharge)), tx_default(plan))
    value = composite_at(profiles, T0)
    assert value is not None
    assert -discharge <= value <= charge
    # Within the envelope the plan is kept as it is.
    if -discharge <= plan <= charge:
        assert value == plan


def test_envelope_bounds_reads_the_period_in_watts() -> None:
    parsed = profile_from_ocpp(envelope(period(0, 7000, 5000, ramp=250)))
    p = parsed.schedule.periods[0]
    assert envelope_bounds(p, ChargingRateUnit.W, 400.0) == EnvelopeBounds(7000, 5000, 100.0)
    amps = profile_from_ocpp(envelope(period(0, 10, 5000, ramp=0.5), unit="A"))
    bounds = envelope_bounds(amps.schedule.periods[0], ChargingRateUnit.A, 400.0)
    assert bounds == EnvelopeBounds(4000, 5000, 0.5)
    huge = profile_from_ocpp(envelope(period(0, 1e15, 1e15)))
    assert envelope_bounds(huge.schedule.periods[0], ChargingRateUnit.W, 400.0) == (
        EnvelopeBounds(MAX_ENVELOPE_W, MAX_ENVELOPE_W, None)
    )


def test_tightest_of_two_envelopes() -> None:
    a = EnvelopeBounds(7000, None, 1.0)
    b = EnvelopeBounds(9000, 2000, None)
    assert a.tightest(b) == EnvelopeBounds(7000, 2000, 1.0)


CONTEXT = ValidationContext(evse_ids=frozenset({1}), dc_evse_ids=frozenset({1}))


def test_valid_envelope_is_accepted_on_2_0_1_and_2_1() -> None:
    parsed = profile_from_ocpp(envelope(period(0, 0, 5000, ramp=0.27), period(60, 7000, 0)))
    assert validate_profile(parsed, CONTEXT, evse_id=0) == []
    from dataclasses import replace

    assert validate_profile(parsed, replace(CONTEXT, ocpp_2_1=False), evse_id=0) == []
    native = profile_from_ocpp(envelope(period(0, 0, 5000, dischargeLimit=-5000)))
    assert validate_profile(native, replace(CONTEXT, ocpp_2_1=True), evse_id=0) == []


@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        (period(0, 7000, -1), "Envelope.dischargeLimitW"),
        (period(0, 7000, "x"), "Envelope.dischargeLimitW"),
        (period(0, 7000, 5000, ramp=0), "Envelope.rampRatePctPerS"),
        (period(0, 7000, 5000, ramp=101), "Envelope.rampRatePctPerS"),
        ({"startPeriod": 0, "limit": 7000}, "Envelope.customData"),
    ],
)
def test_broken_envelope_is_refused(bad: dict[str, Any], rule: str) -> None:
    parsed = profile_from_ocpp(envelope(bad))
    assert rule in [v.rule for v in validate_profile(parsed, CONTEXT, evse_id=0)]


def test_envelope_must_be_a_max_profile() -> None:
    payload = envelope(period(0, 7000, 5000))
    payload["chargingProfilePurpose"] = "TxDefaultProfile"
    parsed = profile_from_ocpp(payload)
    assert not is_envelope_profile(parsed)
    rules = [v.rule for v in validate_profile(parsed, CONTEXT, evse_id=1)]
    assert "Envelope.purpose" in rules
