"""Our charge-point agent over OCPP 2.1 against a third-party CSMS: Node `ocpp-rpc` 2.2.1 in
strict mode with its OCA 2.1 schemas (tests/interop/server.js --protocols ocpp2.1,...). Every
frame either side sends is checked against the 2.1 schemas; a violation fails the test.

Covered: subprotocol negotiation (2.1 preferred when both sides offer it, 2.0.1 by default),
boot and a transaction, every discharging V2X operation mode down to the CHAdeMO CAN frames of a
simulated car, DER control, dynamic schedules (UpdateDynamicSchedule and
PullDynamicScheduleUpdate), aFRR, and the answers to what a CHAdeMO station cannot do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chargepoint_firmware.agent import Agent
from chargepoint_firmware.chademo.frames import ChargerDischargeStatus
from chargepoint_firmware.chademo.frames.ids import ID_CHARGER_DISCHARGE_STATUS
from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_harness import agent_settings, eventually
from tests.support.chademo_sim import Rig as SimRig
from tests.support.chademo_sim import running_sim
from tests.support.interop import SERVER_SCRIPT, InteropCsms, interop_csms, run_self_check
from tests.support.interop_fixtures import AGENT_ID, AGENT_PASSWORD, agent_for_interop

pytestmark = pytest.mark.timeout(180)

BOTH = ("ocpp2.1", "ocpp2.0.1")
# Answered over 2.1 only: periodic event streams hang off variable monitors.
STREAMS_21 = frozenset({"SetVariableMonitoring", "ClearVariableMonitoring"})
SECURITY = {"profile": 1, "basic_auth_password": AGENT_PASSWORD}


async def test_server_default_answers_are_valid_under_21() -> None:
    """server.js as a 2.1 CSMS: every station-initiated 2.1 action has a default answer that
    the OCA 2.1 schema accepts (the harness's own check, so a failure is the harness's)."""
    result = await run_self_check(SERVER_SCRIPT, "--self-check-21")
    assert result["problems"] == [] and result["returncode"] == 0
    assert result["actions"] >= 36


async def test_agent_negotiates_ocpp21_when_configured_and_201_by_default(tmp_path: Path) -> None:
    async with interop_csms(password=AGENT_PASSWORD, protocols=BOTH) as csms:
        async with agent_for_interop(tmp_path / "a", csms.url) as running:
            connected = await csms.wait_for_station(AGENT_ID)
            assert connected["protocol"] == "ocpp2.0.1"  # the default offer
            assert running.agent.ocpp_version is not None
            assert running.agent.ocpp_version.value == "ocpp2.0.1"
        async with agent_for_interop(
            tmp_path / "b", csms.url, ocpp_versions=["2.1", "2.0.1"]
        ) as running:
            await eventually(
                lambda: any(
                    e.get("event") == "station_connected" and e["protocol"] == "ocpp2.1"
                    for e in csms.events
                ),
                message="no 2.1 connection",
            )
            assert running.agent.ocpp_version is not None
            assert running.agent.ocpp_version.value == "ocpp2.1"
            boot = await csms.wait_for_call("BootNotification", identity=AGENT_ID)
            assert boot["payload"]["chargingStation"]["model"]
        await csms.expect_no_strict_violations(origin=None)


async def test_agent_offering_only_201_is_refused_by_a_21_only_csms(tmp_path: Path) -> None:
    async with interop_csms(password=AGENT_PASSWORD, protocols=("ocpp2.1",)) as csms:
        with pytest.raises(AssertionError, match="never came online"):
            async with agent_for_interop(tmp_path / "a", csms.url, online_within_s=1.5):
                pass  # pragma: no cover
        refused = [e for e in csms.events if e.get("event") == "subprotocol_rejected"]
        assert refused and refused[0]["offered"] == ["ocpp2.0.1"]


@dataclass
class V2xRig:
    csms: InteropCsms
    sim: SimRig
    agent: Agent

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        outcome = await self.csms.call(AGENT_ID, action, payload)
        assert outcome.ok, f"{action}: {outcome}"
        return outcome.result

    def current_a(self) -> float:
        return self.sim.sim.evse.status().current_a

    async def current_reaches(self, predicate: Any, what: str, within_s: float = 12.0) -> None:
        await eventually(
            lambda: predicate(self.current_a()),
            within_s=within_s,
            message=f"{what}: current stayed at {self.current_a():.1f} A",
        )

    async def discharge_frames_since(self, since: float) -> list[ChargerDischargeStatus]:
        await asyncio.sleep(0.5)
        return [
            f
            for _, f in self.sim.sniffer.decoded(ID_CHARGER_DISCHARGE_STATUS, since)
            if isinstance(f, ChargerDischargeStatus)
        ]

    async def set_default_profile(self, period: dict[str, Any], **profile: Any) -> str:
        body = {
            "id": 5,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [
                {
                    "id": 1,
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, **period}],
                }
            ],
        }
        body.update(profile)
        answer = await self.call("SetChargingProfile", {"evseId": 1, "chargingProfile": body})
        return str(answer["status"])


@contextlib.asynccontextmanager
async def v2x_rig(tmp_path: Path, soc_pct: float = 80.0, **settings: Any) -> AsyncIterator[V2xRig]:
    """The ocpp-rpc 2.1 CSMS, our agent over 2.1 on a simulated CHAdeMO EVSE with a car at
    80 % plugged in, and a remote-started transaction already running."""
    vehicle = SimVehicleConfig(permission_delay_s=0.2, time_scale=200.0)
    config = ChademoEvseConfig(max_discharge_current_a=12.0)
    async with (
        running_sim(config, battery=Battery(soc_pct=soc_pct), vehicle_config=vehicle) as sim_rig,
        interop_csms(password=AGENT_PASSWORD, protocols=BOTH) as csms,
    ):
        values: dict[str, Any] = {
            "station_id": AGENT_ID,
            "security": SECURITY,
            "ocpp_versions": ["2.1", "2.0.1"],
        }
        values.update(settings)
        agent = build_agent(
            agent_settings(tmp_path / "agent", csms.url, **values), {1: sim_rig.sim.evse}
        )
        task = asyncio.create_task(agent.run())
        rig = V2xRig(csms, sim_rig, agent)
        try:
            connected = await csms.wait_for_station(AGENT_ID)
            assert connected["protocol"] == "ocpp2.1"
            await eventually(lambda: agent.online, within_s=10, message="agent not online")
            sim_rig.sim.vehicle.plug_in()
            # Start at Idle: nothing flows until a mode asks for it.
            assert await rig.set_default_profile({"operationMode": "Idle"}) == "Accepted"
            start = await rig.call(
                "RequestStartTransaction",
                {
                    "idToken": {"idToken": "V2G-21", "type": "Central"},
                    "remoteStartId": 1,
                    "evseId": 1,
                },
            )
            assert start["status"] == "Accepted"
            await csms.wait_for(
                lambda e: (
                    e.get("action") == "TransactionEvent" and e["payload"]["eventType"] == "Started"
                ),
                what="TransactionEvent Started",
            )
            yield rig
            await csms.expect_no_strict_violations(origin=None)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()


async def test_q_every_discharging_v2x_mode_reaches_the_chademo_car(tmp_path: Path) -> None:
    async with v2x_rig(tmp_path) as rig:
        link = rig.sim.sim.connector.link
        modes: list[tuple[str, dict[str, Any]]] = [
            ("CentralSetpoint", {"setpoint": -3000}),
            ("ExternalSetpoint", {"setpoint": -3000}),
            ("CentralFrequency", {"setpoint": -3000, "limit": 11000}),
        ]
        for mode, fields in modes:
            status = await rig.set_default_profile({"operationMode": mode, **fields})
            assert status == "Accepted", mode
            await rig.current_reaches(lambda a: a <= -5.0, mode)
            frames = await rig.discharge_frames_since(link.clock())
            assert frames and max(f.discharge_current_a for f in frames) >= 5, mode
            # Back to Idle between modes: each mode must bring the discharge itself.
            assert await rig.set_default_profile({"operationMode": "Idle"}) == "Accepted"
            await rig.current_reaches(lambda a: abs(a) < 1.0, f"{mode} -> Idle")

        # LocalFrequency: the measured grid frequency on the station's own curve.
        rig.sim.sim.ports.grid.set_frequency(49.6)
        curve = [{"frequency": 49.5, "power": -4000}, {"frequency": 50.5, "power": 4000}]
        status = await rig.set_default_profile(
            {"operationMode": "LocalFrequency", "v2xFreqWattCurve": curve, "v2xBaseline": 0}
        )
        assert status == "Accepted"
        await rig.current_reaches(lambda a: a <= -5.0, "LocalFrequency at 49.6 Hz")
        rig.sim.sim.ports.grid.set_frequency(50.4)  # over-frequency: the curve charges
        await rig.current_reaches(lambda a: a >= 5.0, "LocalFrequency at 50.4 Hz")

        # CentralFrequency driven by aFRR signals through the signal-watt curve.
        signal_curve = [{"signal": -100, "power": -4000}, {"signal": 100, "power": 4000}]
        status = await rig.set_default_profile(
            {
                "operationMode": "CentralFrequency",
                "setpoint": 0,
                "limit": 11000,
                "v2xSignalWattCurve": signal_curve,
            }
        )
        assert status == "Accepted"
        afrr = await rig.call("AFRRSignal", {"timestamp": "2026-01-01T00:00:00Z", "signal": -80})
        assert afrr["status"] == "Accepted"
        await rig.current_reaches(lambda a: a <= -5.0, "aFRR signal -80")

        # ChargingOnly never discharges, whatever the limit's sign.
        status = await rig.set_default_profile({"operationMode": "ChargingOnly", "limit": 3000})
        assert status == "Accepted"
        await rig.current_reaches(lambda a: a >= 5.0, "ChargingOnly")


async def test_q_discharge_limit_allowed_transfer_and_ev_charging_needs(
    tmp_path: Path,
) -> None:
    async with v2x_rig(tmp_path) as rig:
        status = await rig.set_default_profile(
            {"operationMode": "CentralSetpoint", "setpoint": -4000, "dischargeLimit": -1200}
        )
        assert status == "Accepted"
        await rig.current_reaches(lambda a: -5.0 < a <= -1.5, "dischargeLimit -1200 W")
        # The car's V2X capability, from its CHAdeMO frames, went to the CSMS once.
        needs = await rig.csms.wait_for_call("NotifyEVChargingNeeds", identity=AGENT_ID)
        charging_needs = needs["payload"]["chargingNeeds"]
        assert charging_needs["requestedEnergyTransfer"] == "DC_BPT"
        v2x = charging_needs["v2xChargingParameters"]
        car = rig.sim.sim.evse.status().vehicle
        # The car's H'200 discharge current moves during the session: positive, that is all.
        assert v2x["maxDischargeCurrent"] > 0
        assert v2x["minVoltage"] == car.min_discharge_voltage_v
        assert charging_needs["dcChargingParameters"]["evMaxVoltage"] == car.max_voltage_v
        tx_id = rig.agent.transactions.evses[1].tx_id
        assert tx_id is not None
        allowed = await rig.call(
            "NotifyAllowedEnergyTransfer", {"transactionId": tx_id, "allowedEnergyTransfer": ["DC"]}
        )
        assert allowed["status"] == "Accepted"
        await rig.current_reaches(lambda a: abs(a) < 1.0, "DC only: no discharge")


async def test_q_the_safety_window_still_bounds_a_central_setpoint(tmp_path: Path) -> None:
    """A car below its discharge SoC floor: a 2.1 discharge setpoint is a target, the safety
    supervisor's SoC window wins (no discharge), while a charge setpoint goes through."""
    async with v2x_rig(tmp_path, soc_pct=15.0) as rig:
        status = await rig.set_default_profile(
            {"operationMode": "CentralSetpoint", "setpoint": -3000}
        )
        assert status == "Accepted"
        await asyncio.sleep(2.0)
        assert rig.current_a() > -0.5
        assert rig.sim.sim.evse.status().energy_export_wh < 1.0
        status = await rig.set_default_profile(
            {"operationMode": "CentralSetpoint", "setpoint": 3000}
        )
        assert status == "Accepted"
        await rig.current_reaches(lambda a: a >= 5.0, "charge setpoint below the floor")


