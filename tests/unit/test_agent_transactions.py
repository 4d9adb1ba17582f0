"""TransactionManager without a network: start/stop points, durability, crash recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargepoint_firmware.blocks.provisioning.device_model_adapter import BuiltinDeviceModel
from chargepoint_firmware.blocks.transactions.manager import (
    TransactionManager,
    stopped_reason_for_fault,
)
from chargepoint_firmware.ocpp_edge.outbox import Outbox
from chargepoint_firmware.settings import load_settings
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.storage import AgentStorage
from tests.support.agent_fakes import FakeEvse, ManualClock


class Rig:
    def __init__(self, state: Path, online: bool = True, **variables: str) -> None:
        settings = load_settings(None, station_id="U", csms_url="ws://127.0.0.1:1", state_dir=state)
        self.dm = BuiltinDeviceModel([1], settings)
        for key, value in variables.items():
            component, variable = key.split("__")
            self.dm.set_value(component, variable, value)
        self.clock = ManualClock()
        self.evse = FakeEvse(1, self.clock)
        self.storage = AgentStorage(state / "agent.sqlite3")
        self.online = online
        ids = iter(f"tx-{n}" for n in range(100))
        self.tm = TransactionManager(
            storage=self.storage,
            clock=self.clock,
            hardware={1: self.evse},
            config=ConfigView(self.dm),
            outbox=Outbox(self.storage),
            is_online=lambda: self.online,
            new_transaction_id=lambda: next(ids),
        )
        self.tm.restore()

    def events(self) -> list[dict[str, Any]]:
        return [m.payload for m in self.storage.pending() if m.action == "TransactionEvent"]


async def test_e_tx_start_point_power_path_closed_needs_plug_and_authorization(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.tm.set_plugged(1, True)
    assert rig.events() == []
    accepted, running = rig.tm.remote_start(1, {"id_token": "A", "type": "Central"}, 4, None)
    assert accepted and running is None
    (started,) = rig.events()
    assert started["event_type"] == "Started"
    assert started["trigger_reason"] == "RemoteStart"
    assert started["transaction_info"]["remote_start_id"] == 4
    assert rig.evse.allowed


async def test_e_tx_stop_point_energy_transfer_ends_when_transfer_stops(tmp_path: Path) -> None:
    rig = Rig(tmp_path, TxCtrlr__TxStopPoint="EnergyTransfer")
    rig.tm.set_plugged(1, True)
    rig.tm.remote_start(1, {"id_token": "A", "type": "Central"}, 1, None)
    rig.tm.set_energy_transfer(1, True)  # the hardware reports the transfer
    assert rig.events()[-1]["transaction_info"]["charging_state"] == "Charging"
    rig.tm.set_energy_transfer(1, False)
    ended = rig.events()[-1]
    assert ended["event_type"] == "Ended"
    assert ended["transaction_info"]["stopped_reason"] == "StoppedByEV"


async def test_e_seq_no_and_state_survive_restart_and_crash_ends_with_power_loss(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, online=False)
    rig.tm.set_plugged(1, True)
    rig.tm.remote_start(1, {"id_token": "A", "type": "Central"}, 1, None)
    rig.evse.add_energy(import_wh=42.0)
    rig.tm.sample(1)
    rig.tm.sample(1)
    assert [e["seq_no"] for e in rig.events()] == [0, 1, 2]
    assert all(e["offline"] for e in rig.events())
    rig.storage.close()  # the process dies here (no orderly shutdown)

    again = Rig(tmp_path, online=False)
    events = again.events()
    assert [e["seq_no"] for e in events] == [0, 1, 2, 3]
    assert events[-1]["event_type"] == "Ended"
    assert events[-1]["transaction_info"]["stopped_reason"] == "PowerLoss"
    register = [
        sv["value"]
        for sv in events[-1]["meter_value"][0]["sampled_value"]
        if sv["measurand"] == "Energy.Active.Import.Register"
    ]
    assert register == [42.0]  # the last reading persisted before the crash
    assert again.tm.evses[1].tx_id is None


async def test_clean_shutdown_ends_with_reboot(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.tm.set_plugged(1, True)
    rig.tm.remote_start(1, {"id_token": "A", "type": "Central"}, 1, None)
    rig.tm.shutdown()
    assert rig.events()[-1]["transaction_info"]["stopped_reason"] == "Reboot"
    rig.storage.close()
    again = Rig(tmp_path)
    assert [e["event_type"] for e in again.events()] == ["Started", "Ended"]


def test_fault_causes_map_to_stopped_reasons() -> None:
    assert stopped_reason_for_fault("emergency_stop") == "EmergencyStop"
    assert stopped_reason_for_fault("vehicle_fault:battery_overvoltage") == "StoppedByEV"
    assert stopped_reason_for_fault("grid_loss") == "PowerLoss"
    assert stopped_reason_for_fault("something_new") == "Other"
