"""A live V2G rig in real time: the project CSMS (OCPP server, V2G service), the charge-point
agent and a simulated CHAdeMO car on a python-can virtual bus, with a plan running that exports
now (expensive evening prices). For the "switch V2G off -> export stops" measurements."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.wiring import build_agent
from csms.domain.models import TransactionState
from csms.domain.v2g_records import PriceRow, VehicleRecord
from csms.services.v2g import V2gService, V2gSettings
from tests.support.agent_harness import STATION_ID, agent_settings, eventually
from tests.support.chademo_sim import Rig, running_sim
from tests.support.csms_harness import PASSWORD, Csms, running_csms

CAPACITY_KWH = 24.0


@dataclass
class LiveRig:
    csms: Csms
    v2g: V2gService
    rig: Rig
    vehicle_id: str

    def current_a(self) -> float:
        """The current the simulated charger drives now (A; negative = export)."""
        return float(self.rig.sim.evse.status().current_a)

    def soc_pct(self) -> float:
        return float(self.rig.sim.vehicle.battery.soc_pct)


async def wait_for(predicate: Callable[[], bool], within_s: float, poll_s: float = 0.01) -> float:
    """Seconds until `predicate()` holds (AssertionError after `within_s`)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"not within {within_s} s")
        await asyncio.sleep(poll_s)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def exporting_rig(
    tmp_path: Path, vehicle_id: str = "sim-leaf", soc_pct: float = 93.0, name: str | None = None
) -> AsyncIterator[LiveRig]:
    """The rig with the car exporting under an optimized plan (as in issue 15: 93 % SoC)."""
    (tmp_path / "csms").mkdir(parents=True, exist_ok=True)
    vehicle_cfg = SimVehicleConfig(permission_delay_s=0.2)
    evse_cfg = ChademoEvseConfig(max_charge_current_a=15.0, max_discharge_current_a=15.0)
    battery = Battery(capacity_kwh=CAPACITY_KWH, soc_pct=soc_pct)
    async with (
        running_csms(tmp_path / "csms") as csms,
        running_sim(evse_cfg, battery=battery, vehicle_config=vehicle_cfg) as rig,
    ):
        await csms.add_station(STATION_ID, password=PASSWORD)
        settings = agent_settings(
            tmp_path / "agent", csms.url, security={"profile": 1, "basic_auth_password": PASSWORD}
        )
        agent = build_agent(settings, {1: rig.sim.evse})
        task = asyncio.create_task(agent.run())
        commands = csms.services.commands
        v2g = V2gService(csms.services.db, commands, settings=V2gSettings())
        try:
            await eventually(lambda: agent.online, within_s=15)
            meter_every = {
                "component": {"name": "SampledDataCtrlr"},
                "variable": {"name": "TxUpdatedInterval"},
                "attributeValue": "1",
            }
            answer = await commands.send(
                STATION_ID, "SetVariables", {"setVariableData": [meter_every]}
            )
            assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
            rig.sim.vehicle.plug_in()
            started = await commands.send(
                STATION_ID,
                "RequestStartTransaction",
                {
                    "idToken": {"idToken": "V2G-1", "type": "Central"},
                    "remoteStartId": 7,
                    "evseId": 1,
                },
            )
            assert started["status"] == "Accepted"
            now = v2g.now()
            first = now.replace(minute=0, second=0, microsecond=0)
            # Two expensive hours now (export pays), cheap ones after: the plan exports now.
            prices = [40.0] * 12 + [5.0] * 12
            await v2g.put_prices(
                [
                    PriceRow(first + timedelta(minutes=15 * k), 900, p, p * 2.5 if p > 10 else 1.0)
                    for k, p in enumerate(prices)
                ]
            )
            await v2g.create_vehicle(
                VehicleRecord(
                    id=vehicle_id,
                    name=name,
                    capacity_kwh=CAPACITY_KWH,
                    chemistry="NMC",
                    soc_min=0.0,
                    soc_max=1.0,
                    max_charge_kw=3.0,
                    max_discharge_kw=3.0,
                    round_trip_efficiency=0.9,
                    driving_reserve_soc=0.3,
                    backup_reserve_soc=0.2,
                    station_id=STATION_ID,
                    evse_id=1,
                    departure=first + timedelta(hours=5),
                    target_soc=0.6,
                )
            )

            async def active_with_soc() -> bool:
                page = await csms.services.transactions.list(station_id=STATION_ID)
                if not page.items or page.items[0].state is not TransactionState.ACTIVE:
                    return False
                ctx = await v2g.session_context(await v2g.get_vehicle(vehicle_id), v2g.now())
                return ctx.soc is not None and ctx.transaction is not None

            deadline = time.monotonic() + 20
            while not await active_with_soc():
                assert time.monotonic() < deadline, "no transaction with SoC"
                await asyncio.sleep(0.05)
            sent = await v2g.optimize_station(STATION_ID)
            assert sent.status == "Accepted", sent
            assert sent.plan.power_kw[0] < 0, sent.plan.power_kw  # exporting now
            live = LiveRig(csms, v2g, rig, vehicle_id)
            await wait_for(lambda: live.current_a() < -1.0, within_s=20)
            yield live
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()
