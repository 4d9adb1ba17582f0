"""ChademoEvse and the simulated vehicle on a python-can `virtual` bus: whole sessions."""

from __future__ import annotations

import asyncio
import itertools

from chargepoint_firmware.chademo.controller import ChargerState
from chargepoint_firmware.chademo.frames import (
    ID_CHARGER_CAPABILITIES,
    ID_CHARGER_DISCHARGE_STATUS,
    ID_CHARGER_DISCHARGE_TIME,
    ID_CHARGER_STATUS,
    ID_VEHICLE_STATUS,
    ChargerDischargeStatus,
    ChargerStatus,
)
from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.interfaces import (
    EvseSetpoint,
    HardwareEvent,
    HardwareEventKind,
    SessionState,
)
from tests.support.chademo_sim import Rig, running_sim, start_session, wait_ticks, wait_until


def kinds(events: list[HardwareEvent]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.detail) for e in events]


def assert_relays_off_in_order(rig: Rig, since: float) -> None:
    """Current to 0 first, then d2 off, >= 500 ms later d1 off, then the lock opens."""
    ports = rig.sim.ports
    d2_off = [t for t, on in ports.d2.history if not on and t >= since]
    d1_off = [t for t, on in ports.d1.history if not on and t >= since]
    unlock = [t for t, locked in ports.lock.history if not locked and t >= since]
    zero = [t for t, current in ports.power_stage.commands if abs(current) <= 5.0 and t >= since]
    assert d2_off and d1_off and unlock and zero, "sequence did not complete"
    assert zero[0] <= d2_off[0] < d1_off[0] <= unlock[0]
    assert d1_off[0] - d2_off[0] >= 0.5 - 0.005
    assert not rig.sim.connector.link.d2_on and not rig.sim.connector.d1_on
    assert rig.sim.connector.link.current_a() == 0.0


async def test_full_charge_session_energy_and_soc_rise() -> None:
    vehicle = SimVehicleConfig(permission_delay_s=0.2, time_scale=200.0)
    async with running_sim(battery=Battery(soc_pct=50.0), vehicle_config=vehicle) as rig:
        sim, events = rig.sim, []
        sim.evse.subscribe(events.append)
        await start_session(rig)
        await wait_until(lambda: sim.evse.status().current_a >= 14.0, 5.0)
        status = sim.evse.status()
        assert status.state is SessionState.CHARGING
        assert 360 <= status.voltage_v <= 400  # Leaf-like battery at 50 %
        soc_before, import_before = sim.vehicle.battery.soc_pct, status.energy_import_wh
        await asyncio.sleep(1.0)
        status = sim.evse.status()
        assert sim.vehicle.battery.soc_pct > soc_before + 1.0  # 200x: ~1.1 kWh per second
        assert status.energy_import_wh > import_before + 200.0
        assert status.energy_export_wh == 0.0
        assert status.soc_pct is not None and abs(status.soc_pct - sim.vehicle.battery.soc_pct) < 2
        # The charger never gives more than the car asks for.
        for trace in sim.evse.trace:
            assert trace.commanded_a <= 15.0
        # Cyclic frames: 0x108, 0x109, 0x208, 0x209 every 100 ms, each once per cycle (one
        # python-can periodic task per id: on the `virtual` bus each task is its own thread, so
        # the order within a cycle is not fixed).
        charger_ids = [0x108, 0x109, 0x208, 0x209]
        ids = [cid for _, cid, _ in rig.sniffer.frames if cid in charger_ids]
        assert sorted(ids[:4]) == charger_ids and sorted(ids[4:8]) == charger_ids
        stamps = [t for t, cid, _ in rig.sniffer.frames if cid == ID_CHARGER_STATUS]
        periods = [b - a for a, b in itertools.pairwise(stamps[5:])]
        assert 0.09 <= sum(periods) / len(periods) <= 0.11
        first_ev = next(t for t, cid, _ in rig.sniffer.frames if cid == ID_VEHICLE_STATUS)
        first_charger = next(t for t, cid, _ in rig.sniffer.frames if cid == ID_CHARGER_STATUS)
        assert first_ev < first_charger  # the EV sends first

        stop_from = sim.connector.link.clock()
        sim.evse.allow_energy_transfer(False)  # charger-side normal stop
        await wait_until(lambda: sim.evse.controller_state.state is ChargerState.PLUGGED, 8.0)
        assert_relays_off_in_order(rig, stop_from)
        assert not sim.vehicle.contactor_closed
        assert ("energy_transfer_stopped", "deauthorized") in kinds(events)
        assert ("session_ended", "deauthorized") in kinds(events)
        assert sim.evse.status().latched_faults == ()


