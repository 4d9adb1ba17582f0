"""The CSIP-AUS client's poller with telemetry, subscriptions and notifications wired in
(csms/integrations/csip/site_extras.py), against the real envoy 1.5.0:

- the poller registers the site, makes its MirrorUsagePoints and posts the station's meter values
  as readings at envoy's postRate (EnvoyAdmin.site_readings);
- it subscribes to the site's control lists on its own (a notification base URL configured) and
  a control added in envoy's admin reaches the site's stored envelopes through the notification,
  well before the poll rate (900 s) or the poller's own round (30 s) would have read it;
- another node served the notification (a poller that does not hold the site): the node polling
  the site finds it in the database (latest_notification) on its next round.

Needs CSMS_TEST_POSTGRES_URL (envoy's database; the CSMS's own is SQLite); skips without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain import csip_telemetry as ct
from csms.domain.envelopes import envelope_at
from csms.domain.models import MeterSample
from csms.domain.sites import Site
from csms.integrations.csip.client import CsipSiteClient, PollBounds
from csms.integrations.csip.convert import SiteLiveState, SiteRatings
from csms.integrations.csip.notifications import (
    CsipSubscriptions,
    NotificationStore,
    OnNotification,
    notification_router,
)
from csms.integrations.csip.poller import CsipPoller
from csms.integrations.csip.site_extras import CsipSiteExtras
from csms.integrations.csip.telemetry import CsipTelemetry, TelemetrySettings
from csms.integrations.csip.transport import CsipTransport, TransportConfig
from csms.persistence import tables as t
from csms.persistence.csip_telemetry_tables import csip_subscriptions
from csms.persistence.database import Database
from csms.persistence.repositories import sites as sites_repo
from csms.persistence.repositories.meter_values import insert_meter_samples
from tests.support.csip_admin import Envelope, EnvoyAdmin
from tests.support.csip_server import (
    EnvoyServer,
    free_port,
    running_envoy,
    venv_and_postgres_or_skip,
)
from tests.support.v2g_nodes import node_databases

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

NMI = "4123456789"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FakeSource:
    async def ratings(self, site: Site) -> SiteRatings:
        return SiteRatings(max_charge_w=7200, max_discharge_w=7200)

    async def live_state(self, site: Site) -> SiteLiveState:
        return SiteLiveState(connected=True, operating=True, discharging=True)


@dataclass
class Node:
    """One CSMS node's CSIP-AUS client: its poller and what its callbacks saw."""

    poller: CsipPoller
    changed: list[tuple[str, float]] = field(default_factory=list)


def transport_to(envoy: EnvoyServer) -> CsipTransport:
    return CsipTransport(
        TransportConfig(envoy.base_url + "/dcap", envoy.cert_pem.encode(), cert_header_mode=True)
    )


def make_node(
    envoy: EnvoyServer, db: Database, name: str, notify_base: str | None, tick_s: float
) -> Node:
    transport = transport_to(envoy)
    node = Node(poller=None)  # type: ignore[arg-type]

    async def changed(site_id: str) -> None:
        node.changed.append((site_id, time.monotonic()))

    client = CsipSiteClient(
        transport,
        db,
        FakeSource(),
        on_envelopes_changed=changed,
        clock=utcnow,
        bounds=PollBounds(min_s=10, max_s=3600, retry_s=5),
    )
    extras = CsipSiteExtras(
        db,
        CsipTelemetry(transport, db, TelemetrySettings()),
        CsipSubscriptions(transport, db, notify_base) if notify_base else None,
        clock=utcnow,
    )
    node.poller = CsipPoller(client, db, name, clock=utcnow, tick_s=tick_s, extras=extras)
    return node


