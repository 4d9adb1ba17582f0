"""CSIP-AUS telemetry and subscriptions (csip_mirror_points, csip_subscriptions) and the recent
meter values telemetry is computed from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.csip_telemetry import MAIN_METER_EVSE_ID, MEASURANDS, Role, Sample
from csms.persistence import tables as t
from csms.persistence.csip_telemetry_tables import csip_mirror_points, csip_subscriptions
from csms.persistence.repositories.meter_values import holding_any, unpack_rows

# One reporting period of a site: at most this many samples read (a station sampling each
# second for an hour, times a few measurands and phases, stays well below).
MAX_SAMPLES_PER_SITE = 50_000
MAX_SUBSCRIPTIONS_PER_SITE = 16


@dataclass(frozen=True)
class MirrorPoint:
    site_id: str
    role: Role
    mrid: str
    href: str | None = None
    post_rate_s: int | None = None
    last_period_end: datetime | None = None


@dataclass(frozen=True)
class SubscriptionRecord:
    site_id: str
    resource_href: str
    list_href: str
    subscription_href: str | None
    created_at: datetime
    last_notified_at: datetime | None = None
    notifications: int = 0


async def recent_samples(
    conn: AsyncConnection, station_ids: Sequence[str], since: datetime, until: datetime
) -> dict[str, list[Sample]]:
    """The stations' telemetry measurands stamped in [since, until), per station, oldest first
    (index station_id, timestamp), at most MAX_SAMPLES_PER_SITE (the newest kept). Rows are
    read newest first, at most that many (each row that holds one of MEASURANDS gives at
    least one sample). Rows of evse 0 (a station's main meter, not its chargers' power) are
    not read: a meter sampling every second must not crowd the chargers out of the limit."""
    if not station_ids:
        return {}
    mv = t.meter_values.c
    query = (
        sa.select(mv.station_id, mv.evse_id, mv.transaction_id, mv.timestamp)
        .add_columns(mv.sampled_values, mv.id)
        .where(
            mv.station_id.in_(list(station_ids)),
            mv.timestamp >= since,
            mv.timestamp < until,
            sa.or_(mv.evse_id.is_(None), mv.evse_id != MAIN_METER_EVSE_ID),
            holding_any(MEASURANDS),
        )
        .order_by(mv.timestamp.desc(), mv.id.desc())
        .limit(MAX_SAMPLES_PER_SITE)
    )
    wanted = frozenset(MEASURANDS)
    newest_first: list[Sample] = []
    for row in (await conn.execute(query)).all():
        for s in reversed(unpack_rows([row], wanted)):
            newest_first.append(
                Sample(
                    station_id=s.station_id,
                    timestamp=s.timestamp,
                    measurand=s.measurand,
                    value=s.value,
                    unit=s.unit,
                    phase=s.phase,
                    location=s.location,
                    evse_id=s.evse_id,
                )
            )
        if len(newest_first) >= MAX_SAMPLES_PER_SITE:
            break
    out: dict[str, list[Sample]] = defaultdict(list)
    for sample in reversed(newest_first[:MAX_SAMPLES_PER_SITE]):
        out[sample.station_id].append(sample)
    return dict(out)


def _point(row: sa.Row[tuple[object, ...]]) -> MirrorPoint:
    return MirrorPoint(
        site_id=str(row.site_id),
        role=Role(row.role),
        mrid=str(row.mrid),
        href=row.href,
        post_rate_s=row.post_rate_s,
        last_period_end=row.last_period_end,
    )


async def mirror_points(conn: AsyncConnection, site_id: str) -> dict[Role, MirrorPoint]:
    rows = await conn.execute(
        sa.select(csip_mirror_points).where(csip_mirror_points.c.site_id == site_id)
    )
    return {(p := _point(r)).role: p for r in rows}


async def save_mirror_point(conn: AsyncConnection, point: MirrorPoint, now: datetime) -> None:
    mp = csip_mirror_points.c
    values = {
        "mrid": point.mrid,
        "href": point.href,
        "post_rate_s": point.post_rate_s,
        "last_period_end": point.last_period_end,
        "updated_at": now,
    }
    updated = await conn.execute(
        sa.update(csip_mirror_points)
        .where(mp.site_id == point.site_id, mp.role == point.role.value)
        .values(**values)
    )
    if updated.rowcount == 0:
        await conn.execute(
            sa.insert(csip_mirror_points).values(
                site_id=point.site_id, role=point.role.value, **values
            )
        )


async def forget_mirror_points(conn: AsyncConnection, site_id: str) -> None:
    """The server lost them (404): made again on the next tick."""
    await conn.execute(sa.delete(csip_mirror_points).where(csip_mirror_points.c.site_id == site_id))


# ---- subscriptions ------------------------------------------------------------------------


def _subscription(row: sa.Row[tuple[object, ...]]) -> SubscriptionRecord:
    return SubscriptionRecord(
        site_id=str(row.site_id),
        resource_href=str(row.resource_href),
        list_href=str(row.list_href),
        subscription_href=row.subscription_href,
        created_at=row.created_at,
        last_notified_at=row.last_notified_at,
        notifications=int(row.notifications),
    )


async def site_subscriptions(conn: AsyncConnection, site_id: str) -> list[SubscriptionRecord]:
    cs = csip_subscriptions.c
    rows = await conn.execute(
        sa.select(csip_subscriptions)
        .where(cs.site_id == site_id)
        .order_by(cs.id)
        .limit(MAX_SUBSCRIPTIONS_PER_SITE)
    )
    return [_subscription(r) for r in rows]


async def add_subscription(
    conn: AsyncConnection, record: SubscriptionRecord, token_sha256: str
) -> None:
    """Replaces the site's subscription to the same resource (its old token stops working)."""
    cs = csip_subscriptions.c
    await conn.execute(
        sa.delete(csip_subscriptions).where(
            cs.site_id == record.site_id, cs.resource_href == record.resource_href
        )
    )
    await conn.execute(
        sa.insert(csip_subscriptions).values(
            token_sha256=token_sha256,
            site_id=record.site_id,
            resource_href=record.resource_href,
            list_href=record.list_href,
            subscription_href=record.subscription_href,
            created_at=record.created_at,
            last_notified_at=record.last_notified_at,
            notifications=record.notifications,
        )
    )


