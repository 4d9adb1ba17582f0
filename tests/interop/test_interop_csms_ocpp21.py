"""Our CSMS against a third-party OCPP 2.1 charging station: Node `ocpp-rpc` 2.2.1 in strict
mode over `ocpp2.1` (tests/interop/client.js, with the 2.1 schemas ocpp-rpc ships; see
common.js `validator21` for why the schema ids are mapped). Every message our CSMS sends is
checked by ocpp-rpc against the OCA 2.1 schemas, and every message the station sends is one
ocpp-rpc considers valid; no strict violation either way. Also: which version a station offering
2.1 and 2.0.1, or only 2.0.1, gets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api_harness import ApiHarness
from tests.support.interop import InteropStation, interop_station
from tests.support.interop_fixtures import (
    INTEROP_STATION_ID,
    STATION_PASSWORD,
    csms_for_interop,
    iso_now,
)
from tests.support.ocpp21_payloads import (
    CSMS_REQUESTS_21,
    STATION_REQUESTS_21,
    STREAM_DATA,
    V2X_PROFILE,
)

pytestmark = pytest.mark.timeout(120)
API = "/api/v1"
STATION = f"{API}/stations/{INTEROP_STATION_ID}"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with csms_for_interop(tmp_path) as harness:
        yield harness


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["ocpp2.1", "ocpp2.0.1"], "ocpp2.1"), (["ocpp2.0.1"], "ocpp2.0.1")],
)
async def test_ocpp21_negotiated_with_a_third_party_station(
    api: ApiHarness, offered: list[str], chosen: str
) -> None:
    assert api.ocpp_url is not None
    async with interop_station() as station:
        connected = await station.connect(
            api.ocpp_url, INTEROP_STATION_ID, password=STATION_PASSWORD, protocols=offered
        )
        assert connected["protocol"] == chosen
        assert (await station.boot())["status"] == "Accepted"
        shown = (await api.client.get(STATION)).json()
        assert shown["ocpp_version"] == chosen
        await station.expect_no_strict_violations(origin=None)


@pytest.fixture
async def station21(api: ApiHarness) -> AsyncIterator[InteropStation]:
    assert api.ocpp_url is not None
    async with interop_station() as node_station:
        connected = await node_station.connect(
            api.ocpp_url,
            INTEROP_STATION_ID,
            password=STATION_PASSWORD,
            protocols=["ocpp2.1", "ocpp2.0.1"],
        )
        assert connected["protocol"] == "ocpp2.1"
        assert (await node_station.boot())["status"] == "Accepted"
        yield node_station
        # Nothing either side sent, over the whole test, broke the 2.1 schemas.
        await node_station.expect_no_strict_violations(origin=None)


def _energy(wh: float, context: str = "Sample.Periodic") -> dict[str, Any]:
    return {
        "timestamp": iso_now(),
        "sampledValue": [
            {
                "value": wh,
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


async def test_ocpp21_core_session_over_strict_ocpp21(
    api: ApiHarness, station21: InteropStation
) -> None:
    """Boot (fixture), heartbeat, status, authorize, a transaction with meter values, and the
    EV's V2X charging needs, all over ocpp2.1."""
    created = await api.client.post(
        f"{API}/id-tokens", json={"id_token": "TAG-21", "type": "ISO14443"}
    )
    assert created.status_code == 201, created.text
    assert (await station21.call("Heartbeat", {})).result["currentTime"]
    status = await station21.call(
        "StatusNotification",
        {"timestamp": iso_now(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    )
    assert status.result == {}
    authorized = await station21.call(
        "Authorize", {"idToken": {"idToken": "TAG-21", "type": "ISO14443"}}
    )
    assert authorized.result["idTokenInfo"]["status"] == "Accepted"
    tx = "tx-21"
    started = await station21.call(
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": iso_now(),
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": tx, "chargingState": "EVConnected"},
            "idToken": {"idToken": "TAG-21", "type": "ISO14443"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [_energy(1000.0, "Transaction.Begin")],
        },
    )
    assert started.result["idTokenInfo"]["status"] == "Accepted"
    needs = await station21.call(
        "NotifyEVChargingNeeds",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC_BPT",
                "availableEnergyTransfer": ["DC", "DC_BPT"],
                "controlMode": "ScheduledControl",
                "v2xChargingParameters": {"maxChargePower": 7000.0, "maxDischargePower": 7000.0},
            },
        },
    )
    assert needs.ok, needs.error_code
    for seq, (event, wh) in enumerate((("Updated", 1500.0), ("Ended", 1200.0)), start=1):
        info: dict[str, Any] = {"transactionId": tx, "chargingState": "Charging"}
        if event == "Ended":
            info = {"transactionId": tx, "chargingState": "Idle", "stoppedReason": "Local"}
        outcome = await station21.call(
            "TransactionEvent",
            {
                "eventType": event,
                "timestamp": iso_now(),
                "triggerReason": "MeterValuePeriodic" if event == "Updated" else "StopAuthorized",
                "seqNo": seq,
                "transactionInfo": info,
                "meterValue": [_energy(wh)],
            },
        )
        assert outcome.ok, outcome.error_code
    detail = (await api.client.get(f"{STATION}/transactions/{tx}")).json()
    assert len(detail["events"]) == 3