@contextlib.asynccontextmanager
async def serving(app: FastAPI, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class World:
    envoy: EnvoyServer
    admin: EnvoyAdmin
    db: Database
    site: Site


@contextlib.asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    venv, url = venv_and_postgres_or_skip()
    async with (
        running_envoy(venv, url, tmp_path / "envoy") as envoy,
        EnvoyAdmin(envoy) as admin,
        node_databases(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}", 1) as dbs,
    ):
        db = dbs[0]
        now = utcnow()
        site = Site(id="home", name="Home", nmi=NMI, csip_enabled=True, station_ids=("cp1",))

        async def op(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.insert(t.stations).values(id="cp1", created_at=now, updated_at=now)
            )
            await sites_repo.insert_site(conn, site, now)

        await db.write(op)
        yield World(envoy, admin, db, site)


async def feed(db: Database, at: dt.datetime, export_w: float) -> None:
    """What a discharging station reports (OCPP measurands, as the CSMS stores them)."""
    samples = [
        MeterSample("cp1", at, export_w, "Power.Active.Export", evse_id=1, unit="W"),
        MeterSample("cp1", at, 0.0, "Power.Active.Import", evse_id=1, unit="W"),
        MeterSample("cp1", at, 230.0, "Voltage", evse_id=1, unit="V"),
    ]
    await db.write(lambda conn: insert_meter_samples(conn, samples))


async def eventually(
    check: Callable[[], object], seconds: float, what: str, every_s: float = 0.2
) -> object:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        await asyncio.sleep(every_s)


async def stored_export_limit(db: Database, site_id: str) -> float | None:
    async with db.read() as conn:
        envelopes = await sites_repo.site_envelopes(conn, site_id, source="csip-aus")
    in_force = envelope_at(envelopes, utcnow())
    return None if in_force is None else in_force.export_limit_w


async def envoy_site_id(w: World) -> int:
    async with w.db.read() as conn:
        site = await sites_repo.get_site(conn, w.site.id)
    assert site is not None and site.lfdi is not None
    return await w.admin.site_id_of(site.lfdi)


async def subscribed(db: Database) -> set[str]:
    async with db.read() as conn:
        rows = await conn.execute(sa.select(csip_subscriptions.c.resource_href))
        return {str(r) for (r,) in rows}


async def test_the_poller_posts_the_sites_readings_at_the_post_rate(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.admin.set_runtime_config(mup_postrate_seconds=60)
        node = make_node(w.envoy, w.db, "node-a", None, tick_s=1.0)
        # The car has been exporting 3 kW over the last two minutes, one sample every 10 s.
        now = utcnow()
        for back in range(0, 130, 10):
            await feed(w.db, now - dt.timedelta(seconds=back), 3000.0)
        node.poller.start()
        try:
            site_id = await eventually(lambda: envoy_site_id_or_none(w), 60, "registration")
            assert isinstance(site_id, int)
            begin, end = now - dt.timedelta(minutes=10), now + dt.timedelta(minutes=10)

            async def readings() -> list[dict[str, object]]:
                # Keep the station's samples fresh while waiting for the next period.
                await feed(w.db, utcnow(), 3000.0)
                return await w.admin.site_readings(site_id, 1, begin, end)

            watts = await eventually(readings, 150, "readings in envoy", every_s=2)
            assert isinstance(watts, list)
            # Site and DER both read -3000 W in envoy's "positive = import" view; each reading
            # covers one postRate period (60 s) starting on a whole minute.
            assert {Decimal(str(r["value"])) for r in watts} == {Decimal(-3000)}
            assert {r["duration_seconds"] for r in watts} == {60}
            assert all(str(r["reading_start_time"])[17:19] == "00" for r in watts)
            assert len(watts) % 2 == 0  # one per role per period
            minute = ct.minute_floor(utcnow())
            assert all(
                dt.datetime.fromisoformat(str(r["reading_start_time"])) < minute for r in watts
            )
        finally:
            await node.poller.stop()


async def envoy_site_id_or_none(w: World) -> int | None:
    async with w.db.read() as conn:
        site = await sites_repo.get_site(conn, w.site.id)
    if site is None or site.lfdi is None:
        return None
    return next(
        (int(s["site_id"]) for s in await w.admin.sites() if str(s["lfdi"]).upper() == site.lfdi),
        None,
    )


async def _notified_control(tmp_path: Path, *, served_by_the_poller: bool) -> float:
    """A control added in envoy's admin -> the site's stored envelope; the seconds it took.
    The poll rates are envoy's 900 s; the poller's own round 30 s when it is woken by the
    notification itself, 1 s when another node served it."""
    async with world(tmp_path) as w:
        program = await w.admin.create_program("doe", primacy=1)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        polling = make_node(w.envoy, w.db, "node-a", base, tick_s=30 if served_by_the_poller else 1)
        other = make_node(w.envoy, w.db, "node-b", base, tick_s=30)
        served: list[str] = []

        def on_notification(site_id: str) -> None:
            served.append(site_id)
            (polling if served_by_the_poller else other).poller.wake(site_id)

        callback: OnNotification = on_notification
        app = FastAPI()
        app.include_router(notification_router(NotificationStore(w.db), callback))
        async with serving(app, port):
            polling.poller.start()
            try:
                site_id = await eventually(lambda: envoy_site_id_or_none(w), 60, "registration")
                assert isinstance(site_id, int)
                edev = f"/edev/{site_id}"
                # Subscribed on its own: the control list of the program among them.
                await eventually(
                    lambda: _has(subscribed(w.db), f"{edev}/derp/{program}/derc"),
                    60,
                    "the subscription to the program's controls",
                )
                # node-b does not hold the site: its rounds poll nothing.
                assert await other.poller.run_once() == []
                assert await stored_export_limit(w.db, w.site.id) is None
                polling.changed.clear()

                sent = time.monotonic()
                start = utcnow().replace(microsecond=0) - dt.timedelta(seconds=5)
                await w.admin.add_envelopes(
                    program, site_id, [Envelope(start, 900, export_limit_w=Decimal(2000))]
                )

                async def limited() -> bool:
                    return await stored_export_limit(w.db, w.site.id) == pytest.approx(2000)

                await eventually(limited, 45, "the notified control stored")
                took = time.monotonic() - sent
                assert served and set(served) == {w.site.id}
                assert polling.changed and polling.changed[-1][0] == w.site.id
                return took
            finally:
                await polling.poller.stop()
                await other.poller.stop()


async def _has(rows: object, href: str) -> bool:
    return href in await rows  # type: ignore[misc]


async def test_a_notified_control_reaches_the_site_before_the_poll_rate(tmp_path: Path) -> None:
    took = await _notified_control(tmp_path, served_by_the_poller=True)
    print(f"\nenvoy admin change -> stored envelope (notification, woken poller): {took:.1f} s")
    # envoy's notification worker runs every few seconds; the poll (900 s) and the poller's
    # own round (30 s) would both be later.
    assert took < 25


async def test_a_notification_served_by_another_node_reaches_the_polling_node(
    tmp_path: Path,
) -> None:
    took = await _notified_control(tmp_path, served_by_the_poller=False)
    print(f"\nenvoy admin change -> stored envelope (notification, other node): {took:.1f} s")
    assert took < 25
