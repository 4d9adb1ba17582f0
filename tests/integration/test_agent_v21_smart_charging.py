"""The agent's smart-charging block over OCPP 2.1, without a CSMS: V2X periods published to the
EVSE (Q), UpdateDynamicSchedule and the PullDynamicScheduleUpdate timing (K28/K29), and 2.1 fields
refused over 2.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chargepoint_firmware.agent import Agent
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_fakes import FakeEvse, ManualClock
from tests.support.agent_harness import agent_settings
from v2g_shared.schedule import format_datetime, profile_from_ocpp


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Agent, FakeEvse, ManualClock]]:
    clock = ManualClock()
    evse = FakeEvse(1, clock)
    settings = agent_settings(tmp_path, "ws://127.0.0.1:9/ocpp", ocpp_versions=["2.1"])
    agent = build_agent(settings, {1: evse}, clock=clock)
    agent.smart.ocpp_2_1 = True
    try:
        yield agent, evse, clock
    finally:
        agent.close()


def profile(
    clock: ManualClock, periods: list[dict[str, Any]], *, id: int = 1, **fields: Any
) -> Any:
    body: dict[str, Any] = {
        "id": id,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": format_datetime(clock.now()),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": periods,
            }
        ],
    }
    body.update(fields)
    if body["chargingProfileKind"] == "Dynamic":
        del body["chargingSchedule"][0]["startSchedule"]
    return profile_from_ocpp(body)


def test_q_setpoint_period_is_published_bounded_and_changes_on_its_boundary(rig: Any) -> None:
    agent, evse, clock = rig
    smart = agent.smart
    periods = [
        {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -5000},
        {"startPeriod": 600, "operationMode": "CentralSetpoint", "setpoint": -1000},
    ]
    assert smart.set_profile(0, profile(clock, periods)) == []
    station_max = profile(
        clock,
        [{"startPeriod": 0, "limit": 20000, "dischargeLimit": -3000}],
        id=2,
        chargingProfilePurpose="ChargingStationMaxProfile",
    )
    assert smart.set_profile(0, station_max) == []
    next_change = smart.publish_now()
    setpoint = evse.setpoints[-1][1]
    assert (setpoint.limit, setpoint.source) == (-3000, "v2x:CentralSetpoint")
    # The limit (20 kW) does not change at 600 s; the setpoint does, and the agent wakes then.
    assert next_change == clock.now() + timedelta(seconds=600)
    clock.advance(600)
    smart.publish_now()
    assert evse.setpoints[-1][1].limit == -1000


def test_201_profile_keeps_the_negative_limit_convention(rig: Any) -> None:
    agent, evse, clock = rig
    assert agent.smart.set_profile(0, profile(clock, [{"startPeriod": 0, "limit": -4000}])) == []
    agent.smart.publish_now()
    assert (evse.setpoints[-1][1].limit, evse.setpoints[-1][1].source) == (-4000, "schedule")


def test_21_fields_are_refused_over_a_201_connection(rig: Any) -> None:
    agent, _evse, clock = rig
    agent.smart.ocpp_2_1 = False
    v21 = profile(clock, [{"startPeriod": 0, "operationMode": "Idle"}])
    assert [v.rule for v in agent.smart.set_profile(0, v21)] == ["OCPP 2.0.1"]


def test_k28_update_dynamic_schedule_answers_and_persists(rig: Any, tmp_path: Path) -> None:
    agent, evse, clock = rig
    smart = agent.smart
    assert smart.update_dynamic(7, {"setpoint": -1}) == "UnknownProfile"
    assert smart.set_profile(0, profile(clock, [{"startPeriod": 0, "limit": 1000}], id=3)) == []
    assert smart.update_dynamic(3, {"setpoint": -1}) == "NotDynamic"
    dynamic = profile(
        clock,
        [{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -1000}],
        id=4,
        stackLevel=1,
        chargingProfileKind="Dynamic",
    )
    assert smart.set_profile(0, dynamic) == []
    assert smart.update_dynamic(4, {"setpoint": "x"}) == "InvalidValue"
    assert smart.update_dynamic(4, {"dischargeLimit": 5}) == "InvalidValue"  # must be <= 0
    assert smart.update_dynamic(4, {"setpoint": -2500}) is None
    smart.publish_now()
    assert evse.setpoints[-1][1].limit == -2500
    # Stored: a restart (load) sees the updated period and its dynUpdateTime.
    smart.load()
    stored = smart.store.installed(4)
    assert stored is not None
    assert stored.profile.schedule.periods[0].setpoint == -2500
    assert stored.profile.dyn_update_time == clock.now()


def test_k29_pulls_fall_due_per_interval_bounded(rig: Any) -> None:
    agent, _evse, clock = rig
    smart = agent.smart

    def dynamic(id: int, interval: int) -> Any:
        return profile(
            clock,
            [{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": 0}],
            id=id,
            stackLevel=id,
            chargingProfileKind="Dynamic",
            dynUpdateInterval=interval,
        )

    assert smart.set_profile(0, dynamic(1, 0)) == []  # 0 = no pulls
    assert smart.set_profile(0, dynamic(2, 30)) == []
    assert smart.set_profile(0, dynamic(3, 10**9)) == []  # bounded to a day
    due, earliest = smart.pulls_due(clock.now())
    assert due == [] and earliest == clock.now() + timedelta(seconds=30)
    clock.advance(30)
    due, earliest = smart.pulls_due(clock.now())
    assert due == [2] and earliest == clock.now() - timedelta(seconds=30) + timedelta(days=1)


def test_k_max_offline_duration_falls_back_and_invalid_after_removes(rig: Any) -> None:
    agent, evse, clock = rig
    smart = agent.smart
    base = profile(clock, [{"startPeriod": 0, "limit": 2000}], id=1)
    online_only = profile(
        clock, [{"startPeriod": 0, "limit": 7000}], id=2, stackLevel=1, maxOfflineDuration=60
    )
    for p in (base, online_only):
        assert smart.set_profile(0, p) == []
    smart.set_online(False)
    lapse = smart.publish_now()
    assert evse.setpoints[-1][1].limit == 7000  # offline, but within 60 s
    assert lapse == clock.now() + timedelta(seconds=60)
    clock.advance(60)
    smart.publish_now()
    assert evse.setpoints[-1][1].limit == 2000  # lapsed: the lower stack level applies
    smart.set_online(True)
    smart.publish_now()
    assert evse.setpoints[-1][1].limit == 7000  # valid again once online
    once = profile(
        clock,
        [{"startPeriod": 0, "limit": 7000}],
        id=2,
        stackLevel=1,
        maxOfflineDuration=0,
        invalidAfterOfflineDuration=True,
    )
    assert smart.set_profile(0, once) == []
    smart.set_online(False)
    smart.publish_now()
    smart.set_online(True)
    smart.publish_now()
    assert evse.setpoints[-1][1].limit == 2000 and smart.store.installed(2) is None


def test_k_a_huge_max_offline_duration_does_not_overflow(rig: Any) -> None:
    agent, evse, clock = rig
    huge = profile(clock, [{"startPeriod": 0, "limit": 3000}], maxOfflineDuration=10**18)
    assert agent.smart.set_profile(0, huge) == []
    agent.smart.set_online(False)
    agent.smart.publish_now()
    assert evse.setpoints[-1][1].limit == 3000
