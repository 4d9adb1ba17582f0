"""Issue 11, transactions (pure rules): seqNo gaps counted arithmetically (finding 1), a
transaction keeps three numbers instead of its seen seqNos (finding 6), a new transaction
supersedes a stale Active one on its EVSE and K01.FR.33 uses the newest (finding 7)."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from csms.domain import rules
from csms.domain.models import Transaction, TransactionState
from csms.domain.transactions import (
    SUPERSEDED,
    TransactionEventInput,
    apply_event,
    needs_status_check,
    seq_no_maybe_stored,
    supersede,
    supersedes,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INT64_MAX = 2**63 - 1


def _reference_gaps(seen: set[int], last: int) -> list[tuple[int, int]]:
    """The old definition (a range over the values), grouped into ranges: small values only."""
    missing = [n for n in range(min(seen), last + 1) if n not in seen]
    gaps: list[tuple[int, int]] = []
    for n in missing:
        if gaps and gaps[-1][1] == n - 1:
            gaps[-1] = (gaps[-1][0], n)
        else:
            gaps.append((n, n))
    return gaps


@given(
    st.sets(st.integers(min_value=-50, max_value=300), min_size=1, max_size=60),
    st.integers(min_value=-60, max_value=320),
)
def test_finding1_missing_seq_ranges_match_reference(seen: set[int], last: int) -> None:
    assert rules.missing_seq_ranges(seen, last) == _reference_gaps(seen, last)


def _event(
    kind: str, seq: int, *, offline: bool = True, tx: str = "TX", evse: int | None = 1
) -> TransactionEventInput:
    return TransactionEventInput(
        station_id="CS",
        transaction_id=tx,
        event_type=kind,
        timestamp=NOW + timedelta(seconds=seq % 86_400),
        seq_no=seq,
        trigger_reason="Authorized",
        offline=offline,
        evse_id=evse,
    )


def _fold(seq_nos: list[int]) -> Transaction | None:
    """apply_event over a stream the way the handler feeds it: a retry is not applied."""
    tx: Transaction | None = None
    stored: set[int] = set()
    for n in seq_nos:
        if n in stored:
            assert tx is not None and seq_no_maybe_stored(tx, n)  # the handler looks it up
            continue
        stored.add(n)
        tx = apply_event(tx, _event("Updated", n), [], None, NOW)
    return tx


@given(st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=80))
def test_finding1_span_and_count_match_reference(seq_nos: list[int]) -> None:
    tx = _fold(seq_nos)
    assert tx is not None
    seen = set(seq_nos)
    assert (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (min(seen), max(seen), len(seen))
    missing = sum(hi - lo + 1 for lo, hi in _reference_gaps(seen, max(seen)))
    assert rules.missing_seq_count(tx.first_seq_no, tx.last_seq_no, tx.seq_count) == missing
    ended = apply_event(tx, _event("Ended", max(seen) + 1), [], None, NOW)
    assert needs_status_check(ended) == (missing > 0)


def test_finding1_offline_ended_seqno_int64_counted_not_listed() -> None:
    tx = apply_event(None, _event("Started", 0), [], None, NOW)
    tracemalloc.start()
    try:
        tx = apply_event(tx, _event("Ended", INT64_MAX), [], None, NOW)
        asks = needs_status_check(tx)
        gaps = rules.missing_seq_ranges([0, INT64_MAX], INT64_MAX)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert asks
    assert gaps == [(1, INT64_MAX - 1)]
    assert rules.missing_seq_count(0, INT64_MAX, 2) == INT64_MAX - 1
    # The old range(first, last) check built a list as long as the gap (3 GB in 7 s).
    assert peak < 64 * 1024


def test_finding1_gap_check_memory_independent_of_seqno() -> None:
    """seqNo 10^7 blocked the loop for half a second before (a 10^7-element list): now the
    check allocates the same few bytes at 10^7 as at 10."""
    peaks = []
    for last in (10, 10**7):
        tx = apply_event(None, _event("Started", 0), [], None, NOW)
        tx = apply_event(tx, _event("Ended", last), [], None, NOW)
        tracemalloc.start()
        try:
            assert needs_status_check(tx)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < 4096 and peaks[1] <= peaks[0] + 512


def test_finding6_seen_seqnos_three_numbers_whatever_the_count() -> None:
    tx = _fold(list(range(8000)))
    assert tx is not None
    assert (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (0, 7999, 8000)
    assert not hasattr(tx, "seen_seq_nos")


def test_finding6_seen_seqnos_only_values_inside_the_span_may_be_retries() -> None:
    tx = _fold([3, 7])
    assert tx is not None
    assert [n for n in range(0, 10) if seq_no_maybe_stored(tx, n)] == [3, 4, 5, 6, 7]
    assert not seq_no_maybe_stored(None, 3)


def _tx(tx_id: str, evse: int | None, started: datetime | None, **kw: object) -> Transaction:
    return Transaction(
        station_id=str(kw.pop("station", "CS")),
        transaction_id=tx_id,
        state=TransactionState(str(kw.pop("state", "Active"))),
        evse_id=evse,
        started_at=started,
        **kw,  # type: ignore[arg-type]
    )


def test_finding7_supersedes_only_an_older_active_one_on_the_same_evse() -> None:
    new = _tx("NEW", 1, NOW)
    assert supersedes(new, _tx("OLD", 1, NOW - timedelta(hours=1)), NOW)
    assert supersedes(new, _tx("UNSEEN", 1, None), NOW)  # its Started was lost
    assert not supersedes(new, _tx("OTHER-EVSE", 2, NOW - timedelta(hours=1)), NOW)
    assert not supersedes(new, _tx("ELSEWHERE", 1, NOW - timedelta(hours=1), station="CS2"), NOW)
    assert not supersedes(new, _tx("DONE", 1, NOW - timedelta(hours=1), state="Ended"), NOW)
    assert not supersedes(new, _tx("NEW", 1, NOW - timedelta(hours=1)), NOW)
    # An old transaction's offline Started replayed late does not end the running one.
    assert not supersedes(
        _tx("REPLAYED", 1, NOW - timedelta(hours=2)), new, NOW - timedelta(hours=2)
    )
    assert not supersedes(_tx("NO-EVSE", None, NOW), _tx("OLD", None, None), NOW)


def test_finding7_superseded_then_real_ended_keeps_the_real_end() -> None:
    old = apply_event(None, _event("Started", 0, tx="OLD"), [], None, NOW)
    ended = supersede(old, NOW + timedelta(hours=1), None)
    assert ended.state is TransactionState.ENDED
    assert (ended.stopped_reason, ended.ended_at) == (SUPERSEDED, NOW + timedelta(hours=1))
    real = TransactionEventInput(
        station_id="CS",
        transaction_id="OLD",
        event_type="Ended",
        timestamp=NOW + timedelta(minutes=30),
        seq_no=1,
        trigger_reason="EVDeparted",
        stopped_reason="EVDisconnected",
    )
    late = apply_event(ended, real, [], None, NOW)
    assert (late.stopped_reason, late.ended_at) == ("EVDisconnected", NOW + timedelta(minutes=30))


def test_finding7_k01_fr33_check_uses_the_newest_running_transaction() -> None:
    newest_first = [
        _tx("NEWER", 1, NOW),
        _tx("UNSEEN", 1, None),
        _tx("STALE", 1, NOW - timedelta(days=1)),
        _tx("E2", 2, NOW - timedelta(days=2)),
        _tx("NO-EVSE", None, NOW),
    ]
    assert rules.running_transaction_by_evse(newest_first) == {1: "NEWER", 2: "E2"}
    # Stored in the other order (a late offline replay): the later start still wins.
    assert rules.running_transaction_by_evse(newest_first[::-1])[1] == "NEWER"
    # Same start: the most recently stored.
    same = [_tx("B", 1, NOW), _tx("A", 1, NOW)]
    assert rules.running_transaction_by_evse(same) == {1: "B"}
