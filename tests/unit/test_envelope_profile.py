"""Issue 18, pure: a site's envelope timeline, each station's bounds in it, and the
ChargingStationMaxProfile that carries them (envelope_wire.md), checked by the shared K01 rules
for both OCPP versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.domain.envelopes import (
    DEFAULT_RATED_W,
    ChargerBounds,
    OperatingEnvelope,
    StationPeriod,
    envelope_profile,
    envelope_timeline,
    rated_or_default,
    station_bounds,
    station_timelines,
)
from csms.services.profiles_check import check_set_charging_profile

T0 = datetime(2026, 12, 6, 17, 0, 0, 400_000, tzinfo=UTC)
H = timedelta(hours=1)


def env(**values: Any) -> OperatingEnvelope:
    base: dict[str, Any] = {
        "site_id": "home-1",
        "source": "csip-aus",
        "control_id": "c1",
        "is_default": False,
        "start": T0,
        "end": T0 + H,
        "received_at": T0 - H,
    }
    base.update(values)
    return OperatingEnvelope(**base)


def test_timeline_periods_where_the_envelope_changes_then_the_open_default() -> None:
    default = env(control_id="d", is_default=True, start=T0 - H, end=None, export_limit_w=5000.0)
    peak = env(start=T0 + H, end=T0 + 3 * H, export_limit_w=1500.0)
    same = env(control_id="c2", start=T0 + 3 * H, end=T0 + 4 * H, export_limit_w=1500.0)
    timeline = envelope_timeline([default, peak, same], T0)
    assert [(p.start, p.end) for p in timeline] == [
        (T0, T0 + H),
        (T0 + H, T0 + 4 * H),  # two controls with the same limits: one period
        (T0 + 4 * H, None),  # the default to the end (no separate tail: same limits)
    ]
    assert [p.envelope.export_limit_w if p.envelope else None for p in timeline] == [
        5000.0,
        1500.0,
        5000.0,
    ]


def test_timeline_without_a_default_ends_with_no_envelope() -> None:
    timeline = envelope_timeline([env(start=T0 - H, end=T0 + 2 * H, import_limit_w=3000.0)], T0)
    assert [(p.start, p.end, p.envelope is None) for p in timeline] == [
        (T0, T0 + 2 * H, False),
        (T0 + 2 * H, None, True),
    ]
    far = env(start=T0 + 30 * H, end=T0 + 31 * H, export_limit_w=0.0)
    only_beyond = envelope_timeline([far], T0)
    assert [p.envelope for p in only_beyond] == [None]  # beyond 24 h: a later re-send


def test_station_bounds_share_a_limited_direction_and_rate_the_other() -> None:
    ratings = [(7400.0, 7400.0), (11000.0, 5000.0)]
    bounds = station_bounds(env(export_limit_w=4000.0), ratings)
    assert [b.max_charge_w for b in bounds] == [7400.0, 11000.0]  # no import limit
    assert sum(b.max_discharge_w for b in bounds) == pytest.approx(4000.0)
    assert bounds[0].max_discharge_w == pytest.approx(4000.0 * 7400 / 12400)
    stop = station_bounds(env(connect=False), ratings)
    assert stop == [ChargerBounds(0.0, 0.0), ChargerBounds(0.0, 0.0)]
    assert station_bounds(None, ratings) == [ChargerBounds(c, d) for c, d in ratings]


@given(
    limit=st.floats(0.0, 50_000.0),
    ratings=st.lists(
        st.tuples(st.floats(0.0, 50_000.0), st.floats(0.0, 50_000.0)), min_size=1, max_size=8
    ),
)
def test_station_shares_never_exceed_the_site_limit_nor_a_rating(
    limit: float, ratings: list[tuple[float, float]]
) -> None:
    bounds = station_bounds(env(export_limit_w=limit, import_limit_w=limit), ratings)
    assert sum(b.max_discharge_w for b in bounds) <= limit * (1 + 1e-9) + 1e-9
    assert sum(b.max_charge_w for b in bounds) <= limit * (1 + 1e-9) + 1e-9
    for b, (c, d) in zip(bounds, ratings, strict=True):
        assert 0 <= b.max_charge_w <= c + 1e-9 and 0 <= b.max_discharge_w <= d + 1e-9


def test_ratings_reported_or_the_documented_default() -> None:
    assert rated_or_default(7400.0, None) == (7400.0, 7400.0)
    assert rated_or_default(None, None) == (DEFAULT_RATED_W, DEFAULT_RATED_W)
    assert rated_or_default(float("nan"), 5e9) == (DEFAULT_RATED_W, DEFAULT_RATED_W)
    assert rated_or_default(-5.0, 3000.0) == (DEFAULT_RATED_W, 3000.0)


def _profile(ocpp_2_1: bool, **kwargs: Any) -> dict[str, Any]:
    schedule = [
        env(start=T0 - H, end=T0 + 2 * H, export_limit_w=3000.0, ramp_rate_pct_per_s=0.27),
        env(control_id="d", is_default=True, start=T0 - H, end=None, export_limit_w=6000.0),
    ]
    timeline = envelope_timeline(schedule, T0)
    periods = station_timelines(timeline, [(7000.0, 7000.0), (7000.0, 7000.0)])[0]
    built = envelope_profile(periods, site_id="home-1", now=T0, ocpp_2_1=ocpp_2_1, **kwargs)
    return built.payload


def test_wire_profile_2_0_1() -> None:
    payload = _profile(False)
    assert payload == {
        "evseId": 0,
        "chargingProfile": {
            "id": 62007,
            "stackLevel": 8,
            "chargingProfilePurpose": "ChargingStationMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 62007,
                    "startSchedule": "2026-12-06T17:00:00Z",
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [
                        {
                            "startPeriod": 0,
                            "limit": 7000.0,
                            "customData": {
                                "vendorId": "org.openv2g.envelope",
                                "dischargeLimitW": 1500.0,
                                "rampRatePctPerS": 0.27,
                            },
                        },
                        {
                            "startPeriod": 7200,  # 17:00:00 (whole seconds) to 19:00:00.4
                            "limit": 7000.0,
                            "customData": {
                                "vendorId": "org.openv2g.envelope",
                                "dischargeLimitW": 3000.0,
                            },
                        },
                    ],
                }
            ],
            "customData": {
                "vendorId": "org.openv2g.envelope",
                "siteId": "home-1",
                "source": "csip-aus",
                "controlId": "c1",
            },
        },
    }


def test_wire_profile_2_1_adds_the_native_discharge_limit() -> None:
    periods = _profile(True)["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert [p["dischargeLimit"] for p in periods] == [-1500.0, -3000.0]
    assert [p["customData"]["dischargeLimitW"] for p in periods] == [1500.0, 3000.0]


@pytest.mark.parametrize("ocpp_2_1", [False, True])
def test_wire_profile_passes_the_k01_checks(ocpp_2_1: bool) -> None:
    check_set_charging_profile(
        _profile(ocpp_2_1),
        known_evse_ids=[1],
        active_transactions={},
        stored=[],
        negative_limit_is_discharge=True,
        ocpp_2_1=ocpp_2_1,
    )


def test_more_periods_than_the_station_holds_end_with_the_tightest_rest() -> None:
    hours = [
        env(control_id=f"c{k}", start=T0 + k * H, end=T0 + (k + 1) * H, export_limit_w=1000.0 * k)
        for k in range(6)
    ]
    periods = station_timelines(envelope_timeline(hours, T0), [(7000.0, 7000.0)])[0]
    assert len(periods) == 7  # six hours, then no envelope
    built = envelope_profile(periods, site_id="s", now=T0, ocpp_2_1=False, max_periods=3)
    sent = built.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]  # type: ignore[index]
    assert [p["customData"]["dischargeLimitW"] for p in sent] == [0.0, 1000.0, 2000.0]
    assert built.resend_at == T0 + 2 * H  # where the precision was lost


def test_no_transfer_is_zero_both_ways() -> None:
    period = StationPeriod(T0, None, ChargerBounds(0.0, 0.0), None, env(energize=False))
    built = envelope_profile([period], site_id="s", now=T0, ocpp_2_1=True)
    sent = built.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]  # type: ignore[index]
    assert (sent["limit"], sent["dischargeLimit"], sent["customData"]["dischargeLimitW"]) == (
        0.0,
        0.0,
        0.0,
    )
