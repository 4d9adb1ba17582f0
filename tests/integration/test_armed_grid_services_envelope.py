"""Issue 18: grid services a station holds until they end follow its site's operating envelope.
An armed aFRR curve, a 2.1 LocalFrequency profile and a local-control hand-over are held to the
station's share when sent; when the envelope changes each station of the site holding one gets
it again within the new share (same profile id, the time it has left), and at the vehicle's own
bounds once the envelope is removed. A station outside the site is left alone, and a change that
leaves the shares as they were sends nothing.

Strict 2.1 stations (the `ocpp` library's v21 ChargePoint, schema-checked, offering only
ocpp2.1) over loopback websockets, through the REST API; on SQLite and on PostgreSQL
(CSMS_TEST_POSTGRES_URL). Both site stations are rated by the fallback (22 kW), so an export
limit of 3000 W leaves each 1500 W of discharge; the vehicles (LEAF) do 7 kW each way."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.v21 import call

from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.armed import ARMED_RULE
from csms.services.v2g.profiles import (
    AFRR_PROFILE_ID,
    FREQUENCY_PROFILE_ID,
    LOCAL_CONTROL_PROFILE_ID,
)
from tests.support.api_harness import STATION_PASSWORD, ApiHarness
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.v2g_harness import LEAF, iso, v2g_api
from tests.support.v21_station import V21Station, connected_v21_station

V1 = "/api/v1"
KINDS = ["sqlite", "postgres"]
MODES = "ChargingOnly,CentralSetpoint,CentralFrequency,LocalFrequency,ExternalSetpoint"
AFRR = [{"signal": -100, "power_w": -20_000.0}, {"signal": 0, "power_w": 0.0}]
AFRR += [{"signal": 100, "power_w": 20_000.0}]
FREQ_WATT = [[49.5, -7000.0], [49.85, 0.0], [50.15, 0.0], [50.5, 7000.0]]


@contextlib.asynccontextmanager
async def harness(kind: str, tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with contextlib.AsyncExitStack() as stack:
        overrides: dict[str, Any] = {"command_timeout_s": 5.0}
        if kind == "postgres":
            base = postgres_url_or_skip()
            overrides["database_url"] = await stack.enter_async_context(
                fresh_postgres_database(base)
            )
        yield await stack.enter_async_context(v2g_api(tmp_path, **overrides))


def profiles(station: V21Station, profile_id: int) -> list[dict[str, Any]]:
    return [
        r.payload
        for r in station.received
        if r.action == "SetChargingProfile" and r.payload["chargingProfile"]["id"] == profile_id
    ]


def period(payload: dict[str, Any]) -> dict[str, Any]:
    (only,) = payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
    found: dict[str, Any] = only
    return found


def duration(payload: dict[str, Any]) -> int:
    found: int = payload["chargingProfile"]["chargingSchedule"][0]["duration"]
    return found


async def put_export_limit(api: ApiHarness, watts: float | None) -> None:
    """The site's operator envelope: an export limit from a minute ago (None: removed)."""
    if watts is None:
        response = await api.client.delete(f"{V1}/sites/home-1/envelopes/operator")
        assert response.status_code == 204, response.text
        return
    start = iso(datetime.now(UTC) - timedelta(minutes=1))
    envelopes = [{"control_id": f"export-{watts:g}", "start": start, "export_limit_w": watts}]
    response = await api.client.put(
        f"{V1}/sites/home-1/envelopes/operator", json={"envelopes": envelopes}
    )
    assert response.status_code == 200, response.text


async def plug_in(api: ApiHarness, station: V21Station, vehicle_id: str, now: datetime) -> None:
    await station.report_v2x_controller(MODES)
    body = dict(LEAF, id=vehicle_id, station_id=station.id, evse_id=1)
    assert (await api.client.post(f"{V1}/vehicles", json=body)).status_code == 201
    await station.start_transaction(f"tx-{station.id}", now, 70.0)


