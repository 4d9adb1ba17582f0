"""The agent's OCPP 2.0.1 device model: components, variables, attributes and their rules.

Pure logic: values live in memory as OCPP strings; persistence goes through a tiny injected
`DeviceModelStore` (`load() -> dict`, `save(key, value)`), see device_model_store.py.

Naming follows the OCPP 2.0.1 Part 2 appendix (e.g. DeviceDataCtrlr.ItemsPerMessage with
instance GetReport; SmartChargingCtrlr.Entries with instance ChargingProfiles). `value()` also
understands the flattened names some code uses (`ItemsPerMessageGetReport`) and finds a variable
by name when its instance is not given and the name is unique.

Semantics worth knowing:
* set_variables validates against the data type and characteristics (min/max: value for numbers,
  length for strings; valuesList for OptionList / MemberList / SequenceList) and mutability.
* A RebootRequired variable (SecurityCtrlr.SecurityProfile, Identity) is stored at once and
  answered `RebootRequired`; the running agent keeps the value it booted with (get returns that)
  until the next start loads the stored one. Listeners are not called for it.
* SecurityProfile can only be raised, never lowered (A05: no downgrade over the air).
* Values persist only for variables marked persistent; measured/runtime ones (AvailabilityState,
  Power) do not. On load, a stored value that no longer validates is ignored.
* The agent updates read-only values (AvailabilityState, Entries, Power) with `set_internal`.
"""

from __future__ import annotations

import enum
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from v2g_shared.schedule.model import format_datetime

# ---------- types ----------


class DataType(enum.StrEnum):
    STRING = "string"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATETIME = "dateTime"
    BOOLEAN = "boolean"
    OPTION_LIST = "OptionList"
    SEQUENCE_LIST = "SequenceList"
    MEMBER_LIST = "MemberList"


class Mutability(enum.StrEnum):
    READ_ONLY = "ReadOnly"
    WRITE_ONLY = "WriteOnly"
    READ_WRITE = "ReadWrite"


class AttributeType(enum.StrEnum):
    ACTUAL = "Actual"
    TARGET = "Target"
    MIN_SET = "MinSet"
    MAX_SET = "MaxSet"


class DeviceModelStore(Protocol):
    """Where persistent values go: keys like `OCPPCommCtrlr.HeartbeatInterval`."""

    def load(self) -> dict[str, str]: ...

    def save(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class VariableRef:
    """Identifies one variable of one component instance (and its EVSE/connector)."""

    component: str
    variable: str
    evse_id: int | None = None
    connector_id: int | None = None
    component_instance: str | None = None
    variable_instance: str | None = None

    def key(self, attribute: AttributeType = AttributeType.ACTUAL) -> str:
        """Store key: Component[inst]/evse/connector.Variable[inst](.Attribute unless Actual)."""
        out = self.component
        if self.component_instance:
            out += f"[{self.component_instance}]"
        if self.evse_id is not None:
            out += f"/{self.evse_id}"
            if self.connector_id is not None:
                out += f"/{self.connector_id}"
        out += f".{self.variable}"
        if self.variable_instance:
            out += f"[{self.variable_instance}]"
        if attribute is not AttributeType.ACTUAL:
            out += f".{attribute.value}"
        return out

    @property
    def component_key(self) -> tuple[str, str | None, int | None, int | None]:
        return (self.component, self.component_instance, self.evse_id, self.connector_id)


# validator(new_value, current_value) -> error message or None
Validator = Callable[[str, str | None], str | None]
ChangeListener = Callable[[VariableRef, str], None]


@dataclass(frozen=True, slots=True)
class AttributeDefinition:
    type: AttributeType
    mutability: Mutability
    default: str | None


@dataclass(frozen=True, slots=True)
class VariableDefinition:
    ref: VariableRef
    data_type: DataType
    attributes: tuple[AttributeDefinition, ...]
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] | None = None
    persistent: bool = True
    constant: bool = False
    reboot_required: bool = False
    validator: Validator | None = None

    def attribute(self, attribute_type: AttributeType) -> AttributeDefinition | None:
        return next((a for a in self.attributes if a.type is attribute_type), None)


