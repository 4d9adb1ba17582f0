"""Frequency response (pure): the NEM curve (built on the shared `v2g_shared.freq_watt`) and the
central under-frequency event rule. Power is signed: negative = discharge (inject into the grid).

The rule's state is a plain value (`EventSnapshot`, JSON-able with `as_dict`/`from_dict`), so
that several CSMS nodes can keep it in the database and feed one sample stream between them:
restore, feed, snapshot, store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from v2g_shared.freq_watt import FreqWattCurve

NEM_NORMAL_BAND_HZ = (49.85, 50.15)


def nem_curve(max_discharge_w: float, max_charge_w: float) -> FreqWattCurve:
    """Full discharge at 49.0 Hz and full charge at 51.0 Hz, nothing inside the NEM normal
    operating band (49.85-50.15 Hz)."""
    low, high = NEM_NORMAL_BAND_HZ
    return FreqWattCurve(
        points=((49.0, -max_discharge_w), (low, 0.0), (high, 0.0), (51.0, max_charge_w)),
        deadband_hz=0.15,
    )


@dataclass(frozen=True)
class UnderFrequencyRule:
    """Below `threshold_hz` for `hold_s` -> discharge `discharge_kw` for `duration_s`, only
    when SoC > `min_soc`; stop early if SoC falls to `stop_soc`."""

    threshold_hz: float = 49.8
    hold_s: float = 5.0
    discharge_kw: float = 5.0
    duration_s: float = 600.0
    min_soc: float = 0.5
    stop_soc: float = 0.5


class EventState(StrEnum):
    IDLE = "idle"
    ARMING = "arming"  # below threshold, waiting out hold_s
    ACTIVE = "active"  # discharging


@dataclass(frozen=True)
class EventSnapshot:
    """Everything an UnderFrequencyEvent remembers between samples (times in seconds, as fed)."""

    state: EventState = EventState.IDLE
    since: float = 0.0  # when ARMING began
    until: float = 0.0  # when ACTIVE ends
    last_t: float | None = None  # the latest sample fed
    events_started: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "since": self.since,
            "until": self.until,
            "last_t": self.last_t,
            "events_started": self.events_started,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventSnapshot:
        """The inverse of `as_dict`; ValueError for anything else."""
        try:
            last_t = data["last_t"]
            snapshot = cls(
                state=EventState(data["state"]),
                since=float(data["since"]),
                until=float(data["until"]),
                last_t=None if last_t is None else float(last_t),
                events_started=int(data["events_started"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an under-frequency event state: {data!r}") from exc
        if snapshot.events_started < 0:
            raise ValueError("events_started must be >= 0")
        return snapshot


class UnderFrequencyEvent:
    """Feed (time s, Hz, SoC) samples in time order; each answer is the power to run at (kW)."""

    def __init__(
        self, rule: UnderFrequencyRule | None = None, snapshot: EventSnapshot | None = None
    ) -> None:
        self.rule = rule or UnderFrequencyRule()
        start = snapshot or EventSnapshot()
        self.state = start.state
        self._since: float = start.since
        self._until: float = start.until
        self._last_t: float | None = start.last_t
        self.events_started = start.events_started

    def snapshot(self) -> EventSnapshot:
        """The state to store; `UnderFrequencyEvent(rule, snapshot)` continues from it."""
        return EventSnapshot(
            self.state, self._since, self._until, self._last_t, self.events_started
        )

    @property
    def last_t(self) -> float | None:
        return self._last_t

    @property
    def active_until(self) -> float | None:
        """When the running discharge ends by itself (None unless ACTIVE)."""
        return self._until if self.state is EventState.ACTIVE else None

    def feed(self, t: float, hz: float, soc: float) -> float:
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"samples must come in time order ({t} after {self._last_t})")
        self._last_t = t
        rule = self.rule
        if self.state is EventState.ACTIVE:
            if t >= self._until or soc <= rule.stop_soc:
                self.state = EventState.IDLE
            else:
                return -rule.discharge_kw
        low = hz < rule.threshold_hz
        if self.state is EventState.IDLE and low:
            self.state, self._since = EventState.ARMING, t
        elif self.state is EventState.ARMING and not low:
            self.state = EventState.IDLE
        if self.state is EventState.ARMING and t - self._since >= rule.hold_s:
            if soc > rule.min_soc:
                self.state, self._until = EventState.ACTIVE, t + rule.duration_s
                self.events_started += 1
                return -rule.discharge_kw
            self._since = t  # too empty to help: look again after another hold period
        return 0.0
