"""The agent against the project's own CSMS (csms.ocpp_server + services), security profile 1:
registration, a remote-started transaction with meter values, a discharge profile sent through
the CSMS command service, and the records the CSMS keeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_fakes import FakeEvse
from tests.support.agent_harness import STATION_ID, agent_settings, eventually
from tests.support.csms_harness import PASSWORD, running_csms


async def until(check: Callable[[], Awaitable[Any]], within_s: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


async def test_agent_with_the_project_csms(tmp_path: Path) -> None:
    (tmp_path / "csms").mkdir()
    async with running_csms(tmp_path / "csms") as csms:
        await csms.add_station(STATION_ID, password=PASSWORD)
        # The CSMS answers the Started event with the token's status (E05): make it known.
        await csms.services.id_tokens.create("TOK-1", "Central")
        settings = agent_settings(
            tmp_path / "agent",
            csms.url,
            security={"profile": 1, "basic_auth_password": PASSWORD},
        )
        evse = FakeEvse(1)
        agent = build_agent(settings, {1: evse})
        task = asyncio.create_task(agent.run())
        commands = csms.services.commands
        try:
            await eventually(lambda: agent.online, within_s=10)
            result = await commands.send(
                STATION_ID,
                "SetVariables",
                {
                    "setVariableData": [
                        {
                            "component": {"name": "SampledDataCtrlr"},
                            "variable": {"name": "TxUpdatedInterval"},
                            "attributeValue": "1",
                        }
                    ]
                },
            )
            assert result["setVariableResult"][0]["attributeStatus"] == "Accepted"
            evse.plug_in()
            started = await commands.send(
                STATION_ID,
                "RequestStartTransaction",
                {
                    "idToken": {"idToken": "TOK-1", "type": "Central"},
                    "remoteStartId": 5,
                    "evseId": 1,
                },
            )
            assert started["status"] == "Accepted"

            async def one_transaction() -> Any:
                page = await csms.services.transactions.list(station_id=STATION_ID)
                return page.items[0] if page.items else None

            tx = await until(one_transaction)
            profile = {
                "evseId": 1,
                "chargingProfile": {
                    "id": 900,
                    "stackLevel": 0,
                    "chargingProfilePurpose": "TxProfile",
                    "chargingProfileKind": "Absolute",
                    "transactionId": tx.transaction_id,
                    "chargingSchedule": [
                        {
                            "id": 1,
                            "startSchedule": iso_ms(datetime.now(UTC) - timedelta(seconds=5)),
                            "chargingRateUnit": "W",
                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -4000.0}],
                        }
                    ],
                },
            }
            answer = await commands.send(STATION_ID, "SetChargingProfile", profile)
            assert answer["status"] == "Accepted"
            await eventually(
                lambda: bool(evse.setpoints) and evse.setpoints[-1][1].limit == -4000.0
            )
            evse.add_energy(import_wh=250.0)
            await asyncio.sleep(1.5)  # at least one periodic sample
            stop = await commands.send(
                STATION_ID, "RequestStopTransaction", {"transactionId": tx.transaction_id}
            )
            assert stop["status"] == "Accepted"

            async def ended() -> Any:
                detail = await csms.services.transactions.get(STATION_ID, tx.transaction_id)
                return detail if detail.transaction.stopped_reason else None

            detail = await until(ended)
            assert detail.transaction.stopped_reason == "Remote"
            seqs = sorted(e.seq_no for e in detail.events)
            assert seqs == list(range(len(seqs)))
            assert detail.events[0].event_type == "Started"
            imports = [
                m.value
                for m in detail.meter_values
                if m.measurand == "Energy.Active.Import.Register"
            ]
            assert 250.0 in imports
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()


async def _online_with(settings: Any) -> None:
    agent = build_agent(settings, {1: FakeEvse(1)})
    task = asyncio.create_task(agent.run())
    try:
        await eventually(lambda: agent.online, within_s=10)
        assert agent.connections == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        agent.close()


async def test_a_security_profiles_2_and_3_over_tls(tmp_path: Path) -> None:
    from csms.domain.models import SecurityProfile
    from tests.support.csms_pki import make_pki

    pki = make_pki(tmp_path / "pki")
    (tmp_path / "csms").mkdir()
    async with running_csms(
        tmp_path / "csms",
        tls_cert_file=pki.server.cert_file,
        tls_key_file=pki.server.key_file,
        tls_client_ca_file=pki.ca.cert_file,
    ) as csms:
        assert csms.url.startswith("wss://")
        await csms.add_station("P2", security_profile=SecurityProfile.TLS_BASIC_AUTH)
        await csms.add_station(
            "P3", password=None, security_profile=SecurityProfile.TLS_CLIENT_CERT
        )
        profile2 = agent_settings(
            tmp_path / "a2",
            csms.url,
            station_id="P2",
            security={"profile": 2, "basic_auth_password": PASSWORD, "ca_file": pki.ca.cert_file},
        )
        await _online_with(profile2)
        client = pki.client("P3")
        profile3 = agent_settings(
            tmp_path / "a3",
            csms.url,
            station_id="P3",
            security={
                "profile": 3,
                "ca_file": pki.ca.cert_file,
                "client_cert_file": client.cert_file,
                "client_key_file": client.key_file,
            },
        )
        await _online_with(profile3)
