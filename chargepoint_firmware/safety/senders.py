"""Conflicting senders on the CHAdeMO bus (pure: fed with (time, id, data), no clock, no I/O).

One vehicle sends each of 0x100/0x101/0x102 once per 100 ms cycle. A second sender on the bus
(a spoofing device, a second ECU, a loop in a gateway) shows up as frames of the same id arriving
much faster than the cycle with different content. A single early frame with new content can be
bus jitter (a queued frame sent just before the next one), so a conflict needs `strikes` such
frames within `window_s`. Work per frame is O(1) and the state is bounded (a few timestamps per
id), whatever the peer sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

__all__ = ["VEHICLE_IDS", "SenderConfig", "SenderState", "observe_frame"]

# The vehicle's cyclic frames that a second sender would contradict.
VEHICLE_IDS: Final = frozenset({0x100, 0x101, 0x102})


@dataclass(frozen=True, slots=True)
class SenderConfig:
    # Half the 100 ms cycle: two frames of one id this close come from two senders (or a fault).
    min_gap_s: float = 0.05
    strikes: int = 3  # early conflicting frames needed ...
    window_s: float = 1.0  # ... within this time

    def __post_init__(self) -> None:
        if not (0 < self.min_gap_s < 1 and 0 < self.window_s <= 60):
            raise ValueError("SenderConfig: min_gap_s must be in (0, 1), window_s in (0, 60]")
        if not 1 <= self.strikes <= 100:
            raise ValueError("SenderConfig.strikes must be within 1-100")


@dataclass(frozen=True, slots=True)
class SenderState:
    """Carried between frames (start with `SenderState()`; a new one per session)."""

    last: dict[int, tuple[float, bytes]] = field(default_factory=dict)  # id -> (time, data)
    strike_times: tuple[float, ...] = ()  # the most recent strikes, at most `strikes` kept
    conflict: bool = False  # sticky: the supervisor latches it as a fault


def observe_frame(
    config: SenderConfig, state: SenderState, now: float, can_id: int, data: bytes
) -> SenderState:
    """Account one received frame; `result.conflict` says a second sender was seen."""
    if can_id not in VEHICLE_IDS:
        return state
    previous = state.last.get(can_id)
    last = dict(state.last)
    last[can_id] = (now, bytes(data))
    strikes = state.strike_times
    # A clock step backwards (now < previous) counts as early: it cannot come from one cycle.
    if previous is not None and now - previous[0] < config.min_gap_s and previous[1] != data:
        strikes = (*strikes, now)
    strikes = tuple(t for t in strikes if now - t <= config.window_s)[-config.strikes :]
    conflict = state.conflict or len(strikes) >= config.strikes
    return replace(state, last=last, strike_times=strikes, conflict=conflict)
