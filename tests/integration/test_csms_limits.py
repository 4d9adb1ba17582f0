"""Issue 11 at the OCPP edge over real websockets: input bounds (findings 2 and 3), the
maximum frame size, per-station storage quotas (finding 6) and message pacing, with a second
station that keeps being answered."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from csms.domain.models import BootPolicy
from csms.ocpp_server.limits import QUOTA_EVENT
from tests.support.api_harness import STATION_PASSWORD, ApiHarness, api_harness
from tests.support.csms_harness import (
    Csms,
    basic_auth,
    raw_boot,
    raw_connect,
    raw_exchange,
    running_csms,
)
from tests.support.csms_payloads import VALID
from tests.support.csms_pki import make_ca, make_csr

INT64_MAX = 2**63 - 1


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with running_csms(tmp_path) as running:
        await running.add_station("CS1")
        await running.add_station("CS2")
        yield running


@pytest.fixture
async def ws(csms: Csms) -> AsyncIterator[ClientConnection]:
    conn = await raw_connect(csms, "CS1")
    assert (await raw_boot(conn))[2]["status"] == "Accepted"
    yield conn
    await conn.close()


async def _heartbeat_answered(conn: ClientConnection, message_id: str = "hb") -> bool:
    reply = await raw_exchange(conn, [2, message_id, "Heartbeat", {}])
    return reply[:2] == [3, message_id]


# ---- finding 2 ---------------------------------------------------------------------------------


async def test_finding2_notify_report_huge_seqno_int64_is_refused(
    csms: Csms, ws: ClientConnection
) -> None:
    payload = {**VALID["NotifyReport"], "seqNo": INT64_MAX, "tbc": False}
    reply = await raw_exchange(ws, [2, "r", "NotifyReport", payload])
    assert reply[:3] == [4, "r", "PropertyConstraintViolation"], reply
    assert (await csms.services.events.list("CS1", kind="NotifyReport")).total == 0
    assert await _heartbeat_answered(ws)


async def test_finding2_notify_report_huge_seqno_while_pending_is_counted(
    csms: Csms,
) -> None:
    # The largest seqNo that passes the bounds, while the boot is Pending (B02 allows it):
    # the gap check used to build range(seqNo + 1) on the event loop.
    await csms.add_station("CSP", boot_policy=BootPolicy.PENDING)
    conn = await raw_connect(csms, "CSP")
    try:
        assert (await raw_boot(conn))[2]["status"] == "Pending"
        payload = {**VALID["NotifyReport"], "seqNo": 2**31 - 1, "tbc": False}
        reply = await raw_exchange(conn, [2, "r", "NotifyReport", payload])
        assert reply[:2] == [3, "r"], reply
    finally:
        await conn.close()
    (summary,) = (await csms.services.events.list("CSP", kind="NotifyReport")).items
    assert summary.payload["parts"] == [2**31 - 1]
    assert summary.payload["missingCount"] == 2**31 - 1
    assert len(summary.payload["missingParts"]) == 100


async def test_finding2_notify_report_too_many_parts_is_abandoned(tmp_path: Path) -> None:
    async with running_csms(tmp_path, report_max_parts=3) as csms:
        await csms.add_station("CS1")
        conn = await raw_connect(csms, "CS1")
        await raw_boot(conn)
        for seq in range(4):
            part = {**VALID["NotifyReport"], "seqNo": seq, "tbc": True}
            assert (await raw_exchange(conn, [2, f"r{seq}", "NotifyReport", part]))[0] == 3
        await conn.close()
        (gone,) = (await csms.services.events.list("CS1", kind="NotifyReportAbandoned")).items
        assert gone.payload == {"requestId": 1, "parts": 3, "reason": "too many parts"}


# ---- finding 3 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [5.0, 1e19, 1e30])
async def test_finding3_integral_float_refused_and_nothing_stored(
    csms: Csms, ws: ClientConnection, value: float
) -> None:
    payload = {**VALID["StatusNotification"], "evseId": value}
    reply = await raw_exchange(ws, [2, "s", "StatusNotification", payload])
    assert reply[:3] == [4, "s", "TypeConstraintViolation"], reply
    event = {**VALID["NotifyEvent"], "seqNo": value}
    reply = await raw_exchange(ws, [2, "e", "NotifyEvent", event])
    assert reply[:3] == [4, "e", "TypeConstraintViolation"], reply
    assert (await csms.services.events.list("CS1", kind="NotifyEvent")).total == 0
    assert await _heartbeat_answered(ws)


@pytest.mark.parametrize("value", [2**63, 2**64 - 1, 2**31])
async def test_finding3_int64_overflow_is_a_property_violation_not_internal_error(
    ws: ClientConnection, value: int
) -> None:
    payload = copy.deepcopy(VALID["TransactionEvent"])
    payload["seqNo"] = value
    reply = await raw_exchange(ws, [2, "t", "TransactionEvent", payload])
    assert reply[:3] == [4, "t", "PropertyConstraintViolation"], reply
    payload = {"vendorId": "v", "data": {"n": value if value >= 2**63 else -(2**63) - 1}}
    if value < 2**63:
        return
    reply = await raw_exchange(ws, [2, "d", "DataTransfer", payload])
    assert reply[:3] == [4, "d", "PropertyConstraintViolation"], reply


async def test_finding3_meter_value_that_overflows_is_refused(ws: ClientConnection) -> None:
    payload = copy.deepcopy(VALID["MeterValues"])
    sampled = payload["meterValue"][0]["sampledValue"][0]
    sampled["value"] = 1e300
    sampled["unitOfMeasure"] = {"unit": "Wh", "multiplier": 400}
    reply = await raw_exchange(ws, [2, "m", "MeterValues", payload])
    assert reply[:3] == [4, "m", "PropertyConstraintViolation"], reply


async def test_finding3_nesting_depth_refused_before_storage(
    csms: Csms, ws: ClientConnection
) -> None:
    data = "[" * 498 + "]" * 498
    frame = f'[2,"deep","DataTransfer",{{"vendorId":"v","messageId":"m","data":{data}}}]'
    reply = await raw_exchange(ws, frame)
    assert reply[:3] == [4, "deep", "FormatViolation"], reply
    assert (await csms.services.events.list("CS1", kind="DataTransfer")).total == 0
    assert await _heartbeat_answered(ws)


async def test_finding3_poisoned_frames_refused_and_api_keeps_answering_200(
    tmp_path: Path,
) -> None:
    async with api_harness(tmp_path, with_ocpp=True) as api:
        await api.add_station("CS1")
        conn = await _api_connect(api, "CS1")
        try:
            assert (await raw_boot(conn))[2]["status"] == "Accepted"
            poison: list[tuple[str, dict[str, Any]]] = [
                ("StatusNotification", {**VALID["StatusNotification"], "evseId": 1e19}),
                ("StatusNotification", {**VALID["StatusNotification"], "connectorId": 1e30}),
                ("TransactionEvent", {**VALID["TransactionEvent"], "evse": {"id": 1e19}}),
                ("TransactionEvent", {**VALID["TransactionEvent"], "seqNo": 2**63}),
            ]
            for n, (action, payload) in enumerate(poison):
                reply = await raw_exchange(conn, [2, f"p{n}", action, payload])
                assert reply[0] == 4 and reply[2] != "InternalError", reply
            deep = "[" * 498 + "]" * 498
            reply = await raw_exchange(
                conn, f'[2,"deep","DataTransfer",{{"vendorId":"v","data":{deep}}}]'
            )
            assert reply[:3] == [4, "deep", "FormatViolation"]
        finally:
            await conn.close()
        for path in (
            "/api/v1/stations/CS1/evses",
            "/api/v1/transactions",
            "/api/v1/stations/CS1/transactions",
            "/api/v1/stations/CS1/events",
        ):
            response = await api.client.get(path)
            assert response.status_code == 200, (path, response.text)
        assert (await api.client.get("/api/v1/stations/CS1/events")).json()["total"] == 0


async def _api_connect(api: ApiHarness, station_id: str) -> ClientConnection:
    return await websockets.connect(
        f"{api.ocpp_url}/{station_id}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic_auth(station_id, STATION_PASSWORD),
        open_timeout=5,
    )


# ---- maximum frame size ----------------------------------------------------------------------


async def test_max_frame_size_closes_the_sender_only(tmp_path: Path) -> None:
    async with running_csms(tmp_path, ocpp_max_frame_bytes=4096) as csms:
        await csms.add_station("CS1")
        await csms.add_station("CS2")
        big = await raw_connect(csms, "CS1")
        other = await raw_connect(csms, "CS2")
        try:
            await raw_boot(big)
            await raw_boot(other)
            fits = {"vendorId": "v", "data": "x" * 3900}
            assert (await raw_exchange(big, [2, "ok", "DataTransfer", fits]))[0] == 3
            await big.send(f'[2,"big","DataTransfer",{{"vendorId":"v","data":"{"x" * 5000}"}}]')
            with pytest.raises(websockets.ConnectionClosed) as info:
                async with asyncio.timeout(5):
                    await big.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
            assert await _heartbeat_answered(other)
        finally:
            await big.close()
            await other.close()


# ---- finding 6: storage quotas -----------------------------------------------------------------


async def test_finding6_datatransfer_quota_rejects_without_storing(tmp_path: Path) -> None:
    async with running_csms(
        tmp_path, station_event_max_bytes=1024, station_storage_quota_bytes=4096
    ) as csms:
        await csms.add_station("CS1")
        await csms.add_station("CS2")
        conn = await raw_connect(csms, "CS1")
        other = await raw_connect(csms, "CS2")
        try:
            await raw_boot(conn)
            await raw_boot(other)
            large = {"vendorId": "v", "data": "x" * 2000}
            reply = await raw_exchange(conn, [2, "big", "DataTransfer", large])
            assert reply[2] == {
                "status": "Rejected",
                "statusInfo": {"reasonCode": "PayloadTooLarge"},
            }
            small = {"vendorId": "v", "data": "x" * 900}  # ~930 bytes stored each
            statuses = [
                (await raw_exchange(conn, [2, f"d{n}", "DataTransfer", small]))[2]["status"]
                for n in range(6)
            ]
            assert statuses == ["UnknownVendorId"] * 4 + ["Rejected"] * 2
            # Other stored messages are refused with a CALLERROR saying when to retry.
            event = {**VALID["NotifyEvent"], "customData": {"vendorId": "v", "pad": "x" * 500}}
            reply = await raw_exchange(conn, [2, "ev", "NotifyEvent", event])
            assert reply[:3] == [4, "ev", "GenericError"], reply
            assert reply[4]["reason"] == "QuotaExceeded"
            assert reply[4]["retryAfterS"] > 0
            # Another station has its own quota.
            reply = await raw_exchange(other, [2, "d", "DataTransfer", small])
            assert reply[2]["status"] == "UnknownVendorId"
        finally:
            await conn.close()
            await other.close()
        assert (await csms.services.events.list("CS1", kind="DataTransfer")).total == 4
        assert (await csms.services.events.list("CS1", kind="NotifyEvent")).total == 0
        # One event per burst, not per refused frame: the 2,000-byte one, then the quota.
        bursts = (await csms.services.events.list("CS1", kind=QUOTA_EVENT)).items
        assert sorted(e.payload["reason"] for e in bursts) == ["PayloadTooLarge", "QuotaExceeded"]


# ---- message rate --------------------------------------------------------------------------------


async def test_rate_limit_paces_the_flooding_station_and_the_bystander_is_answered(
    tmp_path: Path,
) -> None:
    # One token per ~17 minutes after a burst of 5: the flood is held back, deterministically.
    # (ping_timeout_s is also the close timeout: the held-back link is dropped fast at the end.)
    async with running_csms(
        tmp_path, ocpp_rate_per_s=0.001, ocpp_rate_burst=5, ping_timeout_s=0.5
    ) as csms:
        await csms.add_station("FLOOD")
        await csms.add_station("CS2")
        flood = await raw_connect(csms, "FLOOD")
        other = await raw_connect(csms, "CS2")
        try:
            await raw_boot(flood)
            for n in range(50):  # pipelined, without waiting for answers
                await flood.send(f'[2,"f{n}","Heartbeat",{{}}]')
            answered = []
            async with asyncio.timeout(5):
                while len(answered) < 4:  # boot + 4 = the burst of 5
                    answered.append(await flood.recv())
            session = csms.server.sessions["FLOOD"]
            async with asyncio.timeout(5):
                while session.paced_frames == 0:  # noqa: ASYNC110 - a counter, no event
                    await asyncio.sleep(0.01)
            # The flood is held (its 5th heartbeat waits for a token); CS2 is served.
            assert (await raw_boot(other))[2]["status"] == "Accepted"
            for n in range(4):
                assert await _heartbeat_answered(other, f"o{n}")
            assert session.paced_frames == 1
            assert csms.server.sessions["CS2"].paced_frames == 0
        finally:
            flood.transport.abort()  # the CSMS reads nothing from it now: no closing handshake
            await other.close()


async def test_finding6_message_log_keeps_large_payloads_and_long_actions_bounded(
    csms: Csms, ws: ClientConnection
) -> None:
    csms.services.message_log.log_incoming = True
    large = {"vendorId": "v", "data": "x" * 70_000}  # over station_event_max_bytes (64 KiB)
    reply = await raw_exchange(ws, [2, "big", "DataTransfer", large])
    assert reply[2]["status"] == "Rejected"
    reply = await raw_exchange(ws, [2, "odd", "A" * 5000, {}])
    assert reply[:3] == [4, "odd", "NotImplemented"]
    await csms.services.message_log.flush()  # station messages are written in batches
    entries = (await csms.services.message_log.list("CS1", limit=10)).items
    incoming = {e.message_id: e for e in entries if e.kind == "CALL"}
    assert incoming["big"].payload == {
        "notLogged": "payload over station_event_max_bytes",
        "bytes": len(orjson.dumps(large)),
    }
    assert incoming["odd"].action == "A" * 50


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
async def test_finding3_date_out_of_range_is_a_property_violation_not_internal_error(
    csms: Csms, ws: ClientConnection, timestamp: str
) -> None:
    # Valid ISO 8601 (the schema's date-time passes) but not representable in UTC.
    payload = {**VALID["StatusNotification"], "timestamp": timestamp}
    reply = await raw_exchange(ws, [2, "s", "StatusNotification", payload])
    assert reply[:3] == [4, "s", "PropertyConstraintViolation"], reply
    event = {**VALID["SecurityEventNotification"], "timestamp": timestamp}
    reply = await raw_exchange(ws, [2, "e", "SecurityEventNotification", event])
    assert reply[:3] == [4, "e", "PropertyConstraintViolation"], reply
    assert (await csms.services.events.list("CS1")).total == 0


@pytest.mark.parametrize(("evse_id", "connector_id"), [(129, 1), (-1, 1), (1, 17), (2**31 - 1, 1)])
async def test_status_notification_ids_are_bounded_rows(
    csms: Csms, ws: ClientConnection, evse_id: int, connector_id: int
) -> None:
    payload = {**VALID["StatusNotification"], "evseId": evse_id, "connectorId": connector_id}
    reply = await raw_exchange(ws, [2, "s", "StatusNotification", payload])
    assert reply[:3] == [4, "s", "PropertyConstraintViolation"], reply
    ok = {**VALID["StatusNotification"], "evseId": 128, "connectorId": 16}
    assert (await raw_exchange(ws, [2, "ok", "StatusNotification", ok]))[0] == 3
    assert [e.evse_id for e in await csms.services.stations.evses("CS1")] == [128]


async def _reply_to(conn: ClientConnection, frame: list[Any]) -> list[Any]:
    """Send a CALL and return its answer, skipping CALLs the CSMS sends meanwhile."""
    await conn.send(orjson.dumps(frame).decode())
    async with asyncio.timeout(5):
        while True:
            message: list[Any] = orjson.loads(await conn.recv())
            if message[0] != 2 and message[1] == frame[1]:
                return message


async def test_finding6_sign_certificate_csrs_are_charged_to_the_quota(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    ca = make_ca(tmp_path / "pki")
    csr = make_csr("CS1")
    async with running_csms(
        tmp_path,
        csr_ca_cert_file=ca.cert_file,
        csr_ca_key_file=ca.key_file,
        station_storage_quota_bytes=2 * len(csr),
    ) as csms:
        await csms.add_station("CS1")
        conn = await raw_connect(csms, "CS1")
        try:
            await raw_boot(conn)
            answers = [
                (await _reply_to(conn, [2, f"c{n}", "SignCertificate", {"csr": csr}]))[2]
                for n in range(3)
            ]
        finally:
            await conn.close()
    assert [a["status"] for a in answers] == ["Accepted", "Accepted", "Rejected"]
    assert answers[2]["statusInfo"] == {"reasonCode": "QuotaExceeded"}


async def test_finding3_bounds_hold_with_schema_validation_off(tmp_path: Path) -> None:
    async with running_csms(tmp_path, validate_messages=False) as csms:
        await csms.add_station("CS1")
        conn = await raw_connect(csms, "CS1")
        try:
            await raw_boot(conn)
            payload = {**VALID["StatusNotification"], "evseId": 1e19}
            reply = await raw_exchange(conn, [2, "s", "StatusNotification", payload])
            assert reply[:3] == [4, "s", "TypeConstraintViolation"], reply
            payload = {"vendorId": "v", "data": [2**63]}
            reply = await raw_exchange(conn, [2, "d", "DataTransfer", payload])
            assert reply[:3] == [4, "d", "PropertyConstraintViolation"], reply
        finally:
            await conn.close()
        assert await csms.services.stations.evses("CS1") == []
