"""OCPP 2.1 on the one endpoint: subprotocol negotiation (global and per station), the version
recorded and shown, 2.1 schemas with the Part 4 CALLERROR rules, the 2.1 frames (SEND,
CALLRESULTERROR), and commands judged by the station's version."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from csms import oca_schemas
from csms.api.schemas import StationRead
from csms.domain.errors import (
    ActionNotInVersion,
    CommandSchemaErrors,
    CommandValidationError,
    InvalidRequest,
)
from tests.support.csms_harness import (
    PASSWORD,
    Csms,
    basic_auth,
    raw_boot,
    raw_connect,
    raw_exchange,
    running_csms,
)
from tests.support.ocpp21_payloads import STATION_REQUESTS_21, STREAM_DATA
from v2g_shared.ocpp_versions import OcppVersion

V21, V201 = OcppVersion.V21, OcppVersion.V201


async def _subprotocol(csms: Csms, station_id: str, offered: list[str]) -> str | None:
    ws = await raw_connect(csms, station_id, subprotocols=offered)
    try:
        return ws.subprotocol
    finally:
        await ws.close()


async def _refusal(csms: Csms, station_id: str, offered: list[str]) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(
            f"{csms.url}/{station_id}",
            subprotocols=offered,  # type: ignore[arg-type]
            additional_headers=basic_auth(station_id, PASSWORD),
            open_timeout=5,
        )
    response = info.value.response
    return int(response.status_code), response.body.decode()


# ---- negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["ocpp2.1", "ocpp2.0.1"], "ocpp2.1"),
        (["ocpp2.0.1", "ocpp2.1"], "ocpp2.1"),  # our preference order, not the station's
        (["ocpp2.1"], "ocpp2.1"),  # was refused with 400 before 2.1
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),  # 2.0.1 stations unchanged
    ],
)
async def test_ocpp21_preferred_when_offered(
    tmp_path: Path, offered: list[str], chosen: str
) -> None:
    async with running_csms(tmp_path) as csms:
        await csms.add_station("CS1")
        assert await _subprotocol(csms, "CS1", offered) == chosen


async def test_global_setting_limits_versions_and_400_names_them(tmp_path: Path) -> None:
    async with running_csms(tmp_path, ocpp_versions="2.0.1") as csms:
        await csms.add_station("CS1")
        assert await _subprotocol(csms, "CS1", ["ocpp2.1", "ocpp2.0.1"]) == "ocpp2.0.1"
        status, body = await _refusal(csms, "CS1", ["ocpp2.1"])
        assert status == 400
        assert "ocpp2.0.1" in body and "ocpp2.1" not in body


async def test_unknown_versions_only_400_before_login(tmp_path: Path) -> None:
    async with running_csms(tmp_path) as csms:
        status, body = await _refusal(csms, "NOPE", ["ocpp1.6"])  # 400 before the 404
        assert status == 400
        assert "ocpp2.1, ocpp2.0.1" in body


async def test_station_override_replaces_global_setting(tmp_path: Path) -> None:
    async with running_csms(tmp_path, ocpp_versions="2.0.1") as csms:
        await csms.add_station("ONLY201", ocpp_versions=[V201])
        await csms.add_station("PREFERS21", ocpp_versions=[V21, V201])
        await csms.add_station("ONLY21", ocpp_versions=[V21])
        both = ["ocpp2.0.1", "ocpp2.1"]
        assert await _subprotocol(csms, "ONLY201", both) == "ocpp2.0.1"
        assert await _subprotocol(csms, "PREFERS21", both) == "ocpp2.1"
        status, body = await _refusal(csms, "ONLY21", ["ocpp2.0.1"])
        assert (status, body.strip()) == (400, "no common subprotocol: this CSMS speaks ocpp2.1")
        # Changed through the service (API PATCH / CLI station update): next connection.
        await csms.services.stations.update("ONLY21", ocpp_versions=[])
        assert await _subprotocol(csms, "ONLY21", ["ocpp2.0.1"]) == "ocpp2.0.1"


async def test_negotiated_version_recorded_and_shown(tmp_path: Path) -> None:
    async with running_csms(tmp_path) as csms:
        await csms.add_station("CS1")
        stations = csms.services.stations
        assert await stations.ocpp_version("CS1") is None  # never connected
        ws = await raw_connect(csms, "CS1", subprotocols=["ocpp2.1"])
        await raw_boot(ws)  # the session is running
        assert csms.server.sessions["CS1"].version is V21
        assert await stations.ocpp_version("CS1") is V21
        read = StationRead.model_validate(await stations.get("CS1"))
        assert read.model_dump()["ocpp_version"] == "ocpp2.1"
        await ws.close()
        ws = await raw_connect(csms, "CS1", subprotocols=["ocpp2.0.1"])
        await raw_boot(ws)
        assert await stations.ocpp_version("CS1") is V201
        await ws.close()


# ---- messages: 2.1 schemas, Part 4 codes, SEND -------------------------------------------


async def _connected(csms: Csms, version: OcppVersion) -> ClientConnection:
    ws = await raw_connect(csms, "CS1", subprotocols=[version.value])
    assert (await raw_boot(ws))[0] == 3
    return ws


@pytest.fixture
async def csms(tmp_path: Path) -> Any:
    async with running_csms(tmp_path) as running:
        await running.add_station("CS1")
        yield running


async def test_ocpp21_occurrence_spelling_per_version(csms: Csms) -> None:
    """OCPP-J 2.1 spells OccurrenceConstraintViolation with two r's; 2.0.1 keeps one."""
    bad = [2, "m1", "BootNotification", {"reason": "PowerUp"}]  # chargingStation missing
    for version, code in (
        (V21, "OccurrenceConstraintViolation"),
        (V201, "OccurenceConstraintViolation"),
    ):
        ws = await raw_connect(csms, "CS1", subprotocols=[version.value])
        assert (await raw_exchange(ws, bad))[:3] == [4, "m1", code]
        await ws.close()


