"""Issue 18: grid-service dispatches are held to each station's share of the site's operating
envelope by the CSMS, like the V2G plans (clip_plan) and fleet dispatch: the under-frequency
rule's discharge, a 2.1 CentralFrequency setpoint, an aFRR curve, a local-control hand-over;
a cut dispatch is recorded `limited_by: "envelope"`; an envelope change during a running
frequency response moves what the stations hold into the new share.

A 2.1 station (schema-checked) and a 2.0.1 station in one site, both rated by the fallback
(22 kW each), so an export limit of 3000 W leaves each 1500 W of discharge. On SQLite and on
PostgreSQL (CSMS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.domain.envelopes import OperatingEnvelope
from csms.domain.sites import Site
from csms.persistence.database import Database
from csms.persistence.repositories import sites as srepo
from csms.services.envelopes import EnvelopeService
from csms.services.v2g import V2gService
from csms.services.v2g.profiles import FREQUENCY_PROFILE_ID
from tests.integration.test_v2x_services import V21, V201, FakeStations, _periods, _v2x_controller
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.v2g_nodes import node_databases, plug_in

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SITE = "home-g"
KINDS = ["sqlite", "postgres"]


@dataclass
class Home:
    db: Database
    service: V2gService
    envelopes: EnvelopeService
    stations: FakeStations
    clock: list[datetime]

    async def export_limit(self, watts: float) -> None:
        envelope = OperatingEnvelope(
            site_id=SITE,
            source="operator",
            control_id=None,
            is_default=False,
            start=T0 - timedelta(hours=1),
            end=None,
            received_at=self.clock[0],
            export_limit_w=watts,
        )
        await self.envelopes.replace_operator_envelopes(SITE, [envelope])

    def tx_profiles(self, station_id: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.stations.of(station_id, "SetChargingProfile")
            if p["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        ]


@contextlib.asynccontextmanager
async def home(kind: str, tmp_path: Path) -> AsyncIterator[Home]:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'grid.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database(postgres_url_or_skip()))
        (db,) = await stack.enter_async_context(node_databases(url, 1))
        clock = [T0]
        stations = FakeStations({V21: "2.1", V201: "2.0.1"})
        envelopes = EnvelopeService(db, stations, clock=lambda: clock[0], reconnect_grace_s=0)
        service = V2gService(
            db,
            stations,
            clock=lambda: clock[0],
            versions=stations.version,
            envelope_caps=envelopes.power_caps,
        )
        envelopes.add_listener(service.grid_services_envelope_changed)
        stack.push_async_callback(service.close)
        await plug_in(db, [V21, V201], T0 - timedelta(hours=1), soc_pct=80.0)
        site = Site(SITE, "Home", station_ids=(V21, V201))
        await db.write(lambda c: srepo.insert_site(c, site, T0))
        found = Home(db, service, envelopes, stations, clock)
        await found.export_limit(3000.0)  # 1500 W of discharge each
        yield found


async def under_frequency(h: Home) -> dict[str, Any]:
    """49.7 Hz for longer than the rule's 5 s hold: the event fires at T0 + 5 s."""
    outcome: dict[str, Any] = {}
    for k in range(7):
        found = await h.service.grid_frequency(49.7, T0 + timedelta(seconds=k))
        outcome = found if found["fired"] else outcome
    return outcome


@pytest.mark.parametrize("kind", KINDS)
async def test_under_frequency_discharge_is_held_to_the_envelope_share(
    kind: str, tmp_path: Path
) -> None:
    async with home(kind, tmp_path) as h:
        await _v2x_controller(h.db, V21, "ChargingOnly,CentralSetpoint,CentralFrequency")
        outcome = await under_frequency(h)
        by_station = {r["station_id"]: r for r in outcome["fired"]}
        for station_id in (V21, V201):  # the rule asks 5 kW of each, the share is 1.5 kW
            assert by_station[station_id]["kw"] == pytest.approx(-1.5)
            assert by_station[station_id]["requested_kw"] == pytest.approx(-5.0)
            assert by_station[station_id]["limited_by"] == "envelope"
        (native,) = h.tx_profiles(V21)
        period = _periods(native)[0]
        assert period["operationMode"] == "CentralFrequency"
        assert period["setpoint"] == -1500.0 and period["dischargeLimit"] == -1500.0
        (legacy,) = h.tx_profiles(V201)
        assert _periods(legacy)[0]["limit"] == -1500.0
        (record, _), *_ = [d for d in await h.service.dispatches() if d[0].kind == "frequency"]
        assert record.requested_kw == pytest.approx(-10.0)
        assert record.allocated_kw == pytest.approx(-3.0)  # what was sent, within the envelope


