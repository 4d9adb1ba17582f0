"""The CSMS-initiated OCPP 2.0.1 actions the API can send, and their request validation.

Requests are checked against the OCA JSON schemas shipped with the `ocpp` package before anything
is sent, so that a bad payload gets a 422 naming the field instead of a CALLERROR from the station.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from csms.domain.models import ApiScope
from csms.ocpp_server import schemas

CSMS_INITIATED_ACTIONS: tuple[str, ...] = (
    "RequestStartTransaction",
    "RequestStopTransaction",
    "Reset",
    "ChangeAvailability",
    "UnlockConnector",
    "TriggerMessage",
    "GetVariables",
    "SetVariables",
    "GetBaseReport",
    "GetReport",
    "SetChargingProfile",
    "GetChargingProfiles",
    "ClearChargingProfile",
    "GetCompositeSchedule",
    "ClearCache",
    "SendLocalList",
    "GetLocalListVersion",
    "ReserveNow",
    "CancelReservation",
    "UpdateFirmware",
    "PublishFirmware",
    "UnpublishFirmware",
    "GetLog",
    "SetNetworkProfile",
    "CertificateSigned",
    "InstallCertificate",
    "DeleteCertificate",
    "GetInstalledCertificateIds",
    "SetDisplayMessage",
    "GetDisplayMessages",
    "ClearDisplayMessage",
    "CustomerInformation",
    "SetMonitoringBase",
    "SetMonitoringLevel",
    "SetVariableMonitoring",
    "ClearVariableMonitoring",
    "GetMonitoringReport",
    "GetTransactionStatus",
    "CostUpdated",
    "DataTransfer",
)
_KNOWN = frozenset(CSMS_INITIATED_ACTIONS)

# Actions an `operate` token may not send through the generic route: they change where the
# station connects or whom it trusts (network profile, certificates), what code it runs
# (firmware), who may charge (local list), or ship data to a URL the caller names (logs,
# customer information). The typed routes for these are admin as well.
ADMIN_ACTIONS = frozenset(
    {
        "SetNetworkProfile",
        "CertificateSigned",
        "InstallCertificate",
        "DeleteCertificate",
        "UpdateFirmware",
        "PublishFirmware",
        "UnpublishFirmware",
        "GetLog",
        "CustomerInformation",
        "SendLocalList",
    }
)
# Device-model variables that are credentials or decide where the station connects.
ADMIN_COMPONENTS = frozenset({"SecurityCtrlr"})
ADMIN_VARIABLES = frozenset({("OCPPCommCtrlr", "NetworkConfigurationPriority")})


def _sets_admin_variable(payload: Any) -> bool:
    items = payload.get("setVariableData") if isinstance(payload, dict) else None
    for item in items if isinstance(items, list) else ():
        component = item.get("component") if isinstance(item, dict) else None
        variable = item.get("variable") if isinstance(item, dict) else None
        c_name = component.get("name") if isinstance(component, dict) else None
        v_name = variable.get("name") if isinstance(variable, dict) else None
        if c_name in ADMIN_COMPONENTS or (c_name, v_name) in ADMIN_VARIABLES:
            return True
    return False


def action_scope(action: str, payload: Any) -> ApiScope:
    """The API token scope needed to send `action` with `payload` to a station."""
    if action in ADMIN_ACTIONS:
        return ApiScope.ADMIN
    if action == "SetVariables" and _sets_admin_variable(payload):
        return ApiScope.ADMIN
    return ApiScope.OPERATE


def is_csms_initiated_action(action: str) -> bool:
    return action in _KNOWN


@cache
def _validator(action: str, kind: str) -> Draft4Validator:
    schema_file = resources.files("ocpp") / "v201" / "schemas" / f"{action}{kind}.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    # The OCA schemas carry a draft-06 "$schema" id but only use draft-4 features; the `ocpp`
    # library also validates them with Draft4.
    return Draft4Validator(schema)


def _location(error: ValidationError) -> str:
    parts: list[str] = []
    for element in error.absolute_path:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        else:
            parts.append(f".{element}" if parts else str(element))
    return "".join(parts) or "(payload)"


def describe_errors(action: str, kind: str, payload: Any) -> list[dict[str, str]]:
    """Every schema violation of `payload` as {"field", "message"}, most specific first."""
    validator = _validator(action, kind)
    found = []
    for error in sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path)):
        # For oneOf/anyOf the leaf errors explain more than the summary.
        leaf = error
        while leaf.context:
            leaf = min(leaf.context, key=lambda e: len(e.context or ()))
        found.append({"field": _location(leaf), "message": schemas.error_message(leaf)})
    return found


def request_errors(action: str, payload: Any) -> list[dict[str, str]]:
    """Schema violations of a `<action>Request` payload (empty list: valid)."""
    return describe_errors(action, "Request", payload)
