"""Pure CSMS rules: authorization, transaction sequence numbers, running cost.

No I/O and no clock: `now` is always an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from csms.domain.models import AuthorizationResult, IdToken, IdTokenStatus, Tariff, Transaction

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


def missing_seq_ranges(seen: Iterable[int], last_seq_no: int) -> list[tuple[int, int]]:
    """The seqNo values in min(seen)..last_seq_no that never arrived, as inclusive (lo, hi)
    ranges (E07: gaps show lost offline events).

    The first seqNo of a transaction need not be 0 (the counter may run across transactions),
    so the span starts at the smallest seen value. Arithmetic on the sorted distinct values:
    the cost grows with the number of values seen, never with the seqNo values themselves
    (issue 11 finding 1: a station chooses those).
    """
    values = sorted(set(seen))
    if not values:
        return []
    gaps: list[tuple[int, int]] = []
    previous = values[0]
    for n in values[1:]:
        if n > last_seq_no:
            break
        if n > previous + 1:
            gaps.append((previous + 1, n - 1))
        previous = n
    if last_seq_no > previous:
        gaps.append((previous + 1, last_seq_no))
    return gaps


def missing_seq_count(first_seq_no: int | None, last_seq_no: int | None, distinct_seen: int) -> int:
    """How many seqNo values in first..last never arrived, from the span and the number of
    distinct values stored: O(1) whatever the values (a stored transaction keeps only these
    three numbers, not the seen values)."""
    if first_seq_no is None or last_seq_no is None:
        return 0
    return max(0, last_seq_no - first_seq_no + 1 - distinct_seen)


def running_transaction_by_evse(active_newest_first: Sequence[Transaction]) -> dict[int, str]:
    """EVSE id -> the transaction running there, for the K01.FR.33 pre-check. When a station
    left an older one Active (issue 11 finding 7) the latest start wins (one never seen
    starting loses), then the most recently stored (the order given)."""
    best: dict[int, Transaction] = {}
    for tx in active_newest_first:
        if tx.evse_id is None:
            continue
        held = best.get(tx.evse_id)
        if held is None or _started_later(tx, held):
            best[tx.evse_id] = tx
    return {evse_id: tx.transaction_id for evse_id, tx in best.items()}


def _started_later(a: Transaction, b: Transaction) -> bool:
    if a.started_at is None:
        return False
    return b.started_at is None or a.started_at > b.started_at


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
