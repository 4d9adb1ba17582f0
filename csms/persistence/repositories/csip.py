"""The CSIP-AUS client's state per site (csip_sites) and the polling lease.

One node polls a site: it holds the site's lease (lease_node, lease_until) and renews it while it
polls; a node that stops (crash, shutdown) lets it expire, and another takes the site over. A
database row lease rather than the broker's claims: those follow stations' connections, and a
site's polling has none; the database is what every node shares in every deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.persistence import tables as t
from csms.persistence.csip_tables import csip_sites

MAX_JSON_CHARS = 256 * 1024
MAX_ERROR_CHARS = 500


@dataclass
class CsipSiteState:
    site_id: str
    registration: str = "unregistered"  # unregistered | registered | pin_mismatch | error
    edev_href: str | None = None
    hrefs: dict[str, str] = field(default_factory=dict)
    poll_rates: dict[str, int] = field(default_factory=dict)
    clock_offset_s: float = 0.0
    last_poll_at: datetime | None = None
    next_poll_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    control_records: list[dict[str, Any]] = field(default_factory=list)
    active_controls: list[str] = field(default_factory=list)
    lease_node: str | None = None
    lease_until: datetime | None = None


def _dump(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"CSIP state document of {len(text)} characters")
    return text


def _state_of(row: sa.Row[Any]) -> CsipSiteState:
    return CsipSiteState(
        site_id=row.site_id,
        registration=row.registration,
        edev_href=row.edev_href,
        hrefs=dict(json.loads(row.hrefs_json)),
        poll_rates={k: int(v) for k, v in json.loads(row.poll_rates_json).items()},
        clock_offset_s=float(row.clock_offset_s),
        last_poll_at=row.last_poll_at,
        next_poll_at=row.next_poll_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        control_records=list(json.loads(row.control_records_json)),
        active_controls=[str(c) for c in json.loads(row.active_controls_json)],
        lease_node=row.lease_node,
        lease_until=row.lease_until,
    )


async def get_state(conn: AsyncConnection, site_id: str) -> CsipSiteState | None:
    row = (await conn.execute(sa.select(csip_sites).where(csip_sites.c.site_id == site_id))).first()
    return None if row is None else _state_of(row)


async def list_states(conn: AsyncConnection) -> list[CsipSiteState]:
    rows = await conn.execute(sa.select(csip_sites).order_by(csip_sites.c.site_id))
    return [_state_of(r) for r in rows]


def _values(state: CsipSiteState, now: datetime) -> dict[str, Any]:
    return {
        "registration": state.registration,
        "edev_href": state.edev_href,
        "hrefs_json": _dump(state.hrefs),
        "poll_rates_json": _dump(state.poll_rates),
        "clock_offset_s": state.clock_offset_s,
        "last_poll_at": state.last_poll_at,
        "next_poll_at": state.next_poll_at,
        "last_error": None if state.last_error is None else state.last_error[:MAX_ERROR_CHARS],
        "last_error_at": state.last_error_at,
        "control_records_json": _dump(state.control_records),
        "active_controls_json": _dump(state.active_controls),
        "updated_at": now,
    }


async def ensure_row(conn: AsyncConnection, site_id: str, now: datetime) -> None:
    """The site's row, made when missing (the site must exist)."""
    exists = (
        await conn.execute(sa.select(csip_sites.c.site_id).where(csip_sites.c.site_id == site_id))
    ).first()
    if exists is None:
        await conn.execute(
            sa.insert(csip_sites).values(site_id=site_id, **_values(CsipSiteState(site_id), now))
        )


async def save_state(conn: AsyncConnection, state: CsipSiteState, now: datetime) -> None:
    """Write everything but the lease (the lease has its own calls)."""
    await ensure_row(conn, state.site_id, now)
    await conn.execute(
        sa.update(csip_sites)
        .where(csip_sites.c.site_id == state.site_id)
        .values(**_values(state, now))
    )


async def acquire_lease(
    conn: AsyncConnection, site_id: str, node: str, now: datetime, until: datetime
) -> bool:
    """Take or renew the site's polling lease for `node` until `until`: True when `node` holds
    it (it was free, expired or already ours)."""
    await ensure_row(conn, site_id, now)
    c = csip_sites.c
    result = await conn.execute(
        sa.update(csip_sites)
        .where(
            c.site_id == site_id,
            sa.or_(c.lease_node.is_(None), c.lease_node == node, c.lease_until < now),
        )
        .values(lease_node=node, lease_until=until)
    )
    return bool(result.rowcount)


async def release_lease(conn: AsyncConnection, site_id: str, node: str) -> None:
    c = csip_sites.c
    await conn.execute(
        sa.update(csip_sites)
        .where(c.site_id == site_id, c.lease_node == node)
        .values(lease_node=None, lease_until=None)
    )


async def set_site_identity(
    conn: AsyncConnection, site_id: str, lfdi: str, sfdi: int, now: datetime
) -> None:
    """Store a derived LFDI/SFDI on the site, only where it has none (an operator's own
    identity, or one another node stored first, is kept)."""
    await conn.execute(
        sa.update(t.sites)
        .where(t.sites.c.id == site_id, t.sites.c.lfdi.is_(None))
        .values(lfdi=lfdi, updated_at=now)
    )
    await conn.execute(
        sa.update(t.sites)
        .where(t.sites.c.id == site_id, t.sites.c.sfdi.is_(None))
        .values(sfdi=sfdi, updated_at=now)
    )