@pytest.mark.parametrize("kind", KINDS)
async def test_armed_afrr_local_frequency_and_local_control_follow_envelope_changes(
    kind: str, tmp_path: Path
) -> None:
    async with harness(kind, tmp_path) as api:
        assert api.ocpp_url is not None
        now = datetime.now(UTC)
        for station_id in ("CSA", "CSB", "CSX"):
            await api.add_station(station_id)
        async with (
            connected_v21_station(api.ocpp_url, "CSA", STATION_PASSWORD) as csa,
            connected_v21_station(api.ocpp_url, "CSB", STATION_PASSWORD) as csb,
            connected_v21_station(api.ocpp_url, "CSX", STATION_PASSWORD) as csx,
        ):
            for station, vehicle in ((csa, "car-a"), (csb, "car-b"), (csx, "car-x")):
                await plug_in(api, station, vehicle, now)
            created = await api.client.post(
                f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CSA", "CSB"]}
            )
            assert created.status_code == 201, created.text
            await put_export_limit(api, 3000.0)  # 1500 W of discharge each

            # Armed at CSA (aFRR for 15 min, local control for 10 min) and at CSX (outside the
            # site); LocalFrequency at CSB.
            armed = await api.client.post(
                f"{V1}/grid/afrr/curve",
                json={"curve": AFRR, "duration_s": 900, "station_ids": ["CSA", "CSX"]},
            )
            assert armed.status_code == 200, armed.text
            by_station = {r["station_id"]: r for r in armed.json()["results"]}
            assert by_station["CSA"]["status"] == "Accepted"
            assert by_station["CSA"]["limited_by"] == "envelope"
            assert "limited_by" not in by_station["CSX"]
            handed = await api.client.put(
                f"{V1}/stations/CSA/v2x/local-control",
                json={"mode": "ExternalSetpoint", "duration_s": 600},
            )
            assert handed.status_code == 200 and handed.json()["limited_by"] == "envelope"
            local = await api.client.put(
                f"{V1}/stations/CSB/v2g/frequency-response",
                json={"curve": FREQ_WATT, "enabled": True},
            )
            assert local.status_code == 200 and local.json()["mode"] == "LocalFrequency"
            (first_afrr,) = profiles(csa, AFRR_PROFILE_ID)
            assert period(first_afrr)["dischargeLimit"] == -1500.0
            (first_local,) = profiles(csb, FREQUENCY_PROFILE_ID)
            assert period(first_local)["operationMode"] == "LocalFrequency"
            assert period(first_local)["dischargeLimit"] == -1500.0

            # 1. The envelope tightens: 500 W of discharge each.
            await put_export_limit(api, 1000.0)
            _, afrr = profiles(csa, AFRR_PROFILE_ID)
            p = period(afrr)
            assert p["operationMode"] == "CentralFrequency"
            assert p["dischargeLimit"] == -500.0 and p["limit"] == 7000.0
            assert p["v2xSignalWattCurve"] == [
                {"signal": -100, "power": -500.0},
                {"signal": 0, "power": 0.0},
                {"signal": 100, "power": 7000.0},
            ]
            assert 880 <= duration(afrr) <= 900  # the time the activation has left
            assert afrr["chargingProfile"]["transactionId"] == "tx-CSA"
            _, control = profiles(csa, LOCAL_CONTROL_PROFILE_ID)
            assert period(control)["operationMode"] == "ExternalSetpoint"
            assert period(control)["dischargeLimit"] == -500.0
            assert 580 <= duration(control) <= 600
            _, again = profiles(csb, FREQUENCY_PROFILE_ID)
            p = period(again)
            assert p["operationMode"] == "LocalFrequency"
            assert p["dischargeLimit"] == -500.0 and p["limit"] == 7000.0
            assert [pt["power"] for pt in p["v2xFreqWattCurve"]] == [-500.0, 0.0, 0.0, 7000.0]
            assert "duration" not in again["chargingProfile"]["chargingSchedule"][0]
            assert len(profiles(csx, AFRR_PROFILE_ID)) == 1  # not in the site: left alone
            history = (await api.client.get(f"{V1}/v2g/dispatches")).json()
            resent = [
                e
                for d in history
                if d["kind"] == "afrr-curve"
                for e in d["per_vehicle"].values()
                if e.get("resent") == "envelope"
            ]
            assert [(e["station_id"], e["status"], e["limited_by"]) for e in resent] == [
                ("CSA", "Accepted", "envelope")
            ]
            assert resent[0]["max_discharge_w"] == 500.0

            # 2. The same shares again (another control id): nothing is sent.
            await put_export_limit(api, 1000.0 + 1e-6)
            assert len(profiles(csa, AFRR_PROFILE_ID)) == 2
            assert len(profiles(csb, FREQUENCY_PROFILE_ID)) == 2

            # 3. The envelope ends: the vehicles' own bounds again.
            await put_export_limit(api, None)
            *_, free = profiles(csa, AFRR_PROFILE_ID)
            assert len(profiles(csa, AFRR_PROFILE_ID)) == 3
            assert period(free)["dischargeLimit"] == -7000.0
            assert [pt["power"] for pt in period(free)["v2xSignalWattCurve"]] == [
                -7000.0,
                0.0,
                7000.0,
            ]
            *_, free_local = profiles(csb, FREQUENCY_PROFILE_ID)
            assert len(profiles(csb, FREQUENCY_PROFILE_ID)) == 3
            assert period(free_local)["dischargeLimit"] == -7000.0
            *_, free_control = profiles(csa, LOCAL_CONTROL_PROFILE_ID)
            assert period(free_control)["dischargeLimit"] == -7000.0

            # 4. Ended or switched off: not sent again.
            ended = await api.client.delete(f"{V1}/stations/CSA/v2x/local-control")
            assert ended.status_code == 200, ended.text
            off = await api.client.put(
                f"{V1}/stations/CSB/v2g/frequency-response", json={"enabled": False}
            )
            assert off.status_code == 200 and off.json()["accepted"], off.text
            await put_export_limit(api, 2000.0)
            assert len(profiles(csa, LOCAL_CONTROL_PROFILE_ID)) == 3
            assert len(profiles(csb, FREQUENCY_PROFILE_ID)) == 3
            *_, last = profiles(csa, AFRR_PROFILE_ID)
            assert len(profiles(csa, AFRR_PROFILE_ID)) == 4  # the aFRR curve still runs
            assert period(last)["dischargeLimit"] == -1000.0


