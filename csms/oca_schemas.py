"""OCA OCPP 2.0.1 and 2.1 JSON schemas (shipped in the `ocpp` package: ocpp/v201/schemas,
ocpp/v21/schemas), compiled once per version and validated in-line (a thread pool per message
costs ~8x). Schema failures map to OCPP-J error codes. One action table per version says who
sends each CALL; the lists the CSMS and the API use are derived from it (`table(version)`).

Fast path (issue 17): jsonschema-rs (Rust) decides that a payload is valid (~5 us for a
TransactionEvent with 3 sampled values, against ~40 us with fastjsonschema's generated Python
and ~230 us with jsonschema); date-time strings are still checked by `_is_datetime`. A payload
it refuses (or cannot convert: an integer beyond 64 bits) takes the previous path unchanged:
fastjsonschema decides, and only what that refuses goes through jsonschema, whose best_match
gives the precise keyword and path for the CALLERROR. A differential test holds the two
compiled validators to the same verdict on fuzzed payloads of every schema.

Bounds (after the schema passed): JSON Schema validators take 5.0 or 1e19 as an "integer" and
know no integer range, so a compiled walk per schema (`bounds_checker`) visits only the parts
of a payload that hold numbers or free-form data and refuses integral floats where the schema
says integer (TypeConstraintViolation), integers outside INT32 (or the schema's own
minimum/maximum) and any integer outside INT64 in numbers and free-form data
(PropertyConstraintViolation): the database columns and the algorithms hold no more."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema
import jsonschema_rs
from jsonschema import Draft4Validator, Draft6Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from csms.oca_bounds import Plan, SchemaViolation, bounded_schema, check_bounds, compile_plan
from v2g_shared.ocpp_j import error_code_for_schema_keyword
from v2g_shared.ocpp_versions import OcppVersion

__all__ = ["Plan", "SchemaViolation", "check_bounds"]  # re-exported: callers use oca_schemas

# The one list of OCPP 2.0.1 actions, by who sends the CALL. CSMS-initiated first, in the
# order the API documents them; DataTransfer goes both ways.
_CSMS, _STATION, _BOTH = "csms", "station", "both"
ACTIONS_201: dict[str, str] = {
    "RequestStartTransaction": _CSMS,
    "RequestStopTransaction": _CSMS,
    "Reset": _CSMS,
    "ChangeAvailability": _CSMS,
    "UnlockConnector": _CSMS,
    "TriggerMessage": _CSMS,
    "GetVariables": _CSMS,
    "SetVariables": _CSMS,
    "GetBaseReport": _CSMS,
    "GetReport": _CSMS,
    "SetChargingProfile": _CSMS,
    "GetChargingProfiles": _CSMS,
    "ClearChargingProfile": _CSMS,
    "GetCompositeSchedule": _CSMS,
    "ClearCache": _CSMS,
    "SendLocalList": _CSMS,
    "GetLocalListVersion": _CSMS,
    "ReserveNow": _CSMS,
    "CancelReservation": _CSMS,
    "UpdateFirmware": _CSMS,
    "PublishFirmware": _CSMS,
    "UnpublishFirmware": _CSMS,
    "GetLog": _CSMS,
    "SetNetworkProfile": _CSMS,
    "CertificateSigned": _CSMS,
    "InstallCertificate": _CSMS,
    "DeleteCertificate": _CSMS,
    "GetInstalledCertificateIds": _CSMS,
    "SetDisplayMessage": _CSMS,
    "GetDisplayMessages": _CSMS,
    "ClearDisplayMessage": _CSMS,
    "CustomerInformation": _CSMS,
    "SetMonitoringBase": _CSMS,
    "SetMonitoringLevel": _CSMS,
    "SetVariableMonitoring": _CSMS,
    "ClearVariableMonitoring": _CSMS,
    "GetMonitoringReport": _CSMS,
    "GetTransactionStatus": _CSMS,
    "CostUpdated": _CSMS,
    "DataTransfer": _BOTH,
    "Authorize": _STATION,
    "BootNotification": _STATION,
    "ClearedChargingLimit": _STATION,
    "FirmwareStatusNotification": _STATION,
    "Get15118EVCertificate": _STATION,
    "GetCertificateStatus": _STATION,
    "Heartbeat": _STATION,
    "LogStatusNotification": _STATION,
    "MeterValues": _STATION,
    "NotifyChargingLimit": _STATION,
    "NotifyCustomerInformation": _STATION,
    "NotifyDisplayMessages": _STATION,
    "NotifyEVChargingNeeds": _STATION,
    "NotifyEVChargingSchedule": _STATION,
    "NotifyEvent": _STATION,
    "NotifyMonitoringReport": _STATION,
    "NotifyReport": _STATION,
    "PublishFirmwareStatusNotification": _STATION,
    "ReportChargingProfiles": _STATION,
    "ReservationStatusUpdate": _STATION,
    "SecurityEventNotification": _STATION,
    "SignCertificate": _STATION,
    "StatusNotification": _STATION,
    "TransactionEvent": _STATION,
}
# What OCPP 2.1 (Edition 1) adds; every 2.0.1 action stays. Directions from OCPP 2.1 Part 2's
# message list. NotifyPeriodicEventStream is a SEND (OCPP-J 2.1 message type 6): never answered.
_SEND = "station-send"
ACTIONS_21_ADDED: dict[str, str] = {
    "SetDERControl": _CSMS,
    "GetDERControl": _CSMS,
    "ClearDERControl": _CSMS,
    "AFRRSignal": _CSMS,
    "UpdateDynamicSchedule": _CSMS,
    "NotifyAllowedEnergyTransfer": _CSMS,
    "GetPeriodicEventStream": _CSMS,
    "AdjustPeriodicEventStream": _CSMS,
    "UsePriorityCharging": _CSMS,
    "RequestBatterySwap": _CSMS,
    "NotifyWebPaymentStarted": _CSMS,
    "ChangeTransactionTariff": _CSMS,
    "SetDefaultTariff": _CSMS,
    "GetTariffs": _CSMS,
    "ClearTariffs": _CSMS,
    "BatterySwap": _STATION,
    "ClosePeriodicEventStream": _STATION,
    "GetCertificateChainStatus": _STATION,
    "NotifyDERAlarm": _STATION,
    "NotifyDERStartStop": _STATION,
    "NotifyPriorityCharging": _STATION,
    "NotifySettlement": _STATION,
    "OpenPeriodicEventStream": _STATION,
    "PullDynamicScheduleUpdate": _STATION,
    "ReportDERControl": _STATION,
    "VatNumberValidation": _STATION,
    "NotifyPeriodicEventStream": _SEND,
}
ACTIONS_21: dict[str, str] = {**ACTIONS_201, **ACTIONS_21_ADDED}


@dataclass(frozen=True)  # no slots: cached_property needs a __dict__
class ActionTable:
    """One OCPP version's actions and the lists derived from them."""

    version: OcppVersion
    actions: Mapping[str, str]  # action -> who sends it (_CSMS, _STATION, _BOTH, _SEND)

    @functools.cached_property
    def all_actions(self) -> frozenset[str]:
        return frozenset(self.actions)

    @functools.cached_property
    def csms_initiated(self) -> tuple[str, ...]:
        """Every action the CSMS may send (the API's generic route, the command service)."""
        return tuple(a for a, by in self.actions.items() if by in (_CSMS, _BOTH))

    @functools.cached_property
    def csms_to_cs(self) -> frozenset[str]:
        return frozenset(self.csms_initiated)

    @functools.cached_property
    def cs_to_csms(self) -> frozenset[str]:
        """Every action a station may send as a CALL."""
        return frozenset(a for a, by in self.actions.items() if by in (_STATION, _BOTH))

    @functools.cached_property
    def station_sends(self) -> frozenset[str]:
        """Actions a station sends as SEND (2.1 message type 6), never as a CALL."""
        return frozenset(a for a, by in self.actions.items() if by == _SEND)


