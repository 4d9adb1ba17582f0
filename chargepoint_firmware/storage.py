"""Durable local state of the agent: one SQLite file in the state directory.

Holds the outgoing message queue (TransactionEvent / MeterValues waiting for their CALLRESULT),
per-EVSE transaction state and counters, charging profiles, the local authorization list and the
auth cache. WAL journal with synchronous=FULL: a committed write survives a kill -9 or a power
cut. Writes that belong together (a transaction's new seqNo and the event that uses it) go in one
`atomic()` block so a crash can never leave one without the other.

Plain stdlib sqlite3 called from the event loop: every statement is a local, small write.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS charging_profiles (
    id INTEGER PRIMARY KEY,
    evse_id INTEGER NOT NULL,
    profile TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS local_list (
    id_token TEXT NOT NULL,
    token_type TEXT NOT NULL,
    id_token_info TEXT NOT NULL,
    PRIMARY KEY (id_token, token_type)
);
CREATE TABLE IF NOT EXISTS auth_cache (
    id_token TEXT NOT NULL,
    token_type TEXT NOT NULL,
    id_token_info TEXT NOT NULL,
    PRIMARY KEY (id_token, token_type)
);
CREATE TABLE IF NOT EXISTS auth_cache_used (
    id_token TEXT NOT NULL,
    token_type TEXT NOT NULL,
    used_at TEXT NOT NULL,
    PRIMARY KEY (id_token, token_type)
);
CREATE TABLE IF NOT EXISTS auth_cache_meta (
    id_token TEXT NOT NULL,
    token_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    inserted_seq INTEGER NOT NULL,
    used_seq INTEGER NOT NULL,
    uses INTEGER NOT NULL,
    PRIMARY KEY (id_token, token_type)
);
"""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    seq: int
    message_id: str
    action: str
    payload: dict[str, Any]  # snake_case keyword arguments of the ocpp.v201.call dataclass
    attempts: int


@dataclass(frozen=True, slots=True)
class CacheRow:
    """One Authorization Cache entry as stored (see blocks/authorization/auth_cache.py)."""

    token: str
    token_type: str
    info: dict[str, Any]  # idTokenInfo, snake_case
    used_at: str | None  # ISO time of the latest store or use
    size: int | None  # bytes counted against AuthCacheCtrlr.Storage
    inserted_seq: int
    used_seq: int
    uses: int


