"""The household meter of a site (issue 18): POST/GET/DELETE /sites/{id}/meter (scopes, 422s
that name the field, 404), the reading, its age and the base in GET /sites/{id}/envelope, and
over a real OCPP websocket: a reading that changes the site base re-sends the station its
envelope profile with the new limit; a change within the hysteresis does not; a stale reading
falls back to the chargers-alone rule, tightened only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.domain.models import ApiScope
from tests.support.api_harness import ApiHarness, api_harness
from tests.support.v2g_harness import iso, meter_value, transaction_event, v2g_api, v2g_station

V1 = "/api/v1"
HYSTERESIS_W = 300.0


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path, site_meter_check_s=0) as harness:
        await harness.add_station("CS1")
        created = await harness.client.post(
            f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
        )
        assert created.status_code == 201, created.text
        yield harness


def now_iso(offset_s: float = 0.0) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=offset_s))


async def test_meter_needs_operate_to_push_and_read_to_look(api: ApiHarness) -> None:
    path = f"{V1}/sites/home-1/meter"
    body = {"timestamp": now_iso(), "grid_import_w": 1500}
    for method in ("GET", "POST", "DELETE"):
        assert (await api.anonymous.request(method, path)).status_code == 401, method
    reader = await api.services.api_tokens.create("reader", ApiScope.READ)
    headers = {"Authorization": f"Bearer {reader.plaintext}"}
    assert (await api.anonymous.get(path, headers=headers)).status_code == 200
    refused = await api.anonymous.post(path, json=body, headers=headers)
    assert refused.status_code == 403 and refused.json()["required_scope"] == "operate"
    operator = await api.services.api_tokens.create("ha", ApiScope.OPERATE)
    headers = {"Authorization": f"Bearer {operator.plaintext}"}
    assert (await api.anonymous.post(path, json=body, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"grid_import_w": 1500}, "timestamp"),
        ({"timestamp": "2026-12-07T08:00:00", "grid_import_w": 1}, "timestamp"),  # no offset
        ({"timestamp": "yesterday", "grid_import_w": 1}, "timestamp"),
        ({"timestamp": "NOW", "grid_import_w": "1500"}, "grid_import_w"),
        ({"timestamp": "NOW", "grid_import_w": 2e7}, "grid_import_w"),
        ({"timestamp": "NOW", "grid_import_w": -2e7}, "grid_import_w"),
        ({"timestamp": "NOW", "grid_import_w": True}, "grid_import_w"),
        ({"timestamp": "NOW", "load_w": -1, "solar_w": 0}, "load_w"),
        ({"timestamp": "NOW", "load_w": 100, "solar_w": -1}, "solar_w"),
        ({"timestamp": "NOW", "load_w": 100}, None),
        ({"timestamp": "NOW", "grid_import_w": 1, "load_w": 1, "solar_w": 0}, None),
        ({"timestamp": "NOW", "grid_import_w": 1, "watts": 1}, "watts"),
        ({"timestamp": "FUTURE", "grid_import_w": 1}, "timestamp"),
    ],
)
async def test_bad_readings_get_422_naming_the_field(
    api: ApiHarness, body: dict[str, Any], field: str | None
) -> None:
    if body.get("timestamp") == "NOW":
        body = {**body, "timestamp": now_iso()}
    if body.get("timestamp") == "FUTURE":
        body = {**body, "timestamp": now_iso(600)}
    response = await api.client.post(f"{V1}/sites/home-1/meter", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    if field is not None:
        assert field in {e["field"] for e in problem["errors"]} or field in problem["detail"], (
            problem
        )
    assert (await api.client.get(f"{V1}/sites/home-1/meter")).json()["rule"] == "chargers-alone"


async def test_large_json_numbers_are_refused_not_crashed(api: ApiHarness) -> None:
    raw = '{"timestamp": "' + now_iso() + '", "grid_import_w": 1e400}'
    response = await api.client.post(
        f"{V1}/sites/home-1/meter",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text


async def test_unknown_site_is_404(api: ApiHarness) -> None:
    body = {"timestamp": now_iso(), "grid_import_w": 1500}
    assert (await api.client.post(f"{V1}/sites/nope/meter", json=body)).status_code == 404
    assert (await api.client.get(f"{V1}/sites/nope/meter")).status_code == 404
    assert (await api.client.delete(f"{V1}/sites/nope/meter")).status_code == 404


async def test_reading_its_age_and_base_in_the_envelope_view(api: ApiHarness) -> None:
    start = now_iso(-60)
    put = await api.client.put(
        f"{V1}/sites/home-1/envelopes/operator",
        json={"envelopes": [{"start": start, "import_limit_w": 6000, "export_limit_w": 5000}]},
    )
    assert put.status_code == 200, put.text
    assert put.json()["meter"]["rule"] == "chargers-alone"
    # Load 1.8 kW, solar 4.3 kW: the site exports 2.5 kW; CS1 has no transaction (0 W).
    posted = await api.client.post(
        f"{V1}/sites/home-1/meter",
        json={"timestamp": now_iso(-2), "load_w": 1800, "solar_w": 4300},
    )
    assert posted.status_code == 200, posted.text
    meter = posted.json()
    assert meter["rule"] == "metered" and meter["source"] == "api"
    assert meter["grid_import_w"] == -2500.0
    assert (meter["load_w"], meter["solar_w"]) == (1800.0, 4300.0)
    assert meter["chargers_w"] == 0.0 and meter["unknown_stations"] == 0
    assert meter["base_low_w"] == meter["base_high_w"] == -2500.0
    assert meter["charge_base_w"] == -2500.0 + HYSTERESIS_W
    assert meter["discharge_base_w"] == -2500.0 - HYSTERESIS_W
    assert 1.5 <= meter["age_s"] < 30 and meter["max_age_s"] == 60.0
    view = (await api.client.get(f"{V1}/sites/home-1/envelope")).json()
    assert view["meter"]["grid_import_w"] == -2500.0
    # The solar lets the chargers import more and export less.
    assert view["charger_bounds"]["max_charge_w"] == 6000.0 + 2500.0 - HYSTERESIS_W
    assert view["charger_bounds"]["max_discharge_w"] == 5000.0 - 2500.0 - HYSTERESIS_W
    # An older reading arriving late does not replace the newer one.
    late = await api.client.post(
        f"{V1}/sites/home-1/meter", json={"timestamp": now_iso(-30), "grid_import_w": 9000}
    )
    assert late.status_code == 200 and late.json()["grid_import_w"] == -2500.0
    # Forgotten: the chargers alone again.
    assert (await api.client.delete(f"{V1}/sites/home-1/meter")).status_code == 204
    view = (await api.client.get(f"{V1}/sites/home-1/envelope")).json()
    assert view["meter"]["rule"] == "chargers-alone"
    assert view["charger_bounds"]["max_charge_w"] == 6000.0
    assert view["charger_bounds"]["max_discharge_w"] == 5000.0


async def test_a_stale_reading_only_tightens(api: ApiHarness) -> None:
    start = now_iso(-600)
    await api.client.put(
        f"{V1}/sites/home-1/envelopes/operator",
        json={"envelopes": [{"start": start, "import_limit_w": 6000, "export_limit_w": 5000}]},
    )
    # Two minutes old (the limit is 60 s): the house was importing 2 kW, solar was not seen.
    stale = await api.client.post(
        f"{V1}/sites/home-1/meter", json={"timestamp": now_iso(-120), "grid_import_w": 2000}
    )
    assert stale.status_code == 200
    assert stale.json()["rule"] == "stale"
    assert (stale.json()["charge_base_w"], stale.json()["discharge_base_w"]) == (2000.0, 0.0)
    view = (await api.client.get(f"{V1}/sites/home-1/envelope")).json()
    assert view["charger_bounds"]["max_charge_w"] == 4000.0  # tighter than 6000 alone
    assert view["charger_bounds"]["max_discharge_w"] == 5000.0  # never looser than alone


# ---- over a real station ----------------------------------------------------------------


def envelope_limits(station: Any) -> list[float]:
    """The charge limit of the first period of each envelope profile the station received."""
    return [
        r.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
        for r in station.received
        if r.action == "SetChargingProfile"
        and r.payload["chargingProfile"]["chargingProfilePurpose"] == "ChargingStationMaxProfile"
    ]


async def until(condition: Any, wait_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + wait_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


async def test_a_meter_reading_that_changes_the_base_resends_the_envelope_profile(
    tmp_path: Path,
) -> None:
    async with (
        v2g_api(
            tmp_path, command_timeout_s=5.0, site_meter_min_resend_s=0, site_meter_check_s=0
        ) as api,
        v2g_station(api, "CS1") as cs1,
    ):
        created = await api.client.post(
            f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
        )
        assert created.status_code == 201, created.text
        now = datetime.now(UTC)
        # The car charges at 4 kW (the station's own meter value).
        meter = [meter_value(now, soc_pct=50.0, import_wh=0.0, power_w=4000.0)]
        await transaction_event(cs1, "Started", "tx-1", 0, now, meter=meter)
        put = await api.client.put(
            f"{V1}/sites/home-1/envelopes/operator",
            json={
                "envelopes": [{"start": iso(now - timedelta(minutes=1)), "import_limit_w": 9000}]
            },
        )
        assert put.status_code == 200, put.text
        await until(lambda: len(envelope_limits(cs1)) == 1)
        assert envelope_limits(cs1) == [9000.0]  # the chargers alone (rated 22 kW)

        # The meter reads 7 kW import: 4 kW of it the car, the house 3 kW.
        posted = await api.client.post(
            f"{V1}/sites/home-1/meter",
            json={"timestamp": iso(datetime.now(UTC)), "grid_import_w": 7000},
        )
        assert posted.status_code == 200, posted.text
        assert posted.json()["chargers_w"] == 4000.0
        assert posted.json()["base_high_w"] == 3000.0
        await until(lambda: len(envelope_limits(cs1)) == 2)
        assert envelope_limits(cs1)[-1] == 9000.0 - 3000.0 - HYSTERESIS_W

        # Noise within the hysteresis: nothing sent.
        posted = await api.client.post(
            f"{V1}/sites/home-1/meter",
            json={"timestamp": iso(datetime.now(UTC)), "grid_import_w": 7150},
        )
        assert posted.status_code == 200
        await asyncio.sleep(0.5)
        assert len(envelope_limits(cs1)) == 2

        # The house drops to 1 kW: the new, higher limit is sent.
        await api.client.post(
            f"{V1}/sites/home-1/meter",
            json={"timestamp": iso(datetime.now(UTC)), "grid_import_w": 5000},
        )
        await until(lambda: len(envelope_limits(cs1)) == 3)
        assert envelope_limits(cs1)[-1] == 9000.0 - 1000.0 - HYSTERESIS_W
        view = (await api.client.get(f"{V1}/sites/home-1/envelope")).json()
        assert view["stations"][0]["enforced"] is True
        assert view["stations"][0]["max_charge_w"] == 9000.0 - 1000.0 - HYSTERESIS_W
