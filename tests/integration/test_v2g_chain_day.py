"""An optimized session through the whole chain at 1200x speed: the project CSMS plans with the
LP and sends the plan as a TxProfile; the agent (on a scaled clock) follows it through
ChademoEvse and a python-can virtual bus to a simulated CHAdeMO car whose battery integrates
the real currents 1200x faster. The CSMS re-plans from the SoC meter values it receives.
Checked: the car charges in the cheap hours, discharges in the expensive one and leaves with
its departure SoC target (SoC from the car itself)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.wiring import build_agent
from csms.domain.models import TransactionState
from csms.domain.v2g_records import PriceRow, VehicleRecord
from csms.services.v2g import V2gService, V2gSettings
from tests.support.agent_harness import STATION_ID, agent_settings, eventually
from tests.support.chademo_sim import running_sim
from tests.support.csms_harness import PASSWORD, running_csms

SCALE = 1200.0
PRICES_C = [10.0] * 4 + [20.0] * 4 + [90.0] * 4 + [25.0] * 4  # 15-minute intervals, 4 hours


class ScaledClock:
    """The agent's clock running SCALE times faster than real time from `start`."""

    def __init__(self, start: datetime, scale: float) -> None:
        self.start = start
        self.scale = scale
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.scale)

    async def sleep_until(self, when: datetime) -> None:
        while True:
            delay = (when - self.now()).total_seconds() / self.scale
            if delay <= 0:
                return
            await asyncio.sleep(delay)


async def test_optimized_session_through_agent_and_simulated_car(tmp_path: Path) -> None:
    (tmp_path / "csms").mkdir()
    start = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    clock = ScaledClock(start, SCALE)
    vehicle_cfg = SimVehicleConfig(permission_delay_s=0.2, time_scale=SCALE)
    evse_cfg = ChademoEvseConfig(max_charge_current_a=15.0, max_discharge_current_a=15.0)
    battery = Battery(capacity_kwh=24.0, soc_pct=50.0)
    async with (
        running_csms(tmp_path / "csms") as csms,
        running_sim(evse_cfg, battery=battery, vehicle_config=vehicle_cfg) as rig,
    ):
        await csms.add_station(STATION_ID, password=PASSWORD)
        settings = agent_settings(
            tmp_path / "agent", csms.url, security={"profile": 1, "basic_auth_password": PASSWORD}
        )
        agent = build_agent(settings, {1: rig.sim.evse}, clock=clock)
        task = asyncio.create_task(agent.run())
        commands = csms.services.commands
        v2g = V2gService(
            csms.services.db,
            commands,
            clock=clock.now,
            settings=V2gSettings(plan_max_age_s=1800.0, soc_tolerance=0.02),
        )
        replanner: asyncio.Task[None] | None = None
        try:
            await eventually(lambda: agent.online, within_s=10)
            meter_every = {
                "component": {"name": "SampledDataCtrlr"},
                "variable": {"name": "TxUpdatedInterval"},
                "attributeValue": "300",  # agent seconds: 0.25 s real
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

            async def active_tx_with_soc() -> bool:
                page = await csms.services.transactions.list(station_id=STATION_ID)
                if not page.items or page.items[0].state is not TransactionState.ACTIVE:
                    return False
                record = await v2g.get_vehicle("sim-leaf")
                ctx = await v2g.session_context(record, clock.now())
                return ctx.soc is not None and ctx.transaction is not None

            now = clock.now()
            first = now.replace(minute=0, second=0, microsecond=0)
            await v2g.put_prices(
                [
                    PriceRow(first + timedelta(minutes=15 * k), 900, p, p * 0.9)
                    for k, p in enumerate([10.0] * 4 + PRICES_C)
                ]
            )
            departure = first + timedelta(hours=5)
            await v2g.create_vehicle(
                VehicleRecord(
                    id="sim-leaf",
                    capacity_kwh=24.0,
                    chemistry="NMC",
                    soc_min=0.0,
                    soc_max=0.95,
                    max_charge_kw=3.0,
                    max_discharge_kw=3.0,
                    round_trip_efficiency=0.9,
                    driving_reserve_soc=0.3,
                    backup_reserve_soc=0.0,
                    station_id=STATION_ID,
                    evse_id=1,
                    departure=departure,
                    target_soc=0.7,
                )
            )
            deadline = time.monotonic() + 15
            while not await active_tx_with_soc():
                assert time.monotonic() < deadline, "no transaction with SoC"
                await asyncio.sleep(0.05)
            sent = await v2g.optimize_station(STATION_ID)
            assert sent.status == "Accepted", sent
            assert sent.plan.target_met
            assert min(sent.plan.power_kw) < 0 < max(sent.plan.power_kw)

            async def replan_forever() -> None:
                while True:
                    await asyncio.sleep(0.5)
                    await v2g.replan_all()

            replanner = asyncio.create_task(replan_forever())
            # Watch the car through the sim day: direction per price band, SoC at departure.
            seen: dict[float, list[float]] = {}
            while clock.now() < departure - timedelta(minutes=2):
                status = rig.sim.evse.status()
                price = _price_at(first, clock.now())
                seen.setdefault(price, []).append(status.current_a)
                await asyncio.sleep(0.02)
            soc_at_departure = rig.sim.vehicle.battery.soc_pct / 100.0
            assert soc_at_departure >= 0.7 - 0.02, soc_at_departure
            assert min(seen[90.0]) < -3.0  # discharged into the 90 c/kWh hour
            assert max(seen[10.0]) > 3.0  # charged in the cheap hours
        finally:
            if replanner is not None:
                replanner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replanner
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()


def _price_at(first: datetime, moment: datetime) -> float:
    index = int((moment - first) / timedelta(minutes=15))
    prices = [10.0] * 4 + PRICES_C
    return prices[min(max(index, 0), len(prices) - 1)]
