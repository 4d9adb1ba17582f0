"""API tokens (hashes only; the plaintext is shown once when made)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import ApiScope, ApiToken
from csms.persistence import tables as t
from csms.persistence.repositories.mapper import TableMapper, stored_enum

API_TOKENS = TableMapper(t.api_tokens, ApiToken, codecs={"scope": stored_enum(ApiScope)})


async def insert_api_token(
    conn: AsyncConnection, name: str, token_hash: str, now: datetime, scope: ApiScope
) -> ApiToken:
    result = await conn.execute(
        t.api_tokens.insert()
        .values(name=name, token_hash=token_hash, created_at=now, scope=scope.value)
        .returning(t.api_tokens.c.id)
    )
    return ApiToken(id=result.scalar_one(), name=name, created_at=now, scope=scope)


async def get_api_token_by_hash(conn: AsyncConnection, token_hash: str) -> ApiToken | None:
    row = (
        await conn.execute(t.api_tokens.select().where(t.api_tokens.c.token_hash == token_hash))
    ).first()
    return API_TOKENS.record(row) if row else None


async def list_api_tokens(conn: AsyncConnection) -> list[ApiToken]:
    rows = (await conn.execute(t.api_tokens.select().order_by(t.api_tokens.c.id))).all()
    return API_TOKENS.records(rows)


async def revoke_api_token(conn: AsyncConnection, token_id: int, now: datetime) -> bool:
    result = await conn.execute(
        t.api_tokens.update()
        .where(t.api_tokens.c.id == token_id, t.api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


async def revoke_api_tokens_named(conn: AsyncConnection, name: str, now: datetime) -> int:
    result = await conn.execute(
        t.api_tokens.update()
        .where(t.api_tokens.c.name == name, t.api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)
