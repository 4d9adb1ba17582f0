"""Our CSMS against a third-party charging station: Node `ocpp-rpc` 2.2.1 in strict mode
(tests/interop/client.js). Every message our CSMS sends is checked by ocpp-rpc against the OCA
2.0.1 schemas (date-time formats included), and every message the station sends is one that
ocpp-rpc considers valid, so our CSMS must accept it. The station connects with Basic auth
(security profile 1); commands come from our REST API."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from csms.oca_schemas import CSMS_INITIATED_ACTIONS
from tests.support.api_harness import ApiHarness
from tests.support.api_payloads import EXAMPLE_REQUESTS
from tests.support.csms_pki import make_pki
from tests.support.interop import InteropStation, interop_station
from tests.support.interop_fixtures import (
    INTEROP_STATION_ID,
    STATION_PASSWORD,
    call_unvalidated,
    connect_with_options,
    csms_for_interop,
    harness_action_lists,
    iso_now,
    minimal_station_requests,
    set_slow_handler,
)
from tests.support.v2g_harness import LEAF, with_v2g_routes

pytestmark = pytest.mark.timeout(120)

# Both spellings of the occurrence error: the 2.0.1 spec's, and the 1.6 one ocpp-rpc (and the
# Python `ocpp` library) use on 2.0.1 too. Either is a correct answer to a missing field.
OCCURRENCE_CODES = {"OccurrenceConstraintViolation", "OccurenceConstraintViolation"}
API = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with csms_for_interop(tmp_path) as harness:
        yield harness


@pytest.fixture
async def station(api: ApiHarness) -> AsyncIterator[InteropStation]:
    """The Node station, connected with Basic auth, booted and reporting EVSE 1 / connector 1."""
    assert api.ocpp_url is not None
    async with interop_station() as node_station:
        connected = await node_station.connect(
            api.ocpp_url, INTEROP_STATION_ID, password=STATION_PASSWORD
        )
        assert connected["protocol"] == "ocpp2.0.1"
        boot = await node_station.boot()
        assert boot["status"] == "Accepted"
        assert boot["interval"] > 0
        status = await node_station.call(
            "StatusNotification",
            {
                "timestamp": iso_now(),
                "connectorStatus": "Available",
                "evseId": 1,
                "connectorId": 1,
            },
        )
        assert status.result == {}
        yield node_station
        # Nothing either side sent, over the whole test, broke the 2.0.1 schemas.
        await node_station.expect_no_strict_violations(origin=None)


def energy(value_wh: float, timestamp: str, context: str = "Sample.Periodic") -> dict[str, Any]:
    return {
        "timestamp": timestamp,
        "sampledValue": [
            {
                "value": value_wh,
                "measurand": "Energy.Active.Import.Register",
                "context": context,
                "unitOfMeasure": {"unit": "Wh"},
            },
            {
                "value": -7000.0,
                "measurand": "Power.Active.Import",
                "context": context,
                "unitOfMeasure": {"unit": "W"},
            },
        ],
    }


async def test_a00_wrong_password_is_refused_at_the_upgrade(api: ApiHarness) -> None:
    assert api.ocpp_url is not None
    async with interop_station() as node_station:
        refused = await node_station.try_connect(
            api.ocpp_url, INTEROP_STATION_ID, password="not-the-password-1234"
        )
        assert refused["event"] == "connect_failed"
        assert refused["status"] == 401
        unknown = await node_station.try_connect(
            api.ocpp_url, "NO-SUCH-STATION", password=STATION_PASSWORD
        )
        # OCPP-J: an identity the CSMS does not know SHOULD get HTTP 404.
        assert unknown["event"] == "connect_failed"
        assert unknown["status"] == 404
        assert node_station.strict_violations() == []


async def test_b01_e01_e06_f_k01_full_session_with_a_third_party_station(
    api: ApiHarness, station: InteropStation
) -> None:
    """Boot, status, authorize, a transaction with meter values, MeterValues, Heartbeat; then a
    discharge profile and a GetVariables from our REST API; all in ocpp-rpc strict mode."""
    created = await api.client.post(
        f"{API}/id-tokens", json={"id_token": "INTEROP-TAG-1", "type": "ISO14443"}
    )
    assert created.status_code == 201, created.text

    # C01: a token our API created is Accepted, an unknown one is not.
    authorized = await station.call(
        "Authorize", {"idToken": {"idToken": "INTEROP-TAG-1", "type": "ISO14443"}}
    )
    assert authorized.result["idTokenInfo"]["status"] == "Accepted"
    stranger = await station.call(
        "Authorize", {"idToken": {"idToken": "NOBODY-9", "type": "ISO14443"}}
    )
    assert stranger.result["idTokenInfo"]["status"] in ("Unknown", "Invalid")

    # E: a transaction, Started / Updated with meter values / Ended.
    tx_id = "interop-tx-1"
    started = await station.call(
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": iso_now(),
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": tx_id, "chargingState": "EVConnected"},
            "idToken": {"idToken": "INTEROP-TAG-1", "type": "ISO14443"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [energy(1000.0, iso_now(), "Transaction.Begin")],
        },
    )
    assert started.result["idTokenInfo"]["status"] == "Accepted"
    charging = await station.call(
        "StatusNotification",
        {"timestamp": iso_now(), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
    )
    assert charging.ok
    updated = await station.call(
        "TransactionEvent",
        {
            "eventType": "Updated",
            "timestamp": iso_now(),
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 1,
            "transactionInfo": {"transactionId": tx_id, "chargingState": "Charging"},
            "meterValue": [energy(1500.0, iso_now())],
        },
    )
    assert updated.ok, updated.error_code
    meter = await station.call(
        "MeterValues", {"evseId": 1, "meterValue": [energy(1600.0, iso_now())]}
    )
    assert meter.result == {}
    heartbeat = await station.call("Heartbeat", {})
    beat_time = datetime.fromisoformat(heartbeat.result["currentTime"])
    assert abs((beat_time - datetime.now(UTC)).total_seconds()) < 60

    # K01 from our REST API: a TxProfile with a negative limit (discharge on 2.0.1).
    profile = {
        "id": 501,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "transactionId": tx_id,
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": iso_now(),
                "duration": 3600,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": -5000.0},
                    {"startPeriod": 1800, "limit": -2500.0, "numberPhases": 3},
                ],
            }
        ],
    }
    since = len(station.events)
    answer = await api.client.post(
        f"{API}/stations/{INTEROP_STATION_ID}/charging-profiles",
        json={"evse_id": 1, "charging_profile": profile},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "Accepted"
    assert answer.json()["stored"] is True
    received = await station.wait_for_call("SetChargingProfile", since=since)
    assert received["payload"]["evseId"] == 1
    sent_schedule = received["payload"]["chargingProfile"]["chargingSchedule"][0]
    assert [p["limit"] for p in sent_schedule["chargingSchedulePeriod"]] == [-5000.0, -2500.0]
    stored = (await api.client.get(f"{API}/stations/{INTEROP_STATION_ID}/charging-profiles")).json()
    assert [p["profile_id"] for p in stored] == [501]

    # B06 from our REST API: the station's own device model answers.
    since = len(station.events)
    got = await api.client.post(
        f"{API}/stations/{INTEROP_STATION_ID}/commands/get-variables",
        json={
            "variables": [
                {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"},
                {"component": "OCPPCommCtrlr", "variable": "NoSuchVariable"},
            ]
        },
    )
    assert got.status_code == 200, got.text
    results = got.json()["getVariableResult"]
    assert results[0]["attributeStatus"] == "Accepted"
    assert results[0]["attributeValue"] == "300"
    assert results[1]["attributeStatus"] == "UnknownVariable"
    assert (await station.wait_for_call("GetVariables", since=since))["payload"]["getVariableData"][
        0
    ]["variable"] == {"name": "HeartbeatInterval"}

    ended = await station.call(
        "TransactionEvent",
        {
            "eventType": "Ended",
            "timestamp": iso_now(),
            "triggerReason": "StopAuthorized",
            "seqNo": 2,
            "transactionInfo": {
                "transactionId": tx_id,
                "chargingState": "Idle",
                "stoppedReason": "Local",
            },
            "idToken": {"idToken": "INTEROP-TAG-1", "type": "ISO14443"},
            "meterValue": [energy(1700.0, iso_now(), "Transaction.End")],
        },
    )
    assert ended.result["idTokenInfo"]["status"] == "Accepted"

    # What our CSMS recorded from the third-party station.
    detail = await api.client.get(f"{API}/stations/{INTEROP_STATION_ID}/transactions/{tx_id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["transaction"]["state"] == "Ended"
    assert body["transaction"]["stopped_reason"] == "Local"
    assert body["transaction"]["id_token"] == "INTEROP-TAG-1"
    assert [e["event_type"] for e in body["events"]] == ["Started", "Updated", "Ended"]
    register = "Energy.Active.Import.Register"
    imported = {m["value"] for m in body["meter_values"] if m["measurand"] == register}
    assert {1000.0, 1500.0, 1700.0} <= imported
    shown = (await api.client.get(f"{API}/stations/{INTEROP_STATION_ID}")).json()
    assert shown["registration_status"] == "Accepted"
    assert shown["vendor_name"] == "interop"


async def test_every_station_initiated_action_gets_a_schema_valid_answer(
    api: ApiHarness, station: InteropStation
) -> None:
    """Each of the 25 station-initiated 2.0.1 actions, with a minimal valid payload, gets a
    CALLRESULT that ocpp-rpc validates against its .conf schema."""
    station_side, _ = harness_action_lists()
    requests = minimal_station_requests(iso_now())
    assert sorted(requests) == sorted(station_side)  # every action the station can send
    failed: dict[str, str] = {}
    for action in station_side:
        outcome = await station.call(action, copy.deepcopy(requests[action]))
        if not outcome.ok:
            failed[action] = f"{outcome.error_code}: {outcome.error_description}"
    assert failed == {}
    await station.expect_no_strict_violations(origin=None)


async def test_every_csms_initiated_action_from_the_api_passes_strict_mode(
    api: ApiHarness, station: InteropStation
) -> None:
    """Every CSMS-initiated 2.0.1 action sent through our REST API reaches the ocpp-rpc station
    unchanged and schema-valid, and its (default, schema-valid) answer comes back through the
    API. Follow-ups the station sends (NotifyReport, triggered messages) are accepted too."""
    _, csms_side = harness_action_lists()
    assert sorted(CSMS_INITIATED_ACTIONS) == sorted(csms_side)
    problems: dict[str, str] = {}
    for action in CSMS_INITIATED_ACTIONS:
        payload = copy.deepcopy(EXAMPLE_REQUESTS[action])
        since = len(station.events)
        response = await api.client.post(
            f"{API}/stations/{INTEROP_STATION_ID}/ocpp/{action}", json=payload
        )
        if response.status_code != 200:
            problems[action] = f"{response.status_code} {response.text}"
            continue
        received = await station.wait_for_call(action, since=since)
        if received["payload"] != payload:
            problems[action] = f"sent {payload}, station got {received['payload']}"
        sent = await station.wait_event("sent_result", since=since)
        if sent["payload"] != response.json():
            problems[action] = f"station answered {sent['payload']}, API gave {response.json()}"
    assert problems == {}
    # The NotifyReport that follows GetBaseReport / GetReport was accepted and stored.
    notify = [e for e in station.events if e.get("event") == "call_result"]
    assert any(e["action"] == "NotifyReport" for e in notify)
    await station.expect_no_strict_violations(origin=None)


@pytest.mark.parametrize(
    ("action", "payload", "expected_codes"),
    [
        pytest.param("Heartbeat", {"unexpected": 1}, {"FormatViolation"}, id="additional-property"),
        pytest.param(
            "StatusNotification",
            {"timestamp": "2026-01-01T00:00:00Z", "connectorStatus": "Available", "evseId": 1},
            OCCURRENCE_CODES,
            id="missing-required",
        ),
        pytest.param(
            "StatusNotification",
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "connectorStatus": "Available",
                "evseId": "one",
                "connectorId": 1,
            },
            {"TypeConstraintViolation"},
            id="wrong-type",
        ),
        pytest.param(
            "StatusNotification",
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "connectorStatus": "Melted",
                "evseId": 1,
                "connectorId": 1,
            },
            {"PropertyConstraintViolation"},
            id="enum-value",
        ),
        pytest.param(
            "Authorize",
            {"idToken": {"idToken": "X" * 37, "type": "ISO14443"}},
            {"PropertyConstraintViolation", "FormatViolation"},
            id="too-long",
        ),
        pytest.param("Explode", {}, {"NotImplemented"}, id="unknown-action"),
    ],
)
async def test_malformed_call_from_the_station_gets_the_spec_callerror(
    api: ApiHarness,
    station: InteropStation,
    action: str,
    payload: dict[str, Any],
    expected_codes: set[str],
) -> None:
    """OCPP-J 2.0.1 part 4 §4.3: a CALL that breaks its schema gets a CALLERROR naming the
    kind of violation; an unknown action gets NotImplemented. The station stays connected."""
    outcome = await call_unvalidated(station, action, payload)
    assert not outcome.ok, f"{action} {payload} was accepted: {outcome.payload}"
    assert outcome.error_code in expected_codes, (outcome.error_code, outcome.error_description)
    # OCPP-J §4.2.3: errorDescription is at most 255 characters.
    assert len(outcome.error_description) <= 255, outcome.error_description
    # The connection survives a bad CALL: the next good one is answered.
    assert (await station.call("Heartbeat", {})).ok
    assert not any(e.get("event") == "disconnected" for e in station.events)


async def test_callerror_from_the_station_is_reported_by_the_api(
    api: ApiHarness, station: InteropStation
) -> None:
    """A station that refuses a command with a CALLERROR: the API says 502 with the code."""
    await station.set_handler(
        "Reset", error={"code": "NotSupported", "description": "no resets here"}
    )
    response = await api.client.post(
        f"{API}/stations/{INTEROP_STATION_ID}/commands/reset", json={"type": "Immediate"}
    )
    assert response.status_code == 502, response.text
    assert "NotSupported" in response.text


async def test_timestamps_with_a_numeric_offset_are_accepted(
    api: ApiHarness, station: InteropStation
) -> None:
    """RFC 3339 with a numeric offset instead of Z is valid 2.0.1 (ocpp-rpc accepts it)."""
    local = datetime.now(timezone(timedelta(hours=10))).isoformat(timespec="seconds")
    assert local.endswith("+10:00")
    outcome = await station.call(
        "StatusNotification",
        {"timestamp": local, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    )
    assert outcome.result == {}


async def test_f01_f03_remote_start_and_stop_from_the_api(api: ApiHarness) -> None:
    """RequestStartTransaction (with a discharge TxProfile) and RequestStopTransaction from our
    REST API to the ocpp-rpc station, which starts and ends the transaction it was asked to."""
    assert api.ocpp_url is not None
    async with interop_station() as node_station:
        await connect_with_options(
            node_station,
            api.ocpp_url,
            INTEROP_STATION_ID,
            STATION_PASSWORD,
            remote_transactions=True,
        )
        assert (await node_station.boot())["status"] == "Accepted"
        available = {"connectorStatus": "Available", "evseId": 1, "connectorId": 1}
        assert (
            await node_station.call("StatusNotification", {"timestamp": iso_now(), **available})
        ).ok
        station_path = f"{API}/stations/{INTEROP_STATION_ID}"
        token = await api.client.post(
            f"{API}/id-tokens", json={"id_token": "REMOTE-1", "type": "Central"}
        )
        assert token.status_code == 201, token.text
        start = await api.client.post(
            f"{station_path}/commands/request-start",
            json={
                "id_token": "REMOTE-1",
                "evse_id": 1,
                "remote_start_id": 31,
                "charging_profile": {
                    "id": 77,
                    "stackLevel": 0,
                    "chargingProfilePurpose": "TxProfile",
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": [
                        {
                            "id": 1,
                            "chargingRateUnit": "W",
                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -3000.0}],
                        }
                    ],
                },
            },
        )
        assert start.status_code == 200, start.text
        assert start.json()["status"] == "Accepted"
        sent = node_station.received_calls("RequestStartTransaction")[-1]["payload"]
        assert sent["idToken"] == {"idToken": "REMOTE-1", "type": "Central"}
        limits = sent["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
        assert limits[0]["limit"] == -3000.0

        async def recorded(state: str) -> dict[str, Any] | None:
            page = (await api.client.get(f"{station_path}/transactions")).json()
            found = [t for t in page["items"] if t["transaction_id"] == "rtx-1"]
            return found[0] if found and found[0]["state"] == state else None

        # The station's TransactionEvent Started (RemoteStart) was accepted and recorded.
        started = await node_station.wait_event("call_result", action="TransactionEvent")
        assert started["payload"]["idTokenInfo"]["status"] == "Accepted"
        assert await recorded("Active") is not None

        unknown = await api.client.post(
            f"{station_path}/commands/request-stop", json={"transaction_id": "no-such-tx"}
        )
        assert unknown.status_code == 200, unknown.text
        assert unknown.json()["status"] == "Rejected"
        since = len(node_station.events)
        stop = await api.client.post(
            f"{station_path}/commands/request-stop", json={"transaction_id": "rtx-1"}
        )
        assert stop.status_code == 200, stop.text
        assert stop.json()["status"] == "Accepted"
        ended = await node_station.wait_event("call_result", since=since, action="TransactionEvent")
        assert ended["payload"] == {}  # no idToken in the Ended event, nothing to authorize
        await node_station.sync()
        detail = (await api.client.get(f"{station_path}/transactions/rtx-1")).json()
        assert detail["transaction"]["state"] == "Ended"
        assert detail["transaction"]["stopped_reason"] == "Remote"
        assert [e["event_type"] for e in detail["events"]] == ["Started", "Ended"]
        await node_station.expect_no_strict_violations(origin=None)


async def test_v2g_plan_reaches_a_third_party_station_as_a_valid_tx_profile(
    api: ApiHarness, station: InteropStation
) -> None:
    """The V2G path: vehicle context from the ocpp-rpc station (transaction with SoC,
    NotifyEVChargingNeeds with a departure time), prices through the API, then the optimized
    plan sent as a TxProfile; ocpp-rpc validates the profile our optimizer built."""
    with_v2g_routes(api)
    leaf = dict(LEAF, station_id=INTEROP_STATION_ID, evse_id=1)
    assert (await api.client.post(f"{API}/vehicles", json=leaf)).status_code == 201
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    intervals = [
        {
            "start": (hour + timedelta(minutes=30 * k)).isoformat().replace("+00:00", "Z"),
            "interval_s": 1800,
            "import_c_kwh": 10.0 if k < 8 else 60.0 if k < 12 else 15.0,
            "export_c_kwh": (10.0 if k < 8 else 60.0 if k < 12 else 15.0) * 0.9,
        }
        for k in range(48)
    ]
    prices = await api.client.put(f"{API}/prices", json={"intervals": intervals})
    assert prices.status_code == 200, prices.text

    soc = {
        "value": 60.0,
        "measurand": "SoC",
        "location": "EV",
        "unitOfMeasure": {"unit": "Percent"},
    }
    started = await station.call(
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": iso_now(),
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "v2g-tx-1", "chargingState": "EVConnected"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": iso_now(), "sampledValue": [soc]}],
        },
    )
    assert started.ok, started.error_description
    departure = (hour + timedelta(hours=10)).isoformat().replace("+00:00", "Z")
    before_needs = len(station.events)
    needs = await station.call(
        "NotifyEVChargingNeeds",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC",
                "departureTime": departure,
                "dcChargingParameters": {
                    "evMaxCurrent": 100,
                    "evMaxVoltage": 400,
                    "energyAmount": 12000,
                    "stateOfCharge": 60,
                },
            },
        },
    )
    assert needs.result["status"] in ("Accepted", "Processing")
    # K16.FR.12: the EV's needs bring their own TxProfile; the API's plan comes after it.
    from_needs = (await station.wait_for_call("SetChargingProfile", since=before_needs))["payload"]
    assert from_needs["chargingProfile"]["transactionId"] == "v2g-tx-1"
    context = (await api.client.get(f"{API}/vehicles/leaf-1/session")).json()
    assert context["departure_source"] == "ev"
    assert context["transaction_id"] == "v2g-tx-1"

    since = len(station.events)
    response = await api.client.post(f"{API}/stations/{INTEROP_STATION_ID}/v2g/optimize")
    assert response.status_code == 200, response.text
    sent = response.json()
    assert sent["status"] == "Accepted"
    received = (await station.wait_for_call("SetChargingProfile", since=since))["payload"]
    profile = received["chargingProfile"]
    assert profile["chargingProfilePurpose"] == "TxProfile"
    assert profile["transactionId"] == "v2g-tx-1"
    limits = [p["limit"] for p in profile["chargingSchedule"][0]["chargingSchedulePeriod"]]
    assert limits == [round(kw * 1000.0, 1) for kw in sent["plan"]["power_kw"]]
    assert min(limits) < 0  # the plan discharges at the 60 c/kWh peak
    await station.expect_no_strict_violations(origin=None)


async def test_b07_notify_report_of_a_third_party_station_is_stored(
    api: ApiHarness, station: InteropStation
) -> None:
    """GetBaseReport from our API; the ocpp-rpc station answers and sends NotifyReport with its
    device model, which our CSMS stores and shows."""
    since = len(station.events)
    response = await api.client.post(
        f"{API}/stations/{INTEROP_STATION_ID}/ocpp/GetBaseReport",
        json={"requestId": 44, "reportBase": "FullInventory"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "Accepted"}
    report = await station.wait_event("call_result", since=since, action="NotifyReport")
    assert report["payload"] == {}
    shown = (await api.client.get(f"{API}/stations/{INTEROP_STATION_ID}/variables")).json()
    values = {(v["component"], v["variable"]): v["value"] for v in shown["items"]}
    assert values[("OCPPCommCtrlr", "HeartbeatInterval")] == "300"
    assert values[("SmartChargingCtrlr", "RateUnit")] == "A,W"
    assert values[("SecurityCtrlr", "Identity")] == INTEROP_STATION_ID


async def test_subprotocol_other_than_ocpp201_is_refused(api: ApiHarness) -> None:
    assert api.ocpp_url is not None
    async with interop_station() as node_station:
        refused = await node_station.try_connect(
            api.ocpp_url, INTEROP_STATION_ID, password=STATION_PASSWORD, protocols=["ocpp1.6"]
        )
        assert refused["event"] == "connect_failed"
        assert refused["status"] == 400


async def test_b02_pending_station_is_limited_until_accepted(api: ApiHarness) -> None:
    """A station whose boot policy is Pending: Boot answers Pending; other messages get
    SecurityError; the CSMS may still read its variables; once the operator accepts it, a
    TriggerMessage(BootNotification) makes the ocpp-rpc station boot again, and it is Accepted."""
    assert api.ocpp_url is not None
    await api.add_station("CS-PENDING", boot_policy="Pending")
    async with interop_station() as node_station:
        await node_station.connect(api.ocpp_url, "CS-PENDING", password=STATION_PASSWORD)
        boot = await node_station.boot()
        assert boot["status"] == "Pending"
        assert boot["interval"] > 0
        early = await node_station.call("Heartbeat", {})
        assert early.error_code == "SecurityError"
        path = f"{API}/stations/CS-PENDING"
        got = await api.client.post(
            f"{path}/commands/get-variables",
            json={"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
        )
        assert got.status_code == 200, got.text
        assert got.json()["getVariableResult"][0]["attributeValue"] == "300"
        accepted = await api.client.patch(path, json={"boot_policy": "Accepted"})
        assert accepted.status_code == 200, accepted.text
        since = len(node_station.events)
        trigger = await api.client.post(
            f"{path}/ocpp/TriggerMessage", json={"requestedMessage": "BootNotification"}
        )
        assert trigger.status_code == 200, trigger.text
        assert trigger.json()["status"] == "Accepted"
        reboot = await node_station.wait_event(
            "call_result", since=since, action="BootNotification"
        )
        assert reboot["payload"]["status"] == "Accepted"
        assert (await node_station.call("Heartbeat", {})).ok
        await node_station.expect_no_strict_violations(origin=None)


HEARTBEAT_VARIABLE = {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}
HEARTBEAT_RESULT = {
    "getVariableResult": [
        {
            "attributeStatus": "Accepted",
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
            "attributeValue": "300",
        }
    ]
}


async def test_both_directions_at_once(api: ApiHarness, station: InteropStation) -> None:
    """OCPP-J allows one outstanding CALL per direction: while our CSMS waits for the station's
    slow answer, the station's own CALLs are answered."""
    await set_slow_handler(station, "GetVariables", HEARTBEAT_RESULT, delay_s=1.0)
    command = asyncio.create_task(
        api.client.post(
            f"{API}/stations/{INTEROP_STATION_ID}/commands/get-variables",
            json={"variables": [HEARTBEAT_VARIABLE]},
        )
    )
    await station.wait_for_call("GetVariables")
    assert (await station.call("Heartbeat", {})).ok
    meter = {"evseId": 1, "meterValue": [energy(10.0, iso_now())]}
    assert (await station.call("MeterValues", meter)).ok
    assert not command.done()  # the station's calls did not wait for the slow answer
    response = await command
    assert response.status_code == 200, response.text
    assert response.json() == HEARTBEAT_RESULT


