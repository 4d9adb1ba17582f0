"""CSIP-AUS telemetry and notifications against the real servers (issue 18): envoy 1.5.0 and the
CACTUS runner (tests/support/csip_server.py, csip_cactus.py), the CSMS side on SQLite.

- readings computed from stored meter values reach envoy (EnvoyAdmin.site_readings), site and
  DER in their conventions (envoy shows both as "positive = import");
- a restart, or a lost database, posts to the MirrorUsagePoints already made (no duplicates);
  envoy's postRate is followed;
- a subscription made through the aggregator's /edev/0/sub receives envoy's notification on a
  loopback endpoint and triggers the re-poll callback (latency printed);
- CACTUS ALL-14 (subscriptions) with the CSMS code as the client; ALL-06 and ALL-10
  (telemetry, 9 and 12 minutes of real time) with CSMS_TEST_CSIP_LONG=1.

Needs CSMS_TEST_POSTGRES_URL (envoy's database); skips without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from envoy_schema.server.schema.sep2.pub_sub import SubscriptionListResponse
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain import csip_telemetry as ct
from csms.domain.csip_telemetry import Role
from csms.domain.models import MeterSample
from csms.domain.sites import Site
from csms.integrations.csip.notifications import (
    CsipSubscriptions,
    NotificationStore,
    notification_router,
)
from csms.integrations.csip.telemetry import CsipTelemetry, TelemetrySettings
from csms.integrations.csip.transport import CsipError, CsipTransport, TransportConfig
from csms.persistence import tables as t
from csms.persistence.csip_telemetry_tables import csip_mirror_points, csip_subscriptions
from csms.persistence.database import Database
from csms.persistence.repositories import sites as sites_repo
from csms.persistence.repositories.csip_telemetry import latest_notification
from csms.persistence.repositories.meter_values import insert_meter_samples
from tests.support import csip_server
from tests.support.csip_admin import Envelope, EnvoyAdmin
from tests.support.csip_cactus import CactusRunner, running_cactus, serving
from tests.support.csip_server import (
    make_identity,
    running_envoy,
    venv_and_postgres_or_skip,
)
from tests.support.v2g_nodes import node_databases

Identity = csip_server.TestIdentity

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(1500)]

SEP_XML = "application/sep+xml"
LONG = os.environ.get("CSMS_TEST_CSIP_LONG") == "1"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---- the CSMS side -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def csms_db(tmp_path: Path, site_lfdi: str) -> AsyncIterator[tuple[Database, Site]]:
    """A migrated SQLite CSMS database with station cp1 in site `home` (the EndDevice)."""
    async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}", 1) as dbs:
        db = dbs[0]
        now = utcnow()
        site = Site(id="home", name="home", lfdi=site_lfdi, csip_enabled=True, station_ids=("cp1",))

        async def op(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.insert(t.stations).values(id="cp1", created_at=now, updated_at=now)
            )
            await sites_repo.insert_site(conn, site, now)

        await db.write(op)
        yield db, site


async def feed(db: Database, at: dt.datetime, export_w: float, volts: float = 231.2) -> None:
    """What a discharging station reports (OCPP measurands, as the CSMS stores them)."""
    samples = [
        MeterSample("cp1", at, export_w, "Power.Active.Export", evse_id=1, unit="W"),
        MeterSample("cp1", at, 0.0, "Power.Active.Import", evse_id=1, unit="W"),
        MeterSample("cp1", at, 300.0, "Power.Reactive.Import", evse_id=1, unit="var"),
        MeterSample("cp1", at, volts, "Voltage", evse_id=1, unit="V"),
    ]
    await db.write(lambda conn: insert_meter_samples(conn, samples))


def transport_to(url: str, identity: Identity) -> CsipTransport:
    return CsipTransport(
        TransportConfig(
            server_url=f"{url}/dcap", cert_pem=identity.cert_pem.encode(), cert_header_mode=True
        )
    )


async def register_site(transport: CsipTransport, site_identity: Identity) -> str:
    """The site's EndDevice, registered in-band (the client engineer's code does this in the
    product; here only what telemetry needs)."""
    body = (
        f'<EndDevice xmlns="urn:ieee:std:2030.5:ns"><lFDI>{site_identity.lfdi}</lFDI>'
        f"<sFDI>{site_identity.sfdi}</sFDI><changedTime>0</changedTime></EndDevice>"
    )
    client = transport._client  # the transport's own client: same headers, same server
    answer = await client.post(
        "/edev",
        content=body,
        headers={**transport._headers, "Content-Type": SEP_XML},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.headers["location"])


class Repolls:
    """The on_notification callback: when each site was asked to re-poll."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.event = asyncio.Event()

    async def __call__(self, site_id: str) -> None:
        self.calls.append((site_id, time.monotonic()))
        self.event.set()

    async def wait(self, seconds: float) -> None:
        await asyncio.wait_for(self.event.wait(), seconds)
        self.event.clear()


