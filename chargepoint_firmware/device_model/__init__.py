"""The agent's OCPP 2.0.1 device model: components, variables, attributes and their rules.

Pure logic: values live in memory as OCPP strings; persistence goes through a tiny injected
`DeviceModelStore` (`load() -> dict`, `save(key, value)`), see store.py.

Modules: definitions.py (types, references, definitions, the store protocol), validation.py
(value rules), catalogue.py (the standard variables), report.py (OCPP JSON shapes, NotifyReport
pages), model.py (`DeviceModel`), store.py (the JSON file and in-memory stores).

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

from chargepoint_firmware.device_model.definitions import (
    AttributeDefinition,
    AttributeType,
    DataType,
    DeviceModelStore,
    InvalidValue,
    Mutability,
    VariableDefinition,
    VariableRef,
)
from chargepoint_firmware.device_model.model import DeviceModel
from chargepoint_firmware.device_model.report import paginate_report
from chargepoint_firmware.device_model.store import InMemoryStore, JsonFileStore
from chargepoint_firmware.device_model.validation import freq_watt_curve_error, normalise_value

__all__ = [
    "AttributeDefinition",
    "AttributeType",
    "DataType",
    "DeviceModel",
    "DeviceModelStore",
    "InMemoryStore",
    "InvalidValue",
    "JsonFileStore",
    "Mutability",
    "VariableDefinition",
    "VariableRef",
    "freq_watt_curve_error",
    "normalise_value",
    "paginate_report",
]
