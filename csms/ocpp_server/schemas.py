"""OCA OCPP 2.0.1 JSON schemas (shipped in the `ocpp` package), compiled once and validated
in-line (a thread pool per message costs ~8x). Schema failures map to OCPP-J error codes.

Fast path: fastjsonschema compiles each schema to Python code (~15 us for a TransactionEvent
against ~230 us with jsonschema). Only a payload it refuses goes through jsonschema, whose
best_match gives the precise keyword and path for the CALLERROR."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import fastjsonschema
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
def _schema(action: str, kind: str) -> dict[str, Any] | None:
    path = resources.files("ocpp.v201").joinpath("schemas", f"{action}{kind}.json")
    if not path.is_file():
        return None
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


@functools.cache
def validator(action: str, kind: str) -> Draft6Validator | None:
    """jsonschema validator for `<action><kind>.json` (kind "Request" or "Response")."""
    schema = _schema(action, kind)
    return None if schema is None else Draft6Validator(schema, format_checker=_FORMATS)


@functools.cache
def fast_validator(action: str, kind: str) -> Callable[[Any], Any] | None:
    schema = _schema(action, kind)
    if schema is None:
        return None
    # use_default=False: never write schema defaults into the station's payload.
    compiled: Callable[[Any], Any] = fastjsonschema.compile(
        schema, formats={"date-time": _is_datetime}, use_default=False
    )
    return compiled


@dataclass(frozen=True, slots=True)
class SchemaViolation(Exception):
    """A payload that breaks its schema, with the OCPP-J error code that reports it."""

    code: str
    message: str
    path: str

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.message}{where}"


# jsonschema keyword -> OCPP-J Part 4 error code (2.0.1 spells "Occurence" with one "r").
_CODE_BY_KEYWORD = {
    "type": "TypeConstraintViolation",
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "minProperties": "OccurenceConstraintViolation",
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
    fast = fast_validator(action, kind)
    if fast is None:
        return
    if not isinstance(payload, dict):
        raise SchemaViolation("FormatViolation", "payload must be a JSON object", "")
    try:
        fast(payload)
        return
    except fastjsonschema.JsonSchemaValueException as fast_error:
        refused = fast_error
    v = validator(action, kind)
    assert v is not None
    error = jsonschema.exceptions.best_match(v.iter_errors(payload))
    if error is None:  # the two validators disagree: report what fastjsonschema saw
        path = "/".join(str(p) for p in (refused.path or [])[1:])
        code = _CODE_BY_KEYWORD.get(str(refused.rule), "FormatViolation")
        raise SchemaViolation(code, str(refused.message), path)
    path = "/".join(str(p) for p in error.absolute_path)
    code = _CODE_BY_KEYWORD.get(str(error.validator), "FormatViolation")
    raise SchemaViolation(code, error.message, path)
