"""`DeviceModel`: the agent's device model in memory, its get/set/report rules and persistence
through an injected `DeviceModelStore` (see the package docstring for the semantics)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chargepoint_firmware.device_model.catalogue import (
    ALIASES,
    DEFAULT_AUTH_CACHE_STORAGE_BYTES,
    evse_variables,
    station_variables,
)
from chargepoint_firmware.device_model.definitions import (
    AttributeType,
    ChangeListener,
    DeviceModelStore,
    InvalidValue,
    Mutability,
    VariableDefinition,
    VariableRef,
)
from chargepoint_firmware.device_model.report import (
    Style,
    attribute_type_named,
    camel_key,
    component_json,
    ref_from_json,
    rekey,
    styled,
    variable_json,
)
from chargepoint_firmware.device_model.validation import normalise_value


@dataclass
class _Cell:
    definition: VariableDefinition
    values: dict[AttributeType, str | None] = field(default_factory=dict)


def _persistent(definition: VariableDefinition, attribute: AttributeType) -> bool:
    """Configured set-points (MaxSet, MinSet, Target) persist even where Actual is measured."""
    return definition.persistent or attribute is not AttributeType.ACTUAL


class DeviceModel:
    """The device model of one station with the given EVSE ids (one CHAdeMO connector each)."""

    def __init__(
        self,
        evse_ids: Iterable[int],
        store: DeviceModelStore,
        *,
        defaults: Mapping[str, str] | None = None,
        evse_max_power_w: Mapping[int, float] | float = 50_000.0,
        auth_cache_storage_bytes: int = DEFAULT_AUTH_CACHE_STORAGE_BYTES,
    ) -> None:
        """`defaults` overrides default values by store key (e.g. "ChargingStation.Model",
        "SecurityCtrlr.Identity"); they are not persisted. Stored values then override both.
        `auth_cache_storage_bytes` is the Authorization Cache capacity (AuthCacheCtrlr.Storage
        maxLimit)."""
        self._store = store
        self._listeners: dict[tuple[str, str], list[ChangeListener]] = {}
        self._any_listeners: list[Callable[[str, str], None]] = []
        self.evse_ids = tuple(sorted(set(evse_ids)))
        definitions = station_variables(auth_cache_storage_bytes)
        for evse_id in self.evse_ids:
            power = (
                evse_max_power_w
                if isinstance(evse_max_power_w, int | float)
                else evse_max_power_w.get(evse_id, 50_000.0)
            )
            definitions += evse_variables(evse_id, float(power))
        self._cells: dict[VariableRef, _Cell] = {}
        for definition in definitions:
            cell = _Cell(definition, {a.type: a.default for a in definition.attributes})
            self._cells[definition.ref] = cell
        self._components = {ref.component_key for ref in self._cells}
        for key, value in (defaults or {}).items():
            self._apply_loaded(key, value, strict=True)
        for key, value in store.load().items():
            self._apply_loaded(key, value, strict=False)

    # ----- loading -----

    def _find_key(self, key: str) -> tuple[_Cell, AttributeType] | None:
        for cell in self._cells.values():
            for attribute in cell.definition.attributes:
                if cell.definition.ref.key(attribute.type) == key:
                    return cell, attribute.type
        return None

    def _apply_loaded(self, key: str, value: str, *, strict: bool) -> None:
        found = self._find_key(key)
        if found is None:
            if strict:
                raise KeyError(f"unknown device model key {key}")
            return
        cell, attribute = found
        try:
            cell.values[attribute] = normalise_value(cell.definition, value)
        except InvalidValue:
            if strict:
                raise

    # ----- lookups -----

    def definitions(self) -> list[VariableDefinition]:
        return [cell.definition for cell in self._cells.values()]

    def _resolve(
        self,
        component: str,
        variable: str,
        *,
        evse_id: int | None,
        connector_id: int | None,
        instance: str | None,
    ) -> _Cell:
        if instance is None and variable in ALIASES and component == "DeviceDataCtrlr":
            variable, instance = ALIASES[variable]
        ref = VariableRef(component, variable, evse_id, connector_id, None, instance)
        cell = self._cells.get(ref)
        if cell is not None:
            return cell
        if instance is None:
            matches = [
                c
                for r, c in self._cells.items()
                if (r.component, r.variable, r.evse_id, r.connector_id)
                == (component, variable, evse_id, connector_id)
            ]
            if len(matches) == 1:
                return matches[0]
        raise KeyError(ref.key())

    def value(
        self,
        component: str,
        variable: str,
        *,
        evse_id: int | None = None,
        connector_id: int | None = None,
        instance: str | None = None,
        attribute: AttributeType | str = AttributeType.ACTUAL,
    ) -> str | None:
        """The current value (also of WriteOnly variables: this is the agent's own read).

        Raises KeyError for an unknown variable."""
        cell = self._resolve(
            component, variable, evse_id=evse_id, connector_id=connector_id, instance=instance
        )
        return cell.values.get(AttributeType(attribute))

    def set_internal(
        self,
        component: str,
        variable: str,
        value: str,
        *,
        evse_id: int | None = None,
        connector_id: int | None = None,
        instance: str | None = None,
        attribute: AttributeType | str = AttributeType.ACTUAL,
    ) -> None:
        """The agent's own update (read-only values too); validated, persisted if persistent,
        listeners called when the value changes. Raises InvalidValue or KeyError."""
        cell = self._resolve(
            component, variable, evse_id=evse_id, connector_id=connector_id, instance=instance
        )
        self._write(cell, AttributeType(attribute), normalise_value(cell.definition, value))

    def _write(self, cell: _Cell, attribute: AttributeType, value: str) -> None:
        before = cell.values.get(attribute)
        cell.values[attribute] = value
        if _persistent(cell.definition, attribute):
            self._store.save(cell.definition.ref.key(attribute), value)
        if before != value and attribute is AttributeType.ACTUAL:
            ref = cell.definition.ref
            for listener in self._listeners.get((ref.component, ref.variable), []):
                listener(ref, value)
            for any_listener in self._any_listeners:
                any_listener(ref.component, ref.variable)

    def on_change(self, component: str, variable: str, callback: ChangeListener) -> None:
        """Call `callback(ref, new_value)` after the Actual value of any instance of
        component.variable changes (SetVariables Accepted, or set_internal)."""
        self._listeners.setdefault((component, variable), []).append(callback)

    def on_any_change(self, callback: Callable[[str, str], None]) -> None:
        """Call `callback(component, variable)` after any Actual value changes."""
        self._any_listeners.append(callback)

    # ----- GetVariables / SetVariables -----

    def _lookup(
        self, component: Mapping[str, Any], variable: Mapping[str, Any]
    ) -> tuple[_Cell | None, str | None]:
        ref = ref_from_json(component, variable)
        if ref.component_key not in self._components:
            return None, "UnknownComponent"
        cell = self._cells.get(ref)
        if cell is None:
            return None, "UnknownVariable"
        return cell, None

    def get_variables(
        self, requests: Sequence[Mapping[str, Any]], *, style: Style = "camel"
    ) -> list[dict[str, Any]]:
        """GetVariableData dicts -> GetVariableResult dicts.

        Input keys may be camelCase (OCPP JSON) or snake_case (as the `ocpp` library hands them
        to handlers); output keys follow `style`."""
        results: list[dict[str, Any]] = []
        for raw in requests:
            request = rekey(raw, camel_key)
            attribute_name = request.get("attributeType", AttributeType.ACTUAL.value)
            result: dict[str, Any] = {
                "attributeType": attribute_name,
                "component": dict(request["component"]),
                "variable": dict(request["variable"]),
            }
            cell, status = self._lookup(request["component"], request["variable"])
            if cell is not None:
                attribute_type = attribute_type_named(attribute_name)
                attribute = (
                    None if attribute_type is None else cell.definition.attribute(attribute_type)
                )
                if attribute is None:
                    status = "NotSupportedAttributeType"
                elif attribute.mutability is Mutability.WRITE_ONLY:
                    status = "Rejected"
                    result["attributeStatusInfo"] = {"reasonCode": "WriteOnly"}
                else:
                    status = "Accepted"
                    value = cell.values.get(attribute.type)
                    result["attributeValue"] = "" if value is None else value
            result["attributeStatus"] = status
            results.append(result)
        return styled(results, style)

    def set_variables(
        self, requests: Sequence[Mapping[str, Any]], *, style: Style = "camel"
    ) -> list[dict[str, Any]]:
        """SetVariableData dicts -> SetVariableResult dicts (input camelCase or snake_case,
        output keys per `style`). Each entry is applied on its own, in order."""
        results: list[dict[str, Any]] = []
        for raw in requests:
            request = rekey(raw, camel_key)
            attribute_name = request.get("attributeType", AttributeType.ACTUAL.value)
            result: dict[str, Any] = {
                "attributeType": attribute_name,
                "component": dict(request["component"]),
                "variable": dict(request["variable"]),
            }
            status, reason = self._set_one(request, attribute_name)
            result["attributeStatus"] = status
            if reason is not None:
                result["attributeStatusInfo"] = {
                    "reasonCode": reason[0],
                    "additionalInfo": reason[1],
                }
            results.append(result)
        return styled(results, style)

    def _set_one(
        self, request: Mapping[str, Any], attribute_name: str
    ) -> tuple[str, tuple[str, str] | None]:
        cell, status = self._lookup(request["component"], request["variable"])
        if cell is None:
            return status or "Rejected", None
        definition = cell.definition
        attribute_type = attribute_type_named(attribute_name)
        attribute = None if attribute_type is None else definition.attribute(attribute_type)
        if attribute is None:
            return "NotSupportedAttributeType", None
        if attribute.mutability is Mutability.READ_ONLY:
            return "Rejected", ("ReadOnly", f"{definition.ref.key()} is read-only")
        try:
            value = normalise_value(definition, request["attributeValue"])
        except InvalidValue as exc:
            return "Rejected", ("InvalidValue", str(exc)[:500])
        if definition.validator is not None:
            error = definition.validator(value, cell.values.get(attribute.type))
            if error is not None:
                return "Rejected", ("InvalidValue", error[:500])
        if definition.reboot_required:
            # Stored for the next start; the running agent keeps its boot value.
            self._store.save(definition.ref.key(attribute.type), value)
            return "RebootRequired", None
        self._write(cell, attribute.type, value)
        return "Accepted", None

    # ----- reports (GetBaseReport / GetReport -> NotifyReport) -----

    def _report_entry(self, cell: _Cell) -> dict[str, Any]:
        definition = cell.definition
        attributes = []
        for attribute in definition.attributes:
            entry: dict[str, Any] = {"type": attribute.type.value}
            value = cell.values.get(attribute.type)
            if attribute.mutability is not Mutability.WRITE_ONLY and value is not None:
                entry["value"] = value
            entry["mutability"] = attribute.mutability.value
            entry["persistent"] = _persistent(definition, attribute.type)
            entry["constant"] = definition.constant
            attributes.append(entry)
        characteristics: dict[str, Any] = {}
        if definition.unit is not None:
            characteristics["unit"] = definition.unit
        characteristics["dataType"] = definition.data_type.value
        if definition.min_limit is not None:
            characteristics["minLimit"] = definition.min_limit
        if definition.max_limit is not None:
            characteristics["maxLimit"] = definition.max_limit
        if definition.values_list is not None:
            characteristics["valuesList"] = ",".join(definition.values_list)
        characteristics["supportsMonitoring"] = False
        return {
            "component": component_json(definition.ref),
            "variable": variable_json(definition.ref),
            "variableAttribute": attributes,
            "variableCharacteristics": characteristics,
        }

    def report(
        self,
        criteria: str | None = "FullInventory",
        *,
        component_variables: Sequence[Mapping[str, Any]] | None = None,
        component_criteria: Sequence[str] | None = None,
        style: Style = "camel",
    ) -> list[dict[str, Any]]:
        """ReportData dicts (keys per `style`; componentVariable input may be either style).

        criteria: GetBaseReport's reportBase (FullInventory: everything; ConfigurationInventory:
        variables with a writable attribute; SummaryInventory: availability and problem
        variables), or None for GetReport, filtered by componentVariable entries (component, and
        optionally variable) and componentCriteria (Active/Available/Enabled/Problem: components
        whose variable of that name is "true"). Empty list = EmptyResultSet.
        """
        cells = list(self._cells.values())
        if criteria == "ConfigurationInventory":
            cells = [
                c
                for c in cells
                if any(a.mutability is not Mutability.READ_ONLY for a in c.definition.attributes)
            ]
        elif criteria == "SummaryInventory":
            summary = {"AvailabilityState", "Available", "Problem"}
            cells = [c for c in cells if c.definition.ref.variable in summary]
        elif criteria not in (None, "FullInventory"):
            raise ValueError(f"unknown report base {criteria}")
        if component_variables:
            wanted_cv = [rekey(cv, camel_key) for cv in component_variables]
            cells = [c for c in cells if any(_matches(c, cv) for cv in wanted_cv)]
        if component_criteria:
            wanted = set(component_criteria)
            selected = {
                c.definition.ref.component_key
                for c in self._cells.values()
                if c.definition.ref.variable in wanted
                and c.values.get(AttributeType.ACTUAL) == "true"
            }
            cells = [c for c in cells if c.definition.ref.component_key in selected]
        return styled([self._report_entry(c) for c in cells], style)

    # ----- typed accessors -----

    def _int(self, component: str, variable: str, **where: Any) -> int:
        return int(self.value(component, variable, **where) or 0)

    def _float(self, component: str, variable: str, **where: Any) -> float:
        return float(self.value(component, variable, **where) or 0)

    def _bool(self, component: str, variable: str, **where: Any) -> bool:
        return self.value(component, variable, **where) == "true"

    def _list(self, component: str, variable: str, **where: Any) -> tuple[str, ...]:
        text = self.value(component, variable, **where) or ""
        return tuple(m for m in text.split(",") if m)

    def heartbeat_interval(self) -> int:
        return self._int("OCPPCommCtrlr", "HeartbeatInterval")

    def message_timeout(self) -> int:
        return self._int("OCPPCommCtrlr", "MessageTimeout", instance="Default")

    def offline_threshold(self) -> int:
        return self._int("OCPPCommCtrlr", "OfflineThreshold")

    def network_profile_connection_attempts(self) -> int:
        return self._int("OCPPCommCtrlr", "NetworkProfileConnectionAttempts")

    def transaction_message_attempts(self) -> int:
        return self._int("OCPPCommCtrlr", "MessageAttempts", instance="TransactionEvent")

    def transaction_message_attempt_interval(self) -> int:
        return self._int("OCPPCommCtrlr", "MessageAttemptInterval", instance="TransactionEvent")

    def retry_back_off(self) -> tuple[int, int, int]:
        """(wait minimum s, random range s, repeat times)."""
        return (
            self._int("OCPPCommCtrlr", "RetryBackOffWaitMinimum"),
            self._int("OCPPCommCtrlr", "RetryBackOffRandomRange"),
            self._int("OCPPCommCtrlr", "RetryBackOffRepeatTimes"),
        )

    def websocket_ping_interval(self) -> int:
        return self._int("OCPPCommCtrlr", "WebSocketPingInterval")

    def security_profile(self) -> int:
        return self._int("SecurityCtrlr", "SecurityProfile")

    def basic_auth_password(self) -> str | None:
        return self.value("SecurityCtrlr", "BasicAuthPassword")

    def identity(self) -> str:
        return self.value("SecurityCtrlr", "Identity") or ""

    def smart_charging_enabled(self) -> bool:
        return self._bool("SmartChargingCtrlr", "Enabled")

    def profile_stack_level(self) -> int:
        return self._int("SmartChargingCtrlr", "ProfileStackLevel")

    def periods_per_schedule(self) -> int:
        return self._int("SmartChargingCtrlr", "PeriodsPerSchedule")

    def charging_profile_entries_max(self) -> int:
        cell = self._resolve(
            "SmartChargingCtrlr", "Entries", evse_id=None, connector_id=None,
            instance="ChargingProfiles",
        )  # fmt: skip
        return int(cell.definition.max_limit or 0)

    def local_auth_list_entries_max(self) -> int:
        cell = self._resolve(
            "LocalAuthListCtrlr", "Entries", evse_id=None, connector_id=None, instance=None
        )
        return int(cell.definition.max_limit or 0)

    def max_limit(self, component: str, variable: str, **where: Any) -> float | None:
        """The variable's maxLimit characteristic (e.g. AuthCacheCtrlr.Storage capacity)."""
        where.setdefault("evse_id", None)
        where.setdefault("connector_id", None)
        where.setdefault("instance", None)
        return self._resolve(component, variable, **where).definition.max_limit

    def rate_units(self) -> tuple[str, ...]:
        return self._list("SmartChargingCtrlr", "RateUnit")

    def limit_change_significance(self) -> float:
        return self._float("SmartChargingCtrlr", "LimitChangeSignificance")

    def external_control_signals_enabled(self) -> bool:
        return self._bool("SmartChargingCtrlr", "ExternalControlSignalsEnabled")

    def ev_connection_timeout(self) -> int:
        return self._int("TxCtrlr", "EVConnectionTimeOut")

    def stop_tx_on_ev_side_disconnect(self) -> bool:
        return self._bool("TxCtrlr", "StopTxOnEVSideDisconnect")

    def tx_start_points(self) -> tuple[str, ...]:
        return self._list("TxCtrlr", "TxStartPoint")

    def tx_stop_points(self) -> tuple[str, ...]:
        return self._list("TxCtrlr", "TxStopPoint")

    def tx_updated_interval(self) -> int:
        return self._int("SampledDataCtrlr", "TxUpdatedInterval")

    def sampled_measurands(self, phase: str) -> tuple[str, ...]:
        """phase: "TxStarted", "TxUpdated" or "TxEnded"."""
        return self._list("SampledDataCtrlr", f"{phase}Measurands")

    def aligned_data_interval(self) -> int:
        return self._int("AlignedDataCtrlr", "Interval")

    def aligned_measurands(self) -> tuple[str, ...]:
        return self._list("AlignedDataCtrlr", "Measurands")

    def authorize_remote_start(self) -> bool:
        return self._bool("AuthCtrlr", "AuthorizeRemoteStart")

    def local_authorize_offline(self) -> bool:
        return self._bool("AuthCtrlr", "LocalAuthorizeOffline")

    def items_per_message(self, message: str) -> int:
        """message: "GetReport", "GetVariables" or "SetVariables"."""
        return self._int("DeviceDataCtrlr", "ItemsPerMessage", instance=message)

    def negative_limit_is_discharge(self) -> bool:
        return self._bool("V2XCtrlr", "NegativeLimitIsDischarge")

    def freq_watt_curve(self) -> list[tuple[float, float]]:
        points = json.loads(self.value("V2XCtrlr", "FreqWattCurve") or "[]")
        return [(float(hz), float(w)) for hz, w in points]

    def freq_watt_enabled(self) -> bool:
        return self._bool("V2XCtrlr", "FreqWattEnabled")

    def backup_reserve_soc(self) -> float:
        return self._float("V2XCtrlr", "BackupReserveSoC")

    def driving_reserve_soc(self) -> float:
        return self._float("V2XCtrlr", "DrivingReserveSoC")

    def offline_safe_limit(self) -> float:
        return self._float("V2XCtrlr", "OfflineSafeLimit")

    def evse_max_power_w(self, evse_id: int) -> float:
        """The configured cap (EVSE.Power MaxSet), never above the rated maxLimit."""
        return float(self.value("EVSE", "Power", evse_id=evse_id, attribute="MaxSet") or 0)


def _matches(cell: _Cell, component_variable: Mapping[str, Any]) -> bool:
    ref = cell.definition.ref
    component = component_variable["component"]
    if component["name"] != ref.component:
        return False
    if component.get("instance") is not None and component["instance"] != ref.component_instance:
        return False
    evse = component.get("evse")
    if evse is not None:
        if evse.get("id") != ref.evse_id:
            return False
        if evse.get("connectorId") is not None and evse["connectorId"] != ref.connector_id:
            return False
    variable = component_variable.get("variable")
    if variable is None:
        return True
    if variable["name"] != ref.variable:
        return False
    return variable.get("instance") is None or variable["instance"] == ref.variable_instance
