"""When the household meter makes the stations get a new envelope profile (issue 18,
csms.services.site_meters), on a clock the test moves: a change of the base within the
hysteresis sends nothing, a material one re-sends at most once per minimum interval (held back,
then sent by the check round), and a reading turning stale re-sends by itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from csms.domain.models import MeterSample
from csms.domain.site_meter import reading_from
from csms.domain.sites import Site
from csms.persistence import tables as t
from csms.persistence.database import Database
from csms.persistence.repositories import sites as srepo
from csms.persistence.repositories.meter_values import insert_meter_samples
from csms.services.site_meters import SiteMeterService, SiteMeterSettings
from tests.support.v2g_nodes import node_databases

T0 = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


class FakeEnvelopes:
    """What the meter service needs of csms.services.envelopes.EnvelopeService."""

    def __init__(self) -> None:
        self.resent: list[str] = []

    async def station_ratings(self, station_ids: Sequence[str]) -> list[tuple[float, float]]:
        return [(7400.0, 7400.0) for _ in station_ids]

    async def reenforce_site(self, site_id: str) -> dict[str, Any]:
        self.resent.append(site_id)
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", 1) as dbs:
        await dbs[0].write(lambda c: srepo.insert_site(c, Site("home", "Home"), T0))
        yield dbs[0]


async def test_hysteresis_minimum_interval_and_staleness(db: Database) -> None:
    clock = Clock()
    envelopes = FakeEnvelopes()
    meters = SiteMeterService(
        db,
        envelopes,  # type: ignore[arg-type]
        clock=clock,
        settings=SiteMeterSettings(
            site_meter_max_age_s=60,
            site_meter_hysteresis_w=300,
            site_meter_min_resend_s=15,
            site_meter_check_s=0,
        ),
    )

    async def push(watts: float) -> None:
        await meters.record(
            reading_from(
                "home",
                measured_at=clock.now,
                received_at=clock.now,
                source="api",
                grid_import_w=watts,
            )
        )

    await push(2000.0)  # first reading: the base moves off the chargers-alone 0
    assert envelopes.resent == ["home"]
    clock.now += timedelta(seconds=20)
    await push(2250.0)  # within the hysteresis
    assert envelopes.resent == ["home"]
    clock.now += timedelta(seconds=1)
    await push(3000.0)  # material, 21 s after the last re-send: sent
    assert len(envelopes.resent) == 2
    clock.now += timedelta(seconds=5)
    await push(1000.0)  # material, but 5 s after the last: held back
    assert len(envelopes.resent) == 2
    assert await meters.check_all() == []  # still within the interval
    clock.now += timedelta(seconds=10)
    assert await meters.check_all() == ["home"]  # 15 s on: the check round sends it
    assert len(envelopes.resent) == 3
    assert await meters.check_all() == []  # once
    base = await meters.site_base("home", clock.now)
    assert base is not None and base.fresh and base.pair == (1300.0, 700.0)

    # No reading for more than 60 s: stale, the chargers-alone rule tightened by the last base.
    clock.now += timedelta(seconds=61)
    stale = await meters.site_base("home", clock.now)
    assert stale is not None and not stale.fresh and stale.pair == (1000.0, 0.0)
    assert await meters.check_all() == ["home"]
    assert len(envelopes.resent) == 4

    # A fresh reading with solar, then stale: the solar loosened the import side; the stale
    # reading brings it back to the chargers alone (base 0 for charging).
    clock.now += timedelta(seconds=20)
    await push(-500.0)  # base (-200, -800) with the margin
    assert len(envelopes.resent) == 5
    clock.now += timedelta(seconds=61)
    assert await meters.check_all() == ["home"]  # stale: (0, -500), the charge side tighter
    assert len(envelopes.resent) == 6
    assert await meters.check_all() == []

    # Forgotten: the chargers alone, sent at once.
    assert await meters.delete("home")
    assert envelopes.resent[-1] == "home" and len(envelopes.resent) == 7
    assert await meters.site_base("home", clock.now) is None


async def test_the_chargers_power_at_the_reading(tmp_path: Path) -> None:
    """The base is the reading minus the station's measured power: a sample within 10 s of the
    reading counts; without a transaction an older one does not (the car may have left)."""
    async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", 1) as dbs:
        db = dbs[0]

        async def setup(conn: Any) -> None:
            await conn.execute(sa.insert(t.stations).values(id="cs1", created_at=T0, updated_at=T0))
            await srepo.insert_site(conn, Site("home", "Home", station_ids=("cs1",)), T0)

        await db.write(setup)
        clock = Clock()
        meters = SiteMeterService(
            db,
            FakeEnvelopes(),  # type: ignore[arg-type]
            clock=clock,
            settings=SiteMeterSettings(site_meter_check_s=0),
        )

        async def sample(at: datetime, charging_w: float) -> None:
            rows = [
                MeterSample("cs1", at, charging_w, "Power.Active.Import", evse_id=1, unit="W"),
                MeterSample("cs1", at, 0.0, "Power.Active.Export", evse_id=1, unit="W"),
            ]
            await db.write(lambda c: insert_meter_samples(c, rows))

        async def base_after(watts: float) -> tuple[float, float, int]:
            view = await meters.record(
                reading_from(
                    "home",
                    measured_at=clock.now,
                    received_at=clock.now,
                    source="api",
                    grid_import_w=watts,
                )
            )
            assert view.interval is not None
            return view.interval.high_w, view.interval.chargers_w, view.interval.unknown_stations

        await sample(T0 - timedelta(seconds=60), 7000.0)  # a minute ago, no transaction now
        assert await base_after(2000.0) == (2000.0, 0.0, 0)
        clock.now += timedelta(seconds=5)
        await sample(clock.now - timedelta(seconds=2), 3000.0)
        assert await base_after(5000.0) == (2000.0, 3000.0, 0)
