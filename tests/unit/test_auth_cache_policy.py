"""Authorization Cache eviction and lapse rules (blocks/authorization/auth_cache_policy.py):
properties.

AuthCacheCtrlr.Policy: LRU, LFU, FIFO, CUSTOM (non-Accepted first, then soonest lapse, then
LRU); lapsed entries (cacheExpiryDateTime C10.FR.13, LifeTime C10.FR.08/.10) always go first.
"""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint_firmware.blocks.authorization.auth_cache_policy import (
    ENTRY_OVERHEAD_BYTES,
    POLICIES,
    CacheEntryMeta,
    entry_size,
    eviction_order,
    lapse_time,
    lapsed,
    plan_evictions,
)

NOW = 1_000_000.0


@st.composite
def cache_entries(draw: st.DrawFn, max_size: int = 12) -> list[CacheEntryMeta]:
    n = draw(st.integers(min_value=0, max_value=max_size))
    inserted = draw(st.permutations(range(1, n + 1)))
    out = []
    for i in range(n):
        lapse = draw(
            st.one_of(st.none(), st.floats(min_value=NOW - 100, max_value=NOW + 100).map(round))
        )
        out.append(
            CacheEntryMeta(
                key=(f"T{i}", "ISO14443"),
                size=draw(st.integers(min_value=70, max_value=400)),
                inserted=inserted[i],
                last_used=inserted[i] + draw(st.integers(min_value=0, max_value=50)),
                uses=draw(st.integers(min_value=1, max_value=20)),
                accepted=draw(st.booleans()),
                lapses_at=lapse,
            )
        )
    return out


policies = st.sampled_from(POLICIES)


@given(cache_entries(), policies)
def test_eviction_order_is_a_permutation_with_lapsed_entries_first(
    entries: list[CacheEntryMeta], policy: str
) -> None:
    order = eviction_order(entries, policy, NOW)
    assert sorted(e.key for e in order) == sorted(e.key for e in entries)
    flags = [lapsed(e, NOW) for e in order]
    assert flags == sorted(flags, reverse=True)  # every lapsed entry before every live one


@given(cache_entries(), policies, st.randoms(use_true_random=False))
def test_eviction_order_does_not_depend_on_input_order(
    entries: list[CacheEntryMeta], policy: str, rng: random.Random
) -> None:
    shuffled = list(entries)
    rng.shuffle(shuffled)
    assert eviction_order(shuffled, policy, NOW) == eviction_order(entries, policy, NOW)


@settings(max_examples=300)
@given(
    cache_entries(),
    policies,
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=70, max_value=500),
    st.booleans(),
)
def test_plan_evictions_fits_with_the_fewest_victims_in_policy_order(
    entries: list[CacheEntryMeta], policy: str, capacity: int, incoming: int, replace: bool
) -> None:
    key = entries[0].key if (replace and entries) else ("NEW", "ISO14443")
    victims = plan_evictions(entries, policy, capacity, key, incoming, NOW)
    if incoming > capacity:
        assert victims is None
        return
    assert victims is not None
    assert key not in victims  # the entry being replaced is never a victim
    others = [e for e in entries if e.key != key]
    order = [e.key for e in eviction_order(others, policy, NOW)]
    assert victims == order[: len(victims)]  # a prefix of the policy's order
    size = {e.key: e.size for e in others}
    used_after = sum(size.values()) - sum(size[v] for v in victims)
    assert used_after + incoming <= capacity
    if victims:  # minimal: keeping the last victim would not fit
        assert used_after + size[victims[-1]] + incoming > capacity


def _split(
    entries: list[CacheEntryMeta], policy: str, n: int
) -> tuple[list[CacheEntryMeta], list[CacheEntryMeta]]:
    order = eviction_order(entries, policy, NOW)
    return order[:n], order[n:]


@given(cache_entries(), st.integers(min_value=1, max_value=12))
def test_lru_evicts_the_least_recently_used_live_entries(
    entries: list[CacheEntryMeta], n: int
) -> None:
    live = [e for e in entries if not lapsed(e, NOW)]
    victims, survivors = _split(live, "LRU", n)
    for v in victims:
        assert all(v.last_used <= s.last_used for s in survivors)


