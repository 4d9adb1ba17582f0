"""The ISO 15118 handlers for an OCPP 2.1 station (raw frames over `ocpp2.1`): charging needs
with V2X parameters planned into a TxProfile that discharges, the EV's schedule checked, and
Plug & Charge (Authorize, GetCertificateStatus, Get15118EVCertificate) on the 2.1 schemas."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.x509 import ocsp
from websockets.asyncio.client import ClientConnection

from csms import oca_schemas
from csms.domain.models import IdTokenStatus
from csms.domain.v2g_records import PriceRow
from csms.services.common import ocpp_datetime
from csms.services.v2g import v2g_service_for
from tests.support.csms_harness import BOOT, Csms, raw_connect, running_csms
from tests.support.pnc_pki import OcspResponder, Provider, http_server, make_contract_pki
from v2g_shared.ocpp_versions import OcppVersion

V21 = OcppVersion.V21


class RawStation:
    """A 2.1 station on raw frames: CALLs out, and the CSMS's SetChargingProfile answered
    Accepted (kept in `profiles`)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.profiles: list[dict[str, Any]] = []
        self._n = 0

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._n += 1
        message_id = f"m{self._n}"
        await self.ws.send(orjson.dumps([2, message_id, action, payload]).decode())
        async with asyncio.timeout(10):
            while True:
                frame = orjson.loads(await self.ws.recv())
                if frame[0] == 2:
                    await self._answer(frame)
                    continue
                assert frame[1] == message_id, frame
                assert frame[0] == 3, frame
                oca_schemas.check(action, "Response", frame[2], V21)
                result: dict[str, Any] = frame[2]
                return result

    async def _answer(self, frame: list[Any]) -> None:
        assert frame[2] == "SetChargingProfile", frame
        oca_schemas.check("SetChargingProfile", "Request", frame[3], V21)
        self.profiles.append(frame[3])
        await self.ws.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())

    async def wait_profile(self, count: int = 1) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while len(self.profiles) < count:
                frame = orjson.loads(await self.ws.recv())
                await self._answer(frame)
        return self.profiles[count - 1]

    async def start_charging(self, tx_id: str = "TX21") -> None:
        assert (await self.call("BootNotification", BOOT))["status"] == "Accepted"
        now = ocpp_datetime(datetime.now(UTC))
        await self.call(
            "StatusNotification",
            {"timestamp": now, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
        )
        await self.call(
            "TransactionEvent",
            {
                "eventType": "Started",
                "timestamp": now,
                "triggerReason": "CablePluggedIn",
                "seqNo": 0,
                "transactionInfo": {"transactionId": tx_id},
                "evse": {"id": 1, "connectorId": 1},
            },
        )


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with running_csms(tmp_path) as running:
        await running.add_station("CS21")
        yield running


@pytest.fixture
async def station(csms: Csms) -> AsyncIterator[RawStation]:
    ws = await raw_connect(csms, "CS21", subprotocols=["ocpp2.1"])
    assert ws.subprotocol == "ocpp2.1"
    yield RawStation(ws)
    await ws.close()


async def test_k15_fr03_ocpp21_v2x_needs_planned_with_discharge(
    csms: Csms, station: RawStation
) -> None:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    # An evening-like peak in hours 2-3 (import 90, export 80 c/kWh; else 20 / 5): a vehicle
    # that offers discharge is planned to sell then and buy back later.
    rows = [
        PriceRow(hour + timedelta(hours=k), 3600, *((90.0, 80.0) if k in (2, 3) else (20.0, 5.0)))
        for k in range(10)
    ]
    await v2g_service_for(csms.services).put_prices(rows)
    await station.start_charging()
    answer = await station.call(
        "NotifyEVChargingNeeds",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC_BPT",
                "departureTime": ocpp_datetime(hour + timedelta(hours=8)),
                "dcChargingParameters": {
                    "evMaxCurrent": 100,
                    "evMaxVoltage": 400,
                    "stateOfCharge": 70,
                    "evEnergyCapacity": 60_000,
                },
                "v2xChargingParameters": {
                    "maxChargePower": 11_000,
                    "maxDischargePower": 7_000,
                    "targetSoC": 80,
                },
            },
        },
    )
    assert answer["status"] == "Accepted"
    request = await station.wait_profile()
    profile = request["chargingProfile"]
    assert profile["transactionId"] == "TX21"
    periods = profile["chargingSchedule"][0]["chargingSchedulePeriod"]
    # Native 2.1 (Q): the plan as CentralSetpoint periods, not the 2.0.1 negative limit.
    setpoints = [p["setpoint"] for p in periods if p.get("operationMode") == "CentralSetpoint"]
    assert setpoints and min(setpoints) < 0  # sells at the peak
    assert min(setpoints) >= -7_000  # within the EV's offer
    assert all(p.get("limit", 0) <= 11_000 for p in periods)
    assert all(p.get("dischargeLimit", 0) >= -7_000 for p in periods)
    assert all("limit" not in p or p["limit"] >= 0 for p in periods)