async def test_discharge_session_0x208_carries_the_current_and_soc_falls() -> None:
    vehicle = SimVehicleConfig(permission_delay_s=0.2, time_scale=200.0)
    config = ChademoEvseConfig(max_discharge_current_a=12.0)
    async with running_sim(config, battery=Battery(soc_pct=80.0), vehicle_config=vehicle) as rig:
        sim = rig.sim
        sim.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-3000.0, unit="W"))
        sim.evse.set_csms_connected(True)
        await start_session(rig)
        assert sim.evse.controller_state.state is ChargerState.DISCHARGING
        await wait_until(lambda: sim.evse.status().current_a <= -7.5, 5.0)
        status = sim.evse.status()
        assert status.state is SessionState.DISCHARGING
        # -3000 W at the battery's present voltage
        assert abs(status.power_w + 3000.0) < 3000.0 * 0.03
        soc_before, export_before = sim.vehicle.battery.soc_pct, status.energy_export_wh
        since = sim.connector.link.clock()
        await asyncio.sleep(1.0)
        assert sim.vehicle.battery.soc_pct < soc_before - 0.5
        assert sim.evse.status().energy_export_wh > export_before + 100.0
        assert sim.evse.status().energy_import_wh < 5.0  # only the start-up moments, if any
        discharge = [f for _, f in rig.sniffer.decoded(ID_CHARGER_DISCHARGE_STATUS, since)]
        assert discharge and all(isinstance(f, ChargerDischargeStatus) for f in discharge)
        assert {f.discharge_current_a for f in discharge} <= {7, 8}  # type: ignore[union-attr]
        assert {f.available_input_current_a for f in discharge} == {12}  # type: ignore[union-attr]
        assert rig.sniffer.decoded(ID_CHARGER_DISCHARGE_TIME, since)
        capabilities = [f for _, f in rig.sniffer.decoded(ID_CHARGER_CAPABILITIES, since)]
        assert {f.available_output_current_a for f in capabilities} == {0}  # type: ignore[union-attr]
        statuses = [f for _, f in rig.sniffer.decoded(ID_CHARGER_STATUS, since)]
        assert all(
            isinstance(f, ChargerStatus) and f.charger_delivering and f.discharge_compatible
            for f in statuses
        )


async def test_direction_change_mid_session() -> None:
    async with running_sim() as rig:
        sim, events = rig.sim, []
        sim.evse.subscribe(events.append)
        sim.evse.set_csms_connected(True)
        await start_session(rig)
        await wait_until(lambda: sim.evse.status().current_a >= 14.0, 5.0)
        sim.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-10.0, unit="A"))
        await wait_until(lambda: sim.evse.status().current_a <= -9.5, 5.0)
        assert sim.vehicle.request_a == 0.0  # the car dropped its charge request
        sim.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=8.0, unit="A"))
        await wait_until(lambda: sim.evse.status().current_a >= 7.5, 5.0)
        assert sim.evse.status().state is SessionState.CHARGING
        assert sim.vehicle.request_a == 8.0  # it followed 0x108 byte 3 down to the new limit
        assert [e for e in kinds(events) if e[0] == "direction_changed"] == [
            ("direction_changed", "discharge"),
            ("direction_changed", "charge"),
        ]
        visited = [state for _, state in sim.evse.controller_state.history]
        assert visited[-4:] == [
            ChargerState.SWITCH_TO_DISCHARGE,
            ChargerState.DISCHARGING,
            ChargerState.SWITCH_TO_CHARGE,
            ChargerState.CHARGING,
        ]
        # Suspension: a 0 W setpoint keeps the session but stops the current.
        sim.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=0.0, unit="W"))
        await wait_until(lambda: abs(sim.evse.status().current_a) < 0.5, 3.0)
        assert sim.evse.status().state is SessionState.SUSPENDED


