"""Every CS -> CSMS message of OCPP 2.0.1 over a real websocket: a spec-conformant answer,
persisted before the answer, and at least one rejection each."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from csms import oca_schemas
from csms.domain.models import IdTokenStatus
from csms.persistence import repositories as repo
from tests.support.csms_harness import Csms, raw_boot, raw_connect, raw_exchange, running_csms
from tests.support.csms_payloads import VALID


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with running_csms(tmp_path) as running:
        await running.add_station("CS1")
        yield running


@pytest.fixture
async def ws(csms: Csms) -> AsyncIterator[ClientConnection]:
    conn = await raw_connect(csms, "CS1")
    assert (await raw_boot(conn))[2]["status"] == "Accepted"
    yield conn
    await conn.close()


def test_payload_table_covers_every_cs_to_csms_action() -> None:
    assert set(VALID) == oca_schemas.CS_TO_CSMS_ACTIONS
    for action, payload in VALID.items():
        oca_schemas.check(action, "Request", payload)


@pytest.mark.parametrize("action", sorted(VALID))
async def test_each_message_gets_a_schema_valid_callresult(
    ws: ClientConnection, action: str
) -> None:
    reply = await raw_exchange(ws, [2, f"m-{action}", action, VALID[action]])
    assert reply[0] == 3, reply
    assert reply[1] == f"m-{action}"
    oca_schemas.check(action, "Response", reply[2])


def _break(action: str, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A schema violation for `action` and the OCPP-J code it must produce."""
    broken = copy.deepcopy(payload)
    required = oca_schemas.validator(action, "Request").schema.get("required", [])  # type: ignore[union-attr]
    if required:
        del broken[required[0]]
        return broken, "OccurenceConstraintViolation"
    broken["notInTheSchema"] = 1
    return broken, "FormatViolation"


@pytest.mark.parametrize("action", sorted(VALID))
async def test_each_message_rejects_a_schema_violation_and_the_link_stays_up(
    ws: ClientConnection, action: str
) -> None:
    broken, code = _break(action, VALID[action])
    reply = await raw_exchange(ws, [2, "bad-1", action, broken])
    assert reply[:3] == [4, "bad-1", code], reply
    # The connection survives: the next message is answered normally.
    assert (await raw_exchange(ws, [2, "hb", "Heartbeat", {}]))[0] == 3


async def test_b01_boot_accepted_stores_station_info_and_sends_utc_millisecond_time(
    csms: Csms,
) -> None:
    conn = await raw_connect(csms, "CS1")
    reply = await raw_exchange(conn, [2, "b", "BootNotification", VALID["BootNotification"]])
    await conn.close()
    body = reply[2]
    assert body["status"] == "Accepted"
    assert body["interval"] == csms.settings.heartbeat_interval_s
    assert body["currentTime"].endswith("Z") and len(body["currentTime"]) == 24
    sent = datetime.fromisoformat(body["currentTime"].replace("Z", "+00:00"))
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 5
    station = await csms.services.stations.get("CS1")
    assert (station.vendor_name, station.model, station.firmware_version) == (
        "V2GCo",
        "Bidi-1",
        "1.0",
    )
    assert station.registration_status.value == "Accepted"


async def test_g01_status_notification_stores_connector_status(
    csms: Csms, ws: ClientConnection
) -> None:
    await raw_exchange(ws, [2, "s", "StatusNotification", VALID["StatusNotification"]])
    evses = await csms.services.stations.evses("CS1")
    assert [(e.evse_id, [(c.connector_id, c.status) for c in e.connectors]) for e in evses] == [
        (1, [(1, "Available")])
    ]


async def test_heartbeat_updates_last_heartbeat(csms: Csms, ws: ClientConnection) -> None:
    before = (await csms.services.stations.get("CS1")).last_heartbeat_at
    reply = await raw_exchange(ws, [2, "h", "Heartbeat", {}])
    after = (await csms.services.stations.get("CS1")).last_heartbeat_at
    assert reply[2]["currentTime"].endswith("Z")
    assert before is not None and after is not None and after >= before


@pytest.mark.parametrize(
    ("status", "expires_in_s", "expected"),
    [
        (IdTokenStatus.ACCEPTED, None, "Accepted"),
        (IdTokenStatus.BLOCKED, None, "Blocked"),
        (IdTokenStatus.INVALID, None, "Invalid"),
        (IdTokenStatus.ACCEPTED, -60, "Expired"),
        (IdTokenStatus.ACCEPTED, 3600, "Accepted"),
    ],
)
async def test_c01_authorize_answers_from_the_token_store(
    csms: Csms,
    ws: ClientConnection,
    status: IdTokenStatus,
    expires_in_s: int | None,
    expected: str,
) -> None:
    expires = None if expires_in_s is None else datetime.now(UTC) + timedelta(seconds=expires_in_s)
    await csms.services.id_tokens.create(
        "TOK1", "ISO14443", status, expires_at=expires, group_id_token="GROUP1"
    )
    reply = await raw_exchange(ws, [2, "a", "Authorize", VALID["Authorize"]])
    info = reply[2]["idTokenInfo"]
    assert info["status"] == expected
    assert info["groupIdToken"] == {"idToken": "GROUP1", "type": "Central"}
    if expires is not None:
        assert info["cacheExpiryDateTime"].endswith("Z")


