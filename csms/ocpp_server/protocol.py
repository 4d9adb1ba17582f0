"""OCPP-J framing (Part 4): parse frames, build CALLRESULT/CALLERROR, error codes.

OCPP-J 2.1 adds two message types: CALLRESULTERROR (5: the peer could not process our
CALLRESULT) and SEND (6: an unconfirmed message, never answered, not even with an error). They
are frames only on a 2.1 connection; on 2.0.1 they stay MessageTypeNotSupported."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND = 2, 3, 4, 5, 6


class OcppError(Exception):
    """Raised by handlers (or the dispatcher) to answer with a CALLERROR."""

    code = "GenericError"

    def __init__(self, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.details = details or {}


def _error(code_name: str) -> type[OcppError]:
    return type(code_name, (OcppError,), {"code": code_name})


FormatViolation = _error("FormatViolation")
ProtocolError = _error("ProtocolError")
TypeConstraintViolation = _error("TypeConstraintViolation")
# OCPP-J 2.0.1 keeps 1.6's spelling (one "r"); "Occurrence..." only arrives with OCPP 2.1.
OccurrenceConstraintViolation = _error("OccurenceConstraintViolation")
PropertyConstraintViolation = _error("PropertyConstraintViolation")
NotImplementedOcpp = _error("NotImplemented")  # action not known
NotSupported = _error("NotSupported")  # action known, not supported
SecurityError = _error("SecurityError")
InternalError = _error("InternalError")
RpcFrameworkError = _error("RpcFrameworkError")
MessageTypeNotSupported = _error("MessageTypeNotSupported")

ERROR_BY_CODE: dict[str, type[OcppError]] = {
    cls.code: cls
    for cls in (
        FormatViolation,
        ProtocolError,
        TypeConstraintViolation,
        OccurrenceConstraintViolation,
        PropertyConstraintViolation,
        NotImplementedOcpp,
        NotSupported,
        SecurityError,
        InternalError,
        RpcFrameworkError,
        MessageTypeNotSupported,
        OcppError,
    )
}


@dataclass(frozen=True, slots=True)
class Call:
    message_id: str
    action: str
    payload: Any


@dataclass(frozen=True, slots=True)
class CallResult:
    message_id: str
    payload: Any


@dataclass(frozen=True, slots=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: Any


@dataclass(frozen=True, slots=True)
class CallResultError:
    """OCPP-J 2.1: the station could not process the CALLRESULT with this id."""

    message_id: str
    code: str
    description: str
    details: Any


@dataclass(frozen=True, slots=True)
class Send:
    """OCPP-J 2.1: an unconfirmed message (e.g. NotifyPeriodicEventStream)."""

    message_id: str
    action: str
    payload: Any


Frame = Call | CallResult | CallError | CallResultError | Send


class FrameError(Exception):
    """A frame that cannot be handled; `message_id` is "-1" when it could not be read."""

    def __init__(self, error: OcppError, message_id: str) -> None:
        super().__init__(error.description)
        self.error = error
        self.message_id = message_id


# Default nesting limit of a frame (the frame array counts as one level). The deepest typed
# 2.0.1 message (ReportChargingProfiles: profile, schedule, sales tariff, entry, cost) needs
# 14 with customData's object; customData and DataTransfer contents are free-form.
MAX_DEPTH = 32

# A JSON string (skipped whole: brackets inside it do not nest) or a bracket.
_TOKENS_STR = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_TOKENS_BYTES = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_MESSAGE_ID_STR = re.compile(r'\s*\[\s*[23456]\s*,\s*"([^"\\]{1,36})"')
_MESSAGE_ID_BYTES = re.compile(rb'\s*\[\s*[23456]\s*,\s*"([^"\\]{1,36})"')


def nesting_exceeds(raw: str | bytes, limit: int) -> bool:
    """True if the JSON text nests deeper than `limit`. Cheap for ordinary frames: fewer
    opening brackets than the limit cannot nest deeper, and only then are tokens scanned."""
    if isinstance(raw, str):
        if raw.count("[") + raw.count("{") <= limit:
            return False
        tokens = (m.group()[0] for m in _TOKENS_STR.finditer(raw))
    else:
        if raw.count(b"[") + raw.count(b"{") <= limit:
            return False
        tokens = (chr(m.group()[0]) for m in _TOKENS_BYTES.finditer(raw))
    depth = 0
    for token in tokens:
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def _leading_message_id(raw: str | bytes) -> str:
    """The messageId of a frame that is not parsed, if it can be read; "-1" otherwise."""
    if isinstance(raw, str):
        found_str = _MESSAGE_ID_STR.match(raw)
        return found_str.group(1) if found_str else "-1"
    found_bytes = _MESSAGE_ID_BYTES.match(raw)
    if found_bytes is None:
        return "-1"
    try:
        return found_bytes.group(1).decode()
    except UnicodeDecodeError:
        return "-1"


def parse(raw: str | bytes, max_depth: int = MAX_DEPTH, *, ocpp21: bool = False) -> Frame:
    """One frame; `ocpp21`: the connection speaks OCPP 2.1 (message types 5 and 6 exist)."""
    # Before parsing: nothing nested deeper than the limit is built, stored or served.
    if nesting_exceeds(raw, max_depth):
        raise FrameError(
            FormatViolation(f"JSON nested deeper than {max_depth} levels"),
            _leading_message_id(raw),
        )
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(RpcFrameworkError("message is not valid JSON"), "-1") from exc
    if not isinstance(msg, list) or len(msg) < 3:
        raise FrameError(RpcFrameworkError("message is not an OCPP-J array"), "-1")
    kind, message_id = msg[0], msg[1]
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= 36:
        raise FrameError(RpcFrameworkError("messageId must be a string of 1-36 chars"), "-1")
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str):
            raise FrameError(ProtocolError("CALL must be [2, id, action, payload]"), message_id)
        if not isinstance(msg[3], dict):
            raise FrameError(FormatViolation("payload must be a JSON object"), message_id)
        return Call(message_id, msg[2], msg[3])
    if kind == CALLRESULT:
        if len(msg) != 3:
            raise FrameError(ProtocolError("CALLRESULT must be [3, id, payload]"), message_id)
        return CallResult(message_id, msg[2])
    if kind == CALLERROR:
        if len(msg) != 5:
            raise FrameError(
                ProtocolError("CALLERROR must be [4, id, code, description, details]"), message_id
            )
        return CallError(message_id, str(msg[2]), str(msg[3]), msg[4])
    if ocpp21 and kind == SEND:
        if len(msg) != 4 or not isinstance(msg[2], str):
            raise FrameError(ProtocolError("SEND must be [6, id, action, payload]"), message_id)
        if not isinstance(msg[3], dict):
            raise FrameError(FormatViolation("payload must be a JSON object"), message_id)
        return Send(message_id, msg[2], msg[3])
    if ocpp21 and kind == CALLRESULTERROR:
        if len(msg) != 5:
            raise FrameError(
                ProtocolError("CALLRESULTERROR must be [5, id, code, description, details]"),
                message_id,
            )
        return CallResultError(message_id, str(msg[2]), str(msg[3]), msg[4])
    raise FrameError(MessageTypeNotSupported(f"message type {kind!r} not supported"), message_id)


def call_frame(message_id: str, action: str, payload: Any) -> str:
    return orjson.dumps([CALL, message_id, action, payload]).decode()


def result_frame(message_id: str, payload: Any) -> str:
    return orjson.dumps([CALLRESULT, message_id, payload]).decode()


def error_frame(message_id: str, error: OcppError, *, ocpp21: bool = False) -> str:
    # OCPP-J 2.1 spells "Occurrence" with two r's; 2.0.1 keeps 1.6's spelling.
    code = error.code
    if ocpp21 and code == "OccurenceConstraintViolation":
        code = "OccurrenceConstraintViolation"
    return orjson.dumps(
        [CALLERROR, message_id, code, error.description[:255], error.details]
    ).decode()