async def end_transaction(station: V21Station, tx_id: str, at: datetime) -> None:
    await station.call(
        call.TransactionEvent(
            event_type="Ended",
            timestamp=iso(at),
            trigger_reason="EVDeparted",
            seq_no=1,
            transaction_info={"transaction_id": tx_id, "stopped_reason": "EVDisconnected"},
            evse={"id": 1, "connector_id": 1},
        ),
        suppress=False,
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_an_armed_service_ends_with_its_transaction(kind: str, tmp_path: Path) -> None:
    """The TxProfile went with its transaction: an envelope change during the next session
    does not bring the old aFRR curve back, and the kept entry is dropped."""
    async with harness(kind, tmp_path) as api:
        assert api.ocpp_url is not None
        now = datetime.now(UTC)
        await api.add_station("CSA")
        async with connected_v21_station(api.ocpp_url, "CSA", STATION_PASSWORD) as csa:
            await plug_in(api, csa, "car-a", now)
            created = await api.client.post(
                f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CSA"]}
            )
            assert created.status_code == 201, created.text
            await put_export_limit(api, 3000.0)
            armed = await api.client.post(
                f"{V1}/grid/afrr/curve",
                json={"curve": AFRR, "duration_s": 900, "station_ids": ["CSA"]},
            )
            assert armed.status_code == 200, armed.text
            assert len(profiles(csa, AFRR_PROFILE_ID)) == 1
            await put_export_limit(api, 1000.0)  # still the same session: sent again
            assert len(profiles(csa, AFRR_PROFILE_ID)) == 2

            await end_transaction(csa, "tx-CSA", now + timedelta(seconds=5))
            await csa.start_transaction("tx-CSA-2", now + timedelta(seconds=6), 60.0)
            await put_export_limit(api, 500.0)
            assert len(profiles(csa, AFRR_PROFILE_ID)) == 2  # not the old session's curve
            async with api.services.db.read() as conn:
                state = await vrepo.get_rule_state(conn, ARMED_RULE)
            assert state == {}  # the ended session's entry was dropped
