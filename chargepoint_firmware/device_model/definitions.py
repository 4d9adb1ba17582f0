"""Device model vocabulary: data types, mutability, attribute types, variable references and
definitions, the store protocol and the error for an invalid value (OCPP 2.0.1 Part 2)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


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
