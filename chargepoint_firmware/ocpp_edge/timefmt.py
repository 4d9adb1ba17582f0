"""OCPP timestamps: UTC, millisecond precision, `Z` suffix (e.g. 2026-01-01T12:00:00.123Z)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: OCPP timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Parse an OCPP dateTime; a value without offset is taken as UTC."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
