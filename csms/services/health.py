"""Liveness and readiness (`/health`, `/ready`): cheap, unauthenticated, no secrets.

Readiness asks: is the database reachable (a `SELECT` within a short timeout), is its schema at
the migrations' head, is the OCPP listener up and is the command router connected (a broker
router: its broker connection). The database answer is kept for `cache_s` so a balancer
probing every node many times a second costs at most one query per second per node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from csms.persistence import migrate
from csms.persistence.database import Database


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


class HealthService:
    def __init__(self, db: Database, *, timeout_s: float = 2.0, cache_s: float = 1.0) -> None:
        self._db = db
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._heads: frozenset[str] | None = None
        self._cached: tuple[float, Check, Check] | None = None
        self._lock = asyncio.Lock()

    def _expected_heads(self) -> frozenset[str]:
        if self._heads is None:  # read the migration scripts once
            self._heads = frozenset(migrate.head_revisions(self._db.url))
        return self._heads

    async def _database_checks(self) -> tuple[Check, Check]:
        async with self._lock:  # concurrent probes share one query
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._cache_s:
                return self._cached[1], self._cached[2]
            try:
                current = await asyncio.wait_for(
                    migrate.current_revisions(self._db.engine), self._timeout_s
                )
                reachable = Check(True, "reachable")
                expected = await asyncio.to_thread(self._expected_heads)
                if current == expected:
                    schema = Check(True, f"at head {', '.join(sorted(current))}")
                else:
                    schema = Check(
                        False,
                        f"at {', '.join(sorted(current)) or 'no revision'}, head is "
                        f"{', '.join(sorted(expected))}: run `csms db upgrade`",
                    )
            except TimeoutError:
                reachable = Check(False, f"no answer within {self._timeout_s:g} s")
                schema = Check(False, "unknown (database not reachable)")
            except Exception as exc:  # the message names the failure, not the URL
                reachable = Check(False, f"{type(exc).__name__}")
                schema = Check(False, "unknown (database not reachable)")
            self._cached = (now, reachable, schema)
            return reachable, schema

    async def readiness(self, others: Mapping[str, Callable[[], Check]]) -> dict[str, Check]:
        """Every check by name; ready when all are ok."""
        reachable, schema = await self._database_checks()
        checks = {"database": reachable, "migrations": schema}
        for name, check in others.items():
            checks[name] = check()
        return checks