async def test_r_der_control_caps_discharge_and_is_reported(tmp_path: Path) -> None:
    evses = [{"id": 1, "max_discharge_power_w": 10000}]
    async with v2x_rig(tmp_path, evses=evses) as rig:
        assert (
            await rig.set_default_profile({"operationMode": "CentralSetpoint", "setpoint": -4000})
            == "Accepted"
        )
        await rig.current_reaches(lambda a: a <= -8.0, "setpoint -4000 W")
        der = await rig.call(
            "SetDERControl",
            {
                "isDefault": False,
                "controlId": "cap-1",
                "controlType": "LimitMaxDischarge",
                "limitMaxDischarge": {"priority": 1, "pctMaxDischargePower": 15},
            },
        )
        assert der["status"] == "Accepted"
        await rig.current_reaches(lambda a: -5.5 < a <= -1.5, "LimitMaxDischarge 15 % of 10 kW")
        curve = {
            "isDefault": True,
            "controlId": "fw-1",
            "controlType": "FreqWatt",
            "curve": {
                "priority": 2,
                "yUnit": "PctMaxW",
                "curveData": [{"x": 49.0, "y": -100}, {"x": 49.8, "y": 0}, {"x": 50.2, "y": 0}],
            },
        }
        assert (await rig.call("SetDERControl", curve))["status"] == "Accepted"
        unsupported = await rig.call(
            "SetDERControl",
            {
                "isDefault": False,
                "controlId": "pf-1",
                "controlType": "FixedPFAbsorb",
                "fixedPFAbsorb": {"priority": 1, "displacement": 0.9, "excitation": True},
            },
        )
        assert unsupported["status"] == "NotSupported"
        got = await rig.call("GetDERControl", {"requestId": 7})
        assert got["status"] == "Accepted"
        report = await rig.csms.wait_for_call("ReportDERControl", identity=AGENT_ID)
        assert report["payload"]["requestId"] == 7
        assert {c["id"] for c in report["payload"]["curve"]} == {"fw-1"}
        assert report["payload"]["limitMaxDischarge"][0]["id"] == "cap-1"
        cleared = await rig.call(
            "ClearDERControl", {"isDefault": False, "controlType": "LimitMaxDischarge"}
        )
        assert cleared["status"] == "Accepted"
        await rig.current_reaches(lambda a: a <= -8.0, "cap cleared")
        none_left = await rig.call("ClearDERControl", {"isDefault": False, "controlId": "cap-1"})
        assert none_left["status"] == "NotFound"


