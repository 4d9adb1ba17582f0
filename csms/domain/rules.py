"""Pure CSMS rules: authorization, transaction sequence numbers, running cost.

No I/O and no clock: `now` is always an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from csms.domain.models import AuthorizationResult, IdToken, IdTokenStatus, Tariff

ENERGY_REGISTER = "Energy.Active.Import.Register"


def authorize(token: IdToken | None, now: datetime) -> AuthorizationResult:
    """idTokenInfo for a token: Unknown when not on file, Expired once its expiry has passed."""
    if token is None:
        return AuthorizationResult(status=IdTokenStatus.UNKNOWN)
    status = token.status
    if (
        status is IdTokenStatus.ACCEPTED
        and token.expires_at is not None
        and token.expires_at <= now
    ):
        status = IdTokenStatus.EXPIRED
    return AuthorizationResult(
        status=status, expires_at=token.expires_at, group_id_token=token.group_id_token
    )


def remote_start_covers(
    sent: Iterable[object], id_token: str, type_: str, remote_start_id: int | None
) -> bool:
    """Whether one of the RequestStartTransaction payloads the CSMS sent (newest first) started
    this idToken: with a remoteStartId (F01/F02: the station echoes it in TransactionEvent) it must
    match too. The CSMS chose the token itself, so it must not answer Unknown for it: a station
    with StopTxOnInvalidId would end the session it was just told to start."""
    for payload in sent:
        if not isinstance(payload, dict):
            continue
        token = payload.get("idToken") or {}
        if token.get("idToken") != id_token or token.get("type") != type_:
            continue
        if remote_start_id is None or payload.get("remoteStartId") == remote_start_id:
            return True
    return False


def missing_seq_nos(seen: Iterable[int], last_seq_no: int) -> list[int]:
    """seqNo values in 0..last_seq_no that never arrived (E07: gaps show lost offline events).

    The first seqNo of a transaction need not be 0 (the counter may run across transactions),
    so the range starts at the smallest seen value.
    """
    seen_set = set(seen)
    if not seen_set:
        return []
    first = min(seen_set)
    return [n for n in range(first, last_seq_no + 1) if n not in seen_set]


def energy_to_wh(value: float, unit: str | None) -> float:
    """Energy register value in Wh (OCPP default unit is Wh; kWh is common too)."""
    if unit == "kWh":
        return value * 1000.0
    return value


def running_cost(
    tariff: Tariff | None, energy_wh: float | None, started_at: datetime | None, now: datetime
) -> float | None:
    """Cost of a transaction so far: energy x price per kWh + time x price per hour."""
    if tariff is None:
        return None
    cost = 0.0
    if energy_wh is not None:
        cost += max(energy_wh, 0.0) / 1000.0 * tariff.price_per_kwh
    if started_at is not None:
        hours = max((now - started_at).total_seconds(), 0.0) / 3600.0
        cost += hours * tariff.price_per_hour
    return round(cost, 4)
