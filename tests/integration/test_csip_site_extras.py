"""The poller's notification wiring without a CSIP server (csms/integrations/csip/site_extras.py,
poller.py), on a migrated SQLite database:

- a notification served for a site (by any node: csip_subscriptions.last_notified_at) makes the
  FSA and DERProgram stages of the polling node due at once, once per notification; other
  stages keep their schedule;
- `CsipPoller.wake` runs a round at once instead of after `tick_s`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.sites import Site
from csms.integrations.csip.poller import CsipPoller
from csms.integrations.csip.site_extras import CsipSiteExtras
from csms.persistence.database import Database
from csms.persistence.repositories import csip as csip_repo
from csms.persistence.repositories import csip_telemetry as telemetry_repo
from csms.persistence.repositories import sites as sites_repo
from csms.persistence.repositories.csip import CsipSiteState
from tests.support.v2g_nodes import node_databases

SITE = Site(id="home", name="Home", csip_enabled=True)
LATER = "2099-01-01T00:00:00+00:00"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}", 1) as dbs:
        state = CsipSiteState(
            "home",
            registration="registered",
            hrefs={f"due:{s}": LATER for s in ("dcap", "edev", "der", "fsa", "derp")},
        )

        async def op(conn: AsyncConnection) -> None:
            await sites_repo.insert_site(conn, SITE, utcnow())
            await csip_repo.save_state(conn, state, utcnow())
            record = telemetry_repo.SubscriptionRecord(
                "home", "/edev/1/derp/1/derc", "/edev/0/sub", "/edev/0/sub/1", utcnow()
            )
            await telemetry_repo.add_subscription(conn, record, "digest-1")

        await dbs[0].write(op)
        yield dbs[0]


async def due_stages(db: Database) -> set[str]:
    async with db.read() as conn:
        state = await csip_repo.get_state(conn, "home")
    assert state is not None
    return {k.removeprefix("due:") for k, v in state.hrefs.items() if k.startswith("due:")}


async def notify(db: Database) -> None:
    await db.write(lambda conn: telemetry_repo.mark_notified(conn, "digest-1", utcnow()))


async def test_a_notification_by_any_node_makes_the_control_stages_due(db: Database) -> None:
    extras = CsipSiteExtras(db, None, object(), clock=utcnow)  # type: ignore[arg-type]
    everything = {"dcap", "edev", "der", "fsa", "derp"}
    assert await extras.before_tick(SITE) is False  # first look: nothing notified
    await notify(db)
    assert await extras.before_tick(SITE) is True
    # Not scheduled = due: the program lists and the controls; the rest keeps its schedule.
    assert await due_stages(db) == everything - {"fsa", "derp"}
    assert await extras.before_tick(SITE) is False  # the same notification: once

    async def reschedule(conn: AsyncConnection) -> None:
        state = await csip_repo.get_state(conn, "home")
        assert state is not None
        state.hrefs.update({"due:fsa": LATER, "due:derp": LATER})
        await csip_repo.save_state(conn, state, utcnow())

    await db.write(reschedule)
    await asyncio.sleep(0.01)
    await notify(db)
    assert await extras.before_tick(SITE) is True
    assert await due_stages(db) == everything - {"fsa", "derp"}


async def test_without_subscriptions_notifications_are_not_looked_for(db: Database) -> None:
    extras = CsipSiteExtras(db, None, None, clock=utcnow)  # type: ignore[arg-type]
    assert await extras.before_tick(SITE) is False
    await notify(db)
    assert await extras.before_tick(SITE) is False
    assert await due_stages(db) == {"dcap", "edev", "der", "fsa", "derp"}


class CountingClient:
    """CsipSiteClient as far as the poller uses it."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.ticked = asyncio.Event()

        class Transport:
            async def aclose(self) -> None:
                return None

        self.transport = Transport()

    async def tick(self, site: Site) -> CsipSiteState:
        self.ticks.append(time.monotonic())
        self.ticked.set()
        return CsipSiteState(site.id)  # unregistered: nothing after the tick


@pytest.mark.timeout(60)
async def test_wake_runs_a_round_at_once(db: Database) -> None:
    client = CountingClient()
    extras: Any = CsipSiteExtras(db, None, None, clock=utcnow)  # type: ignore[arg-type]
    poller = CsipPoller(client, db, "node-a", clock=utcnow, tick_s=30, extras=extras)  # type: ignore[arg-type]
    poller.start()
    try:
        await asyncio.wait_for(client.ticked.wait(), 10)
        client.ticked.clear()
        await asyncio.sleep(0.3)
        assert len(client.ticks) == 1  # the next round is 30 s away
        woken = time.monotonic()
        poller.wake("home")
        await asyncio.wait_for(client.ticked.wait(), 5)  # TimeoutError: wake ran no round
        assert len(client.ticks) == 2 and client.ticks[1] - woken < 2
    finally:
        await poller.stop()


def test_the_client_refuses_a_notification_url_it_cannot_give_out(tmp_path: Path) -> None:
    from csms.integrations.csip.service import build_csip
    from csms.settings import Settings
    from tests.support.csip_server import make_identity

    cert = tmp_path / "aggregator.pem"
    cert.write_text(make_identity().cert_pem)

    def build(notify: str | None) -> Any:
        settings = Settings(
            csip_enabled=True,
            csip_server_url="http://127.0.0.1:9/dcap",
            csip_cert_file=cert,
            csip_cert_header_mode=True,
            csip_notify_base_url=notify,
        )
        return build_csip(
            settings,
            None,  # type: ignore[arg-type]
            node_id="n",
            clock=utcnow,
            connected_ids=list,
            power_w=lambda s: None,
        )

    for bad in ("ftp://csms.example.com", "https://csms.example.com/?a=1", "csms.example.com"):
        with pytest.raises(ValueError, match="notify base URL"):
            build(bad)
    poller = build("https://csms.example.com/")
    assert poller.extras.subscriptions.notify_base_url == "https://csms.example.com"
    assert build(None).extras.subscriptions is None  # polling only