class InvalidValue(ValueError):
    """A value that breaks the variable's data type or characteristics."""


# ---------- value checks ----------

_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def normalise_value(definition: VariableDefinition, value: str) -> str:
    """The canonical string for `value`, or InvalidValue with a reason."""
    if not isinstance(value, str):
        raise InvalidValue("value must be a string")
    low, high = definition.min_limit, definition.max_limit
    data_type = definition.data_type
    if data_type in (DataType.INTEGER, DataType.DECIMAL):
        text = value.strip()
        pattern = _INTEGER if data_type is DataType.INTEGER else _DECIMAL
        if not pattern.match(text):
            raise InvalidValue(f"{value!r} is not a valid {data_type.value}")
        number = float(text)
        if not math.isfinite(number):
            raise InvalidValue(f"{value!r} is not finite")
        if (low is not None and number < low) or (high is not None and number > high):
            raise InvalidValue(f"{value} outside [{low}, {high}]")
        out = str(int(text)) if data_type is DataType.INTEGER else _format_number(number)
    elif data_type is DataType.BOOLEAN:
        if value.lower() not in ("true", "false"):
            raise InvalidValue(f"{value!r} is not true or false")
        out = value.lower()
    elif data_type is DataType.DATETIME:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidValue(f"{value!r} is not an ISO 8601 date-time") from exc
        if parsed.tzinfo is None:
            raise InvalidValue("a dateTime needs a time zone (Z)")
        out = value
    elif data_type is DataType.OPTION_LIST:
        if definition.values_list is not None and value not in definition.values_list:
            raise InvalidValue(f"{value!r} not one of {','.join(definition.values_list)}")
        out = value
    elif data_type in (DataType.MEMBER_LIST, DataType.SEQUENCE_LIST):
        members = [m.strip() for m in value.split(",")] if value.strip() else []
        allowed = definition.values_list
        unknown = [m for m in members if allowed is not None and m not in allowed]
        if unknown:
            raise InvalidValue(f"{','.join(unknown)} not in {','.join(allowed or ())}")
        if len(set(members)) != len(members):
            raise InvalidValue("members repeat")
        out = ",".join(members)
    else:  # string: min/max limit are lengths
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            raise InvalidValue(f"length {len(value)} outside [{low}, {high}]")
        out = value
    return out


def freq_watt_curve_error(value: str, _current: str | None = None) -> str | None:
    """V2XCtrlr.FreqWattCurve: a JSON list of 2-20 [Hz, W] points, Hz strictly increasing."""
    try:
        points = json.loads(value)
    except ValueError:
        return "not JSON"
    if not isinstance(points, list) or not 2 <= len(points) <= 20:
        return "needs 2 to 20 points"
    for point in points:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                for x in point
            )
        ):
            return "each point is [Hz, W]"
        if not 40.0 <= point[0] <= 70.0:
            return f"frequency {point[0]} Hz outside 40..70"
    if any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
        return "frequencies must strictly increase"
    return None


def _not_negative(value: str, _current: str | None) -> str | None:
    return "must not be negative" if float(value) < 0 else None


def _no_downgrade(value: str, current: str | None) -> str | None:
    if current is not None and int(value) < int(current):
        return f"security profile cannot be lowered from {current} to {value}"
    return None


# ---------- the standard variables ----------

MEASURANDS = (
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Active.Net",
    "Frequency",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Offered",
    "SoC",
    "Voltage",
)
TX_POINTS = (
    "ParkingBayOccupancy",
    "EVConnected",
    "Authorized",
    "DataSigned",
    "PowerPathClosed",
    "EnergyTransfer",
)
AVAILABILITY_STATES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
ENERGY_REGISTERS = "Energy.Active.Import.Register,Energy.Active.Export.Register"

