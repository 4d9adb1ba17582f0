"""Sites, their stations and their operating envelopes (sites, site_stations, site_envelopes)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.envelopes import OperatingEnvelope
from csms.domain.sites import Site
from csms.persistence import tables as t

# Per site and source: a CSIP-AUS server may list many controls, but what is kept is bounded.
MAX_ENVELOPES_PER_SOURCE = 500

_SITE_COLUMNS = (
    "name",
    "nmi",
    "lfdi",
    "sfdi",
    "registration_pin",
    "csip_enabled",
    "meter_station_id",
)
_ENVELOPE_FIELDS = tuple(f.name for f in fields(OperatingEnvelope))


class StationInAnotherSite(ValueError):
    def __init__(self, station_id: str, site_id: str) -> None:
        super().__init__(f"station {station_id!r} already belongs to site {site_id!r}")
        self.station_id = station_id
        self.site_id = site_id


async def _stations_by_site(conn: AsyncConnection, site_ids: Sequence[str]) -> dict[str, list[str]]:
    ss = t.site_stations
    rows = await conn.execute(
        sa.select(ss.c.site_id, ss.c.station_id)
        .where(ss.c.site_id.in_(site_ids))
        .order_by(ss.c.station_id)
    )
    grouped: dict[str, list[str]] = defaultdict(list)
    for site_id, station_id in rows:
        grouped[site_id].append(station_id)
    return grouped


def _site_of(row: sa.Row[tuple[object, ...]], station_ids: list[str]) -> Site:
    return Site(
        id=row.id,
        name=row.name,
        nmi=row.nmi,
        lfdi=row.lfdi,
        sfdi=row.sfdi,
        registration_pin=row.registration_pin,
        csip_enabled=row.csip_enabled,
        station_ids=tuple(station_ids),
        # A meter station deleted since (its site_stations row cascaded away) meters no more.
        meter_station_id=row.meter_station_id if row.meter_station_id in station_ids else None,
    )


async def get_site(conn: AsyncConnection, site_id: str) -> Site | None:
    row = (await conn.execute(sa.select(t.sites).where(t.sites.c.id == site_id))).first()
    if row is None:
        return None
    return _site_of(row, (await _stations_by_site(conn, [site_id])).get(site_id, []))


async def list_sites(conn: AsyncConnection, *, csip_only: bool = False) -> list[Site]:
    query = sa.select(t.sites).order_by(t.sites.c.id)
    if csip_only:
        query = query.where(t.sites.c.csip_enabled.is_(True))
    rows = (await conn.execute(query)).all()
    stations = await _stations_by_site(conn, [r.id for r in rows])
    return [_site_of(r, stations.get(r.id, [])) for r in rows]


async def site_of_station(conn: AsyncConnection, station_id: str) -> str | None:
    ss = t.site_stations
    return (
        await conn.execute(sa.select(ss.c.site_id).where(ss.c.station_id == station_id))
    ).scalar_one_or_none()


async def site_metered_by(conn: AsyncConnection, station_id: str) -> Site | None:
    """The site whose household meter is `station_id`'s main meter, if any."""
    row = (
        await conn.execute(sa.select(t.sites).where(t.sites.c.meter_station_id == station_id))
    ).first()
    if row is None:
        return None
    site = _site_of(row, (await _stations_by_site(conn, [row.id])).get(row.id, []))
    return site if site.meter_station_id == station_id else None


async def _set_stations(conn: AsyncConnection, site: Site) -> None:
    ss = t.site_stations
    if site.station_ids:
        taken = await conn.execute(
            sa.select(ss.c.station_id, ss.c.site_id).where(
                ss.c.station_id.in_(site.station_ids), ss.c.site_id != site.id
            )
        )
        for station_id, other in taken:
            raise StationInAnotherSite(station_id, other)
    await conn.execute(sa.delete(ss).where(ss.c.site_id == site.id))
    if site.station_ids:
        await conn.execute(
            sa.insert(ss), [{"site_id": site.id, "station_id": s} for s in site.station_ids]
        )


async def insert_site(conn: AsyncConnection, site: Site, now: datetime) -> None:
    """Raises sqlalchemy's IntegrityError for a taken id or LFDI or an unknown station."""
    values = {c: getattr(site, c) for c in _SITE_COLUMNS}
    await conn.execute(
        sa.insert(t.sites).values(id=site.id, created_at=now, updated_at=now, **values)
    )
    await _set_stations(conn, site)