async def test_a_late_answer_after_the_command_timeout_is_ignored(tmp_path: Path) -> None:
    """The station answers after our command timeout: the API says 504, the late CALLRESULT is
    dropped without a CALLERROR back (ocpp-rpc would flag it), and the link keeps working."""
    async with (
        csms_for_interop(tmp_path, command_timeout_s=0.5) as api,
        interop_station() as node_station,
    ):
        assert api.ocpp_url is not None
        await node_station.connect(api.ocpp_url, INTEROP_STATION_ID, password=STATION_PASSWORD)
        assert (await node_station.boot())["status"] == "Accepted"
        await set_slow_handler(node_station, "GetVariables", HEARTBEAT_RESULT, delay_s=1.0)
        path = f"{API}/stations/{INTEROP_STATION_ID}/commands/get-variables"
        slow = await api.client.post(path, json={"variables": [HEARTBEAT_VARIABLE]})
        assert slow.status_code == 504, slow.text
        await node_station.wait_event("sent_result")  # the late answer went out
        await node_station.reset_handler("GetVariables")
        assert (await node_station.call("Heartbeat", {})).ok
        again = await api.client.post(path, json={"variables": [HEARTBEAT_VARIABLE]})
        assert again.status_code == 200, again.text
        assert again.json()["getVariableResult"][0]["attributeValue"] == "300"
        # No CALLERROR for the late CALLRESULT, nothing unparseable, nothing invalid.
        await node_station.expect_no_strict_violations(origin=None)
        assert not any(e.get("event") == "disconnected" for e in node_station.events)


