"""Folding TransactionEvent messages into the stored transaction (E01-E07). Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from csms.domain.models import MeterSample, Tariff, Transaction, TransactionState
from csms.domain.rules import ENERGY_REGISTER, energy_to_wh, missing_seq_nos, running_cost


@dataclass(frozen=True, slots=True)
class TransactionEventInput:
    station_id: str
    transaction_id: str
    event_type: str  # Started / Updated / Ended
    timestamp: datetime
    seq_no: int
    trigger_reason: str
    offline: bool = False
    charging_state: str | None = None
    stopped_reason: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    id_token_type: str | None = None


def _energy_wh(samples: list[MeterSample]) -> tuple[float | None, float | None]:
    """First and last main energy register (no phase, Outlet or unspecified location)."""
    regs = [
        s
        for s in samples
        if s.measurand == ENERGY_REGISTER and s.phase is None and s.location in (None, "Outlet")
    ]
    if not regs:
        return None, None
    regs.sort(key=lambda s: s.timestamp)
    return energy_to_wh(regs[0].value, regs[0].unit), energy_to_wh(regs[-1].value, regs[-1].unit)


def apply_event(
    current: Transaction | None,
    event: TransactionEventInput,
    samples: list[MeterSample],
    tariff: Tariff | None,
    now: datetime,
) -> Transaction:
    """The transaction after `event`. An event for a transaction never seen starting is
    recorded (started_unseen), not refused: its Started event may have been lost offline."""
    if current is None:
        current = Transaction(
            station_id=event.station_id,
            transaction_id=event.transaction_id,
            state=TransactionState.ACTIVE,
            started_at=event.timestamp if event.event_type == "Started" else None,
            started_unseen=event.event_type != "Started",
        )
    tx = current
    if event.event_type == "Started":
        tx = replace(tx, started_at=event.timestamp, started_unseen=False)
    seen = tuple(sorted(set(tx.seen_seq_nos) | {event.seq_no}))
    last = event.seq_no if tx.last_seq_no is None else max(tx.last_seq_no, event.seq_no)
    first_wh, last_wh = _energy_wh(samples)
    energy_start = tx.energy_start_wh
    energy_last = tx.energy_last_wh
    if first_wh is not None:
        energy_start = first_wh if energy_start is None else min(energy_start, first_wh)
        energy_last = last_wh if energy_last is None else max(energy_last, last_wh or 0.0)
    tx = replace(
        tx,
        seen_seq_nos=seen,
        last_seq_no=last,
        offline_seen=tx.offline_seen or event.offline,
        evse_id=event.evse_id if event.evse_id is not None else tx.evse_id,
        connector_id=event.connector_id if event.connector_id is not None else tx.connector_id,
        id_token=event.id_token if event.id_token is not None else tx.id_token,
        id_token_type=event.id_token_type if event.id_token_type is not None else tx.id_token_type,
        charging_state=event.charging_state or tx.charging_state,
        energy_start_wh=energy_start,
        energy_last_wh=energy_last,
    )
    if event.event_type == "Ended":
        tx = replace(
            tx,
            state=TransactionState.ENDED,
            ended_at=event.timestamp,
            stopped_reason=event.stopped_reason or "Local",
        )
    end = tx.ended_at or now
    cost = running_cost(tariff, tx.energy_wh, tx.started_at, end)
    return replace(tx, total_cost=cost)


def needs_status_check(tx: Transaction) -> bool:
    """E07: after an Ended event with offline messages, missing seqNos mean lost events; the
    CSMS then asks GetTransactionStatus."""
    if tx.state is not TransactionState.ENDED or tx.last_seq_no is None:
        return False
    return tx.offline_seen and bool(missing_seq_nos(tx.seen_seq_nos, tx.last_seq_no))
