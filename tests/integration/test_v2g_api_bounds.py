"""Finding 11 over the real V2G API: every non-finite or out-of-range input is a 422 naming the
field (never a 500), and nothing is stored. JSON bodies carry NaN/Infinity literally (Python's
json writes and FastAPI's parser reads them)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.api_harness import ApiHarness
from tests.support.v2g_harness import (
    LEAF,
    NEM_FILE,
    iso,
    meter_value,
    notify_ev_needs,
    transaction_event,
    v2g_api,
    v2g_of,
    v2g_station,
)

V1 = "/api/v1"
NAN, INF = float("nan"), float("inf")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with v2g_api(tmp_path, command_timeout_s=2.0) as harness:
        yield harness


async def send(api: ApiHarness, method: str, url: str, body: object) -> Any:
    """A JSON request whose body may hold NaN/Infinity (httpx's json= refuses them)."""
    content = json.dumps(body)  # allow_nan: writes NaN, Infinity, -Infinity
    headers = {"content-type": "application/json"}
    return await api.client.request(method, url, content=content, headers=headers)


def _names(response: Any, *names: str) -> None:
    assert response.status_code == 422, response.text
    for name in names:
        assert name in response.text, (name, response.text)


async def test_finding11_patch_capacity_5e_324_is_422_not_500(api: ApiHarness) -> None:
    assert (await send(api, "POST", f"{V1}/vehicles", LEAF)).status_code == 201
    response = await send(api, "PATCH", f"{V1}/vehicles/leaf-1", {"capacity_kwh": 5e-324})
    _names(response, "capacity_kwh")
    assert (await api.client.get(f"{V1}/vehicles/leaf-1")).json()["capacity_kwh"] == 40.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity_kwh", NAN),
        ("capacity_kwh", INF),
        ("capacity_kwh", 1e-9),
        ("capacity_kwh", 1001.0),
        ("max_charge_kw", INF),
        ("max_charge_kw", -1.0),
        ("max_discharge_kw", NAN),
        ("round_trip_efficiency", NAN),
        ("round_trip_efficiency", 0.1),
        ("degradation_c_kwh", INF),
        ("soc_min", NAN),
        ("driving_reserve_soc", -INF),
        ("target_soc", NAN),
        ("evse_id", 2**63),
        ("departure", "9999-12-31T00:00:00Z"),
        ("departure", "1900-01-01T00:00:00Z"),
    ],
)
async def test_finding11_vehicle_fields_refuse_non_finite_and_out_of_range(
    api: ApiHarness, field: str, value: object
) -> None:
    created = await send(api, "POST", f"{V1}/vehicles", dict(LEAF, **{field: value}))
    _names(created, field)
    assert (await api.client.get(f"{V1}/vehicles")).json() == []
    assert (await send(api, "POST", f"{V1}/vehicles", LEAF)).status_code == 201
    if field != "evse_id":  # evse_id changes through /link
        patched = await send(api, "PATCH", f"{V1}/vehicles/leaf-1", {field: value})
        _names(patched, field)
    assert (await api.client.get(f"{V1}/vehicles/leaf-1")).json()["capacity_kwh"] == 40.0


async def test_finding11_vehicle_departure_beyond_the_horizon_is_422(api: ApiHarness) -> None:
    far = iso(datetime.now(UTC) + timedelta(days=3650))
    _names(
        await send(api, "POST", f"{V1}/vehicles", dict(LEAF, departure=far)),
        "departure",
        "v2g_max_horizon_h",
    )
    assert (await send(api, "POST", f"{V1}/vehicles", LEAF)).status_code == 201
    near = iso(datetime.now(UTC) + timedelta(days=2))
    assert (
        await send(api, "PATCH", f"{V1}/vehicles/leaf-1", {"departure": near})
    ).status_code == 200
    _names(
        await send(api, "PATCH", f"{V1}/vehicles/leaf-1", {"departure": far}),
        "departure",
        "168 h",
    )


def _interval(**change: object) -> dict[str, object]:
    item: dict[str, object] = {
        "start": "2024-08-05T00:00:00Z",
        "interval_s": 1800,
        "import_c_kwh": 20.0,
        "export_c_kwh": 8.0,
    }
    item.update(change)
    return item


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("import_c_kwh", NAN),
        ("import_c_kwh", INF),
        ("export_c_kwh", 1e12),
        ("export_c_kwh", -1e12),
        ("interval_s", 1),
        ("start", "9999-12-31T23:30:00Z"),
    ],
)
async def test_finding11_prices_refuse_non_finite_and_out_of_range(
    api: ApiHarness, field: str, value: object
) -> None:
    second = dict(_interval(start="2024-08-05T00:30:00Z"), **{field: value})
    body = {"intervals": [_interval(), second]}
    _names(await send(api, "PUT", f"{V1}/prices", body), field)
    assert (await api.client.get(f"{V1}/prices")).json()["intervals"] == []  # nothing stored


