"""Per-station limits as pure logic: the caller passes the (monotonic) time, nothing here
sleeps, reads a clock or does I/O.

- `TokenBucket`: message pacing (frames per second) and stored bytes per period.
- `StationLimits` / `LimitsRegistry`: one pair of buckets per station id, so a reconnect does
  not refill them, and the "burst" state that keeps logging to one line per burst.
- `ReportAssembly`: the parts of multi-part NotifyReports (B07/B08) a session keeps in memory,
  bounded in count of reports, parts per report and age; gaps counted arithmetically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """`capacity` tokens at most, refilled at `rate` per second (rate 0 = never refilled)."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, capacity: float, now: float) -> TokenBucket:
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate must be finite and >= 0, not {rate!r}")
        if not (math.isfinite(capacity) and capacity > 0):
            raise ValueError(f"capacity must be finite and > 0, not {capacity!r}")
        return cls(rate, capacity, capacity, now)

    def _refill(self, now: float) -> None:
        if now > self.updated:  # a clock that steps back refills nothing
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, amount: float, now: float) -> bool:
        """Take `amount` tokens if they are there (all or nothing)."""
        self._refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` tokens are there; inf if they never will be."""
        self._refill(now)
        if self.tokens >= amount:
            return 0.0
        if amount > self.capacity or self.rate <= 0:
            return math.inf
        return (amount - self.tokens) / self.rate

    def reserve(self, now: float) -> float:
        """Take one token now, borrowing it if needed; the seconds the caller must wait
        before acting so that it keeps to the rate. For callers that act one at a time (the
        next reserve comes after the wait), the debt never exceeds one token."""
        self._refill(now)
        self.tokens -= 1.0
        if self.tokens >= 0:
            return 0.0
        if self.rate <= 0:
            return math.inf
        return -self.tokens / self.rate


@dataclass(frozen=True, slots=True)
class LimitConfig:
    """The limits of csms/settings.py, as plain values (0 turns a limit off)."""

    rate_per_s: float = 20.0
    rate_burst: int = 100
    event_max_bytes: int = 65536
    storage_quota_bytes: int = 16 * 1024 * 1024
    storage_period_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class StorageVerdict:
    """Whether `size` bytes may be stored; `reason` is "PayloadTooLarge" or "QuotaExceeded"
    when not, `first_of_burst` tells the caller to log/record it (once per burst)."""

    allowed: bool
    reason: str = ""
    limit: int = 0
    retry_after_s: float = 0.0
    first_of_burst: bool = False


@dataclass(slots=True)
class StationLimits:
    messages: TokenBucket | None
    storage: TokenBucket | None
    pacing: bool = False  # currently over the message rate (one log line per burst)
    refusing: bool = False  # currently over the storage quota (one event per burst)
    paced_frames: int = 0
    refused_bytes: int = 0


class LimitsRegistry:
    """Limits per station id (bounded by the number of stations that can authenticate)."""

    def __init__(self, config: LimitConfig) -> None:
        self.config = config
        self._stations: dict[str, StationLimits] = {}

    def station(self, station_id: str, now: float) -> StationLimits:
        found = self._stations.get(station_id)
        if found is None:
            c = self.config
            found = StationLimits(
                messages=(
                    TokenBucket.full(c.rate_per_s, c.rate_burst, now) if c.rate_per_s > 0 else None
                ),
                storage=(
                    TokenBucket.full(
                        c.storage_quota_bytes / c.storage_period_s, c.storage_quota_bytes, now
                    )
                    if c.storage_quota_bytes > 0
                    else None
                ),
            )
            self._stations[station_id] = found
        return found

    def pace(self, station_id: str, now: float) -> tuple[float, bool]:
        """Seconds to wait before handling the station's next frame, and whether this wait
        starts a burst (log it)."""
        limits = self.station(station_id, now)
        if limits.messages is None:
            return 0.0, False
        delay = limits.messages.reserve(now)
        if delay <= 0:
            limits.pacing = False
            return 0.0, False
        limits.paced_frames += 1
        first = not limits.pacing
        limits.pacing = True
        return delay, first

    def admit_storage(
        self, station_id: str, size: int, now: float, *, per_message_limit: bool = True
    ) -> StorageVerdict:
        """Charge `size` stored bytes to the station, or say why not."""
        c = self.config
        limits = self.station(station_id, now)
        if per_message_limit and c.event_max_bytes > 0 and size > c.event_max_bytes:
            return self._refuse(limits, size, "PayloadTooLarge", c.event_max_bytes, math.inf)
        bucket = limits.storage
        if bucket is None or bucket.take(size, now):
            limits.refusing = False
            return StorageVerdict(True)
        return self._refuse(
            limits, size, "QuotaExceeded", c.storage_quota_bytes, bucket.wait_for(size, now)
        )

    @staticmethod
    def _refuse(
        limits: StationLimits, size: int, reason: str, limit: int, retry_after_s: float
    ) -> StorageVerdict:
        first = not limits.refusing
        limits.refusing = True
        limits.refused_bytes += size
        return StorageVerdict(False, reason, limit, retry_after_s, first)


@dataclass(slots=True)
class _Report:
    parts: set[int] = field(default_factory=set)
    highest: int = -1
    last_part_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """A finished (tbc false) report: the parts received, the first missing ones (at most
    `MISSING_LISTED`) and how many are missing in all (arithmetic, never a range)."""

    request_id: int
    parts: list[int]
    missing_parts: list[int]
    missing_count: int


@dataclass(frozen=True, slots=True)
class Abandoned:
    request_id: int
    parts: int
    why: str


MISSING_LISTED = 100


class ReportAssembly:
    """The NotifyReport parts one session is waiting on, bounded three ways: at most
    `max_open` reports (the oldest is abandoned for a new one), at most `max_parts` parts per
    report (then it is abandoned), and no more than `timeout_s` between parts."""

    def __init__(self, max_open: int, max_parts: int, timeout_s: float) -> None:
        self.max_open = max_open
        self.max_parts = max_parts
        self.timeout_s = timeout_s
        self._open: dict[int, _Report] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(
        self, request_id: int, seq_no: int, last: bool, now: float
    ) -> tuple[ReportSummary | None, list[Abandoned]]:
        """Record one part; the summary when `last`, and the reports given up on."""
        abandoned = [
            Abandoned(rid, len(r.parts), "no part for too long")
            for rid, r in list(self._open.items())
            if now - r.last_part_at > self.timeout_s and rid != request_id
        ]
        for item in abandoned:
            del self._open[item.request_id]
        report = self._open.get(request_id)
        if report is None:
            if len(self._open) >= self.max_open:
                oldest = min(self._open, key=lambda rid: self._open[rid].last_part_at)
                dropped = self._open.pop(oldest)
                abandoned.append(Abandoned(oldest, len(dropped.parts), "too many open reports"))
            report = self._open[request_id] = _Report()
        report.last_part_at = now
        if seq_no not in report.parts:
            if len(report.parts) >= self.max_parts:
                del self._open[request_id]
                abandoned.append(Abandoned(request_id, len(report.parts), "too many parts"))
                return None, abandoned
            report.parts.add(seq_no)
            report.highest = max(report.highest, seq_no)
        if not last:
            return None, abandoned
        del self._open[request_id]
        return self._summary(request_id, report), abandoned

    @staticmethod
    def _summary(request_id: int, report: _Report) -> ReportSummary:
        parts = sorted(report.parts)
        # Only non-negative seqNos count towards gaps (0..highest expected).
        expected = report.highest + 1
        present = sum(1 for n in parts if n >= 0)
        missing: list[int] = []
        n = 0
        received = report.parts
        # Bounded: at most len(parts) numbers are skipped before MISSING_LISTED are found.
        while n < expected and len(missing) < MISSING_LISTED:
            if n not in received:
                missing.append(n)
            n += 1
        return ReportSummary(request_id, parts, missing, max(0, expected - present))