TABLES: dict[OcppVersion, ActionTable] = {
    OcppVersion.V201: ActionTable(OcppVersion.V201, ACTIONS_201),
    OcppVersion.V21: ActionTable(OcppVersion.V21, ACTIONS_21),
}


def table(version: OcppVersion) -> ActionTable:
    return TABLES[version]


def versions_with_action(action: str) -> tuple[OcppVersion, ...]:
    """The versions that define `action` (any direction), oldest first."""
    return tuple(v for v, t in TABLES.items() if action in t.actions)


# 2.0.1 names kept for existing callers (the lists of a 2.0.1 station).
ACTIONS = ACTIONS_201
ALL_ACTIONS = TABLES[OcppVersion.V201].all_actions
CSMS_INITIATED_ACTIONS: tuple[str, ...] = TABLES[OcppVersion.V201].csms_initiated
CSMS_TO_CS_ACTIONS = TABLES[OcppVersion.V201].csms_to_cs
CS_TO_CSMS_ACTIONS = TABLES[OcppVersion.V201].cs_to_csms
# Every action the CSMS may send to a station of any version it speaks (the API routes).
ANY_VERSION_CSMS_INITIATED: tuple[str, ...] = TABLES[OcppVersion.V21].csms_initiated


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


V201, V21 = OcppVersion.V201, OcppVersion.V21
_PACKAGE = {OcppVersion.V201: "ocpp.v201", OcppVersion.V21: "ocpp.v21"}