VENDOR_DATA = {"vendorId": "org.thirdparty", "firmwareBuild": 417, "flags": ["a", "b"]}


async def test_custom_data_from_a_third_party_station_is_accepted(
    api: ApiHarness, station: InteropStation
) -> None:
    """Every 2.0.1 object may carry `customData` (a vendorId plus anything): messages that use
    it, at the top and nested, are accepted and processed as without it."""
    boot = await station.call(
        "BootNotification",
        {
            "reason": "PowerUp",
            "chargingStation": {
                "model": "ocpp-rpc-harness",
                "vendorName": "interop",
                "customData": VENDOR_DATA,
            },
            "customData": VENDOR_DATA,
        },
    )
    assert boot.result["status"] == "Accepted"
    status = await station.call(
        "StatusNotification",
        {
            "timestamp": iso_now(),
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
            "customData": VENDOR_DATA,
        },
    )
    assert status.ok, status.error_description
    sample = energy(42.0, iso_now())
    sample["customData"] = VENDOR_DATA
    sample["sampledValue"][0]["customData"] = VENDOR_DATA
    started = await station.call(
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": iso_now(),
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "cd-tx-1", "customData": VENDOR_DATA},
            "evse": {"id": 1, "connectorId": 1, "customData": VENDOR_DATA},
            "meterValue": [sample],
            "customData": VENDOR_DATA,
        },
    )
    assert started.ok, started.error_description
    detail = await api.client.get(f"{API}/stations/{INTEROP_STATION_ID}/transactions/cd-tx-1")
    assert detail.status_code == 200, detail.text
    values = [m["value"] for m in detail.json()["meter_values"]]
    assert 42.0 in values


