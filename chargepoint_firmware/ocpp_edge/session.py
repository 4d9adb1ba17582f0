"""One websocket session with the CSMS: the `ocpp` library's v201 ChargePoint, fixed at the edge.

Handlers live in `chargepoint_firmware/blocks/<block>/handlers.py` (one mixin per OCPP
functional block, beside the block's logic); the composition root (`wiring.py`) combines them
with `OcppSession`. They stay thin: they call their block's services and return `call_result`
dataclasses. Follow-up CALLs are sent from `@after` hooks or tasks, never awaited inside an
`@on` handler (the library awaits each handler before it reads the next frame).

Edge fixes:
* the library swaps NotImplemented (action unknown) and NotSupported (known, not supported);
* while the CSMS has Rejected the BootNotification, the station sends nothing at all, not even
  an answer (B03: no messages until the retry interval has passed);
* a CALL that breaks its schema gets the Part 4 error code for the broken rule (the library
  answers a missing field with ProtocolError and a too-long string with
  TypeConstraintViolation).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.exceptions import (
    FormatViolationError,
    GenericError,
    NotSupportedError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
    UnknownCallErrorCodeError,
)
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.messages import Call, MessageType, get_validator, unpack
from ocpp.v21 import call as call_v21
from ocpp.v21 import call_result as call_result_v21
from ocpp.v21.enums import Action as ActionV21
from ocpp.v201 import ChargePoint
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_edge import redact
from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase, SendCall, Spawn
from v2g_shared.ocpp_j import error_code_for_schema_keyword

log = logging.getLogger(__name__)

_KNOWN_ACTIONS = frozenset(a.value for a in Action)
_KNOWN_ACTIONS_V21 = frozenset(a.value for a in ActionV21)


class CsmsCallError(GenericError):
    """A CALLERROR whose code the ocpp library does not know (issue 12 finding 1).

    RpcFrameworkError and MessageTypeNotSupported are valid OCPP-J 2.0.1 codes the library
    lacks; it raises UnknownCallErrorCodeError (not an OCPPError) for them, which escaped every
    handler and dropped the connection. Subclassing GenericError (not OCPPError directly) keeps
    the library's own code lookup from ever returning this class.
    """

    def __init__(self, error_code: str, description: str = "") -> None:
        # the peer chooses the code: bound it before it reaches logs
        self.error_code = str(error_code)[:64]
        super().__init__(description=f"{self.error_code}: {description}"[:256])


# OCPP-J code -> the library's exception class, for the codes a schema failure maps to.
_ERROR_CLASS_BY_CODE: dict[str, type[OCPPError]] = {
    cls.code: cls
    for cls in (
        TypeConstraintViolationError,
        OccurenceConstraintViolationError,
        PropertyConstraintViolationError,
        FormatViolationError,
    )
}


def schema_error(msg: Call, ocpp_version: str) -> OCPPError | None:
    """The Part 4 error for a CALL payload that breaks its OCA schema; None when valid."""
    if not isinstance(msg.payload, dict):
        return FormatViolationError(details={"cause": "payload must be a JSON object"})
    try:
        validator = get_validator(msg.message_type_id, msg.action, ocpp_version)
    except (OSError, ValueError):
        return None  # no schema: the library decides
    try:
        validator.validate(msg.payload)
    except SchemaValidationError as error:
        kind = _ERROR_CLASS_BY_CODE[error_code_for_schema_keyword(str(error.validator))]
        where = "/".join(str(p) for p in error.absolute_path)
        cause = f"{error.message[:150]}{' at ' + where if where else ''}"
        return kind(details={"cause": cause[:200]})
    return None


class OcppSession(HandlerBase, ChargePoint):
    """The library's ChargePoint with the edge fixes above; handler mixins go before it."""

    # Actions of this version: one without a handler is NotSupported, any other NotImplemented.
    known_actions: frozenset[str] = _KNOWN_ACTIONS

    def __init__(
        self,
        station_id: str,
        connection: Any,
        *,
        response_timeout: float,
        is_rejected: Callable[[], bool],
        spawn: Spawn,
        send_call: SendCall,
    ) -> None:
        self._is_rejected = is_rejected
        self.spawn = spawn
        self.send_call = send_call
        self.current_call: Call | None = None
        redact.install(logging.getLogger("ocpp"))  # the library logs every frame there
        super().__init__(station_id, connection, response_timeout=response_timeout)

    def raw_payload(self) -> dict[str, Any]:
        """The camelCase payload of the CALL being handled, as it came off the wire."""
        msg = self.current_call
        return msg.payload if msg is not None and isinstance(msg.payload, dict) else {}

    async def route_message(self, raw_msg: str) -> None:
        if self._is_rejected():
            try:
                msg = unpack(raw_msg)
            except Exception:  # malformed: the library logs and drops it too
                msg = None
            if msg is not None and msg.message_type_id == MessageType.Call:
                log.warning("boot Rejected: ignoring %s from the CSMS", getattr(msg, "action", "?"))
                return
        await super().route_message(raw_msg)

    async def call(self, payload: Any, *args: Any, **kwargs: Any) -> Any:
        """Every CALLERROR, known code or not, surfaces as an OCPPError (a failed attempt)."""
        try:
            return await super().call(payload, *args, **kwargs)
        except UnknownCallErrorCodeError as exc:
            raise CsmsCallError(_code_of(str(exc)), "unknown CALLERROR code") from None

    async def _handle_call(self, msg: Call) -> Any:
        if msg.action not in self.route_map or "_on_action" not in self.route_map[msg.action]:
            if msg.action in self.known_actions:
                raise NotSupportedError(details={"cause": f"{msg.action} is not supported"})
            raise OcppNotImplemented(details={"cause": f"{msg.action} is not a known action"})
        if not self.route_map[msg.action].get("_skip_schema_validation", False):
            error = schema_error(msg, self._ocpp_version)
            if error is not None:
                raise error
        self.current_call = msg  # the library awaits each handler before the next frame
        try:
            return await super()._handle_call(msg)
        finally:
            self.current_call = None


def _code_of(message: str) -> str:
    """The code quoted in the library's UnknownCallErrorCodeError message."""
    parts = message.split("'")
    return parts[1] if len(parts) >= 3 else "Unknown"


class OcppSession21(OcppSession):
    """The same session over OCPP 2.1 (subprotocol ocpp2.1): 2.1 schemas validate every frame
    both ways, 2.1 response classes come back from `call`. CALLs built with the 2.0.1 call
    classes keep working (same action names; the 2.1 schemas are checked on the way out)."""

    _call = call_v21
    _call_result = call_result_v21
    _ocpp_version = "2.1"
    known_actions = _KNOWN_ACTIONS_V21

    async def send_message(self, action: str, payload: dict[str, Any]) -> None:
        """An OCPP-J 2.1 SEND frame ([6, messageId, action, payload], Part 4): no answer is
        expected. The `ocpp` library has no SEND support, so the frame is written here."""
        frame = json.dumps([6, str(uuid.uuid4()), action, payload], separators=(",", ":"))
        await self._send(frame)