async def test_r_volt_watt_caps_discharge_as_the_measured_ac_voltage_rises_with_der_notices(
    tmp_path: Path,
) -> None:
    """VoltWatt from a strict 2.1 CSMS: the agent reads the AC voltage from its grid meter
    (simulated here) and caps the discharge on the curve (% of nominal 230 V -> % of max
    discharge power); back to normal voltage, the cap lifts."""
    evses = [{"id": 1, "max_discharge_power_w": 10000}]
    async with v2x_rig(tmp_path, evses=evses) as rig:
        grid = rig.sim.sim.ports.grid
        assert (
            await rig.set_default_profile({"operationMode": "CentralSetpoint", "setpoint": -4000})
            == "Accepted"
        )
        await rig.current_reaches(lambda a: a <= -8.0, "setpoint -4000 W")
        volt_watt = {
            "isDefault": True,
            "controlId": "vw-1",
            "controlType": "VoltWatt",
            "curve": {
                "priority": 1,
                "yUnit": "PctMaxW",
                # AS/NZS 4777.2-like: full power to 110 % (253 V), 20 % at 113 % (260 V)
                "curveData": [{"x": 110, "y": 100}, {"x": 113, "y": 20}],
            },
        }
        assert (await rig.call("SetDERControl", volt_watt))["status"] == "Accepted"
        started = await rig.csms.wait_for_call("NotifyDERStartStop", identity=AGENT_ID)
        assert started["payload"]["controlId"] == "vw-1" and started["payload"]["started"]
        await asyncio.sleep(0.5)
        assert rig.current_a() <= -8.0  # at 230 V the curve allows full power
        grid.set_voltage(262.0)  # 114 %: capped at 20 % of 10 kW = 2 kW
        await rig.current_reaches(lambda a: -6.0 < a <= -1.0, "volt-watt at 262 V")
        grid.set_voltage(231.0)
        await rig.current_reaches(lambda a: a <= -8.0, "volt-watt back at 231 V")
        # Over the AS/NZS 4777.2 V> limit (265 V): NotifyDERAlarm, once; ended when back.
        grid.set_voltage(270.0)
        alarm = await rig.csms.wait_for_call("NotifyDERAlarm", identity=AGENT_ID)
        assert alarm["payload"]["gridEventFault"] == "OverVoltage"
        assert alarm["payload"]["controlType"] == "HVMustTrip"
        assert not alarm["payload"].get("alarmEnded")
        grid.set_voltage(230.0)
        ended = await rig.csms.wait_for(
            lambda e: e.get("action") == "NotifyDERAlarm" and e["payload"].get("alarmEnded"),
            what="NotifyDERAlarm alarmEnded",
        )
        assert ended["payload"]["gridEventFault"] == "OverVoltage"
        cleared = await rig.call("ClearDERControl", {"isDefault": True, "controlId": "vw-1"})
        assert cleared["status"] == "Accepted"
        stopped = await rig.csms.wait_for(
            lambda e: e.get("action") == "NotifyDERStartStop" and not e["payload"]["started"],
            what="NotifyDERStartStop stopped",
        )
        assert stopped["payload"]["controlId"] == "vw-1"


