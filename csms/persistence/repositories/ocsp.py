"""Plug & Charge OCSP answers (ocsp_responses): reused until their `until`, shared by nodes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.iso15118 import OcspAnswer
from csms.persistence import tables as t
from csms.persistence.repositories.statements import dialect_insert


async def get_ocsp_answer(
    conn: AsyncConnection, key: str, now: datetime
) -> tuple[datetime, OcspAnswer] | None:
    o = t.ocsp_responses
    row = (await conn.execute(sa.select(o).where(o.c.key == key, o.c.until > now))).first()
    if row is None:
        return None
    answer = OcspAnswer(
        row.status, row.der, row.this_update, row.next_update, row.verified, row.reason
    )
    return row.until, answer


async def put_ocsp_answer(
    conn: AsyncConnection, key: str, until: datetime, answer: OcspAnswer, now: datetime, keep: int
) -> None:
    """Store (or replace) the answer; expired rows go, and past `keep` rows the ones that
    expire first, so a flood of distinct certificates cannot grow the table without end."""
    o = t.ocsp_responses
    values = {
        "key": key,
        "until": until,
        "status": answer.status,
        "der": answer.der,
        "this_update": answer.this_update,
        "next_update": answer.next_update,
        "verified": answer.verified,
        "reason": answer.reason[:500],
    }
    insert = dialect_insert(conn.dialect.name, o).values(**values)
    update = {k: insert.excluded[k] for k in values if k != "key"}
    await conn.execute(insert.on_conflict_do_update(index_elements=[o.c.key], set_=update))
    await conn.execute(sa.delete(o).where(o.c.until <= now))
    count = int((await conn.execute(sa.select(sa.func.count()).select_from(o))).scalar_one())
    if count > keep:
        first = sa.select(o.c.key).order_by(o.c.until).limit(count - keep)
        await conn.execute(sa.delete(o).where(o.c.key.in_(first)))
