"""REST API over stored records: transactions + meter values, device model, charging profiles,
message log, events, tariffs, id tokens, API tokens. Records are written through the
persistence layer's repositories (what the OCPP edge does when stations report them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import (
    BootInfo,
    DeviceVariable,
    Direction,
    EventRecord,
    MessageLogEntry,
    MeterSample,
    RegistrationStatus,
    Transaction,
    TransactionEvent,
    TransactionState,
)
from csms.persistence import repositories as repo
from csms.services.commands import profile_record
from tests.support.api_harness import ApiHarness, api_harness
from tests.support.api_payloads import DISCHARGE_PROFILE

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path) as harness:
        await harness.add_station("CS1")
        await harness.add_station("CS2")
        yield harness


async def _seed_transaction(api: ApiHarness, tx_id: str, samples: int, ended: bool) -> None:
    tx = Transaction(
        station_id="CS1",
        transaction_id=tx_id,
        state=TransactionState.ENDED if ended else TransactionState.ACTIVE,
        evse_id=1,
        connector_id=1,
        id_token="TOKEN-1",
        id_token_type="ISO14443",
        started_at=T0,
        ended_at=T0 + timedelta(hours=1) if ended else None,
        first_seq_no=0,
        last_seq_no=1,
        seq_count=2,
        energy_start_wh=1000.0,
        energy_last_wh=1000.0 + 100 * samples,
    )
    event = TransactionEvent(
        "CS1", tx_id, 0, "Started", "Authorized", T0, payload={"eventType": "Started"}
    )
    meter = [
        MeterSample(
            "CS1",
            T0 + timedelta(minutes=n),
            1000.0 + 100 * n,
            evse_id=1,
            transaction_id=tx_id,
            unit="Wh",
        )
        for n in range(samples)
    ]
    meter.append(
        MeterSample(
            "CS1",
            T0,
            -3200.0,
            measurand="Power.Active.Import",
            evse_id=1,
            transaction_id=tx_id,
            unit="W",
        )
    )

    async def write(conn: AsyncConnection) -> None:
        await repo.save_transaction(conn, tx, T0)
        await repo.insert_transaction_event(conn, event, T0)
        await repo.insert_meter_samples(conn, meter)

    await api.services.db.write(write)


async def test_transactions_with_meter_values_paged(api: ApiHarness) -> None:
    await _seed_transaction(api, "tx-1", samples=5, ended=True)
    await _seed_transaction(api, "tx-2", samples=2, ended=False)

    page = (await api.client.get("/api/v1/stations/CS1/transactions")).json()
    assert page["total"] == 2
    assert {t["transaction_id"] for t in page["items"]} == {"tx-1", "tx-2"}
    active = (
        await api.client.get("/api/v1/stations/CS1/transactions", params={"state": "Active"})
    ).json()
    assert [t["transaction_id"] for t in active["items"]] == ["tx-2"]
    everywhere = (await api.client.get("/api/v1/transactions", params={"limit": 1})).json()
    assert everywhere["total"] == 2 and len(everywhere["items"]) == 1

    detail = (await api.client.get("/api/v1/stations/CS1/transactions/tx-1")).json()
    assert detail["transaction"]["state"] == "Ended"
    assert detail["transaction"]["energy_wh"] == 500.0
    assert detail["events"][0]["event_type"] == "Started"
    assert len(detail["meter_values"]) == 6
    assert any(m["value"] == -3200.0 for m in detail["meter_values"])  # discharge power

    meter = (
        await api.client.get(
            "/api/v1/stations/CS1/transactions/tx-1/meter-values",
            params={"offset": 1, "limit": 2, "measurand": "Energy.Active.Import.Register"},
        )
    ).json()
    assert meter["total"] == 5
    assert [m["value"] for m in meter["items"]] == [1100.0, 1200.0]


async def test_transaction_errors(api: ApiHarness) -> None:
    assert (await api.client.get("/api/v1/stations/CS1/transactions/nope")).status_code == 404
    assert (await api.client.get("/api/v1/stations/NOPE/transactions")).status_code == 404
    bad_state = await api.client.get("/api/v1/stations/CS1/transactions", params={"state": "x"})
    assert bad_state.status_code == 422
    assert bad_state.json()["errors"][0]["field"] == "state"
    bad_limit = await api.client.get("/api/v1/stations", params={"limit": 0})
    assert bad_limit.status_code == 422
    assert bad_limit.json()["errors"][0]["field"] == "limit"
    assert (await api.anonymous.get("/api/v1/transactions")).status_code == 401


async def test_device_model_variables(api: ApiHarness) -> None:
    variables = [
        DeviceVariable("CS1", "SmartChargingCtrlr", "Enabled", value="true"),
        DeviceVariable("CS1", "SecurityCtrlr", "SecurityProfile", value="1"),
        DeviceVariable("CS1", "EVSE", "Power", attribute_type="MaxSet", value="11000", evse_id=1),
    ]
    await api.services.db.write(lambda c: repo.upsert_device_variables(c, variables, T0))
    page = (await api.client.get("/api/v1/stations/CS1/variables")).json()
    assert page["total"] == 3
    only = (
        await api.client.get(
            "/api/v1/stations/CS1/variables", params={"component": "EVSE", "variable": "Power"}
        )
    ).json()
    assert only["items"][0]["value"] == "11000"
    assert only["items"][0]["attribute_type"] == "MaxSet"
    assert only["items"][0]["evse_id"] == 1
    assert (await api.client.get("/api/v1/stations/NOPE/variables")).status_code == 404


async def test_charging_profiles_stored_per_station(api: ApiHarness) -> None:
    record = profile_record("CS1", 1, DISCHARGE_PROFILE)
    await api.services.db.write(lambda c: repo.upsert_charging_profile(c, record, T0))
    profiles = (await api.client.get("/api/v1/stations/CS1/charging-profiles")).json()
    assert len(profiles) == 1
    assert profiles[0]["profile_id"] == 7
    assert profiles[0]["purpose"] == "TxDefaultProfile"
    assert profiles[0]["profile"] == DISCHARGE_PROFILE
    other_evse = await api.client.get(
        "/api/v1/stations/CS1/charging-profiles", params={"evse_id": 2}
    )
    assert other_evse.json() == []
    assert (await api.client.get("/api/v1/stations/CS2/charging-profiles")).json() == []
    assert (await api.client.get("/api/v1/stations/NOPE/charging-profiles")).status_code == 404


async def test_message_log_paged_and_events(api: ApiHarness) -> None:
    entries = [
        MessageLogEntry(
            "CS1", Direction.IN, "CALL", f"m{n}", "Heartbeat", {}, T0 + timedelta(seconds=n)
        )
        for n in range(7)
    ]
    await api.services.message_log.record(*entries)
    page = (await api.client.get("/api/v1/stations/CS1/messages", params={"limit": 3})).json()
    assert page["total"] == 7
    assert len(page["items"]) == 3
    assert page["items"][0]["action"] == "Heartbeat"
    assert page["items"][0]["direction"] == "in"
    assert (await api.client.get("/api/v1/stations/CS2/messages")).json()["total"] == 0
    assert (await api.client.get("/api/v1/stations/NOPE/messages")).status_code == 404

    for kind in ("NotifyEvent", "SecurityEventNotification", "NotifyEvent"):
        event = EventRecord("CS1", kind, {"k": kind}, T0, T0)
        await api.services.db.write(lambda c, e=event: repo.insert_event(c, e))
    events = (await api.client.get("/api/v1/stations/CS1/events")).json()
    assert events["total"] == 3
    notify = (
        await api.client.get("/api/v1/stations/CS1/events", params={"kind": "NotifyEvent"})
    ).json()
    assert notify["total"] == 2
    assert (await api.client.get("/api/v1/stations/NOPE/events")).status_code == 404


async def test_tariff_per_station(api: ApiHarness) -> None:
    assert (await api.client.get("/api/v1/stations/CS1/tariff")).status_code == 404
    put = await api.client.put(
        "/api/v1/stations/CS1/tariff",
        json={"currency": "AUD", "price_per_kwh": 0.32, "price_per_hour": 1.5},
    )
    assert put.status_code == 200
    assert put.json() == {
        "station_id": "CS1",
        "currency": "AUD",
        "price_per_kwh": 0.32,
        "price_per_hour": 1.5,
    }
    assert (await api.client.get("/api/v1/stations/CS1/tariff")).json()["currency"] == "AUD"
    assert (await api.client.get("/api/v1/stations/CS2/tariff")).status_code == 404
    negative = await api.client.put(
        "/api/v1/stations/CS1/tariff", json={"currency": "AUD", "price_per_kwh": -1}
    )
    assert negative.status_code == 422
    assert negative.json()["errors"][0]["field"] == "price_per_kwh"
    unknown = await api.client.put("/api/v1/stations/NOPE/tariff", json={"currency": "AUD"})
    assert unknown.status_code == 404
    assert (await api.client.delete("/api/v1/stations/CS1/tariff")).status_code == 204
    assert (await api.client.get("/api/v1/stations/CS1/tariff")).status_code == 404


async def test_id_tokens_create_list_change_status(api: ApiHarness) -> None:
    created = await api.client.post(
        "/api/v1/id-tokens",
        json={"id_token": "RFID-1", "type": "ISO14443", "group_id_token": "FLEET"},
    )
    assert created.status_code == 201
    assert created.json()["status"] == "Accepted"
    await api.client.post("/api/v1/id-tokens", json={"id_token": "RFID-2"})
    listing = (await api.client.get("/api/v1/id-tokens")).json()
    assert listing["total"] == 2
    blocked = await api.client.patch("/api/v1/id-tokens/RFID-1", json={"status": "Blocked"})
    assert blocked.status_code == 200
    assert blocked.json()["status"] == "Blocked"
    result = await api.services.id_tokens.authorize("RFID-1", "ISO14443")
    assert result.status.value == "Blocked"
    assert (await api.client.get("/api/v1/id-tokens/RFID-1")).json()["group_id_token"] == "FLEET"

    bad_status = await api.client.patch("/api/v1/id-tokens/RFID-1", json={"status": "Maybe"})
    assert bad_status.status_code == 422
    bad_type = await api.client.post("/api/v1/id-tokens", json={"id_token": "X", "type": "Foo"})
    assert bad_type.status_code == 422
    assert "type" in bad_type.json()["detail"]
    missing = await api.client.patch("/api/v1/id-tokens/NOPE", json={"status": "Blocked"})
    assert missing.status_code == 404
    assert (await api.client.delete("/api/v1/id-tokens/RFID-2")).status_code == 204
    assert (await api.client.get("/api/v1/id-tokens/RFID-2")).status_code == 404


async def test_api_tokens_create_and_revoke(api: ApiHarness) -> None:
    created = await api.client.post("/api/v1/api-tokens", json={"name": "optimizer"})
    assert created.status_code == 201
    plaintext = created.json()["plaintext"]
    token_id = created.json()["token"]["id"]
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert (await api.anonymous.get("/api/v1/stations", headers=headers)).status_code == 200
    names = [t["name"] for t in (await api.client.get("/api/v1/api-tokens")).json()]
    assert names == ["tests", "optimizer"]
    assert (await api.client.delete(f"/api/v1/api-tokens/{token_id}")).status_code == 204
    # Revocation through the API takes effect at once (the verification cache is cleared).
    assert (await api.anonymous.get("/api/v1/stations", headers=headers)).status_code == 401
    assert (await api.client.delete(f"/api/v1/api-tokens/{token_id}")).status_code == 404
    empty = await api.client.post("/api/v1/api-tokens", json={"name": ""})
    assert empty.status_code == 422


async def test_station_shows_boot_info(api: ApiHarness) -> None:
    info = BootInfo("Vendor", "Model-X", "SN1", "1.0")
    await api.services.db.write(
        lambda c: repo.record_boot(c, "CS1", info, RegistrationStatus.ACCEPTED, T0)
    )
    await api.services.db.write(
        lambda c: repo.upsert_connector_status(c, "CS1", 1, 1, "Occupied", T0)
    )
    station = (await api.client.get("/api/v1/stations/CS1")).json()
    assert station["vendor_name"] == "Vendor"
    assert station["model"] == "Model-X"
    assert station["registration_status"] == "Accepted"
    assert station["last_boot_at"].startswith("2026-01-01T08:00:00")
    evses = (await api.client.get("/api/v1/stations/CS1/evses")).json()
    assert evses == [
        {
            "evse_id": 1,
            "connectors": [
                {
                    "connector_id": 1,
                    "status": "Occupied",
                    "updated_at": evses[0]["connectors"][0]["updated_at"],
                }
            ],
        }
    ]


async def test_station_meter_values_in_a_time_range_paged_in_the_database(
    api: ApiHarness,
) -> None:
    await _seed_transaction(api, "tx-1", samples=5, ended=True)
    await _seed_transaction(api, "tx-2", samples=2, ended=False)
    params = {
        "since": (T0 + timedelta(minutes=1)).isoformat(),
        "until": (T0 + timedelta(minutes=4)).isoformat(),
        "measurand": "Energy.Active.Import.Register",
    }
    page = (await api.client.get("/api/v1/stations/CS1/meter-values", params=params)).json()
    # minutes 1, 2, 3 of tx-1 and minute 1 of tx-2, oldest first
    assert page["total"] == 4
    assert sorted(m["value"] for m in page["items"]) == [1100.0, 1100.0, 1200.0, 1300.0]
    one = (
        await api.client.get(
            "/api/v1/stations/CS1/meter-values", params={**params, "offset": 3, "limit": 1}
        )
    ).json()
    assert one["total"] == 4 and [m["value"] for m in one["items"]] == [1300.0]
    default = (await api.client.get("/api/v1/stations/CS1/meter-values")).json()
    assert default["total"] == 0  # the last 24 h: the seeded samples are older
    too_long = await api.client.get(
        "/api/v1/stations/CS1/meter-values",
        params={"since": T0.isoformat(), "until": (T0 + timedelta(days=40)).isoformat()},
    )
    assert too_long.status_code == 422
    naive = await api.client.get(
        "/api/v1/stations/CS1/meter-values", params={"since": "2026-06-01T08:00:00"}
    )
    assert naive.status_code == 422
    assert (await api.client.get("/api/v1/stations/NOPE/meter-values")).status_code == 404


async def test_a_long_transactions_meter_values_page_past_the_first_ten_thousand(
    api: ApiHarness,
) -> None:
    """The transaction's meter values are paged in the database: a page past 10,000 samples
    (the old in-memory cut-off) is there."""
    await _seed_transaction(api, "tx-long", samples=10_050, ended=False)
    page = (
        await api.client.get(
            "/api/v1/stations/CS1/transactions/tx-long/meter-values",
            params={"offset": 10_040, "limit": 5, "measurand": "Energy.Active.Import.Register"},
        )
    ).json()
    assert page["total"] == 10_050
    assert [m["value"] for m in page["items"]] == [1000.0 + 100 * n for n in range(10_040, 10_045)]
    missing = await api.client.get("/api/v1/stations/CS1/transactions/nope/meter-values")
    assert missing.status_code == 404