RO, WO, RW = Mutability.READ_ONLY, Mutability.WRITE_ONLY, Mutability.READ_WRITE
T = DataType


def _var(
    component: str,
    variable: str,
    data_type: DataType,
    default: str | None,
    mutability: Mutability = RW,
    *,
    evse_id: int | None = None,
    connector_id: int | None = None,
    instance: str | None = None,
    extra_attributes: Sequence[AttributeDefinition] = (),
    **characteristics: Any,
) -> VariableDefinition:
    ref = VariableRef(component, variable, evse_id, connector_id, None, instance)
    actual = AttributeDefinition(AttributeType.ACTUAL, mutability, default)
    return VariableDefinition(ref, data_type, (actual, *extra_attributes), **characteristics)


DEFAULT_AUTH_CACHE_STORAGE_BYTES = 131_072


def _station_variables(
    auth_cache_storage_bytes: int = DEFAULT_AUTH_CACHE_STORAGE_BYTES,
) -> list[VariableDefinition]:
    comm, sec, sc, tx = "OCPPCommCtrlr", "SecurityCtrlr", "SmartChargingCtrlr", "TxCtrlr"
    sd, ad, auth = "SampledDataCtrlr", "AlignedDataCtrlr", "AuthCtrlr"
    cache, lal, ddc, cs, v2x = (
        "AuthCacheCtrlr",
        "LocalAuthListCtrlr",
        "DeviceDataCtrlr",
        "ChargingStation",
        "V2XCtrlr",
    )
    s = "s"
    return [
        _var(comm, "HeartbeatInterval", T.INTEGER, "300", unit=s, min_limit=1, max_limit=86400),
        _var(comm, "MessageTimeout", T.INTEGER, "30", instance="Default", unit=s, min_limit=1,
             max_limit=3600),
        _var(comm, "NetworkProfileConnectionAttempts", T.INTEGER, "3", min_limit=1, max_limit=100),
        _var(comm, "OfflineThreshold", T.INTEGER, "60", unit=s, min_limit=0, max_limit=86400),
        _var(comm, "MessageAttempts", T.INTEGER, "3", instance="TransactionEvent", min_limit=0,
             max_limit=10),
        _var(comm, "MessageAttemptInterval", T.INTEGER, "60", instance="TransactionEvent", unit=s,
             min_limit=0, max_limit=3600),
        _var(comm, "RetryBackOffRandomRange", T.INTEGER, "10", unit=s, min_limit=0, max_limit=600),
        _var(comm, "RetryBackOffRepeatTimes", T.INTEGER, "5", min_limit=0, max_limit=100),
        _var(comm, "RetryBackOffWaitMinimum", T.INTEGER, "3", unit=s, min_limit=0, max_limit=600),
        _var(comm, "WebSocketPingInterval", T.INTEGER, "30", unit=s, min_limit=0, max_limit=3600),
        _var(comm, "ResetRetries", T.INTEGER, "2", min_limit=0, max_limit=10),
        _var(comm, "FileTransferProtocols", T.MEMBER_LIST, "HTTPS", RO, constant=True,
             values_list=("HTTP", "HTTPS", "FTP", "FTPS", "SFTP")),
        _var(sec, "SecurityProfile", T.INTEGER, "1", min_limit=0, max_limit=3,
             reboot_required=True, validator=_no_downgrade),
        _var(sec, "BasicAuthPassword", T.STRING, None, WO, min_limit=16, max_limit=40),
        _var(sec, "Identity", T.STRING, "", max_limit=48, reboot_required=True),
        _var(sec, "OrganizationName", T.STRING, "", max_limit=50),
        _var(sec, "CertificateEntries", T.INTEGER, "0", RO, persistent=False),
        _var(sc, "Enabled", T.BOOLEAN, "true"),
        _var(sc, "Available", T.BOOLEAN, "true", RO, persistent=False),
        _var(sc, "ProfileStackLevel", T.INTEGER, "8", RO, constant=True),
        _var(sc, "RateUnit", T.MEMBER_LIST, "A,W", RO, constant=True, values_list=("A", "W")),
        _var(sc, "PeriodsPerSchedule", T.INTEGER, "1024", RO, constant=True),
        _var(sc, "Entries", T.INTEGER, "0", RO, instance="ChargingProfiles", max_limit=100,
             persistent=False),
        _var(sc, "LimitChangeSignificance", T.DECIMAL, "10", unit="Percent", min_limit=0,
             max_limit=100),
        _var(sc, "ExternalControlSignalsEnabled", T.BOOLEAN, "false"),
        _var(tx, "EVConnectionTimeOut", T.INTEGER, "120", unit=s, min_limit=0, max_limit=3600),
        _var(tx, "StopTxOnEVSideDisconnect", T.BOOLEAN, "true"),
        _var(tx, "TxStartPoint", T.MEMBER_LIST, "PowerPathClosed", values_list=TX_POINTS),
        _var(tx, "TxStopPoint", T.MEMBER_LIST, "EVConnected,Authorized", values_list=TX_POINTS),
        _var(tx, "StopTxOnInvalidId", T.BOOLEAN, "true"),
        _var(tx, "MaxEnergyOnInvalidId", T.INTEGER, "0", unit="Wh", min_limit=0),
        _var(sd, "Enabled", T.BOOLEAN, "true"),
        _var(sd, "TxUpdatedInterval", T.INTEGER, "60", unit=s, min_limit=0, max_limit=86400),
        _var(sd, "TxStartedMeasurands", T.MEMBER_LIST, ENERGY_REGISTERS + ",SoC",
             values_list=MEASURANDS),
        _var(sd, "TxUpdatedMeasurands", T.MEMBER_LIST,
             ENERGY_REGISTERS + ",Power.Active.Import,Power.Active.Export,Current.Import,"
             "Current.Export,Voltage,SoC", values_list=MEASURANDS),
        _var(sd, "TxEndedMeasurands", T.MEMBER_LIST, ENERGY_REGISTERS + ",SoC",
             values_list=MEASURANDS),
        _var(sd, "TxEndedInterval", T.INTEGER, "0", unit=s, min_limit=0, max_limit=86400),
        _var(ad, "Enabled", T.BOOLEAN, "true"),
        _var(ad, "Interval", T.INTEGER, "900", unit=s, min_limit=0, max_limit=86400),
        _var(ad, "Measurands", T.MEMBER_LIST, ENERGY_REGISTERS, values_list=MEASURANDS),
        _var(ad, "TxEndedInterval", T.INTEGER, "0", unit=s, min_limit=0, max_limit=86400),
        _var(ad, "TxEndedMeasurands", T.MEMBER_LIST, ENERGY_REGISTERS, values_list=MEASURANDS),
        _var(ad, "SendDuringIdle", T.BOOLEAN, "false"),
        _var(auth, "Enabled", T.BOOLEAN, "true"),
        _var(auth, "AuthorizeRemoteStart", T.BOOLEAN, "false"),
        _var(auth, "LocalAuthorizeOffline", T.BOOLEAN, "true"),
        _var(auth, "LocalPreAuthorize", T.BOOLEAN, "false"),
        _var(auth, "OfflineTxForUnknownIdEnabled", T.BOOLEAN, "false"),
        _var(cache, "Enabled", T.BOOLEAN, "true"),
        _var(cache, "Available", T.BOOLEAN, "true", RO, persistent=False),
        # C10: LifeTime 0 = entries never lapse by age (cacheExpiryDateTime still applies).
        _var(cache, "LifeTime", T.INTEGER, "86400", unit=s, min_limit=0),
        _var(cache, "Policy", T.OPTION_LIST, "LRU", values_list=("LRU", "LFU", "FIFO", "CUSTOM")),
        # Actual = bytes in use, maxLimit = capacity (ocpp_client/auth_cache_policy.py).
        _var(cache, "Storage", T.INTEGER, "0", RO, unit="B", min_limit=0,
             max_limit=auth_cache_storage_bytes, persistent=False),
        _var(cache, "DisablePostAuthorize", T.BOOLEAN, "false"),
        # H01: reservations (ReserveNow / CancelReservation)
        _var("ReservationCtrlr", "Enabled", T.BOOLEAN, "true"),
        _var("ReservationCtrlr", "Available", T.BOOLEAN, "true", RO, persistent=False),
        _var("ReservationCtrlr", "NonEvseSpecific", T.BOOLEAN, "true"),
        _var(lal, "Enabled", T.BOOLEAN, "true"),
        _var(lal, "Available", T.BOOLEAN, "true", RO, persistent=False),
        _var(lal, "Entries", T.INTEGER, "0", RO, max_limit=1000, persistent=False),
        _var(lal, "ItemsPerMessage", T.INTEGER, "100", RO, constant=True),
        _var(lal, "BytesPerMessage", T.INTEGER, "65536", RO, constant=True),
        *(
            _var(ddc, name, T.INTEGER, default, RO, instance=instance, constant=True)
            for name, default in (("ItemsPerMessage", "50"), ("BytesPerMessage", "65536"))
            for instance in ("GetReport", "GetVariables", "SetVariables")
        ),
        _var(cs, "AvailabilityState", T.OPTION_LIST, "Available", RO,
             values_list=AVAILABILITY_STATES, persistent=False),
        _var(cs, "Available", T.BOOLEAN, "true", RO, persistent=False),
        _var(cs, "Problem", T.BOOLEAN, "false", RO, persistent=False),
        _var(cs, "Model", T.STRING, "V2G-CHAdeMO", RO, constant=True, max_limit=20),
        _var(cs, "VendorName", T.STRING, "OpenV2G", RO, constant=True, max_limit=50),
        _var(cs, "SupplyPhases", T.INTEGER, "1", RO, constant=True, min_limit=0, max_limit=3),
        _var(v2x, "NegativeLimitIsDischarge", T.BOOLEAN, "true"),
        # Positive W = charge: below nominal frequency the vehicle discharges, above it charges.
        _var(v2x, "FreqWattCurve", T.STRING,
             "[[49.0, -7000], [49.85, 0], [50.15, 0], [51.0, 7000]]", max_limit=1000,
             validator=freq_watt_curve_error),
        _var(v2x, "FreqWattEnabled", T.BOOLEAN, "false"),
        _var(v2x, "BackupReserveSoC", T.DECIMAL, "20", unit="Percent", min_limit=0,
             max_limit=100),
        _var(v2x, "DrivingReserveSoC", T.DECIMAL, "30", unit="Percent", min_limit=0,
             max_limit=100),
        _var(v2x, "OfflineSafeLimit", T.DECIMAL, "0", unit="W", min_limit=-1_000_000,
             max_limit=1_000_000),
    ]  # fmt: skip