async def notified(
    db: Database, done: Callable[[dict[str, int]], bool], seconds: float = 60
) -> dict[str, int]:
    """Notifications served per subscribed resource, once `done` holds (else AssertionError)."""
    deadline = time.monotonic() + seconds
    while True:
        async with db.read() as conn:
            rows = await conn.execute(
                sa.select(csip_subscriptions.c.resource_href, csip_subscriptions.c.notifications)
            )
            counts = {str(href): int(n) for href, n in rows}
        if done(counts):
            return counts
        assert time.monotonic() < deadline, f"notifications so far: {counts}"
        await asyncio.sleep(0.5)


async def _count(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


# ---- against envoy --------------------------------------------------------------------------


async def test_readings_from_meter_values_appear_in_envoy(tmp_path: Path) -> None:
    venv, url = venv_and_postgres_or_skip()
    site_identity = make_identity("site-home")
    async with (
        running_envoy(venv, url, tmp_path / "envoy") as envoy,
        EnvoyAdmin(envoy) as admin,
        csms_db(tmp_path, site_identity.lfdi) as (db, site),
    ):
        await admin.set_runtime_config(mup_postrate_seconds=60)
        transport = transport_to(envoy.base_url, envoy.identity)
        try:
            edev = await register_site(transport, site_identity)
            site_id = await admin.site_id_of(site_identity.lfdi)
            assert edev == f"/edev/{site_id}"
            now = utcnow()
            minute = ct.minute_floor(now)
            # The car discharges 3 kW over the last minute (two samples: 2.8 and 3.2 kW).
            await feed(db, minute - dt.timedelta(seconds=40), 2800, 230.0)
            await feed(db, minute - dt.timedelta(seconds=10), 3200, 232.4)

            telemetry = CsipTelemetry(transport, db, TelemetrySettings(pen=0))
            result = await telemetry.tick(site, "/mup", now + dt.timedelta(seconds=3))
            period = (minute - dt.timedelta(minutes=1), minute)
            assert result.posted == {Role.SITE: period, Role.DER: period}
            assert result.skipped == []

            begin, end = minute - dt.timedelta(minutes=10), minute + dt.timedelta(minutes=10)
            watts = await admin.site_readings(site_id, 1, begin, end)
            # Site (flowDirection 1, exporting: -3000) and DER (19, generating: +3000) both
            # show as -3000 in envoy's "positive = import" view: the conventions agree.
            assert sorted((r["duration_seconds"], Decimal(r["value"])) for r in watts) == [
                (60, Decimal(-3000)),
                (60, Decimal(-3000)),
            ]
            assert {r["reading_start_time"][:19] for r in watts} == {
                period[0].strftime("%Y-%m-%dT%H:%M:%S")
            }
            var = await admin.site_readings(site_id, 2, begin, end)
            assert sorted(Decimal(r["value"]) for r in var) == [Decimal(300), Decimal(300)]
            volts = await admin.site_readings(site_id, 4, begin, end)
            assert [Decimal(r["value"]) for r in volts] == [Decimal("231.2")] * 2

            # Nothing more is due in the same minute; nothing fresh a while later: skipped.
            again = await telemetry.tick(site, "/mup", now + dt.timedelta(seconds=5))
            assert again.posted == {} and again.skipped == []
            later = await telemetry.tick(site, "/mup", now + dt.timedelta(minutes=20))
            assert later.posted == {} and sorted(r.value for r in later.skipped) == ["der", "site"]
            assert len(await admin.site_readings(site_id, 1, begin, end)) == 2
        finally:
            await transport.aclose()


async def test_mirror_usage_points_are_made_once_and_follow_the_post_rate(tmp_path: Path) -> None:
    venv, url = venv_and_postgres_or_skip()
    site_identity = make_identity("site-home")
    async with (
        running_envoy(venv, url, tmp_path / "envoy") as envoy,
        EnvoyAdmin(envoy) as admin,
        csms_db(tmp_path, site_identity.lfdi) as (db, site),
    ):
        await admin.set_runtime_config(mup_postrate_seconds=120)
        transport = transport_to(envoy.base_url, envoy.identity)
        try:
            await register_site(transport, site_identity)
            now = utcnow()
            await feed(db, now - dt.timedelta(seconds=20), 1500)
            first = CsipTelemetry(transport, db, TelemetrySettings(pen=0, list_refresh_s=30))
            await first.tick(site, "/mup", now)

            async def listed() -> list[tuple[str, int | None]]:
                await first.refresh_list("/mup", utcnow())
                return sorted((mrid, rate) for mrid, (_, rate) in first._listed.items())

            mups = await listed()
            assert [rate for _, rate in mups] == [120, 120]
            async with db.read() as conn:
                rows = (await conn.execute(sa.select(csip_mirror_points))).all()
            assert {(r.role, r.post_rate_s) for r in rows} == {("site", 120), ("der", 120)}
            assert all(r.href and r.href.startswith("/mup/") for r in rows)

            # A restart (new object, same database) posts to the same MUPs.
            restarted = CsipTelemetry(transport, db, TelemetrySettings(pen=0))
            await restarted.tick(site, "/mup", now + dt.timedelta(minutes=3))
            # A lost database: the MUPs with our mRIDs are found in envoy's list, not remade.
            await db.write(lambda conn: conn.execute(sa.delete(csip_mirror_points)))
            lost = CsipTelemetry(transport, db, TelemetrySettings(pen=0))
            await lost.tick(site, "/mup", now + dt.timedelta(minutes=6))
            assert await listed() == mups
            assert await _count(db, csip_mirror_points) == 2

            # The server changes the post rate: followed after the next list refresh, and a
            # period is then one new post rate long.
            await admin.set_runtime_config(mup_postrate_seconds=300)
            await feed(db, now + dt.timedelta(minutes=11), 1500)
            result = await lost.tick(site, "/mup", now + dt.timedelta(minutes=12))
            assert result.posted[Role.DER] == result.posted[Role.SITE]
            start, end = result.posted[Role.DER]
            assert (end - start).total_seconds() == 300
        finally:
            await transport.aclose()


async def test_envoy_notification_reaches_the_endpoint_and_triggers_a_repoll(
    tmp_path: Path,
) -> None:
    venv, url = venv_and_postgres_or_skip()
    site_identity = make_identity("site-home")
    repolls = Repolls()
    async with (
        running_envoy(venv, url, tmp_path / "envoy") as envoy,
        EnvoyAdmin(envoy) as admin,
        csms_db(tmp_path, site_identity.lfdi) as (db, site),
    ):
        app = FastAPI()
        app.include_router(notification_router(NotificationStore(db), repolls))
        transport = transport_to(envoy.base_url, envoy.identity)
        try:
            async with serving(app) as base:
                edev = await register_site(transport, site_identity)
                site_id = await admin.site_id_of(site_identity.lfdi)
                program = await admin.create_program("doe", primacy=0)
                subscriptions = CsipSubscriptions(transport, db, base)
                # Discovered from the server: the aggregator's /edev/0/sub, and what the client
                # polls (FSA list, its program list, the program's controls and default).
                made = await subscriptions.ensure_for_site(site, "/edev", edev, utcnow())
                resources = [
                    f"{edev}/derp/{program}/derc",
                    f"{edev}/derp/{program}/dderc",
                ]
                assert made == [f"{edev}/fsa", f"{edev}/fsa/1/derp", *resources]
                async with db.read() as conn:
                    rows = (await conn.execute(sa.select(csip_subscriptions))).all()
                assert {r.resource_href for r in rows} == set(made)
                assert all(r.subscription_href.startswith("/edev/0/sub/") for r in rows)
                # Ensured again: nothing new on the server.
                assert await subscriptions.ensure_for_site(site, "/edev", edev, utcnow()) == []

                # The DNSP publishes an envelope: envoy notifies, the CSMS re-polls the site.
                sent = time.monotonic()
                now = utcnow().replace(microsecond=0)
                await admin.add_envelopes(
                    program, site_id, [Envelope(now, 600, export_limit_w=Decimal(1500))]
                )
                await repolls.wait(60)
                latency = repolls.calls[0][1] - sent
                print(f"\nenvoy admin change -> on_notification: {latency * 1000:.0f} ms")
                # The control list's own subscription is among those notified.
                counts = await notified(db, lambda c: c[resources[0]] >= 1)
                assert {site_id for site_id, _ in repolls.calls} == {"home"}
                # What the polling node (maybe another) reads to re-poll: when, by any node.
                async with db.read() as conn:
                    seen = await latest_notification(conn, "home")
                assert seen is not None and now - dt.timedelta(seconds=5) <= seen <= utcnow()

                # The default control changes: its own subscription notifies.
                before = counts[resources[1]]
                await admin.set_default(program, export_limit_w=Decimal(1000))
                await notified(db, lambda c: c[resources[1]] > before)
                assert {site_id for site_id, _ in repolls.calls} == {"home"}

                # Dropping a resource deletes the subscription on the server too.
                assert (
                    await subscriptions.ensure(site, "/edev/0/sub", resources[:1], utcnow()) == []
                )
                assert await _count(db, csip_subscriptions) == 1
                _, on_server = await transport.get_list(
                    "/edev/0/sub", SubscriptionListResponse, "subscriptions"
                )
                assert [x.subscribedResource for x in on_server] == resources[:1]
        finally:
            await transport.aclose()


# ---- CACTUS ------------------------------------------------------------------------------------


async def drive(
    runner: CactusRunner,
    transport: CsipTransport,
    edev: str,
    db: Database,
    step: Callable[[CsipTransport, str, dt.datetime], Awaitable[None]],
    until: Callable[[dict[str, object]], bool],
    seconds: float,
) -> None:
    """Call `step` every 2 s (the poller's pass) until `until(status)` or `seconds` passed,
    feeding a discharging station each pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = utcnow()
        await feed(db, now, 2500 + 100 * (now.minute % 3))
        try:
            await step(transport, edev, now)
        except CsipError:
            # The procedure may finish between two passes (the runner then answers 410).
            if until(await runner.status()):
                return
            raise
        if until(await runner.status()):
            return
        await asyncio.sleep(2)


def _steps(status: dict[str, object]) -> dict[str, bool]:
    from tests.support.csip_cactus import parse_status

    return parse_status(status)[0]


async def test_cactus_all_14_subscriptions(tmp_path: Path) -> None:
    venv, url = venv_and_postgres_or_skip()
    identity = make_identity("cactus-aggregator")
    site_identity = make_identity("site-home")
    repolls = Repolls()
    async with (
        running_cactus(venv, url, tmp_path / "cactus", identity) as runner,
        csms_db(tmp_path, site_identity.lfdi) as (db, site),
    ):
        app = FastAPI()
        app.include_router(notification_router(NotificationStore(db), repolls))
        async with serving(app) as base:
            init = await runner.initialise("ALL-14", identity.cert_pem)
            assert init["isStarted"] is True  # immediate start

            async def step(transport: CsipTransport, edev: str, now: dt.datetime) -> None:
                # What the client polls, discovered: the FSA list, the FSA's program list, the
                # program's controls and default control (program 1, made by the procedure).
                subscriptions = CsipSubscriptions(transport, db, base)
                await subscriptions.ensure_for_site(site, "/edev", edev, now)

            wanted = (
                "POST-SUBSCRIPTION-FSAL",
                "POST-SUBSCRIPTION-DERP",
                "POST-SUBSCRIPTION-DERC",
                "POST-SUBSCRIPTION-DEFAULT-DERC",
            )

            def done(status: dict[str, object]) -> bool:
                steps = _steps(status)
                return all(steps.get(s) for s in wanted) and len(repolls.calls) >= 4

            transport = transport_to(runner.url, identity)
            try:
                edev = await register_site(transport, site_identity)
                await drive(runner, transport, edev, db, step, done, 120)
                await asyncio.sleep(8)  # envoy's notification worker polls every 3 s
            finally:
                await transport.aclose()
            summary = await runner.finalize()

    assert summary.test_procedure == "ALL-14"
    assert {s: summary.steps[s] for s in wanted} == dict.fromkeys(wanted, True)
    criteria = {c.type: c for c in summary.criteria}
    assert criteria["all-notifications-transmitted"].success, criteria[
        "all-notifications-transmitted"
    ].details
    # CACTUS 1.15's ALL-14 never enables POST-SUBSCRIPTION-EDEV (its Preconditions enable the
    # other four), so no client can complete it: the only step all-steps-complete reports.
    assert summary.steps["POST-SUBSCRIPTION-EDEV"] is False
    assert criteria["all-steps-complete"].details == (
        "Steps POST-SUBSCRIPTION-EDEV have not been completed."
    )
    # Each change the procedure made reached the endpoint and asked for a re-poll of the site.
    assert {site_id for site_id, _ in repolls.calls} == {"home"}
    assert len(repolls.calls) >= 4


async def _cactus_telemetry(
    tmp_path: Path, procedure: str, seconds: float, last_step: str
) -> object:
    venv, url = venv_and_postgres_or_skip()
    identity = make_identity("cactus-aggregator")
    site_identity = make_identity("site-home")
    async with (
        running_cactus(venv, url, tmp_path / "cactus", identity) as runner,
        csms_db(tmp_path, site_identity.lfdi) as (db, site),
    ):
        init = await runner.initialise(procedure, identity.cert_pem)
        transport = transport_to(runner.url, identity)
        # Registered before the start: ALL-10's precondition checks for an EndDevice.
        edev = await register_site(transport, site_identity)
        if not init["isStarted"]:
            await runner.start()
        telemetry: dict[str, CsipTelemetry] = {}

        async def step(transport: CsipTransport, edev: str, now: dt.datetime) -> None:
            tm = telemetry.setdefault("t", CsipTelemetry(transport, db, TelemetrySettings(pen=0)))
            await tm.tick(site, "/mup", now)

        def done(status: dict[str, object]) -> bool:
            return bool(_steps(status).get(last_step))

        try:
            await drive(runner, transport, edev, db, step, done, seconds)
        finally:
            await transport.aclose()
        return await runner.finalize()


READING_CRITERIA = (
    "readings-site-active-power",
    "readings-site-reactive-power",
    "readings-voltage",
    "readings-der-active-power",
    "readings-der-reactive-power",
)


@pytest.mark.skipif(not LONG, reason="ALL-06 runs 9 minutes: CSMS_TEST_CSIP_LONG=1")
async def test_cactus_all_06_individual_readings(tmp_path: Path) -> None:
    summary = await _cactus_telemetry(tmp_path, "ALL-06", 660, "WAIT-CONTROL")
    assert summary.steps == {  # type: ignore[attr-defined]
        "GET-MUP": True,
        "POST-MUP": True,
        "GET-MUP-2": True,
        "SET-CONTROL": True,
        "WAIT-CONTROL": True,
    }
    criteria = {c.type: c for c in summary.criteria}  # type: ignore[attr-defined]
    assert set(criteria) == {"all-steps-complete", *READING_CRITERIA}
    assert all(c.success for c in criteria.values()), [
        (c.type, c.details) for c in criteria.values() if not c.success
    ]


@pytest.mark.skipif(not LONG, reason="ALL-10 runs 12 minutes: CSMS_TEST_CSIP_LONG=1")
async def test_cactus_all_10_post_rate_updates(tmp_path: Path) -> None:
    summary = await _cactus_telemetry(tmp_path, "ALL-10", 900, "WAIT-TILL-END")
    assert summary.steps == {  # type: ignore[attr-defined]
        "GET-MUP-INITIAL": True,
        "WAIT-TILL-UPDATE": True,
        "GET-MUP-UPDATED": True,
        "POST-MUP-1": True,
        "WAIT-TILL-END": True,
    }
    criteria = {c.type: c for c in summary.criteria}  # type: ignore[attr-defined]
    assert all(c.success for c in criteria.values()), [
        (c.type, c.details) for c in criteria.values() if not c.success
    ]
