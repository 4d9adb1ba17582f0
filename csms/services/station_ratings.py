"""Reading each station's rating (csms.domain.station_ratings) from its stored device model:
the one function the envelope share and the CSIP-AUS client's DERCapability both use."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.station_ratings import RatingFallback, station_rating
from csms.persistence import repositories as repo


async def station_ratings(
    conn: AsyncConnection, station_ids: Sequence[str], fallback: RatingFallback
) -> list[tuple[float, float]]:
    """Per station (in order), its (charge W, discharge W) rating."""
    out = []
    for station_id in station_ids:
        variables = await repo.list_device_variables(conn, station_id, variable="Power")
        found = ((v.component, v.evse_id, v.characteristics) for v in variables)
        out.append(station_rating(found, fallback))
    return out
