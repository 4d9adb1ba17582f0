"""The operating envelope (CSIP-AUS, issue 18) on the agent, end to end on loopback: a CSMS test
double -> OCPP 2.0.1 websocket -> agent -> composite + safety supervisor -> ChademoEvse ->
python-can virtual bus -> simulated CHAdeMO car, observed on the bus as a third party would
(0x208 byte 1, the discharge current).

- The car discharges at 6 kW; the envelope profile (envelope_wire.md) arrives with an export
  bound of 2 kW: the CAN discharge current drops within it. The CSMS goes offline: the bound still
  holds, and the envelope's next period (1 kW) takes over on time without the CSMS. The agent and
  the charger power-cycle (new process state, new car session, the CSMS back but silent about
  envelopes): the stored envelope still holds.
- The envelope's ramp rate (rampRatePctPerS, % of the EVSE's rated power per second) limits how
  fast the discharge current grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from chargepoint_firmware.agent import Agent
from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_harness import STATION_ID, agent_settings, eventually
from tests.support.agent_test_csms import AgentTestCsms
from tests.support.chademo_sim import Rig, running_sim
from v2g_shared.schedule import ENVELOPE_PROFILE_ID, ENVELOPE_VENDOR_ID

RATED_DISCHARGE_W = 10_000.0
# 0x208 byte 1 is whole amps (rounded), and the simulated power stage settles within a cycle.
BYTE_SLACK_A = 1.0

EVSE = ChademoEvseConfig(
    max_charge_current_a=30.0,
    max_discharge_current_a=30.0,
    max_charge_power_w=RATED_DISCHARGE_W,
    max_discharge_power_w=RATED_DISCHARGE_W,
)
CAR = SimVehicleConfig(permission_delay_s=0.2, max_discharge_current_a=30)


def tx_default(watts: float) -> dict[str, Any]:
    return {
        "id": 5,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [
            {
                "id": 1,
                "start_schedule": iso_ms(datetime.now(UTC) - timedelta(minutes=1)),
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": watts}],
            }
        ],
    }


def envelope_profile(start: datetime, periods: list[tuple[int, float, float | None]]) -> Any:
    """The CSMS's envelope (envelope_wire.md): (startPeriod, dischargeLimitW, rampRatePctPerS)
    with no import allowed (limit 0)."""
    rows = []
    for offset, export_w, ramp in periods:
        data: dict[str, Any] = {"vendorId": ENVELOPE_VENDOR_ID, "dischargeLimitW": export_w}
        if ramp is not None:
            data["rampRatePctPerS"] = ramp
        rows.append({"start_period": offset, "limit": 0, "custom_data": data})
    return {
        "id": ENVELOPE_PROFILE_ID,
        "stack_level": 8,
        "charging_profile_purpose": "ChargingStationMaxProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [
            {
                "id": ENVELOPE_PROFILE_ID,
                "start_schedule": iso_ms(start.replace(microsecond=0)),
                "charging_rate_unit": "W",
                "charging_schedule_period": rows,
            }
        ],
        "custom_data": {
            "vendorId": ENVELOPE_VENDOR_ID,
            "siteId": "site-canberra-1",
            "source": "csip-aus",
            "controlId": "A1B2C3",
        },
    }


@dataclass
class Station:
    rig: Rig
    agent: Agent
    task: asyncio.Task[None]

    def discharge_frames(self, since: float = 0.0) -> list[tuple[float, float]]:
        return [
            (at, float(frame.discharge_current_a))  # type: ignore[attr-defined]
            for at, frame in self.rig.sniffer.decoded(0x208, since)
        ]

    def volts(self) -> float:
        return self.rig.sim.evse.status().voltage_v

    def export_bound_a(self, watts: float) -> float:
        return watts / self.volts() + BYTE_SLACK_A


@asynccontextmanager
async def station(state_dir: Path, csms_url: str) -> AsyncIterator[Station]:
    """A simulated charger + car (80 % SoC) and the agent on `state_dir`; all stopped after
    (the agent's storage closes last: the charger's stop events still reach it)."""
    agents: list[Agent] = []
    try:
        async with running_sim(EVSE, battery=Battery(soc_pct=80.0), vehicle_config=CAR) as rig:
            agent = build_agent(agent_settings(state_dir, csms_url), {1: rig.sim.evse})
            agents.append(agent)
            task = asyncio.create_task(agent.run())
            try:
                yield Station(rig, agent, task)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        for agent in agents:
            agent.close()


async def ready(csms: AgentTestCsms) -> None:
    await csms.wait_for(
        "StatusNotification", lambda p: p["connectorStatus"] == "Available", within_s=10
    )


async def start_discharging(csms: AgentTestCsms, st: Station, remote_start_id: int) -> None:
    st.rig.sim.vehicle.plug_in()
    await csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    started = await csms.call(
        STATION_ID,
        call.RequestStartTransaction(
            id_token={"id_token": "V2G-ENV", "type": "Central"},
            remote_start_id=remote_start_id,
            evse_id=1,
        ),
    )
    assert started.status == "Accepted"


async def set_profile(csms: AgentTestCsms, evse_id: int, profile: Any) -> None:
    result = await csms.call(
        STATION_ID, call.SetChargingProfile(evse_id=evse_id, charging_profile=profile)
    )
    assert result.status == "Accepted", result


async def holds_for(st: Station, seconds: float, watts: float) -> list[float]:
    """Watch 0x208 for `seconds`: every frame within the export bound; the currents seen."""
    since = time.monotonic()
    await asyncio.sleep(seconds)
    seen = [amps for _, amps in st.discharge_frames(since)]
    assert seen, "no 0x208 frames"
    bound = st.export_bound_a(watts)
    assert max(seen) <= bound, (max(seen), bound)
    return seen


async def test_envelope_export_bound_holds_on_can_online_offline_and_after_restart(
    tmp_path: Path,
) -> None:
    csms = AgentTestCsms()
    url = await csms.start()
    try:
        async with station(tmp_path, url) as st:
            await ready(csms)
            await set_profile(csms, 1, tx_default(-6000.0))
            await start_discharging(csms, st, 1)
            six_kw_a = 6000.0 / 400.0  # >= 15 A at any voltage of this car (<= 400 V)
            await eventually(
                lambda: any(a >= six_kw_a for _, a in st.discharge_frames()),
                within_s=15,
                message="the car never discharged at 6 kW",
            )

            # The envelope arrives: 2 kW export now, 1 kW from 12 s on (the CSMS will be gone).
            sent = datetime.now(UTC)
            boundary = sent.replace(microsecond=0) + timedelta(seconds=12)
            offset = int((boundary - sent.replace(microsecond=0)).total_seconds())
            envelope = envelope_profile(sent, [(0, 2000.0, None), (offset, 1000.0, None)])
            await set_profile(csms, 0, envelope)
            sent_at = time.monotonic()
            await eventually(
                lambda: (
                    st.discharge_frames(sent_at)[-1:] != []
                    and st.discharge_frames(sent_at)[-1][1] <= st.export_bound_a(2000.0)
                ),
                within_s=3,
                message="0x208 did not drop within the 2 kW export bound",
            )
            seen = await holds_for(st, 1.5, 2000.0)
            assert min(seen) > 0, "the envelope bounds export, it does not stop it"
            limited_by = st.rig.sim.evse.status().limited_by
            assert limited_by in ("safety:request", "safety:envelope_export"), limited_by

            # The CSMS goes offline: the bound holds, and the next period applies on time.
            await csms.stop()
            await eventually(lambda: not st.agent.online, within_s=5)
            await holds_for(st, 1.5, 2000.0)
            wait_s = (boundary - datetime.now(UTC)).total_seconds() + 1.0
            await asyncio.sleep(max(0.0, wait_s))
            seen = await holds_for(st, 1.5, 1000.0)
            assert min(seen) > 0, "still discharging offline, within the new bound"

        # Power cycle: agent and charger restart; the CSMS is back but sends no envelope.
        await csms.start(port=csms.port)
        csms.received.clear()
        async with station(tmp_path, url) as st:
            await ready(csms)
            installed = await wait_for_store(st.agent)
            assert installed, "the envelope was not restored from the agent's storage"
            await start_discharging(csms, st, 2)
            await eventually(
                lambda: any(a >= 1 for _, a in st.discharge_frames()),
                within_s=15,
                message="no discharge after the restart",
            )
            seen = await holds_for(st, 2.0, 1000.0)
            assert min(seen) > 0
            setpoint = st.rig.sim.evse._setpoint
            assert setpoint.envelope is not None
            assert setpoint.envelope.max_discharge_w == 1000.0
            assert setpoint.envelope.max_charge_w == 0.0
    finally:
        await csms.stop()


async def wait_for_store(agent: Agent) -> bool:
    await eventually(lambda: agent.smart.store.installed(ENVELOPE_PROFILE_ID) is not None, 5)
    return agent.smart.store.installed(ENVELOPE_PROFILE_ID) is not None


async def test_envelope_ramp_rate_limits_how_fast_the_discharge_current_grows(
    tmp_path: Path,
) -> None:
    ramp_pct = 2.0  # 2 %/s of 10 kW = 200 W/s, about 0.5 A/s at this car's voltage
    csms = AgentTestCsms()
    url = await csms.start()
    try:
        async with station(tmp_path, url) as st:
            await ready(csms)
            await set_profile(csms, 1, tx_default(-6000.0))
            await set_profile(csms, 0, envelope_profile(datetime.now(UTC), [(0, 6000.0, ramp_pct)]))
            await start_discharging(csms, st, 1)
            await eventually(
                lambda: any(a >= 1 for _, a in st.discharge_frames()),
                within_s=15,
                message="no discharge",
            )
            first = next(at for at, a in st.discharge_frames() if a >= 1)
            await asyncio.sleep(4.0)
            volts = st.volts()
            # Conservative W -> A divides by at least the measured voltage: at most this A/s.
            rate_a_per_s = ramp_pct / 100.0 * RATED_DISCHARGE_W / volts
            frames = st.discharge_frames(first - 0.2)
            for at, amps in frames:
                allowed = 1.0 + rate_a_per_s * (at - first + 0.2) + BYTE_SLACK_A
                assert amps <= allowed, (at - first, amps, allowed)
            latest = frames[-1][1]
            # Still climbing, far below the 6 kW plan that the configured 20 A/s reaches in 1 s.
            assert latest < 6000.0 / volts - 5
            assert latest >= 2.0, "the ramp must still let the current grow"
            assert st.rig.sim.evse.status().limited_by == "safety:envelope_ramp"
            assert math.isfinite(latest)
    finally:
        await csms.stop()
