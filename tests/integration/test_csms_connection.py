"""Websocket endpoint: subprotocol, station id, security profiles 1-3, connection
replacement, OCPP-J CALLERROR codes, and the B02/B03 Pending/Rejected rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from argon2 import PasswordHasher
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.exceptions import SecurityError
from ocpp.v201 import call
from websockets.exceptions import InvalidStatus

from csms.domain.errors import CommandNotAllowed
from csms.domain.models import BootPolicy, SecurityProfile
from csms.persistence import repositories as repo
from tests.support.csms_harness import (
    PASSWORD,
    Csms,
    basic_auth,
    connect_station,
    raw_boot,
    raw_connect,
    raw_exchange,
    running_csms,
)
from tests.support.csms_payloads import TS, VALID
from tests.support.csms_pki import make_csr, make_pki


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with running_csms(tmp_path) as running:
        await running.add_station("CS1")
        yield running


async def _status_of(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(url, open_timeout=5, **kwargs)
    return int(info.value.response.status_code)


# ---- handshake ------------------------------------------------------------------------------


async def test_profile1_basic_auth_connects_with_ocpp201_subprotocol(csms: Csms) -> None:
    ws = await websockets.connect(
        f"{csms.url}/CS1",
        subprotocols=["ocpp1.6", "ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic_auth("CS1", PASSWORD),
    )
    assert ws.subprotocol == "ocpp2.0.1"
    await ws.close()


@pytest.mark.parametrize("offered", [["ocpp1.6"], None])
async def test_no_common_subprotocol_refused_400(csms: Csms, offered: list[str] | None) -> None:
    kwargs: dict[str, Any] = {"additional_headers": basic_auth("CS1", PASSWORD)}
    if offered:
        kwargs["subprotocols"] = offered
    assert await _status_of(f"{csms.url}/CS1", **kwargs) == 400


async def test_unknown_station_404(csms: Csms) -> None:
    status = await _status_of(
        f"{csms.url}/NOPE",
        subprotocols=["ocpp2.0.1"],
        additional_headers=basic_auth("NOPE", PASSWORD),
    )
    assert status == 404


async def test_wrong_path_404(csms: Csms) -> None:
    url = csms.url.replace("/ocpp", "/other") + "/CS1"
    assert await _status_of(url, subprotocols=["ocpp2.0.1"]) == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic_auth("CS1", "wrong-password-0000"),
        basic_auth("CS2", PASSWORD),  # user must be the station id
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Bearer abc"},
    ],
)
async def test_bad_credentials_401(csms: Csms, headers: dict[str, str]) -> None:
    status = await _status_of(
        f"{csms.url}/CS1", subprotocols=["ocpp2.0.1"], additional_headers=headers
    )
    assert status == 401


async def test_empty_ocpp_path(tmp_path: Path) -> None:
    async with running_csms(tmp_path, ocpp_path="") as csms:
        await csms.add_station("CS1")
        assert csms.url.count("/") == 2
        async with connect_station(csms, "CS1") as conn:
            boot = await conn.station.call(
                call.BootNotification(
                    charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
                ),
                suppress=False,
            )
            assert boot.status == "Accepted"


async def test_station_id_is_percent_decoded(csms: Csms) -> None:
    await csms.add_station("CS 2")
    ws = await websockets.connect(
        f"{csms.url}/CS%202",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic_auth("CS 2", PASSWORD),
    )
    assert (await raw_boot(ws))[2]["status"] == "Accepted"
    await ws.close()


async def test_profile2_station_refused_on_plain_ws(csms: Csms) -> None:
    await csms.add_station("TLS2", security_profile=SecurityProfile.TLS_BASIC_AUTH)
    status = await _status_of(
        f"{csms.url}/TLS2",
        subprotocols=["ocpp2.0.1"],
        additional_headers=basic_auth("TLS2", PASSWORD),
    )
    assert status == 401


async def test_successful_password_verification_is_cached(tmp_path: Path) -> None:
    calls = 0

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            nonlocal calls
            calls += 1
            return super().verify(hash, password)

    async with running_csms(tmp_path) as csms:
        csms.services.stations._hasher = CountingHasher(
            time_cost=1, memory_cost=1024, parallelism=1
        )
        await csms.add_station("CS1")
        # As a station registered before the fast check existed (migration 0003).
        await csms.services.db.write(lambda c: repo.update_station(c, "CS1", password_check=None))
        for _ in range(5):
            ws = await raw_connect(csms, "CS1")
            await ws.close()
        assert calls == 1
        # A wrong password is refused each time: by argon2 while there is no fast check...
        await csms.services.db.write(lambda c: repo.update_station(c, "CS1", password_check=None))
        for _ in range(2):
            assert (
                await _status_of(
                    f"{csms.url}/CS1",
                    subprotocols=["ocpp2.0.1"],
                    additional_headers=basic_auth("CS1", "wrong-password-0000"),
                )
                == 401
            )
        assert calls == 3
        # A password change makes the cached verification useless.
        await csms.services.stations.update("CS1", password="another-password-01")
        assert (
            await _status_of(
                f"{csms.url}/CS1",
                subprotocols=["ocpp2.0.1"],
                additional_headers=basic_auth("CS1", PASSWORD),
            )
            == 401
        )


# ---- TLS: profiles 2 and 3 ------------------------------------------------------------------


@pytest.fixture
async def tls_csms(tmp_path: Path) -> AsyncIterator[tuple[Csms, Any]]:
    pki = make_pki(tmp_path / "pki")
    async with running_csms(
        tmp_path,
        tls_cert_file=pki.server.cert_file,
        tls_key_file=pki.server.key_file,
        tls_client_ca_file=pki.ca.cert_file,
        csr_ca_cert_file=pki.ca.cert_file,
        csr_ca_key_file=pki.ca.key_file,
    ) as csms:
        await csms.add_station("P2", security_profile=SecurityProfile.TLS_BASIC_AUTH)
        await csms.add_station(
            "P3", password=None, security_profile=SecurityProfile.TLS_CLIENT_CERT
        )
        yield csms, pki


async def test_profile2_tls_basic_auth(tls_csms: tuple[Csms, Any]) -> None:
    csms, pki = tls_csms
    assert csms.url.startswith("wss://")
    ws = await websockets.connect(
        f"{csms.url}/P2",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic_auth("P2", PASSWORD),
        ssl=pki.client_context(),
    )
    assert (await raw_boot(ws))[2]["status"] == "Accepted"
    await ws.close()
    status = await _status_of(
        f"{csms.url}/P2",
        subprotocols=["ocpp2.0.1"],
        additional_headers=basic_auth("P2", "wrong-password-0000"),
        ssl=pki.client_context(),
    )
    assert status == 401


async def test_profile3_client_certificate_identifies_station(tls_csms: tuple[Csms, Any]) -> None:
    csms, pki = tls_csms
    ws = await websockets.connect(
        f"{csms.url}/P3",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        ssl=pki.client_context(pki.client("P3")),
    )
    assert (await raw_boot(ws))[2]["status"] == "Accepted"
    await ws.close()


async def test_profile3_refuses_missing_or_foreign_certificate(
    tls_csms: tuple[Csms, Any],
) -> None:
    csms, pki = tls_csms
    no_cert = await _status_of(
        f"{csms.url}/P3",
        subprotocols=["ocpp2.0.1"],
        additional_headers=basic_auth("P3", PASSWORD),
        ssl=pki.client_context(),
    )
    assert no_cert == 401
    other_station = await _status_of(
        f"{csms.url}/P3", subprotocols=["ocpp2.0.1"], ssl=pki.client_context(pki.client("P2"))
    )
    assert other_station == 401


async def test_profile3_untrusted_ca_fails_tls_handshake(tls_csms: tuple[Csms, Any]) -> None:
    csms, pki = tls_csms
    untrusted = pki.client_context(pki.client("P3", trusted=False))
    with pytest.raises((OSError, websockets.exceptions.InvalidHandshake)):
        ws = await websockets.connect(
            f"{csms.url}/P3", subprotocols=["ocpp2.0.1"], ssl=untrusted, open_timeout=5
        )
        # TLS 1.3 reports a refused client certificate after the handshake, on first read.
        await raw_boot(ws)


async def test_a02_sign_certificate_with_csr_ca_sends_certificate_signed(
    tls_csms: tuple[Csms, Any],
) -> None:
    csms, pki = tls_csms
    async with connect_station(
        csms, "P3", password=None, ssl_context=pki.client_context(pki.client("P3"))
    ) as conn:
        await conn.station.call(
            call.BootNotification(
                charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
            ),
            suppress=False,
        )
        answer = await conn.station.call(call.SignCertificate(csr=make_csr("P3")), suppress=False)
        assert answer.status == "Accepted"
        signed = await conn.station.wait_for("CertificateSigned")
        for _ in range(100):
            async with csms.services.db.read() as db:
                certs = await repo.list_certificates(db, "P3")
            if certs and certs[0].status == "Installed":
                break
            await asyncio.sleep(0.05)
    chain = x509.load_pem_x509_certificates(signed["certificate_chain"].encode())
    leaf = chain[0]
    assert leaf.subject.rfc4514_string() == "CN=P3"
    assert leaf.issuer == pki.ca.certificate.subject
    assert leaf.signature_hash_algorithm is not None
    pki.ca.certificate.public_key().verify(  # raises InvalidSignature if not signed by the CA
        leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm)
    )
    assert [c.status for c in certs] == ["Installed"]


# ---- connection replacement -----------------------------------------------------------------


async def test_second_connection_replaces_the_first(csms: Csms) -> None:
    first = await raw_connect(csms, "CS1")
    await raw_boot(first)
    second = await raw_connect(csms, "CS1")
    async with asyncio.timeout(5):
        await first.wait_closed()
    assert first.close_code == 1000
    assert (await raw_exchange(second, [2, "h", "Heartbeat", {}]))[0] == 3
    assert await csms.services.router.is_connected("CS1")
    await second.close()
    for _ in range(50):
        if not await csms.services.router.is_connected("CS1"):
            break
        await asyncio.sleep(0.02)
    assert not await csms.services.router.is_connected("CS1")


# ---- OCPP-J errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected_id", "code"),
    [
        ("this is not json", "-1", "RpcFrameworkError"),
        ('{"a": 1}', "-1", "RpcFrameworkError"),
        ("[2, 5, 6]", "-1", "RpcFrameworkError"),
        ('[2, "m1", "Heartbeat"]', "m1", "ProtocolError"),
        ('[2, "m1", 17, {}]', "m1", "ProtocolError"),
        ('[7, "m1", "Heartbeat", {}]', "m1", "MessageTypeNotSupported"),
        ('[2, "m1", "Heartbeat", []]', "m1", "FormatViolation"),
        ('[2, "m1", "NoSuchAction", {}]', "m1", "NotImplemented"),
        ('[2, "m1", "Reset", {"type": "Immediate"}]', "m1", "NotSupported"),
        ('[2, "m1", "Heartbeat", {"extra": 1}]', "m1", "FormatViolation"),
        (
            '[2, "m1", "BootNotification", {"reason": "PowerUp", '
            '"chargingStation": {"model": 5, "vendorName": "v"}}]',
            "m1",
            "TypeConstraintViolation",
        ),
        (
            '[2, "m1", "BootNotification", {"reason": "Sunrise", '
            '"chargingStation": {"model": "m", "vendorName": "v"}}]',
            "m1",
            "PropertyConstraintViolation",
        ),
        (
            '[2, "m1", "BootNotification", {"reason": "PowerUp", "chargingStation": {}}]',
            "m1",
            "OccurenceConstraintViolation",
        ),
        (
            '[2, "m1", "StatusNotification", {"timestamp": "yesterday", '
            '"connectorStatus": "Available", "evseId": 1, "connectorId": 1}]',
            "m1",
            "PropertyConstraintViolation",
        ),
        (
            '[2, "m1", "MeterValues", {"evseId": 1, "meterValue": []}]',
            "m1",
            "OccurenceConstraintViolation",
        ),
    ],
)
async def test_malformed_input_gets_the_right_callerror_and_link_stays_up(
    csms: Csms, frame: str, expected_id: str, code: str
) -> None:
    ws = await raw_connect(csms, "CS1")
    await raw_boot(ws)
    reply = await raw_exchange(ws, frame)
    assert reply[0] == 4 and reply[1] == expected_id and reply[2] == code, reply
    assert isinstance(reply[3], str) and isinstance(reply[4], dict)
    assert (await raw_exchange(ws, [2, "after", "Heartbeat", {}]))[:2] == [3, "after"]
    await ws.close()


# ---- B02 / B03: Pending and Rejected ---------------------------------------------------------


async def test_b03_rejected_station_may_only_boot(csms: Csms) -> None:
    await csms.add_station("REJ", boot_policy=BootPolicy.REJECTED)
    ws = await raw_connect(csms, "REJ")
    boot = await raw_boot(ws)
    assert boot[2]["status"] == "Rejected"
    assert boot[2]["interval"] == csms.settings.boot_retry_interval_s
    reply = await raw_exchange(ws, [2, "h", "Heartbeat", {}])
    assert reply[:3] == [4, "h", "SecurityError"]
    with pytest.raises(CommandNotAllowed):
        await csms.services.commands.send(
            "REJ", "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}
        )
    await ws.close()


async def test_never_booted_station_must_boot_first(csms: Csms) -> None:
    ws = await raw_connect(csms, "CS1")
    reply = await raw_exchange(ws, [2, "s", "StatusNotification", VALID["StatusNotification"]])
    assert reply[2] == "SecurityError"
    await ws.close()


async def test_b02_pending_allows_provisioning_only(csms: Csms) -> None:
    await csms.add_station("PEND", boot_policy=BootPolicy.PENDING)
    async with connect_station(csms, "PEND") as conn:
        boot = await conn.station.call(
            call.BootNotification(
                charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
            ),
            suppress=False,
        )
        assert boot.status == "Pending"
        assert boot.interval == csms.settings.boot_retry_interval_s
        # The station may not send a Heartbeat now ...
        with pytest.raises(SecurityError):
            await conn.station.call(call.Heartbeat(), suppress=False)
        # ... but the CSMS may provision it ...
        answer = await csms.services.commands.send(
            "PEND", "GetBaseReport", {"requestId": 3, "reportBase": "FullInventory"}
        )
        assert answer == {"status": "Accepted"}
        report = await conn.station.call(
            call.NotifyReport(request_id=3, generated_at=TS, seq_no=0), suppress=False
        )
        assert report is not None
        # ... and not operate it.
        with pytest.raises(CommandNotAllowed):
            await csms.services.commands.send("PEND", "Reset", {"type": "Immediate"})
        # A message asked for by TriggerMessage is allowed once.
        await csms.services.commands.send(
            "PEND",
            "TriggerMessage",
            {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
        )
        status = await conn.station.call(
            call.StatusNotification(
                timestamp=TS, connector_status="Available", evse_id=1, connector_id=1
            ),
            suppress=False,
        )
        assert status is not None
        # Accepted after the policy changes and the station boots again.
        await csms.services.stations.update("PEND", boot_policy=BootPolicy.ACCEPTED)
        again = await conn.station.call(
            call.BootNotification(
                charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
            ),
            suppress=False,
        )
        assert again.status == "Accepted"
        assert (await conn.station.call(call.Heartbeat(), suppress=False)).current_time


async def test_dead_link_detected_by_websocket_pings(tmp_path: Path) -> None:
    async with running_csms(tmp_path, ping_interval_s=0.2, ping_timeout_s=0.2) as csms:
        await csms.add_station("CS1")
        ws = await raw_connect(csms, "CS1")
        await raw_boot(ws)
        assert await csms.services.router.is_connected("CS1")
        ws.transport.pause_reading()  # the station stops answering pings (dead link)
        for _ in range(100):
            if not await csms.services.router.is_connected("CS1"):
                break
            await asyncio.sleep(0.05)
        assert not await csms.services.router.is_connected("CS1")
        ws.transport.abort()


# ---- a session's end ------------------------------------------------------------------------


async def test_a_closed_session_waits_for_its_cancelled_follow_ups_to_end(csms: Csms) -> None:
    """A follow-up (here the envelope sent after a boot) still running when the station
    leaves is cancelled and has ended before the session is gone: no follow-up is left inside
    a database read when the server and its services close."""
    started = asyncio.Event()
    ended: list[str] = []

    async def slow_follow_up(station_id: str) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # its cleanup takes a while (a rollback, say)
            ended.append(station_id)
            raise

    csms.services.envelopes.station_booted = slow_follow_up  # type: ignore[method-assign]
    ws = await raw_connect(csms, "CS1")
    assert (await raw_boot(ws))[2]["status"] == "Accepted"
    async with asyncio.timeout(5):
        await started.wait()
    await ws.close()
    async with asyncio.timeout(10):
        while "CS1" in csms.server.sessions:  # noqa: ASYNC110 - a dict, no event
            await asyncio.sleep(0.01)
    assert ended == ["CS1"]