async def test_ocpp21_only_station_messages_over_strict_ocpp21(
    api: ApiHarness, station21: InteropStation
) -> None:
    """Every CS -> CSMS action 2.1 added, sent by the third-party station: answered (ocpp-rpc
    checks each answer against the 2.1 schema) and kept; the SEND stream stored."""
    for action, payload in STATION_REQUESTS_21.items():
        if action == "ClosePeriodicEventStream":
            sent = await station21.send_unconfirmed("NotifyPeriodicEventStream", STREAM_DATA)
            assert sent["event"] == "sent", sent
        outcome = await station21.call(action, payload)
        if action == "VatNumberValidation":
            assert outcome.error_code == "NotSupported"
        else:
            assert outcome.ok, (action, outcome.error_code)
        kept = (await api.client.get(f"{STATION}/events", params={"kind": action})).json()
        assert [e["payload"] for e in kept["items"]] == [payload], action
    streams = (await api.client.get(f"{STATION}/periodic-streams")).json()
    assert [(s["stream_id"], s["closed_at"] is not None) for s in streams] == [(3, True)]
    values = (await api.client.get(f"{STATION}/periodic-streams/3/values")).json()
    assert [v["value"] for v in values["items"]] == ["230.1", "230.4", "229.9"]


async def test_ocpp21_commands_to_strict_ocpp21_station(
    api: ApiHarness, station21: InteropStation
) -> None:
    """Every CSMS-initiated action 2.1 added, from our REST API (typed route and generic
    route), plus a native V2X SetChargingProfile: ocpp-rpc validates each CALL against the 2.1
    schema and our CSMS validates each answer."""
    for n, (action, payload) in enumerate(CSMS_REQUESTS_21.items()):
        since = len(station21.events)
        route = f"/commands/{_kebab(action)}" if n % 2 == 0 else f"/ocpp/{action}"
        answer = await api.client.post(f"{STATION}{route}", json=payload)
        assert answer.status_code == 200, (action, answer.text)
        received = await station21.wait_for_call(action, since=since)
        assert received["payload"] == payload  # sent unchanged
    since = len(station21.events)
    answer = await api.client.post(
        f"{STATION}/charging-profiles",
        json={"evse_id": 1, "charging_profile": V2X_PROFILE["chargingProfile"]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "Accepted"
    received = await station21.wait_for_call("SetChargingProfile", since=since)
    assert received["payload"] == V2X_PROFILE


def _kebab(action: str) -> str:
    from csms.api.routes.ocpp21 import kebab

    return kebab(action)


async def test_harness_strict_mode_checks_ocpp21_messages(api: ApiHarness) -> None:
    """The strict 2.1 validation this file relies on is real: an invalid 2.1 CALL is refused
    by ocpp-rpc before it leaves the station, and so is an invalid SEND."""
    assert api.ocpp_url is not None
    async with interop_station() as station:
        await station.connect(
            api.ocpp_url, INTEROP_STATION_ID, password=STATION_PASSWORD, protocols=["ocpp2.1"]
        )
        await station.boot()
        bad = await station.call("NotifyDERAlarm", {"controlType": "NoSuchCurve"})
        assert not bad.ok
        assert [v.action for v in station.strict_violations(origin="local")] == ["NotifyDERAlarm"]
        refused = await station.send_unconfirmed("NotifyPeriodicEventStream", {"id": 1})
        assert refused["event"] == "send_error"
        assert station.strict_violations(origin="peer") == []