async def test_q_limit_at_soc_limits_charging_once_the_car_is_past_the_soc(
    tmp_path: Path,
) -> None:
    """limitAtSoC from a strict 2.1 CSMS: the car is at 80 % SoC; a schedule that charges at
    11 kW but 1.5 kW from 50 % SoC charges at about 1.5 kW; the same without limitAtSoC charges
    at the EVSE's full current."""
    async with v2x_rig(tmp_path) as rig:

        async def charge(limit_at_soc: dict[str, Any] | None) -> str:
            schedule: dict[str, Any] = {
                "id": 1,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "operationMode": "ChargingOnly", "limit": 11000}
                ],
            }
            if limit_at_soc is not None:
                schedule["limitAtSoC"] = limit_at_soc
            body = {
                "id": 5,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [schedule],
            }
            answer = await rig.call("SetChargingProfile", {"evseId": 1, "chargingProfile": body})
            return str(answer["status"])

        assert await charge({"soc": 50, "limit": 1500}) == "Accepted"
        await rig.current_reaches(lambda a: 1.0 <= a <= 6.0, "limitAtSoC 1.5 kW past 50 %")
        assert await charge(None) == "Accepted"
        await rig.current_reaches(lambda a: a >= 10.0, "no limitAtSoC")


async def test_k28_dynamic_schedule_updates_and_pulls_move_the_setpoint(tmp_path: Path) -> None:
    async with v2x_rig(tmp_path) as rig:
        status = await rig.set_default_profile(
            {"operationMode": "CentralSetpoint", "setpoint": -1000},
            id=6,
            stackLevel=1,
            chargingProfileKind="Dynamic",
        )
        assert status == "Accepted"
        await rig.current_reaches(lambda a: -4.5 < a <= -1.5, "dynamic setpoint -1000 W")
        updated = await rig.call(
            "UpdateDynamicSchedule", {"chargingProfileId": 6, "scheduleUpdate": {"setpoint": -4000}}
        )
        assert updated["status"] == "Accepted"
        await rig.current_reaches(lambda a: a <= -8.0, "updated setpoint -4000 W")
        unknown = await rig.csms.call(
            AGENT_ID, "UpdateDynamicSchedule", {"chargingProfileId": 99, "scheduleUpdate": {}}
        )
        assert unknown.result["status"] == "Rejected"

        # The station pulls every dynUpdateInterval; the CSMS answers with a new setpoint.
        await rig.csms.set_handler(
            "PullDynamicScheduleUpdate",
            response={"status": "Accepted", "scheduleUpdate": {"setpoint": 2000}},
        )
        status = await rig.set_default_profile(
            {"operationMode": "CentralSetpoint", "setpoint": -4000},
            id=6,
            stackLevel=1,
            chargingProfileKind="Dynamic",
            dynUpdateInterval=1,
        )
        assert status == "Accepted"
        pulled = await rig.csms.wait_for_call("PullDynamicScheduleUpdate", identity=AGENT_ID)
        assert pulled["payload"] == {"chargingProfileId": 6}
        await rig.current_reaches(lambda a: a >= 3.0, "pulled setpoint +2000 W")


