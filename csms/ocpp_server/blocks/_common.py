"""Helpers the block handlers share."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from csms.domain.models import EventRecord, MeterSample
from csms.ocpp_server import limits, protocol
from csms.services.common import parse_ocpp_datetime

if TYPE_CHECKING:
    from csms.ocpp_server.session import Session


async def record_event(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    timestamp_field: str | None = None,
    *,
    skip_if_refused: bool = False,
) -> bool:
    """Persist a notification as an event (committed before the answer is sent), charged to
    the station's storage quota. Over the quota: limits.StorageRefused, or with
    `skip_if_refused` (an audit copy the answer does not depend on) False and nothing
    stored."""
    ts_text = payload.get(timestamp_field) if timestamp_field else None
    # Parsed first: a payload refused for its date is not charged to the quota.
    timestamp = parse_ocpp_datetime(ts_text) if isinstance(ts_text, str) else None
    try:
        await limits.charge_storage(session, kind, limits.payload_size(payload))
    except limits.StorageRefused:
        if skip_if_refused:
            return False
        raise
    event = EventRecord(
        station_id=session.station_id,
        kind=kind,
        payload=payload,
        received_at=session.clock(),
        timestamp=timestamp,
    )
    await session.services.station_messages.record_event(event)
    return True


# UnitOfMeasure.multiplier is a power of ten with no bound in the schema: 10.0**400 raises
# OverflowError. Real meters use -3..6; +-30 spans every SI prefix.
MAX_MULTIPLIER = 30
# |value x 10^multiplier| above this is no meter reading (1 PWh, 1 PW, ...); it would make
# energy differences and costs overflow to inf, which JSON cannot carry.
MAX_SAMPLE_MAGNITUDE = 1e15


def meter_samples(
    station_id: str,
    meter_values: list[dict[str, Any]],
    *,
    evse_id: int | None,
    transaction_id: str | None,
) -> list[MeterSample]:
    """Flatten MeterValueType[] into one row per sampledValue. A multiplier or value out of
    bounds is a PropertyConstraintViolation for the sender (call this before a batched write:
    nothing in the batch may fail for one station's input)."""
    out: list[MeterSample] = []
    for mv in meter_values:
        ts: datetime = parse_ocpp_datetime(mv["timestamp"])
        for sv in mv["sampledValue"]:
            unit_of_measure = sv.get("unitOfMeasure")
            if unit_of_measure:
                unit = unit_of_measure.get("unit")
                multiplier = unit_of_measure.get("multiplier", 0)
                if not -MAX_MULTIPLIER <= multiplier <= MAX_MULTIPLIER:
                    raise protocol.PropertyConstraintViolation(
                        f"unitOfMeasure.multiplier {multiplier} is outside "
                        f"-{MAX_MULTIPLIER}..{MAX_MULTIPLIER}"
                    )
                value = float(sv["value"]) * (10.0**multiplier)
            else:
                unit = None
                value = float(sv["value"])
            if not abs(value) <= MAX_SAMPLE_MAGNITUDE:
                raise protocol.PropertyConstraintViolation(
                    f"sampledValue.value x 10^multiplier is beyond +-{MAX_SAMPLE_MAGNITUDE:g}"
                )
            out.append(
                MeterSample(
                    station_id=station_id,
                    timestamp=ts,
                    value=value,
                    measurand=sv.get("measurand", "Energy.Active.Import.Register"),
                    evse_id=evse_id,
                    transaction_id=transaction_id,
                    phase=sv.get("phase"),
                    location=sv.get("location"),
                    context=sv.get("context"),
                    unit=unit,
                )
            )
    return out
