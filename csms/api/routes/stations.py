"""Stations: register, list, show with connection state, change, delete, rotate the password,
upgrade the security profile; and their EVSEs/connectors."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Response, status

from csms.api.deps import ADMIN, READ, ApiServices, Paging, Services
from csms.api.errors import ApiProblem
from csms.api.schemas import (
    ConnectorRead,
    EvseRead,
    PageRead,
    PasswordRotationCreate,
    PasswordRotationRead,
    SecurityProfileUpgradeCreate,
    SecurityProfileUpgradeRead,
    StationCreate,
    StationRead,
    StationUpdate,
)
from csms.domain.models import BootPolicy, SecurityProfile, Station
from v2g_shared.ocpp_versions import OcppVersion

router = APIRouter(prefix="/stations", tags=["stations"])

StationId = Annotated[str, "station id"]


async def station_read(services: ApiServices, station: Station) -> StationRead:
    connection = await services.stations.connection_state(station.id)
    read = StationRead.model_validate(station)
    read.connected = connection.connected
    read.node = connection.node_id
    return read


@router.get(
    "", dependencies=[READ], response_model=PageRead[StationRead], summary="List stations (paged)"
)
async def list_stations(services: Services, paging: Paging) -> PageRead[StationRead]:
    page = await services.stations.list(paging.offset, paging.limit)
    # Concurrently: with a broker router each connection state is a broker round trip.
    items = list(await asyncio.gather(*(station_read(services, s) for s in page.items)))
    return PageRead[StationRead](
        items=items, total=page.total, offset=page.offset, limit=page.limit
    )


@router.post(
    "",
    dependencies=[ADMIN],
    response_model=StationRead,
    status_code=status.HTTP_201_CREATED,
    summary="Register a station",
)
async def create_station(services: Services, body: StationCreate) -> StationRead:
    station = await services.stations.create(
        body.id,
        password=body.password,
        security_profile=SecurityProfile(body.security_profile),
        boot_policy=BootPolicy(body.boot_policy),
        ocpp_versions=(
            [OcppVersion(v) for v in body.ocpp_versions] if body.ocpp_versions else None
        ),
    )
    return await station_read(services, station)


@router.get(
    "/{station_id}",
    dependencies=[READ],
    response_model=StationRead,
    summary="A station with its boot info and live connection state",
)
async def get_station(services: Services, station_id: str) -> StationRead:
    return await station_read(services, await services.stations.get(station_id))


@router.patch(
    "/{station_id}",
    dependencies=[ADMIN],
    response_model=StationRead,
    summary="Change password, security profile, boot policy or accepted OCPP versions",
)
async def update_station(services: Services, station_id: str, body: StationUpdate) -> StationRead:
    station = await services.stations.update(
        station_id,
        password=body.password,
        security_profile=(
            SecurityProfile(body.security_profile) if body.security_profile is not None else None
        ),
        boot_policy=BootPolicy(body.boot_policy) if body.boot_policy is not None else None,
        ocpp_versions=(
            [OcppVersion(v) for v in body.ocpp_versions] if body.ocpp_versions is not None else None
        ),
    )
    return await station_read(services, station)


@router.delete(
    "/{station_id}",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a station",
)
async def delete_station(services: Services, station_id: str) -> Response:
    await services.stations.delete(station_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{station_id}/evses",
    dependencies=[READ],
    response_model=list[EvseRead],
    summary="EVSEs and connectors with their last reported status",
)
async def list_evses(services: Services, station_id: str) -> list[EvseRead]:
    evses = await services.stations.evses(station_id)
    return [
        EvseRead(
            evse_id=evse.evse_id,
            connectors=[ConnectorRead.model_validate(c) for c in evse.connectors],
        )
        for evse in evses
    ]


def _set_variable_status(answer: dict[str, Any], component: str, variable: str) -> str:
    for result in answer.get("setVariableResult", []):
        if result["component"]["name"] == component and result["variable"]["name"] == variable:
            return str(result["attributeStatus"])
    return "Missing"


@router.post(
    "/{station_id}/password-rotation",
    dependencies=[ADMIN],
    response_model=PasswordRotationRead,
    summary="Rotate the Basic-auth password through SetVariables SecurityCtrlr.BasicAuthPassword",
    description="The CSMS keeps the new password only when the station answers Accepted.",
)
async def rotate_password(
    services: Services, station_id: str, body: PasswordRotationCreate | None = None
) -> PasswordRotationRead:
    station = await services.stations.get(station_id)
    if station.security_profile is SecurityProfile.TLS_CLIENT_CERT:
        raise ApiProblem(409, "a security profile 3 station authenticates by certificate")
    password = (body.password if body else None) or secrets.token_urlsafe(24)[:32]
    payload = {
        "setVariableData": [
            {
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
                "attributeValue": password,
            }
        ]
    }
    answer = await services.commands.send(station_id, "SetVariables", payload)
    result = _set_variable_status(answer, "SecurityCtrlr", "BasicAuthPassword")
    applied = result == "Accepted"
    if applied:
        await services.stations.update(station_id, password=password)
    return PasswordRotationRead(
        station_id=station_id,
        status=result,
        applied=applied,
        password=password if applied else None,
    )


@router.post(
    "/{station_id}/security-profile",
    dependencies=[ADMIN],
    response_model=SecurityProfileUpgradeRead,
    summary="Upgrade the station's security profile (2: TLS + Basic, 3: TLS client certificate)",
    description="With `connection_data`, SetNetworkProfile is sent first and the new profile is "
    "kept only when the station accepts it. Afterwards the CSMS refuses connections weaker than "
    "the new profile. Downgrades are refused here (PATCH changes a profile deliberately).",
)
async def upgrade_security_profile(
    services: Services, station_id: str, body: SecurityProfileUpgradeCreate
) -> SecurityProfileUpgradeRead:
    station = await services.stations.get(station_id)
    if body.security_profile <= int(station.security_profile):
        raise ApiProblem(
            409,
            f"station {station_id!r} already uses security profile "
            f"{int(station.security_profile)}; {body.security_profile} is not an upgrade",
        )
    result = "Accepted"
    if body.connection_data is not None:
        payload = {
            "configurationSlot": body.configuration_slot,
            "connectionData": {**body.connection_data, "securityProfile": body.security_profile},
        }
        answer = await services.commands.send(station_id, "SetNetworkProfile", payload)
        result = str(answer.get("status"))
        if result != "Accepted":
            return SecurityProfileUpgradeRead(
                station_id=station_id,
                security_profile=int(station.security_profile),
                status=result,
                applied=False,
            )
    updated = await services.stations.update(
        station_id, security_profile=SecurityProfile(body.security_profile)
    )
    return SecurityProfileUpgradeRead(
        station_id=station_id,
        security_profile=int(updated.security_profile),
        status=result,
        applied=True,
    )
