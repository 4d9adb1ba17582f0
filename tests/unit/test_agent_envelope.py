"""The agent's smart-charging block with the operating envelope profile (envelope_wire.md), no
CSMS: the envelope in force travels with every setpoint to the safety supervisor (2.0.1 and
2.1), survives a restart of the agent (stored with its customData), still applies offline even
with a maxOfflineDuration, and its period edges wake the setpoint task."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chargepoint_firmware.agent import Agent
from chargepoint_firmware.blocks.smart_charging.envelope import envelope_in_force
from chargepoint_firmware.interfaces import EvseSetpoint
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_fakes import FakeEvse, ManualClock
from tests.support.agent_harness import agent_settings
from v2g_shared.schedule import (
    ENVELOPE_VENDOR_ID,
    EnvelopeBounds,
    InstalledProfile,
    format_datetime,
    profile_from_ocpp,
)

Rig = tuple[Agent, FakeEvse, ManualClock]


def build(tmp_path: Path, clock: ManualClock, version: str) -> tuple[Agent, FakeEvse]:
    evse = FakeEvse(1, clock)
    settings = agent_settings(tmp_path, "ws://127.0.0.1:9/ocpp", ocpp_versions=[version])
    agent = build_agent(settings, {1: evse}, clock=clock)
    agent.smart.ocpp_2_1 = version == "2.1"
    agent.smart.load()
    return agent, evse


@pytest.fixture(params=["2.0.1", "2.1"])
def rig(request: Any, tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock()
    agent, evse = build(tmp_path, clock, request.param)
    try:
        yield agent, evse, clock
    finally:
        agent.close()


def envelope_period(start: int, charge_w: float, discharge_w: float, **more: Any) -> Any:
    data: dict[str, Any] = {"vendorId": ENVELOPE_VENDOR_ID, "dischargeLimitW": discharge_w}
    if "ramp" in more:
        data["rampRatePctPerS"] = more.pop("ramp")
    return {"startPeriod": start, "limit": charge_w, **more, "customData": data}


def envelope(clock: ManualClock, *periods: Any, **fields: Any) -> Any:
    body: dict[str, Any] = {
        "id": 62007,
        "stackLevel": 8,
        "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 62007,
                "startSchedule": format_datetime(clock.now()),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": list(periods),
            }
        ],
        "customData": {"vendorId": ENVELOPE_VENDOR_ID, "siteId": "s1", "source": "csip-aus"},
        **fields,
    }
    return profile_from_ocpp(body)


def plan(clock: ManualClock, watts: float, v21: bool, **fields: Any) -> Any:
    period: dict[str, Any] = {"startPeriod": 0, "limit": max(watts, 0) if v21 else watts}
    if v21:
        period.update(operationMode="CentralSetpoint", setpoint=watts)
    return profile_from_ocpp(
        {
            "id": 5,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": format_datetime(clock.now()),
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [period],
                }
            ],
            **fields,
        }
    )


def last(evse: FakeEvse) -> EvseSetpoint:
    return evse.setpoints[-1][1]


def install_envelope(agent: Agent, clock: ManualClock, *periods: Any, **fields: Any) -> None:
    v21 = agent.smart.ocpp_2_1
    if v21:  # the wire contract: 2.1 periods also carry the native dischargeLimit
        periods = tuple(
            {**p, "dischargeLimit": -p["customData"]["dischargeLimitW"]} for p in periods
        )
    assert agent.smart.set_profile(0, envelope(clock, *periods, **fields)) == []


def test_envelope_bounds_the_setpoint_and_reaches_the_supervisor(rig: Rig) -> None:
    agent, evse, clock = rig
    v21 = agent.smart.ocpp_2_1
    assert agent.smart.set_profile(1, plan(clock, -6000, v21)) == []
    install_envelope(agent, clock, envelope_period(0, 0, 5000, ramp=0.27))
    agent.smart.publish_now()
    assert last(evse).limit == -5000  # the composite honours the export bound
    assert last(evse).envelope == EnvelopeBounds(0, 5000, 0.27)


def test_envelope_is_kept_across_an_agent_restart(rig: Rig, tmp_path: Path) -> None:
    agent, _evse, clock = rig
    install_envelope(agent, clock, envelope_period(0, 1000, 4000, ramp=2.0))
    version = "2.1" if agent.smart.ocpp_2_1 else "2.0.1"
    agent.close()
    again, evse = build(tmp_path, clock, version)  # same state directory, no CSMS
    try:
        again.smart.publish_now()
        assert last(evse).envelope == EnvelopeBounds(1000, 4000, 2.0)
        stored = again.smart.store.installed(62007)
        assert stored is not None and stored.profile.custom_data is not None
        assert stored.profile.custom_data["vendorId"] == ENVELOPE_VENDOR_ID
    finally:
        again.close()


def test_envelope_still_applies_offline_past_its_max_offline_duration(tmp_path: Path) -> None:
    # maxOfflineDuration is an OCPP 2.1 field.
    clock = ManualClock()
    agent, evse = build(tmp_path, clock, "2.1")
    try:
        _offline_check(agent, evse, clock)
    finally:
        agent.close()


def _offline_check(agent: Agent, evse: FakeEvse, clock: ManualClock) -> None:
    install_envelope(agent, clock, envelope_period(0, 0, 3000), maxOfflineDuration=60)
    other = plan(clock, -6000, True, maxOfflineDuration=60)
    assert agent.smart.set_profile(1, other) == []
    agent.smart.set_online(False)
    clock.advance(3600)
    agent.smart.publish_now()
    # The plan lapsed (maxOfflineDuration), the envelope did not.
    assert agent.smart.store.installed(5) is not None
    assert last(evse).envelope == EnvelopeBounds(0, 3000, None)
    assert last(evse).limit == 0


def test_envelope_period_edge_wakes_the_setpoint_task_even_if_the_limit_stays(rig: Rig) -> None:
    agent, evse, clock = rig
    # Only the ramp changes at 300 s: the composite limit does not move, the envelope does.
    install_envelope(
        agent, clock, envelope_period(0, 7000, 5000, ramp=1.0), envelope_period(300, 7000, 5000)
    )
    wake_at = agent.smart.publish_now()
    assert wake_at == clock.now() + timedelta(seconds=300)
    clock.advance(300)
    agent.smart.publish_now()
    assert last(evse).envelope == EnvelopeBounds(7000, 5000, None)


def test_cleared_envelope_leaves_the_supervisor_unbounded(rig: Rig) -> None:
    agent, evse, clock = rig
    install_envelope(agent, clock, envelope_period(0, 0, 0))
    agent.smart.publish_now()
    assert last(evse).envelope == EnvelopeBounds(0, 0, None)
    assert agent.smart.clear(62007, None, None, None)
    agent.smart.publish_now()
    assert last(evse).envelope is None


def test_broken_envelope_is_rejected(rig: Rig) -> None:
    agent, _evse, clock = rig
    broken = envelope(clock, envelope_period(0, 7000, -1))
    rules = [v.rule for v in agent.smart.set_profile(0, broken)]
    assert rules == ["Envelope.dischargeLimitW"]


def test_envelope_in_force_takes_the_tightest_of_two_and_ignores_other_evses() -> None:
    clock = ManualClock()
    a = envelope(clock, envelope_period(0, 7000, 2000, ramp=5))
    b = envelope(clock, envelope_period(0, 3000, 6000))
    profiles = [InstalledProfile(0, a), InstalledProfile(0, b)]
    found = envelope_in_force(profiles, 1, clock.now(), 400.0)
    assert found == EnvelopeBounds(3000, 2000, 5.0)
    assert envelope_in_force([InstalledProfile(2, a)], 1, clock.now(), 400.0) is None
    before = clock.now() - timedelta(seconds=1)
    assert envelope_in_force(profiles, 1, before, 400.0) is None  # not started yet
