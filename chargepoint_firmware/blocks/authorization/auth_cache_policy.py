"""Pure rules of the Authorization Cache (OCPP 2.0.1 C10): entry size, lapse and eviction.

No I/O, no clock: callers pass the time as epoch seconds and entries as `CacheEntryMeta`.

Size (AuthCacheCtrlr.Storage, bytes): an entry counts the UTF-8 bytes the agent stores for it,
idToken + type + the idTokenInfo JSON, plus `ENTRY_OVERHEAD_BYTES` (64) for its row and
bookkeeping (sequence numbers, use count, last-use time). The sum over all entries is the
Storage Actual value; Storage's maxLimit is the capacity.

Eviction, when a new or grown entry does not fit (AuthCacheCtrlr.Policy):
* first every entry that has lapsed already (cacheExpiryDateTime or LifeTime passed), soonest
  lapse first: such an entry is no longer valid in any policy;
* then by policy: LRU = least recently stored-or-used first; LFU = fewest stores+uses first
  (ties: least recently used); FIFO = first stored first (a re-store keeps its place);
* CUSTOM (this agent's choice): entries that are not Accepted first (they only ever refuse or
  trigger a new Authorize anyway), then the one that would lapse soonest, then LRU.
Every order ends with the key, so it is total and deterministic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

POLICIES = ("LRU", "LFU", "FIFO", "CUSTOM")
ENTRY_OVERHEAD_BYTES = 64

Key = tuple[str, str]  # (idToken, type)


@dataclass(frozen=True, slots=True)
class CacheEntryMeta:
    key: Key
    size: int  # bytes, see entry_size
    inserted: int  # sequence number of the first store (FIFO)
    last_used: int  # sequence number of the latest store or use (LRU)
    uses: int  # stores + uses (LFU)
    accepted: bool  # idTokenInfo.status == Accepted
    lapses_at: float | None  # epoch seconds when it stops being valid; None = never


def info_json(info: Mapping[str, Any]) -> str:
    """The stored form of an idTokenInfo (compact, keys sorted)."""
    return json.dumps(info, separators=(",", ":"), sort_keys=True)


def entry_size(token: str, token_type: str, info: Mapping[str, Any]) -> int:
    return (
        ENTRY_OVERHEAD_BYTES
        + len(token.encode())
        + len(token_type.encode())
        + len(info_json(info).encode())
    )


def lapse_time(
    cache_expiry_s: float | None, last_used_s: float | None, life_time_s: int
) -> float | None:
    """When an entry stops being valid: the earlier of idTokenInfo.cacheExpiryDateTime (C10.FR.13)
    and the last store/use + AuthCacheCtrlr.LifeTime (C10.FR.08/.10; LifeTime 0 = no limit)."""
    candidates = []
    if cache_expiry_s is not None:
        candidates.append(cache_expiry_s)
    if life_time_s > 0 and last_used_s is not None:
        candidates.append(last_used_s + life_time_s)
    return min(candidates) if candidates else None


def lapsed(entry: CacheEntryMeta, now_s: float) -> bool:
    return entry.lapses_at is not None and entry.lapses_at <= now_s


def _policy_key(entry: CacheEntryMeta, policy: str) -> tuple[Any, ...]:
    if policy == "LFU":
        return (entry.uses, entry.last_used, entry.inserted, entry.key)
    if policy == "FIFO":
        return (entry.inserted, entry.key)
    if policy == "CUSTOM":
        lapse = math.inf if entry.lapses_at is None else entry.lapses_at
        return (entry.accepted, lapse, entry.last_used, entry.inserted, entry.key)
    if policy == "LRU":
        return (entry.last_used, entry.inserted, entry.key)
    raise ValueError(f"unknown cache policy {policy!r}")


def eviction_order(
    entries: Iterable[CacheEntryMeta], policy: str, now_s: float
) -> list[CacheEntryMeta]:
    """All entries, the first to go first: lapsed ones, then by policy."""
    items = list(entries)
    gone = sorted((e for e in items if lapsed(e, now_s)), key=lambda e: (e.lapses_at, e.key))
    live = sorted((e for e in items if not lapsed(e, now_s)), key=lambda e: _policy_key(e, policy))
    return gone + live


def plan_evictions(
    entries: Sequence[CacheEntryMeta],
    policy: str,
    capacity: int,
    incoming_key: Key,
    incoming_size: int,
    now_s: float,
) -> list[Key] | None:
    """Keys to remove so the incoming entry fits in `capacity` bytes; None when it never can
    (larger than the whole cache). An existing entry under the same key is replaced, so its own
    size does not count and it is never an eviction victim."""
    if incoming_size > capacity:
        return None
    others = [e for e in entries if e.key != incoming_key]
    used = sum(e.size for e in others)
    victims: list[Key] = []
    for entry in eviction_order(others, policy, now_s):
        if used + incoming_size <= capacity:
            break
        victims.append(entry.key)
        used -= entry.size
    return victims