async def test_a02_a03_security_profiles_2_and_3_with_a_third_party_station(
    tmp_path: Path,
) -> None:
    """Our CSMS on wss: the ocpp-rpc station connects with TLS + Basic auth (profile 2) and with
    a client certificate (profile 3); a profile-3 station without a certificate is refused."""
    pki = make_pki(tmp_path / "pki")
    async with csms_for_interop(
        tmp_path,
        tls_cert_file=pki.server.cert_file,
        tls_key_file=pki.server.key_file,
        tls_client_ca_file=pki.ca.cert_file,
    ) as api:
        assert api.ocpp_url is not None
        url = api.ocpp_url.replace("ws://", "wss://", 1)
        await api.add_station("TLS-2", security_profile=2)
        await api.add_station("TLS-3", password=None, security_profile=3)
        client = pki.client("TLS-3")
        async with interop_station() as two:
            await connect_with_options(
                two, url, "TLS-2", STATION_PASSWORD, tls_ca=str(pki.ca.cert_file)
            )
            assert (await two.boot())["status"] == "Accepted"
            assert (await two.call("Heartbeat", {})).ok
            await two.expect_no_strict_violations(origin=None)
        async with interop_station() as three:
            await connect_with_options(
                three,
                url,
                "TLS-3",
                None,
                tls_ca=str(pki.ca.cert_file),
                tls_cert=str(client.cert_file),
                tls_key=str(client.key_file),
            )
            assert (await three.boot())["status"] == "Accepted"
            await three.expect_no_strict_violations(origin=None)
        async with interop_station() as no_certificate:
            refused = await no_certificate.request(
                {
                    "command": "connect",
                    "url": url,
                    "identity": "TLS-3",
                    "password": None,
                    "tls_ca": str(pki.ca.cert_file),
                },
                ("connected", "connect_failed"),
            )
            assert refused["event"] == "connect_failed"


async def test_a_reconnecting_station_replaces_its_old_connection(api: ApiHarness) -> None:
    """The same station connects again (a new ocpp-rpc client) while the old socket is open: the
    old one is closed, commands go to the new one."""
    assert api.ocpp_url is not None
    async with interop_station() as old, interop_station() as new:
        await old.connect(api.ocpp_url, INTEROP_STATION_ID, password=STATION_PASSWORD)
        assert (await old.boot())["status"] == "Accepted"
        await new.connect(api.ocpp_url, INTEROP_STATION_ID, password=STATION_PASSWORD)
        await old.wait_event("disconnected")
        assert (await new.boot())["status"] == "Accepted"
        response = await api.client.post(
            f"{API}/stations/{INTEROP_STATION_ID}/commands/get-variables",
            json={"variables": [HEARTBEAT_VARIABLE]},
        )
        assert response.status_code == 200, response.text
        assert new.received_calls("GetVariables")
        assert not old.received_calls("GetVariables")
        await new.expect_no_strict_violations(origin=None)
        await old.expect_no_strict_violations(origin=None)
