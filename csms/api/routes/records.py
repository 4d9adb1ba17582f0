"""What stations reported: transactions with meter values, device-model variables, accepted
charging profiles, the OCPP message log, events; and tariffs per station."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Response, status

from csms.api.deps import ADMIN, OPERATE, READ, Paging, Services
from csms.api.errors import ApiProblem
from csms.api.meter_json import page_response
from csms.api.schemas import (
    ChargingProfileRead,
    DeviceVariableRead,
    EventRead,
    MessageLogRead,
    MeterValueRead,
    PageRead,
    TariffRead,
    TariffUpdate,
    TransactionDetailRead,
    TransactionEventRead,
    TransactionRead,
    page_read,
    window_read,
)
from csms.domain.models import TransactionState
from csms.services.costs import send_cost_updates

router = APIRouter(prefix="/stations/{station_id}")
transactions_router = APIRouter(prefix="/transactions", tags=["transactions"])

StateFilter = Annotated[TransactionState | None, Query(description="Active or Ended")]


@transactions_router.get(
    "",
    dependencies=[READ],
    response_model=PageRead[TransactionRead],
    summary="Transactions of every station (paged, newest first)",
)
async def list_all_transactions(
    services: Services, paging: Paging, state: StateFilter = None
) -> PageRead[TransactionRead]:
    page = await services.transactions.list(paging.offset, paging.limit, state=state)
    return page_read(TransactionRead, page)


@router.get(
    "/transactions",
    dependencies=[READ],
    response_model=PageRead[TransactionRead],
    tags=["transactions"],
    summary="A station's transactions (paged)",
)
async def list_transactions(
    services: Services, station_id: str, paging: Paging, state: StateFilter = None
) -> PageRead[TransactionRead]:
    await services.stations.get(station_id)
    page = await services.transactions.list(
        paging.offset, paging.limit, station_id=station_id, state=state
    )
    return page_read(TransactionRead, page)


@router.get(
    "/transactions/{transaction_id}",
    dependencies=[READ],
    response_model=TransactionDetailRead,
    tags=["transactions"],
    summary="A transaction with its events and meter values",
)
async def get_transaction(
    services: Services, station_id: str, transaction_id: str
) -> TransactionDetailRead:
    detail = await services.transactions.get(station_id, transaction_id)
    return TransactionDetailRead(
        transaction=TransactionRead.model_validate(detail.transaction),
        events=[TransactionEventRead.model_validate(e) for e in detail.events],
        meter_values=[MeterValueRead.model_validate(m) for m in detail.meter_values],
    )


@router.get(
    "/transactions/{transaction_id}/meter-values",
    dependencies=[READ],
    response_model=PageRead[MeterValueRead],
    tags=["transactions"],
    summary="A transaction's meter values (paged, oldest first)",
)
async def list_meter_values(
    services: Services,
    station_id: str,
    transaction_id: str,
    paging: Paging,
    measurand: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    page = await services.transactions.meter_values(
        station_id,
        transaction_id,
        measurand=measurand,
        offset=paging.offset,
        limit=paging.limit,
    )
    # The JSON of PageRead[MeterValueRead] built from the packed rows (no model per item).
    return page_response(page)


@router.get(
    "/meter-values",
    dependencies=[READ],
    response_model=PageRead[MeterValueRead],
    tags=["transactions"],
    summary="A station's meter values in a time range (paged, oldest first)",
    description="Every sample the station reported in [since, until), in or outside "
    "transactions; until defaults to now, since to 24 h before until; at most 31 days.",
)
async def list_station_meter_values(
    services: Services,
    station_id: str,
    paging: Paging,
    since: Annotated[datetime | None, Query(description="ISO 8601 with a time zone")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601 with a time zone")] = None,
    measurand: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    await services.stations.get(station_id)
    end = until or datetime.now(UTC)
    start = since or end - timedelta(hours=24)
    page = await services.transactions.station_meter_values(
        station_id, start, end, measurand=measurand, offset=paging.offset, limit=paging.limit
    )
    return page_response(page)


@router.get(
    "/variables",
    dependencies=[READ],
    response_model=PageRead[DeviceVariableRead],
    tags=["device model"],
    summary="Device-model variables the station reported (NotifyReport)",
)
async def list_variables(
    services: Services,
    station_id: str,
    paging: Paging,
    component: Annotated[str | None, Query()] = None,
    variable: Annotated[str | None, Query()] = None,
) -> PageRead[DeviceVariableRead]:
    await services.stations.get(station_id)
    found = await services.device_model.list(station_id, component=component, variable=variable)
    return window_read(DeviceVariableRead, found, paging.offset, paging.limit)


@router.get(
    "/charging-profiles",
    dependencies=[READ],
    response_model=list[ChargingProfileRead],
    tags=["smart charging"],
    summary="Charging profiles the station accepted",
)
async def list_charging_profiles(
    services: Services,
    station_id: str,
    evse_id: Annotated[int | None, Query(ge=0)] = None,
) -> list[ChargingProfileRead]:
    await services.stations.get(station_id)
    records = await services.charging_profiles.list(station_id, evse_id)
    return [ChargingProfileRead.model_validate(r) for r in records]


@router.get(
    "/messages",
    dependencies=[READ],
    response_model=PageRead[MessageLogRead],
    tags=["logs"],
    summary="The station's recent OCPP messages (paged, newest first)",
)
async def list_messages(
    services: Services, station_id: str, paging: Paging
) -> PageRead[MessageLogRead]:
    await services.stations.get(station_id)
    page = await services.message_log.list(station_id, paging.offset, paging.limit)
    return page_read(MessageLogRead, page)


@router.get(
    "/events",
    dependencies=[READ],
    response_model=PageRead[EventRead],
    tags=["logs"],
    summary="Notifications from the station (NotifyEvent, security events, ...)",
)
async def list_events(
    services: Services,
    station_id: str,
    paging: Paging,
    kind: Annotated[str | None, Query(description="OCPP action, e.g. NotifyEvent")] = None,
) -> PageRead[EventRead]:
    await services.stations.get(station_id)
    page = await services.events.list(station_id, paging.offset, paging.limit, kind=kind)
    return page_read(EventRead, page)


@router.get(
    "/tariff",
    dependencies=[READ],
    response_model=TariffRead,
    tags=["tariffs"],
    summary="The station's energy tariff",
)
async def get_tariff(services: Services, station_id: str) -> TariffRead:
    await services.stations.get(station_id)
    tariff = await services.tariffs.get(station_id)
    if tariff is None:
        raise ApiProblem(404, f"no tariff set for station {station_id!r}")
    return TariffRead.model_validate(tariff)


@router.put(
    "/tariff",
    dependencies=[ADMIN],
    response_model=TariffRead,
    tags=["tariffs"],
    summary="Set the station's energy tariff (used for running cost)",
)
async def set_tariff(
    services: Services, station_id: str, body: TariffUpdate, background: BackgroundTasks
) -> TariffRead:
    tariff = await services.tariffs.set(
        station_id,
        currency=body.currency,
        price_per_kwh=body.price_per_kwh,
        price_per_hour=body.price_per_hour,
    )
    # Transactions under way get their new running cost (I02) after this answer is sent.
    background.add_task(_push_cost_updates, services, station_id)
    return TariffRead.model_validate(tariff)


async def _push_cost_updates(services: Services, station_id: str) -> list[dict[str, Any]]:
    results = await send_cost_updates(
        station_id=station_id,
        transactions=services.transactions,
        tariffs=services.tariffs,
        commands=services.commands,
        now=datetime.now(UTC),
    )
    return [
        {
            "transaction_id": r.transaction_id,
            "total_cost": r.total_cost,
            "sent": r.sent,
            "error": r.error,
        }
        for r in results
    ]


@router.post(
    "/cost-updates",
    dependencies=[OPERATE],
    tags=["tariffs"],
    summary="Send CostUpdated (running cost now) for every active transaction of the station",
)
async def post_cost_updates(services: Services, station_id: str) -> list[dict[str, Any]]:
    await services.stations.get(station_id)
    return await _push_cost_updates(services, station_id)


@router.delete(
    "/tariff",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["tariffs"],
    summary="Remove the station's tariff",
)
async def delete_tariff(services: Services, station_id: str) -> Response:
    await services.stations.get(station_id)
    await services.tariffs.delete(station_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