async def test_finding11_prices_query_far_times_are_422(api: ApiHarness) -> None:
    far = await api.client.get(f"{V1}/prices", params={"from": "0001-01-01T00:00:00Z"})
    _names(far, "from")


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("gst", "nan"),
        ("gst", "-2"),
        ("retail_margin_c_kwh", "inf"),
        ("retail_margin_c_kwh", "nan"),
        ("export_offset_c_kwh", "1e9"),
    ],
)
async def test_finding11_nem_upload_tariff_params_are_bounded(
    api: ApiHarness, param: str, value: str
) -> None:
    response = await api.client.post(
        f"{V1}/prices/nem",
        params={param: value},
        content=NEM_FILE.read_bytes(),
        headers={"content-type": "text/csv"},
    )
    _names(response, param)
    assert (await api.client.get(f"{V1}/prices")).json()["intervals"] == []


async def test_finding11_nem_upload_with_nan_rrp_names_line_and_column(api: ApiHarness) -> None:
    lines = NEM_FILE.read_text(encoding="utf-8-sig").splitlines()
    header = [h.strip().upper() for h in lines[0].split(",")]
    cells = lines[4].split(",")
    cells[header.index("RRP")] = "nan"
    lines[4] = ",".join(cells)
    response = await api.client.post(
        f"{V1}/prices/nem", content="\n".join(lines), headers={"content-type": "text/csv"}
    )
    _names(response, "line 5", "RRP")


async def _put_prices(api: ApiHarness, start: datetime) -> None:
    body = {
        "intervals": [
            _interval(start=iso(start + timedelta(minutes=30 * k)), import_c_kwh=10.0 + k % 5)
            for k in range(48)
        ]
    }
    assert (await send(api, "PUT", f"{V1}/prices", body)).status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"import_limit_kw": INF}, "import_limit_kw"),
        ({"export_limit_kw": NAN}, "export_limit_kw"),
        ({"site_base_kw": [1.0, NAN]}, "site_base_kw"),
        ({"site_base_kw": [1e12]}, "site_base_kw"),
        ({"now": "9999-12-31T12:00:00Z"}, "now"),
        ({"vehicles": [{"vehicle_id": "leaf-1", "soc": NAN}]}, "soc"),
        ({"vehicles": [{"vehicle_id": "leaf-1", "arrival": "0001-01-01T00:00:00Z"}]}, "arrival"),
    ],
)
async def test_finding11_plan_body_refuses_non_finite_and_out_of_range(
    api: ApiHarness, change: dict[str, object], field: str
) -> None:
    assert (await send(api, "POST", f"{V1}/vehicles", LEAF)).status_code == 201
    body: dict[str, object] = {"vehicles": [{"vehicle_id": "leaf-1", "soc": 0.5}]}
    body.update(change)
    _names(await send(api, "POST", f"{V1}/v2g/plan", body), field)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"import_c_kwh": [10.0, NAN]}, "import_c_kwh"),
        ({"export_c_kwh": [10.0, -1e12]}, "export_c_kwh"),
        ({"interval_s": 0}, "interval_s"),
        ({"start": "0001-01-01T00:00:00Z"}, "start"),
    ],
)
async def test_finding11_inline_plan_prices_are_bounded(
    api: ApiHarness, change: dict[str, object], field: str
) -> None:
    assert (await send(api, "POST", f"{V1}/vehicles", LEAF)).status_code == 201
    prices: dict[str, object] = {
        "start": "2024-08-05T00:00:00Z",
        "interval_s": 1800,
        "import_c_kwh": [10.0, 20.0],
        "export_c_kwh": [5.0, 15.0],
    }
    prices.update(change)
    body = {
        "vehicles": [{"vehicle_id": "leaf-1", "soc": 0.5, "departure": "2024-08-05T01:00:00Z"}],
        "prices": prices,
        "now": "2024-08-05T00:00:00Z",
    }
    _names(await send(api, "POST", f"{V1}/v2g/plan", body), field)


async def test_finding11_plan_departure_beyond_the_horizon_is_422(api: ApiHarness) -> None:
    """A departure ten years out ran the planner for over a minute; now a 422 naming the
    limit. Within the horizon the same request plans."""
    assert (await send(api, "POST", f"{V1}/vehicles", LEAF)).status_code == 201
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await _put_prices(api, now)
    far = {"vehicle_id": "leaf-1", "soc": 0.5, "departure": iso(now + timedelta(days=3650))}
    _names(
        await send(api, "POST", f"{V1}/v2g/plan", {"vehicles": [far]}),
        "vehicles[0].departure",
        "v2g_max_horizon_h",
    )
    near = dict(far, departure=iso(now + timedelta(hours=20)))
    planned = await send(api, "POST", f"{V1}/v2g/plan", {"vehicles": [near]})
    assert planned.status_code == 200, planned.text
    assert planned.json()["vehicles"][0]["target_met"] is True


