"""OCA OCPP 2.0.1 JSON schemas (shipped in the `ocpp` package), compiled once and validated
in-line (a thread pool per message costs ~8x). Schema failures map to OCPP-J error codes."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import jsonschema
from jsonschema import Draft6Validator, FormatChecker

CS_TO_CSMS_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }
)


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time")(_is_datetime)


@functools.cache
def all_actions() -> frozenset[str]:
    names = [p.name for p in resources.files("ocpp.v201").joinpath("schemas").iterdir()]
    return frozenset(n.removesuffix("Request.json") for n in names if n.endswith("Request.json"))


@functools.cache
def validator(action: str, kind: str) -> Draft6Validator | None:
    """Compiled validator for `<action><kind>.json` (kind "Request" or "Response")."""
    path = resources.files("ocpp.v201").joinpath("schemas", f"{action}{kind}.json")
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    return Draft6Validator(schema, format_checker=_FORMATS)


@dataclass(frozen=True, slots=True)
class SchemaViolation(Exception):
    """A payload that breaks its schema, with the OCPP-J error code that reports it."""

    code: str
    message: str
    path: str

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.message}{where}"


# jsonschema keyword -> OCPP-J Part 4 error code.
_CODE_BY_KEYWORD = {
    "type": "TypeConstraintViolation",
    "required": "OccurrenceConstraintViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "minProperties": "OccurrenceConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "maxLength": "PropertyConstraintViolation",
    "minLength": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
    "additionalProperties": "FormatViolation",
}


def check(action: str, kind: str, payload: Any) -> None:
    """Raise SchemaViolation if `payload` breaks the schema; unknown schemas pass."""
    v = validator(action, kind)
    if v is None:
        return
    if not isinstance(payload, dict):
        raise SchemaViolation("FormatViolation", "payload must be a JSON object", "")
    error = jsonschema.exceptions.best_match(v.iter_errors(payload))
    if error is None:
        return
    path = "/".join(str(p) for p in error.absolute_path)
    code = _CODE_BY_KEYWORD.get(str(error.validator), "FormatViolation")
    raise SchemaViolation(code, error.message, path)