async def test_vehicle_side_normal_stop() -> None:
    async with running_sim() as rig:
        sim, events = rig.sim, []
        sim.evse.subscribe(events.append)
        await start_session(rig)
        await wait_until(lambda: sim.evse.status().current_a >= 10.0, 5.0)
        since = sim.connector.link.clock()
        sim.vehicle.request_stop()  # 0x102 b5.0 falls
        await wait_until(lambda: sim.evse.controller_state.state is ChargerState.ENDED, 8.0)
        assert sim.evse.controller_state.stop_reason == "ev_stop_request"
        assert not sim.evse.controller_state.error_stop
        assert_relays_off_in_order(rig, since)
        assert ("session_ended", "ev_stop_request") in kinds(events)
        assert sim.evse.status().latched_faults == ()
        sim.vehicle.unplug()
        await wait_until(lambda: sim.evse.status().state is SessionState.IDLE, 2.0)
        assert ("unplugged", "") in kinds(events)
        assert sim.evse.status().soc_pct is None  # nothing plugged: no stale vehicle data


async def test_grid_loss_stops_export_and_is_reported() -> None:
    async with running_sim() as rig:
        sim, events = rig.sim, []
        sim.evse.subscribe(events.append)
        sim.evse.set_csms_connected(True)
        sim.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-10.0, unit="A"))
        await start_session(rig)
        await wait_until(lambda: sim.evse.status().current_a <= -9.5, 5.0)
        sim.ports.grid.set_present(False)
        lost_at = sim.connector.link.clock()
        stopped_at = await wait_until(
            lambda: sim.evse.status().current_a > -0.5,
            2.0,
            context=lambda: (sim.evse.status(), sim.evse.controller_state.state),
        )
        assert stopped_at - lost_at < 2.0  # AS/NZS 4777.2: disconnect within 2 s
        assert any(e.kind is HardwareEventKind.GRID_LOST for e in events)
        assert sim.evse.status().grid_present is False
        sim.ports.grid.set_present(True)
        await wait_until(lambda: sim.evse.status().current_a <= -9.5, 5.0)
        assert any(e.kind is HardwareEventKind.GRID_RESTORED for e in events)


async def test_stopping_the_evse_mid_transfer_ends_the_session_in_order() -> None:
    async with running_sim() as rig:
        sim = rig.sim
        await start_session(rig)
        await wait_until(lambda: sim.evse.status().current_a >= 10.0, 5.0)
        since = sim.connector.link.clock()
        await sim.evse.stop()
        assert sim.evse.controller_state.state in (ChargerState.ENDED, ChargerState.PLUGGED)
        assert_relays_off_in_order(rig, since)
        assert not sim.vehicle.contactor_closed  # the car opened it before d2 went off


async def test_malformed_and_unknown_frames_do_not_disturb_a_session() -> None:
    import can

    async with running_sim() as rig:
        sim = rig.sim
        await start_session(rig)
        await wait_until(lambda: sim.evse.status().current_a >= 10.0, 5.0)
        for msg in (
            can.Message(arbitration_id=0x102, data=b"\x01\x02\x03", is_extended_id=False),
            can.Message(arbitration_id=0x700, data=bytes(8), is_extended_id=False),
            can.Message(arbitration_id=0x102, data=bytes(8), is_extended_id=True),
        ):
            rig.sniffer.bus.send(msg)
        await asyncio.sleep(0.3)
        assert sim.evse.controller_state.state is ChargerState.CHARGING
        assert sim.evse.status().current_a >= 10.0


async def test_discharge_stops_at_the_soc_floor_and_the_session_stays_suspended() -> None:
    vehicle = SimVehicleConfig(permission_delay_s=0.2, time_scale=200.0)
    async with running_sim(battery=Battery(soc_pct=22.0), vehicle_config=vehicle) as rig:
        sim = rig.sim
        sim.evse.set_csms_connected(True)
        sim.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-15.0, unit="A"))
        await start_session(rig)
        await wait_until(lambda: sim.evse.status().current_a <= -5.0, 5.0)
        await wait_until(lambda: sim.evse.status().current_a == 0.0, 10.0)
        status = sim.evse.status()
        assert status.state is SessionState.SUSPENDED
        assert status.limited_by == "safety:soc_floor" or "ev_max_discharge" in status.limited_by
        # 20 % floor (driving reserve and the car's 0x200 byte 6); one 100 ms tick at 200x
        # moves the SoC by about 0.13 %.
        assert 19.5 <= sim.vehicle.battery.soc_pct <= 20.5
        # Five more control cycles, each re-evaluating the floor: none discharges (counted,
        # not slept, so a stalled loop cannot pass this vacuously).
        ticks = await wait_ticks(sim.evse, 5)
        assert all(t.commanded_a >= 0.0 for t in ticks), ticks
        assert sim.vehicle.battery.soc_pct >= 19.5
        assert sim.evse.controller_state.state is ChargerState.DISCHARGING
