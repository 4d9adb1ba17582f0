"""Block B/F: Reset, device model (Get/SetVariables, GetBaseReport, GetReport), TriggerMessage."""

from __future__ import annotations

from typing import Any, Protocol

from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase, status_info

_TRIGGERABLE = {
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "MeterValues",
    "TransactionEvent",
    "LogStatusNotification",
    "FirmwareStatusNotification",
}


class ProvisioningPort(Protocol):
    def evse_ids(self) -> list[int]: ...

    def registration(self) -> str | None: ...

    def busy(self, evse_id: int) -> bool: ...

    def any_transaction(self) -> bool: ...

    def reset_evse(self, evse_id: int) -> None: ...

    def reset_station(self) -> None: ...

    def schedule_reset(self, evse_id: int | None) -> None: ...

    def request_reconnect(self) -> None: ...

    def get_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def set_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def report(
        self,
        *,
        report_base: str | None = None,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]] | None: ...

    async def send_report(self, request_id: int, report_data: list[dict[str, Any]]) -> None: ...

    async def send_triggered(self, message: str, evse_ids: list[int]) -> None: ...


class ProvisioningHandlers(HandlerBase):
    provisioning: ProvisioningPort

    # -- Reset (B11/B12) ----------------------------------------------------------------------
    @on(Action.reset)
    def on_reset(
        self, type: str, evse_id: int | None = None, call_unique_id: str = "", **_: Any
    ) -> call_result.Reset:
        station = self.provisioning
        if evse_id is not None and evse_id != 0:
            if evse_id not in station.evse_ids():
                return call_result.Reset(status="Rejected", status_info=status_info("UnknownEvse"))
            if type == "OnIdle" and station.busy(evse_id):
                station.schedule_reset(evse_id)
                return call_result.Reset(status="Scheduled")
            station.reset_evse(evse_id)
            return call_result.Reset(status="Accepted")
        if type == "OnIdle" and station.any_transaction():
            station.schedule_reset(None)
            return call_result.Reset(status="Scheduled")

        async def reboot() -> None:
            station.reset_station()

        self.later(call_unique_id, reboot)
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    # -- device model (B05-B08) ---------------------------------------------------------------
    @on(Action.get_variables)
    def on_get_variables(
        self, get_variable_data: list[dict[str, Any]], **_: Any
    ) -> call_result.GetVariables:
        return call_result.GetVariables(
            get_variable_result=self.provisioning.get_variables(get_variable_data)
        )

    @on(Action.set_variables)
    def on_set_variables(
        self, set_variable_data: list[dict[str, Any]], call_unique_id: str = "", **_: Any
    ) -> call_result.SetVariables:
        results = self.provisioning.set_variables(set_variable_data)
        new_password = any(
            r.get("attribute_status") == "Accepted"
            and r["component"].get("name") == "SecurityCtrlr"
            and r["variable"].get("name") == "BasicAuthPassword"
            for r in results
        )
        if new_password:
            # A01: answer first, then reconnect with the new password.
            async def reconnect() -> None:
                self.provisioning.request_reconnect()

            self.later(call_unique_id, reconnect)
        return call_result.SetVariables(set_variable_result=results)

    @after(Action.set_variables)
    def after_set_variables(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    @on(Action.get_base_report)
    def on_get_base_report(
        self, request_id: int, report_base: str, call_unique_id: str = "", **_: Any
    ) -> call_result.GetBaseReport:
        data = self.provisioning.report(report_base=report_base)
        if data is None:
            return call_result.GetBaseReport(status="NotSupported")
        self.later(call_unique_id, lambda: self.provisioning.send_report(request_id, data))
        return call_result.GetBaseReport(status="Accepted")

    @after(Action.get_base_report)
    def after_get_base_report(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    @on(Action.get_report)
    def on_get_report(
        self,
        request_id: int,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
        call_unique_id: str = "",
        **_: Any,
    ) -> call_result.GetReport:
        data = self.provisioning.report(
            component_criteria=component_criteria, component_variable=component_variable
        )
        if not data:
            return call_result.GetReport(status="EmptyResultSet")
        self.later(call_unique_id, lambda: self.provisioning.send_report(request_id, data))
        return call_result.GetReport(status="Accepted")

    @after(Action.get_report)
    def after_get_report(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    # -- TriggerMessage (F06) -----------------------------------------------------------------
    @on(Action.trigger_message)
    def on_trigger_message(
        self,
        requested_message: str,
        evse: dict[str, Any] | None = None,
        call_unique_id: str = "",
        **_: Any,
    ) -> call_result.TriggerMessage:
        station = self.provisioning
        if requested_message not in _TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        evse_id = None if evse is None else int(evse["id"])
        if evse_id not in (None, 0) and evse_id not in station.evse_ids():
            return call_result.TriggerMessage(
                status="Rejected", status_info=status_info("UnknownEvse")
            )
        targets = station.evse_ids() if evse_id in (None, 0) else [evse_id]
        if requested_message == "BootNotification" and station.registration() == "Accepted":
            # F06.FR.17: no BootNotification on request once accepted.
            return call_result.TriggerMessage(status="Rejected")
        if requested_message == "TransactionEvent" and not any(station.busy(e) for e in targets):
            return call_result.TriggerMessage(
                status="Rejected", status_info=status_info("NoTransaction")
            )
        self.later(call_unique_id, lambda: station.send_triggered(requested_message, targets))
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)