async def test_k15_fr12_ocpp21_ev_schedule_checked(station: RawStation) -> None:
    await station.start_charging()
    needs = {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "DC"}}
    assert (await station.call("NotifyEVChargingNeeds", needs))["status"] == "Accepted"
    profile = (await station.wait_profile())["chargingProfile"]
    schedule = profile["chargingSchedule"][0]
    mine = {
        "id": schedule["id"],
        "chargingRateUnit": "W",
        "duration": schedule["duration"],
        "chargingSchedulePeriod": schedule["chargingSchedulePeriod"],
    }
    base = ocpp_datetime(datetime.now(UTC))
    within = await station.call(
        "NotifyEVChargingSchedule",
        {"timeBase": base, "evseId": 1, "chargingSchedule": mine, "selectedChargingScheduleId": 1},
    )
    assert within["status"] == "Accepted"
    doubled = {
        **mine,
        "chargingSchedulePeriod": [
            {**p, "limit": p["limit"] * 2} for p in schedule["chargingSchedulePeriod"]
        ],
    }
    over = await station.call(
        "NotifyEVChargingSchedule", {"timeBase": base, "evseId": 1, "chargingSchedule": doubled}
    )
    assert over["status"] == "Rejected"
    renegotiated = await station.wait_profile(2)
    assert renegotiated["chargingProfile"]["transactionId"] == "TX21"


def _v2x_needs(hour: datetime, **v2x: Any) -> dict[str, Any]:
    return {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "DC_BPT",
            "departureTime": ocpp_datetime(hour + timedelta(hours=8)),
            "dcChargingParameters": {
                "evMaxCurrent": 100,
                "evMaxVoltage": 400,
                "stateOfCharge": 50,
                "evEnergyCapacity": 60_000,
            },
            "v2xChargingParameters": {"maxChargePower": 11_000, "maxDischargePower": 7_000, **v2x},
        },
    }


async def _peak_prices(csms: Csms) -> datetime:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = [
        PriceRow(hour + timedelta(hours=k), 3600, *((90.0, 80.0) if k in (2, 3) else (20.0, 5.0)))
        for k in range(10)
    ]
    await v2g_service_for(csms.services).put_prices(rows)
    return hour


async def test_k15_fr12_ocpp21_native_ev_schedule_checked_against_setpoints_and_discharge_limit(
    csms: Csms, station: RawStation
) -> None:
    """A 2.1 EV schedule carries setpoints and discharge limits (no `limit` needed): within the
    native profile's [dischargeLimit, limit] it is Accepted, discharging past the
    dischargeLimit it is Rejected and renegotiated."""
    hour = await _peak_prices(csms)
    await station.start_charging()
    assert (await station.call("NotifyEVChargingNeeds", _v2x_needs(hour)))["status"] == "Accepted"
    schedule = (await station.wait_profile())["chargingProfile"]["chargingSchedule"][0]
    periods = schedule["chargingSchedulePeriod"]
    assert any(p.get("operationMode") == "CentralSetpoint" for p in periods)
    mine = {
        "id": schedule["id"],
        "chargingRateUnit": "W",
        "duration": schedule["duration"],
        # The EV echoes the setpoints only: a 2.1 period without `limit`.
        "chargingSchedulePeriod": [
            {"startPeriod": p["startPeriod"], "setpoint": p.get("setpoint", p.get("limit", 0.0))}
            for p in periods
        ],
    }
    base = ocpp_datetime(datetime.now(UTC))
    within = await station.call(
        "NotifyEVChargingSchedule", {"timeBase": base, "evseId": 1, "chargingSchedule": mine}
    )
    assert within["status"] == "Accepted", within
    too_deep = {
        **mine,
        "chargingSchedulePeriod": [
            {"startPeriod": p["startPeriod"], "setpoint": -7_000.0, "dischargeLimit": -9_000.0}
            for p in periods
        ],
    }
    over = await station.call(
        "NotifyEVChargingSchedule", {"timeBase": base, "evseId": 1, "chargingSchedule": too_deep}
    )
    assert over["status"] == "Rejected"
    renegotiated = await station.wait_profile(2)
    assert renegotiated["chargingProfile"]["transactionId"] == "TX21"


async def test_k15_ocpp21_v2x_min_energy_request_keeps_the_plan_from_discharging_below_it(
    csms: Csms, station: RawStation
) -> None:
    """evMinV2XEnergyRequest > 0 (the EV is below its minimum SoC): the peak that would pay for
    a discharge does not get one, and the plan charges at least that energy."""
    hour = await _peak_prices(csms)
    await station.start_charging()
    needs = _v2x_needs(hour, evMinV2XEnergyRequest=6_000, evMaxV2XEnergyRequest=30_000)
    assert (await station.call("NotifyEVChargingNeeds", needs))["status"] == "Accepted"
    profile = (await station.wait_profile())["chargingProfile"]
    schedule = profile["chargingSchedule"][0]
    periods = schedule["chargingSchedulePeriod"]
    powers = [p.get("setpoint", p.get("limit", 0.0)) for p in periods]
    ends = [p["startPeriod"] for p in periods[1:]] + [schedule["duration"]]
    energy_wh = sum(
        w * (end - p["startPeriod"]) / 3600 for w, p, end in zip(powers, periods, ends, strict=True)
    )
    assert min(powers) >= 0  # never below the EV's minimum: no discharge at the peak
    assert energy_wh >= 6_000 * 0.99