async def test_c01_authorize_unknown_token(csms: Csms, ws: ClientConnection) -> None:
    reply = await raw_exchange(ws, [2, "a", "Authorize", VALID["Authorize"]])
    assert reply[2] == {"idTokenInfo": {"status": "Unknown"}}
    audit = (await csms.services.events.list("CS1", kind="Authorize")).items
    assert [e.payload["idTokenInfo"]["status"] for e in audit] == ["Unknown"]


async def test_j_meter_values_stored_as_rows(csms: Csms, ws: ClientConnection) -> None:
    await raw_exchange(ws, [2, "m", "MeterValues", VALID["MeterValues"]])
    async with csms.services.db.read() as conn:
        samples = await repo.list_meter_samples(conn, "CS1")
    assert [(s.measurand, s.value, s.unit, s.evse_id) for s in samples] == [
        ("Energy.Active.Import.Register", 1234.5, None, 1),
        ("Power.Active.Import", -3.2, "kW", 1),
    ]


async def test_b07_notify_report_parts_are_joined(csms: Csms, ws: ClientConnection) -> None:
    part0 = copy.deepcopy(VALID["NotifyReport"])
    part0["tbc"] = True
    part1 = copy.deepcopy(VALID["NotifyReport"])
    part1["seqNo"] = 1
    part1["reportData"][0]["variable"] = {"name": "ItemsPerMessage", "instance": "SetVariables"}
    await raw_exchange(ws, [2, "r0", "NotifyReport", part0])
    assert (await csms.services.events.list("CS1", kind="NotifyReport")).total == 0
    await raw_exchange(ws, [2, "r1", "NotifyReport", part1])
    variables = await csms.services.device_model.list("CS1", component="DeviceDataCtrlr")
    assert sorted((v.variable_instance, v.value) for v in variables) == [
        ("GetVariables", "2"),
        ("SetVariables", "2"),
    ]
    assert variables[0].characteristics == {"dataType": "integer", "supportsMonitoring": False}
    summary = (await csms.services.events.list("CS1", kind="NotifyReport")).items
    assert [e.payload["parts"] for e in summary] == [[0, 1]]
    assert summary[0].payload["missingParts"] == []


@pytest.mark.parametrize(
    "action",
    [
        "NotifyChargingLimit",
        "ClearedChargingLimit",
        "FirmwareStatusNotification",
        "PublishFirmwareStatusNotification",
        "LogStatusNotification",
        "SecurityEventNotification",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "ReservationStatusUpdate",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "DataTransfer",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "ReportChargingProfiles",
    ],
)
async def test_notifications_are_stored_as_events(
    csms: Csms, ws: ClientConnection, action: str
) -> None:
    await raw_exchange(ws, [2, "n", action, VALID[action]])
    page = await csms.services.events.list("CS1", kind=action)
    assert page.total == 1
    assert page.items[0].payload == VALID[action]


async def test_security_event_timestamp_is_kept(csms: Csms, ws: ClientConnection) -> None:
    await raw_exchange(
        ws, [2, "n", "SecurityEventNotification", VALID["SecurityEventNotification"]]
    )
    event = (await csms.services.events.list("CS1", kind="SecurityEventNotification")).items[0]
    assert event.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("action", ["NotifyEVChargingNeeds", "NotifyEVChargingSchedule"])
async def test_k15_ev_needs_for_evse_0_rejected(ws: ClientConnection, action: str) -> None:
    payload = {**VALID[action], "evseId": 0}
    reply = await raw_exchange(ws, [2, "n", action, payload])
    assert reply[2]["status"] == "Rejected"


async def test_k09_report_charging_profiles_stored(csms: Csms, ws: ClientConnection) -> None:
    await raw_exchange(ws, [2, "p", "ReportChargingProfiles", VALID["ReportChargingProfiles"]])
    profiles = await csms.services.charging_profiles.list("CS1")
    assert [(p.profile_id, p.evse_id, p.purpose, p.source) for p in profiles] == [
        (7, 1, "TxDefaultProfile", "Reported:CSO")
    ]


async def test_p01_data_transfer_unknown_vendor(ws: ClientConnection) -> None:
    reply = await raw_exchange(ws, [2, "d", "DataTransfer", VALID["DataTransfer"]])
    assert reply[2] == {"status": "UnknownVendorId"}


async def test_m_certificate_status_and_15118_fail_without_pki(ws: ClientConnection) -> None:
    status = await raw_exchange(ws, [2, "c", "GetCertificateStatus", VALID["GetCertificateStatus"]])
    assert status[2]["status"] == "Failed"
    ev = await raw_exchange(ws, [2, "e", "Get15118EVCertificate", VALID["Get15118EVCertificate"]])
    assert ev[2]["status"] == "Failed" and ev[2]["exiResponse"] == ""


async def test_a02_sign_certificate_rejected_without_csr_ca(ws: ClientConnection) -> None:
    reply = await raw_exchange(ws, [2, "s", "SignCertificate", VALID["SignCertificate"]])
    assert reply[2]["status"] == "Rejected"