@given(cache_entries(), st.integers(min_value=1, max_value=12))
def test_lfu_evicts_the_least_frequently_used_live_entries(
    entries: list[CacheEntryMeta], n: int
) -> None:
    live = [e for e in entries if not lapsed(e, NOW)]
    victims, survivors = _split(live, "LFU", n)
    for v in victims:
        assert all(v.uses <= s.uses for s in survivors)
        assert all(v.last_used <= s.last_used for s in survivors if s.uses == v.uses)


@given(cache_entries(), st.integers(min_value=1, max_value=12))
def test_fifo_evicts_the_first_stored_live_entries(entries: list[CacheEntryMeta], n: int) -> None:
    live = [e for e in entries if not lapsed(e, NOW)]
    victims, survivors = _split(live, "FIFO", n)
    for v in victims:
        assert all(v.inserted < s.inserted for s in survivors)


@given(cache_entries(), st.integers(min_value=1, max_value=12))
def test_custom_evicts_refusals_before_accepted_then_soonest_lapse(
    entries: list[CacheEntryMeta], n: int
) -> None:
    live = [e for e in entries if not lapsed(e, NOW)]
    victims, survivors = _split(live, "CUSTOM", n)
    for v in victims:
        for s in survivors:
            assert not (v.accepted and not s.accepted)
            if v.accepted == s.accepted and v.lapses_at is not None:
                assert s.lapses_at is None or v.lapses_at <= s.lapses_at


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=0, max_value=9), max_size=60), st.integers(1, 5))
def test_lru_with_equal_entries_matches_a_reference_lru_cache(
    accesses: list[int], slots: int
) -> None:
    """Stores of equal-sized entries through plan_evictions behave like a textbook LRU cache."""
    size = 100
    reference: OrderedDict[int, None] = OrderedDict()
    entries: dict[tuple[str, str], CacheEntryMeta] = {}
    for seq, token in enumerate(accesses, start=1):
        reference[token] = None
        reference.move_to_end(token)
        if len(reference) > slots:
            reference.popitem(last=False)
        key = (str(token), "ISO14443")
        victims = plan_evictions(list(entries.values()), "LRU", slots * size, key, size, NOW)
        assert victims is not None
        for victim in victims:
            del entries[victim]
        old = entries.get(key)
        entries[key] = CacheEntryMeta(
            key, size, old.inserted if old else seq, seq, (old.uses if old else 0) + 1, True, None
        )
        assert {int(k[0]) for k in entries} == set(reference)


def test_entry_size_counts_utf8_bytes_of_token_type_and_info_plus_overhead() -> None:
    info = {"status": "Accepted"}
    assert entry_size("AB", "ISO14443", info) == ENTRY_OVERHEAD_BYTES + 2 + 8 + 21
    assert entry_size("Ä", "Local", info) == ENTRY_OVERHEAD_BYTES + 2 + 5 + 21
    # Key order does not change the size (the stored JSON is canonical).
    a = {"status": "Accepted", "language1": "en"}
    assert entry_size("X", "Local", a) == entry_size("X", "Local", dict(reversed(a.items())))


@pytest.mark.parametrize(
    ("expiry", "used", "life_time", "expected"),
    [
        (None, None, 0, None),
        (None, 100.0, 0, None),  # LifeTime 0: no age limit
        (None, 100.0, 50, 150.0),  # C10.FR.08/.10
        (120.0, 100.0, 50, 120.0),  # C10.FR.13: cacheExpiryDateTime first
        (500.0, 100.0, 50, 150.0),
        (500.0, None, 50, 500.0),
    ],
)
def test_c10_fr_08_and_fr_13_lapse_time(
    expiry: float | None, used: float | None, life_time: int, expected: float | None
) -> None:
    assert lapse_time(expiry, used, life_time) == expected


def test_unknown_policy_is_an_error() -> None:
    entry = CacheEntryMeta(("A", "Local"), 80, 1, 1, 1, True, None)
    other = CacheEntryMeta(("B", "Local"), 80, 2, 2, 1, True, None)
    with pytest.raises(ValueError, match="RANDOM"):
        eviction_order([entry, other], "RANDOM", NOW)
