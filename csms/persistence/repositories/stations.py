"""Stations and their EVSEs and connectors (one aggregate: a station owns its EVSEs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import (
    BootInfo,
    BootPolicy,
    Connector,
    Evse,
    Page,
    RegistrationStatus,
    SecurityProfile,
    Station,
    StoredPassword,
)
from csms.domain.ocpp_versions import format_versions, parse_versions
from csms.persistence import tables as t
from csms.persistence.database import RowWrite
from csms.persistence.repositories.mapper import Codec, TableMapper, stored_enum
from csms.persistence.repositories.statements import page, upsert, upsert_statement
from v2g_shared.ocpp_versions import OcppVersion


def _version_or_none(value: str | None) -> OcppVersion | None:
    return OcppVersion(value) if value else None


def _versions_or_none(value: str | None) -> tuple[OcppVersion, ...] | None:
    return parse_versions(value) if value else None


def _stored_versions(versions: tuple[OcppVersion, ...] | None) -> str | None:
    return format_versions(versions) if versions else None


STATIONS = TableMapper(
    t.stations,
    Station,
    codecs={
        "security_profile": stored_enum(SecurityProfile),
        "boot_policy": stored_enum(BootPolicy),
        "registration_status": stored_enum(RegistrationStatus),
        "ocpp_version": Codec(_version_or_none, lambda v: v.value if v else None),
        "ocpp_versions": Codec(_versions_or_none, _stored_versions),
    },
    computed={"has_password": lambda m: m["password_hash"] is not None},
)
CONNECTORS = TableMapper(t.connectors, Connector)


async def insert_station(
    conn: AsyncConnection,
    station_id: str,
    password: StoredPassword | None,
    security_profile: SecurityProfile,
    boot_policy: BootPolicy,
    now: datetime,
    ocpp_versions: tuple[OcppVersion, ...] | None = None,
) -> None:
    await conn.execute(
        t.stations.insert().values(
            id=station_id,
            ocpp_versions=_stored_versions(ocpp_versions),
            password_hash=password.hash if password else None,
            password_check=password.check if password else None,
            security_profile=int(security_profile),
            boot_policy=boot_policy.value,
            registration_status=RegistrationStatus.UNKNOWN.value,
            created_at=now,
            updated_at=now,
        )
    )


# Built once: building a select per call costs more CPU than running it (connect storms).
_STATION_BY_ID = t.stations.select().where(t.stations.c.id == sa.bindparam("b_station_id"))


async def get_station(conn: AsyncConnection, station_id: str) -> Station | None:
    row = (await conn.execute(_STATION_BY_ID, {"b_station_id": station_id})).first()
    return STATIONS.record(row) if row else None


_STATIONS_BY_IDS = t.stations.select().where(
    t.stations.c.id.in_(sa.bindparam("b_station_ids", expanding=True))
)


def _stored_password(row: sa.Row[Any]) -> StoredPassword | None:
    mapping = row._mapping
    if mapping["password_hash"] is None:
        return None
    return StoredPassword(mapping["password_hash"], mapping["password_check"])


async def get_stations_for_admission(
    conn: AsyncConnection, station_ids: Sequence[str]
) -> dict[str, tuple[Station, StoredPassword | None]]:
    """`get_station_for_admission` for many stations in one read (a connect storm)."""
    rows = await conn.execute(_STATIONS_BY_IDS, {"b_station_ids": list(station_ids)})
    return {row._mapping["id"]: (STATIONS.record(row), _stored_password(row)) for row in rows}


async def get_station_for_admission(
    conn: AsyncConnection, station_id: str
) -> tuple[Station, StoredPassword | None] | None:
    """The station and its stored password in one read (the websocket handshake)."""
    row = (await conn.execute(_STATION_BY_ID, {"b_station_id": station_id})).first()
    return (STATIONS.record(row), _stored_password(row)) if row else None


async def get_station_auth(
    conn: AsyncConnection, station_id: str
) -> tuple[SecurityProfile, StoredPassword | None] | None:
    """Security profile and stored password."""
    row = (await conn.execute(_STATION_BY_ID, {"b_station_id": station_id})).first()
    if row is None:
        return None
    return SecurityProfile(row._mapping["security_profile"]), _stored_password(row)


async def set_password_check(
    conn: AsyncConnection, station_id: str, password_hash: str, check: str
) -> bool:
    """Store a check made after an argon2 verification, unless the hash changed meanwhile."""
    result = await conn.execute(
        t.stations.update()
        .where(t.stations.c.id == station_id, t.stations.c.password_hash == password_hash)
        .values(password_check=check)
    )
    return bool(result.rowcount)


async def list_stations(conn: AsyncConnection, offset: int, limit: int) -> Page[Station]:
    rows, total = await page(
        conn,
        t.stations.select().order_by(t.stations.c.id),
        sa.select(sa.func.count()).select_from(t.stations),
        offset,
        limit,
    )
    return Page(STATIONS.records(rows), total, offset, limit)


async def update_station(conn: AsyncConnection, station_id: str, **values: Any) -> bool:
    result = await conn.execute(
        t.stations.update().where(t.stations.c.id == station_id).values(**values)
    )
    return bool(result.rowcount)


async def delete_station(conn: AsyncConnection, station_id: str) -> bool:
    # Rows keyed by station without a foreign key go explicitly (history tables stay lean).
    for table in (
        t.transaction_events,
        t.meter_values,
        t.message_log,
        t.device_variables,
        t.charging_profiles,
        t.events,
        t.certificates,
        t.connectors,
        t.periodic_streams,
        t.periodic_stream_values,
        t.dynamic_schedule_updates,
    ):
        await conn.execute(table.delete().where(table.c.station_id == station_id))
    result = await conn.execute(t.stations.delete().where(t.stations.c.id == station_id))
    return bool(result.rowcount)


async def record_boot(
    conn: AsyncConnection,
    station_id: str,
    info: BootInfo,
    status: RegistrationStatus,
    now: datetime,
) -> None:
    await conn.execute(
        t.stations.update()
        .where(t.stations.c.id == station_id)
        .values(
            vendor_name=info.vendor_name,
            model=info.model,
            serial_number=info.serial_number,
            firmware_version=info.firmware_version,
            registration_status=status.value,
            last_boot_at=now,
            last_heartbeat_at=now,
            updated_at=now,
        )
    )


_BOOT = (
    t.stations.update()
    .where(t.stations.c.id == sa.bindparam("b_station_id"))
    .values(
        vendor_name=sa.bindparam("b_vendor_name"),
        model=sa.bindparam("b_model"),
        serial_number=sa.bindparam("b_serial_number"),
        firmware_version=sa.bindparam("b_firmware_version"),
        registration_status=sa.bindparam("b_registration_status"),
        last_boot_at=sa.bindparam("b_now"),
        last_heartbeat_at=sa.bindparam("b_now"),
        updated_at=sa.bindparam("b_now"),
    )
)


def boot_write(
    station_id: str, info: BootInfo, status: RegistrationStatus, now: datetime
) -> RowWrite:
    """`record_boot` as rows for `Database.write_rows` (one executemany per batch)."""
    return RowWrite(
        _BOOT,
        [
            {
                "b_station_id": station_id,
                "b_vendor_name": info.vendor_name,
                "b_model": info.model,
                "b_serial_number": info.serial_number,
                "b_firmware_version": info.firmware_version,
                "b_registration_status": status.value,
                "b_now": now,
            }
        ],
    )


async def record_ocpp_version(conn: AsyncConnection, station_id: str, version: OcppVersion) -> None:
    """The version negotiated on the station's connection (written when it changes)."""
    await conn.execute(
        t.stations.update().where(t.stations.c.id == station_id).values(ocpp_version=version.value)
    )


