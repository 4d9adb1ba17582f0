"""Block K: SetChargingProfile, ClearChargingProfile, GetChargingProfiles, GetCompositeSchedule."""

from __future__ import annotations

from typing import Any, Protocol

from ocpp.routing import after, on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase, status_info
from v2g_shared.schedule import ChargingProfile, ProfileFormatError, Violation, profile_from_ocpp


class SmartChargingPort(Protocol):
    def evse_ids(self) -> list[int]: ...

    def rate_units(self) -> list[str]: ...

    def set_profile(self, evse_id: int, profile: ChargingProfile) -> list[Violation]: ...

    def clear(
        self,
        profile_id: int | None,
        evse_id: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> bool: ...

    def select(
        self,
        evse_id: int | None,
        purpose: str | None,
        stack_level: int | None,
        profile_ids: list[int] | None,
    ) -> dict[int, list[dict[str, Any]]]: ...

    def composite(self, evse_id: int, duration: int, unit: str | None) -> dict[str, Any]: ...


def parse_profile(raw: Any) -> ChargingProfile | Violation:
    """The ChargingProfileType of a CALL, parsed once from its camelCase JSON (the library's
    snake_case copy of the payload is not used)."""
    try:
        if not isinstance(raw, dict):
            raise ProfileFormatError("chargingProfile is not an object")
        return profile_from_ocpp(raw)
    except ProfileFormatError as exc:
        return Violation("FormatViolation", str(exc))


class SmartChargingHandlers(HandlerBase):
    smart_charging: SmartChargingPort

    @on(Action.set_charging_profile)
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any], **_: Any
    ) -> call_result.SetChargingProfile:
        parsed = parse_profile(self.raw_payload().get("chargingProfile"))
        if isinstance(parsed, Violation):
            violations = [parsed]
        else:
            violations = self.smart_charging.set_profile(evse_id, parsed)
        if not violations:
            return call_result.SetChargingProfile(status="Accepted")
        first = violations[0]
        detail = "; ".join(f"{v.rule}: {v.message}" for v in violations)
        reason = "TxNotFound" if first.rule in ("K01.FR.09", "K01.FR.33") else "InvalidValue"
        return call_result.SetChargingProfile(
            status="Rejected", status_info=status_info(reason, detail)
        )

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        charging_profile_id: int | None = None,
        charging_profile_criteria: dict[str, Any] | None = None,
        **_: Any,
    ) -> call_result.ClearChargingProfile:
        criteria = charging_profile_criteria or {}
        cleared = self.smart_charging.clear(
            charging_profile_id,
            criteria.get("evse_id"),
            criteria.get("charging_profile_purpose"),
            criteria.get("stack_level"),
        )
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    @on(Action.get_charging_profiles)
    def on_get_charging_profiles(
        self,
        request_id: int,
        charging_profile: dict[str, Any],
        evse_id: int | None = None,
        call_unique_id: str = "",
        **_: Any,
    ) -> call_result.GetChargingProfiles:
        sources = charging_profile.get("charging_limit_source")
        found: dict[int, list[dict[str, Any]]] = {}
        if sources is None or "CSO" in sources:
            found = self.smart_charging.select(
                evse_id,
                charging_profile.get("charging_profile_purpose"),
                charging_profile.get("stack_level"),
                charging_profile.get("charging_profile_id"),
            )
        if not found:
            return call_result.GetChargingProfiles(status="NoProfiles")

        async def report() -> None:
            groups = sorted(found.items())
            for index, (evse, profiles) in enumerate(groups):
                await self.send_call(
                    call.ReportChargingProfiles(
                        request_id=request_id,
                        charging_limit_source="CSO",
                        evse_id=evse,
                        charging_profile=profiles,
                        tbc=index < len(groups) - 1,
                    )
                )

        self.later(call_unique_id, report)
        return call_result.GetChargingProfiles(status="Accepted")

    @after(Action.get_charging_profiles)
    def after_get_charging_profiles(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_: Any
    ) -> call_result.GetCompositeSchedule:
        if evse_id != 0 and evse_id not in self.smart_charging.evse_ids():
            return call_result.GetCompositeSchedule(
                status="Rejected", status_info=status_info("UnknownEvse")
            )
        if (
            charging_rate_unit is not None
            and charging_rate_unit not in self.smart_charging.rate_units()
        ):
            return call_result.GetCompositeSchedule(
                status="Rejected", status_info=status_info("UnsupportedRateUnit")
            )
        schedule = self.smart_charging.composite(evse_id, duration, charging_rate_unit)
        return call_result.GetCompositeSchedule(status="Accepted", schedule=schedule)
