"""A station that reaches the ISO 15118 charging state (booted, EVSE known, transaction
running) and sends ISO 15118 messages, for the K15-K17 tests and the latency benchmark."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ocpp.charge_point import asdict, camel_to_snake_case, remove_nones, snake_to_camel_case
from ocpp.v201 import call

from csms.services.common import ocpp_datetime
from tests.support.csms_harness import BOOT, TestStation
from tests.support.csms_payloads import VALID, tx_event


async def send(station: TestStation, action: str, payload: dict[str, Any]) -> Any:
    """Send a CS -> CSMS CALL given as camelCase JSON; the CALLRESULT (camelCase dict)."""
    kwargs = camel_to_snake_case(payload)
    answer = await station.call(getattr(call, action)(**kwargs), suppress=False)
    result: dict[str, Any] = snake_to_camel_case(remove_nones(asdict(answer)))
    return result


async def start_charging(station: TestStation, tx_id: str = "TX1", evse_id: int = 1) -> None:
    """Boot, report the EVSE, start a transaction on it (now)."""
    await send(station, "BootNotification", BOOT)
    status = {**VALID["StatusNotification"], "evseId": evse_id}
    status["timestamp"] = ocpp_datetime(datetime.now(UTC))
    await send(station, "StatusNotification", status)
    started = tx_event("Started", 0, tx_id=tx_id, timestamp=ocpp_datetime(datetime.now(UTC)))
    started["evse"] = {"id": evse_id, "connectorId": 1}
    await send(station, "TransactionEvent", started)


def needs(evse_id: int = 1, **charging_needs: Any) -> dict[str, Any]:
    body = {"requestedEnergyTransfer": "DC", **charging_needs}
    return {"evseId": evse_id, "chargingNeeds": body}
