"""Commands to a station: the generic `POST /stations/{id}/ocpp/{Action}` for every
CSMS-initiated OCPP 2.0.1 and 2.1 action (validated against the station's version), and typed
shortcuts where they add value.

Errors: 404 unknown station or action, 409 station offline, 422 invalid payload (which field,
why) or an action the station's OCPP version lacks (e.g. SetDERControl to a 2.0.1 station),
502 CALLERROR (its code in the body) or disconnect, 504 no answer in time.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from csms.api.deps import OPERATE, OperateToken, Services, check_scope
from csms.api.errors import ApiProblem
from csms.api.ocpp_actions import ADMIN_ACTIONS, action_scope, is_csms_initiated_action
from csms.api.schemas import (
    OCPP_INT_MAX,
    ChargingProfileCreate,
    ChargingProfileResultRead,
    ProblemRead,
    RequestStartCreate,
    RequestStopCreate,
    ResetCreate,
    VariableGetCreate,
    VariableRef,
    VariableSetCreate,
)
from csms.oca_schemas import ANY_VERSION_CSMS_INITIATED, CSMS_INITIATED_ACTIONS

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemRead, "description": "unknown station or action"},
    409: {"model": ProblemRead, "description": "station offline"},
    422: {"model": ProblemRead, "description": "invalid payload (field and reason)"},
    502: {"model": ProblemRead, "description": "the station answered CALLERROR (code in body)"},
    504: {"model": ProblemRead, "description": "no answer in time"},
}

router = APIRouter(
    prefix="/stations/{station_id}",
    tags=["commands"],
    responses=ERROR_RESPONSES,
)


@router.post(
    "/ocpp/{action}",
    dependencies=[OPERATE],
    summary="Send any CSMS-initiated OCPP action; answer = the station's response",
    description="Body: the OCPP request payload (camelCase, as in the OCA schema of the "
    "station's OCPP version). It is validated, then sent unchanged; the station's response "
    "payload comes back unchanged. OCPP 2.0.1 and 2.1: "
    + ", ".join(CSMS_INITIATED_ACTIONS)
    + ". OCPP 2.1 only (422 for a 2.0.1 station): "
    + ", ".join(a for a in ANY_VERSION_CSMS_INITIATED if a not in CSMS_INITIATED_ACTIONS)
    + ". Scope `operate`, except `admin` for "
    + ", ".join(sorted(ADMIN_ACTIONS))
    + " and SetVariables of SecurityCtrlr or OCPPCommCtrlr.NetworkConfigurationPriority.",
    response_model=dict[str, Any],
)
async def send_ocpp(
    services: Services,
    token: OperateToken,
    station_id: str,
    action: str,
    payload: dict[str, Any] = Body(default_factory=dict),  # noqa: B008
) -> dict[str, Any]:
    if not is_csms_initiated_action(action):
        raise ApiProblem(
            404, f"unknown action {action!r}: not a CSMS-initiated OCPP 2.0.1 or 2.1 action"
        )
    check_scope(token, action_scope(action, payload))
    return await services.commands.send(station_id, action, payload)


@router.post(
    "/charging-profiles",
    dependencies=[OPERATE],
    response_model=ChargingProfileResultRead,
    tags=["smart charging"],
    summary="SetChargingProfile, checked with the K01 rules; stored when Accepted",
    description="A negative limit means discharge (project convention on OCPP 2.0.1, "
    "switchable with CSMS_NEGATIVE_LIMIT_IS_DISCHARGE).",
)
async def set_charging_profile(
    services: Services, station_id: str, body: ChargingProfileCreate
) -> ChargingProfileResultRead:
    payload = {"evseId": body.evse_id, "chargingProfile": body.charging_profile}
    answer = await services.commands.send(station_id, "SetChargingProfile", payload)
    status = str(answer.get("status"))
    return ChargingProfileResultRead(
        status=status, status_info=answer.get("statusInfo"), stored=status == "Accepted"
    )


@router.delete(
    "/charging-profiles/{profile_id}",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    tags=["smart charging"],
    summary="ClearChargingProfile by id; the station's answer",
)
async def clear_charging_profile(
    services: Services,
    station_id: str,
    profile_id: Annotated[int, Path(ge=0, le=OCPP_INT_MAX, description="chargingProfileId")],
) -> dict[str, Any]:
    return await services.commands.send(
        station_id, "ClearChargingProfile", {"chargingProfileId": profile_id}
    )


@router.post(
    "/commands/reset", dependencies=[OPERATE], response_model=dict[str, Any], summary="Reset"
)
async def reset(services: Services, station_id: str, body: ResetCreate) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": body.type}
    if body.evse_id is not None:
        payload["evseId"] = body.evse_id
    return await services.commands.send(station_id, "Reset", payload)


@router.post(
    "/commands/request-start",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="RequestStartTransaction",
)
async def request_start(
    services: Services, station_id: str, body: RequestStartCreate
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "idToken": {"idToken": body.id_token, "type": body.id_token_type},
        "remoteStartId": body.remote_start_id,
    }
    if body.evse_id is not None:
        payload["evseId"] = body.evse_id
    if body.charging_profile is not None:
        payload["chargingProfile"] = body.charging_profile
    return await services.commands.send(station_id, "RequestStartTransaction", payload)


@router.post(
    "/commands/request-stop",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="RequestStopTransaction",
)
async def request_stop(
    services: Services, station_id: str, body: RequestStopCreate
) -> dict[str, Any]:
    return await services.commands.send(
        station_id, "RequestStopTransaction", {"transactionId": body.transaction_id}
    )


def _component_variable(ref: VariableRef) -> dict[str, Any]:
    component: dict[str, Any] = {"name": ref.component}
    if ref.component_instance is not None:
        component["instance"] = ref.component_instance
    if ref.evse_id is not None:
        component["evse"] = {"id": ref.evse_id}
        if ref.connector_id is not None:
            component["evse"]["connectorId"] = ref.connector_id
    variable: dict[str, Any] = {"name": ref.variable}
    if ref.variable_instance is not None:
        variable["instance"] = ref.variable_instance
    return {"component": component, "variable": variable, "attributeType": ref.attribute_type}


@router.post(
    "/commands/get-variables",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="GetVariables (split by the station's ItemsPerMessage)",
)
async def get_variables(
    services: Services, station_id: str, body: VariableGetCreate
) -> dict[str, Any]:
    payload = {"getVariableData": [_component_variable(ref) for ref in body.variables]}
    return await services.commands.send(station_id, "GetVariables", payload)


@router.post(
    "/commands/set-variables",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="SetVariables (split by the station's ItemsPerMessage)",
    description="Scope `operate`; `admin` when a variable is of SecurityCtrlr (credentials) or "
    "OCPPCommCtrlr.NetworkConfigurationPriority (where the station connects).",
)
async def set_variables(
    services: Services, token: OperateToken, station_id: str, body: VariableSetCreate
) -> dict[str, Any]:
    payload = {
        "setVariableData": [
            {**_component_variable(item), "attributeValue": item.value} for item in body.variables
        ]
    }
    check_scope(token, action_scope("SetVariables", payload))
    return await services.commands.send(station_id, "SetVariables", payload)