@pytest.mark.parametrize("kind", KINDS)
async def test_envelope_change_during_an_under_frequency_event_resends_it_within_the_new_share(
    kind: str, tmp_path: Path
) -> None:
    async with home(kind, tmp_path) as h:
        await under_frequency(h)
        assert [len(h.tx_profiles(s)) for s in (V21, V201)] == [1, 1]
        h.clock[0] = T0 + timedelta(seconds=65)  # 60 s into the 600 s event
        await h.export_limit(1000.0)  # 500 W each from now
        for station_id in (V21, V201):
            _first, again = h.tx_profiles(station_id)
            assert again["chargingProfile"]["id"] == FREQUENCY_PROFILE_ID  # replaces the first
            schedule = again["chargingProfile"]["chargingSchedule"][0]
            assert schedule["duration"] == 540  # the time the event has left
            period = schedule["chargingSchedulePeriod"][0]
            assert period.get("setpoint", period.get("limit")) == -500.0
        # after the event's end nothing is re-sent
        h.clock[0] = T0 + timedelta(seconds=700)
        await h.export_limit(2000.0)
        assert [len(h.tx_profiles(s)) for s in (V21, V201)] == [2, 2]


@pytest.mark.parametrize("kind", KINDS)
async def test_central_frequency_setpoint_is_held_and_follows_an_envelope_change(
    kind: str, tmp_path: Path
) -> None:
    async with home(kind, tmp_path) as h:
        await _v2x_controller(h.db, V21, "CentralSetpoint,CentralFrequency")
        curve = [[49.5, -7000.0], [49.85, 0.0], [50.15, 0.0], [50.5, 7000.0]]
        assert (await h.service.set_frequency_response(V21, curve, True))["accepted"]
        outcome = await h.service.grid_frequency(49.6, T0)  # the curve asks -5000 W
        (first,) = outcome["central"]
        assert first["action"] == "set" and first["setpoint_w"] == -1500.0
        assert first["limited_by"] == "envelope"
        (profile,) = h.tx_profiles(V21)
        period = _periods(profile)[0]
        assert period["setpoint"] == -1500.0 and period["dischargeLimit"] == -1500.0
        assert period["limit"] == 7000.0  # no import limit: the vehicle's bound
        h.clock[0] = T0 + timedelta(seconds=30)
        await h.export_limit(600.0)  # 300 W each
        (update,) = h.stations.of(V21, "UpdateDynamicSchedule")
        assert update["scheduleUpdate"]["setpoint"] == -300.0
        assert update["scheduleUpdate"]["dischargeLimit"] == -300.0


@pytest.mark.parametrize("kind", KINDS)
async def test_afrr_curve_and_local_control_are_held_to_the_envelope_share(
    kind: str, tmp_path: Path
) -> None:
    async with home(kind, tmp_path) as h:
        await _v2x_controller(
            h.db, V21, "ChargingOnly,CentralSetpoint,CentralFrequency,ExternalSetpoint"
        )
        curve = [(-100, -20_000.0), (0, 0.0), (100, 20_000.0)]
        result = await h.service.afrr_curve(curve, 900, baseline_w=-1_000.0)
        by_station = {r["station_id"]: r for r in result["results"]}
        assert by_station[V21]["status"] == "Accepted"
        assert by_station[V21]["limited_by"] == "envelope"
        (sent,) = h.tx_profiles(V21)
        (period,) = _periods(sent)
        assert period["dischargeLimit"] == -1500.0 and period["limit"] == 7000.0
        assert period["v2xSignalWattCurve"] == [
            {"signal": -100, "power": -1_500.0},
            {"signal": 0, "power": 0.0},
            {"signal": 100, "power": 7_000.0},
        ]
        handed = await h.service.local_control(V21, "ExternalSetpoint", 600)
        assert handed["limited_by"] == "envelope"
        (local,) = _periods({"chargingProfile": handed["profile"]})
        assert local["dischargeLimit"] == -1500.0 and local["limit"] == 7000.0