async def test_k15_ocpp21_v2x_max_energy_request_caps_the_charge(
    csms: Csms, station: RawStation
) -> None:
    """evMaxV2XEnergyRequest: the plan stores no more than that (the EV's maximum SoC), even
    with a departure target above it."""
    hour = await _peak_prices(csms)
    await station.start_charging()
    needs = _v2x_needs(hour, targetSoC=100, evMaxV2XEnergyRequest=3_000)
    assert (await station.call("NotifyEVChargingNeeds", needs))["status"] == "Accepted"
    schedule = (await station.wait_profile())["chargingProfile"]["chargingSchedule"][0]
    periods = schedule["chargingSchedulePeriod"]
    ends = [p["startPeriod"] for p in periods[1:]] + [schedule["duration"]]
    charged_wh = sum(
        max(0.0, p.get("setpoint", p.get("limit", 0.0))) * (end - p["startPeriod"]) / 3600
        for p, end in zip(periods, ends, strict=True)
    )
    discharged_wh = sum(
        max(0.0, -p.get("setpoint", 0.0)) * (end - p["startPeriod"]) / 3600
        for p, end in zip(periods, ends, strict=True)
    )
    # Net energy into the battery (0.9 round trip, split evenly) at most the request.
    eta = 0.9**0.5
    assert charged_wh * eta - discharged_wh / eta <= 3_000 + 30
    assert charged_wh > 0


async def test_c07_fr16_m06_m01_plug_and_charge_on_ocpp21(tmp_path: Path) -> None:
    responder, provider = OcspResponder(), Provider()
    provider.answer = {"status": "Accepted", "exiResponse": "QUJD", "remainingContracts": 2}
    async with http_server(responder.handle) as ocsp_url, http_server(provider.handle) as prov:
        pki = make_contract_pki(f"{ocsp_url}/ocsp")
        responder.pki = pki
        anchors = tmp_path / "roots.pem"
        anchors.write_text(pki.root.pem)
        async with running_csms(
            tmp_path,
            pnc_ocsp_responder_hosts="127.0.0.1",
            pnc_trust_anchors_file=anchors,
            pnc_certificate_provider_url=prov,
        ) as csms:
            await csms.add_station("CS21")
            await csms.services.id_tokens.create("AUXYZC12345678", "eMAID", IdTokenStatus.ACCEPTED)
            ws = await raw_connect(csms, "CS21", subprotocols=["ocpp2.1"])
            station = RawStation(ws)
            try:
                assert (await station.call("BootNotification", BOOT))["status"] == "Accepted"
                revoked = pki.contract("revoked")
                token = {"idToken": "AUXYZC12345678", "type": "eMAID"}
                answer = await station.call(
                    "Authorize", {"idToken": token, "certificate": pki.chain_pem(revoked)}
                )
                assert answer["idTokenInfo"]["status"] == "Invalid"
                assert answer["certificateStatus"] == "CertificateRevoked"
                good = pki.contract("good")
                answer = await station.call(
                    "Authorize",
                    {"idToken": token, "iso15118CertificateHashData": pki.hash_data(good)},
                )
                assert answer["certificateStatus"] == "Accepted"
                status = await station.call(
                    "GetCertificateStatus", {"ocspRequestData": pki.hash_data(good)[0]}
                )
                assert status["status"] == "Accepted"
                single = ocsp.load_der_ocsp_response(base64.b64decode(status["ocspResult"]))
                assert single.certificate_status is ocsp.OCSPCertStatus.GOOD
                # 2.1 GetCertificateChainStatus: each certificate asked of its OCSP responder.
                requests = [
                    {
                        "certificateHashData": {
                            k: v
                            for k, v in pki.hash_data(contract)[0].items()
                            if k != "responderURL"
                        },
                        "source": source,
                        "urls": [f"{ocsp_url}/ocsp"],
                    }
                    for contract, source in ((good, "OCSP"), (revoked, "OCSP"), (good, "CRL"))
                ]
                chain = await station.call(
                    "GetCertificateChainStatus", {"certificateStatusRequests": requests}
                )
                assert [c["status"] for c in chain["certificateStatus"]] == [
                    "Good",
                    "Revoked",
                    "Failed",
                ]
                installed = await station.call(
                    "Get15118EVCertificate",
                    {
                        "iso15118SchemaVersion": "urn:iso:std:iso:15118:-20:CommonMessages",
                        "action": "Install",
                        "exiRequest": "AAAA",
                        "maximumContractCertificateChains": 2,
                    },
                )
                assert installed == {
                    "status": "Accepted",
                    "exiResponse": "QUJD",
                    "remainingContracts": 2,
                }
                assert provider.requests[0]["maximumContractCertificateChains"] == 2
            finally:
                await ws.close()