async def test_what_a_chademo_station_cannot_do_is_answered_as_unsupported(
    tmp_path: Path,
) -> None:
    async with interop_csms(password=AGENT_PASSWORD, protocols=BOTH) as csms:
        async with agent_for_interop(tmp_path / "a", csms.url, ocpp_versions=["2.1"]):
            await csms.wait_for_call("BootNotification", identity=AGENT_ID)
            not_supported = {
                "RequestBatterySwap": {
                    "requestId": 1,
                    "idToken": {"idToken": "T", "type": "Central"},
                },
                "NotifyWebPaymentStarted": {"evseId": 1, "timeout": 60},
                "GetTariffs": {"evseId": 1},
                "ClearTariffs": {},
            }
            for action, payload in not_supported.items():
                outcome = await csms.call(AGENT_ID, action, payload)
                assert outcome.error_code == "NotSupported", (action, outcome)
            priority = await csms.call(
                AGENT_ID, "UsePriorityCharging", {"transactionId": "tx-1", "activate": True}
            )
            assert priority.result["status"] == "NoProfile"
            profile = {
                "id": 9,
                "stackLevel": 0,
                "chargingProfilePurpose": "PriorityCharging",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}],
                    }
                ],
            }
            refused = await csms.call(
                AGENT_ID, "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}
            )
            assert refused.result["status"] == "Rejected"
        await csms.expect_no_strict_violations(origin=None)


