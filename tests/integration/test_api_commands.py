"""Every CSMS-initiated OCPP 2.0.1 action through the REST API to a real station (the `ocpp`
library's v201 ChargePoint) over a real websocket on loopback, and every command error."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csms.oca_schemas import CSMS_INITIATED_ACTIONS
from tests.support.api_harness import STATION_PASSWORD, ApiHarness, api_harness
from tests.support.api_payloads import DISCHARGE_PROFILE, EXAMPLE_REQUESTS
from tests.support.api_station import ApiTestStation, connected_station


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path, with_ocpp=True, command_timeout_s=1.0) as harness:
        await harness.add_station("CS1")
        yield harness


@pytest.fixture
async def station(api: ApiHarness) -> AsyncIterator[ApiTestStation]:
    assert api.ocpp_url is not None
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as cs:
        # The station reports its EVSE so that K01.FR.28 (EVSE must exist) holds.
        await cs.call_status_notification(evse_id=1, connector_id=1)
        yield cs


async def test_station_shows_live_connection_state(
    api: ApiHarness, station: ApiTestStation
) -> None:
    shown = (await api.client.get("/api/v1/stations/CS1")).json()
    assert shown["connected"] is True
    assert shown["node"]
    assert shown["registration_status"] == "Accepted"
    assert shown["vendor_name"] == "ApiTestVendor"
    assert shown["firmware_version"] == "1.2.3"
    evses = (await api.client.get("/api/v1/stations/CS1/evses")).json()
    assert evses[0]["connectors"][0]["status"] == "Available"


async def test_every_action_reaches_the_station_unchanged(
    api: ApiHarness, station: ApiTestStation
) -> None:
    for action in CSMS_INITIATED_ACTIONS:
        payload = copy.deepcopy(EXAMPLE_REQUESTS[action])
        response = await api.client.post(f"/api/v1/stations/CS1/ocpp/{action}", json=payload)
        assert response.status_code == 200, (action, response.text)
        received = station.calls_of(action)
        assert received, action
        assert received[-1].payload == payload, action  # passed through unchanged
        expected = station.answer(action, payload)
        assert response.json() == expected, action  # the station's answer, unchanged


async def test_commands_are_in_the_message_log(api: ApiHarness, station: ApiTestStation) -> None:
    await api.client.post("/api/v1/stations/CS1/ocpp/Reset", json={"type": "OnIdle"})
    log = (await api.client.get("/api/v1/stations/CS1/messages")).json()
    resets = [entry for entry in log["items"] if entry["action"] == "Reset"]
    assert {entry["direction"] for entry in resets} >= {"out"}


async def test_unknown_station_or_action_is_404(api: ApiHarness, station: ApiTestStation) -> None:
    unknown_station = await api.client.post(
        "/api/v1/stations/NOPE/ocpp/Reset", json={"type": "OnIdle"}
    )
    assert unknown_station.status_code == 404
    unknown_action = await api.client.post("/api/v1/stations/CS1/ocpp/Explode", json={})
    assert unknown_action.status_code == 404
    assert "Explode" in unknown_action.json()["detail"]
    station_side = await api.client.post("/api/v1/stations/CS1/ocpp/BootNotification", json={})
    assert station_side.status_code == 404
    assert station.received == []


async def test_offline_station_is_409(api: ApiHarness) -> None:
    response = await api.client.post("/api/v1/stations/CS1/ocpp/Reset", json={"type": "OnIdle"})
    assert response.status_code == 409
    assert "not connected" in response.json()["detail"]


async def test_invalid_payload_is_422_naming_the_field(
    api: ApiHarness, station: ApiTestStation
) -> None:
    response = await api.client.post("/api/v1/stations/CS1/ocpp/Reset", json={"type": "Later"})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["field"] == "type"
    assert "Later" in body["errors"][0]["message"]
    missing = await api.client.post("/api/v1/stations/CS1/ocpp/SetChargingProfile", json={})
    assert missing.status_code == 422
    fields = " ".join(e["message"] for e in missing.json()["errors"])
    assert "evseId" in fields and "chargingProfile" in fields
    not_an_object = await api.client.post("/api/v1/stations/CS1/ocpp/Reset", json=[1])
    assert not_an_object.status_code == 422
    assert station.received == []  # nothing invalid was sent


async def test_call_error_is_502_with_its_code(api: ApiHarness, station: ApiTestStation) -> None:
    station.behaviour.call_errors["Reset"] = ("NotSupported", "no reset here")
    response = await api.client.post("/api/v1/stations/CS1/ocpp/Reset", json={"type": "OnIdle"})
    assert response.status_code == 502
    assert response.json()["code"] == "NotSupported"
    assert "no reset here" in response.json()["detail"]


async def test_silent_station_is_504(api: ApiHarness, station: ApiTestStation) -> None:
    station.behaviour.silent.add("GetLog")
    response = await api.client.post(
        "/api/v1/stations/CS1/ocpp/GetLog", json=EXAMPLE_REQUESTS["GetLog"]
    )
    assert response.status_code == 504
    assert "no answer" in response.json()["detail"]


async def test_k01_set_charging_profile_with_negative_limit(
    api: ApiHarness, station: ApiTestStation
) -> None:
    response = await api.client.post(
        "/api/v1/stations/CS1/charging-profiles",
        json={"evse_id": 1, "charging_profile": DISCHARGE_PROFILE},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Accepted"
    assert response.json()["stored"] is True
    sent = station.calls_of("SetChargingProfile")[-1].payload
    assert sent == {"evseId": 1, "chargingProfile": DISCHARGE_PROFILE}
    stored = (await api.client.get("/api/v1/stations/CS1/charging-profiles")).json()
    assert [p["profile_id"] for p in stored] == [7]
    assert stored[0]["profile"]["chargingSchedule"][0]["chargingSchedulePeriod"][1]["limit"] < 0

    cleared = await api.client.delete("/api/v1/stations/CS1/charging-profiles/7")
    assert cleared.json() == {"status": "Accepted"}
    assert (await api.client.get("/api/v1/stations/CS1/charging-profiles")).json() == []


async def test_k01_fr31_first_start_period_must_be_zero(
    api: ApiHarness, station: ApiTestStation
) -> None:
    profile = copy.deepcopy(DISCHARGE_PROFILE)
    profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["startPeriod"] = 60
    response = await api.client.post(
        "/api/v1/stations/CS1/charging-profiles", json={"evse_id": 1, "charging_profile": profile}
    )
    assert response.status_code == 422
    assert station.calls_of("SetChargingProfile") == []


async def test_k01_fr35_start_periods_must_increase(
    api: ApiHarness, station: ApiTestStation
) -> None:
    profile = copy.deepcopy(DISCHARGE_PROFILE)
    profile["chargingSchedule"][0]["chargingSchedulePeriod"][1]["startPeriod"] = 0
    response = await api.client.post(
        "/api/v1/stations/CS1/charging-profiles", json={"evse_id": 1, "charging_profile": profile}
    )
    assert response.status_code == 422
    assert station.calls_of("SetChargingProfile") == []


async def test_rejected_profile_is_not_stored(api: ApiHarness, station: ApiTestStation) -> None:
    station.behaviour.responses["SetChargingProfile"] = {"status": "Rejected"}
    response = await api.client.post(
        "/api/v1/stations/CS1/charging-profiles",
        json={"evse_id": 1, "charging_profile": DISCHARGE_PROFILE},
    )
    assert response.json() == {"status": "Rejected", "status_info": None, "stored": False}
    assert (await api.client.get("/api/v1/stations/CS1/charging-profiles")).json() == []


async def test_typed_commands(api: ApiHarness, station: ApiTestStation) -> None:
    reset = await api.client.post("/api/v1/stations/CS1/commands/reset", json={"type": "Immediate"})
    assert reset.json() == {"status": "Accepted"}
    assert station.calls_of("Reset")[-1].payload == {"type": "Immediate"}

    start = await api.client.post(
        "/api/v1/stations/CS1/commands/request-start",
        json={"id_token": "TOKEN-1", "evse_id": 1, "remote_start_id": 9},
    )
    assert start.json()["status"] == "Accepted"
    assert station.calls_of("RequestStartTransaction")[-1].payload == {
        "idToken": {"idToken": "TOKEN-1", "type": "Central"},
        "remoteStartId": 9,
        "evseId": 1,
    }
    stop = await api.client.post(
        "/api/v1/stations/CS1/commands/request-stop", json={"transaction_id": "tx-1"}
    )
    assert stop.json() == {"status": "Accepted"}

    got = await api.client.post(
        "/api/v1/stations/CS1/commands/get-variables",
        json={"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
    )
    result = got.json()["getVariableResult"][0]
    assert result["attributeStatus"] == "Accepted"
    assert result["attributeValue"] == "300"
    set_answer = await api.client.post(
        "/api/v1/stations/CS1/commands/set-variables",
        json={
            "variables": [
                {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "60"}
            ]
        },
    )
    assert set_answer.json()["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert station.variables[("OCPPCommCtrlr", "HeartbeatInterval")] == "60"

    bad = await api.client.post("/api/v1/stations/CS1/commands/reset", json={"type": "Soon"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "type"


async def test_password_rotation_kept_only_when_accepted(
    api: ApiHarness, station: ApiTestStation
) -> None:
    rejected_key = ("SecurityCtrlr", "BasicAuthPassword")
    station.behaviour.rejected_variables.add(rejected_key)
    refused = await api.client.post(
        "/api/v1/stations/CS1/password-rotation", json={"password": "brand-new-password-1"}
    )
    assert refused.status_code == 200
    assert refused.json()["applied"] is False
    assert refused.json()["status"] == "Rejected"
    assert refused.json()["password"] is None
    assert await _password_works(api, "CS1", STATION_PASSWORD)

    station.behaviour.rejected_variables.clear()
    rotated = await api.client.post("/api/v1/stations/CS1/password-rotation", json={})
    assert rotated.status_code == 200
    new_password = rotated.json()["password"]
    assert rotated.json()["applied"] is True
    assert 16 <= len(new_password) <= 40
    assert station.variables[rejected_key] == new_password
    assert await _password_works(api, "CS1", new_password)
    assert not await _password_works(api, "CS1", STATION_PASSWORD)


async def _password_works(api: ApiHarness, station_id: str, password: str) -> bool:
    auth = await api.services.stations.auth_info(station_id)
    assert auth is not None and auth[1] is not None
    return await api.services.stations.verify_password(station_id, password, auth[1])


async def test_password_rotation_of_offline_station_is_409(api: ApiHarness) -> None:
    response = await api.client.post("/api/v1/stations/CS1/password-rotation", json={})
    assert response.status_code == 409
    assert (await api.client.post("/api/v1/stations/NOPE/password-rotation")).status_code == 404


async def test_security_profile_upgrade_refuses_weaker_connections(
    api: ApiHarness, station: ApiTestStation
) -> None:
    upgraded = await api.client.post(
        "/api/v1/stations/CS1/security-profile", json={"security_profile": 2}
    )
    assert upgraded.status_code == 200
    assert api.ocpp_url is not None
    with pytest.raises(Exception, match=r"40[01]|HTTP"):
        async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD, boot=False):
            pass


async def test_station_disconnecting_mid_command_is_502(tmp_path: Path) -> None:
    # A long command timeout: the answer must come from the disconnect, not from the timeout.
    async with api_harness(tmp_path, with_ocpp=True, command_timeout_s=60.0) as api:
        await api.add_station("CS1")
        assert api.ocpp_url is not None
        async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as station:
            station.behaviour.silent.add("GetLog")
            pending = asyncio.create_task(
                api.client.post("/api/v1/stations/CS1/ocpp/GetLog", json=EXAMPLE_REQUESTS["GetLog"])
            )
            await station.wait_for_call("GetLog")
            await station.disconnect()
            response = await asyncio.wait_for(pending, 30)
        assert response.status_code == 502
        assert "disconnected" in response.json()["detail"]
        shown = (await api.client.get("/api/v1/stations/CS1")).json()
        assert shown["connected"] is False


NETWORK_PROFILE = {
    "ocppVersion": "OCPP20",
    "ocppTransport": "JSON",
    "ocppCsmsUrl": "wss://csms.example/ocpp",
    "messageTimeout": 30,
    "securityProfile": 1,
    "ocppInterface": "Wired0",
}


async def test_a05_upgrade_sends_set_network_profile_first(
    api: ApiHarness, station: ApiTestStation
) -> None:
    station.behaviour.responses["SetNetworkProfile"] = {"status": "Rejected"}
    refused = await api.client.post(
        "/api/v1/stations/CS1/security-profile",
        json={"security_profile": 2, "connection_data": NETWORK_PROFILE},
    )
    assert refused.json() == {
        "station_id": "CS1",
        "security_profile": 1,
        "status": "Rejected",
        "applied": False,
    }
    assert (await api.client.get("/api/v1/stations/CS1")).json()["security_profile"] == 1

    station.behaviour.responses.pop("SetNetworkProfile")
    accepted = await api.client.post(
        "/api/v1/stations/CS1/security-profile",
        json={"security_profile": 2, "configuration_slot": 2, "connection_data": NETWORK_PROFILE},
    )
    assert accepted.json()["applied"] is True
    sent = station.calls_of("SetNetworkProfile")[-1].payload
    assert sent["configurationSlot"] == 2
    assert sent["connectionData"]["securityProfile"] == 2
    assert (await api.client.get("/api/v1/stations/CS1")).json()["security_profile"] == 2

    bad = await api.client.post(
        "/api/v1/stations/CS1/security-profile",
        json={"security_profile": 3, "connection_data": {"ocppVersion": "OCPP20"}},
    )
    assert bad.status_code == 422


async def test_command_outcomes_are_counted(api: ApiHarness, station: ApiTestStation) -> None:
    station.behaviour.call_errors["ClearCache"] = ("InternalError", "disk full")
    await api.client.post("/api/v1/stations/CS1/ocpp/ClearCache", json={})
    await api.client.post("/api/v1/stations/CS1/ocpp/GetLocalListVersion", json={})
    counts = api.app.state.services.command_counts
    assert counts[("ClearCache", "CallErrorReceived")] == 1
    assert counts[("GetLocalListVersion", "ok")] == 1


async def test_deleting_a_connected_station_closes_its_websocket(
    api: ApiHarness, station: ApiTestStation
) -> None:
    assert (await api.client.get("/api/v1/stations/CS1")).json()["connected"] is True
    assert (await api.client.delete("/api/v1/stations/CS1")).status_code == 204
    await asyncio.wait_for(station._connection.wait_closed(), 5)  # closed by the CSMS
    assert station._connection.close_reason == "station deleted"
    assert (await api.client.get("/api/v1/stations/CS1")).status_code == 404