async def test_ocpp21_only_action_not_implemented_on_201(csms: Csms) -> None:
    alarm = {
        "controlType": "VoltVar",
        "timestamp": "2025-01-01T00:00:00Z",
        "gridEventFault": "OverVoltage",
    }
    ws = await _connected(csms, V201)
    reply = await raw_exchange(ws, [2, "a1", "NotifyDERAlarm", alarm])
    assert reply[:3] == [4, "a1", "NotImplemented"]
    await ws.close()
    ws = await _connected(csms, V21)
    assert await raw_exchange(ws, [2, "a2", "NotifyDERAlarm", alarm]) == [3, "a2", {}]
    await ws.close()


async def test_ocpp21_message_validated_against_21_schema(csms: Csms) -> None:
    """A 2.1-only field is a FormatViolation on 2.0.1 and fine on 2.1."""
    needs = {
        "evseId": 1,
        "chargingNeeds": {"requestedEnergyTransfer": "DC", "availableEnergyTransfer": ["DC_BPT"]},
    }
    ws = await _connected(csms, V201)
    reply = await raw_exchange(ws, [2, "n1", "NotifyEVChargingNeeds", needs])
    assert reply[:3] == [4, "n1", "FormatViolation"]
    await ws.close()
    ws = await _connected(csms, V21)
    reply = await raw_exchange(ws, [2, "n2", "NotifyEVChargingNeeds", needs])
    assert reply[0] == 3 and reply[2]["status"] in ("Accepted", "Rejected", "Processing")
    await ws.close()


