"""V2G on real `csms serve` nodes (PostgreSQL, NATS, a TCP balancer, stations through it):
with the re-planning loop on in every node, each station gets its plan once (from the node
holding it), and frequency samples posted alternately to the nodes' APIs fire once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.services.v2g.profiles import FREQUENCY_PROFILE_ID, PLAN_PROFILE_ID
from tests.services.test_multinode_nodes import cluster
from tests.support.multinode import RoamingStation, wait_for
from tests.support.multinode_routing import broker_url_or_skip
from tests.support.v2g_harness import LEAF, iso, meter_value, transaction_event

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(240)]


def profiles(station: RoamingStation, profile_id: int) -> list[dict[str, Any]]:
    return [
        payload["chargingProfile"]
        for action, payload in station.all_commands()
        if action == "SetChargingProfile" and payload["chargingProfile"]["id"] == profile_id
    ]


async def test_replanning_and_frequency_rule_once_across_real_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CSMS_V2G_REPLAN_INTERVAL_S", "0.3")  # read by the node processes
    async with cluster(broker_url_or_skip("nats"), node_count=2, station_count=2) as c:
        holders = {(await c.station_state(c.nodes[0], s.station_id))["node"] for s in c.stations}
        assert len(holders) == 2  # round robin: one station on each node
        api = [node.api_url for node in c.nodes]
        now = datetime.now(UTC)
        start = now.replace(minute=0, second=0, microsecond=0)
        intervals = [
            {
                "start": iso(start + timedelta(hours=h)),
                "interval_s": 3600,
                "import_c_kwh": 10.0 if h < 4 else 60.0,
                "export_c_kwh": 9.0 if h < 4 else 54.0,
            }
            for h in range(24)
        ]
        assert (await c.client.put(f"{api[1]}/prices", json={"intervals": intervals})).is_success
        for k, station in enumerate(c.stations):
            body = dict(
                LEAF,
                id=f"leaf-{k}",
                station_id=station.station_id,
                evse_id=1,
                departure=iso(now + timedelta(hours=10)),
            )
            created = await c.client.post(f"{api[k % 2]}/vehicles", json=body)
            assert created.status_code == 201, created.text
            meter = [meter_value(now, soc_pct=70.0, import_wh=1000.0, export_wh=0.0)]
            await station.deliver(
                lambda st, k=k, meter=meter: transaction_event(
                    st, "Started", f"v2g-tx-{k}", 0, now, meter=meter
                )
            )

        async def planned() -> bool:
            return all(profiles(s, PLAN_PROFILE_ID) for s in c.stations)

        await wait_for(planned, 30, "a plan at every station")
        await asyncio.sleep(2.0)  # several more re-planning rounds (0.3 s) on both nodes
        assert [len(profiles(s, PLAN_PROFILE_ID)) for s in c.stations] == [1, 1]

        t0 = datetime.now(UTC)
        fired = []
        for s in range(8):
            response = await c.client.post(
                f"{api[s % 2]}/grid/frequency",
                json={"hz": 49.7, "at": iso(t0 + timedelta(seconds=s))},
            )
            assert response.status_code == 200, response.text
            fired.append(sorted(item["vehicle_id"] for item in response.json()["fired"]))
        assert fired == [[], [], [], [], [], ["leaf-0", "leaf-1"], [], []]
        assert [len(profiles(s, FREQUENCY_PROFILE_ID)) for s in c.stations] == [1, 1]
