"""OCPP 2.1 in the REST API.

- Typed routes, one per CSMS-initiated action OCPP 2.1 added, derived from the action table
  (`csms.oca_schemas.ACTIONS_21_ADDED`): `POST /stations/{id}/commands/<kebab-case action>`
  (e.g. `/commands/set-der-control`), the request and response bodies documented with the OCA
  2.1 schema in the OpenAPI document. Validated against the 2.1 schema and sent unchanged by
  the command service; 422 for a 2.0.1 station. (The generic `/ocpp/{Action}` route takes
  every action too.)
- Reads of the 2.1 data with tables of their own: periodic event streams and their values;
  the schedule update held for a Dynamic profile (answered to PullDynamicScheduleUpdate).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from csms.api.deps import ADMIN, OPERATE, READ, OperateToken, Paging, Services, check_scope
from csms.api.ocpp_actions import ADMIN_ACTIONS, action_scope
from csms.api.routes.commands import ERROR_RESPONSES
from csms.api.schemas import OCPP_INT_MAX, PageRead, ReadModel, StrictModel, page_read
from csms.oca_schemas import ACTIONS_21_ADDED, TABLES, schema_of
from v2g_shared.ocpp_versions import OcppVersion

router = APIRouter(prefix="/stations/{station_id}", responses=ERROR_RESPONSES)

_DROPPED_KEYS = frozenset({"$schema", "$id", "comment", "javaType", "definitions"})


def _inlined(node: Any, definitions: dict[str, Any], depth: int = 0) -> Any:
    """An OCA schema with its `#/definitions/...` references inlined (OpenAPI documents have
    no `definitions` of their own); the OCA 2.1 schemas are not recursive."""
    if depth > 32:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            return _inlined(definitions[ref.rsplit("/", 1)[-1]], definitions, depth + 1)
        return {
            k: _inlined(v, definitions, depth + 1)
            for k, v in node.items()
            if k not in _DROPPED_KEYS
        }
    if isinstance(node, list):
        return [_inlined(v, definitions, depth + 1) for v in node]
    return node


def openapi_schema(action: str, kind: str) -> dict[str, Any]:
    schema = schema_of(action, kind, OcppVersion.V21) or {}
    inlined: dict[str, Any] = _inlined(schema, schema.get("definitions", {}))
    return inlined


def kebab(action: str) -> str:
    """ "SetDERControl" -> "set-der-control", "AFRRSignal" -> "afrr-signal"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", action).lower()


def _typed_route(action: str) -> None:
    async def send(
        services: Services,
        token: OperateToken,
        station_id: str,
        payload: dict[str, Any] = Body(default_factory=dict),  # noqa: B008
    ) -> dict[str, Any]:
        check_scope(token, action_scope(action, payload))
        return await services.commands.send(station_id, action, payload)

    send.__name__ = f"send_{kebab(action).replace('-', '_')}"
    router.add_api_route(
        f"/commands/{kebab(action)}",
        send,
        methods=["POST"],
        # Tariff actions are admin (as the tariff routes are); the rest operate.
        dependencies=[ADMIN if action in ADMIN_ACTIONS else OPERATE],
        response_model=dict[str, Any],
        tags=["OCPP 2.1 commands"],
        summary=f"{action} (OCPP 2.1 stations only)",
        description=f"The OCPP 2.1 {action}Request, validated against the OCA 2.1 schema and "
        "sent unchanged; the station's response comes back unchanged. 422 for a station that "
        "speaks OCPP 2.0.1.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": openapi_schema(action, "Request")}},
            },
            "responses": {
                "200": {
                    "description": f"{action}Response",
                    "content": {"application/json": {"schema": openapi_schema(action, "Response")}},
                }
            },
        },
    )


TYPED_ACTIONS: tuple[str, ...] = tuple(
    a for a in ACTIONS_21_ADDED if a in TABLES[OcppVersion.V21].csms_to_cs
)
for _action in TYPED_ACTIONS:
    _typed_route(_action)


# ---- 2.1 data --------------------------------------------------------------------------------


class PeriodicStreamRead(ReadModel):
    stream_id: int
    variable_monitoring_id: int
    interval_s: int | None = None
    values_per_message: int | None = None
    constant_data: dict[str, Any]
    opened_at: datetime
    closed_at: datetime | None = None


class PeriodicStreamValueRead(ReadModel):
    timestamp: datetime
    value: str
    received_at: datetime


class ScheduleUpdateRead(ReadModel):
    charging_profile_id: int
    schedule_update: dict[str, Any]
    updated_at: datetime


class ScheduleUpdateWrite(StrictModel):
    schedule_update: dict[str, Any]


ProfileId = Annotated[int, Path(ge=0, le=OCPP_INT_MAX, description="chargingProfileId")]


@router.get(
    "/periodic-streams",
    dependencies=[READ],
    response_model=list[PeriodicStreamRead],
    tags=["OCPP 2.1 data"],
    summary="Periodic event streams the station opened (OpenPeriodicEventStream)",
)
async def list_periodic_streams(services: Services, station_id: str) -> list[PeriodicStreamRead]:
    streams = await services.ocpp21.streams(station_id)
    return [PeriodicStreamRead.model_validate(s) for s in streams]


@router.get(
    "/periodic-streams/{stream_id}/values",
    dependencies=[READ],
    response_model=PageRead[PeriodicStreamValueRead],
    tags=["OCPP 2.1 data"],
    summary="A stream's values (NotifyPeriodicEventStream), oldest first",
)
async def list_stream_values(
    services: Services,
    station_id: str,
    stream_id: Annotated[int, Path(ge=0, le=OCPP_INT_MAX)],
    paging: Paging,
    since: Annotated[datetime | None, Query(description="from this time on")] = None,
) -> PageRead[PeriodicStreamValueRead]:
    page = await services.ocpp21.values(station_id, stream_id, paging.offset, paging.limit, since)
    return page_read(PeriodicStreamValueRead, page)


@router.get(
    "/dynamic-schedules/{profile_id}",
    dependencies=[READ],
    response_model=ScheduleUpdateRead | None,
    tags=["OCPP 2.1 data"],
    summary="The schedule update held for a Dynamic profile (null: none)",
)
async def get_schedule_update(
    services: Services, station_id: str, profile_id: ProfileId
) -> ScheduleUpdateRead | None:
    await services.stations.get(station_id)
    held = await services.ocpp21.schedule_update(station_id, profile_id)
    return ScheduleUpdateRead.model_validate(held) if held else None


@router.put(
    "/dynamic-schedules/{profile_id}",
    dependencies=[OPERATE],
    response_model=ScheduleUpdateRead,
    tags=["OCPP 2.1 data"],
    summary="Hold a schedule update for a Dynamic profile: the answer to the station's next "
    "PullDynamicScheduleUpdate (push it at once with /commands/update-dynamic-schedule)",
)
async def put_schedule_update(
    services: Services, station_id: str, profile_id: ProfileId, body: ScheduleUpdateWrite
) -> ScheduleUpdateRead:
    held = await services.ocpp21.set_schedule_update(station_id, profile_id, body.schedule_update)
    return ScheduleUpdateRead.model_validate(held)
