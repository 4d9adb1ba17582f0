"""OCPP 2.1 CSMS-initiated actions of the V2X (Q), DER (R) and dynamic-schedule (K28/K29) use
cases, answered by the smart-charging block. Mixed into the 2.1 session only: over 2.0.1 these
actions do not exist (NotImplemented, from the session).

What a CHAdeMO station cannot do is answered as the action's own status says where it has one
(SetDERControl NotSupported for a control type without inverter support, UsePriorityCharging
NoProfile: a PriorityCharging profile is never installed here); actions with no such status
(RequestBatterySwap, NotifyWebPaymentStarted, the tariff actions) have no handler at all, so
the session answers the Part 4 CALLERROR NotSupported (a 2.1 action this station does not
support).
"""

from __future__ import annotations

from typing import Any

from ocpp.routing import after, on
from ocpp.v21 import call, call_result

from chargepoint_firmware.blocks.smart_charging.service import SmartCharging
from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase, status_info
from v2g_shared.schedule import ProfileFormatError, parse_datetime

# aFRR signals outside this are refused (the curve's x axis is bounded by the CSMS too).
AFRR_SIGNAL_BOUND = 1_000_000


class V21Handlers(HandlerBase):
    @property
    def smart_v21(self) -> SmartCharging:
        """The block's service (the 2.1 handlers use its 2.1 parts directly)."""
        found: SmartCharging = self.smart_charging  # type: ignore[attr-defined]
        return found

    # -- dynamic schedules (K28) -----------------------------------------------------------------
    @on("UpdateDynamicSchedule")
    def on_update_dynamic_schedule(
        self, charging_profile_id: int, schedule_update: dict[str, Any], **_: Any
    ) -> call_result.UpdateDynamicSchedule:
        raw = self.raw_payload().get("scheduleUpdate")
        reason = self.smart_v21.update_dynamic(
            charging_profile_id, raw if isinstance(raw, dict) else {}
        )
        if reason is None:
            return call_result.UpdateDynamicSchedule(status="Accepted")
        return call_result.UpdateDynamicSchedule(status="Rejected", status_info=status_info(reason))

    # -- V2X (Q) ---------------------------------------------------------------------------------
    @on("AFRRSignal")
    def on_afrr_signal(self, timestamp: str, signal: int, **_: Any) -> call_result.AFRRSignal:
        try:
            parse_datetime(timestamp)
        except ProfileFormatError:
            return call_result.AFRRSignal(
                status="Rejected", status_info=status_info("InvalidValue")
            )
        if abs(signal) > AFRR_SIGNAL_BOUND:
            return call_result.AFRRSignal(
                status="Rejected", status_info=status_info("InvalidValue")
            )
        self.smart_v21.afrr_signal = int(signal)
        self.smart_v21.wake()
        return call_result.AFRRSignal(status="Accepted")

    @on("NotifyAllowedEnergyTransfer")
    def on_notify_allowed_energy_transfer(
        self, transaction_id: str, allowed_energy_transfer: list[str], **_: Any
    ) -> call_result.NotifyAllowedEnergyTransfer:
        smart = self.smart_v21
        running = {tx for tx, _ in smart.transactions.active_transactions().values()}
        if transaction_id not in running:
            return call_result.NotifyAllowedEnergyTransfer(
                status="Rejected", status_info=status_info("TxNotFound")
            )
        smart.allowed_transfer = {
            tx: modes for tx, modes in smart.allowed_transfer.items() if tx in running
        }
        smart.allowed_transfer[transaction_id] = tuple(str(m) for m in allowed_energy_transfer[:11])
        smart.wake()
        return call_result.NotifyAllowedEnergyTransfer(status="Accepted")

    @on("UsePriorityCharging")
    def on_use_priority_charging(
        self, transaction_id: str, activate: bool, **_: Any
    ) -> call_result.UsePriorityCharging:
        # PriorityCharging profiles are refused at SetChargingProfile: none is ever installed.
        return call_result.UsePriorityCharging(
            status="NoProfile", status_info=status_info("NoPriorityProfile")
        )

    # -- DER control (R) -------------------------------------------------------------------------
    @on("SetDERControl")
    def on_set_der_control(self, **_: Any) -> call_result.SetDERControl:
        status = self.smart_v21.der.set(self.raw_payload())
        if status == "Accepted":
            self.smart_v21.wake()
            return call_result.SetDERControl(status=status)
        reason = "UnsupportedControl" if status == "NotSupported" else "InvalidValue"
        return call_result.SetDERControl(status=status, status_info=status_info(reason))

    @on("GetDERControl")
    def on_get_der_control(
        self,
        request_id: int,
        is_default: bool | None = None,
        control_type: str | None = None,
        control_id: str | None = None,
        call_unique_id: str = "",
        **_: Any,
    ) -> call_result.GetDERControl:
        der = self.smart_v21.der
        if control_type is not None and control_type not in (
            "FreqWatt",
            "VoltWatt",
            "LimitMaxDischarge",
        ):
            return call_result.GetDERControl(status="NotSupported")
        found = der.select(is_default, control_type, control_id)
        if not found:
            return call_result.GetDERControl(status="NotFound")

        async def report() -> None:
            curves = [
                {
                    "id": c.control_id,
                    "curveType": c.control_type,
                    "isDefault": c.is_default,
                    "isSuperseded": der.active(c.control_type, self_now()) is not c,
                    "curve": dict(c.settings),
                }
                for c in found
                if c.control_type != "LimitMaxDischarge"
            ]
            limits = [
                {
                    "id": c.control_id,
                    "isDefault": c.is_default,
                    "isSuperseded": der.active(c.control_type, self_now()) is not c,
                    "limitMaxDischarge": dict(c.settings),
                }
                for c in found
                if c.control_type == "LimitMaxDischarge"
            ]
            await self.send_call(
                call.ReportDERControl(
                    request_id=request_id,
                    curve=curves or None,
                    limit_max_discharge=limits or None,
                )
            )

        def self_now() -> Any:
            return self.smart_v21.clock.now()

        self.later(call_unique_id, report)
        return call_result.GetDERControl(status="Accepted")

    @after("GetDERControl")
    def after_get_der_control(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    @on("ClearDERControl")
    def on_clear_der_control(
        self,
        is_default: bool,
        control_type: str | None = None,
        control_id: str | None = None,
        **_: Any,
    ) -> call_result.ClearDERControl:
        status = self.smart_v21.der.clear(is_default, control_type, control_id)
        if status == "Accepted":
            self.smart_v21.wake()
        return call_result.ClearDERControl(status=status)
