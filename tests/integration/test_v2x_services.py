"""The V2G services with a fake 2.1 station beside a 2.0.1 one: each gets its own version's
means (2.1 operation modes / 2.0.1 negative limits), every payload valid against the schema of
the station's version; dynamic schedules, EV V2X bounds, DER curves, aFRR, periodic streams."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from csms.domain.errors import InvalidRequest
from csms.domain.models import DeviceVariable, EventRecord
from csms.domain.v2g_records import PriceRow
from csms.oca_schemas import check_request
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.persistence.repositories import v2g as vrepo
from csms.services.ocpp21_data import Ocpp21DataService
from csms.services.v2g import V2gService
from csms.services.v2g.profiles import FREQUENCY_PROFILE_ID
from tests.support.v2g_nodes import node_databases, plug_in

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
V21, V201 = "CS21", "CS201"


def _v21_schema(action: str) -> dict[str, Any]:
    path = resources.files("ocpp") / "v21" / "schemas" / f"{action}Request.json"
    return json.loads(path.read_text(encoding="utf-8"))


class FakeStations:
    """The stations' side of CommandSender: checks each CALL against the schema of the
    station's version (a 2.1 station refuses a 2.0.1-only shape and vice versa), records it and
    answers as a station would."""

    def __init__(self, versions: dict[str, str]) -> None:
        self.versions = versions
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def version(self, station_id: str) -> str | None:
        return self.versions.get(station_id)

    async def send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        if self.versions.get(station_id) == "2.1":
            jsonschema.Draft6Validator(_v21_schema(action)).validate(payload)
        else:
            check_request(action, payload)  # the OCA 2.0.1 schema and bounds
        self.sent.append((station_id, action, payload))
        if action == "AFRRSignal" or action.endswith("DERControl"):
            return {"status": "Accepted"}
        return {"status": "Accepted"}

    def of(self, station_id: str, action: str) -> list[dict[str, Any]]:
        return [p for s, a, p in self.sent if s == station_id and a == action]


@contextlib.asynccontextmanager
async def two_stations(tmp_path: Path) -> AsyncIterator[tuple[Database, V2gService, FakeStations]]:
    stations = FakeStations({V21: "2.1", V201: "2.0.1"})
    async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 'v2x.db'}", 1) as dbs:
        db = dbs[0]
        service = V2gService(db, stations, clock=lambda: T0, versions=stations.version)
        await plug_in(db, [V21, V201], T0 - timedelta(hours=1), soc_pct=80.0)
        try:
            yield db, service, stations
        finally:
            await service.close()


async def _v2x_controller(db: Database, station_id: str, modes: str) -> None:
    variables = [
        DeviceVariable(station_id, "V2XChargingCtrlr", "Enabled", value="true"),
        DeviceVariable(station_id, "V2XChargingCtrlr", "SupportedOperationModes", value=modes),
    ]
    await db.write(lambda c: repo.upsert_device_variables(c, variables, T0))


async def _event(db: Database, station_id: str, kind: str, payload: dict[str, Any]) -> None:
    record = EventRecord(station_id, kind, payload, T0, T0)
    await db.write(lambda c: repo.insert_event(c, record))


def _periods(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]


async def test_q_fleet_dispatch_discharges_both_stations_each_in_its_version(
    tmp_path: Path,
) -> None:
    async with two_stations(tmp_path) as (_db, service, stations):
        outcome = await service.dispatch(-8.0, 900)
        assert outcome.accepted_kw == pytest.approx(-8.0)
        (native,) = stations.of(V21, "SetChargingProfile")
        (legacy,) = stations.of(V201, "SetChargingProfile")
        period = _periods(native)[0]
        assert period["operationMode"] == "CentralSetpoint"
        assert period["setpoint"] == pytest.approx(-4000.0)
        assert period["dischargeLimit"] == -7000.0 and period["limit"] == 7000.0
        assert _periods(legacy)[0] == {"startPeriod": 0, "limit": pytest.approx(-4000.0)}
        assert outcome.per_vehicle["ev0"]["ocpp_version"] == "2.1"
        assert outcome.per_vehicle["ev1"]["ocpp_version"] == "2.0.1"


async def test_q_plan_goes_native_to_21_and_as_negative_limits_to_201(tmp_path: Path) -> None:
    async with two_stations(tmp_path) as (db, service, stations):
        # cheap now, dear in an hour: the optimizer charges, then discharges
        rows = [
            PriceRow(T0 + timedelta(minutes=30 * k), 1800, p, p * 0.9)
            for k, p in enumerate([5.0, 5.0, 300.0, 300.0, 5.0, 5.0, 5.0, 5.0])
        ]
        await db.write(lambda c: vrepo.save_prices(c, rows, T0))
        for station_id in (V21, V201):
            await service.optimize_station(station_id, now=T0)
        native = _periods(stations.of(V21, "SetChargingProfile")[0])
        legacy = _periods(stations.of(V201, "SetChargingProfile")[0])
        assert len(native) == len(legacy)
        assert any(p.get("setpoint", 0) < 0 for p in native)  # it discharges natively
        for n, old in zip(native, legacy, strict=True):
            assert n["startPeriod"] == old["startPeriod"]
            assert n.get("setpoint", 0.0) == pytest.approx(old["limit"], abs=0.11)
            assert n.get("limit", 0) >= 0  # never a negative limit on 2.1
            if "setpoint" in n:
                assert n["dischargeLimit"] <= n["setpoint"] <= n["limit"]


async def test_q_ev_v2x_parameters_bound_the_plan(tmp_path: Path) -> None:
    async with two_stations(tmp_path) as (db, service, stations):
        rows = [
            PriceRow(T0 + timedelta(minutes=30 * k), 1800, p, p * 0.9)
            for k, p in enumerate([5.0, 300.0, 300.0, 5.0, 5.0, 5.0])
        ]
        await db.write(lambda c: vrepo.save_prices(c, rows, T0))
        needs = {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC_BPT",
                "availableEnergyTransfer": ["DC", "DC_BPT"],
                "v2xChargingParameters": {"maxChargePower": 5000, "maxDischargePower": 3000},
            },
        }
        await _event(db, V21, "NotifyEVChargingNeeds", needs)
        sent = await service.optimize_station(V21, now=T0)
        assert min(sent.plan.power_kw) >= -3.0 - 1e-9
        assert max(sent.plan.power_kw) <= 5.0 + 1e-9
        assert min(sent.plan.power_kw) < -1.0  # it still discharges, within the EV's word
        for period in _periods(stations.of(V21, "SetChargingProfile")[0]):
            if "setpoint" in period:
                assert period["dischargeLimit"] == -3000.0 and period["limit"] == 5000.0


async def test_q_frequency_event_runs_central_frequency_where_offered(tmp_path: Path) -> None:
    async with two_stations(tmp_path) as (db, service, stations):
        await _v2x_controller(db, V21, "ChargingOnly,CentralSetpoint,CentralFrequency")
        for k in range(7):  # below 49.8 Hz for more than the 5 s hold
            await service.grid_frequency(49.7, T0 + timedelta(seconds=k))
        (native,) = stations.of(V21, "SetChargingProfile")
        (legacy,) = stations.of(V201, "SetChargingProfile")
        assert _periods(native)[0]["operationMode"] == "CentralFrequency"
        assert _periods(native)[0]["setpoint"] == -5000.0
        assert native["chargingProfile"]["id"] == FREQUENCY_PROFILE_ID
        assert _periods(legacy)[0]["limit"] == -5000.0


async def test_q_local_frequency_response_is_a_native_profile_on_21(tmp_path: Path) -> None:
    async with two_stations(tmp_path) as (db, service, stations):
        await _v2x_controller(db, V21, "CentralSetpoint,LocalFrequency")
        curve = [[49.5, -7000.0], [49.85, 0.0], [50.15, 0.0], [50.5, 7000.0]]
        answer = await service.set_frequency_response(V21, curve, True)
        assert answer["accepted"] and answer["mode"] == "LocalFrequency"
        (sent,) = stations.of(V21, "SetChargingProfile")
        period = _periods(sent)[0]
        assert period["operationMode"] == "LocalFrequency"
        assert [p["frequency"] for p in period["v2xFreqWattCurve"]] == [49.5, 49.85, 50.15, 50.5]
        assert period["v2xBaseline"] == 0.0
        # the 2.0.1 station keeps the agent's variables
        legacy = await service.set_frequency_response(V201, curve, True)
        assert legacy["mode"] == "variables" and stations.of(V201, "SetVariables")
        off = await service.set_frequency_response(V21, None, False)
        assert off["accepted"] and stations.of(V21, "ClearChargingProfile")


async def test_q_central_frequency_follows_the_curve_with_a_dynamic_profile(
    tmp_path: Path,
) -> None:
    async with two_stations(tmp_path) as (db, service, stations):
        await _v2x_controller(db, V21, "CentralSetpoint,CentralFrequency")
        curve = [[49.5, -7000.0], [49.85, 0.0], [50.15, 0.0], [50.5, 7000.0]]
        answer = await service.set_frequency_response(V21, curve, True)
        assert answer["mode"] == "CentralFrequency" and answer["accepted"]
        assert not stations.of(V21, "SetChargingProfile")  # nothing until the grid moves

        async def sample(hz: float, second: int) -> list[dict[str, Any]]:
            outcome = await service.grid_frequency(hz, T0 + timedelta(seconds=second))
            return outcome.get("central", [])

        assert await sample(50.0, 0) == []  # 0 W and nothing held: nothing to say
        (first,) = await sample(49.7, 1)  # -7000 + 7000 * 0.2 / 0.35 = -3000 W
        assert first["action"] == "set" and first["setpoint_w"] == -3000.0
        (profile,) = stations.of(V21, "SetChargingProfile")
        assert profile["chargingProfile"]["chargingProfileKind"] == "Dynamic"
        period = _periods(profile)[0]
        assert period["operationMode"] == "CentralFrequency" and period["setpoint"] == -3000.0
        (moved,) = await sample(49.6, 2)
        assert moved["action"] == "update"
        (update,) = stations.of(V21, "UpdateDynamicSchedule")
        assert update["scheduleUpdate"]["setpoint"] == -5000.0
        assert await sample(49.601, 3) == []  # a 20 W change is not worth a message
        held = Ocpp21DataService(db, clock=lambda: T0)
        pulled = await held.pull_answer(V21, profile["chargingProfile"]["id"])
        assert pulled["scheduleUpdate"]["setpoint"] == -5000.0
        (cleared,) = await sample(50.0, 4)
        assert cleared["action"] == "clear"
        assert stations.of(V21, "ClearChargingProfile")[-1] == {
            "chargingProfileId": profile["chargingProfile"]["id"]
        }
        assert not stations.of(V201, "UpdateDynamicSchedule")  # 2.0.1: never


async def test_q_dynamic_setpoint_update_and_pull(tmp_path: Path) -> None:
    async with two_stations(tmp_path) as (db, service, stations):
        result = await service.update_setpoint(
            V21, 62_002, -9000.0, max_charge_w=7000.0, max_discharge_w=6000.0
        )
        assert result["scheduleUpdate"]["setpoint"] == -6000.0  # bounded by dischargeLimit
        (update,) = stations.of(V21, "UpdateDynamicSchedule")
        assert update["chargingProfileId"] == 62_002
        # what the OCPP edge answers the station's PullDynamicScheduleUpdate with
        held = Ocpp21DataService(db, clock=lambda: T0)
        pulled = await held.pull_answer(V21, 62_002)
        assert pulled == {"status": "Accepted", "scheduleUpdate": result["scheduleUpdate"]}
        assert (await held.pull_answer(V21, 1))["status"] == "Rejected"
        kept = await service.latest_dynamic_update(V21, 62_002)
        assert kept["scheduleUpdate"] == result["scheduleUpdate"]
        with pytest.raises(InvalidRequest, match=r"OCPP 2\.1"):
            await service.update_setpoint(V201, 1, 0.0, max_charge_w=7000.0, max_discharge_w=0.0)


async def test_q_allowed_energy_transfer_drops_bidirectional_when_no_discharge(
    tmp_path: Path,
) -> None:
    async with two_stations(tmp_path) as (db, service, stations):
        needs = {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC_BPT",
                "availableEnergyTransfer": ["DC", "DC_BPT"],
                "v2xChargingParameters": {"maxDischargePower": 0},
            },
        }
        await _event(db, V21, "NotifyEVChargingNeeds", needs)
        result = await service.notify_allowed_energy_transfer(V21)
        assert result["allowedEnergyTransfer"] == ["DC"]
        (sent,) = stations.of(V21, "NotifyAllowedEnergyTransfer")
        assert sent == {"transactionId": f"tx-{V21}", "allowedEnergyTransfer": ["DC"]}
        # a plan sent to the station says it too, by itself
        rows = [PriceRow(T0 + timedelta(minutes=30 * k), 1800, 5.0, 4.0) for k in range(6)]
        await db.write(lambda c: vrepo.save_prices(c, rows, T0))
        await service.optimize_station(V21, now=T0)
        assert len(stations.of(V21, "NotifyAllowedEnergyTransfer")) == 2
        await service.optimize_station(V201, now=T0)  # 2.0.1: no such message
        assert not stations.of(V201, "NotifyAllowedEnergyTransfer")


async def test_r_der_curves_configured_persisted_and_applied(tmp_path: Path) -> None:
    async with two_stations(tmp_path) as (_db, service, stations):
        await service.set_der_curve(V21, "freq_watt_under", region="australia_a")
        await service.set_der_curve(
            V21, "volt_watt", points=[[250.0, 100.0], [262.0, 10.0]], nominal_v=230.0
        )
        listed = {c["kind"]: c for c in await service.der_curves(V21)}
        assert listed["freq_watt_under"]["verified"] is True
        assert listed["volt_watt"]["source"] == "configured values"
        results = await service.apply_der_curves(V21)
        assert {r["kind"] for r in results} == {"freq_watt_under", "volt_watt"}
        sent = stations.of(V21, "SetDERControl")
        assert {s["controlType"] for s in sent} == {"FreqWatt", "VoltWatt"}
        with pytest.raises(InvalidRequest, match="either a region or points"):
            await service.set_der_curve(V21, "volt_var")
        with pytest.raises(InvalidRequest, match=r"OCPP 2\.1"):
            await service.apply_der_curves(V201)


async def test_r_der_reports_and_periodic_stream_samples_read_back(tmp_path: Path) -> None:
    async with two_stations(tmp_path) as (db, service, _stations):
        await _event(
            db,
            V21,
            "NotifyDERAlarm",
            {"controlType": "VoltWatt", "timestamp": "2026-06-01T08:00:00Z"},
        )
        stream = {
            "id": 3,
            "pending": 0,
            "basetime": "2026-06-01T08:00:00Z",
            "data": [{"t": 1.0, "v": "-4100"}, {"t": 0.5, "v": "-4000"}],
        }
        # as the OCPP edge stores a NotifyPeriodicEventStream
        await Ocpp21DataService(db, clock=lambda: T0).record_stream_values(V21, stream)
        reports = await service.station_events(V21, ("NotifyDERAlarm",))
        assert reports[0]["payload"]["controlType"] == "VoltWatt"
        samples = await service.stream_samples(V21, 3)
        assert [(s["at"], s["value"]) for s in samples] == [
            (T0 + timedelta(seconds=0.5), "-4000"),
            (T0 + timedelta(seconds=1), "-4100"),
        ]  # oldest first
        assert await service.stream_samples(V21, 4) == []


async def test_afrr_signal_goes_to_the_fleets_21_stations(tmp_path: Path) -> None:
    async with two_stations(tmp_path) as (_db, service, stations):
        result = await service.afrr_signal(-120)
        by_station = {r["station_id"]: r for r in result["results"]}
        assert by_station[V21]["status"] == "Accepted"
        assert by_station[V201]["status"] == "skipped"
        (sent,) = stations.of(V21, "AFRRSignal")
        assert sent["signal"] == -120
        history = await service.dispatches()
        assert any(record.kind == "afrr" for record, _ in history)
        with pytest.raises(InvalidRequest, match="32-bit"):
            await service.afrr_signal(2**40)


async def test_q_afrr_curve_armed_on_central_frequency_21_stations_only(tmp_path: Path) -> None:
    """aFRR: the fleet's signal-watt curve goes to the 2.1 station that offers CentralFrequency
    as a CentralFrequency TxProfile (schema-checked by the fake station), clamped to its
    vehicle; a 2.0.1 station and a 2.1 station without the mode are skipped with the reason."""
    async with two_stations(tmp_path) as (db, service, stations):
        curve = [(-100, -20_000.0), (0, 0.0), (100, 20_000.0)]
        before = await service.afrr_curve(curve, 900, baseline_w=-1_000.0)
        by_station = {r["station_id"]: r for r in before["results"]}
        assert by_station[V21] == {
            "station_id": V21,
            "status": "skipped",
            "reason": "no CentralFrequency mode",
        }
        assert by_station[V201]["reason"] == "OCPP 2.0.1"
        assert stations.of(V21, "SetChargingProfile") == []

        await _v2x_controller(db, V21, "ChargingOnly,CentralSetpoint,CentralFrequency")
        result = await service.afrr_curve(curve, 900, baseline_w=-1_000.0)
        assert {r["station_id"]: r["status"] for r in result["results"]}[V21] == "Accepted"
        (sent,) = stations.of(V21, "SetChargingProfile")
        profile = sent["chargingProfile"]
        assert profile["chargingProfilePurpose"] == "TxProfile"
        assert profile["chargingSchedule"][0]["duration"] == 900
        (period,) = _periods(sent)
        assert period["operationMode"] == "CentralFrequency"
        assert period["v2xBaseline"] == -1_000.0 and period["setpoint"] == -1_000.0
        # The vehicle does 7 kW each way (plug_in): the +-20 kW points are clamped.
        assert period["v2xSignalWattCurve"] == [
            {"signal": -100, "power": -7_000.0},
            {"signal": 0, "power": 0.0},
            {"signal": 100, "power": 7_000.0},
        ]
        assert any(record.kind == "afrr-curve" for record, _ in await service.dispatches())
        with pytest.raises(InvalidRequest, match="strictly increase"):
            await service.afrr_curve([(5, 0.0), (1, 0.0)], 60)
        with pytest.raises(InvalidRequest, match="duration_s"):
            await service.afrr_curve(curve, 0)


async def test_q_local_control_modes_hand_the_session_to_the_station_within_bounds(
    tmp_path: Path,
) -> None:
    """ExternalSetpoint / ExternalLimits / LocalLoadBalancing: one period of the mode (schema-
    checked by the fake 2.1 station), its limit and dischargeLimit the vehicle's bounds narrowed
    by the operator's maxima; refused for a mode the station does not offer, for a 2.0.1
    station and for a mode that is not a local-control one; cleared to give the plan back."""
    async with two_stations(tmp_path) as (db, service, stations):
        with pytest.raises(InvalidRequest, match="does not offer ExternalLimits"):
            await service.local_control(V21, "ExternalLimits", 600)
        await _v2x_controller(db, V21, "CentralSetpoint,ExternalLimits,ExternalSetpoint")
        result = await service.local_control(V21, "ExternalLimits", 600, max_discharge_w=3_000)
        assert result["status"] == "Accepted"
        (sent,) = stations.of(V21, "SetChargingProfile")
        assert sent["chargingProfile"]["stackLevel"] == 7
        assert sent["chargingProfile"]["chargingSchedule"][0]["duration"] == 600
        assert _periods(sent) == [
            {
                "startPeriod": 0,
                "operationMode": "ExternalLimits",
                "limit": 7_000.0,
                "dischargeLimit": -3_000.0,
            }
        ]
        await service.local_control(V21, "ExternalSetpoint", 60, max_charge_w=50_000)
        assert _periods(stations.of(V21, "SetChargingProfile")[1])[0]["limit"] == 7_000.0
        with pytest.raises(InvalidRequest, match="does not offer LocalLoadBalancing"):
            await service.local_control(V21, "LocalLoadBalancing", 60)
        with pytest.raises(InvalidRequest, match="mode must be one of"):
            await service.local_control(V21, "CentralSetpoint", 60)
        with pytest.raises(InvalidRequest, match=r"2\.1"):
            await service.local_control(V201, "ExternalSetpoint", 60)
        cleared = await service.end_local_control(V21)
        assert cleared["status"] == "Accepted"
        assert stations.of(V21, "ClearChargingProfile") == [{"chargingProfileId": 62_006}]
