"""End to end on loopback: REST API -> CSMS -> OCPP websocket -> agent -> composite schedule ->
safety -> CHAdeMO controller -> python-can virtual bus -> simulated vehicle, and the meter
values back through the CSMS to the API.

The CAN side is observed as a third party would: a second python-can Bus on the station's
virtual channel, frames decoded with `chargepoint_firmware.chademo.frames`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargepoint_firmware.chademo.frames import (
    ChargerCapabilities,
    ChargerDischargeStatus,
    ChargerDischargeTime,
    ChargerStatus,
    VehicleStatus,
)
from chargepoint_firmware.simulate import Car
from tests.support.chademo_sim import BusRecorder
from tests.support.e2e_stack import running_stack, until, until_true

EXPORT = "Energy.Active.Export.Register"
IMPORT = "Energy.Active.Import.Register"
SPEED = 60.0  # simulated seconds per real second: SoC moves visibly within seconds


def frames_of(recorder: BusRecorder, can_id: int, since: float = 0.0) -> list[tuple[float, Any]]:
    return recorder.decoded(can_id, since)


def rising(samples: list[dict[str, Any]]) -> bool:
    values = [s["value"] for s in sorted(samples, key=lambda s: s["timestamp"])]
    return len(values) >= 3 and values[-1] > values[0] and values == sorted(values)


async def test_api_negative_limit_discharges_over_0x208_and_export_register_reaches_api(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        station = await stack.add_station(
            "E2E-DIS", car=Car("Leaf", 24.0, 80.0), speed=SPEED, meter_interval_s=int(SPEED)
        )
        bus = stack.sniff(station)
        station.plug_in()
        tx = await stack.remote_start(station)

        response = await stack.set_tx_profile("E2E-DIS", tx, -4000.0)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "Accepted"
        stored = (await stack.api.get("/stations/E2E-DIS/charging-profiles")).json()
        assert [p["profile_id"] for p in stored] == [100]
        composite = await stack.api.post(
            "/stations/E2E-DIS/ocpp/GetCompositeSchedule",
            json={"duration": 300, "evseId": 1, "chargingRateUnit": "W"},
        )
        assert composite.status_code == 200, composite.text
        assert composite.json()["status"] == "Accepted", composite.text
        periods = composite.json()["schedule"]["chargingSchedulePeriod"]
        assert periods[0]["limit"] == -4000.0, periods

        def discharging_on_bus() -> bool:
            return any(f.discharge_current_a >= 5 for _, f in frames_of(bus, 0x208))

        await until_true(discharging_on_bus, within_s=20, what="discharge current on 0x208")
        first = next(at for at, f in frames_of(bus, 0x208) if f.discharge_current_a >= 5)
        assert all(isinstance(f, ChargerDischargeStatus) for _, f in frames_of(bus, 0x208))
        assert all(isinstance(f, ChargerDischargeTime) for _, f in frames_of(bus, 0x209))
        # 0x209 follows 0x208 in the same cycle: the check may fall between the two frames.
        await until_true(
            lambda: bool(frames_of(bus, 0x209, since=first)),
            within_s=2,
            what="0x209 accompanying the discharge",
        )
        # 4 kW at ~370 V is ~11 A: the schedule, not the 15 A hardware limit, sets the current.
        await until_true(
            lambda: 9 <= frames_of(bus, 0x208)[-1][1].discharge_current_a <= 12,
            within_s=5,
            what="discharge current settling at 4 kW",
        )
        # Nothing offered for charging while discharging.
        offered = [f.available_output_current_a for _, f in frames_of(bus, 0x108, since=first)]
        assert offered and max(offered) == 0

        soc_start = station.battery_soc_pct()
        await until_true(
            lambda: station.battery_soc_pct() < soc_start - 0.3, within_s=10, what="SoC falling"
        )
        car_soc = [f.state_of_charge for _, f in frames_of(bus, 0x102, since=first)]
        assert isinstance(frames_of(bus, 0x102)[-1][1], VehicleStatus)
        assert car_soc[-1] <= car_soc[0]

        async def exported() -> list[dict[str, Any]] | None:
            samples = await stack.meter_values("E2E-DIS", tx, EXPORT)
            return samples if rising(samples) else None

        samples = await until(exported, within_s=15, what="a rising export register in the API")
        assert samples[-1]["value"] > 1.0  # Wh
        imports = await stack.meter_values("E2E-DIS", tx, IMPORT)
        assert imports and max(s["value"] for s in imports) < samples[-1]["value"]


async def test_api_positive_limit_charges_over_0x108_0x109_and_import_register_reaches_api(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        station = await stack.add_station(
            "E2E-CHG", car=Car("Leaf", 40.0, 30.0), speed=SPEED, meter_interval_s=int(SPEED)
        )
        bus = stack.sniff(station)
        station.plug_in()
        tx = await stack.remote_start(station)
        response = await stack.set_tx_profile("E2E-CHG", tx, 3000.0)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "Accepted"

        def offered_a() -> list[int]:
            return [f.available_output_current_a for _, f in frames_of(bus, 0x108)]

        # 3 kW at ~360 V is ~8 A offered in 0x108 (the hardware allows 32 A).
        await until_true(
            lambda: bool(offered_a()) and 6 <= offered_a()[-1] <= 9,
            within_s=20,
            what="0x108 offering the scheduled charge current",
        )
        assert all(isinstance(f, ChargerCapabilities) for _, f in frames_of(bus, 0x108))

        def delivered_a() -> list[int]:
            return [f.output_current_a for _, f in frames_of(bus, 0x109)]

        await until_true(
            lambda: bool(delivered_a()) and delivered_a()[-1] >= 5,
            within_s=10,
            what="0x109 reporting charge current",
        )
        assert all(isinstance(f, ChargerStatus) for _, f in frames_of(bus, 0x109))
        assert not [f for _, f in frames_of(bus, 0x208) if f.discharge_current_a > 0]

        soc_start = station.battery_soc_pct()
        await until_true(
            lambda: station.battery_soc_pct() > soc_start + 0.2, within_s=10, what="SoC rising"
        )

        async def imported() -> list[dict[str, Any]] | None:
            samples = await stack.meter_values("E2E-CHG", tx, IMPORT)
            return samples if rising(samples) else None

        samples = await until(imported, within_s=15, what="a rising import register in the API")
        assert samples[-1]["value"] > 1.0
        exports = await stack.meter_values("E2E-CHG", tx, EXPORT)
        assert all(s["value"] == 0 for s in exports)
