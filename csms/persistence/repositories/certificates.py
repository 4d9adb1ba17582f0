"""Certificate requests and the chains signed for them (ISO 15118 / security profile 3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import CertificateRecord
from csms.persistence import tables as t
from csms.persistence.repositories.mapper import TableMapper

CERTIFICATES = TableMapper(
    t.certificates, CertificateRecord, supplied=("created_at",), generated=("id",)
)


async def insert_certificate(
    conn: AsyncConnection, record: CertificateRecord, now: datetime
) -> int:
    result = await conn.execute(
        t.certificates.insert()
        .values(**CERTIFICATES.values(record, created_at=record.created_at or now))
        .returning(t.certificates.c.id)
    )
    return int(result.scalar_one())


async def update_certificate(
    conn: AsyncConnection, cert_id: int, status: str, chain: str | None
) -> None:
    await conn.execute(
        t.certificates.update()
        .where(t.certificates.c.id == cert_id)
        .values(status=status, certificate_chain=chain)
    )


async def list_certificates(conn: AsyncConnection, station_id: str) -> list[CertificateRecord]:
    rows = (
        await conn.execute(
            t.certificates.select()
            .where(t.certificates.c.station_id == station_id)
            .order_by(t.certificates.c.id)
        )
    ).all()
    return CERTIFICATES.records(rows)
