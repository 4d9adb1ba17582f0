"""The OCPP JSON shapes of the device model: component/variable objects, camelCase and
snake_case keys, and NotifyReport pagination."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from chargepoint_firmware.device_model.definitions import AttributeType, VariableRef
from v2g_shared.schedule.model import format_datetime


def component_json(ref: VariableRef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": ref.component}
    if ref.component_instance:
        out["instance"] = ref.component_instance
    if ref.evse_id is not None:
        evse: dict[str, Any] = {"id": ref.evse_id}
        if ref.connector_id is not None:
            evse["connectorId"] = ref.connector_id
        out["evse"] = evse
    return out


def variable_json(ref: VariableRef) -> dict[str, Any]:
    out: dict[str, Any] = {"name": ref.variable}
    if ref.variable_instance:
        out["instance"] = ref.variable_instance
    return out


def ref_from_json(component: Mapping[str, Any], variable: Mapping[str, Any]) -> VariableRef:
    evse = component.get("evse") or {}
    return VariableRef(
        component=component["name"],
        variable=variable["name"],
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        component_instance=component.get("instance"),
        variable_instance=variable.get("instance"),
    )


def camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake_key(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def rekey(value: Any, convert: Callable[[str], str]) -> Any:
    """Convert dict keys recursively (values such as "ConnectorType" stay as they are)."""
    if isinstance(value, Mapping):
        return {convert(k): rekey(v, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [rekey(v, convert) for v in value]
    return value


Style = Literal["camel", "snake"]


def styled(items: list[dict[str, Any]], style: Style) -> list[dict[str, Any]]:
    return items if style == "camel" else [rekey(i, snake_key) for i in items]


def attribute_type_named(name: str) -> AttributeType | None:
    try:
        return AttributeType(name)
    except ValueError:
        return None


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
