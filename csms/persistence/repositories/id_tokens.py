"""Id tokens (the CSMS's authorization list)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import IdToken, IdTokenStatus, Page
from csms.persistence import tables as t
from csms.persistence.repositories.mapper import TableMapper, stored_enum
from csms.persistence.repositories.statements import page, upsert

ID_TOKENS = TableMapper(
    t.id_tokens,
    IdToken,
    codecs={"status": stored_enum(IdTokenStatus)},
    supplied=("created_at",),
)


async def upsert_id_token(conn: AsyncConnection, token: IdToken, now: datetime) -> None:
    await upsert(
        conn,
        t.id_tokens,
        ID_TOKENS.values(token, created_at=token.created_at or now),
        ("id_token", "type"),
    )


async def get_id_token(conn: AsyncConnection, id_token: str, type_: str) -> IdToken | None:
    row = (
        await conn.execute(
            t.id_tokens.select().where(
                t.id_tokens.c.id_token == id_token, t.id_tokens.c.type == type_
            )
        )
    ).first()
    return ID_TOKENS.record(row) if row else None


async def list_id_tokens(conn: AsyncConnection, offset: int, limit: int) -> Page[IdToken]:
    rows, total = await page(
        conn,
        t.id_tokens.select().order_by(t.id_tokens.c.id_token, t.id_tokens.c.type),
        sa.select(sa.func.count()).select_from(t.id_tokens),
        offset,
        limit,
    )
    return Page(ID_TOKENS.records(rows), total, offset, limit)


async def set_id_token_status(
    conn: AsyncConnection, id_token: str, type_: str, status: IdTokenStatus
) -> bool:
    result = await conn.execute(
        t.id_tokens.update()
        .where(t.id_tokens.c.id_token == id_token, t.id_tokens.c.type == type_)
        .values(status=status.value)
    )
    return bool(result.rowcount)


async def delete_id_token(conn: AsyncConnection, id_token: str, type_: str) -> bool:
    result = await conn.execute(
        t.id_tokens.delete().where(t.id_tokens.c.id_token == id_token, t.id_tokens.c.type == type_)
    )
    return bool(result.rowcount)
