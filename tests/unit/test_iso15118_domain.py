"""Pure ISO 15118 rules: the EV's needs bounded, the EV's schedule against the CSMS's limits
(K15.FR.11/12), the contract verdict of Authorize (C07) and OCSP cache lifetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.domain.iso15118 import (
    LimitStep,
    OcspAnswer,
    cache_until,
    certificate_status_of,
    compare_ev_schedule,
    contract_verdict,
    parse_needs,
    worst_certificate_status,
)

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def _parse(payload: dict[str, Any]) -> Any:
    return parse_needs(
        payload,
        NOW,
        max_horizon=timedelta(hours=168),
        default_dwell=timedelta(hours=12),
        default_max_power_w=11_000.0,
        nominal_voltage_v=400.0,
    )


def test_k15_needs_ac_three_phase_power_from_current_and_phases() -> None:
    needs = _parse(
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "AC_three_phase",
                "acChargingParameters": {
                    "energyAmount": 50_000,
                    "evMinCurrent": 6,
                    "evMaxCurrent": 32,
                    "evMaxVoltage": 230,
                },
            },
        }
    )
    assert needs.max_charge_w == pytest.approx(32 * 230 * 3)
    assert needs.min_charge_w == pytest.approx(6 * 230 * 3)
    assert needs.energy_wh == 50_000
    assert needs.departure == NOW + timedelta(hours=12)  # no departure: the default dwell
    assert not needs.clamped


def test_k15_needs_v2x_parameters_of_ocpp_2_1() -> None:
    needs = _parse(
        {
            "evseId": 2,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC_BPT",
                "departureTime": (NOW + timedelta(hours=5)).isoformat(),
                "v2xChargingParameters": {
                    "maxChargePower": 11_000,
                    "maxDischargePower": 7_000,
                    "evTargetEnergyRequest": 20_000,
                    "targetSoC": 80,
                },
            },
        }
    )
    assert (needs.max_charge_w, needs.max_discharge_w, needs.energy_wh) == (11_000, 7_000, 20_000)
    assert needs.target_soc == pytest.approx(0.8)
    assert needs.departure == NOW + timedelta(hours=5) and needs.departure_from_ev


@pytest.mark.parametrize(
    ("departure", "expected"),
    [
        (NOW + timedelta(days=3650), NOW + timedelta(hours=168)),
        (NOW - timedelta(days=1), NOW + timedelta(minutes=15)),
    ],
)
def test_k15_needs_departure_clamped_and_said(departure: datetime, expected: datetime) -> None:
    needs = _parse(
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC",
                "departureTime": departure.isoformat(),
            },
        }
    )
    assert needs.departure == expected
    assert needs.clamped


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "evMaxCurrent",
                "evMaxVoltage",
                "evMaxPower",
                "energyAmount",
                "stateOfCharge",
                "evEnergyCapacity",
                "fullSoC",
            ]
        ),
        st.one_of(st.integers(-(2**31), 2**31 - 1), st.floats(allow_nan=True)),
    ),
    st.integers(-(2**31), 2**31 - 1),
)
def test_k15_needs_every_number_bounded(dc: dict[str, Any], tuples: int) -> None:
    needs = _parse(
        {
            "evseId": 1,
            "maxScheduleTuples": tuples,
            "chargingNeeds": {"requestedEnergyTransfer": "DC", "dcChargingParameters": dc},
        }
    )
    assert 0 <= needs.min_charge_w <= needs.max_charge_w <= 1_000_000
    assert needs.energy_wh is None or 0 <= needs.energy_wh <= 1_000_000
    assert needs.soc is None or 0 <= needs.soc <= 1
    assert 1 <= needs.max_schedule_tuples <= 1024
    assert 0 < needs.volts_per_amp <= 1500


STEPS = [
    LimitStep(NOW, 11_000.0),
    LimitStep(NOW + timedelta(hours=1), 3_000.0),
    LimitStep(NOW + timedelta(hours=2), None),
]


def _check(periods: list[tuple[float, float]], base: datetime = NOW, **kw: Any) -> Any:
    return compare_ev_schedule(
        periods, base, 7200.0, STEPS, time_tolerance_s=60.0, limit_tolerance=0.01, **kw
    )


def test_k15_fr11_schedule_within_limits() -> None:
    assert _check([(0, 11_000), (3600, 3_000)]).within
    assert _check([(0, 5_000)]).within is False  # 5 kW through the 3 kW hour
    assert _check([(0, 3_000)]).within


def test_k15_fr11_late_time_base_within_the_tolerance() -> None:
    # The EV's copy of the schedule, 30 s behind: still within.
    assert _check([(0, 11_000), (3600, 3_000)], NOW + timedelta(seconds=30)).within
    # Five minutes behind: holds 11 kW into the 3 kW hour.
    assert not _check([(0, 11_000), (3600, 3_000)], NOW + timedelta(minutes=5)).within


def test_k15_fr12_over_the_limit_or_discharging_against_a_charge_limit() -> None:
    verdict = _check([(0, 22_000)])
    assert not verdict.within and "outside" in verdict.reason
    assert not _check([(0, -1_000)]).within
    assert _check([(0, 11_100), (3600, 3_000)]).within  # within the 1 % rounding tolerance


def test_k15_fr12_discharge_limit_bounds_discharge() -> None:
    steps = [LimitStep(NOW, -5_000.0)]
    assert compare_ev_schedule(
        [(0, -4_000)], NOW, 600.0, steps, time_tolerance_s=0, limit_tolerance=0
    ).within
    assert not compare_ev_schedule(
        [(0, -6_000)], NOW, 600.0, steps, time_tolerance_s=0, limit_tolerance=0
    ).within


def test_k15_fr12_native_step_bounds_charge_by_limit_and_discharge_by_floor() -> None:
    """2.1: a CentralSetpoint step allows [dischargeLimit, limit]; an EV period is checked over
    all it sets (setpoint and dischargeLimit), not only its `limit`."""
    steps = [LimitStep(NOW, 11_000.0, -7_000.0), LimitStep(NOW + timedelta(hours=1), 5_000.0, 0.0)]

    def check(periods: list[Any]) -> bool:
        return compare_ev_schedule(
            periods, NOW, 7200.0, steps, time_tolerance_s=0, limit_tolerance=0
        ).within

    assert check([(0, -7_000, 11_000), (3600, 0, 5_000)])
    assert not check([(0, -7_500, 5_000)])  # discharges past the dischargeLimit
    assert not check([(0, 0, 11_000), (3600, -1, 5_000)])  # discharge where ChargingOnly
    assert not check([(0, 0, 12_000)])  # charges past the limit
    # A 2.0.1 limit of 11 kW reads as +-11 kW; the same number as a 2.1 limit with no
    # dischargeLimit allows any discharge (floor -inf) and charge up to 11 kW.
    open_floor = [LimitStep(NOW, 11_000.0, float("-inf"))]
    assert compare_ev_schedule(
        [(0, -50_000, -50_000)], NOW, 60.0, open_floor, time_tolerance_s=0, limit_tolerance=0.01
    ).within


@given(
    floor=st.floats(-1e6, 0),
    limit=st.floats(0, 1e6),
    low=st.floats(-2e6, 2e6),
    high=st.floats(-2e6, 2e6),
)
def test_k15_fr12_native_range_accepted_iff_inside(
    floor: float, limit: float, low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    verdict = compare_ev_schedule(
        [(0, low, high)],
        NOW,
        60.0,
        [LimitStep(NOW, limit, floor)],
        time_tolerance_s=0,
        limit_tolerance=0,
    )
    assert verdict.within == (floor <= low and high <= limit)


@pytest.mark.parametrize(
    ("token", "chain", "expected"),
    [
        ("Accepted", "Accepted", ("Accepted", "Accepted")),
        ("Blocked", "Accepted", ("Blocked", "ContractCancelled")),
        ("Accepted", "CertificateRevoked", ("Invalid", "CertificateRevoked")),  # C07.FR.16
        ("Accepted", "CertificateExpired", ("Expired", "CertificateExpired")),
        ("Accepted", "CertChainError", ("Invalid", "CertChainError")),
    ],
)
def test_c07_fr16_contract_verdict(token: str, chain: str, expected: tuple[str, str]) -> None:
    assert contract_verdict(token, chain) == expected


def test_c07_one_revoked_certificate_revokes_the_chain() -> None:
    assert worst_certificate_status(["Accepted", "CertificateRevoked"]) == "CertificateRevoked"
    assert worst_certificate_status(["Accepted", "CertChainError"]) == "CertChainError"
    assert worst_certificate_status(["Accepted", "Accepted"]) == "Accepted"
    assert worst_certificate_status([]) == "NoCertificateAvailable"


def test_c07_only_a_verified_good_answer_vouches() -> None:
    assert certificate_status_of(OcspAnswer("good", verified=True)) == "Accepted"
    assert certificate_status_of(OcspAnswer("good", verified=False)) == "CertChainError"
    assert certificate_status_of(OcspAnswer("revoked", verified=True)) == "CertificateRevoked"
    assert certificate_status_of(OcspAnswer("error")) == "CertChainError"


def test_ocsp_cached_until_next_update_at_most_the_maximum() -> None:
    day = timedelta(days=1)
    soon = OcspAnswer("good", b"x", NOW, NOW + timedelta(hours=2))
    assert cache_until(soon, NOW, day) == NOW + timedelta(hours=2)
    late = OcspAnswer("good", b"x", NOW, NOW + timedelta(days=30))
    assert cache_until(late, NOW, day) == NOW + day
    assert cache_until(OcspAnswer("good", b"x", NOW, None), NOW, day) is None
    assert cache_until(OcspAnswer("error"), NOW, day) is None


_limits = st.lists(st.integers(0, 50_000), min_size=1, max_size=20)
_lengths = st.lists(st.integers(61, 7200), min_size=20, max_size=20)


@given(_limits, _lengths, st.integers(-60, 60))
def test_k15_fr11_the_csms_schedule_echoed_by_the_ev_is_accepted(
    limits: list[int], lengths: list[int], shift_s: int
) -> None:
    """No false rejection: the EV following the CSMS's own limits, its time base up to the
    tolerance off, is within them."""
    offsets = [0]
    for length in lengths[: len(limits) - 1]:
        offsets.append(offsets[-1] + length)
    steps = [
        LimitStep(NOW + timedelta(seconds=o), float(v))
        for o, v in zip(offsets, limits, strict=True)
    ]
    duration = offsets[-1] + 600.0
    steps.append(LimitStep(NOW + timedelta(seconds=duration), None))
    periods = [(float(o), float(v)) for o, v in zip(offsets, limits, strict=True)]
    verdict = compare_ev_schedule(
        periods,
        NOW + timedelta(seconds=shift_s),
        duration,
        steps,
        time_tolerance_s=60.0,
        limit_tolerance=0.0,
    )
    assert verdict.within, verdict.reason


@given(_limits, _lengths, st.integers(0, 19))
def test_k15_fr12_above_every_limit_is_rejected(
    limits: list[int], lengths: list[int], pick: int
) -> None:
    offsets = [0]
    for length in lengths[: len(limits) - 1]:
        offsets.append(offsets[-1] + length)
    steps = [
        LimitStep(NOW + timedelta(seconds=o), float(v))
        for o, v in zip(offsets, limits, strict=True)
    ]
    periods = [(float(o), float(v)) for o, v in zip(offsets, limits, strict=True)]
    k = pick % len(periods)
    periods[k] = (periods[k][0], max(limits) * 1.1 + 100.0)
    verdict = compare_ev_schedule(
        periods, NOW, offsets[-1] + 600.0, steps, time_tolerance_s=60.0, limit_tolerance=0.01
    )
    assert not verdict.within