async def test_every_201_era_csms_action_over_21_gets_a_result_or_not_supported(
    tmp_path: Path,
) -> None:
    """The CSMS-initiated actions 2.0.1 and 2.1 share, sent by the strict 2.1 CSMS: what the
    agent supports gets a CALLRESULT valid under the 2.1 schema, the rest NotSupported."""
    from tests.interop.test_interop_agent import AGENT_SUPPORTED, every_action_request
    from tests.support.interop_fixtures import harness_action_lists

    _, csms_side = harness_action_lists()
    requests = every_action_request()
    async with interop_csms(password=AGENT_PASSWORD, protocols=BOTH) as csms:
        async with agent_for_interop(tmp_path / "a", csms.url, ocpp_versions=["2.1"]):
            await csms.wait_for_call("BootNotification", identity=AGENT_ID)
            problems: dict[str, str] = {}
            first = ["SendLocalList", "SetChargingProfile", "SetVariables"]
            for action in first + [a for a in csms_side if a not in first]:
                outcome = await csms.call(AGENT_ID, action, requests[action])
                if action in AGENT_SUPPORTED | STREAMS_21:
                    if not outcome.ok:
                        problems[action] = f"{outcome.error_code}: {outcome.error_description}"
                elif outcome.error_code != "NotSupported":
                    problems[action] = f"expected NotSupported, got {outcome.error_code}"
            assert problems == {}
        await csms.expect_no_strict_violations(origin=None)