async def test_finding11_fleet_and_frequency_inputs_are_bounded(api: ApiHarness) -> None:
    c = api.client
    _names(await send(api, "POST", f"{V1}/v2g/dispatch", {"target_kw": INF}), "target_kw")
    _names(await send(api, "POST", f"{V1}/v2g/dispatch", {"target_kw": NAN}), "target_kw")
    now = iso(datetime.now(UTC))
    _names(await send(api, "POST", f"{V1}/grid/frequency", {"hz": NAN, "at": now}), "hz")
    _names(
        await send(api, "POST", f"{V1}/grid/frequency", {"hz": 50.0, "at": "0001-01-01T00:00:00Z"}),
        "at",
    )
    _names(await c.get(f"{V1}/v2g/bid", params={"response_time_s": "inf"}), "response_time_s")
    _names(await c.get(f"{V1}/v2g/bid", params={"min_bid_kw": "inf"}), "min_bid_kw")
    _names(await c.get(f"{V1}/v2g/dispatches", params={"from": "0001-01-01T00:00:00Z"}), "from")
    await api.add_station("CS1")
    curve = {"curve": [[49.0, NAN], [50.0, 0.0]], "enabled": True}
    _names(await send(api, "PUT", f"{V1}/stations/CS1/v2g/frequency-response", curve), "curve")
    many = {"curve": [[40.0 + k / 10, 0.0] for k in range(100)], "enabled": True}
    _names(await send(api, "PUT", f"{V1}/stations/CS1/v2g/frequency-response", many), "curve")
    _names(
        await c.get(f"{V1}/stations/CS1/v2g/backup", params={"house_load_kw": "inf"}),
        "house_load_kw",
    )


async def test_finding11_economics_inputs_are_bounded(api: ApiHarness) -> None:
    assert (await send(api, "POST", f"{V1}/vehicles", LEAF)).status_code == 201
    url = f"{V1}/vehicles/leaf-1/economics"
    good = {"from": "2024-08-05T00:00:00Z", "to": "2024-08-06T00:00:00Z"}
    assert (await api.client.get(url, params=good)).status_code == 200
    _names(await api.client.get(url, params=dict(good, equipment_cost="inf")), "equipment_cost")
    _names(await api.client.get(url, params=dict(good, **{"from": "0001-01-01T00:00:00Z"})), "from")
    _names(await api.client.get(url, params=dict(good, to="9999-12-31T23:59:59Z")), "to")


async def test_finding11_ev_departure_years_ahead_is_planned_to_the_horizon(
    api: ApiHarness,
) -> None:
    """A station's EV says it leaves in ten years: not the user's word, so no 422; the session
    departure (and any plan) stops at the horizon limit instead of running for minutes."""
    async with v2g_station(api, "CS1") as station:
        body = dict(LEAF, station_id="CS1", evse_id=1)
        assert (await api.client.post(f"{V1}/vehicles", json=body)).status_code == 201
        now = datetime.now(UTC)
        meter = [meter_value(now, soc_pct=40.0, import_wh=1000.0, export_wh=0.0)]
        await transaction_event(station, "Started", "tx-1", 0, now, meter=meter)
        await notify_ev_needs(station, now + timedelta(days=3650), soc_pct=40.0, energy_wh=8000)
        ctx = (await api.client.get(f"{V1}/vehicles/leaf-1/session")).json()
        assert ctx["departure_source"] == "ev"
        departure = datetime.fromisoformat(ctx["departure"])
        assert now + timedelta(hours=167) < departure <= datetime.now(UTC) + timedelta(hours=168)


@pytest.mark.parametrize(
    ("entity", "value", "field"),
    [
        ("max_discharge_power", b"nan", "max_discharge_kw"),
        ("max_discharge_power", b"inf", "max_discharge_kw"),
        ("min_departure_soc", b"nan", "target_soc"),
        ("backup_reserve_soc", b"nan", "backup_reserve_soc"),
    ],
)
async def test_finding11_home_assistant_commands_cannot_store_nan(
    api: ApiHarness, entity: str, value: bytes, field: str
) -> None:
    """MQTT commands reach the same service checks: 'nan' used to be stored as the vehicle's
    max discharge power (the old check was `< 0`, false for NaN)."""
    from csms.integrations.home_assistant import HomeAssistantBridge

    assert (await api.client.post(f"{V1}/vehicles", json=LEAF)).status_code == 201
    before = (await api.client.get(f"{V1}/vehicles/leaf-1")).json()
    bridge = HomeAssistantBridge(v2g_of(api))
    assert not await bridge.handle_command(f"openv2g/leaf-1/set/{entity}", value)
    after = (await api.client.get(f"{V1}/vehicles/leaf-1")).json()
    assert after[field] == before[field]


async def test_finding11_prices_stored_before_the_bounds_give_422_not_500(
    api: ApiHarness,
) -> None:
    """A price stored by an older version (1e12 c/kWh) makes a plan a clear 422."""
    from csms.domain.v2g_records import PriceRow
    from csms.persistence.repositories import v2g as vrepo

    assert (await api.client.post(f"{V1}/vehicles", json=LEAF)).status_code == 201
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = [PriceRow(now + timedelta(hours=k), 3600, 1e12, 5.0, "old") for k in range(4)]
    service = v2g_of(api)
    await service._db.write(lambda c: vrepo.save_prices(c, rows, now))
    body = {"vehicles": [{"vehicle_id": "leaf-1", "soc": 0.5}]}
    _names(await send(api, "POST", f"{V1}/v2g/plan", body), "stored prices", "import_c_kwh")