async def record_heartbeat(conn: AsyncConnection, station_id: str, now: datetime) -> None:
    await conn.execute(
        t.stations.update().where(t.stations.c.id == station_id).values(last_heartbeat_at=now)
    )


_HEARTBEAT = (
    t.stations.update()
    .where(t.stations.c.id == sa.bindparam("b_station_id"))
    .values(last_heartbeat_at=sa.bindparam("b_now"))
)


def heartbeat_write(station_id: str, now: datetime) -> RowWrite:
    """`record_heartbeat` as rows for `Database.write_rows` (one executemany per batch)."""
    return RowWrite(_HEARTBEAT, [{"b_station_id": station_id, "b_now": now}])


# ---- EVSEs and connectors ---------------------------------------------------------------------


async def upsert_connector_status(
    conn: AsyncConnection,
    station_id: str,
    evse_id: int,
    connector_id: int,
    status: str,
    now: datetime,
) -> None:
    await upsert(
        conn,
        t.evses,
        {"station_id": station_id, "evse_id": evse_id, "updated_at": now},
        ("station_id", "evse_id"),
    )
    await upsert(
        conn,
        t.connectors,
        {
            "station_id": station_id,
            "evse_id": evse_id,
            "connector_id": connector_id,
            "status": status,
            "updated_at": now,
        },
        ("station_id", "evse_id", "connector_id"),
    )


_EVSE_COLUMNS = ("station_id", "evse_id", "updated_at")
_CONNECTOR_COLUMNS = ("station_id", "evse_id", "connector_id", "status", "updated_at")


def connector_status_writes(
    dialect: str, station_id: str, evse_id: int, connector_id: int, status: str, now: datetime
) -> tuple[RowWrite, RowWrite]:
    """`upsert_connector_status` as rows for `Database.write_rows`."""
    return (
        RowWrite(
            upsert_statement(dialect, "evses", _EVSE_COLUMNS[:2], _EVSE_COLUMNS),
            [{"station_id": station_id, "evse_id": evse_id, "updated_at": now}],
        ),
        RowWrite(
            upsert_statement(dialect, "connectors", _CONNECTOR_COLUMNS[:3], _CONNECTOR_COLUMNS),
            [
                {
                    "station_id": station_id,
                    "evse_id": evse_id,
                    "connector_id": connector_id,
                    "status": status,
                    "updated_at": now,
                }
            ],
        ),
    )


async def list_evses(conn: AsyncConnection, station_id: str) -> list[Evse]:
    evse_rows = (
        await conn.execute(
            sa.select(t.evses.c.evse_id)
            .where(t.evses.c.station_id == station_id)
            .order_by(t.evses.c.evse_id)
        )
    ).all()
    conn_rows = (
        await conn.execute(
            t.connectors.select()
            .where(t.connectors.c.station_id == station_id)
            .order_by(t.connectors.c.evse_id, t.connectors.c.connector_id)
        )
    ).all()
    by_evse: dict[int, list[Connector]] = {r[0]: [] for r in evse_rows}
    for connector in CONNECTORS.records(conn_rows):
        by_evse.setdefault(connector.evse_id, []).append(connector)
    return [Evse(station_id, evse_id, tuple(cs)) for evse_id, cs in sorted(by_evse.items())]
