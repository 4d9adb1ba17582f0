"""Issue 18, what the background round does beyond stored changes: a station taken out of its
site by another process (`csms site update --stations` in its own process, another node's
repository write) gets its envelope profile cleared by the node holding it, once; an envelope
starting or ending by its own time (nothing stored) calls the change listeners once, on one
node. On SQLite and, with CSMS_TEST_POSTGRES_URL, PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.cli import main as cli_main
from csms.domain.envelopes import OperatingEnvelope
from csms.domain.sites import Site
from csms.persistence.repositories import sites as srepo
from csms.services.envelopes import EnvelopeService
from tests.integration.test_envelope_enforcement import put_envelopes, until_enforced
from tests.integration.test_envelope_listeners import KINDS, Accepting, Calls, csms, store_csip
from tests.support.api_harness import STATION_PASSWORD
from tests.support.api_station import connected_station
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.v2g_harness import iso
from tests.support.v2g_nodes import node_databases

V1 = "/api/v1"
T0 = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


def clears(station: Any) -> int:
    return sum(1 for r in station.received if r.action == "ClearChargingProfile")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_station_taken_out_of_its_site_elsewhere_is_cleared_once_by_the_round(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with csms(kind, tmp_path, command_timeout_s=5.0) as api:
        assert api.ocpp_url is not None
        envelopes = api.services.envelopes
        await envelopes.close()  # the rounds are run by hand below
        for station_id in ("CS1", "CS2", "CS3"):
            await api.add_station(station_id)
        site = {"id": "home-1", "name": "Home", "station_ids": ["CS1", "CS2"]}
        assert (await api.client.post(f"{V1}/sites", json=site)).status_code == 201
        async with (
            connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as cs1,
            connected_station(api.ocpp_url, "CS2", STATION_PASSWORD) as cs2,
            connected_station(api.ocpp_url, "CS3", STATION_PASSWORD) as cs3,
        ):
            now = datetime.now(UTC)
            await put_envelopes(api, [{"start": iso(now), "export_limit_w": 3000}])
            await until_enforced(api)
            assert await envelopes.release_unsited() == []  # both in their site
            assert (clears(cs1), clears(cs2), clears(cs3)) == (0, 0, 0)

            # `csms site update` in its own process (a thread: its own loop and engine), which
            # holds no station and sends nothing: CS1 leaves the site.
            monkeypatch.setenv("CSMS_PASSWORD_KEY_FILE", str(api.settings.password_key_file))
            update = ["site", "update", "home-1", "--database-url", api.settings.database_url]
            assert await asyncio.to_thread(cli_main, [*update, "--stations", "CS2"]) == 0
            assert clears(cs1) == 0
            assert await envelopes.release_unsited() == ["CS1"]
            await cs1.wait_for_call("ClearChargingProfile")
            assert await envelopes.release_unsited() == []  # cleared: not again
            assert (clears(cs1), clears(cs2), clears(cs3)) == (1, 0, 0)  # CS3 never held one

            # Another node deletes the site through the repository: CS2 too, once.
            await api.services.db.write(lambda c: srepo.delete_site(c, "home-1"))
            assert await envelopes.release_unsited() == ["CS2"]
            await cs2.wait_for_call("ClearChargingProfile")
            assert await envelopes.release_unsited() == []
            assert (clears(cs1), clears(cs2), clears(cs3)) == (1, 1, 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_station_out_of_its_site_on_another_node_is_left_to_that_node(
    kind: str, tmp_path: Path
) -> None:
    """A station this node does not hold (not connected here) gets nothing from it."""
    async with csms(kind, tmp_path, command_timeout_s=5.0) as api:
        assert api.ocpp_url is not None
        envelopes = api.services.envelopes
        await envelopes.close()
        await api.add_station("CS1")
        site = {"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
        assert (await api.client.post(f"{V1}/sites", json=site)).status_code == 201
        async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD):
            await put_envelopes(api, [{"start": iso(datetime.now(UTC)), "export_limit_w": 3000}])
            await until_enforced(api)
        for _ in range(100):  # until this node no longer holds its websocket
            if not api.services.router.is_local("CS1"):
                break
            await asyncio.sleep(0.02)
        await api.services.db.write(lambda c: srepo.delete_site(c, "home-1"))
        assert await envelopes.release_unsited() == []
        async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as cs1:
            assert await envelopes.release_unsited() == ["CS1"]  # back here: cleared now
            await cs1.wait_for_call("ClearChargingProfile")
            assert await envelopes.release_unsited() == []


def ending(site_id: str, export_w: float, start: datetime, end: datetime) -> OperatingEnvelope:
    return OperatingEnvelope(
        site_id, "csip-aus", "mrid-1", False, start, end, start - timedelta(minutes=5),
        export_limit_w=export_w,
    )  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
async def test_an_envelope_ending_or_starting_by_its_own_time_is_announced_once_on_one_node(
    kind: str, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'nodes.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database(postgres_url_or_skip()))
        dbs = await stack.enter_async_context(node_databases(url, 2))
        await dbs[0].write(lambda c: srepo.insert_site(c, Site("home-1", "Home"), T0))
        now = [T0]
        nodes = [EnvelopeService(db, Accepting(), clock=lambda: now[0]) for db in dbs]
        listeners = [Calls(), Calls()]
        for node, listener in zip(nodes, listeners, strict=True):
            node.add_listener(listener)

        def calls() -> int:
            return sum(len(listener.calls) for listener in listeners)

        async def rounds() -> list[list[str]]:
            return list(await asyncio.gather(*(n.announce_stored_changes() for n in nodes)))

        # In force from T0 to T0 + 1 h, the next one from T0 + 2 h to T0 + 3 h.
        first = ending("home-1", 1000.0, T0, T0 + timedelta(hours=1))
        second = ending("home-1", 2000.0, T0 + timedelta(hours=2), T0 + timedelta(hours=3))
        await store_csip(dbs[0], "home-1", [first, second])
        await rounds()
        assert calls() == 1  # the stored change
        now[0] = T0 + timedelta(minutes=59, seconds=59)  # before the end
        assert await rounds() == [[], []] and calls() == 1
        now[0] = T0 + timedelta(hours=1)  # ended: nothing in force
        assert sorted(await rounds()) == [[], ["home-1"]] and calls() == 2
        now[0] = T0 + timedelta(hours=1, minutes=30)
        assert await rounds() == [[], []] and calls() == 2
        now[0] = T0 + timedelta(hours=2, seconds=1)  # the second starts
        assert sorted(await rounds()) == [[], ["home-1"]] and calls() == 3
        assert await rounds() == [[], []] and calls() == 3
        # Each node runs its own round at its own moment: still once.
        now[0] = T0 + timedelta(hours=3)  # the second ends
        assert await nodes[1].announce_stored_changes() == ["home-1"]
        assert await nodes[0].announce_stored_changes() == []
        assert calls() == 4
