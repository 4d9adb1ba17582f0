"""OCPP 2.1 beside 2.0.1: version lists and negotiation (pure), the per-version action tables
and their schemas, the 2.1 frames."""

from __future__ import annotations

import pytest

from csms import oca_schemas
from csms.domain.ocpp_versions import format_versions, negotiate, parse_versions
from csms.ocpp_server import protocol
from v2g_shared.ocpp_versions import OcppVersion

V21, V201 = OcppVersion.V21, OcppVersion.V201


def test_parse_versions_in_preference_order() -> None:
    assert parse_versions("2.1, ocpp2.0.1") == (V21, V201)
    assert format_versions(parse_versions(["2.0.1"])) == "ocpp2.0.1"
    for bad in ("", "1.6", "2.1,2.1"):
        with pytest.raises(ValueError):
            parse_versions(bad)


@pytest.mark.parametrize(
    ("offered", "accepted", "chosen"),
    [
        (["ocpp2.0.1", "ocpp2.1"], (V21, V201), V21),
        (["ocpp2.0.1", "ocpp2.1"], (V201, V21), V201),
        (["ocpp2.1"], (V201,), None),
        (["OCPP2.1"], (V21,), None),  # subprotocol tokens are case-sensitive
        ([], (V21, V201), None),
    ],
)
def test_negotiate_takes_our_first_offered(
    offered: list[str], accepted: tuple[OcppVersion, ...], chosen: OcppVersion | None
) -> None:
    assert negotiate(offered, accepted) is chosen


def test_ocpp21_table_keeps_every_201_action_and_direction() -> None:
    t201, t21 = oca_schemas.table(V201), oca_schemas.table(V21)
    assert t201.all_actions < t21.all_actions
    assert t201.csms_to_cs < t21.csms_to_cs
    assert t201.cs_to_csms < t21.cs_to_csms
    assert t21.station_sends == {"NotifyPeriodicEventStream"}
    assert "NotifyPeriodicEventStream" not in t21.cs_to_csms
    assert {"SetDERControl", "AFRRSignal", "UpdateDynamicSchedule"} <= t21.csms_to_cs
    assert {"NotifyDERAlarm", "PullDynamicScheduleUpdate"} <= t21.cs_to_csms
    assert oca_schemas.versions_with_action("SetDERControl") == (V21,)


def test_every_ocpp21_action_has_its_schemas() -> None:
    """Each table entry names schemas the `ocpp` package ships (a SEND has its one schema)."""
    for version, table in oca_schemas.TABLES.items():
        for action in table.all_actions:
            assert oca_schemas.schema_of(action, "Request", version) is not None, action
            if action not in table.station_sends:
                assert oca_schemas.schema_of(action, "Response", version) is not None, action


def test_201_and_21_schemas_differ_where_21_adds_fields() -> None:
    period = {"startPeriod": 0, "setpoint": -5000.0, "operationMode": "CentralSetpoint"}
    payload = {
        "evseId": 1,
        "chargingProfile": {
            "id": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [
                {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
            ],
        },
    }
    oca_schemas.check("SetChargingProfile", "Request", payload, V21)
    with pytest.raises(oca_schemas.SchemaViolation):
        oca_schemas.check("SetChargingProfile", "Request", payload, V201)


def test_ocpp21_frames_only_on_21() -> None:
    send = '[6, "s1", "NotifyPeriodicEventStream", {}]'
    assert protocol.parse(send, ocpp21=True) == protocol.Send("s1", "NotifyPeriodicEventStream", {})
    result_error = '[5, "r1", "FormatViolation", "bad", {}]'
    assert isinstance(protocol.parse(result_error, ocpp21=True), protocol.CallResultError)
    for frame in (send, result_error):
        with pytest.raises(protocol.FrameError) as info:
            protocol.parse(frame)
        assert info.value.error.code == "MessageTypeNotSupported"


def test_occurrence_spelled_per_version() -> None:
    error = protocol.OccurrenceConstraintViolation("missing")
    assert '"OccurrenceConstraintViolation"' in protocol.error_frame("m", error, ocpp21=True)
    assert '"OccurenceConstraintViolation"' in protocol.error_frame("m", error)
