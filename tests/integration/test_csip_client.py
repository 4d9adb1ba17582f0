"""The CSMS's CSIP-AUS aggregator client against the real envoy 1.5.0 (tests/support/
csip_server.py): in-band registration with a derived LFDI/SFDI, the registration PIN checked,
the NMI as ConnectionPoint, DERCapability/Settings/Status as envoy stores them, a DNSP control
made with EnvoyAdmin becoming the site's stored envelope (callback fired, Responses posted), a
restart that resumes without registering again, and the polling lease between two nodes.

Needs CSMS_TEST_POSTGRES_URL (envoy's database; the CSMS's own is SQLite here); skips without
it, fails when the envoy venv cannot be made.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

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

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.timeout(600),
    pytest.mark.asyncio(loop_scope="module"),
]

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
    site_id: str = "home-1"
    source: FakeSource = field(default_factory=FakeSource)
    changed: list[str] = field(default_factory=list)

    def client(
        self,
        bounds: PollBounds = EVERY_TICK,
        *,
        clock: Callable[[], dt.datetime] = now,
        seen: list[str] | None = None,
    ) -> CsipSiteClient:
        async def record(request: httpx.Request) -> None:
            if seen is not None:
                seen.append(f"{request.method} {request.url.path}")

        transport = CsipTransport(
            TransportConfig(
                self.envoy.base_url + "/dcap",
                self.envoy.cert_pem.encode(),
                cert_header_mode=True,
            ),
            client=httpx.AsyncClient(
                base_url=self.envoy.base_url, timeout=20, event_hooks={"request": [record]}
            ),
        )

        async def on_changed(site_id: str) -> None:
            self.changed.append(site_id)

        return CsipSiteClient(
            transport,
            self.db,
            self.source,
            on_envelopes_changed=on_changed,
            bounds=bounds,
            clock=clock,
        )

    async def site(self) -> Site:
        async with self.db.read() as conn:
            site = await sites_repo.get_site(conn, self.site_id)
        assert site is not None
        return site

    async def put_site(self, site: Site) -> None:
        async def op(conn: object) -> None:
            if not await sites_repo.update_site(conn, site, now()):  # type: ignore[arg-type]
                await sites_repo.insert_site(conn, site, now())  # type: ignore[arg-type]

        await self.db.write(op)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.envoy.base_url, headers=self.envoy.headers())


@dataclass
class Shared:
    envoy: EnvoyServer
    db: Database
    count: int = 0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    venv, url = venv_and_postgres_or_skip()
    tmp = tmp_path_factory.mktemp("csip-client")
    async with (
        running_envoy(venv, url, tmp) as envoy,
        node_databases(f"sqlite+aiosqlite:///{tmp / 'csms.db'}", 1) as dbs,
    ):
        yield Shared(envoy, dbs[0])


@pytest_asyncio.fixture(loop_scope="module")
async def rig(shared: Shared) -> Rig:
    """One envoy for the module; each test its own site (a new EndDevice)."""
    shared.count += 1
    rig = Rig(shared.envoy, shared.db, site_id=f"home-{shared.count}")
    await rig.put_site(Site(id=rig.site_id, name="Home", nmi=NMI, csip_enabled=True))
    return rig


async def envoy_site(rig: Rig) -> dict[str, object]:
    site = await rig.site()
    assert site.lfdi is not None
    async with EnvoyAdmin(rig.envoy) as admin:
        return next(s for s in await admin.sites() if str(s["lfdi"]).upper() == site.lfdi)


async def test_registration_nmi_and_der_reports_reach_envoy(rig: Rig) -> None:
    client = rig.client()
    state = await client.tick(await rig.site())
    assert state.registration == "registered", state.last_error
    assert state.last_error is None

    # The site got a stable identity: 32 hex digits + the PEN (0) as 8 decimal digits.
    site = await rig.site()
    assert site.lfdi is not None and site.lfdi.endswith("00000000") and site.lfdi.isupper()
    assert site.sfdi == sfdi_of_lfdi(site.lfdi)
    registered = await envoy_site(rig)
    assert str(registered["lfdi"]).upper() == site.lfdi and int(registered["sfdi"]) == site.sfdi
    assert registered["nmi"] == NMI
    assert state.edev_href == f"/edev/{registered['site_id']}"
    view = await csip_view(rig.db, rig.site_id)  # GET /sites/{id}/csip
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
    view = await csip_view(rig.db, rig.site_id)
    assert view.registration == "pin_mismatch" and "PIN" in (view.last_error or "")
    assert state.last_error is not None and "PIN" in state.last_error
    async with rig.db.read() as conn:
        stored = await csip_repo.get_state(conn, rig.site_id)
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
    assert rig.changed == [rig.site_id]
    async with rig.db.read() as conn:
        envelopes = await sites_repo.site_envelopes(conn, rig.site_id, source="csip-aus")
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
    assert rig.changed == [rig.site_id]

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
        assert [str(s["lfdi"]).upper() for s in await admin.sites()].count(site.lfdi) == 1
    async with rig.http() as http:
        listing = await http.get(
            f"{state.edev_href}/rsps/site_control/rsp", params={"s": 0, "l": 10}
        )
    assert listing.text.count("<status>1</status>") == 1  # not answered twice


async def test_one_node_polls_a_site_and_another_takes_over(rig: Rig) -> None:
    clock = [now()]
    first = CsipPoller(rig.client(), rig.db, "node-a", clock=lambda: clock[0], lease_s=30)
    second = CsipPoller(rig.client(), rig.db, "node-b", clock=lambda: clock[0], lease_s=30)
    assert rig.site_id in await first.run_once()
    assert rig.site_id not in await second.run_once()
    clock[0] += dt.timedelta(seconds=31)  # node-a stopped renewing: its lease ran out
    assert rig.site_id in await second.run_once()
    assert rig.site_id not in await first.run_once()
    await second.stop()  # released at once
    assert rig.site_id in await first.run_once()
    view = await csip_view(rig.db, rig.site_id)
    assert view.polled_by == "node-a" and view.registration == "registered"
    await first.stop()


async def test_each_list_is_polled_at_the_servers_rate(rig: Rig) -> None:
    async with EnvoyAdmin(rig.envoy) as admin:
        await admin.set_runtime_config(
            dcap_pollrate_seconds=300,
            edevl_pollrate_seconds=120,
            fsal_pollrate_seconds=120,
            derpl_pollrate_seconds=60,
            derl_pollrate_seconds=120,
        )
    clock = [now()]
    seen: list[str] = []
    client = rig.client(PollBounds(min_s=10, max_s=3600), clock=lambda: clock[0], seen=seen)
    state = await client.tick(await rig.site())
    assert state.registration == "registered", state.last_error
    assert state.poll_rates["dcap"] == 300 and state.poll_rates["derp"] == 60
    assert "GET /dcap" in seen and "GET /tm" in seen

    seen.clear()
    clock[0] += dt.timedelta(seconds=30)
    await client.tick(await rig.site())
    assert seen == []  # nothing due yet, the live state unchanged

    clock[0] += dt.timedelta(seconds=31)  # 61 s: the DERProgram lists (60 s) only
    await client.tick(await rig.site())
    assert seen and all("/derp" in r for r in seen), seen
    assert "GET /dcap" not in seen and not any(r.startswith("GET /edev?") for r in seen)

    seen.clear()
    clock[0] += dt.timedelta(seconds=60)  # 121 s: the EndDevice, DER and FSA lists as well
    await client.tick(await rig.site())
    assert "GET /dcap" not in seen
    assert "GET /edev" in seen and any(r.endswith("/fsa") for r in seen), seen
    async with EnvoyAdmin(rig.envoy) as admin:  # the next tests keep envoy's defaults
        await admin.set_runtime_config(
            dcap_pollrate_seconds=900,
            edevl_pollrate_seconds=900,
            fsal_pollrate_seconds=900,
            derpl_pollrate_seconds=900,
            derl_pollrate_seconds=900,
        )


async def test_the_csms_runs_the_client_when_configured(shared: Shared, tmp_path: Path) -> None:
    """csms.app.start with csip_enabled: the poller registers a csip-enabled site and
    GET /api/v1/sites/{id}/csip shows it; stopping releases the site's lease."""
    from csms.app import start
    from tests.support.api_harness import harness_settings

    cert = tmp_path / "aggregator.pem"
    cert.write_text(shared.envoy.cert_pem)
    settings = harness_settings(
        tmp_path,
        csip_enabled=True,
        csip_server_url=shared.envoy.base_url + "/dcap",
        csip_cert_file=cert,
        csip_cert_header_mode=True,
        csip_tick_s=0.2,
        node_id="node-app",
    )
    running = await start(settings)
    try:
        site = Site(id="app-home", name="App home", nmi=NMI, csip_enabled=True)
        await running.services.db.write(lambda conn: sites_repo.insert_site(conn, site, now()))
        token = (await running.services.api_tokens.create("csip-test")).plaintext
        async with httpx.AsyncClient(
            base_url=running.api_url, headers={"Authorization": f"Bearer {token}"}
        ) as api:
            view: dict[str, object] = {}
            for _ in range(150):
                answer = await api.get("/api/v1/sites/app-home/csip")
                assert answer.status_code == 200, answer.text
                view = answer.json()
                if view["registration"] == "registered":
                    break
                await asyncio.sleep(0.2)
            assert view["registration"] == "registered", view
            assert view["polled_by"] == "node-app" and view["end_device_href"]
            assert (await api.get("/api/v1/sites/nowhere/csip")).status_code == 404
            assert (
                await api.get("/api/v1/sites/app-home/csip", headers={"Authorization": ""})
            ).status_code == 401
    finally:
        await running.stop()
    reopened = Database(settings.database_url)
    try:
        async with reopened.read() as conn:
            state = await csip_repo.get_state(conn, "app-home")
    finally:
        await reopened.close()
    assert state is not None and state.lease_node is None  # released on stop