async def test_ocpp21_bounds_checked_like_201(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    # evseId is an integer: beyond int32 the CSMS cannot hold it (the schema has no maximum).
    needs = {"evseId": 2**40, "chargingNeeds": {"requestedEnergyTransfer": "DC"}}
    frame = orjson.dumps([2, "b1", "NotifyEVChargingNeeds", needs]).decode()
    reply = await raw_exchange(ws, frame)
    assert reply[:3] == [4, "b1", "PropertyConstraintViolation"]  # a number beyond int64
    await ws.close()


async def test_ocpp21_send_is_never_answered(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    await ws.send(orjson.dumps([6, "s1", "NotifyPeriodicEventStream", STREAM_DATA]).decode())
    await ws.send(orjson.dumps([6, "s2", "NotifyPeriodicEventStream", {"id": "bad"}]).decode())
    # The next frame received answers the heartbeat: nothing came for either SEND.
    reply = await raw_exchange(ws, [2, "h1", "Heartbeat", {}])
    assert reply[:2] == [3, "h1"]
    await ws.close()


async def test_ocpp21_send_as_call_is_protocol_error(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    reply = await raw_exchange(ws, [2, "c1", "NotifyPeriodicEventStream", STREAM_DATA])
    assert reply[:3] == [4, "c1", "ProtocolError"]
    await ws.close()


@pytest.mark.parametrize(
    "frame", [[6, "s1", "Heartbeat", {}], [5, "r1", "FormatViolation", "", {}]]
)
async def test_ocpp201_has_no_send_or_callresulterror(csms: Csms, frame: list[Any]) -> None:
    ws = await _connected(csms, V201)
    reply = await raw_exchange(ws, frame)
    assert reply[:3] == [4, frame[1], "MessageTypeNotSupported"]
    await ws.close()


async def test_ocpp21_callresulterror_is_taken_without_answer(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    await ws.send(orjson.dumps([5, "r1", "FormatViolation", "bad result", {}]).decode())
    reply = await raw_exchange(ws, [2, "h1", "Heartbeat", {}])
    assert reply[:2] == [3, "h1"]
    await ws.close()


# ---- commands judged by the station's version --------------------------------------------

DER_CONTROL = {
    "isDefault": False,
    "controlId": "vw-1",
    "controlType": "VoltWatt",
    "curve": {
        "priority": 1,
        "yUnit": "PctMaxW",
        "curveData": [{"x": 100.0, "y": 100.0}, {"x": 110.0, "y": 20.0}],
    },
}


async def _answer_next_call(ws: ClientConnection, answer: dict[str, Any]) -> list[Any]:
    async with asyncio.timeout(5):
        frame = orjson.loads(await ws.recv())
    await ws.send(orjson.dumps([3, frame[1], answer]).decode())
    return list(frame)


async def test_ocpp21_action_refused_for_201_station(csms: Csms) -> None:
    ws = await _connected(csms, V201)
    with pytest.raises(
        ActionNotInVersion, match=r"speaks OCPP 2.0.1; SetDERControl exists only in OCPP 2.1"
    ):
        await csms.services.commands.send("CS1", "SetDERControl", DER_CONTROL)
    await ws.close()


async def test_ocpp21_action_sent_to_21_station(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    with pytest.raises(CommandSchemaErrors):
        await csms.services.commands.send("CS1", "SetDERControl", {"controlId": "x"})
    sending = asyncio.create_task(csms.services.commands.send("CS1", "SetDERControl", DER_CONTROL))
    frame = await _answer_next_call(ws, {"status": "Accepted"})
    assert frame[2:] == ["SetDERControl", DER_CONTROL]
    assert await sending == {"status": "Accepted"}
    await ws.close()


V2X_PROFILE = {
    "evseId": 1,
    "chargingProfile": {
        "id": 7,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2025-01-01T00:00:00Z",
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {
                        "startPeriod": 0,
                        "operationMode": "CentralSetpoint",
                        "setpoint": -5000.0,
                        "dischargeLimit": -7000.0,
                    },
                    {
                        "startPeriod": 600,
                        "operationMode": "LocalFrequency",
                        "limit": 7000.0,
                        "v2xFreqWattCurve": [
                            {"frequency": 49.8, "power": 7000.0},
                            {"frequency": 50.2, "power": -7000.0},
                        ],
                    },
                ],
            }
        ],
    },
}


async def test_k01_ocpp21_profile_sent_unchanged_to_21_station(csms: Csms) -> None:
    """2.1-only period fields (operationMode, setpoint, dischargeLimit, v2xFreqWattCurve) are
    neither dropped nor refused: the payload sent is the payload validated."""
    ws = await _connected(csms, V21)
    sending = asyncio.create_task(
        csms.services.commands.send("CS1", "SetChargingProfile", V2X_PROFILE)
    )
    frame = await _answer_next_call(ws, {"status": "Accepted"})
    assert frame[2:] == ["SetChargingProfile", V2X_PROFILE]
    assert (await sending)["status"] == "Accepted"
    await ws.close()


async def test_k01_ocpp21_profile_refused_for_201_station(csms: Csms) -> None:
    ws = await _connected(csms, V201)
    with pytest.raises(CommandSchemaErrors) as info:
        await csms.services.commands.send("CS1", "SetChargingProfile", V2X_PROFILE)
    assert "operationMode" in str(info.value) or "setpoint" in str(info.value)
    await ws.close()


async def test_k01_rules_still_apply_to_21_profiles(csms: Csms) -> None:
    """A 2.1 profile the shared model reads is still checked by K01 (K01.FR.31: first
    startPeriod 0)."""
    ws = await _connected(csms, V21)
    profile = {
        "evseId": 1,
        "chargingProfile": {
            **V2X_PROFILE["chargingProfile"],
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": "2025-01-01T00:00:00Z",
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 60, "limit": 7000.0}],
                }
            ],
        },
    }
    with pytest.raises(CommandValidationError, match=r"K01\.FR\.31"):
        await csms.services.commands.send("CS1", "SetChargingProfile", profile)
    await ws.close()