@functools.cache
def _schema(action: str, kind: str, version: OcppVersion = V201) -> dict[str, Any] | None:
    """`<action><kind>.json` of `version`; a SEND's one schema (2.1 NotifyPeriodicEventStream
    ships as `<action>.json`) is its "Request"."""
    folder = resources.files(_PACKAGE[version]).joinpath("schemas")
    path = folder.joinpath(f"{action}{kind}.json")
    if not path.is_file() and kind == "Request" and action in TABLES[version].station_sends:
        path = folder.joinpath(f"{action}.json")
    if not path.is_file():
        return None
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def schema_of(action: str, kind: str, version: OcppVersion = V201) -> dict[str, Any] | None:
    """The OCA JSON schema (a shared, cached dict: do not change it), None if none."""
    return _schema(action, kind, version)


def request_schema(action: str) -> dict[str, Any] | None:
    """The OCA JSON schema of `<action>Request` (the dashboard builds its generic form from it)."""
    return _schema(action, "Request", V201)


@functools.cache
def validator(action: str, kind: str, version: OcppVersion = V201) -> Draft6Validator | None:
    """jsonschema validator for `<action><kind>.json` (kind "Request" or "Response")."""
    schema = _schema(action, kind, version)
    return None if schema is None else Draft6Validator(schema, format_checker=_FORMATS)


@functools.cache
def fast_validator(
    action: str, kind: str, version: OcppVersion = V201
) -> Callable[[Any], Any] | None:
    schema = _schema(action, kind, version)
    if schema is None:
        return None
    # use_default=False: never write schema defaults into the station's payload.
    compiled: Callable[[Any], Any] = fastjsonschema.compile(
        schema, formats={"date-time": _is_datetime}, use_default=False
    )
    return compiled


@functools.cache
def rust_validator(action: str, kind: str, version: OcppVersion = V201) -> Any | None:
    """jsonschema-rs validator for `<action><kind>.json` with the bounds folded in, None if no
    schema: what it accepts passes the schema and `check_bounds` alike, so an accepted payload
    is not walked again in Python (that walk was ~7 % of the CSMS's CPU on the write path)."""
    schema = _schema(action, kind, version)
    if schema is None:
        return None
    # Draft 4: an integral float (5.0) is not an integer, as `check_bounds` holds; the OCPP
    # schemas use no keyword whose meaning differs between drafts 4 and 6.
    return jsonschema_rs.Draft4Validator(
        bounded_schema(schema), formats={"date-time": _is_datetime}, validate_formats=True
    )


# (action, kind, version) -> (rust validator, bounds plan): one dict look-up per message
# (functools.cache on three arguments hashes the version enum in Python each call).
_CHECKERS: dict[tuple[str, str, OcppVersion], tuple[Any | None, Plan | None]] = {}


def _checker(action: str, kind: str, version: OcppVersion) -> tuple[Any | None, Plan | None]:
    key = (action, kind, version)
    found = _CHECKERS.get(key)
    if found is None:
        found = (rust_validator(action, kind, version), bounds_checker(action, kind, version))
        if len(_CHECKERS) < 4096:  # bounded: names come from the action tables
            _CHECKERS[key] = found
    return found


def _rust_accepts(rust: Any, payload: Any) -> bool:
    try:
        return bool(rust.is_valid(payload))
    except (ValueError, OverflowError, TypeError):  # not convertible: the Python path decides
        return False