async def remove_subscription(conn: AsyncConnection, site_id: str, resource_href: str) -> None:
    cs = csip_subscriptions.c
    await conn.execute(
        sa.delete(csip_subscriptions).where(
            cs.site_id == site_id, cs.resource_href == resource_href
        )
    )


async def subscription_of_token(
    conn: AsyncConnection, token_sha256: str
) -> SubscriptionRecord | None:
    row = (
        await conn.execute(
            sa.select(csip_subscriptions).where(csip_subscriptions.c.token_sha256 == token_sha256)
        )
    ).first()
    return None if row is None else _subscription(row)


async def mark_notified(conn: AsyncConnection, token_sha256: str, now: datetime) -> None:
    cs = csip_subscriptions.c
    await conn.execute(
        sa.update(csip_subscriptions)
        .where(cs.token_sha256 == token_sha256)
        .values(last_notified_at=now, notifications=cs.notifications + 1)
    )


# A subscription the server said it cancelled: its list_href is blanked (no list holds it in
# force), so the next `ensure` deletes it on the server (a server that kept it stops notifying
# that token) and subscribes anew; meanwhile its token still answers.
CANCELLED_LIST_HREF = ""


async def mark_cancelled(conn: AsyncConnection, token_sha256: str, now: datetime) -> None:
    cs = csip_subscriptions.c
    await conn.execute(
        sa.update(csip_subscriptions)
        .where(cs.token_sha256 == token_sha256)
        .values(
            list_href=CANCELLED_LIST_HREF,
            last_notified_at=now,
            notifications=cs.notifications + 1,
        )
    )


async def latest_notification(conn: AsyncConnection, site_id: str) -> datetime | None:
    """When a notification for the site was last served, by any node: the node polling the
    site compares it with its last poll (multi-node: the notified node need not be the poller)."""
    cs = csip_subscriptions.c
    return (
        await conn.execute(sa.select(sa.func.max(cs.last_notified_at)).where(cs.site_id == site_id))
    ).scalar_one_or_none()