def _evse_variables(evse_id: int, max_power_w: float) -> list[VariableDefinition]:
    power_max = AttributeDefinition(AttributeType.MAX_SET, RW, _format_number(max_power_w))
    return [
        _var("EVSE", "AvailabilityState", T.OPTION_LIST, "Available", RO, evse_id=evse_id,
             values_list=AVAILABILITY_STATES, persistent=False),
        _var("EVSE", "Available", T.BOOLEAN, "true", RO, evse_id=evse_id, persistent=False),
        _var("EVSE", "Problem", T.BOOLEAN, "false", RO, evse_id=evse_id, persistent=False),
        # Actual = measured power (signed); MaxSet = a configured cap within the rated maxLimit.
        _var("EVSE", "Power", T.DECIMAL, "0", RO, evse_id=evse_id, unit="W",
             min_limit=-max_power_w, max_limit=max_power_w, persistent=False,
             validator=_not_negative, extra_attributes=(power_max,)),
        _var("EVSE", "SupplyPhases", T.INTEGER, "0", RO, evse_id=evse_id, constant=True),
        _var("Connector", "AvailabilityState", T.OPTION_LIST, "Available", RO, evse_id=evse_id,
             connector_id=1, values_list=AVAILABILITY_STATES, persistent=False),
        _var("Connector", "Available", T.BOOLEAN, "true", RO, evse_id=evse_id, connector_id=1,
             persistent=False),
        _var("Connector", "ConnectorType", T.OPTION_LIST, "cCHAdeMO", RO, evse_id=evse_id,
             connector_id=1, constant=True, values_list=("cCHAdeMO",)),
        # When the vehicle on this EVSE leaves and the SoC it needs then: discharge stops where
        # charging at the vehicle's rate could no longer reach it (safety/departure.py). No
        # value = no departure; a departure in the past constrains nothing.
        _var("V2XCtrlr", "DepartureTime", T.DATETIME, None, evse_id=evse_id),
        _var("V2XCtrlr", "DepartureSoC", T.DECIMAL, None, evse_id=evse_id, unit="Percent",
             min_limit=0, max_limit=100),
    ]  # fmt: skip


