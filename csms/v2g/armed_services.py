"""Grid services a station holds until they end (issue 18), pure: an armed aFRR curve, a 2.1
LocalFrequency profile, a local-control hand-over. Each was sent within the station's share of
its site's operating envelope; when the envelope changes it is sent again within the new share
(or at the vehicle's own bounds once no envelope applies). What is needed to build it again is
kept as an `ArmedService` (stored as JSON, read back with every number bounded).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from csms.v2g.v2x import PowerBounds

MAX_POWER_W = 1_000_000.0  # as the aFRR and local-control requests are bounded
MAX_POINTS = 20  # a curve's points (v2xFreqWattCurve, v2xSignalWattCurve)
INT32 = 2**31 - 1
# Bounds within this of those sent are the same bounds (profiles carry W rounded to 0.1).
SAME_BOUNDS_W = 0.05


class ArmedKind(StrEnum):
    AFRR = "afrr"  # CentralFrequency with a v2xSignalWattCurve, AFRR_PROFILE_ID
    LOCAL_FREQUENCY = "local_frequency"  # LocalFrequency, FREQUENCY_PROFILE_ID
    LOCAL_CONTROL = "local_control"  # ExternalSetpoint / ExternalLimits / LocalLoadBalancing


@dataclass(frozen=True)
class ArmedService:
    """One grid service a station holds for one transaction. `until`: when it ends (None: with
    the transaction, LocalFrequency); `sent`: the bounds (charge W, discharge W) it was last
    sent with, so an envelope change that leaves them alone sends nothing."""

    kind: ArmedKind
    transaction_id: str
    evse_id: int
    until: datetime | None
    sent: PowerBounds
    curve: tuple[tuple[float, float], ...] = ()  # aFRR (signal, W) or LocalFrequency (Hz, W)
    baseline_w: float = 0.0  # aFRR
    mode: str | None = None  # local control's operation mode
    max_charge_w: float | None = None  # local control's own maxima
    max_discharge_w: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "transaction_id": self.transaction_id,
            "evse_id": self.evse_id,
            "until": None if self.until is None else self.until.isoformat(),
            "sent": [self.sent.max_charge_w, self.sent.max_discharge_w],
            "curve": [[x, w] for x, w in self.curve],
            "baseline_w": self.baseline_w,
            "mode": self.mode,
            "max_charge_w": self.max_charge_w,
            "max_discharge_w": self.max_discharge_w,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmedService:
        """ValueError (or TypeError / KeyError) for anything not as `as_dict` writes it."""
        kind = ArmedKind(data["kind"])
        tx = data["transaction_id"]
        if not isinstance(tx, str) or not 1 <= len(tx) <= 64:
            raise ValueError("transaction_id: 1..64 characters")
        evse = data["evse_id"]
        if isinstance(evse, bool) or not isinstance(evse, int) or not 0 <= evse <= INT32:
            raise ValueError("evse_id: a 32-bit id")
        until = None if data["until"] is None else datetime.fromisoformat(data["until"])
        if until is not None and until.tzinfo is None:
            raise ValueError("until: an aware time")
        charge, discharge = (_power(w, "sent", signed=False) for w in data["sent"])
        curve = data["curve"]
        if not isinstance(curve, list) or len(curve) > MAX_POINTS:
            raise ValueError(f"curve: at most {MAX_POINTS} points")
        points = tuple((_finite(x, "curve"), _power(w, "curve", signed=True)) for x, w in curve)
        mode = data["mode"]
        if mode is not None and (not isinstance(mode, str) or len(mode) > 40):
            raise ValueError("mode: a short name")
        maxima = [
            None if data[k] is None else _power(data[k], k, signed=False)
            for k in ("max_charge_w", "max_discharge_w")
        ]
        return cls(
            kind,
            tx,
            evse,
            until,
            PowerBounds(charge, discharge),
            points,
            _power(data["baseline_w"], "baseline_w", signed=True),
            mode,
            maxima[0],
            maxima[1],
        )


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: a finite number")
    return float(value)


def _power(value: Any, name: str, *, signed: bool) -> float:
    w = _finite(value, name)
    if not (-MAX_POWER_W if signed else 0.0) <= w <= MAX_POWER_W:
        raise ValueError(f"{name}: within {MAX_POWER_W:g} W")
    return w


def time_left_s(armed: ArmedService, now: datetime) -> float | None:
    """Seconds the service has left at `now` (None: it lasts as long as its transaction)."""
    return None if armed.until is None else (armed.until - now).total_seconds()


def still_running(armed: ArmedService, now: datetime, transaction_id: str | None) -> bool:
    """Whether the station still holds it: the same transaction runs and (when it has an end)
    at least a second of it is left."""
    if transaction_id != armed.transaction_id:
        return False
    left = time_left_s(armed, now)
    return left is None or left >= 1.0


def same_bounds(a: PowerBounds, b: PowerBounds) -> bool:
    return (
        abs(a.max_charge_w - b.max_charge_w) <= SAME_BOUNDS_W
        and abs(a.max_discharge_w - b.max_discharge_w) <= SAME_BOUNDS_W
    )


def resend_due(
    armed: ArmedService, held: PowerBounds, now: datetime, transaction_id: str | None
) -> bool:
    """After an envelope change: send it again when it still runs and the bounds it would now
    carry (`held`: the vehicle's, narrowed to the new share, if any) differ from those sent."""
    return still_running(armed, now, transaction_id) and not same_bounds(armed.sent, held)


def read_armed(entries: Mapping[str, Any]) -> dict[ArmedKind, ArmedService]:
    """A station's stored entries ({kind: as_dict}); unreadable ones are left out."""
    out: dict[ArmedKind, ArmedService] = {}
    for data in entries.values():
        try:
            armed = ArmedService.from_dict(data)
        except (ValueError, TypeError, KeyError):
            continue
        out[armed.kind] = armed
    return out


def pruned(
    entries: Mapping[str, Any], now: datetime, running: Sequence[str] | None = None
) -> dict[str, Any]:
    """The stored entries without those that ended (or are unreadable); with `running` (the
    station's running transactions) also without those of a transaction that ended."""
    kept = {}
    for kind, armed in read_armed(entries).items():
        left = time_left_s(armed, now)
        if left is not None and left < 1.0:
            continue
        if running is not None and armed.transaction_id not in running:
            continue
        kept[kind.value] = armed.as_dict()
    return kept
