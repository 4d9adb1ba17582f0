"""F01/F02 remote start: the CSMS accepts the idToken it sent in RequestStartTransaction (even one
not on its list) on that station, so that a station with StopTxOnInvalidId does not end the
session it was just told to start; a token on file that may not charge is refused up front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call

from tests.support.api_harness import STATION_PASSWORD, ApiHarness, api_harness
from tests.support.api_station import ApiTestStation, connected_station
from tests.support.csms_payloads import tx_event


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path, with_ocpp=True, command_timeout_s=2.0) as harness:
        await harness.add_station("CS1")
        await harness.add_station("CS2")
        yield harness


@pytest.fixture
async def station(api: ApiHarness) -> AsyncIterator[ApiTestStation]:
    assert api.ocpp_url is not None
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as cs:
        await cs.call_status_notification(evse_id=1, connector_id=1)
        yield cs


async def _remote_start(api: ApiHarness, station_id: str, token: str, remote_start_id: int) -> Any:
    return await api.client.post(
        f"/api/v1/stations/{station_id}/commands/request-start",
        json={"id_token": token, "evse_id": 1, "remote_start_id": remote_start_id},
    )


async def _authorize(station: ApiTestStation, token: str, type_: str = "Central") -> str:
    answer = await station.call(call.Authorize(id_token={"idToken": token, "type": type_}))
    return str(answer.id_token_info["status"])


async def _started(
    station: ApiTestStation, token: str, remote_start_id: int | None, tx_id: str
) -> str:
    payload = tx_event("Started", 0, tx_id=tx_id)
    payload["triggerReason"] = "RemoteStart"
    payload["idToken"] = {"idToken": token, "type": "Central"}
    if remote_start_id is not None:
        payload["transactionInfo"]["remoteStartId"] = remote_start_id
    answer = await station.call(
        call.TransactionEvent(
            event_type=payload["eventType"],
            timestamp=payload["timestamp"],
            trigger_reason=payload["triggerReason"],
            seq_no=payload["seqNo"],
            transaction_info=payload["transactionInfo"],
            evse=payload["evse"],
            id_token=payload["idToken"],
        )
    )
    return str(answer.id_token_info["status"])


async def test_f01_token_sent_in_request_start_is_accepted_on_that_station(
    api: ApiHarness, station: ApiTestStation
) -> None:
    assert await _authorize(station, "APP-USER-7") == "Unknown"  # not on file, not started
    response = await _remote_start(api, "CS1", "APP-USER-7", 41)
    assert response.status_code == 200 and response.json()["status"] == "Accepted"
    # AuthorizeRemoteStart=true: the station asks before it starts.
    assert await _authorize(station, "APP-USER-7") == "Accepted"
    # The TransactionEvent echoing the remoteStartId.
    assert await _started(station, "APP-USER-7", 41, "TX-R1") == "Accepted"


async def test_f01_remote_start_vouches_only_for_its_token_id_and_station(
    api: ApiHarness, station: ApiTestStation
) -> None:
    await _remote_start(api, "CS1", "APP-USER-7", 41)
    assert await _authorize(station, "SOMEONE-ELSE") == "Unknown"
    assert await _authorize(station, "APP-USER-7", type_="ISO14443") == "Unknown"
    assert await _started(station, "APP-USER-7", 99, "TX-R2") == "Unknown"  # other remoteStartId
    assert api.ocpp_url is not None
    async with connected_station(api.ocpp_url, "CS2", STATION_PASSWORD) as other:
        assert await _authorize(other, "APP-USER-7") == "Unknown"  # sent to CS1, not CS2


async def test_f01_blocked_token_is_refused_before_anything_is_sent(
    api: ApiHarness, station: ApiTestStation
) -> None:
    created = await api.client.post(
        "/api/v1/id-tokens", json={"id_token": "STOLEN-1", "type": "Central", "status": "Blocked"}
    )
    assert created.status_code in (200, 201), created.text
    for url, body in (
        (
            "/api/v1/stations/CS1/commands/request-start",
            {"id_token": "STOLEN-1", "evse_id": 1, "remote_start_id": 5},
        ),
        (
            "/api/v1/stations/CS1/ocpp/RequestStartTransaction",
            {"idToken": {"idToken": "STOLEN-1", "type": "Central"}, "remoteStartId": 5},
        ),
    ):
        response = await api.client.post(url, json=body)
        assert response.status_code == 409, response.text
        assert "Blocked" in response.json()["detail"]
    assert station.calls_of("RequestStartTransaction") == []
    # And a remote start does not unblock it.
    assert await _authorize(station, "STOLEN-1") == "Blocked"


async def test_f01_token_on_file_keeps_its_own_answer(
    api: ApiHarness, station: ApiTestStation
) -> None:
    await api.client.post(
        "/api/v1/id-tokens", json={"id_token": "FLEET-1", "type": "Central", "status": "Accepted"}
    )
    assert (await _remote_start(api, "CS1", "FLEET-1", 3)).json()["status"] == "Accepted"
    assert await _started(station, "FLEET-1", 3, "TX-F1") == "Accepted"
