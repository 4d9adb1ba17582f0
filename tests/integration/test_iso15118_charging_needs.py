"""ISO 15118 charging needs on the CSMS (K15-K17) over a real websocket: NotifyEVChargingNeeds
answered Accepted only when a schedule will follow, the SetChargingProfile computed from the
EV's needs, and NotifyEVChargingSchedule compared with the limits sent."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.domain.v2g_records import PriceRow
from csms.services.common import ocpp_datetime
from csms.services.v2g import v2g_service_for
from tests.support.csms_harness import Csms, connect_station, running_csms
from tests.support.csms_payloads import VALID
from tests.support.iso15118_station import needs, send, start_charging


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with running_csms(tmp_path) as running:
        await running.add_station("CS1")
        yield running


def _periods(profile: dict[str, Any]) -> list[dict[str, Any]]:
    schedule = profile["charging_schedule"][0]
    return list(schedule["charging_schedule_period"])


def _energy_wh(profile: dict[str, Any]) -> float:
    """Energy the schedule allows (W x s) over its duration."""
    schedule = profile["charging_schedule"][0]
    periods = _periods(profile)
    total = 0.0
    for k, period in enumerate(periods):
        end = periods[k + 1]["start_period"] if k + 1 < len(periods) else schedule["duration"]
        total += period["limit"] * (end - period["start_period"]) / 3600.0
    return total


async def test_k15_fr03_needs_accepted_then_tx_profile_from_the_needs(csms: Csms) -> None:
    async with connect_station(csms, "CS1") as conn:
        await start_charging(conn.station)
        departure = datetime.now(UTC) + timedelta(hours=4)
        answer = await send(
            conn.station,
            "NotifyEVChargingNeeds",
            needs(
                departureTime=ocpp_datetime(departure),
                dcChargingParameters={
                    "evMaxCurrent": 100,
                    "evMaxVoltage": 400,
                    "evMaxPower": 20_000,
                    "energyAmount": 30_000,
                    "stateOfCharge": 40,
                    "evEnergyCapacity": 60_000,
                },
            ),
        )
        assert answer["status"] == "Accepted"
        request = await conn.station.wait_for("SetChargingProfile")
    profile = request["charging_profile"]
    assert request["evse_id"] == 1
    assert profile["charging_profile_purpose"] == "TxProfile"
    assert profile["transaction_id"] == "TX1"
    limits = [p["limit"] for p in _periods(profile)]
    assert max(limits) <= 20_000 + 1e-6  # the EV's max power
    assert min(limits) >= 0  # 2.0.1 needs: no discharge offered
    # 30 kWh asked for in 4 h at up to 20 kW: the schedule allows it (charging losses
    # included), and no more than the 4 h stay.
    assert _energy_wh(profile) >= 30_000
    assert profile["charging_schedule"][0]["duration"] <= 4 * 3600 + 5
    # Default policy (no stored prices): the earliest intervals first.
    assert limits[0] == pytest.approx(20_000)


async def test_k15_fr03_optimizer_uses_stored_prices(csms: Csms) -> None:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    # Expensive for two hours, then cheap: the plan waits for the cheap hours.
    rows = [
        PriceRow(hour + timedelta(hours=k), 3600, 50.0 if k < 2 else 5.0, 0.0) for k in range(8)
    ]
    await v2g_service_for(csms.services).put_prices(rows)
    async with connect_station(csms, "CS1") as conn:
        await start_charging(conn.station)
        answer = await send(
            conn.station,
            "NotifyEVChargingNeeds",
            needs(
                departureTime=ocpp_datetime(hour + timedelta(hours=7)),
                dcChargingParameters={
                    "evMaxCurrent": 100,
                    "evMaxVoltage": 400,
                    "evMaxPower": 10_000,
                    "energyAmount": 20_000,
                    "stateOfCharge": 50,
                    "evEnergyCapacity": 60_000,
                },
            ),
        )
        assert answer["status"] == "Accepted"
        request = await conn.station.wait_for("SetChargingProfile")
    periods = _periods(request["charging_profile"])
    start = datetime.fromisoformat(
        request["charging_profile"]["charging_schedule"][0]["start_schedule"].replace("Z", "+00:00")
    )
    expensive_end = (hour + timedelta(hours=2) - start).total_seconds()
    assert all(p["limit"] == 0 for p in periods if p["start_period"] < expensive_end - 1)
    assert any(p["limit"] > 0 for p in periods)


async def test_k15_fr02_needs_without_transaction_rejected(csms: Csms) -> None:
    async with connect_station(csms, "CS1") as conn:
        await send(
            conn.station,
            "BootNotification",
            {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp"},
        )
        answer = await send(conn.station, "NotifyEVChargingNeeds", needs())
        assert answer["status"] == "Rejected"
        assert answer["statusInfo"]["reasonCode"] == "NoTransaction"
        assert not [a for a, _ in conn.station.received if a == "SetChargingProfile"]


async def test_k15_fr05_processing_when_the_plan_is_not_ready_then_profile_follows(
    tmp_path: Path,
) -> None:
    async with running_csms(tmp_path, v2g_ev_needs_answer_budget_s=0.0) as csms:
        await csms.add_station("CS1")
        async with connect_station(csms, "CS1") as conn:
            await start_charging(conn.station)
            answer = await send(conn.station, "NotifyEVChargingNeeds", needs())
            assert answer["status"] == "Processing"
            request = await conn.station.wait_for("SetChargingProfile")
    assert request["charging_profile"]["transaction_id"] == "TX1"


async def test_k15_needs_numbers_are_clamped(csms: Csms) -> None:
    """A departure ten years out and a 2 GWh request (the edge's int32 bounds allow it):
    planned up to the horizon, every number bounded."""
    async with connect_station(csms, "CS1") as conn:
        await start_charging(conn.station)
        answer = await send(
            conn.station,
            "NotifyEVChargingNeeds",
            needs(
                departureTime=ocpp_datetime(datetime.now(UTC) + timedelta(days=3650)),
                dcChargingParameters={
                    "evMaxCurrent": 2_000_000_000,
                    "evMaxVoltage": 2_000_000_000,
                    "energyAmount": 2_000_000_000,
                },
            ),
        )
        assert answer["status"] == "Accepted"
        request = await conn.station.wait_for("SetChargingProfile", timeout=10)
    schedule = request["charging_profile"]["charging_schedule"][0]
    horizon_s = csms.settings.v2g_max_horizon_h * 3600
    assert schedule["duration"] <= horizon_s + 5
    assert len(schedule["charging_schedule_period"]) <= 1024
    assert max(p["limit"] for p in schedule["charging_schedule_period"]) <= 1_000_000


async def test_k15_max_schedule_tuples_honoured(csms: Csms) -> None:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    rows = [
        PriceRow(hour + timedelta(hours=k), 3600, float(10 + (k % 2) * 40), 0.0) for k in range(12)
    ]
    await v2g_service_for(csms.services).put_prices(rows)
    async with connect_station(csms, "CS1") as conn:
        await start_charging(conn.station)
        payload = needs(
            departureTime=ocpp_datetime(hour + timedelta(hours=11)),
            dcChargingParameters={"evMaxCurrent": 20, "evMaxVoltage": 400, "energyAmount": 30_000},
        )
        payload["maxScheduleTuples"] = 3
        answer = await send(conn.station, "NotifyEVChargingNeeds", payload)
        assert answer["status"] == "Accepted"
        request = await conn.station.wait_for("SetChargingProfile")
    assert len(_periods(request["charging_profile"])) <= 3


def _ev_schedule(profile: dict[str, Any], scale: float = 1.0) -> dict[str, Any]:
    schedule = profile["charging_schedule"][0]
    return {
        "id": schedule["id"],
        "chargingRateUnit": schedule["charging_rate_unit"],
        "duration": schedule["duration"],
        "chargingSchedulePeriod": [
            {"startPeriod": p["start_period"], "limit": p["limit"] * scale}
            for p in schedule["charging_schedule_period"]
        ],
    }


async def test_k15_fr11_ev_schedule_within_limits_accepted(csms: Csms) -> None:
    async with connect_station(csms, "CS1") as conn:
        await start_charging(conn.station)
        await send(conn.station, "NotifyEVChargingNeeds", needs())
        request = await conn.station.wait_for("SetChargingProfile")
        for scale in (1.0, 0.5):
            answer = await send(
                conn.station,
                "NotifyEVChargingSchedule",
                {
                    "timeBase": ocpp_datetime(datetime.now(UTC)),
                    "evseId": 1,
                    "chargingSchedule": _ev_schedule(request["charging_profile"], scale),
                },
            )
            assert answer["status"] == "Accepted", answer
        sent = [a for a, _ in conn.station.received if a == "SetChargingProfile"]
        assert len(sent) == 1  # no renegotiation without cause


async def test_k15_fr12_k15_fr13_ev_schedule_over_limits_rejected_and_renegotiated(
    csms: Csms,
) -> None:
    async with connect_station(csms, "CS1") as conn:
        await start_charging(conn.station)
        await send(conn.station, "NotifyEVChargingNeeds", needs())
        first = await conn.station.wait_for("SetChargingProfile")
        conn.station.received.clear()
        answer = await send(
            conn.station,
            "NotifyEVChargingSchedule",
            {
                "timeBase": ocpp_datetime(datetime.now(UTC)),
                "evseId": 1,
                "chargingSchedule": _ev_schedule(first["charging_profile"], 2.0),
            },
        )
        assert answer["status"] == "Rejected"
        assert answer["statusInfo"]["reasonCode"] == "OutOfLimits"
        second = await conn.station.wait_for("SetChargingProfile")
        assert second["charging_profile"]["charging_profile_purpose"] == "TxProfile"
        assert second["charging_profile"]["transaction_id"] == "TX1"
        # The renegotiated schedule, followed by the EV, is accepted.
        answer = await send(
            conn.station,
            "NotifyEVChargingSchedule",
            {
                "timeBase": ocpp_datetime(datetime.now(UTC)),
                "evseId": 1,
                "chargingSchedule": _ev_schedule(second["charging_profile"]),
            },
        )
        assert answer["status"] == "Accepted"


async def test_k15_fr12_discharge_beyond_limits_rejected(csms: Csms) -> None:
    """A charge-only limit: an EV schedule that discharges is outside it."""
    async with connect_station(csms, "CS1") as conn:
        await start_charging(conn.station)
        await send(conn.station, "NotifyEVChargingNeeds", needs())
        first = await conn.station.wait_for("SetChargingProfile")
        schedule = _ev_schedule(first["charging_profile"])
        schedule = copy.deepcopy(schedule)
        schedule["chargingSchedulePeriod"][0]["limit"] = -3000.0
        answer = await send(
            conn.station,
            "NotifyEVChargingSchedule",
            {
                "timeBase": ocpp_datetime(datetime.now(UTC)),
                "evseId": 1,
                "chargingSchedule": schedule,
            },
        )
        assert answer["status"] == "Rejected"


async def test_k15_station_periods_per_schedule_honoured(csms: Csms) -> None:
    """K01 refuses a profile over the station's SmartChargingCtrlr.PeriodsPerSchedule: the
    plan for the EV's needs is cut to it, so the promised profile is not refused."""
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    rows = [
        PriceRow(hour + timedelta(hours=k), 3600, float(10 + (k % 2) * 40), 0.0) for k in range(12)
    ]
    await v2g_service_for(csms.services).put_prices(rows)
    report = copy.deepcopy(VALID["NotifyReport"])
    report["reportData"][0]["component"] = {"name": "SmartChargingCtrlr"}
    report["reportData"][0]["variable"] = {"name": "PeriodsPerSchedule"}
    async with connect_station(csms, "CS1") as conn:
        await start_charging(conn.station)
        await send(conn.station, "NotifyReport", report)
        payload = needs(
            departureTime=ocpp_datetime(hour + timedelta(hours=11)),
            dcChargingParameters={"evMaxCurrent": 20, "evMaxVoltage": 400, "energyAmount": 30_000},
        )
        assert (await send(conn.station, "NotifyEVChargingNeeds", payload))["status"] == "Accepted"
        request = await conn.station.wait_for("SetChargingProfile")
    assert len(_periods(request["charging_profile"])) <= 2
