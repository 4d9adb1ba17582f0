"""CSIP-AUS site telemetry from the household meter (issue 18), against envoy 1.5.0: with a
recent meter reading the site MirrorUsagePoint reports the meter's net import (the house and
its solar included), the DER MirrorUsagePoint still the stations' own power.

Needs CSMS_TEST_POSTGRES_URL and CSMS_TEST_CSIP_VENV (envoy); skips without them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from csms.domain import csip_telemetry as ct
from csms.domain.csip_telemetry import Role
from csms.domain.site_meter import BaseInterval, reading_from
from csms.integrations.csip.telemetry import CsipTelemetry, TelemetrySettings
from csms.persistence.repositories import site_meters
from tests.integration.test_csip_telemetry_envoy import (
    EnvoyAdmin,
    csms_db,
    feed,
    register_site,
    transport_to,
    utcnow,
)
from tests.support.csip_server import make_identity, running_envoy, venv_and_postgres_or_skip

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]


async def test_site_reading_is_the_household_meter_der_reading_the_stations(
    tmp_path: Path,
) -> None:
    venv, url = venv_and_postgres_or_skip()
    site_identity = make_identity("site-metered")
    async with (
        running_envoy(venv, url, tmp_path / "envoy") as envoy,
        EnvoyAdmin(envoy) as admin,
        csms_db(tmp_path, site_identity.lfdi) as (db, site),
    ):
        await admin.set_runtime_config(mup_postrate_seconds=60)
        transport = transport_to(envoy.base_url, envoy.identity)
        try:
            await register_site(transport, site_identity)
            site_id = await admin.site_id_of(site_identity.lfdi)
            now = utcnow()
            minute = ct.minute_floor(now)
            # The car discharges 3 kW; the house draws 4.2 kW: the site imports 1.2 kW.
            await feed(db, minute - dt.timedelta(seconds=40), 3000, 230.0)
            reading = reading_from(
                "home",
                measured_at=minute - dt.timedelta(seconds=5),
                received_at=minute - dt.timedelta(seconds=5),
                source="api",
                grid_import_w=1200.0,
            )
            interval = BaseInterval(4200.0, 4200.0, -3000.0, 0)
            await db.write(lambda c: site_meters.save_reading(c, reading, interval))

            telemetry = CsipTelemetry(transport, db, TelemetrySettings(pen=0))
            result = await telemetry.tick(site, "/mup", now + dt.timedelta(seconds=3))
            period = (minute - dt.timedelta(minutes=1), minute)
            assert result.posted == {Role.SITE: period, Role.DER: period}

            begin, end = minute - dt.timedelta(minutes=10), minute + dt.timedelta(minutes=10)
            watts = await admin.site_readings(site_id, 1, begin, end)
            # envoy's "positive = import": the site imports 1200; the DER generates 3000.
            assert sorted(Decimal(r["value"]) for r in watts) == [Decimal(-3000), Decimal(1200)]
            var = await admin.site_readings(site_id, 2, begin, end)
            assert [Decimal(r["value"]) for r in var] == [Decimal(300)]  # the DER's only
        finally:
            await transport.aclose()
