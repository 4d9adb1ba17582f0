"""Pure CSMS rules: authorization, transaction folding, seqNo gaps, cost, time format,
OCPP-J framing and schema error mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms import oca_schemas
from csms.domain import rules
from csms.domain.models import IdToken, IdTokenStatus, MeterSample, Tariff, TransactionState
from csms.domain.transactions import TransactionEventInput, apply_event, needs_status_check
from csms.ocpp_server import protocol
from csms.services.common import ocpp_datetime, parse_ocpp_datetime

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_c01_unknown_token() -> None:
    assert rules.authorize(None, NOW).status is IdTokenStatus.UNKNOWN


@pytest.mark.parametrize(
    ("status", "expires", "expected"),
    [
        (IdTokenStatus.ACCEPTED, None, IdTokenStatus.ACCEPTED),
        (IdTokenStatus.ACCEPTED, NOW + timedelta(seconds=1), IdTokenStatus.ACCEPTED),
        (IdTokenStatus.ACCEPTED, NOW, IdTokenStatus.EXPIRED),
        (IdTokenStatus.BLOCKED, NOW - timedelta(days=1), IdTokenStatus.BLOCKED),
        (IdTokenStatus.INVALID, None, IdTokenStatus.INVALID),
    ],
)
def test_c01_token_status_and_expiry(
    status: IdTokenStatus, expires: datetime | None, expected: IdTokenStatus
) -> None:
    token = IdToken("T", "ISO14443", status, expires, "G")
    result = rules.authorize(token, NOW)
    assert result.status is expected
    assert result.group_id_token == "G"


@pytest.mark.parametrize(
    ("seen", "last", "missing"),
    [
        ([0, 1, 2], 2, []),
        ([0, 3, 4], 4, [(1, 2)]),
        ([5, 7], 7, [(6, 6)]),
        ([0, 9], 12, [(1, 8), (10, 12)]),
        ([], 3, []),
    ],
)
def test_e07_missing_seq_ranges(seen: list[int], last: int, missing: list[tuple[int, int]]) -> None:
    assert rules.missing_seq_ranges(seen, last) == missing


@given(st.sets(st.integers(min_value=0, max_value=200), min_size=1))
def test_e07_missing_seq_ranges_partition_the_range(seen: set[int]) -> None:
    last = max(seen)
    missing = {n for lo, hi in rules.missing_seq_ranges(seen, last) for n in range(lo, hi + 1)}
    assert missing.isdisjoint(seen)
    assert missing | seen == set(range(min(seen), last + 1))


def test_running_cost_energy_and_time() -> None:
    tariff = Tariff("CS", "AUD", price_per_kwh=0.4, price_per_hour=1.0)
    cost = rules.running_cost(tariff, 2500.0, NOW - timedelta(minutes=30), NOW)
    assert cost == pytest.approx(0.4 * 2.5 + 0.5)
    assert rules.running_cost(None, 1000.0, NOW, NOW) is None
    # Discharge (negative import) never earns a negative energy charge here.
    assert rules.running_cost(tariff, -1000.0, None, NOW) == 0.0


def _event(kind: str, seq: int, *, offline: bool = False, tx: str = "TX") -> TransactionEventInput:
    return TransactionEventInput(
        station_id="CS",
        transaction_id=tx,
        event_type=kind,
        timestamp=NOW + timedelta(minutes=seq),
        seq_no=seq,
        trigger_reason="Authorized",
        offline=offline,
        evse_id=1,
        stopped_reason="EVDisconnected" if kind == "Ended" else None,
    )


def _energy(seq: int, wh: float, unit: str | None = None) -> list[MeterSample]:
    return [MeterSample("CS", NOW + timedelta(minutes=seq), wh, unit=unit, transaction_id="TX")]


def test_apply_event_lifecycle() -> None:
    tariff = Tariff("CS", "AUD", price_per_kwh=1.0)
    tx = apply_event(None, _event("Started", 0), _energy(0, 100), tariff, NOW)
    assert tx.state is TransactionState.ACTIVE and not tx.started_unseen
    tx = apply_event(tx, _event("Updated", 1), _energy(1, 2.1, "kWh"), tariff, NOW)
    assert tx.energy_wh == pytest.approx(2000)
    assert tx.total_cost == pytest.approx(2.0)
    tx = apply_event(tx, _event("Ended", 2), [], tariff, NOW)
    assert tx.state is TransactionState.ENDED
    assert tx.stopped_reason == "EVDisconnected"
    assert tx.ended_at == NOW + timedelta(minutes=2)
    assert (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (0, 2, 3)
    assert not needs_status_check(tx)


def test_apply_event_unseen_start_and_gap() -> None:
    tx = apply_event(None, _event("Updated", 3, offline=True), [], None, NOW)
    assert tx.started_unseen and tx.started_at is None
    tx = apply_event(tx, _event("Ended", 5, offline=True), [], None, NOW)
    assert tx.offline_seen
    assert needs_status_check(tx)  # seqNo 4 missing


def test_ocpp_datetime_utc_millis_z() -> None:
    local = datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC).astimezone(
        timezone(timedelta(hours=10))
    )
    assert ocpp_datetime(local) == "2026-01-01T10:00:00.123Z"
    assert parse_ocpp_datetime("2026-01-01T10:00:00.123Z") == datetime(
        2026, 1, 1, 10, 0, 0, 123000, tzinfo=UTC
    )
    assert parse_ocpp_datetime("2026-01-01T20:00:00+10:00") == datetime(2026, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ('[2, "a", "Heartbeat", {}]', protocol.Call),
        ('[3, "a", {}]', protocol.CallResult),
        ('[4, "a", "GenericError", "x", {}]', protocol.CallError),
    ],
)
def test_parse_frames(raw: str, kind: type) -> None:
    assert isinstance(protocol.parse(raw), kind)


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_frame_error(raw: bytes) -> None:
    try:
        protocol.parse(raw)
    except protocol.FrameError as exc:
        assert exc.error.code in protocol.ERROR_BY_CODE
        assert isinstance(exc.message_id, str)


def test_error_frame_shape() -> None:
    frame = protocol.error_frame("id1", protocol.NotSupported("nope"))
    assert frame == '[4,"id1","NotSupported","nope",{}]'
    assert protocol.NotImplementedOcpp.code == "NotImplemented"


def test_schema_validators_are_cached() -> None:
    assert oca_schemas.validator("Heartbeat", "Request") is oca_schemas.validator(
        "Heartbeat", "Request"
    )
    assert oca_schemas.validator("NoSuchThing", "Request") is None
