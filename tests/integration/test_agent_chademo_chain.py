"""The whole chain on one machine: CSMS -> websocket -> agent -> ChademoEvse -> python-can
virtual bus -> simulated vehicle, and measurements back as TransactionEvents.

A TxDefaultProfile with a negative limit makes the car discharge once a remote start authorizes
the session; the export register the CSMS receives grows.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_harness import STATION_ID, agent_settings, eventually
from tests.support.agent_test_csms import AgentTestCsms
from tests.support.chademo_sim import running_sim


def sampled(event: dict[str, Any], measurand: str) -> float | None:
    for mv in event.get("meterValue", []):
        for sv in mv["sampledValue"]:
            if sv["measurand"] == measurand:
                return float(sv["value"])
    return None


async def test_remote_start_with_negative_profile_discharges_the_simulated_car(
    tmp_path: Path,
) -> None:
    vehicle = SimVehicleConfig(permission_delay_s=0.2, time_scale=200.0)
    config = ChademoEvseConfig(max_discharge_current_a=12.0)
    async with running_sim(config, battery=Battery(soc_pct=80.0), vehicle_config=vehicle) as rig:
        csms = AgentTestCsms()
        url = await csms.start()
        agent = build_agent(agent_settings(tmp_path, url), {1: rig.sim.evse})
        task = asyncio.create_task(agent.run())
        try:
            await csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Available")
            rig.sim.vehicle.plug_in()
            await csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
            start = datetime.now(UTC) - timedelta(minutes=1)
            profile = {
                "id": 5,
                "stack_level": 0,
                "charging_profile_purpose": "TxDefaultProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": [
                    {
                        "id": 1,
                        "start_schedule": iso_ms(start),
                        "charging_rate_unit": "W",
                        "charging_schedule_period": [{"start_period": 0, "limit": -3000.0}],
                    }
                ],
            }
            result = await csms.call(
                STATION_ID, call.SetChargingProfile(evse_id=1, charging_profile=profile)
            )
            assert result.status == "Accepted"
            started = await csms.call(
                STATION_ID,
                call.RequestStartTransaction(
                    id_token={"id_token": "V2G-1", "type": "Central"}, remote_start_id=1, evse_id=1
                ),
            )
            assert started.status == "Accepted"
            await csms.wait_for(
                "TransactionEvent",
                lambda e: e["transactionInfo"].get("chargingState") == "Charging",
                within_s=10,
            )
            await eventually(lambda: rig.sim.evse.status().current_a <= -5.0, within_s=10)
            await asyncio.sleep(0.5)
            tx_id = agent.transactions.evses[1].tx_id
            assert tx_id is not None
            stop = await csms.call(STATION_ID, call.RequestStopTransaction(transaction_id=tx_id))
            assert stop.status == "Accepted"
            ended = await csms.wait_for(
                "TransactionEvent", lambda e: e["eventType"] == "Ended", within_s=10
            )
            exported = sampled(ended[0], "Energy.Active.Export.Register")
            assert exported is not None and exported > 10.0
            assert ended[0]["transactionInfo"]["stoppedReason"] == "Remote"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()
            await csms.stop()
