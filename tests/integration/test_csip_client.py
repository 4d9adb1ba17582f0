"""The CSMS's CSIP-AUS aggregator client against the real envoy 1.5.0 (tests/support/
csip_server.py): in-band registration with a derived LFDI/SFDI, the registration PIN checked,
the NMI as ConnectionPoint, DERCapability/Settings/Status as envoy stores them, a DNSP control
made with EnvoyAdmin becoming the site's stored envelope (callback fired, Responses posted), a
restart that resumes without registering again, and the polling lease between two nodes.

Needs CSMS_TEST_POSTGRES_URL (envoy's database; the CSMS's own is SQLite here); skips without
it, fails when the envoy venv cannot be made.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from csms.domain.envelopes import envelope_at
from csms.domain.sites import Site
from csms.integrations.csip.client import CsipSiteClient, PollBounds
from csms.integrations.csip.convert import SiteLiveState, SiteRatings
from csms.integrations.csip.identity import sfdi_of_lfdi
from csms.integrations.csip.poller import CsipPoller
from csms.integrations.csip.routes import csip_view
from csms.integrations.csip.transport import CsipTransport, TransportConfig
from csms.persistence.database import Database
from csms.persistence.repositories import csip as csip_repo
from csms.persistence.repositories import sites as sites_repo
from tests.support.csip_admin import Envelope, EnvoyAdmin
from tests.support.csip_server import EnvoyServer, running_envoy, venv_and_postgres_or_skip
from tests.support.v2g_nodes import node_databases

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

NMI = "4123456789"
EVERY_TICK = PollBounds(min_s=0, max_s=0, retry_s=0)  # every stage on every tick


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class FakeSource:
    live: SiteLiveState = field(default_factory=lambda: SiteLiveState(True, True, True))

    async def ratings(self, site: Site) -> SiteRatings:
        return SiteRatings(max_charge_w=7200, max_discharge_w=5000)

    async def live_state(self, site: Site) -> SiteLiveState:
        return self.live


@dataclass
class Rig:
    envoy: EnvoyServer
    db: Database
    source: FakeSource = field(default_factory=FakeSource)
    changed: list[str] = field(default_factory=list)

    def client(self, bounds: PollBounds = EVERY_TICK) -> CsipSiteClient:
        transport = CsipTransport(
            TransportConfig(
                self.envoy.base_url + "/dcap",
                self.envoy.cert_pem.encode(),
                cert_header_mode=True,
            )
        )

        async def on_changed(site_id: str) -> None:
            self.changed.append(site_id)

        return CsipSiteClient(
            transport,
            self.db,
            self.source,
            on_envelopes_changed=on_changed,
            clock=now,
            bounds=bounds,
        )

    async def site(self, site_id: str = "home-1") -> Site:
        async with self.db.read() as conn:
            site = await sites_repo.get_site(conn, site_id)
        assert site is not None
        return site

    async def put_site(self, site: Site) -> None:
        async def op(conn: object) -> None:
            if not await sites_repo.update_site(conn, site, now()):  # type: ignore[arg-type]
                await sites_repo.insert_site(conn, site, now())  # type: ignore[arg-type]

        await self.db.write(op)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.envoy.base_url, headers=self.envoy.headers())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    venv, url = venv_and_postgres_or_skip()
    async with (
        running_envoy(venv, url, tmp_path) as envoy,
        node_databases(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}", 1) as dbs,
    ):
        rig = Rig(envoy, dbs[0])
        await rig.put_site(Site(id="home-1", name="Home 1", nmi=NMI, csip_enabled=True))
        yield rig


async def test_registration_nmi_and_der_reports_reach_envoy(rig: Rig) -> None:
    client = rig.client()
    state = await client.tick(await rig.site())
    assert state.registration == "registered", state.last_error
    assert state.last_error is None

    # The site got a stable identity: 32 hex digits + the PEN (0) as 8 decimal digits.
    site = await rig.site()
    assert site.lfdi is not None and site.lfdi.endswith("00000000") and site.lfdi.isupper()
    assert site.sfdi == sfdi_of_lfdi(site.lfdi)
    async with EnvoyAdmin(rig.envoy) as admin:
        (registered,) = await admin.sites()
    assert registered["lfdi"].upper() == site.lfdi and int(registered["sfdi"]) == site.sfdi
    assert registered["nmi"] == NMI
    assert state.edev_href == f"/edev/{registered['site_id']}"
    view = await csip_view(rig.db, "home-1")  # GET /sites/home-1/csip
    assert view.registration == "registered" and view.end_device_href == state.edev_href
    assert view.lfdi == site.lfdi and view.last_poll_at is not None and view.last_error is None

    async with rig.http() as http:
        der = f"{state.edev_href}/der/1"
        cap = (await http.get(f"{der}/dercap")).text
        assert "<rtgMaxW><multiplier>0</multiplier><value>7200</value>" in cap
        assert "doeModesSupported>0F<" in cap and "<type>81</type>" in cap
        settings = (await http.get(f"{der}/derg")).text
        assert "<setMaxW><multiplier>0</multiplier><value>7200</value>" in settings
        assert "doeModesEnabled>0F<" in settings
        status = (await http.get(f"{der}/ders")).text
        assert "<genConnectStatus><dateTime>" in status and "<value>07</value>" in status

        # A change of the live state is PUT on the next tick.
        rig.source.live = SiteLiveState(connected=False, operating=False)
        await client.tick(site)
        status = (await http.get(f"{der}/ders")).text
        assert "<genConnectStatus>" in status and "<value>00</value>" in status


async def test_registration_pin_mismatch_stops_the_site(rig: Rig) -> None:
    client = rig.client()
    state = await client.tick(await rig.site())
    assert state.edev_href is not None
    async with rig.http() as http:
        rg = (await http.get(f"{state.edev_href}/rg")).text
    pin = int(rg.split("<pIN>")[1].split("</pIN>")[0])

    site = await rig.site()
    await rig.put_site(Site(**{**site.__dict__, "registration_pin": (pin + 1) % 1_000_000}))
    state = await client.tick(await rig.site())
    assert state.registration == "pin_mismatch"
    view = await csip_view(rig.db, "home-1")
    assert view.registration == "pin_mismatch" and "PIN" in (view.last_error or "")
    assert state.last_error is not None and "PIN" in state.last_error
    async with rig.db.read() as conn:
        stored = await csip_repo.get_state(conn, "home-1")
    assert stored is not None and stored.registration == "pin_mismatch"

    # The DNSP's PIN entered: served again on the next edev poll.
    await rig.put_site(Site(**{**site.__dict__, "registration_pin": pin}))
    stored.hrefs.pop("due:edev")
    await rig.db.write(lambda conn: csip_repo.save_state(conn, stored, now()))
    state = await client.tick(await rig.site())
    assert state.registration == "registered" and state.last_error is None


async def test_a_dnsp_control_becomes_the_site_envelope(rig: Rig) -> None:
    client = rig.client()
    state = await client.tick(await rig.site())
    site = await rig.site()
    assert site.lfdi is not None
    async with EnvoyAdmin(rig.envoy) as admin:
        envoy_site = await admin.site_id_of(site.lfdi)
        program = await admin.create_program("doe", primacy=1)
        start = now().replace(microsecond=0) - dt.timedelta(seconds=30)
        await admin.add_envelopes(
            program, envoy_site, [Envelope(start, 600, export_limit_w=Decimal(1500))]
        )
        await admin.set_default(program, export_limit_w=Decimal(800), ramp_rate=Decimal(27))
        await admin.set_runtime_config(site_control_pow10_encoding=-1)  # values x10, mult -1

    rig.changed.clear()
    state = await client.tick(site)
    assert rig.changed == ["home-1"]
    async with rig.db.read() as conn:
        envelopes = await sites_repo.site_envelopes(conn, "home-1", source="csip-aus")
    # In force now: the control's export limit, the default's ramp rate carried into it; from
    # the control's end, the default's export limit.
    in_force = envelope_at(envelopes, now())
    assert in_force is not None and in_force.export_limit_w == pytest.approx(1500)
    assert in_force.ramp_rate_pct_per_s == pytest.approx(0.27)
    control = next(e for e in envelopes if e.export_limit_w == pytest.approx(1500))
    assert control.start <= now() and control.end == start + dt.timedelta(seconds=600)
    after = envelope_at(envelopes, start + dt.timedelta(seconds=601))
    assert after is not None and after.export_limit_w == pytest.approx(800)
    assert state.active_controls == [control.control_id]

    # Nothing new: no callback.
    await client.tick(site)
    assert rig.changed == ["home-1"]

    # The control's Responses went to its replyTo: received (1) and started (2).
    async with rig.http() as http:
        listing = await http.get(
            f"{state.edev_href}/rsps/site_control/rsp", params={"s": 0, "l": 10}
        )
    assert listing.status_code == 200, listing.text
    assert "<status>1</status>" in listing.text and "<status>2</status>" in listing.text

    # A restart (new client, nothing in memory) resumes: same EndDevice, nothing re-registered.
    restarted = rig.client()
    again = await restarted.tick(await rig.site())
    assert again.edev_href == state.edev_href and again.registration == "registered"
    async with EnvoyAdmin(rig.envoy) as admin:
        assert len(await admin.sites()) == 1
    async with rig.http() as http:
        listing = await http.get(
            f"{state.edev_href}/rsps/site_control/rsp", params={"s": 0, "l": 10}
        )
    assert listing.text.count("<status>1</status>") == 1  # not answered twice


async def test_one_node_polls_a_site_and_another_takes_over(rig: Rig) -> None:
    clock = [now()]
    first = CsipPoller(rig.client(), rig.db, "node-a", clock=lambda: clock[0], lease_s=30)
    second = CsipPoller(rig.client(), rig.db, "node-b", clock=lambda: clock[0], lease_s=30)
    assert await first.run_once() == ["home-1"]
    assert await second.run_once() == []
    clock[0] += dt.timedelta(seconds=31)  # node-a stopped renewing: its lease ran out
    assert await second.run_once() == ["home-1"]
    assert await first.run_once() == []
    await second.stop()  # released at once
    assert await first.run_once() == ["home-1"]
    await first.stop()
