"""A complete simulated EVSE: `ChademoEvse` + simulated ports + a simulated vehicle on one bus.

Both ends open their own python-can bus on the same channel (e.g. `virtual`), exactly like a
charger and a car on a real CAN cable; they share only the `SimConnector` (signals + DC link).

    sim = SimulatedEvse.create(ChademoEvseConfig(can_interface="virtual", can_channel="sim-1"))
    await sim.start()
    sim.vehicle.plug_in(); sim.evse.allow_energy_transfer(True)
    ...
    await sim.stop()
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import can

from chargepoint_firmware.hardware.chademo_evse import ChademoEvse, ChademoEvseConfig
from chargepoint_firmware.hardware.sim_ports import (
    DcLink,
    SimConnector,
    SimPortSet,
    simulated_ports,
)
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicle, SimVehicleConfig


@dataclass
class SimulatedEvse:
    evse: ChademoEvse
    vehicle: SimVehicle
    ports: SimPortSet
    connector: SimConnector
    vehicle_bus: can.BusABC

    @classmethod
    def create(
        cls,
        config: ChademoEvseConfig,
        *,
        battery: Battery | None = None,
        vehicle_config: SimVehicleConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> SimulatedEvse:
        vehicle_config = vehicle_config or SimVehicleConfig()
        if vehicle_config.time_scale != 1.0 and config.energy_time_scale == 1.0:
            config = replace(config, energy_time_scale=vehicle_config.time_scale)
        connector = SimConnector(link=DcLink(clock=clock))
        ports, sims = simulated_ports(connector)
        vehicle_bus = can.Bus(
            interface=config.can_interface, channel=config.can_channel, bitrate=config.can_bitrate
        )
        vehicle = SimVehicle(vehicle_bus, connector, battery, vehicle_config, clock=clock)
        evse = ChademoEvse(config, ports, clock=clock)
        return cls(
            evse=evse, vehicle=vehicle, ports=sims, connector=connector, vehicle_bus=vehicle_bus
        )

    async def start(self) -> None:
        await self.vehicle.start()
        await self.evse.start()

    async def stop(self, graceful_s: float = 5.0) -> None:
        """Stop the EVSE (ending a session normally for up to `graceful_s`), then the car."""
        await self.evse.stop(graceful_s)
        await self.vehicle.stop()
        self.vehicle_bus.shutdown()