def check(action: str, kind: str, payload: Any, version: OcppVersion = V201) -> None:
    """Raise SchemaViolation if `payload` breaks `version`'s schema or the bounds; unknown
    schemas pass."""
    rust, bounds = _checker(action, kind, version)
    if rust is None:
        return
    if not isinstance(payload, dict):
        raise SchemaViolation("FormatViolation", "payload must be a JSON object", "")
    if _rust_accepts(rust, payload):
        return  # the schema and the bounds both hold
    _check_refused(action, kind, payload, version, bounds)


def _check_refused(
    action: str, kind: str, payload: Any, version: OcppVersion, bounds: Plan | None
) -> None:
    """The path of a payload jsonschema-rs refused: fastjsonschema's verdict, then
    jsonschema's best_match for the CALLERROR's keyword and path (as before issue 17)."""
    fast = fast_validator(action, kind, version)
    assert fast is not None
    try:
        fast(payload)
    except fastjsonschema.JsonSchemaValueException as fast_error:
        refused = fast_error
    else:
        if bounds is not None:
            check_bounds(bounds, payload)
        return
    v = validator(action, kind, version)
    assert v is not None
    error = jsonschema.exceptions.best_match(v.iter_errors(payload))
    if error is None:  # the two validators disagree: report what fastjsonschema saw
        path = "/".join(str(p) for p in (refused.path or [])[1:])
        code = error_code_for_schema_keyword(str(refused.rule))
        raise SchemaViolation(code, str(refused.message), path)
    path = "/".join(str(p) for p in error.absolute_path)
    code = error_code_for_schema_keyword(str(error.validator))
    raise SchemaViolation(code, error_message(error), path)


def error_message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, without the refused string it quotes where that string may be a
    secret (a password that is too long, does not match its pattern) or is long junk. An enum
    or type miss keeps it: operators want to see the `'Later'` they sent."""
    instance = error.instance
    if (
        isinstance(instance, str)
        and instance
        and (error.validator in _FREE_TEXT_KEYWORDS or len(instance) > 64)
    ):
        return error.message.replace(repr(instance), "the value")
    return error.message


_FREE_TEXT_KEYWORDS = frozenset({"maxLength", "minLength", "pattern", "format"})


# ---- every violation, for API users ----------------------------------------------------------


class RequestRefused(Exception):
    """A CSMS-initiated request that breaks its schema or the bounds: `errors` lists every
    violation a Draft 4 validator finds ({"field", "message"}); when it finds none (a
    date-time format or a bound only the compiled check knows), `violation` says what."""

    def __init__(self, action: str, errors: list[dict[str, str]], violation: SchemaViolation):
        super().__init__(str(violation))
        self.action = action
        self.errors = errors
        self.violation = violation


def check_request(action: str, payload: Any, version: OcppVersion = V201) -> None:
    """Validate a CSMS-initiated `<action>Request` once against `version`'s schema, then the
    bounds. Only a refused payload is walked again, to list every violation (RequestRefused)."""
    try:
        check(action, "Request", payload, version)
    except SchemaViolation as violation:
        errors = request_errors(action, payload, version)
        raise RequestRefused(action, errors, violation) from violation


@functools.cache
def _draft4_validator(action: str, kind: str, version: OcppVersion = V201) -> Draft4Validator:
    schema = _schema(action, kind, version)
    if schema is None:
        raise FileNotFoundError(f"no OCA schema {action}{kind}.json")
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


def describe_errors(
    action: str, kind: str, payload: Any, version: OcppVersion = V201
) -> list[dict[str, str]]:
    """Every schema violation of `payload` as {"field", "message"}, most specific first."""
    validator = _draft4_validator(action, kind, version)
    found = []
    for error in sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path)):
        # For oneOf/anyOf the leaf errors explain more than the summary.
        leaf = error
        while leaf.context:
            leaf = min(leaf.context, key=lambda e: len(e.context or ()))
        found.append({"field": _location(leaf), "message": error_message(leaf)})
    return found


def request_errors(action: str, payload: Any, version: OcppVersion = V201) -> list[dict[str, str]]:
    """Schema violations of a `<action>Request` payload (empty list: valid)."""
    return describe_errors(action, "Request", payload, version)


@functools.cache
def bounds_checker(action: str, kind: str, version: OcppVersion = V201) -> Plan | None:
    schema = _schema(action, kind, version)
    if schema is None:
        return None
    return compile_plan(schema, schema.get("definitions", {}), frozenset())
