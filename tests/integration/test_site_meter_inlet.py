"""A site's household meter from one of its stations' own main meter (issue 18): over real
OCPP websockets, MeterValues with evseId 0 and location Inlet from the site's meter station
become the site's readings (Import minus Export; energy registers too) and change the envelope
bounds sent to the site's stations; evse-0 values of a station that is not the site's source
are ignored; and the main meter is never counted as the chargers' own power. The site API
takes, shows and checks `meter_source`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from tests.integration.test_site_meter import HYSTERESIS_W, envelope_limits, until
from tests.support.api_station import ApiTestStation
from tests.support.v2g_harness import iso, meter_value, transaction_event, v2g_api, v2g_station

V1 = "/api/v1"


def inlet(at: datetime, **values: float) -> dict[str, Any]:
    """One evse-0 MeterValue at the grid connection: measurand=value pairs, W and Wh."""
    names = {
        "import_w": "Power.Active.Import",
        "export_w": "Power.Active.Export",
        "import_wh": "Energy.Active.Import.Register",
        "export_wh": "Energy.Active.Export.Register",
    }
    return {
        "timestamp": iso(at),
        "sampled_value": [
            {"value": v, "measurand": names[k], "location": "Inlet"} for k, v in values.items()
        ],
    }


async def main_meter(station: ApiTestStation, at: datetime, **values: float) -> None:
    await station.call(call.MeterValues(evse_id=0, meter_value=[inlet(at, **values)]))


async def test_the_meter_stations_inlet_values_drive_the_sites_bounds(tmp_path: Path) -> None:
    async with (
        v2g_api(
            tmp_path, command_timeout_s=5.0, site_meter_min_resend_s=0, site_meter_check_s=0
        ) as api,
        v2g_station(api, "CS1") as cs1,
        v2g_station(api, "CS2") as cs2,
        v2g_station(api, "CS3") as cs3,
    ):
        client = api.client
        # The meter station must be one of the site's.
        refused = await client.post(
            f"{V1}/sites",
            json={
                "id": "home-1",
                "name": "Home",
                "station_ids": ["CS1", "CS2"],
                "meter_source": {"station_id": "CS3"},
            },
        )
        assert refused.status_code == 422, refused.text
        assert "meter_source.station_id" in refused.text
        created = await client.post(
            f"{V1}/sites",
            json={
                "id": "home-1",
                "name": "Home",
                "station_ids": ["CS1", "CS2"],
                "meter_source": {"station_id": "CS1"},
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["meter_source"] == {"station_id": "CS1"}
        assert (await client.get(f"{V1}/sites/home-1")).json()["meter_source"] == {
            "station_id": "CS1"
        }
        other = await client.post(
            f"{V1}/sites", json={"id": "home-2", "name": "Other", "station_ids": ["CS3"]}
        )
        assert other.status_code == 201 and other.json()["meter_source"] is None

        now = datetime.now(UTC)
        # The car on CS1 charges at 4 kW (its evse 1); CS2 is idle.
        await transaction_event(
            cs1, "Started", "tx-1", 0, now, meter=[meter_value(now, power_w=4000.0)]
        )
        put = await client.put(
            f"{V1}/sites/home-1/envelopes/operator",
            json={
                "envelopes": [{"start": iso(now - timedelta(minutes=1)), "import_limit_w": 9000}]
            },
        )
        assert put.status_code == 200, put.text
        await until(lambda: len(envelope_limits(cs1)) == 1 and len(envelope_limits(cs2)) == 1)
        alone = (envelope_limits(cs1)[0], envelope_limits(cs2)[0])

        # CS3's main meter is no source of home-1's (nor of home-2's): ignored.
        await main_meter(cs3, datetime.now(UTC), import_w=8000.0, export_w=0.0)
        await asyncio.sleep(0.5)  # the reading is taken after the reply
        for site in ("home-1", "home-2"):
            meter = (await client.get(f"{V1}/sites/{site}/meter")).json()
            assert meter["rule"] == "chargers-alone", meter

        # CS1's main meter: 7.5 kW in, 0.5 kW out = 7 kW net; 4 kW of it the car: house 3 kW.
        await main_meter(cs1, datetime.now(UTC), import_w=7500.0, export_w=500.0)
        await until(lambda: len(envelope_limits(cs2)) == 2)
        meter = (await client.get(f"{V1}/sites/home-1/meter")).json()
        assert meter["rule"] == "metered" and meter["source"] == "ocpp", meter
        assert meter["grid_import_w"] == 7000.0
        # The evse-0 values (7.5 kW Import at the Inlet) are not the car's power.
        assert meter["chargers_w"] == 4000.0 and meter["unknown_stations"] == 0
        assert meter["base_high_w"] == 3000.0
        view = (await client.get(f"{V1}/sites/home-1/envelope")).json()
        assert view["charger_bounds"]["max_charge_w"] == 9000.0 - 3000.0 - HYSTERESIS_W
        await until(lambda: len(envelope_limits(cs1)) == 2)
        sent = (envelope_limits(cs1)[-1], envelope_limits(cs2)[-1])
        assert sum(sent) == 9000.0 - 3000.0 - HYSTERESIS_W
        assert sum(sent) < sum(alone)

        # Registers only: 50 Wh more import in 60 s = 3 kW net, the house -1 kW (solar).
        t1 = datetime.now(UTC) - timedelta(seconds=60)
        await main_meter(cs1, t1, import_wh=10_000.0, export_wh=2_000.0)
        await main_meter(cs1, t1 + timedelta(seconds=60), import_wh=10_050.0, export_wh=2_000.0)
        await until(lambda: len(envelope_limits(cs2)) == 3)
        meter = (await client.get(f"{V1}/sites/home-1/meter")).json()
        assert abs(meter["grid_import_w"] - 3000.0) < 1e-6, meter
        assert meter["chargers_w"] == 4000.0
        view = (await client.get(f"{V1}/sites/home-1/envelope")).json()
        assert view["charger_bounds"]["max_charge_w"] == 9000.0 + 1000.0 - HYSTERESIS_W

        # Opting out: the site keeps its last reading, but CS1's main meter no longer feeds it.
        replaced = await client.put(
            f"{V1}/sites/home-1",
            json={"id": "home-1", "name": "Home", "station_ids": ["CS1", "CS2"]},
        )
        assert replaced.status_code == 200 and replaced.json()["meter_source"] is None
        await main_meter(cs1, datetime.now(UTC), import_w=20_000.0)
        await asyncio.sleep(0.5)
        meter = (await client.get(f"{V1}/sites/home-1/meter")).json()
        assert abs(meter["grid_import_w"] - 3000.0) < 1e-6, meter