async def update_site(conn: AsyncConnection, site: Site, now: datetime) -> bool:
    """Replace the site's fields and stations; False when there is no such site."""
    values = {c: getattr(site, c) for c in _SITE_COLUMNS}
    result = await conn.execute(
        sa.update(t.sites).where(t.sites.c.id == site.id).values(updated_at=now, **values)
    )
    if result.rowcount == 0:
        return False
    await _set_stations(conn, site)
    return True


async def delete_site(conn: AsyncConnection, site_id: str) -> bool:
    # Children first: SQLite enforces ON DELETE CASCADE only with foreign keys switched on.
    await conn.execute(sa.delete(t.site_envelopes).where(t.site_envelopes.c.site_id == site_id))
    await conn.execute(sa.delete(t.site_stations).where(t.site_stations.c.site_id == site_id))
    result = await conn.execute(sa.delete(t.sites).where(t.sites.c.id == site_id))
    return bool(result.rowcount)


async def replace_envelopes(
    conn: AsyncConnection, site_id: str, source: str, envelopes: Sequence[OperatingEnvelope]
) -> None:
    """The site's envelopes from `source` become exactly `envelopes` (at most
    MAX_ENVELOPES_PER_SOURCE: the ones starting first are kept)."""
    if any(e.site_id != site_id or e.source != source for e in envelopes):
        raise ValueError("every envelope must belong to this site and source")
    se = t.site_envelopes
    await conn.execute(sa.delete(se).where(se.c.site_id == site_id, se.c.source == source))
    kept = sorted(envelopes, key=lambda e: e.start)[:MAX_ENVELOPES_PER_SOURCE]
    if kept:
        await conn.execute(
            sa.insert(se), [{name: getattr(e, name) for name in _ENVELOPE_FIELDS} for e in kept]
        )


async def site_envelopes(
    conn: AsyncConnection, site_id: str, *, source: str | None = None
) -> list[OperatingEnvelope]:
    se = t.site_envelopes
    query = sa.select(*(se.c[name] for name in _ENVELOPE_FIELDS)).where(se.c.site_id == site_id)
    if source is not None:
        query = query.where(se.c.source == source)
    rows = await conn.execute(query.order_by(se.c.start, se.c.id))
    return [OperatingEnvelope(**row._asdict()) for row in rows]


async def envelopes_announced(conn: AsyncConnection, site_id: str) -> str | None:
    """The envelope state whose change listeners were last called for the site (None: never)."""
    return (
        await conn.execute(sa.select(t.sites.c.envelopes_announced).where(t.sites.c.id == site_id))
    ).scalar_one_or_none()


async def claim_announcement(
    conn: AsyncConnection, site_id: str, seen: str | None, state: str
) -> bool:
    """Record `state` as announced if nobody else did since `seen` (what this node read): True
    = this node calls the listeners."""
    c = t.sites.c
    condition = c.envelopes_announced.is_(None) if seen is None else c.envelopes_announced == seen
    result = await conn.execute(
        sa.update(t.sites).where(c.id == site_id, condition).values(envelopes_announced=state)
    )
    return bool(result.rowcount)


async def unsited_stations_holding(
    conn: AsyncConnection, kind: str, cleared: Sequence[str], limit: int
) -> list[tuple[str, dict[str, object], datetime]]:
    """Stations in no site whose last event of `kind` (an envelope enforcement) is not a
    ClearChargingProfile answered with one of `cleared`: they may still hold the profile (a
    `csms site` run or another node took them out of their site). (station id, that event's
    payload, received at), at most `limit`. One index lookup per station in no site (the
    events' (station_id, kind, id) index), not a scan of their history."""
    st, ss, ev = t.stations, t.site_stations, t.events
    last = ev.alias("last_event")
    last_id = (
        sa.select(sa.func.max(last.c.id))
        .where(last.c.station_id == st.c.id, last.c.kind == kind)
        .correlate(st)
        .scalar_subquery()
    )
    in_a_site = sa.exists().where(ss.c.station_id == st.c.id)
    action = ev.c.payload["action"].as_string()
    status = ev.c.payload["status"].as_string()
    query = (
        sa.select(st.c.id, ev.c.payload, ev.c.received_at)
        .select_from(st.join(ev, ev.c.id == last_id))
        .where(
            ~in_a_site,
            sa.not_(sa.and_(action == "ClearChargingProfile", status.in_(list(cleared)))),
        )
        .order_by(st.c.id)
        .limit(limit)
    )
    return [(row.id, row.payload, row.received_at) for row in await conn.execute(query)]
