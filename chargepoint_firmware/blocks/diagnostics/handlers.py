"""Blocks L/N/P: UpdateFirmware, GetLog, DataTransfer (simulated transfers, honest statuses).

The agent has no firmware image store and no log upload client: UpdateFirmware and GetLog run
a simulated sequence of status notifications (documented as such) so that a CSMS can exercise
its side. The final status says what happened: a GetLog to a location other than a plain
http(s)/ftp URL fails with UploadFailure; UpdateFirmware ends with Installed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ocpp.routing import after, on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.blocks.diagnostics.events import TransferStatus
from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase, status_info

# Seconds between two simulated steps (tests shorten it).
SIMULATED_STEP_S = 0.05


class VendorData(Protocol):
    def data_transfer(
        self, vendor_id: str, message_id: str | None, data: Any
    ) -> tuple[str, dict[str, Any] | None]: ...


class DiagnosticsHandlers(HandlerBase):
    diagnostics: TransferStatus
    vendor_data: VendorData

    @on(Action.get_log)
    def on_get_log(
        self,
        log: dict[str, Any],
        log_type: str,
        request_id: int,
        call_unique_id: str = "",
        **_: Any,
    ) -> call_result.GetLog:
        location = str(log.get("remote_location", ""))
        reachable = location.startswith(("http://", "https://", "ftp://", "ftps://"))
        filename = f"{self.diagnostics.station_id}-{log_type}.log"

        async def upload() -> None:
            self.diagnostics.last_log_status = ("Uploading", request_id)
            await self.send_call(
                call.LogStatusNotification(status="Uploading", request_id=request_id)
            )
            await asyncio.sleep(SIMULATED_STEP_S)
            final = "Uploaded" if reachable else "UploadFailure"
            self.diagnostics.last_log_status = (final, request_id)
            await self.send_call(call.LogStatusNotification(status=final, request_id=request_id))

        self.later(call_unique_id, upload)
        return call_result.GetLog(status="Accepted", filename=filename)

    @after(Action.get_log)
    def after_get_log(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    @on(Action.update_firmware)
    def on_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        call_unique_id: str = "",
        **_: Any,
    ) -> call_result.UpdateFirmware:
        steps = ["Downloading", "Downloaded"]
        if firmware.get("signature"):
            steps.append("SignatureVerified")
        steps += ["Installing", "Installed"]

        async def install() -> None:
            for step in steps:
                self.diagnostics.last_firmware_status = (step, request_id)
                await self.send_call(
                    call.FirmwareStatusNotification(status=step, request_id=request_id)
                )
                await asyncio.sleep(SIMULATED_STEP_S)

        self.later(call_unique_id, install)
        return call_result.UpdateFirmware(status="Accepted")

    @after(Action.update_firmware)
    def after_update_firmware(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    @on(Action.data_transfer)
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None, **_: Any
    ) -> call_result.DataTransfer:
        # One vendor extension: org.openv2g.v2x / EmergencyBackup (v2x_local); any other
        # vendor id is unknown (P01.FR.06).
        status, info = self.vendor_data.data_transfer(vendor_id, message_id, data)
        reason = None if info is None else status_info(str(info.get("reasonCode", status)))
        return call_result.DataTransfer(status=status, status_info=reason)
