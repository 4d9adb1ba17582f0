"""Small shared pieces of the service layer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def ocpp_datetime(value: datetime) -> str:
    """UTC, millisecond precision, 'Z' suffix: the form the CSMS sends."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_ocpp_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise ValueError(f"date-time {value!r} is out of range") from exc


def check_page(offset: int, limit: int) -> None:
    from csms.domain.errors import InvalidRequest

    if offset < 0 or not 1 <= limit <= 1000:
        raise InvalidRequest("offset must be >= 0 and limit between 1 and 1000")


class CommandSender(Protocol):
    """What callers of `CommandService.send` need (the API, V2G and cost services)."""

    async def send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]: ...