class AgentStorage:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; multi-statement writes use atomic().
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Group writes into one durable commit (nesting joins the outer block)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- outbox -------------------------------------------------------------------------------
    def enqueue(self, message_id: str, action: str, payload: dict[str, Any]) -> int:
        cur = self._db.execute(
            "INSERT INTO outbox (message_id, action, payload) VALUES (?, ?, ?)",
            (message_id, action, json.dumps(payload, separators=(",", ":"))),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def peek(self) -> QueuedMessage | None:
        row = self._db.execute(
            "SELECT seq, message_id, action, payload, attempts FROM outbox ORDER BY seq LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return QueuedMessage(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def pending(self) -> list[QueuedMessage]:
        rows = self._db.execute(
            "SELECT seq, message_id, action, payload, attempts FROM outbox ORDER BY seq"
        ).fetchall()
        return [QueuedMessage(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def remove(self, seq: int) -> None:
        """Drop a delivered message. Committed without its own fsync (synchronous=NORMAL for
        this one statement): the write is safe against a process kill at once, and against
        power loss from the next FULL commit or checkpoint on (the WAL is sequential). The
        worst case, a power cut right after the CALLRESULT, resends that message once with the
        same message id, which the CSMS recognises."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def count_attempt(self, seq: int) -> int:
        self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", (seq,))
        row = self._db.execute("SELECT attempts FROM outbox WHERE seq = ?", (seq,)).fetchone()
        return int(row[0]) if row else 0

    def queue_length(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # -- key/value (transaction state, counters, availability, ...) -------------------------
    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, separators=(",", ":"))),
        )

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))

    # -- charging profiles (OCPP JSON, camelCase) ---------------------------------------------
    def save_profile(self, profile_id: int, evse_id: int, profile: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO charging_profiles (id, evse_id, profile) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET evse_id = excluded.evse_id, profile = excluded.profile",
            (profile_id, evse_id, json.dumps(profile)),
        )

    def delete_profile(self, profile_id: int) -> None:
        self._db.execute("DELETE FROM charging_profiles WHERE id = ?", (profile_id,))

    def load_profiles(self) -> list[tuple[int, dict[str, Any]]]:
        rows = self._db.execute("SELECT evse_id, profile FROM charging_profiles ORDER BY id")
        return [(int(r[0]), json.loads(r[1])) for r in rows.fetchall()]

    # -- authorization ------------------------------------------------------------------------
    def local_list_version(self) -> int:
        return int(self.get("local_list_version", 0))

    def replace_local_list(
        self, version: int, entries: list[tuple[str, str, dict[str, Any]]]
    ) -> None:
        with self.atomic():
            self._db.execute("DELETE FROM local_list")
            for token, token_type, info in entries:
                self._upsert("local_list", token, token_type, info)
            self.put("local_list_version", version)

    def update_local_list(
        self, version: int, entries: list[tuple[str, str, dict[str, Any] | None]]
    ) -> None:
        """Differential update: None info removes the entry."""
        with self.atomic():
            for token, token_type, info in entries:
                if info is None:
                    self._db.execute(
                        "DELETE FROM local_list WHERE id_token = ? AND token_type = ?",
                        (token, token_type),
                    )
                else:
                    self._upsert("local_list", token, token_type, info)
            self.put("local_list_version", version)

    def local_list_entry(self, token: str, token_type: str) -> dict[str, Any] | None:
        return self._lookup("local_list", token, token_type)

    def local_list_size(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM local_list").fetchone()[0])

    def cache_put(self, token: str, token_type: str, info: dict[str, Any]) -> None:
        self._upsert("auth_cache", token, token_type, info)

    def cache_get(self, token: str, token_type: str) -> dict[str, Any] | None:
        return self._lookup("auth_cache", token, token_type)

    def cache_clear(self) -> None:
        with self.atomic():
            self._db.execute("DELETE FROM auth_cache")
            self._db.execute("DELETE FROM auth_cache_used")
            self._db.execute("DELETE FROM auth_cache_meta")

    def cache_delete(self, token: str, token_type: str) -> None:
        with self.atomic():
            for table in ("auth_cache", "auth_cache_used", "auth_cache_meta"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE id_token = ? AND token_type = ?",
                    (token, token_type),
                )

    _CACHE_SELECT = (
        "SELECT c.id_token, c.token_type, c.id_token_info, u.used_at, m.size, "
        "m.inserted_seq, m.used_seq, m.uses FROM auth_cache c "
        "LEFT JOIN auth_cache_used u ON u.id_token = c.id_token AND u.token_type = c.token_type "
        "LEFT JOIN auth_cache_meta m ON m.id_token = c.id_token AND m.token_type = c.token_type"
    )

    @staticmethod
    def _cache_row(r: Any) -> CacheRow:
        return CacheRow(
            token=r[0],
            token_type=r[1],
            info=dict(json.loads(r[2])),
            used_at=r[3],
            size=None if r[4] is None else int(r[4]),
            inserted_seq=int(r[5] or 0),
            used_seq=int(r[6] or 0),
            uses=int(r[7] or 0),
        )

    def cache_rows(self) -> list[CacheRow]:
        """Every cache entry with its bookkeeping (entries from before the bookkeeping table
        existed get size None, sequence 0 and no uses)."""
        return [self._cache_row(r) for r in self._db.execute(self._CACHE_SELECT).fetchall()]

    def cache_row(self, token: str, token_type: str) -> CacheRow | None:
        row = self._db.execute(
            self._CACHE_SELECT + " WHERE c.id_token = ? AND c.token_type = ?", (token, token_type)
        ).fetchone()
        return None if row is None else self._cache_row(row)

    def cache_meta_put(
        self, token: str, token_type: str, size: int, inserted_seq: int, used_seq: int, uses: int
    ) -> None:
        self._db.execute(
            "INSERT INTO auth_cache_meta "
            "(id_token, token_type, size, inserted_seq, used_seq, uses) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id_token, token_type) DO UPDATE SET "
            "size = excluded.size, inserted_seq = excluded.inserted_seq, "
            "used_seq = excluded.used_seq, uses = excluded.uses",
            (token, token_type, size, inserted_seq, used_seq, uses),
        )

    def cache_max_seq(self) -> int:
        row = self._db.execute(
            "SELECT MAX(MAX(inserted_seq), MAX(used_seq)) FROM auth_cache_meta"
        ).fetchone()
        return int(row[0] or 0)

    def cache_touch(self, token: str, token_type: str, used_at: str) -> None:
        """Record when a cached token was last stored or used (AuthCacheCtrlr.LifeTime)."""
        self._db.execute(
            "INSERT INTO auth_cache_used (id_token, token_type, used_at) VALUES (?, ?, ?) "
            "ON CONFLICT(id_token, token_type) DO UPDATE SET used_at = excluded.used_at",
            (token, token_type, used_at),
        )

    def cache_used_at(self, token: str, token_type: str) -> str | None:
        row = self._db.execute(
            "SELECT used_at FROM auth_cache_used WHERE id_token = ? AND token_type = ?",
            (token, token_type),
        ).fetchone()
        return None if row is None else str(row[0])

    def _upsert(self, table: str, token: str, token_type: str, info: dict[str, Any]) -> None:
        self._db.execute(
            f"INSERT INTO {table} (id_token, token_type, id_token_info) VALUES (?, ?, ?) "
            "ON CONFLICT(id_token, token_type) "
            "DO UPDATE SET id_token_info = excluded.id_token_info",
            (token, token_type, json.dumps(info)),
        )

    def _lookup(self, table: str, token: str, token_type: str) -> dict[str, Any] | None:
        row = self._db.execute(
            f"SELECT id_token_info FROM {table} WHERE id_token = ? AND token_type = ?",
            (token, token_type),
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))