# ---- every CS -> CSMS 2.1 message answered and kept --------------------------------------


async def test_every_ocpp21_station_message_answered_schema_valid_and_kept(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    for n, (action, payload) in enumerate(STATION_REQUESTS_21.items()):
        reply = await raw_exchange(ws, [2, f"m{n}", action, payload])
        if action == "VatNumberValidation":  # no VAT registry: unsupported feature
            assert reply[:3] == [4, f"m{n}", "NotSupported"]
        else:
            assert reply[:2] == [3, f"m{n}"], reply
            oca_schemas.check(action, "Response", reply[2], V21)  # schema-valid answer
        kept = await csms.services.events.list("CS1", 0, 10, kind=action)
        assert [e.payload for e in kept.items] == [payload], action
    await ws.close()


async def test_n_periodic_event_stream_opened_streamed_closed(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    opened = await raw_exchange(
        ws, [2, "o1", "OpenPeriodicEventStream", STATION_REQUESTS_21["OpenPeriodicEventStream"]]
    )
    assert opened == [3, "o1", {"status": "Accepted"}]
    await ws.send(orjson.dumps([6, "s1", "NotifyPeriodicEventStream", STREAM_DATA]).decode())
    assert (await raw_exchange(ws, [2, "c1", "ClosePeriodicEventStream", {"id": 3}]))[0] == 3
    (stream,) = await csms.services.ocpp21.streams("CS1")
    assert (stream.stream_id, stream.variable_monitoring_id, stream.interval_s) == (3, 11, 1)
    assert stream.closed_at is not None
    values = await csms.services.ocpp21.values("CS1", 3)
    assert [(v.timestamp.isoformat(), v.value) for v in values.items] == [
        ("2025-06-01T12:00:00+00:00", "230.1"),
        ("2025-06-01T12:00:00.500000+00:00", "230.4"),
        ("2025-06-01T12:00:01+00:00", "229.9"),
    ]
    await ws.close()


async def test_n_periodic_event_stream_out_of_bounds_dropped(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    far = {**STREAM_DATA, "data": [{"t": 1e12, "v": "1"}]}
    await ws.send(orjson.dumps([6, "s1", "NotifyPeriodicEventStream", far]).decode())
    assert (await raw_exchange(ws, [2, "h1", "Heartbeat", {}]))[:2] == [3, "h1"]
    assert (await csms.services.ocpp21.values("CS1", 3)).total == 0
    await ws.close()


async def test_k_pull_dynamic_schedule_update(csms: Csms) -> None:
    ws = await _connected(csms, V21)
    pull = [2, "p1", "PullDynamicScheduleUpdate", {"chargingProfileId": 7}]
    unknown = await raw_exchange(ws, pull)
    assert unknown[2]["status"] == "Rejected"
    update = {"setpoint": -3000.0, "dischargeLimit": -7000.0}
    await csms.services.ocpp21.set_schedule_update("CS1", 7, update)
    held = await raw_exchange(ws, [2, "p2", *pull[2:]])
    assert held == [3, "p2", {"status": "Accepted", "scheduleUpdate": update}]
    with pytest.raises(InvalidRequest):
        await csms.services.ocpp21.set_schedule_update("CS1", 7, {"setpoint": "high"})
    await ws.close()


async def test_k01_ocpp21_v2x_rules_run_for_21_station(csms: Csms) -> None:
    """The shared 2.1 rules (v2g_shared.schedule) run before sending: CentralSetpoint without
    a setpoint is refused (422), though the 2.1 schema allows it."""
    ws = await _connected(csms, V21)
    period = {"startPeriod": 0, "operationMode": "CentralSetpoint", "limit": 7000.0}
    schedule = {**V2X_PROFILE["chargingProfile"]["chargingSchedule"][0]}
    schedule["chargingSchedulePeriod"] = [period]
    profile = {
        "evseId": 1,
        "chargingProfile": {**V2X_PROFILE["chargingProfile"], "chargingSchedule": [schedule]},
    }
    with pytest.raises(CommandValidationError, match="needs a setpoint"):
        await csms.services.commands.send("CS1", "SetChargingProfile", profile)
    await ws.close()


# ---- bounds: mutated 2.1 messages are answered, never an internal error ------------------


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _leaves(v, (*path, i))]
    return [(path, node)]


def _with(payload: Any, path: tuple[Any, ...], value: Any) -> Any:
    copied = orjson.loads(orjson.dumps(payload))
    target = copied
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copied


_MARK = "__OUT_OF_INT64__"
NUMBER_MUTATIONS: tuple[Any, ...] = (2**31, -(2**31) - 1, 2**63 - 1, 1e308, -1e308, 1.5, _MARK)
STRING_MUTATIONS: tuple[Any, ...] = ("", "x" * 5000, "9999-12-31T23:59:59-14:00", 5)


def _mutations(payload: dict[str, Any]) -> list[str]:
    frames = []
    for path, value in _leaves(payload):
        if isinstance(value, bool):
            options: tuple[Any, ...] = ("true", 0)
        elif isinstance(value, int | float):
            options = NUMBER_MUTATIONS
        else:
            options = STRING_MUTATIONS
        for option in options:
            frames.append(orjson.dumps(_with(payload, path, option)).decode())
    # Integers beyond int64 cannot be built by orjson: written as text.
    return [f.replace(f'"{_MARK}"', str(2**70)) for f in frames]


async def test_ocpp21_mutated_station_messages_answered_never_internal_error(
    csms: Csms,
) -> None:
    """Every 2.1 CS -> CSMS message with each value pushed to an extreme (int32/int64 edges,
    beyond int64, +-1e308, a fraction for an integer, long and empty strings, a date past year
    9999, wrong types): answered with a CALLRESULT or a CALLERROR other than InternalError; the
    SEND with the same mutations is dropped or stored and the session keeps answering."""
    ws = await _connected(csms, V21)
    n = 0
    for action, payload in {
        **STATION_REQUESTS_21,
        "NotifyPeriodicEventStream": STREAM_DATA,
    }.items():
        for mutated in _mutations(payload):
            n += 1
            if action == "NotifyPeriodicEventStream":
                await ws.send(f'[6, "s{n}", "{action}", {mutated}]')
                reply = await raw_exchange(ws, [2, f"h{n}", "Heartbeat", {}])
                assert reply[:2] == [3, f"h{n}"], (action, mutated[:200], reply)
                continue
            reply = await raw_exchange(ws, f'[2, "m{n}", "{action}", {mutated}]')
            assert reply[1] == f"m{n}"
            assert reply[0] == 3 or reply[2] != "InternalError", (action, mutated[:200], reply)
    assert n > 200
    await ws.close()
