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
        found.append({"field": _location(leaf), "message": leaf.message})
    return found


def request_errors(action: str, payload: Any) -> list[dict[str, str]]:
    """Schema violations of a `<action>Request` payload (empty list: valid)."""
    return describe_errors(action, "Request", payload)
