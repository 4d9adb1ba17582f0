"""The V2X / DER / aFRR / stream routes over the real app (httpx ASGI, migrated SQLite): the
version a station is seen with, DER curves configured and persisted, the 2.1-only means refused
for a 2.0.1 station, defaults with their sources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.api_harness import ApiHarness
from tests.support.v2g_harness import v2g_api

V1 = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with v2g_api(tmp_path, command_timeout_s=2.0) as harness:
        yield harness


async def test_a_201_station_is_seen_as_such_and_refused_21_only_means(api: ApiHarness) -> None:
    await api.add_station("CS1")
    seen = (await api.client.get(f"{V1}/stations/CS1/v2x")).json()
    assert seen["ocpp_version"] == "2.0.1" and seen["frequency_mode"] is None
    for method, path, body in [
        ("POST", "/stations/CS1/der/curves/apply", None),
        ("POST", "/stations/CS1/der/controls/clear", {"isDefault": True}),
        ("POST", "/grid/afrr", {"signal": 5, "station_ids": ["CS1"]}),
        ("DELETE", "/stations/CS1/periodic-streams/monitors/1", None),
        ("PUT", "/stations/CS1/v2x/local-control", {"mode": "ExternalSetpoint"}),
        ("DELETE", "/stations/CS1/v2x/local-control", None),
        (
            "PUT",
            "/stations/CS1/v2x/dynamic-setpoint",
            {"profile_id": 1, "setpoint_w": 0, "max_charge_w": 1, "max_discharge_w": 1},
        ),
    ]:
        response = await api.client.request(method, f"{V1}{path}", json=body)
        if path == "/grid/afrr":  # aFRR skips 2.0.1 stations, recorded as such
            assert response.status_code == 200, response.text
            assert response.json()["results"][0]["status"] == "skipped"
        else:
            assert response.status_code == 422, (path, response.text)
            assert "2.1" in response.text
    assert (await api.client.get(f"{V1}/stations/NOPE/v2x")).status_code == 404


async def test_der_curves_are_configured_listed_and_deleted(api: ApiHarness) -> None:
    await api.add_station("CS1")
    put = await api.client.put(
        f"{V1}/stations/CS1/der/curves/freq_watt_over", json={"region": "australia_c"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["points"] == [[50.5, -100.0], [51.75, 0.0], [53.0, 100.0]]
    own = await api.client.put(
        f"{V1}/stations/CS1/der/curves/volt_var",
        json={"points": [[205, 30], [220, 0], [240, 0], [256, -50]]},
    )
    assert own.status_code == 200, own.text
    bad = await api.client.put(
        f"{V1}/stations/CS1/der/curves/volt_var", json={"points": [[260, 0], [250, 0]]}
    )
    assert bad.status_code == 422
    both = await api.client.put(
        f"{V1}/stations/CS1/der/curves/volt_var",
        json={"region": "australia_a", "points": [[205, 30], [220, 0]]},
    )
    assert both.status_code == 422
    listed = (await api.client.get(f"{V1}/stations/CS1/der/curves")).json()
    assert {c["kind"]: c["verified"] for c in listed} == {"freq_watt_over": True, "volt_var": None}
    gone = await api.client.delete(f"{V1}/stations/CS1/der/curves/volt_var")
    assert gone.json() == {"deleted": True}
    defaults = (await api.client.get(f"{V1}/der/curve-defaults")).json()
    assert defaults["volt_watt"]["verified"] is False
    assert defaults["freq_watt_under"]["regions"]["australia_a"][0] == [48.0, -100.0]


async def test_stream_samples_and_der_reports_read_empty_for_a_new_station(
    api: ApiHarness,
) -> None:
    await api.add_station("CS1")
    samples = await api.client.get(f"{V1}/stations/CS1/periodic-streams/samples?stream_id=1")
    assert samples.status_code == 200 and samples.json() == []
    reports = await api.client.get(f"{V1}/stations/CS1/der/reports?kind=NotifyDERAlarm")
    assert reports.status_code == 200 and reports.json() == []
    assert (await api.client.get(f"{V1}/stations/CS1/der/reports?limit=0")).status_code == 422
