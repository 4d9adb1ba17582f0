"""Issue 18: the envelope change listeners (the V2G re-plan, the frequency-response re-send)
are called once per change, whichever process stored it. A change stored by another process
(`csms site` through its own code path, another node's CSIP-AUS client writing the repository)
is noticed by the running CSMS's refresh round; across nodes one node calls them per change;
a household-meter re-send re-plans the V2G vehicles of the site within the new bounds, at most
once per minimum re-send interval. On SQLite and, with CSMS_TEST_POSTGRES_URL, PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call as call201

from csms.cli import main as cli_main
from csms.domain.envelopes import OperatingEnvelope
from csms.domain.site_meter import reading_from
from csms.domain.sites import Site
from csms.persistence.repositories import sites as srepo
from csms.services.envelopes import EnvelopeService
from csms.services.site_meters import SiteMeterService, SiteMeterSettings
from tests.integration.test_envelope_enforcement import periods, report_rating
from tests.support.api_harness import ApiHarness
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.v2g_harness import LEAF, iso, meter_value, transaction_event, v2g_api
from tests.support.v2g_harness import v2g_station as v2g_station_of
from tests.support.v2g_nodes import node_databases

V1 = "/api/v1"
KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
T0 = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


class Calls:
    """A change listener that records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    async def __call__(self, site_id: str, station_ids: Sequence[str]) -> None:
        self.calls.append((site_id, tuple(station_ids)))


class Accepting:
    """A command sender every station accepts from (no station is in these sites anyway)."""

    async def send(self, station_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}


def csip_envelope(site_id: str, export_w: float, at: datetime) -> OperatingEnvelope:
    return OperatingEnvelope(
        site_id, "csip-aus", "mrid-1", False, at - timedelta(minutes=1), None, at,
        export_limit_w=export_w,
    )  # fmt: skip


async def store_csip(api_or_db: Any, site_id: str, envelopes: list[OperatingEnvelope]) -> None:
    """What another node's CSIP-AUS client does: the repository, not this node's service."""
    await api_or_db.write(lambda c: srepo.replace_envelopes(c, site_id, "csip-aus", envelopes))


