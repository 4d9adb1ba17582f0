"""The agent's view of the device model: one small surface the handlers and ConfigView use.

By default the project's `chargepoint_firmware.device_model.DeviceModel`, persisted as
device_model.json in the state directory, answers every call. `BuiltinDeviceModel` is a minimal
in-memory stand-in (the variables of config.DEFAULTS) for callers that pass it explicitly.

Payloads are in the `ocpp` library's snake_case form (GetVariableData -> GetVariableResult ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chargepoint_firmware.blocks.transactions.meter import SUPPORTED_MEASURANDS
from chargepoint_firmware.settings import StationSettings
from chargepoint_firmware.station.config import DEFAULTS

log = logging.getLogger(__name__)

ChangeListener = Callable[[str, str], None]

_MEMBER_LISTS = {
    ("TxCtrlr", "TxStartPoint"): {
        "ParkingBayOccupancy",
        "EVConnected",
        "Authorized",
        "DataSigned",
        "PowerPathClosed",
        "EnergyTransfer",
    },
    ("TxCtrlr", "TxStopPoint"): {
        "ParkingBayOccupancy",
        "EVConnected",
        "Authorized",
        "DataSigned",
        "PowerPathClosed",
        "EnergyTransfer",
    },
    ("SmartChargingCtrlr", "RateUnit"): {"A", "W"},
}
_OPTION_LISTS = {
    ("AuthCacheCtrlr", "Policy"): {"LRU", "LFU", "FIFO", "CUSTOM"},
}
# maxLimit characteristics the agent acts on (the built-in model's capacities).
_MAX_LIMITS: dict[tuple[str, str], float] = {
    ("AuthCacheCtrlr", "Storage"): 131_072,
}
_READ_ONLY = {
    ("AuthCacheCtrlr", "Storage"),
    ("SmartChargingCtrlr", "RateUnit"),
    ("SmartChargingCtrlr", "PeriodsPerSchedule"),
    ("SmartChargingCtrlr", "ProfileStackLevel"),
    ("SmartChargingCtrlr", "Entries"),
    ("LocalAuthListCtrlr", "Entries"),
}


def _data_type(component: str, variable: str, default: str) -> str:
    if (component, variable) in _MEMBER_LISTS or variable.endswith("Measurands"):
        return "MemberList"
    if default in ("true", "false"):
        return "boolean"
    if default.lstrip("-").isdigit():
        return "integer"
    return "string"


class DeviceModelAdapter:
    """Interface; `create` picks the project device model or the built-in one."""

    @staticmethod
    def create(
        device_model: Any | None, evse_ids: list[int], settings: StationSettings
    ) -> DeviceModelAdapter:
        if isinstance(device_model, DeviceModelAdapter):
            return device_model
        if device_model is not None:
            return ProjectDeviceModel(device_model)
        return project_device_model(evse_ids, settings)

    def value(self, component: str, variable: str) -> Any:
        raise NotImplementedError

    def set_value(self, component: str, variable: str, value: str, **where: Any) -> None:
        raise NotImplementedError

    def on_change(self, listener: ChangeListener) -> None:
        raise NotImplementedError

    def report_entries(self, component: str, count: int) -> None:
        """Keep the read-only Entries count of SmartChargingCtrlr / LocalAuthListCtrlr current."""

    def max_limit(self, component: str, variable: str) -> float | None:
        """The maxLimit characteristic of a station-level variable (None when it has none)."""
        return _MAX_LIMITS.get((component, variable))

    def get_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def set_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def report(
        self,
        *,
        report_base: str | None = None,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]] | None:
        raise NotImplementedError


class BuiltinDeviceModel(DeviceModelAdapter):
    def __init__(self, evse_ids: list[int], settings: StationSettings) -> None:
        self.values: dict[tuple[str, str], str] = dict(DEFAULTS)
        self.values[("OCPPCommCtrlr", "HeartbeatInterval")] = str(settings.heartbeat_interval_s)
        self.values[("ChargingStation", "Model")] = settings.model
        self.values[("ChargingStation", "VendorName")] = settings.vendor_name
        self._listeners: list[ChangeListener] = []
        self.components = {c for c, _ in self.values}

    def value(self, component: str, variable: str) -> Any:
        return self.values.get((component, variable))

    def set_value(self, component: str, variable: str, value: str, **where: Any) -> None:
        if where:
            return  # per-EVSE runtime values are not modelled here
        self.values[(component, variable)] = value
        for listener in self._listeners:
            listener(component, variable)

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _lookup(self, item: dict[str, Any]) -> tuple[str, str, str | None]:
        """(component, variable, error status or None)."""
        component = str(item["component"]["name"])
        variable = str(item["variable"]["name"])
        if component not in self.components:
            return component, variable, "UnknownComponent"
        if (component, variable) not in self.values:
            return component, variable, "UnknownVariable"
        if item.get("attribute_type", "Actual") != "Actual":
            return component, variable, "NotSupportedAttributeType"
        return component, variable, None

    def get_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in data:
            component, variable, error = self._lookup(item)
            result: dict[str, Any] = {
                "attribute_status": error or "Accepted",
                "component": item["component"],
                "variable": item["variable"],
            }
            if "attribute_type" in item:
                result["attribute_type"] = item["attribute_type"]
            if error is None:
                result["attribute_value"] = self.values[(component, variable)]
            out.append(result)
        return out

    def _valid(self, component: str, variable: str, value: str) -> bool:
        kind = _data_type(component, variable, DEFAULTS.get((component, variable), value))
        if kind == "boolean":
            return value in ("true", "false")
        if kind == "integer":
            return value.lstrip("-").isdigit() and int(value) >= 0
        if (component, variable) in _OPTION_LISTS:
            return value in _OPTION_LISTS[(component, variable)]
        if kind == "MemberList":
            allowed = _MEMBER_LISTS.get((component, variable), SUPPORTED_MEASURANDS)
            members = [m.strip() for m in value.split(",") if m.strip()]
            return all(m in allowed for m in members)
        return True

    def set_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in data:
            component, variable, error = self._lookup(item)
            value = str(item["attribute_value"])
            if error is None and (component, variable) in _READ_ONLY:
                error = "Rejected"
            if error is None and not self._valid(component, variable, value):
                error = "Rejected"
            out.append(
                {
                    "attribute_status": error or "Accepted",
                    "attribute_type": item.get("attribute_type", "Actual"),
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
            if error is None:
                self.set_value(component, variable, value)
        return out

    def report(
        self,
        *,
        report_base: str | None = None,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]] | None:
        if report_base == "SummaryInventory":
            return None
        keys = sorted(self.values)
        if component_variable:
            wanted = {
                (cv["component"]["name"], cv.get("variable", {}).get("name"))
                for cv in component_variable
            }
            keys = [k for k in keys if k in wanted or (k[0], None) in wanted]
        if (
            component_criteria
            and "Active" not in component_criteria
            and "Enabled" not in (component_criteria)
        ):
            keys = []
        return [
            {
                "component": {"name": c},
                "variable": {"name": v},
                "variable_attribute": [
                    {
                        "type": "Actual",
                        "value": self.values[(c, v)],
                        "mutability": "ReadOnly" if (c, v) in _READ_ONLY else "ReadWrite",
                    }
                ],
                "variable_characteristics": {
                    "data_type": _data_type(c, v, DEFAULTS.get((c, v), self.values[(c, v)])),
                    "supports_monitoring": False,
                },
            }
            for c, v in keys
        ]


class ProjectDeviceModel(DeviceModelAdapter):
    """chargepoint_firmware.device_model.DeviceModel behind the adapter surface."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def value(self, component: str, variable: str) -> Any:
        # Entries are counts in the device model; the agent wants the capacity (maxLimit).
        if (component, variable) == ("SmartChargingCtrlr", "Entries"):
            return self.model.charging_profile_entries_max()
        if (component, variable) == ("LocalAuthListCtrlr", "Entries"):
            return self.model.local_auth_list_entries_max()
        return self.model.value(component, variable)

    def set_value(self, component: str, variable: str, value: str, **where: Any) -> None:
        self.model.set_internal(component, variable, value, **where)

    def on_change(self, listener: ChangeListener) -> None:
        self.model.on_any_change(listener)

    def max_limit(self, component: str, variable: str) -> float | None:
        try:
            limit: float | None = self.model.max_limit(component, variable)
        except (AttributeError, KeyError):
            return super().max_limit(component, variable)
        return limit

    def report_entries(self, component: str, count: int) -> None:
        instance = "ChargingProfiles" if component == "SmartChargingCtrlr" else None
        try:
            self.model.set_internal(component, "Entries", str(count), instance=instance)
        except (KeyError, ValueError) as exc:
            log.warning("cannot update %s.Entries: %s", component, exc)

    def get_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.model.get_variables(data, style="snake")
        return result

    def set_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.model.set_variables(data, style="snake")
        return result

    def report(
        self,
        *,
        report_base: str | None = None,
        component_criteria: list[str] | None = None,
        component_variable: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]] | None:
        try:
            result: list[dict[str, Any]] = self.model.report(
                report_base,
                component_variables=component_variable,
                component_criteria=component_criteria,
                style="snake",
            )
        except ValueError:
            return None  # unknown report base
        return result


def project_device_model(evse_ids: list[int], settings: StationSettings) -> DeviceModelAdapter:
    """The project's device model, persisted in the state directory (built-in if missing)."""
    try:
        from chargepoint_firmware.device_model import DeviceModel
        from chargepoint_firmware.device_model.store import JsonFileStore
    except ImportError:  # pragma: no cover - the module ships with the package
        return BuiltinDeviceModel(evse_ids, settings)
    store = JsonFileStore(settings.state_dir / "device_model.json")
    model = DeviceModel(
        evse_ids,
        store,
        defaults={
            "ChargingStation.Model": settings.model[:20],
            "ChargingStation.VendorName": settings.vendor_name[:50],
            "OCPPCommCtrlr.HeartbeatInterval": str(settings.heartbeat_interval_s),
            "SecurityCtrlr.SecurityProfile": str(settings.security.profile),
            "SecurityCtrlr.Identity": settings.station_id,
        },
        evse_max_power_w={e.id: e.max_charge_power_w for e in settings.evses},
    )
    return ProjectDeviceModel(model)