# Flattened names seen in other code -> (variable, instance).
_ALIASES = {
    f"{name}{instance}": (name, instance)
    for name in ("ItemsPerMessage", "BytesPerMessage")
    for instance in ("GetReport", "GetVariables", "SetVariables")
}


# ---------- the model ----------


@dataclass
class _Cell:
    definition: VariableDefinition
    values: dict[AttributeType, str | None] = field(default_factory=dict)


def _persistent(definition: VariableDefinition, attribute: AttributeType) -> bool:
    """Configured set-points (MaxSet, MinSet, Target) persist even where Actual is measured."""
    return definition.persistent or attribute is not AttributeType.ACTUAL


def _component_json(ref: VariableRef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": ref.component}
    if ref.component_instance:
        out["instance"] = ref.component_instance
    if ref.evse_id is not None:
        evse: dict[str, Any] = {"id": ref.evse_id}
        if ref.connector_id is not None:
            evse["connectorId"] = ref.connector_id
        out["evse"] = evse
    return out


def _variable_json(ref: VariableRef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": ref.variable}
    if ref.variable_instance:
        out["instance"] = ref.variable_instance
    return out


def _ref_from_json(component: Mapping[str, Any], variable: Mapping[str, Any]) -> VariableRef:
    evse = component.get("evse") or {}
    return VariableRef(
        component=component["name"],
        variable=variable["name"],
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        component_instance=component.get("instance"),
        variable_instance=variable.get("instance"),
    )


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _rekey(value: Any, convert: Callable[[str], str]) -> Any:
    """Convert dict keys recursively (values such as "ConnectorType" stay as they are)."""
    if isinstance(value, Mapping):
        return {convert(k): _rekey(v, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [_rekey(v, convert) for v in value]
    return value


Style = Literal["camel", "snake"]


def _out(items: list[dict[str, Any]], style: Style) -> list[dict[str, Any]]:
    return items if style == "camel" else [_rekey(i, _snake) for i in items]


def _attribute_type(name: str) -> AttributeType | None:
    try:
        return AttributeType(name)
    except ValueError:
        return None


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
        definitions = _station_variables(auth_cache_storage_bytes)
        for evse_id in self.evse_ids:
            power = (
                evse_max_power_w
                if isinstance(evse_max_power_w, int | float)
                else evse_max_power_w.get(evse_id, 50_000.0)
            )
            definitions += _evse_variables(evse_id, float(power))
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
        if instance is None and variable in _ALIASES and component == "DeviceDataCtrlr":
            variable, instance = _ALIASES[variable]
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
        ref = _ref_from_json(component, variable)
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
            request = _rekey(raw, _camel)
            attribute_name = request.get("attributeType", AttributeType.ACTUAL.value)
            result: dict[str, Any] = {
                "attributeType": attribute_name,
                "component": dict(request["component"]),
                "variable": dict(request["variable"]),
            }
            cell, status = self._lookup(request["component"], request["variable"])
            if cell is not None:
                attribute_type = _attribute_type(attribute_name)
                attribute = (
                    None if attribute_type is None else cell.definition.attribute(attribute_type)
                )
                if attribute is None:
                    status = "NotSupportedAttributeType"
                elif attribute.mutability is WO:
                    status = "Rejected"
                    result["attributeStatusInfo"] = {"reasonCode": "WriteOnly"}
                else:
                    status = "Accepted"
                    value = cell.values.get(attribute.type)
                    result["attributeValue"] = "" if value is None else value
            result["attributeStatus"] = status
            results.append(result)
        return _out(results, style)

    def set_variables(
        self, requests: Sequence[Mapping[str, Any]], *, style: Style = "camel"
    ) -> list[dict[str, Any]]:
        """SetVariableData dicts -> SetVariableResult dicts (input camelCase or snake_case,
        output keys per `style`). Each entry is applied on its own, in order."""
        results: list[dict[str, Any]] = []
        for raw in requests:
            request = _rekey(raw, _camel)
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
        return _out(results, style)

    def _set_one(
        self, request: Mapping[str, Any], attribute_name: str
    ) -> tuple[str, tuple[str, str] | None]:
        cell, status = self._lookup(request["component"], request["variable"])
        if cell is None:
            return status or "Rejected", None
        definition = cell.definition
        attribute_type = _attribute_type(attribute_name)
        attribute = None if attribute_type is None else definition.attribute(attribute_type)
        if attribute is None:
            return "NotSupportedAttributeType", None
        if attribute.mutability is RO:
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
            if attribute.mutability is not WO and value is not None:
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
            "component": _component_json(definition.ref),
            "variable": _variable_json(definition.ref),
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
                c for c in cells if any(a.mutability is not RO for a in c.definition.attributes)
            ]
        elif criteria == "SummaryInventory":
            summary = {"AvailabilityState", "Available", "Problem"}
            cells = [c for c in cells if c.definition.ref.variable in summary]
        elif criteria not in (None, "FullInventory"):
            raise ValueError(f"unknown report base {criteria}")
        if component_variables:
            wanted_cv = [_rekey(cv, _camel) for cv in component_variables]
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
        return _out([self._report_entry(c) for c in cells], style)

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


def paginate_report(
    report_data: Sequence[Mapping[str, Any]],
    items_per_message: int,
    *,
    request_id: int | None = None,
    generated_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Split ReportData into NotifyReport payloads: seqNo from 0, tbc true on all but the last.

    requestId/generatedAt are added when given (the caller owns the clock). An empty report
    gives no message (GetBaseReport answers EmptyResultSet instead).
    """
    if items_per_message < 1:
        raise ValueError("items_per_message must be at least 1")
    chunks = [
        list(report_data[i : i + items_per_message])
        for i in range(0, len(report_data), items_per_message)
    ]
    messages: list[dict[str, Any]] = []
    for seq_no, chunk in enumerate(chunks):
        message: dict[str, Any] = {}
        if request_id is not None:
            message["requestId"] = request_id
        if generated_at is not None:
            message["generatedAt"] = format_datetime(generated_at)
        message["tbc"] = seq_no < len(chunks) - 1
        message["seqNo"] = seq_no
        message["reportData"] = chunk
        messages.append(message)
    return messages


__all__ = [
    "AttributeDefinition",
    "AttributeType",
    "DataType",
    "DeviceModel",
    "DeviceModelStore",
    "InvalidValue",
    "Mutability",
    "VariableDefinition",
    "VariableRef",
    "freq_watt_curve_error",
    "normalise_value",
    "paginate_report",
]
