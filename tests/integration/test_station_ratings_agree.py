"""Issue 18: one source for a station's ratings. The envelope share (EnvelopeService) and the
CSIP-AUS client's DERCapability/DERSettings (StationsSiteSource) read the same ratings: what each
station reported in its device model, else the `station_rated_*` settings. On SQLite and on
PostgreSQL (CSMS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from csms.domain.models import BootPolicy, DeviceVariable, SecurityProfile
from csms.domain.sites import Site
from csms.domain.station_ratings import RatingFallback
from csms.integrations.csip.convert import SiteRatings, der_capability
from csms.integrations.csip.poller import StationsSiteSource
from csms.persistence import repositories as repo
from csms.persistence.repositories import sites as srepo
from csms.services.container import Services, build_services
from csms.settings import Settings
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SITE = "home-r"


@contextlib.asynccontextmanager
async def database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ratings.db'}"
    else:
        async with fresh_postgres_database(postgres_url_or_skip()) as url:
            yield url


@contextlib.asynccontextmanager
async def services_on(url: str, **settings: Any) -> AsyncIterator[Services]:
    services = build_services(Settings(database_url=url, **settings))
    await services.start(migrate=True)
    try:
        yield services
    finally:
        await services.close()


def power(station_id: str, component: str, evse_id: int | None, **limits: float) -> DeviceVariable:
    return DeviceVariable(
        station_id, component, "Power", value="0", evse_id=evse_id, characteristics=limits
    )


async def three_stations(services: Services) -> Site:
    """A site of three stations: one reporting its EVSEs (7.4 kW both ways each, two EVSEs),
    one its whole-station power asymmetrically (11 kW charge, 5 kW discharge), one nothing."""
    variables = [
        power("R1", "EVSE", 1, maxLimit=7400.0, minLimit=-7400.0),
        power("R1", "EVSE", 2, maxLimit=7400.0, minLimit=-7400.0),
        power("R2", "ChargingStation", None, maxLimit=11000.0, minLimit=-5000.0),
        power("R2", "EVSE", 1, maxLimit=22000.0),  # the station-wide figure wins
    ]
    site = Site(SITE, "Home", station_ids=("R1", "R2", "R3"))

    async def write(conn: Any) -> None:
        for station_id in site.station_ids:
            await repo.insert_station(
                conn, station_id, None, SecurityProfile.BASIC_AUTH, BootPolicy.ACCEPTED, T0
            )
        await repo.upsert_device_variables(conn, variables, T0)
        await srepo.insert_site(conn, site, T0)

    await services.db.write(write)
    return site


def csip_source(services: Services) -> StationsSiteSource:
    """The CSIP-AUS client's source as csms/app.py wires it: the envelope service's fallback."""
    return StationsSiteSource(
        lambda: (),
        lambda _s: None,
        db=services.db,
        fallback=services.envelopes.rating_fallback,
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_envelope_share_and_csip_report_read_one_rating_per_station(
    kind: str, tmp_path: Path
) -> None:
    async with database_url(kind, tmp_path) as url, services_on(url) as services:
        site = await three_stations(services)
        view = await services.envelopes.view(SITE)  # no envelope: each station its rating
        per_station = {s: (b.max_charge_w, b.max_discharge_w) for s, b, _, _ in view.stations}
        assert per_station == {
            "R1": (14800.0, 14800.0),
            "R2": (11000.0, 5000.0),
            "R3": (22000.0, 22000.0),  # reported nothing: the default fallback
        }
        reported = await csip_source(services).ratings(site)
        assert reported == SiteRatings(
            view.charger_bounds.max_charge_w, view.charger_bounds.max_discharge_w
        )
        assert reported == SiteRatings(47800.0, 41800.0)
        cap = der_capability(reported)
        assert cap.rtgMaxChargeRateW.value * 10**cap.rtgMaxChargeRateW.multiplier == 47800


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_the_settings_are_the_fallback_of_both(kind: str, tmp_path: Path) -> None:
    async with (
        database_url(kind, tmp_path) as url,
        services_on(url, station_rated_charge_w=9000.0, station_rated_discharge_w=6000.0) as s,
    ):
        assert s.envelopes.rating_fallback == RatingFallback(9000.0, 6000.0)
        site = await three_stations(s)
        view = await s.envelopes.view(SITE)
        (r3,) = [b for station, b, _, _ in view.stations if station == "R3"]
        assert (r3.max_charge_w, r3.max_discharge_w) == (9000.0, 6000.0)
        reported = await csip_source(s).ratings(site)
        assert reported == SiteRatings(14800.0 + 11000.0 + 9000.0, 14800.0 + 5000.0 + 6000.0)
        assert reported == SiteRatings(
            view.charger_bounds.max_charge_w, view.charger_bounds.max_discharge_w
        )
        # A site without stations yet is reported as one station of the fallback, never 0 W.
        empty = Site("empty", "Empty")
        assert await csip_source(s).ratings(empty) == SiteRatings(9000.0, 6000.0)
