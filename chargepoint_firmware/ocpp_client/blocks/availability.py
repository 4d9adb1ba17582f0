"""Block G: ChangeAvailability, UnlockConnector."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_client.blocks.base import BlockBase, status_info


class AvailabilityBlock(BlockBase):
    @on(Action.change_availability)
    def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> call_result.ChangeAvailability:
        operative = operational_status == "Operative"
        evse_id = None if evse is None else int(evse["id"])
        if evse_id not in (None, 0) and evse_id not in self.agent.hardware:
            return call_result.ChangeAvailability(
                status="Rejected", status_info=status_info("UnknownEvse")
            )
        if evse is not None and evse.get("connector_id", 1) != 1:
            return call_result.ChangeAvailability(
                status="Rejected", status_info=status_info("UnknownConnector")
            )
        targets = list(self.agent.hardware) if evse_id in (None, 0) else [evse_id]
        results = [self.agent.transactions.set_operative(e, operative) for e in targets]
        self.agent.update_all_status()
        return call_result.ChangeAvailability(
            status="Scheduled" if "Scheduled" in results else "Accepted"
        )

    @on(Action.unlock_connector)
    def on_unlock_connector(
        self, evse_id: int, connector_id: int, **_: Any
    ) -> call_result.UnlockConnector:
        if evse_id not in self.agent.hardware or connector_id != 1:
            return call_result.UnlockConnector(status="UnknownConnector")
        st = self.agent.transactions.evses[evse_id]
        if st.tx_id is not None and st.id_token is not None:
            # F05.FR.02: an authorized transaction is running; it must be stopped first.
            return call_result.UnlockConnector(status="OngoingAuthorizedTransaction")
        # The CHAdeMO controller locks the connector only during an energy-transfer session;
        # with no authorized session it has released (or is releasing) the lock.
        self.agent.hardware[evse_id].allow_energy_transfer(False)
        return call_result.UnlockConnector(status="Unlocked")
