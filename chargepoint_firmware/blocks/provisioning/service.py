"""Provisioning on the station (blocks B/F): Reset and its scheduling, the device model
requests (Get/SetVariables, GetBaseReport, GetReport -> NotifyReport), TriggerMessage.

The reboot itself (end the session, register again) and the boot on request belong to the
agent's connection lifecycle: the composition root hands them in as `request_reboot`,
`request_reconnect` and `boot_now`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ocpp.v201 import call

from chargepoint_firmware.blocks.diagnostics.events import TransferStatus
from chargepoint_firmware.blocks.provisioning.device_model_adapter import DeviceModelAdapter
from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.interfaces import EvseHardware
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.station.config import ConfigView


class StatusSender(Protocol):
    async def send_status(self, evse_ids: list[int]) -> None: ...


class Link(Protocol):
    """What provisioning needs of the CSMS link: the registration state and sending."""

    registration: str | None

    async def send_call(self, payload: Any) -> Any: ...


def _nothing() -> None:
    return None


class Provisioning:
    def __init__(
        self,
        *,
        hardware: Mapping[int, EvseHardware],
        dm: DeviceModelAdapter,
        config: ConfigView,
        clock: Clock,
        link: Link,
        transactions: TransactionManager,
        status: StatusSender,
        transfers: TransferStatus,
    ) -> None:
        self.hardware = hardware
        self.dm = dm
        self.config = config
        self.clock = clock
        self.link = link
        self.transactions = transactions
        self.status = status
        self.transfers = transfers
        self.pending_reset: set[int | None] = set()
        # The agent's lifecycle (wired by the composition root).
        self.request_reboot: Callable[[], None] = _nothing
        self.request_reconnect: Callable[[], None] = _nothing
        self.boot_now: Callable[[], None] = _nothing

    # -- state the handlers read --------------------------------------------------------------
    def evse_ids(self) -> list[int]:
        return list(self.hardware)

    def registration(self) -> str | None:
        return self.link.registration

    def busy(self, evse_id: int) -> bool:
        return self.transactions.evses[evse_id].tx_id is not None

    def any_transaction(self) -> bool:
        return self.transactions.any_transaction()

    # -- Reset (B11/B12) ----------------------------------------------------------------------
    def reset_evse(self, evse_id: int) -> None:
        self.transactions.end_transactions([evse_id], "ResetCommand", "ImmediateReset")
        self.hardware[evse_id].reset_faults()

    def reset_station(self) -> None:
        self.transactions.end_transactions(None, "ResetCommand", "ImmediateReset")
        self.request_reboot()

    def schedule_reset(self, evse_id: int | None) -> None:
        self.pending_reset.add(evse_id)

    def check_pending_reset(self) -> None:
        for evse_id in list(self.pending_reset):
            if evse_id is None:
                if not self.transactions.any_transaction():
                    self.pending_reset.discard(None)
                    self.request_reboot()
            elif self.transactions.evses[evse_id].tx_id is None:
                self.pending_reset.discard(evse_id)
                self.hardware[evse_id].reset_faults()

    # -- device model (B05-B08) ---------------------------------------------------------------
    def get_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.dm.get_variables(data)

    def set_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.dm.set_variables(data)

    def report(
        self,
        *,
        report_base: str | None = None,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]] | None:
        return self.dm.report(
            report_base=report_base,
            component_criteria=component_criteria,
            component_variable=component_variable,
        )

    async def send_report(self, request_id: int, report_data: list[dict[str, Any]]) -> None:
        per_message = max(1, self.config.integer("DeviceDataCtrlr", "ItemsPerMessageGetReport"))
        chunks = [
            report_data[i : i + per_message] for i in range(0, len(report_data), per_message)
        ] or [[]]
        generated_at = iso_ms(self.clock.now())
        for seq_no, chunk in enumerate(chunks):
            await self.link.send_call(
                call.NotifyReport(
                    request_id=request_id,
                    generated_at=generated_at,
                    seq_no=seq_no,
                    report_data=chunk or None,
                    tbc=seq_no < len(chunks) - 1,
                )
            )

    # -- TriggerMessage (F06) -----------------------------------------------------------------
    async def send_triggered(self, message: str, evse_ids: list[int]) -> None:
        send = self.link.send_call
        match message:
            case "BootNotification":
                self.boot_now()
            case "Heartbeat":
                await send(call.Heartbeat())
            case "StatusNotification":
                await self.status.send_status(evse_ids)
            case "MeterValues":
                for evse_id in evse_ids:
                    payload = self.transactions.meter_values_message(evse_id, "Trigger")
                    if payload is not None:
                        await send(call.MeterValues(**payload))
            case "TransactionEvent":
                for evse_id in evse_ids:
                    self.transactions.sample(evse_id, "Trigger", "Trigger")
            case "LogStatusNotification":
                status, request_id = self.transfers.last_log_status
                if status not in ("Uploading",):
                    status = "Idle"
                await send(call.LogStatusNotification(status=status, request_id=request_id))
            case "FirmwareStatusNotification":
                status, request_id = self.transfers.last_firmware_status
                if status in ("Installed",):
                    status = "Idle"
                await send(call.FirmwareStatusNotification(status=status, request_id=request_id))
