"""The device model: the variables a station reported (one row per component/variable key)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import DeviceVariable
from csms.persistence import tables as t
from csms.persistence.repositories.mapper import TableMapper
from csms.persistence.repositories.statements import upsert

DEVICE_VARIABLES = TableMapper(t.device_variables, DeviceVariable, supplied=("key", "updated_at"))


def variable_key(v: DeviceVariable) -> str:
    return "|".join(
        "" if part is None else str(part)
        for part in (
            v.component,
            v.component_instance,
            v.evse_id,
            v.connector_id,
            v.variable,
            v.variable_instance,
            v.attribute_type,
        )
    )


async def upsert_device_variables(
    conn: AsyncConnection, variables: Iterable[DeviceVariable], now: datetime
) -> int:
    n = 0
    for v in variables:
        await upsert(
            conn,
            t.device_variables,
            DEVICE_VARIABLES.values(v, key=variable_key(v), updated_at=now),
            ("station_id", "key"),
        )
        n += 1
    return n


async def list_device_variables(
    conn: AsyncConnection,
    station_id: str,
    component: str | None = None,
    variable: str | None = None,
) -> list[DeviceVariable]:
    q = t.device_variables.select().where(t.device_variables.c.station_id == station_id)
    if component is not None:
        q = q.where(t.device_variables.c.component == component)
    if variable is not None:
        q = q.where(t.device_variables.c.variable == variable)
    q = q.order_by(t.device_variables.c.key)
    return DEVICE_VARIABLES.records((await conn.execute(q)).all())