@contextlib.asynccontextmanager
async def csms(kind: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[ApiHarness]:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "postgres":
            url = await stack.enter_async_context(fresh_postgres_database(postgres_url_or_skip()))
            overrides["database_url"] = url
        yield await stack.enter_async_context(v2g_api(tmp_path, **overrides))


@pytest.mark.parametrize("kind", KINDS)
async def test_a_change_stored_by_another_process_calls_the_listeners_once(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with csms(kind, tmp_path) as api:
        envelopes = api.services.envelopes
        listener = Calls()
        envelopes.add_listener(listener)
        for station_id in ("CS1", "CS2"):
            await api.add_station(station_id)
        site = {"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
        assert (await api.client.post(f"{V1}/sites", json=site)).status_code == 201
        assert listener.calls == [("home-1", ("CS1",))]  # the API path, at once
        assert await envelopes.announce_stored_changes() == []  # announced already
        assert len(listener.calls) == 1

        # Another node's CSIP-AUS client stores an envelope: the round notices it, once.
        await store_csip(api.services.db, "home-1", [csip_envelope("home-1", 1500.0, T0)])
        assert await envelopes.announce_stored_changes() == ["home-1"]
        assert await envelopes.announce_stored_changes() == []
        assert listener.calls[1:] == [("home-1", ("CS1",))]

        # `csms site update` in its own process (here a thread: its own event loop and
        # database engine), with the CSMS running: a second station changes every share.
        monkeypatch.setenv("CSMS_PASSWORD_KEY_FILE", str(api.settings.password_key_file))
        url = api.settings.database_url
        update = ["site", "update", "home-1", "--database-url", url]
        assert await asyncio.to_thread(cli_main, [*update, "--stations", "CS1,CS2"]) == 0
        assert await envelopes.announce_stored_changes() == ["home-1"]
        assert listener.calls[2:] == [("home-1", ("CS1", "CS2"))]
        # A change that leaves the envelopes and the stations as they were: not called.
        assert await asyncio.to_thread(cli_main, [*update, "--name", "Home two"]) == 0
        assert await envelopes.announce_stored_changes() == []
        assert len(listener.calls) == 3

        # The operator API setting what is stored already: no change, no call; then a real one.
        await envelopes.replace_operator_envelopes("home-1", [])
        assert len(listener.calls) == 3
        await store_csip(api.services.db, "home-1", [])
        assert await envelopes.announce_stored_changes() == ["home-1"]
        assert len(listener.calls) == 4


@pytest.mark.parametrize("kind", KINDS)
async def test_the_running_refresh_loop_calls_the_listeners_once_per_stored_change(
    kind: str, tmp_path: Path
) -> None:
    async with csms(kind, tmp_path) as api:
        envelopes = api.services.envelopes
        await api.add_station("CS1")
        site = {"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
        assert (await api.client.post(f"{V1}/sites", json=site)).status_code == 201
        listener = Calls()
        envelopes.add_listener(listener)
        await envelopes.close()  # the CSMS's own loop, every 50 ms instead of 30 s
        envelopes.check_interval_s = 0.05
        envelopes.start()
        await asyncio.sleep(0.3)
        assert listener.calls == []  # nothing changed: several rounds, no call

        await store_csip(api.services.db, "home-1", [csip_envelope("home-1", 2000.0, T0)])
        for _ in range(200):
            if listener.calls:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # several more rounds
        assert listener.calls == [("home-1", ("CS1",))]


@pytest.mark.parametrize("kind", KINDS)
async def test_across_nodes_one_node_calls_the_listeners_per_change(
    kind: str, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'nodes.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database(postgres_url_or_skip()))
        dbs = await stack.enter_async_context(node_databases(url, 3))
        await dbs[0].write(lambda c: srepo.insert_site(c, Site("home-1", "Home"), T0))
        nodes = [EnvelopeService(db, Accepting(), clock=lambda: T0) for db in dbs]
        listeners = [Calls() for _ in nodes]
        for node, listener in zip(nodes, listeners, strict=True):
            node.add_listener(listener)

        def total() -> int:
            return sum(len(listener.calls) for listener in listeners)

        # The site is new to every node: its first state is announced once.
        await asyncio.gather(*(node.announce_stored_changes() for node in nodes))
        assert total() == 1
        for k, export_w in enumerate((1000.0, 2000.0, 3000.0)):
            await store_csip(dbs[k], "home-1", [csip_envelope("home-1", export_w, T0)])
            await asyncio.gather(*(node.announce_stored_changes() for node in nodes))
            assert total() == 2 + k
        # An API change on one node while the others' rounds run: still once.
        await dbs[0].write(
            lambda c: srepo.replace_envelopes(
                c, "home-1", "operator",
                [OperatingEnvelope("home-1", "operator", None, False, T0, None, T0,
                                   import_limit_w=500.0)],
            )
        )  # fmt: skip
        await asyncio.gather(
            nodes[0].envelopes_changed("home-1"),
            *(node.announce_stored_changes() for node in nodes[1:]),
        )
        assert total() == 5
        await asyncio.gather(*(node.announce_stored_changes() for node in nodes))
        assert total() == 5  # no change: nobody


def tx_profiles(station: Any) -> list[dict[str, Any]]:
    return [
        r.payload
        for r in station.received
        if r.action == "SetChargingProfile"
        and r.payload["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
    ]


async def _prices(api: ApiHarness, start: datetime) -> None:
    intervals = [
        {
            "start": iso(start + timedelta(minutes=30 * k)),
            "interval_s": 1800,
            "import_c_kwh": 10.0 if k < 4 else 60.0 if k < 8 else 15.0,
            "export_c_kwh": (10.0 if k < 4 else 60.0 if k < 8 else 15.0) * 0.9,
        }
        for k in range(16)
    ]
    response = await api.client.put(f"{V1}/prices", json={"intervals": intervals})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", KINDS)
async def test_a_household_meter_resend_replans_the_v2g_vehicle_within_the_new_bounds(
    kind: str, tmp_path: Path
) -> None:
    async with csms(kind, tmp_path, command_timeout_s=5.0) as api:
        now = datetime.now(UTC)
        await _prices(api, now.replace(minute=0, second=0, microsecond=0))
        async with v2g_station_of(api, "CS201") as station:
            await report_rating(station, call201, 7400.0)
            site = {"id": "home-1", "name": "Home", "station_ids": ["CS201"]}
            assert (await api.client.post(f"{V1}/sites", json=site)).status_code == 201
            vehicle = dict(LEAF, id="leaf", station_id="CS201", evse_id=1)
            assert (await api.client.post(f"{V1}/vehicles", json=vehicle)).status_code == 201
            # The charger's own power at the reading is known (0 W): the base is exact.
            meter = [meter_value(now, soc_pct=70.0, import_wh=0.0, export_wh=0.0, power_w=0.0)]
            await transaction_event(station, "Started", "tx-1", 0, now, meter=meter)
            envelope = {"start": iso(now - timedelta(minutes=1)), "export_limit_w": 5000}
            answer = await api.client.put(
                f"{V1}/sites/home-1/envelopes/operator", json={"envelopes": [envelope]}
            )
            assert answer.status_code == 200, answer.text
            before = [p["limit"] for p in periods(tx_profiles(station)[-1])]
            assert min(before) < -4000.0  # discharging into the peak up to the 5 kW limit
            sent_before = len(tx_profiles(station))

            # Solar exports 3 kW: the export limit leaves the car about 2 kW.
            reading = {"timestamp": iso(datetime.now(UTC)), "grid_import_w": -3000}
            posted = await api.client.post(f"{V1}/sites/home-1/meter", json=reading)
            assert posted.status_code == 200, posted.text
            view = (await api.client.get(f"{V1}/sites/home-1/envelope")).json()
            bound_w = view["stations"][0]["max_discharge_w"]
            assert bound_w < 2500.0
            after = tx_profiles(station)
            assert len(after) == sent_before + 1  # re-planned once, with the re-send
            planned = [p["limit"] for p in periods(after[-1])]
            assert min(planned) < 0  # still discharging ...
            assert min(planned) >= -bound_w - 0.5  # ... within the new bound (W, rounded)
            plan = (await api.client.get(f"{V1}/stations/CS201/v2g/plan")).json()["plan"]
            assert min(plan["power_kw"]) >= -bound_w / 1000.0 - 1e-6

            # Another material change within the minimum interval (15 s): no re-plan yet.
            reading = {"timestamp": iso(datetime.now(UTC)), "grid_import_w": -1000}
            posted = await api.client.post(f"{V1}/sites/home-1/meter", json=reading)
            assert posted.status_code == 200, posted.text
            assert len(tx_profiles(station)) == sent_before + 1


@pytest.mark.parametrize("kind", KINDS)
async def test_meter_driven_replans_keep_the_once_per_15_s_per_site_limit_across_nodes(
    kind: str, tmp_path: Path
) -> None:
    """Two nodes take the readings of one site on a clock the test moves: each material base
    change re-plans once (one node), a change within 15 s of the last is held back and
    re-planned by the check round once the 15 s have passed."""
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'meters.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database(postgres_url_or_skip()))
        dbs = await stack.enter_async_context(node_databases(url, 2))
        await dbs[0].write(lambda c: srepo.insert_site(c, Site("home-1", "Home"), T0))
        now = [T0]
        listeners = [Calls(), Calls()]
        meters = []
        for db, listener in zip(dbs, listeners, strict=True):
            envelopes = EnvelopeService(db, Accepting(), clock=lambda: now[0])
            envelopes.add_listener(listener)
            settings = SiteMeterSettings(site_meter_min_resend_s=15, site_meter_check_s=0)
            meter = SiteMeterService(db, envelopes, clock=lambda: now[0], settings=settings)
            envelopes.site_base = meter.site_base
            meters.append(meter)

        def replans() -> int:
            return sum(len(listener.calls) for listener in listeners)

        async def push(node: int, watts: float) -> None:
            reading = reading_from(
                "home-1", measured_at=now[0], received_at=now[0], source="api",
                grid_import_w=watts,
            )  # fmt: skip
            await meters[node].record(reading)

        await push(0, 2000.0)  # off the chargers-alone base: re-planned
        assert listeners[0].calls == [("home-1", ())] and replans() == 1
        now[0] += timedelta(seconds=20)
        await push(1, 2100.0)  # within the hysteresis: nothing
        assert replans() == 1
        await push(1, 4000.0)  # material, 20 s on, through the other node
        assert listeners[1].calls == [("home-1", ())] and replans() == 2
        now[0] += timedelta(seconds=5)
        await push(0, 500.0)  # material, 5 s after the last: held back
        assert replans() == 2
        assert await asyncio.gather(*(m.check_all() for m in meters)) == [[], []]
        now[0] += timedelta(seconds=10)
        done = await asyncio.gather(*(m.check_all() for m in meters))
        assert sorted(done) == [[], ["home-1"]]  # one node, once the 15 s have passed
        assert replans() == 3
        assert await asyncio.gather(*(m.check_all() for m in meters)) == [[], []]
        assert replans() == 3
