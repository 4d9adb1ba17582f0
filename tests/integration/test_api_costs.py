"""Running cost pushed with CostUpdated (OCPP 2.0.1 I02) when a station's tariff changes, and on
request, to a real station over a real websocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ocpp.v201 import call

from tests.support.api_harness import STATION_PASSWORD, ApiHarness, api_harness
from tests.support.api_station import ApiTestStation, connected_station


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path, with_ocpp=True, command_timeout_s=2.0) as harness:
        await harness.add_station("CS1")
        yield harness


def _energy(at: datetime, wh: float) -> list[dict[str, object]]:
    return [
        {
            "timestamp": at.isoformat().replace("+00:00", "Z"),
            "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}],
        }
    ]


async def _start_transaction(cs: ApiTestStation, tx_id: str, energy_wh: list[float]) -> None:
    # Timestamps a few minutes back, so the time price counts a known minimum.
    start = datetime.now(UTC) - timedelta(minutes=10)
    for seq_no, wh in enumerate(energy_wh):
        await cs.call(
            call.TransactionEvent(
                event_type="Started" if seq_no == 0 else "Updated",
                timestamp=(start + timedelta(minutes=seq_no)).isoformat().replace("+00:00", "Z"),
                trigger_reason="Authorized" if seq_no == 0 else "MeterValuePeriodic",
                seq_no=seq_no,
                transaction_info={"transactionId": tx_id},
                evse={"id": 1, "connectorId": 1},
                meter_value=_energy(start + timedelta(minutes=seq_no), wh),
            ),
            suppress=False,
        )


async def test_i02_tariff_change_sends_cost_updated_for_active_transactions(
    api: ApiHarness,
) -> None:
    assert api.ocpp_url is not None
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as cs:
        await cs.call_status_notification(evse_id=1, connector_id=1)
        await _start_transaction(cs, "TX-1", [1000.0, 6000.0])  # 5 kWh delivered so far

        put = await api.client.put(
            "/api/v1/stations/CS1/tariff",
            json={"currency": "AUD", "price_per_kwh": 0.30, "price_per_hour": 0.0},
        )
        assert put.status_code == 200
        received = await cs.wait_for_call("CostUpdated")
        assert received.payload == {"totalCost": 1.5, "transactionId": "TX-1"}  # 5 kWh x 0.30

        # On request: the time price now counts too (the transaction started >= 10 min ago).
        await api.client.put(
            "/api/v1/stations/CS1/tariff",
            json={"currency": "AUD", "price_per_kwh": 0.30, "price_per_hour": 6.0},
        )
        pushed = await api.client.post("/api/v1/stations/CS1/cost-updates")
        assert pushed.status_code == 200
        [result] = pushed.json()
        assert result["transaction_id"] == "TX-1" and result["sent"] is True
        assert result["total_cost"] >= 1.5 + 1.0  # 10 minutes x 6.0 per hour
        assert cs.calls_of("CostUpdated")[-1].payload["totalCost"] == result["total_cost"]


async def test_i02_cost_updates_for_an_offline_station_report_the_error(api: ApiHarness) -> None:
    assert api.ocpp_url is not None
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as cs:
        await cs.call_status_notification(evse_id=1, connector_id=1)
        await _start_transaction(cs, "TX-2", [0.0, 2000.0])
    await api.client.put(
        "/api/v1/stations/CS1/tariff", json={"currency": "AUD", "price_per_kwh": 1}
    )
    pushed = await api.client.post("/api/v1/stations/CS1/cost-updates")
    [result] = pushed.json()
    assert result["sent"] is False and "not connected" in result["error"]
    assert (await api.client.post("/api/v1/stations/NOPE/cost-updates")).status_code == 404
