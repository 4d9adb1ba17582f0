"""The sites API (issue 18, sites_api.md): auth and scopes, CRUD with its 422/404/409 errors, the
envelope view, operator envelopes enforced at once (stations offline here: the view says so;
test_envelope_enforcement.py runs real stations)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.domain.models import ApiScope
from tests.support.api_harness import ApiHarness, api_harness

LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
NMI = "4102335210"  # checksum digit 7 (AEMO's Luhn variant)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path) as harness:
        await harness.add_station("CS1")
        await harness.add_station("CS2")
        yield harness


def site(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "home-1", "name": "Home 1", "station_ids": ["CS1"]}
    body.update(fields)
    return body


async def test_sites_need_a_token_and_the_admin_scope_to_write(api: ApiHarness) -> None:
    for method, path in [
        ("GET", "/api/v1/sites"),
        ("POST", "/api/v1/sites"),
        ("GET", "/api/v1/sites/home-1/envelope"),
        ("PUT", "/api/v1/sites/home-1/envelopes/operator"),
    ]:
        assert (await api.anonymous.request(method, path)).status_code == 401, (method, path)
    reader = await api.services.api_tokens.create("reader", ApiScope.READ)
    headers = {"Authorization": f"Bearer {reader.plaintext}"}
    assert (await api.anonymous.get("/api/v1/sites", headers=headers)).status_code == 200
    refused = await api.anonymous.post("/api/v1/sites", json=site(), headers=headers)
    assert refused.status_code == 403
    assert refused.json()["required_scope"] == "admin"


async def test_site_crud(api: ApiHarness) -> None:
    created = await api.client.post(
        "/api/v1/sites",
        json=site(nmi=NMI + "7", lfdi=LFDI, sfdi=16726121139, registration_pin=111115),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body == {
        "id": "home-1",
        "name": "Home 1",
        "nmi": NMI + "7",
        "lfdi": LFDI,
        "sfdi": 16726121139,
        "csip_enabled": False,
        "station_ids": ["CS1"],
        "has_registration_pin": True,
        "meter_source": None,
    }
    assert "registration_pin" not in body
    assert (await api.client.get("/api/v1/sites")).json() == [body]
    assert (await api.client.get("/api/v1/sites/home-1")).json() == body

    replaced = await api.client.put(
        "/api/v1/sites/home-1", json=site(name="Renamed", station_ids=["CS1", "CS2"])
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["name"] == "Renamed"
    assert replaced.json()["station_ids"] == ["CS1", "CS2"]
    assert replaced.json()["has_registration_pin"] is False  # replaced, not merged
    assert replaced.json()["lfdi"] is None

    assert (await api.client.delete("/api/v1/sites/home-1")).status_code == 204
    assert (await api.client.get("/api/v1/sites/home-1")).status_code == 404
    assert (await api.client.get("/api/v1/sites")).json() == []


async def test_site_errors_422_name_the_field(api: ApiHarness) -> None:
    bad_nmi = await api.client.post("/api/v1/sites", json=site(nmi=NMI + "3"))
    assert bad_nmi.status_code == 422
    assert bad_nmi.json()["errors"][0]["field"] == "nmi"
    assert "checksum" in bad_nmi.json()["detail"]
    bad_lfdi = await api.client.post("/api/v1/sites", json=site(lfdi="XYZ"))
    assert bad_lfdi.status_code == 422
    assert bad_lfdi.json()["errors"][0]["field"] == "lfdi"
    bad_id = await api.client.post("/api/v1/sites", json=site(id="has space"))
    assert bad_id.json()["errors"][0]["field"] == "id"
    twice = await api.client.post("/api/v1/sites", json=site(station_ids=["CS1", "CS1"]))
    assert twice.status_code == 422
    assert twice.json()["errors"][0]["field"] == "station_ids"
    pin = await api.client.post("/api/v1/sites", json=site(registration_pin=1_000_000))
    assert pin.json()["errors"][0]["field"] == "registration_pin"
    other_id = await api.client.put("/api/v1/sites/home-1", json=site(id="home-2"))
    assert other_id.status_code == 422
    assert "id" in other_id.json()["detail"]


async def test_site_errors_404_and_409(api: ApiHarness) -> None:
    unknown_station = await api.client.post("/api/v1/sites", json=site(station_ids=["NOPE"]))
    assert unknown_station.status_code == 404
    assert "NOPE" in unknown_station.json()["detail"]
    assert (await api.client.post("/api/v1/sites", json=site(lfdi=LFDI))).status_code == 201
    taken_id = await api.client.post("/api/v1/sites", json=site(station_ids=[]))
    assert taken_id.status_code == 409
    taken_lfdi = await api.client.post(
        "/api/v1/sites", json=site(id="home-2", station_ids=[], lfdi=LFDI.lower())
    )
    assert taken_lfdi.status_code == 409
    station_taken = await api.client.post(
        "/api/v1/sites", json=site(id="home-2", station_ids=["CS1"])
    )
    assert station_taken.status_code == 409
    assert "home-1" in station_taken.json()["detail"]
    assert (await api.client.put("/api/v1/sites/nope", json=site(id="nope"))).status_code == 404
    assert (await api.client.delete("/api/v1/sites/nope")).status_code == 404
    assert (await api.client.get("/api/v1/sites/nope/envelope")).status_code == 404
    missing = await api.client.put("/api/v1/sites/nope/envelopes/operator", json={"envelopes": []})
    assert missing.status_code == 404


async def test_envelope_view_without_envelopes(api: ApiHarness) -> None:
    await api.client.post("/api/v1/sites", json=site(station_ids=["CS1", "CS2"]))
    view = (await api.client.get("/api/v1/sites/home-1/envelope")).json()
    assert view["site_id"] == "home-1"
    assert view["in_force"] is None
    assert view["upcoming"] == []
    # Unknown ratings: 22 kW each (csms.domain.envelopes.DEFAULT_RATED_W), nothing limits.
    assert view["charger_bounds"] == {"max_charge_w": 44000.0, "max_discharge_w": 44000.0}
    assert [s["station_id"] for s in view["stations"]] == ["CS1", "CS2"]
    assert all(s["enforced"] is False for s in view["stations"])


async def test_operator_envelopes_are_validated(api: ApiHarness) -> None:
    await api.client.post("/api/v1/sites", json=site())
    now = api.services.clock()
    start = now.isoformat()
    bad = [
        ({"start": start, "export_limit_w": -1}, "envelopes.0.export_limit_w"),
        ({"start": start, "ramp_rate_pct_per_s": 0}, "envelopes.0.ramp_rate_pct_per_s"),
        ({"start": start, "ramp_time_s": 0}, "envelopes.0.ramp_time_s"),
        ({"start": start, "ramp_time_s": 3601}, "envelopes.0.ramp_time_s"),  # over 1 h
        ({"start": "2026-12-06T17:00:00"}, "envelopes.0.start"),  # no timezone
        ({"start": start, "end": start}, "envelopes.0"),
        ({"start": start, "color": "red"}, "envelopes.0.color"),
    ]
    for envelope, field in bad:
        answer = await api.client.put(
            "/api/v1/sites/home-1/envelopes/operator", json={"envelopes": [envelope]}
        )
        assert answer.status_code == 422, envelope
        assert answer.json()["errors"][0]["field"] == field, answer.json()


async def test_operator_envelopes_are_enforced_at_once_and_shown(api: ApiHarness) -> None:
    await api.client.post("/api/v1/sites", json=site(station_ids=["CS1", "CS2"]))
    now = api.services.clock()
    later = now + timedelta(hours=2)
    answer = await api.client.put(
        "/api/v1/sites/home-1/envelopes/operator",
        json={
            "envelopes": [
                {
                    "control_id": "evening",
                    "start": (now - timedelta(minutes=1)).isoformat(),
                    "end": (now + timedelta(hours=1)).isoformat(),
                    "export_limit_w": 5000,
                    "ramp_rate_pct_per_s": 0.27,
                },
                {"start": later.isoformat(), "energize": False},
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["in_force"]["source"] == "operator"
    assert view["in_force"]["control_id"] == "evening"
    assert view["in_force"]["export_limit_w"] == 5000.0
    assert view["charger_bounds"] == {"max_charge_w": 44000.0, "max_discharge_w": 5000.0}
    assert [e["control_id"] for e in view["upcoming"]] == ["evening", None]
    for station in view["stations"]:
        assert station["max_discharge_w"] == 2500.0  # equal ratings: half each
        assert station["max_charge_w"] == 22000.0  # no import limit: the rating
        # Tried at once; the stations are not connected here.
        assert station["status"] == "Offline"
        assert station["action"] == "SetChargingProfile"
        assert station["sent_at"] is not None
        assert station["enforced"] is False
    assert (await api.client.get("/api/v1/sites/home-1/envelope")).json()["stations"] == view[
        "stations"
    ]

    assert (await api.client.delete("/api/v1/sites/home-1/envelopes/operator")).status_code == 204
    cleared = (await api.client.get("/api/v1/sites/home-1/envelope")).json()
    assert cleared["in_force"] is None and cleared["upcoming"] == []
    assert {s["action"] for s in cleared["stations"]} == {"ClearChargingProfile"}


async def test_sites_are_in_the_openapi_document(api: ApiHarness) -> None:
    spec = (await api.anonymous.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/api/v1/sites",
        "/api/v1/sites/{site_id}",
        "/api/v1/sites/{site_id}/envelope",
        "/api/v1/sites/{site_id}/envelopes/operator",
    ):
        assert path in paths
    assert set(paths["/api/v1/sites/{site_id}"]) == {"get", "put", "delete"}
    assert "SiteIn" in spec["components"]["schemas"]
