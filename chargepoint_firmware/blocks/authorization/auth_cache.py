"""The agent's Authorization Cache (OCPP 2.0.1 C10-C12, AuthCacheCtrlr), kept in AgentStorage.

* `store(id_token, info)`: the idTokenInfo the CSMS sent in an AuthorizeResponse or a
  TransactionEventResponse (C10.FR.01/.04/.05, C12.FR.06), whatever its status (a non-Accepted
  entry makes the station ask again, or refuse: C10.FR.03). Not stored: when
  AuthCacheCtrlr.Enabled is false; tokens of type NoAuthorization (C02: never cached); an
  idTokenInfo whose cacheExpiryDateTime has passed already (it removes an existing entry,
  C10.FR.13); an entry larger than the whole cache. When the entry does not fit in
  AuthCacheCtrlr.Storage's maxLimit, entries are evicted per AuthCacheCtrlr.Policy (see
  auth_cache_policy.py).
* `lookup(id_token)`: the cached idTokenInfo, or None. An entry past its cacheExpiryDateTime
  (C10.FR.13) or not stored/used for AuthCacheCtrlr.LifeTime seconds (C10.FR.08/.10; LifeTime 0
  = no limit) is removed and counts as unknown. A hit counts as a use (LRU/LFU, LifeTime).
* `clear()`: ClearCache (C11): False (Rejected) when the cache is disabled.
* The entries live in SQLite (storage.py), so they survive a restart or power cut (C10.FR.02).
* `on_size(bytes)` is called whenever the bytes in use change (AuthCacheCtrlr.Storage Actual).
* `trim()` (at agent start): lapsed entries go, and a cache above its capacity is evicted down.
* Cost: a store reads every entry's bookkeeping (one SELECT, JSON of each idTokenInfo) to plan
  evictions: linear in the entries, fine for the few thousand a 128 KiB cache holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from chargepoint_firmware.blocks.authorization.auth_cache_policy import (
    CacheEntryMeta,
    entry_size,
    lapse_time,
    plan_evictions,
)
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms, parse_iso
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.storage import AgentStorage, CacheRow

log = logging.getLogger(__name__)

COMPONENT = "AuthCacheCtrlr"
NEVER_CACHED_TYPES = frozenset({"NoAuthorization"})


class _Now(Protocol):
    def now(self) -> datetime: ...


def _cache_expiry_s(info: Mapping[str, Any]) -> float | None:
    raw = info.get("cache_expiry_date_time", info.get("cacheExpiryDateTime"))
    if not raw:
        return None
    try:
        return parse_iso(str(raw)).timestamp()
    except ValueError:
        return None


class AuthCache:
    def __init__(
        self,
        storage: AgentStorage,
        config: ConfigView,
        clock: _Now,
        capacity: Callable[[], int],
        on_size: Callable[[int], None] | None = None,
    ) -> None:
        self.storage = storage
        self.config = config
        self.clock = clock
        self.capacity = capacity
        self.on_size = on_size
        self._seq = storage.cache_max_seq()

    # -- settings -----------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.config.boolean(COMPONENT, "Enabled")

    @property
    def disable_post_authorize(self) -> bool:
        return self.config.boolean(COMPONENT, "DisablePostAuthorize")

    def _life_time(self) -> int:
        return self.config.integer(COMPONENT, "LifeTime")

    def _policy(self) -> str:
        return self.config.raw(COMPONENT, "Policy")

    # -- reads --------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        return sum(self._size(r) for r in self.storage.cache_rows())

    def entries(self) -> list[CacheEntryMeta]:
        life_time = self._life_time()
        return [self._meta(r, life_time) for r in self.storage.cache_rows()]

    def lookup(self, id_token: Mapping[str, Any]) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        token, kind = _key(id_token)
        row = self.storage.cache_row(token, kind)
        if row is None:
            return None
        now = self.clock.now()
        lapses_at = self._meta(row, self._life_time()).lapses_at
        if lapses_at is not None and lapses_at <= now.timestamp():
            self.storage.cache_delete(token, kind)
            self._report()
            return None
        seq = self._next_seq()
        with self.storage.atomic():
            self.storage.cache_touch(token, kind, iso_ms(now))
            self.storage.cache_meta_put(
                token, kind, self._size(row), row.inserted_seq or seq, seq, row.uses + 1
            )
        return dict(row.info)

    # -- writes -------------------------------------------------------------------------------
    def store(self, id_token: Mapping[str, Any], info: Mapping[str, Any]) -> bool:
        """Cache the CSMS's idTokenInfo for id_token; True when it is in the cache now."""
        if not self.enabled:
            return False
        token, kind = _key(id_token)
        if kind in NEVER_CACHED_TYPES:
            return False
        info = dict(info)
        now = self.clock.now()
        now_s = now.timestamp()
        expiry = _cache_expiry_s(info)
        existing = self.storage.cache_row(token, kind)
        if expiry is not None and expiry <= now_s:
            if existing is not None:
                self.storage.cache_delete(token, kind)
                self._report()
            return False
        size = entry_size(token, kind, info)
        life_time = self._life_time()
        rows = self.storage.cache_rows()
        metas = [self._meta(r, life_time) for r in rows]
        victims = plan_evictions(metas, self._policy(), self.capacity(), (token, kind), size, now_s)
        # Entries that lapsed are removed on the way (C10.FR.08/.13), needed for room or not.
        lapsed = [m.key for m in metas if m.lapses_at is not None and m.lapses_at <= now_s]
        seq = self._next_seq()
        with self.storage.atomic():
            for victim in dict.fromkeys([*lapsed, *(victims or [])]):
                if victim != (token, kind):
                    self.storage.cache_delete(*victim)
            if victims is None:  # larger than the whole cache
                self.storage.cache_delete(token, kind)
            else:
                self.storage.cache_put(token, kind, info)
                self.storage.cache_touch(token, kind, iso_ms(now))
                inserted = existing.inserted_seq if existing and existing.inserted_seq else seq
                uses = (existing.uses if existing else 0) + 1
                self.storage.cache_meta_put(token, kind, size, inserted, seq, uses)
        if victims:
            log.info("auth cache full: evicted %d entries (%s)", len(victims), self._policy())
        self._report()
        return victims is not None

    def clear(self) -> bool:
        """ClearCache (C11.FR.03/.04): Accepted (True) only when the cache is enabled."""
        if not self.enabled:
            return False
        self.storage.cache_clear()
        self._report()
        return True

    def report(self) -> None:
        self._report()

    def trim(self) -> int:
        """Drop lapsed entries, then evict per Policy until the cache fits its capacity (a
        state file from a build with a larger cache); reports the size. Returns how many went."""
        now_s = self.clock.now().timestamp()
        metas = self.entries()
        lapsed = [m.key for m in metas if m.lapses_at is not None and m.lapses_at <= now_s]
        live = [m for m in metas if m.key not in set(lapsed)]
        victims = plan_evictions(live, self._policy(), self.capacity(), ("", ""), 0, now_s) or []
        gone = [*lapsed, *victims]
        if gone:
            with self.storage.atomic():
                for key in gone:
                    self.storage.cache_delete(*key)
        self._report()
        return len(gone)

    # -- internals ----------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _size(self, row: CacheRow) -> int:
        return row.size if row.size is not None else entry_size(row.token, row.token_type, row.info)

    def _meta(self, row: CacheRow, life_time: int) -> CacheEntryMeta:
        used_s = None if row.used_at is None else parse_iso(row.used_at).timestamp()
        return CacheEntryMeta(
            key=(row.token, row.token_type),
            size=self._size(row),
            inserted=row.inserted_seq,
            last_used=row.used_seq,
            uses=row.uses,
            accepted=row.info.get("status") == "Accepted",
            lapses_at=lapse_time(_cache_expiry_s(row.info), used_s, life_time),
        )

    def _report(self) -> None:
        if self.on_size is not None:
            self.on_size(self.used_bytes())


def _key(id_token: Mapping[str, Any]) -> tuple[str, str]:
    token = id_token.get("id_token", id_token.get("idToken"))
    return str(token), str(id_token.get("type"))
